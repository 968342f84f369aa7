//! Scanning a folder (`new/` + `cur/`) into a map from unique part to message, one
//! directory read each, with the stability check deletions depend on (rule 6).
//!
//! A mail client renaming files while we read a directory can make a file appear twice or
//! not at all. We read the directory mtimes before and after; the scan is stable only if
//! they did not change *and* are older than the filesystem's timestamp granularity
//! before the scan started (otherwise a rename in the same clock tick as the last change
//! would leave the mtime unchanged). Unstable scans are retried, then reported as such.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::maildir::Maildir;
use crate::maildir::filename::{MaildirName, NameError};
use crate::model::{Flags, MaildirKey};

/// One message file found by a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMessage {
    pub key: MaildirKey,
    pub flags: Flags,
    /// Info letters that are not system flags; kept on every rename.
    pub extra_letters: String,
    pub path: PathBuf,
    pub size: u64,
    /// In `new/` (not yet seen by any client), rather than `cur/`.
    pub in_new: bool,
    pub mtime: SystemTime,
}

/// Several files with the same unique part. None of them is in
/// [`LocalScan::messages`]: which one is "the" message is not ours to guess, so the
/// engine must leave the key alone (no deletion, no flag change) until a human resolves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub key: MaildirKey,
    pub copies: Vec<LocalMessage>,
}

/// A directory entry in `new/` or `cur/` that is not a message file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: NameError,
}

/// The result of scanning one folder.
#[derive(Clone, Debug, Default)]
pub struct LocalScan {
    pub messages: BTreeMap<MaildirKey, LocalMessage>,
    pub duplicates: Vec<Duplicate>,
    pub skipped: Vec<Skipped>,
    /// The folder did not change while it was read. Only a stable scan may be used to
    /// conclude that a message was deleted locally (rule 6).
    pub stable: bool,
    /// How many reads it took.
    pub attempts: u32,
}

impl LocalScan {
    /// Whether a key is present at all, as a message or as a duplicate.
    pub fn contains(&self, key: &MaildirKey) -> bool {
        self.messages.contains_key(key) || self.duplicates.iter().any(|d| &d.key == key)
    }
}

/// Retry policy of a scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Reads before giving up and returning `stable: false`.
    pub max_attempts: u32,
    /// The coarsest directory timestamp granularity assumed for filesystems that record
    /// sub-second mtimes (Linux stamps with a clock that ticks every 1-10 ms).
    pub fine_granularity: Duration,
    /// The granularity assumed when mtimes have no sub-second part (ext3, FAT, some NFS).
    pub coarse_granularity: Duration,
    /// Pause after a read that saw the folder change.
    pub retry_pause: Duration,
    /// An empty read whose mtimes held is stable at once, without waiting out the
    /// granularity: for a folder the base holds nothing of, where nothing can read as
    /// deleted (a file added in the same tick is the next pass's).
    pub trust_empty: bool,
}

impl Default for ScanOptions {
    fn default() -> ScanOptions {
        ScanOptions {
            max_attempts: 6,
            fine_granularity: Duration::from_millis(50),
            coarse_granularity: Duration::from_secs(2),
            retry_pause: Duration::from_millis(20),
            trust_empty: false,
        }
    }
}

impl ScanOptions {
    /// The timestamp granularity to assume for a directory with this mtime: coarse when
    /// it has no sub-second part (the filesystem records none), else fine. A change made
    /// within that much of the mtime may not have moved it.
    pub fn granularity_of(&self, mtime: SystemTime) -> Duration {
        if mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .is_ok_and(|d| d.subsec_nanos() == 0)
        {
            self.coarse_granularity
        } else {
            self.fine_granularity
        }
    }
}

/// Scan `new/` and `cur/` of a folder. See the module doc for when a scan is stable.
pub fn scan(md: &Maildir, opts: &ScanOptions) -> io::Result<LocalScan> {
    let (new_dir, cur_dir) = (md.new_dir(), md.cur_dir());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = SystemTime::now();
        let before = (mtime(&new_dir)?, mtime(&cur_dir)?);
        let mut found: Vec<LocalMessage> = Vec::new();
        let mut skipped = Vec::new();
        let mut raced = read_dir_into(&new_dir, true, &mut found, &mut skipped)?;
        raced |= read_dir_into(&cur_dir, false, &mut found, &mut skipped)?;
        let after = (mtime(&new_dir)?, mtime(&cur_dir)?);

        let unchanged = before == after && !raced;
        // How long until both mtimes are old enough to trust.
        let wait = [after.0, after.1]
            .into_iter()
            .map(|m| {
                (m + opts.granularity_of(m))
                    .duration_since(started)
                    .unwrap_or(Duration::ZERO)
            })
            .max()
            .unwrap_or(Duration::ZERO);
        let empty = found.is_empty() && skipped.is_empty();
        let stable = unchanged && (wait.is_zero() || (opts.trust_empty && empty));
        if stable || attempt >= opts.max_attempts {
            let mut result = assemble(found, skipped);
            result.stable = stable;
            result.attempts = attempt;
            return Ok(result);
        }
        let pause = if unchanged {
            wait.min(opts.coarse_granularity)
        } else {
            opts.retry_pause
        };
        std::thread::sleep(pause);
    }
}

fn mtime(dir: &Path) -> io::Result<SystemTime> {
    std::fs::metadata(dir)?.modified()
}

/// Read one directory. Returns true if an entry vanished between readdir and stat (a
/// sure sign of a concurrent rename).
fn read_dir_into(
    dir: &Path,
    in_new: bool,
    found: &mut Vec<LocalMessage>,
    skipped: &mut Vec<Skipped>,
) -> io::Result<bool> {
    let mut raced = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let parsed = match name.to_str() {
            Some(n) => MaildirName::parse(n),
            None => Err(NameError::NotUtf8),
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(reason) => {
                skipped.push(Skipped { path, reason });
                continue;
            }
        };
        // Follows symlinks: a message file symlinked in by hand is still a message.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                raced = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            continue;
        }
        found.push(LocalMessage {
            key: parsed.key,
            flags: parsed.flags,
            extra_letters: parsed.extra_letters,
            path,
            size: meta.len(),
            in_new,
            mtime: meta.modified()?,
        });
    }
    Ok(raced)
}

fn assemble(found: Vec<LocalMessage>, skipped: Vec<Skipped>) -> LocalScan {
    let mut by_key: BTreeMap<MaildirKey, Vec<LocalMessage>> = BTreeMap::new();
    for m in found {
        by_key.entry(m.key.clone()).or_default().push(m);
    }
    let mut scan = LocalScan {
        skipped,
        ..LocalScan::default()
    };
    for (key, mut copies) in by_key {
        if copies.len() == 1 {
            if let Some(m) = copies.pop() {
                scan.messages.insert(key, m);
            }
        } else {
            copies.sort_by(|a, b| a.path.cmp(&b.path));
            scan.duplicates.push(Duplicate { key, copies });
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildir::{FolderMap, Layout};
    use crate::model::{Flag, FolderName};

    fn setup() -> (tempfile::TempDir, Maildir) {
        let dir = tempfile::tempdir().unwrap();
        let map = FolderMap::new(dir.path(), Layout::MaildirPlusPlus, Some('/'));
        let path = map.create(&FolderName("INBOX".into())).unwrap();
        (dir, Maildir::open(path).unwrap())
    }

    #[test]
    fn scans_new_and_cur_and_reports_oddities() {
        let (_d, md) = setup();
        std::fs::write(md.new_dir().join("1.M1P1.h"), b"abc").unwrap();
        std::fs::write(md.cur_dir().join("2.M1P1.h:2,RS"), b"abcd").unwrap();
        std::fs::write(md.cur_dir().join(".hidden"), b"").unwrap();
        std::fs::write(md.cur_dir().join("3.M1P1.h:2,S"), b"").unwrap();
        std::fs::write(md.new_dir().join("3.M1P1.h"), b"").unwrap();
        std::fs::create_dir(md.cur_dir().join("subdir")).unwrap();
        let scan = md.scan().unwrap();
        assert_eq!(scan.messages.len(), 2);
        let one = &scan.messages[&MaildirKey("1.M1P1.h".into())];
        assert!(one.in_new && one.flags.is_empty() && one.size == 3);
        let two = &scan.messages[&MaildirKey("2.M1P1.h".into())];
        assert!(!two.in_new && two.size == 4);
        assert!(two.flags.contains(Flag::Replied) && two.flags.contains(Flag::Seen));
        assert_eq!(scan.duplicates.len(), 1);
        assert_eq!(scan.duplicates[0].copies.len(), 2);
        assert!(scan.contains(&MaildirKey("3.M1P1.h".into())));
        assert_eq!(scan.skipped.len(), 1);
        assert_eq!(scan.skipped[0].reason, NameError::Hidden);
    }

    #[test]
    fn a_fresh_change_is_waited_out_then_stable() {
        let (_d, md) = setup();
        std::fs::write(md.new_dir().join("1.M1P1.h"), b"abc").unwrap();
        let scan = md.scan().unwrap();
        assert!(scan.stable);
        assert!(scan.attempts >= 1);
    }

    #[test]
    fn rule_6_an_empty_new_folder_is_stable_at_once_only_where_trusted() {
        let (_d, md) = setup();
        let trusting = ScanOptions {
            max_attempts: 1,
            trust_empty: true,
            ..ScanOptions::default()
        };
        // Just made, so its mtimes are within the granularity: empty and trusted, stable.
        assert!(scan(&md, &trusting).unwrap().stable);
        let wary = ScanOptions {
            trust_empty: false,
            ..trusting.clone()
        };
        // (A file come and gone: the mtime is fresh however slow the machine.)
        std::fs::write(md.new_dir().join("0.M1P1.h"), b"").unwrap();
        std::fs::remove_file(md.new_dir().join("0.M1P1.h")).unwrap();
        assert!(!scan(&md, &wary).unwrap().stable);
        // A file in it: the granularity is waited out as ever (one attempt: unstable).
        std::fs::write(md.new_dir().join("1.M1P1.h"), b"abc").unwrap();
        assert!(!scan(&md, &trusting).unwrap().stable);
        // The folder's stamp is unsettled until the granularity passes.
        assert!(!md.settling().is_zero());
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert!(md.settling().is_zero());
    }

    #[test]
    fn gives_up_as_unstable_after_max_attempts() {
        let (_d, md) = setup();
        let opts = ScanOptions {
            max_attempts: 1,
            ..ScanOptions::default()
        };
        std::fs::write(md.new_dir().join("1.M1P1.h"), b"abc").unwrap();
        // The write just now is within the granularity window.
        let scan = scan(&md, &opts).unwrap();
        assert!(!scan.stable);
        assert_eq!(scan.messages.len(), 1);
    }
}
