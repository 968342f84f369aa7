//! The local side: Maildir filenames and flags, stable scans, batched durable delivery,
//! renames, and mapping server folder names to safe local paths.
//!
//! Every operation works on one folder, a [`Maildir`] (a directory with `cur/`, `new/`
//! and `tmp/`). Paths for server folders come from [`FolderMap`], which is the only place
//! a server-controlled string becomes a path.

pub mod deliver;
pub mod filename;
pub mod folder;
pub mod peers;
pub mod rename;
pub mod scan;
pub mod stamp;
pub mod tmpclean;
pub mod utf7;

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use deliver::{Delivered, DeliveryBatch, DeliveryError, Placement, TmpWriter};
pub use filename::{MaildirName, NameError, build_cur_name};
pub use folder::{
    FolderError, FolderMap, FolderNames, Layout, LocalFolders, decode_server_name, shown_prefix,
};
pub use scan::{Duplicate, LocalMessage, LocalScan, ScanOptions, Skipped};
pub use stamp::{NamesDigest, Stamp};
pub use tmpclean::{TMP_MAX_AGE, clean_tmp};

use crate::model::{Flags, MaildirKey};

/// A fresh unique part for a message about to be delivered. Chosen before anything is
/// written, so the caller can journal it in an intent first (rule 1).
pub fn new_key() -> MaildirKey {
    filename::new_unique(SystemTime::now())
}

/// What went wrong touching one message file.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// ENOENT: a mail client renamed, moved or deleted the file since our scan. Rescan;
    /// this never means "deleted" by itself (rule 14).
    #[error("{path:?} is gone since the last scan (a client renamed or moved it); rescan")]
    Vanished { path: PathBuf },
    /// The target name already exists; we never overwrite a message file.
    #[error("{path:?} already exists; refusing to overwrite it")]
    Collision { path: PathBuf },
    #[error("{path:?}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl MessageError {
    fn from_io(path: &Path, source: io::Error) -> MessageError {
        if source.kind() == io::ErrorKind::NotFound {
            MessageError::Vanished {
                path: path.to_owned(),
            }
        } else {
            MessageError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// One Maildir folder: a directory holding `cur/`, `new/` and `tmp/`.
#[derive(Clone, Debug)]
pub struct Maildir {
    path: PathBuf,
    /// How renames here avoid replacing a file, found out at the first one.
    renames: rename::NoReplace,
}

impl PartialEq for Maildir {
    fn eq(&self, other: &Maildir) -> bool {
        self.path == other.path
    }
}

impl Eq for Maildir {}

impl Maildir {
    /// Open an existing Maildir; fails unless `cur/`, `new/` and `tmp/` are directories.
    /// Create folders with [`FolderMap::create`], which checks the path first.
    pub fn open(path: impl Into<PathBuf>) -> io::Result<Maildir> {
        let md = Maildir {
            path: path.into(),
            renames: rename::NoReplace::default(),
        };
        for sub in [md.cur_dir(), md.new_dir(), md.tmp_dir()] {
            if !std::fs::metadata(&sub)?.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", sub.display()),
                ));
            }
        }
        Ok(md)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn cur_dir(&self) -> PathBuf {
        self.path.join("cur")
    }
    pub fn new_dir(&self) -> PathBuf {
        self.path.join("new")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.path.join("tmp")
    }

    /// Scan `new/` and `cur/` with the default retry policy.
    pub fn scan(&self) -> io::Result<LocalScan> {
        scan::scan(self, &ScanOptions::default())
    }

    /// Change a message's flags by renaming it: within `cur/`, or from `new/` into `cur/`
    /// once it has any flag. The unique part and unknown letters are kept (rule 14).
    /// Returns the message as it is now. Not durable until [`Maildir::sync_dirs`].
    pub fn set_flags(
        &self,
        msg: &LocalMessage,
        flags: &Flags,
    ) -> Result<LocalMessage, MessageError> {
        let mut updated = msg.clone();
        updated.flags = flags.clone();
        if msg.in_new && flags.is_empty() && msg.extra_letters.is_empty() {
            return Ok(updated);
        }
        let target = self
            .cur_dir()
            .join(build_cur_name(&msg.key, flags, &msg.extra_letters));
        if target == msg.path {
            return Ok(updated);
        }
        // The only way the target exists is a duplicate unique part, which we must not
        // destroy.
        match self.rename_exclusive(&msg.path, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(MessageError::Collision { path: target });
            }
            Err(e) => return Err(MessageError::from_io(&msg.path, e)),
        }
        updated.path = target;
        updated.in_new = false;
        Ok(updated)
    }

    /// Rename a file into this folder, or fail with `AlreadyExists`: never replace a
    /// file (see [`rename`]).
    pub fn rename_exclusive(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.renames.rename(from, to)
    }

    /// [`Maildir::rename_exclusive`] in one step, or `Ok(false)` (nothing done) where
    /// this folder's filesystem cannot refuse an existing name itself.
    pub fn try_rename_exclusive(&self, from: &Path, to: &Path) -> io::Result<bool> {
        self.renames.try_rename(from, to)
    }

    /// Delete a message: unlink it. ENOENT is [`MessageError::Vanished`] (rescan), since
    /// a client may have moved it rather than deleted it. Not durable until
    /// [`Maildir::sync_dirs`].
    pub fn delete(&self, msg: &LocalMessage) -> Result<(), MessageError> {
        std::fs::remove_file(&msg.path).map_err(|e| MessageError::from_io(&msg.path, e))
    }

    /// The modification times of `cur/` and `new/` to the nanosecond. Any delivery,
    /// rename or unlink changes it, so a stamp taken around a stable scan (whose mtimes
    /// are older than the timestamp granularity) tells later whether the folder changed
    /// without reading it.
    pub fn stamp(&self) -> io::Result<String> {
        let ns = |dir: PathBuf| -> io::Result<u128> {
            let t = std::fs::metadata(&dir)?.modified()?;
            Ok(t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()))
        };
        Ok(format!("{}.{}", ns(self.cur_dir())?, ns(self.new_dir())?))
    }

    /// How long until the last change to `new/` and `cur/` is older than the timestamp
    /// granularity, so that any later change moves the folder's stamp: zero once it is.
    /// A stamp read sooner is worth nothing ([`Maildir::visit_names`]).
    /// The granularity is the scan's rule ([`scan::ScanOptions::granularity_of`]): 2 s
    /// on a filesystem without sub-second mtimes.
    pub fn settling(&self) -> std::time::Duration {
        let opts = scan::ScanOptions::default();
        [self.cur_dir(), self.new_dir()]
            .iter()
            .map(|d| match std::fs::metadata(d).and_then(|m| m.modified()) {
                Ok(t) => {
                    let granularity = opts.granularity_of(t);
                    t.elapsed()
                        .map_or(granularity, |age| granularity.saturating_sub(age))
                }
                Err(_) => opts.fine_granularity,
            })
            .max()
            .unwrap_or_default()
    }

    /// The keys and flags in `new/` and `cur/` from their names alone (no `stat` per
    /// file), each handed to `visit` as it is read (a folder of any size in constant
    /// memory), and the stamp they were read under: `None` unless the folder held still
    /// and its mtimes are older than the timestamp granularity, so any later change moves
    /// the stamp; the visits are worth nothing then. Wait out [`Maildir::settling`]
    /// first if the folder was just written (the caller decides how to wait).
    pub fn visit_names(
        &self,
        mut visit: impl FnMut(MaildirKey, Flags),
    ) -> io::Result<Option<String>> {
        let fresh = || !self.settling().is_zero();
        let before = self.stamp()?;
        for dir in [self.new_dir(), self.cur_dir()] {
            for entry in std::fs::read_dir(&dir)? {
                if let Ok(name) = MaildirName::parse(&entry?.file_name().to_string_lossy()) {
                    visit(name.key, name.flags);
                }
            }
        }
        if fresh() || self.stamp()? != before {
            return Ok(None);
        }
        Ok(Some(before))
    }

    /// Make renames and unlinks in `new/` and `cur/` durable: one fsync per directory.
    /// Call once after a batch of [`Maildir::set_flags`] / [`Maildir::delete`], before
    /// committing the new base.
    pub fn sync_dirs(&self) -> io::Result<()> {
        sync_dir(&self.new_dir())?;
        sync_dir(&self.cur_dir())
    }

    /// Remove a leftover `tmp/` file of a delivery that never completed (intent recovery).
    /// Returns whether there was one.
    pub fn discard_tmp(&self, key: &MaildirKey) -> io::Result<bool> {
        match std::fs::remove_file(self.tmp_dir().join(&key.0)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// fsync a directory so the names in it (creations, renames, unlinks) are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flag;

    fn setup() -> (tempfile::TempDir, Maildir) {
        let dir = tempfile::tempdir().unwrap();
        let map = FolderMap::new(dir.path(), Layout::Verbatim, Some('/'));
        let path = map
            .create(&crate::model::FolderName("INBOX".into()))
            .unwrap();
        (dir, Maildir::open(path).unwrap())
    }

    fn put(md: &Maildir, sub: &str, name: &str) {
        std::fs::write(
            md.path().join(sub).join(name),
            b"Subject: x\r\n\r\nbody\r\n",
        )
        .unwrap();
    }

    /// A filesystem without sub-second mtimes (ext3, FAT, some NFS): a folder changed
    /// this second settles only after the coarse granularity, the scan's rule, or a stamp
    /// recorded sooner would miss a change made in the same second (rule 6).
    #[test]
    fn rule_6_a_folder_with_whole_second_mtimes_settles_after_the_coarse_granularity() {
        let (_d, md) = setup();
        let now = std::time::SystemTime::now();
        let whole = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(
                now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            );
        for dir in [md.cur_dir(), md.new_dir()] {
            std::fs::File::open(&dir)
                .unwrap()
                .set_modified(whole)
                .unwrap();
        }
        let settling = md.settling();
        assert!(
            settling > std::time::Duration::from_millis(900),
            "a whole-second mtime at most 1 s old leaves more than 1 s of the 2 s: {settling:?}"
        );
        // Sub-second mtimes: the fine granularity, long past for an old folder.
        for dir in [md.cur_dir(), md.new_dir()] {
            std::fs::File::open(&dir)
                .unwrap()
                .set_modified(now - std::time::Duration::from_millis(1_234))
                .unwrap();
        }
        assert!(md.settling().is_zero());
    }

    #[test]
    fn rule_14_flag_change_is_rename_unique_part_stable() {
        let (_d, md) = setup();
        put(&md, "new", "100.M1P1.h");
        let scan = md.scan().unwrap();
        let msg = &scan.messages[&MaildirKey("100.M1P1.h".into())];
        assert!(msg.in_new);
        let seen = Flags::new().with(Flag::Seen);
        let moved = md.set_flags(msg, &seen).unwrap();
        assert_eq!(moved.path, md.cur_dir().join("100.M1P1.h:2,S"));
        let flagged = md
            .set_flags(&moved, &seen.clone().with(Flag::Flagged))
            .unwrap();
        assert_eq!(flagged.path, md.cur_dir().join("100.M1P1.h:2,FS"));
        md.sync_dirs().unwrap();
        let scan = md.scan().unwrap();
        assert_eq!(scan.messages.len(), 1);
        let m = &scan.messages[&MaildirKey("100.M1P1.h".into())];
        assert_eq!(m.flags, seen.with(Flag::Flagged));
        assert!(!m.in_new);
    }

    #[test]
    fn rule_14_enoent_means_rescan_not_deleted() {
        let (_d, md) = setup();
        put(&md, "cur", "200.M1P1.h:2,");
        let scan = md.scan().unwrap();
        let msg = scan.messages[&MaildirKey("200.M1P1.h".into())].clone();
        // A client marks it seen behind our back.
        std::fs::rename(&msg.path, md.cur_dir().join("200.M1P1.h:2,S")).unwrap();
        let err = md
            .set_flags(&msg, &Flags::new().with(Flag::Flagged))
            .unwrap_err();
        assert!(matches!(err, MessageError::Vanished { .. }), "{err}");
        let err = md.delete(&msg).unwrap_err();
        assert!(matches!(err, MessageError::Vanished { .. }), "{err}");
        // The message is still there under its key.
        let scan = md.scan().unwrap();
        assert!(
            scan.messages[&MaildirKey("200.M1P1.h".into())]
                .flags
                .contains(Flag::Seen)
        );
    }

    #[test]
    fn rule_14_unknown_letters_survive_our_renames() {
        let (_d, md) = setup();
        put(&md, "cur", "300.M1P1.h:2,Sab");
        let scan = md.scan().unwrap();
        let msg = &scan.messages[&MaildirKey("300.M1P1.h".into())];
        let out = md
            .set_flags(msg, &Flags::new().with(Flag::Replied))
            .unwrap();
        assert_eq!(out.path, md.cur_dir().join("300.M1P1.h:2,Rab"));
    }

    /// A flag change renames in one step that refuses an existing name where the
    /// filesystem can (no window between a check and the rename), else checks first;
    /// either way a duplicate's file is never replaced, and ENOENT is still "rescan".
    #[test]
    fn rule_14_a_flag_rename_never_overwrites_a_duplicate_with_or_without_the_flag() {
        for supported in [true, false] {
            let (_d, md) = setup();
            put(&md, "cur", "400.M1P1.h:2,");
            put(&md, "cur", "400.M1P1.h:2,S");
            put(&md, "cur", "401.M1P1.h:2,");
            let scan = md.scan().unwrap();
            assert_eq!(scan.duplicates.len(), 1);
            let first = scan.duplicates[0].copies[0].clone();
            let other = scan.messages[&MaildirKey("401.M1P1.h".into())].clone();
            let seen = Flags::new().with(Flag::Seen);
            let ((refused, renamed, vanished), tried) =
                rename::hooks::with_renames(supported, || {
                    (
                        md.set_flags(&first, &seen),
                        md.set_flags(&other, &seen),
                        md.set_flags(&other, &Flags::new().with(Flag::Flagged)),
                    )
                });
            let err = refused.unwrap_err();
            assert!(matches!(err, MessageError::Collision { .. }), "{err}");
            // Both copies are still there: neither replaced the other.
            assert!(first.path.exists());
            assert!(md.cur_dir().join("400.M1P1.h:2,S").exists());
            assert_eq!(renamed.unwrap().path, md.cur_dir().join("401.M1P1.h:2,S"));
            let err = vanished.unwrap_err();
            assert!(matches!(err, MessageError::Vanished { .. }), "{err}");
            let after = md.scan().unwrap();
            assert_eq!((after.messages.len(), after.duplicates.len()), (1, 1));
            assert_eq!(tried, if supported { 3 } else { 1 }, "{supported}");
        }
    }

    #[test]
    fn delete_unlinks() {
        let (_d, md) = setup();
        put(&md, "cur", "500.M1P1.h:2,S");
        let scan = md.scan().unwrap();
        md.delete(&scan.messages[&MaildirKey("500.M1P1.h".into())])
            .unwrap();
        md.sync_dirs().unwrap();
        assert!(md.scan().unwrap().messages.is_empty());
    }
}
