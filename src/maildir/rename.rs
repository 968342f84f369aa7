//! Renaming without ever replacing: the one way a message file (or a folder) gets a new
//! name. `rename(2)` silently replaces an existing target, and the only way a target
//! exists is something we must not destroy (a duplicate unique part, another tool's
//! file, a folder the user made). Where the filesystem can, the rename itself refuses
//! (`renameat2(RENAME_NOREPLACE)`: tmpfs, ext4, XFS, btrfs, F2FS, overlayfs); elsewhere
//! the target is checked first, and the window between check and rename is only as wide
//! as a rename.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const ATOMIC: u8 = 1;
const CHECKED: u8 = 2;

/// What one folder's filesystem was found to do with `RENAME_NOREPLACE`: asked of
/// `statfs` at the first rename, and dropped at the first sign that it lacks the flag,
/// so such a folder pays one failed call, not one per file.
#[derive(Debug, Default)]
pub struct NoReplace(AtomicU8);

impl Clone for NoReplace {
    fn clone(&self) -> NoReplace {
        NoReplace(AtomicU8::new(self.0.load(Ordering::Relaxed)))
    }
}

impl NoReplace {
    /// Rename `from` to `to` in one step that fails with `AlreadyExists` rather than
    /// replace `to`. `Ok(false)`: this filesystem cannot, nothing was done.
    pub fn try_rename(&self, from: &Path, to: &Path) -> io::Result<bool> {
        let mut state = self.0.load(Ordering::Relaxed);
        if state == UNKNOWN {
            state = match to.parent().is_some_and(refuses_to_replace) {
                true => ATOMIC,
                false => CHECKED,
            };
            self.0.store(state, Ordering::Relaxed);
        }
        if state == CHECKED {
            return Ok(false);
        }
        match rename_noreplace(from, to) {
            Ok(()) => Ok(true),
            // Not on this filesystem (NFS, ZFS, most FUSE mounts, 9p, ecryptfs:
            // EINVAL), kernel (before 3.15: ENOSYS) or sandbox (EPERM, ENOSYS).
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM)
                ) =>
            {
                self.0.store(CHECKED, Ordering::Relaxed);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Rename `from` to `to`, or fail with `AlreadyExists`: in one step where the
    /// filesystem can, else after checking that `to` is free.
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.try_rename(from, to)? {
            return Ok(());
        }
        match std::fs::symlink_metadata(to) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the target exists",
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::rename(from, to),
            Err(e) => Err(e),
        }
    }
}

/// Whether a directory's filesystem refuses to replace an existing name on a
/// `RENAME_NOREPLACE` rename itself. Not SMB: the kernel's client accepts the flag but
/// only looks the name up before an SMB2 rename that may replace it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn refuses_to_replace(dir: &Path) -> bool {
    const CIFS_MAGIC_NUMBER: u64 = 0xff53_4d42;
    const SMB2_MAGIC_NUMBER: u64 = 0xfe53_4d42;
    const SMB_SUPER_MAGIC: u64 = 0x517b;
    rustix::fs::statfs(dir).is_ok_and(|fs| {
        !matches!(
            fs.f_type as u64,
            CIFS_MAGIC_NUMBER | SMB2_MAGIC_NUMBER | SMB_SUPER_MAGIC
        )
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn refuses_to_replace(_dir: &Path) -> bool {
    false
}

/// `renameat2(RENAME_NOREPLACE)`: EEXIST rather than replace `to`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(test)]
    {
        hooks::TRIED.with(|n| n.set(n.get() + 1));
        if hooks::UNSUPPORTED.with(std::cell::Cell::get) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
    }
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

/// Never reached: [`refuses_to_replace`] is false here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn rename_noreplace(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

#[cfg(test)]
pub mod hooks {
    use std::cell::Cell;

    thread_local! {
        /// Makes this thread's `renameat2(RENAME_NOREPLACE)` fail as on a filesystem
        /// without it (EINVAL).
        pub static UNSUPPORTED: Cell<bool> = const { Cell::new(false) };
        /// This thread's `renameat2(RENAME_NOREPLACE)` calls.
        pub static TRIED: Cell<usize> = const { Cell::new(0) };
    }

    /// Run `f` on a filesystem without `RENAME_NOREPLACE`, or with it; returns what `f`
    /// returned and how many times a rename with the flag was tried.
    pub fn with_renames<T>(supported: bool, f: impl FnOnce() -> T) -> (T, usize) {
        UNSUPPORTED.with(|u| u.set(!supported));
        TRIED.with(|n| n.set(0));
        let out = f();
        UNSUPPORTED.with(|u| u.set(false));
        (out, TRIED.with(Cell::get))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_03_a_rename_never_replaces_with_or_without_the_flag() {
        for supported in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (a, b, c) = (
                dir.path().join("a"),
                dir.path().join("b"),
                dir.path().join("c"),
            );
            std::fs::write(&a, b"a").unwrap();
            std::fs::write(&b, b"b").unwrap();
            let nr = NoReplace::default();
            let ((refused, moved), tried) =
                hooks::with_renames(supported, || (nr.rename(&a, &b), nr.rename(&a, &c)));
            let err = refused.unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::AlreadyExists,
                "{supported}: {err}"
            );
            assert_eq!(std::fs::read(&b).unwrap(), b"b");
            moved.unwrap();
            assert_eq!(std::fs::read(&c).unwrap(), b"a");
            assert!(!a.exists());
            // Without the flag, the first rename finds out and the second does not ask.
            assert_eq!(tried, if supported { 2 } else { 1 }, "{supported}");
        }
    }

    #[test]
    fn a_vanished_source_is_not_found_either_way() {
        for supported in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let nr = NoReplace::default();
            let (out, _) = hooks::with_renames(supported, || {
                nr.rename(&dir.path().join("gone"), &dir.path().join("to"))
            });
            assert_eq!(out.unwrap_err().kind(), io::ErrorKind::NotFound);
        }
    }
}
