//! Maildir filenames: `unique[:2,FLAGS]`. The unique part is the message's local identity
//! (rule 14); the info part carries the flags, and letters we do not know are kept.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::{Flag, Flags, MaildirKey};

/// The separator between the unique part and the info. Maildir on filesystems that
/// forbid `:` is not supported.
pub const INFO_SEPARATOR: char = ':';

/// A parsed Maildir filename.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirName {
    /// The unique part (everything before `:`).
    pub key: MaildirKey,
    /// The system flags found in `:2,` letters.
    pub flags: Flags,
    /// Letters in the `:2,` info that are not system flags (Dovecot keyword letters
    /// `a`-`z`, other programs' private letters), in the order found. They survive every
    /// rename we make.
    pub extra_letters: String,
}

/// Why a directory entry is not a message file. Such entries are skipped and reported by
/// a scan, never treated as an error or as a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("empty unique part")]
    EmptyUnique,
    #[error("hidden file (starts with '.')")]
    Hidden,
    #[error("contains '/' or NUL")]
    BadCharacter,
}

impl MaildirName {
    /// Parse a filename found in `new/` or `cur/`.
    ///
    /// `new/` files normally have no info; they parse as no flags. An info part other
    /// than `2,...` (the obsolete `1,` experimental semantics) is read as no flags and is
    /// replaced by a `2,` info if we ever rename the file.
    pub fn parse(name: &str) -> Result<MaildirName, NameError> {
        if name.starts_with('.') {
            return Err(NameError::Hidden);
        }
        if name.contains(['/', '\0']) {
            return Err(NameError::BadCharacter);
        }
        let (unique, info) = match name.split_once(INFO_SEPARATOR) {
            Some((u, i)) => (u, Some(i)),
            None => (name, None),
        };
        if unique.is_empty() {
            return Err(NameError::EmptyUnique);
        }
        let mut flags = Flags::new();
        let mut extra_letters = String::new();
        if let Some(letters) = info.and_then(|i| i.strip_prefix("2,")) {
            for c in letters.chars() {
                match Flag::from_maildir_letter(c) {
                    Some(flag) => flags.insert(flag),
                    None if !extra_letters.contains(c) => extra_letters.push(c),
                    None => {}
                }
            }
        }
        Ok(MaildirName {
            key: MaildirKey(unique.to_owned()),
            flags,
            extra_letters,
        })
    }

    /// The filename for `cur/`: the unique part, `:2,` and every letter (system flags and
    /// extra letters) in ASCII order, each once, as the Maildir spec requires.
    pub fn cur_name(&self) -> String {
        build_cur_name(&self.key, &self.flags, &self.extra_letters)
    }
}

/// Build a `cur/` filename from its parts. See [`MaildirName::cur_name`].
pub fn build_cur_name(key: &MaildirKey, flags: &Flags, extra_letters: &str) -> String {
    let mut letters: Vec<char> = flags
        .iter()
        .map(Flag::maildir_letter)
        .chain(extra_letters.chars())
        .collect();
    letters.sort_unstable();
    letters.dedup();
    let mut name = String::with_capacity(key.0.len() + 3 + letters.len());
    name.push_str(&key.0);
    name.push(INFO_SEPARATOR);
    name.push_str("2,");
    name.extend(letters);
    name
}

/// The message size a delivery agent recorded in the unique part (`,S=<bytes>`, as Dovecot
/// writes it), which saves a `stat` per message.
pub fn size_hint(key: &MaildirKey) -> Option<u64> {
    key.0
        .split(',')
        .skip(1)
        .find_map(|field| field.strip_prefix("S="))
        .and_then(|n| n.parse().ok())
}

/// Generates unique parts per the Maildir spec:
/// `<secs>.M<usecs>P<pid>Q<counter>R<random>.<host>`.
///
/// The counter is process-wide, the random part is drawn once per process (so two
/// processes that reuse a pid within one microsecond still differ), and the hostname has
/// `/` and `:` escaped as `\057` and `\072`.
pub fn new_unique(now: SystemTime) -> MaildirKey {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let ident = process_ident();
    MaildirKey(format!(
        "{}.M{}P{}Q{}R{}.{}",
        since.as_secs(),
        since.subsec_micros(),
        ident.pid,
        counter,
        ident.random,
        ident.host
    ))
}

struct ProcessIdent {
    /// Read once: `getpid` is a system call, and a key is made for every message.
    pid: u32,
    random: String,
    host: String,
}

fn process_ident() -> &'static ProcessIdent {
    static IDENT: OnceLock<ProcessIdent> = OnceLock::new();
    IDENT.get_or_init(|| ProcessIdent {
        pid: std::process::id(),
        random: random_hex(),
        host: escape_hostname(&hostname()),
    })
}

fn random_hex() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Uniqueness still holds through time, pid and counter; the random part only
        // guards against pid reuse within one microsecond.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (nanos as u64).to_le_bytes();
    }
    hex::encode(bytes)
}

fn hostname() -> String {
    let from_proc = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    from_proc
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Escape a hostname for use in a unique part: `/` -> `\057`, `:` -> `\072` (the spec),
/// and, so the name stays a plain filename, control characters as octal too.
pub fn escape_hostname(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            c if c.is_control() => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("\\{b:03o}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flags(letters: &str) -> Flags {
        letters
            .chars()
            .filter_map(Flag::from_maildir_letter)
            .collect()
    }

    #[test]
    fn parses_cur_name_with_flags() {
        let n = MaildirName::parse("1700000000.M1P2Q3.host:2,FS").unwrap();
        assert_eq!(n.key.0, "1700000000.M1P2Q3.host");
        assert_eq!(n.flags, flags("FS"));
        assert_eq!(n.extra_letters, "");
    }

    #[test]
    fn new_name_without_info_has_no_flags() {
        let n = MaildirName::parse("1700000000.M1P2Q3.host").unwrap();
        assert!(n.flags.is_empty());
        assert_eq!(n.cur_name(), "1700000000.M1P2Q3.host:2,");
    }

    #[test]
    fn rule_14_unknown_flag_letters_preserved() {
        let n = MaildirName::parse("k:2,Sab").unwrap();
        assert_eq!(n.extra_letters, "ab");
        let mut changed = n.clone();
        changed.flags.insert(Flag::Flagged);
        changed.flags.remove(Flag::Seen);
        assert_eq!(changed.cur_name(), "k:2,Fab");
        // Unknown uppercase letters too, sorted into place.
        let n = MaildirName::parse("k:2,ZS").unwrap();
        assert_eq!(n.extra_letters, "Z");
        assert_eq!(n.cur_name(), "k:2,SZ");
    }

    #[test]
    fn letters_are_written_in_ascii_order_once() {
        let n = MaildirName::parse("k:2,TSSRD").unwrap();
        assert_eq!(n.cur_name(), "k:2,DRST");
    }

    #[test]
    fn obsolete_info_reads_as_no_flags() {
        let n = MaildirName::parse("k:1,whatever").unwrap();
        assert!(n.flags.is_empty());
        assert_eq!(n.key.0, "k");
    }

    #[test]
    fn invalid_names_are_reported() {
        assert_eq!(MaildirName::parse(".hidden"), Err(NameError::Hidden));
        assert_eq!(MaildirName::parse(":2,S"), Err(NameError::EmptyUnique));
        assert_eq!(MaildirName::parse(""), Err(NameError::EmptyUnique));
    }

    #[test]
    fn size_hint_reads_dovecot_s_field() {
        assert_eq!(
            size_hint(&MaildirKey("123.M4P5.host,S=2048,W=2100".into())),
            Some(2048)
        );
        assert_eq!(size_hint(&MaildirKey("123.M4P5.host".into())), None);
        assert_eq!(size_hint(&MaildirKey("123.M4P5.host,S=x".into())), None);
    }

    #[test]
    fn unique_names_differ_and_escape_host() {
        let now = SystemTime::now();
        let a = new_unique(now);
        let b = new_unique(now);
        assert_ne!(a, b);
        assert!(!a.0.contains([':', '/']));
        assert!(MaildirName::parse(&a.0).is_ok());
        assert_eq!(escape_hostname("a/b:c"), "a\\057b\\072c");
    }

    proptest! {
        #[test]
        fn name_round_trips(
            key in "[A-Za-z0-9.,=_-]{1,40}",
            sys in proptest::collection::btree_set(proptest::sample::select(Flag::ALL.to_vec()), 0..6),
            extra in proptest::collection::btree_set("[a-zA-Z]", 0..5),
        ) {
            prop_assume!(!key.starts_with('.'));
            let extra: String = extra
                .into_iter()
                .filter(|c| c.chars().all(|c| Flag::from_maildir_letter(c).is_none()))
                .collect();
            let flags: Flags = sys.into_iter().collect();
            let name = build_cur_name(&MaildirKey(key.clone()), &flags, &extra);
            let parsed = MaildirName::parse(&name).unwrap();
            prop_assert_eq!(&parsed.key.0, &key);
            prop_assert_eq!(&parsed.flags, &flags);
            let mut want: Vec<char> = extra.chars().collect();
            want.sort_unstable();
            let mut got: Vec<char> = parsed.extra_letters.chars().collect();
            got.sort_unstable();
            prop_assert_eq!(got, want);
            prop_assert_eq!(parsed.cur_name(), name);
        }
    }
}
