//! A folder's stamp: the mtimes of `cur/` and `new/`, and a digest of the names they
//! held, so a pass can tell without reading the folder that nothing changed locally.
//!
//! The mtimes say "nothing changed since"; they are recorded only when older than the
//! filesystem's timestamp granularity (see [`super::scan`]), else a change in the same
//! tick would hide behind them. The digest is a sum of one hash per file name (its key
//! and system flags), so a pass that renamed a few files itself can work out what the
//! digest must be now from those few names alone, and re-arm the stamp after one read of
//! the names (no `stat`, no base) instead of a full scan next pass. Any doubt (no
//! digest, a different sum, a folder that moved while read) leaves no stamp: a full scan.

use std::io;

use crate::model::{Flags, MaildirKey};

use super::{Maildir, scan};

/// An order-free digest of a folder's names: the wrapping sum of a 128-bit hash of
/// each name's key and system flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamesDigest(pub u128);

impl NamesDigest {
    fn hash(key: &MaildirKey, flags: &Flags) -> u128 {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(key.0.as_bytes());
        ctx.update(b"\0");
        ctx.update(flags.system_only().maildir_letters().as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&ctx.finish().as_ref()[..16]);
        u128::from_le_bytes(bytes)
    }

    /// A file with this key and these flags is in the folder.
    pub fn add(&mut self, key: &MaildirKey, flags: &Flags) {
        self.0 = self.0.wrapping_add(Self::hash(key, flags));
    }

    /// A file with this key and these flags is no longer in the folder.
    pub fn remove(&mut self, key: &MaildirKey, flags: &Flags) {
        self.0 = self.0.wrapping_sub(Self::hash(key, flags));
    }

    /// The digest of these names.
    pub fn of<'a>(names: impl IntoIterator<Item = (&'a MaildirKey, &'a Flags)>) -> NamesDigest {
        let mut d = NamesDigest::default();
        for (key, flags) in names {
            d.add(key, flags);
        }
        d
    }
}

/// A stamp as the state stores it: `<cur ns>.<new ns>` (what [`Maildir::stamp`] says),
/// then `.<digest hex>` when the names' digest was known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub mtimes: String,
    pub digest: Option<NamesDigest>,
}

impl Stamp {
    pub fn new(mtimes: String, digest: Option<NamesDigest>) -> Stamp {
        Stamp { mtimes, digest }
    }

    /// Read a stored stamp (one without a digest is from before digests were kept).
    pub fn parse(stored: &str) -> Stamp {
        let mut parts = stored.splitn(3, '.');
        let (cur, new, digest) = (parts.next(), parts.next(), parts.next());
        match (cur, new) {
            (Some(cur), Some(new)) => Stamp {
                mtimes: format!("{cur}.{new}"),
                digest: digest
                    .and_then(|d| u128::from_str_radix(d, 16).ok())
                    .map(NamesDigest),
            },
            _ => Stamp {
                mtimes: stored.to_owned(),
                digest: None,
            },
        }
    }

    pub fn to_stored(&self) -> String {
        match self.digest {
            Some(d) => format!("{}.{:032x}", self.mtimes, d.0),
            None => self.mtimes.clone(),
        }
    }

    /// Whether the folder's mtimes are still the ones this stamp recorded.
    pub fn holds(&self, md: &Maildir) -> bool {
        md.stamp().is_ok_and(|now| now == self.mtimes)
    }
}

impl Maildir {
    /// The digest of the names in `new/` and `cur/` (no `stat` per file, nothing kept but
    /// the sum), and the mtimes it was read under: `None` unless the folder held still and
    /// its mtimes are older than the timestamp granularity, so any later change moves the
    /// stamp: wait out [`Maildir::settling`] first if the folder was just written.
    pub fn digest_with_stamp(&self) -> io::Result<Option<Stamp>> {
        let mut digest = NamesDigest::default();
        Ok(self
            .visit_names(|key, flags| digest.add(&key, &flags))?
            .map(|mtimes| Stamp::new(mtimes, Some(digest))))
    }

    /// The file of a message known to be in the folder with these flags and no other
    /// letters, found by its name alone (`cur/KEY:2,LETTERS`, or `new/KEY` without
    /// flags): what a pass that trusts the folder's stamp reads instead of a scan.
    /// `None`: not there under that name (renamed, or letters we did not write); the
    /// caller scans.
    pub fn find(&self, key: &MaildirKey, flags: &Flags) -> io::Result<Option<scan::LocalMessage>> {
        let flags = flags.system_only();
        let mut candidates = vec![(
            self.cur_dir().join(super::build_cur_name(key, &flags, "")),
            false,
        )];
        if flags.is_empty() {
            candidates.push((self.new_dir().join(&key.0), true));
        }
        for (path, in_new) in candidates {
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => {
                    return Ok(Some(scan::LocalMessage {
                        key: key.clone(),
                        flags,
                        extra_letters: String::new(),
                        path,
                        size: meta.len(),
                        in_new,
                        mtime: meta.modified()?,
                    }));
                }
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
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

    fn flags(letters: &str) -> Flags {
        let mut f = Flags::new();
        for c in letters.chars() {
            f.insert(Flag::from_maildir_letter(c).unwrap());
        }
        f
    }

    #[test]
    fn stored_stamps_round_trip_and_old_ones_have_no_digest() {
        let s = Stamp::new("12.34".into(), Some(NamesDigest(0xabc)));
        assert_eq!(Stamp::parse(&s.to_stored()), s);
        assert_eq!(Stamp::parse("12.34"), Stamp::new("12.34".into(), None));
    }

    #[test]
    fn the_digest_follows_renames_worked_out_from_the_renamed_names_alone() {
        let (_d, md) = setup();
        let (a, b) = (MaildirKey("1.M1P1.h".into()), MaildirKey("2.M1P1.h".into()));
        std::fs::write(md.new_dir().join(&a.0), b"a").unwrap();
        std::fs::write(md.cur_dir().join("2.M1P1.h:2,S"), b"b").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(60));
        let before = md.digest_with_stamp().unwrap().unwrap();
        assert_eq!(
            before.digest,
            Some(NamesDigest::of([(&a, &Flags::new()), (&b, &flags("S"))]))
        );
        let msg = md.find(&b, &flags("S")).unwrap().unwrap();
        md.set_flags(&msg, &flags("FS")).unwrap();
        let mut expected = before.digest.unwrap();
        expected.remove(&b, &flags("S"));
        expected.add(&b, &flags("FS"));
        std::thread::sleep(std::time::Duration::from_millis(60));
        let after = md.digest_with_stamp().unwrap().unwrap();
        assert_eq!(after.digest, Some(expected));
        assert_ne!(after.mtimes, before.mtimes);
        assert!(md.find(&a, &Flags::new()).unwrap().unwrap().in_new);
        assert!(md.find(&b, &flags("S")).unwrap().is_none(), "renamed away");
    }
}
