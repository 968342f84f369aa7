//! A small tmpfs mounted for one test, to fill a disk on purpose; unmounted even on panic.
//! Mounting needs root: [`Tmpfs::mount_or_fail`] fails the test saying so, never skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` (e.g. `400k`) on `dir`, creating it; `None` if that fails.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }

    /// Mount, or fail the test: a full-disk test that cannot fill a disk proves nothing.
    pub fn mount_or_fail(dir: &Path, size: &str) -> Tmpfs {
        Tmpfs::mount(dir, size).unwrap_or_else(|| {
            panic!(
                "this full-disk test needs a small tmpfs and could not mount one on {}; run the suite as root (CI does)",
                dir.display()
            )
        })
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Give it room: `mount -o remount,size=...`, keeping what is on it.
    pub fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {} to {size}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
