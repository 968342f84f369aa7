//! Domain vocabulary shared by every layer: accounts, folders, message identities, flags.
//! Pure data with no IO, so the planner, the Maildir layer and the store agree on meaning.

use std::collections::BTreeSet;
use std::fmt;

pub mod rfc5322;

pub use rfc5322::{
    ContentHash, MessageId, crlf_size, header_block, imap_date, local_time, rfc3339, to_crlf,
    tuid_line,
};

/// The name of an account as written in the config (`name = "work"`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountName(pub String);

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A server folder name, already decoded from modified UTF-7, with the server's own
/// hierarchy delimiter (e.g. `Archive/2024` or `Archive.2024`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderName(pub String);

impl fmt::Display for FolderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The server's own identity of a message, the same in every folder it is copied or
/// moved to: OBJECTID's `EMAILID` (RFC 8474), stored as is, or Gmail's `X-GM-MSGID`,
/// stored as `gm:` and the number (the two never meet on one server). Two entries of
/// one account with equal ids hold the same bytes, so the Maildir keeps one file and
/// links it wherever else the message is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmailId(pub String);

impl EmailId {
    /// Gmail's `X-GM-MSGID`.
    pub fn gmail(msgid: u64) -> EmailId {
        EmailId(format!("gm:{msgid}"))
    }
}

impl fmt::Display for EmailId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IMAP UID (RFC 3501 §2.3.1.1): unique within one folder and one UIDVALIDITY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(pub u32);

/// A folder's UIDVALIDITY. When it changes, every UID of the folder is void.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UidValidity(pub u32);

/// A CONDSTORE modification sequence (RFC 7162).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModSeq(pub u64);

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ModSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The local identity of a message: the unique part of its Maildir filename (everything
/// before `:2,`). A flag change renames the file but never changes this key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MaildirKey(pub String);

impl fmt::Display for MaildirKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The six flags both IMAP and Maildir carry. Declared in the ASCII order of their Maildir
/// letters (D F P R S T), which is the order the Maildir spec requires in a filename.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// `D` / `\Draft`
    Draft,
    /// `F` / `\Flagged`
    Flagged,
    /// `P` / `$Forwarded` (passed on)
    Passed,
    /// `R` / `\Answered`
    Replied,
    /// `S` / `\Seen`
    Seen,
    /// `T` / `\Deleted` (marked for deletion, not yet expunged)
    Trashed,
}

impl Flag {
    pub const ALL: [Flag; 6] = [
        Flag::Draft,
        Flag::Flagged,
        Flag::Passed,
        Flag::Replied,
        Flag::Seen,
        Flag::Trashed,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn maildir_letter(self) -> char {
        match self {
            Flag::Draft => 'D',
            Flag::Flagged => 'F',
            Flag::Passed => 'P',
            Flag::Replied => 'R',
            Flag::Seen => 'S',
            Flag::Trashed => 'T',
        }
    }

    pub fn from_maildir_letter(c: char) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.maildir_letter() == c)
    }

    /// The IMAP spelling. `$Forwarded` is a keyword by RFC 5788, used by the servers and
    /// clients that map Maildir `P`.
    pub fn imap_name(self) -> &'static str {
        match self {
            Flag::Draft => "\\Draft",
            Flag::Flagged => "\\Flagged",
            Flag::Passed => "$Forwarded",
            Flag::Replied => "\\Answered",
            Flag::Seen => "\\Seen",
            Flag::Trashed => "\\Deleted",
        }
    }

    /// IMAP flag names are case-insensitive (RFC 3501 §2.3.2).
    pub fn from_imap_name(name: &str) -> Option<Flag> {
        Flag::ALL
            .into_iter()
            .find(|f| f.imap_name().eq_ignore_ascii_case(name))
    }
}

/// A message's flags: the six system flags plus IMAP keywords (custom flags such as
/// `$Junk` or `work`), which travel wherever both sides can carry them.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flags {
    bits: u8,
    keywords: BTreeSet<String>,
}

impl Flags {
    pub fn new() -> Flags {
        Flags::default()
    }

    pub fn contains(&self, flag: Flag) -> bool {
        self.bits & flag.bit() != 0
    }

    pub fn insert(&mut self, flag: Flag) {
        self.bits |= flag.bit();
    }

    pub fn remove(&mut self, flag: Flag) {
        self.bits &= !flag.bit();
    }

    pub fn set(&mut self, flag: Flag, on: bool) {
        if on {
            self.insert(flag)
        } else {
            self.remove(flag)
        }
    }

    pub fn with(mut self, flag: Flag) -> Flags {
        self.insert(flag);
        self
    }

    /// System flags present, in Maildir letter order.
    pub fn iter(&self) -> impl Iterator<Item = Flag> + '_ {
        Flag::ALL.into_iter().filter(|f| self.contains(*f))
    }

    pub fn keywords(&self) -> &BTreeSet<String> {
        &self.keywords
    }

    pub fn insert_keyword(&mut self, keyword: impl Into<String>) {
        self.keywords.insert(keyword.into());
    }

    pub fn remove_keyword(&mut self, keyword: &str) {
        self.keywords.remove(keyword);
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0 && self.keywords.is_empty()
    }

    /// Flags without keywords, for a side that cannot store keywords.
    pub fn system_only(&self) -> Flags {
        Flags {
            bits: self.bits,
            keywords: BTreeSet::new(),
        }
    }

    /// The Maildir `:2,` letters for the system flags, in the required ASCII order.
    pub fn maildir_letters(&self) -> String {
        self.iter().map(Flag::maildir_letter).collect()
    }

    /// Parse IMAP flag atoms as a server returns them in a FETCH FLAGS list. `\Recent`
    /// and other session-only flags are not message state and are dropped.
    pub fn from_imap<'a>(names: impl IntoIterator<Item = &'a str>) -> Flags {
        let mut flags = Flags::new();
        for name in names {
            if let Some(flag) = Flag::from_imap_name(name) {
                flags.insert(flag);
            } else if !name.starts_with('\\') && !name.is_empty() {
                flags.insert_keyword(name);
            }
        }
        flags
    }

    /// IMAP atoms for a STORE or APPEND flag list.
    pub fn imap_names(&self) -> Vec<String> {
        self.iter()
            .map(|f| f.imap_name().to_owned())
            .chain(self.keywords.iter().cloned())
            .collect()
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({self})")
    }
}

impl fmt::Display for Flags {
    /// `FS+work+$Junk`: Maildir letters, then keywords; `-` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        f.write_str(&self.maildir_letters())?;
        for k in &self.keywords {
            write!(f, "+{k}")?;
        }
        Ok(())
    }
}

impl FromIterator<Flag> for Flags {
    fn from_iter<I: IntoIterator<Item = Flag>>(iter: I) -> Flags {
        let mut flags = Flags::new();
        for flag in iter {
            flags.insert(flag);
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_letters_are_in_ascii_order() {
        let flags: Flags = [Flag::Trashed, Flag::Seen, Flag::Draft, Flag::Replied]
            .into_iter()
            .collect();
        assert_eq!(flags.maildir_letters(), "DRST");
    }

    #[test]
    fn every_flag_round_trips_through_both_spellings() {
        for flag in Flag::ALL {
            assert_eq!(Flag::from_maildir_letter(flag.maildir_letter()), Some(flag));
            assert_eq!(Flag::from_imap_name(flag.imap_name()), Some(flag));
        }
    }

    #[test]
    fn imap_flags_are_case_insensitive_and_drop_recent() {
        let flags = Flags::from_imap(["\\SEEN", "\\Recent", "$Junk", "\\flagged"]);
        assert!(flags.contains(Flag::Seen));
        assert!(flags.contains(Flag::Flagged));
        assert_eq!(flags.keywords().iter().collect::<Vec<_>>(), ["$Junk"]);
        assert_eq!(flags.to_string(), "FS+$Junk");
    }
}
