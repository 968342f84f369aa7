//! Flags in the spellings tests compare: a `Flags` from a list, and Maildir letters as
//! the sorted IMAP flag list `Dovecot::state` reports. Both go through the library's own
//! letter and name tables.

use syncmail::model::{Flag, Flags};

pub fn flags(list: &[Flag]) -> Flags {
    list.iter().copied().collect()
}

/// Maildir flag letters as Dovecot's sorted IMAP flag list (`P` is `$Forwarded`).
pub fn maildir_to_imap(letters: &str) -> String {
    let mut names: Vec<&str> = letters
        .chars()
        .filter_map(Flag::from_maildir_letter)
        .map(Flag::imap_name)
        .collect();
    names.sort();
    names.join(" ")
}
