//! Removing abandoned `tmp/` files (rule 14): a delivery that never finished, by us or
//! by another agent. The Maildir spec allows it after 36 hours.

use std::io;
use std::time::{Duration, SystemTime};

use crate::maildir::Maildir;

/// How old a `tmp/` file must be before we remove it.
pub const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 60 * 60);

/// Remove regular files in `tmp/` last modified more than [`TMP_MAX_AGE`] before `now`.
/// Returns how many were removed. Files that vanish meanwhile are not an error.
pub fn clean_tmp(md: &Maildir, now: SystemTime) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(md.tmp_dir())? {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            continue;
        }
        let old = now
            .duration_since(meta.modified()?)
            .is_ok_and(|age| age > TMP_MAX_AGE);
        if old {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildir::{FolderMap, Layout};
    use crate::model::FolderName;

    #[test]
    fn rule_14_tmp_cleaning_removes_only_files_older_than_36_hours() {
        let dir = tempfile::tempdir().unwrap();
        let map = FolderMap::new(dir.path(), Layout::Verbatim, Some('/'));
        let md = Maildir::open(map.create(&FolderName("INBOX".into())).unwrap()).unwrap();
        let now = SystemTime::now();
        let old = std::fs::File::create(md.tmp_dir().join("old")).unwrap();
        old.set_modified(now - TMP_MAX_AGE - Duration::from_secs(60))
            .unwrap();
        let young = std::fs::File::create(md.tmp_dir().join("young")).unwrap();
        young
            .set_modified(now - TMP_MAX_AGE + Duration::from_secs(60))
            .unwrap();
        std::fs::create_dir(md.tmp_dir().join("dir")).unwrap();
        assert_eq!(clean_tmp(&md, now).unwrap(), 1);
        assert!(!md.tmp_dir().join("old").exists());
        assert!(md.tmp_dir().join("young").exists());
        assert!(md.tmp_dir().join("dir").exists());
    }
}
