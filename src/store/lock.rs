//! The account lock: a daemon and a one-shot `sync` on the same account exclude each
//! other. An exclusive lock on `<state_dir>/<account>.lock` (released by the kernel when
//! the holder exits, even on kill -9), with the holder's pid written inside for the message.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::model::AccountName;
use crate::store::lock_path;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "account `{account}` is locked by pid {pid} (a `syncmail daemon` or another `syncmail sync`)"
    )]
    Held { account: AccountName, pid: String },
    #[error("account `{account}`: lock file {path:?}: {source}")]
    Io {
        account: AccountName,
        path: PathBuf,
        source: io::Error,
    },
    #[error("account `{0}` cannot name a lock file")]
    BadAccountName(AccountName),
}

/// Held for as long as this value lives.
#[derive(Debug)]
pub struct AccountLock {
    file: File,
    path: PathBuf,
}

impl AccountLock {
    /// Take the account's lock without waiting, or say who holds it.
    pub fn acquire(state_dir: &Path, account: &AccountName) -> Result<AccountLock, LockError> {
        let path = lock_path(state_dir, account)
            .map_err(|_| LockError::BadAccountName(account.clone()))?;
        let io_err = |source| LockError::Io {
            account: account.clone(),
            path: path.clone(),
            source,
        };
        // Never truncated on open: the file may hold the current holder's pid.
        let mut file = super::files::private_file(&path).map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held {
                    account: account.clone(),
                    pid: if pid.is_empty() {
                        "(unknown)".into()
                    } else {
                        pid.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        file.set_len(0).map_err(io_err)?;
        file.seek(SeekFrom::Start(0)).map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(AccountLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AccountLock {
    fn drop(&mut self) {
        // Clear the pid so a stale number is never shown; the lock goes with the file.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let work = AccountName("work".into());
        let lock = AccountLock::acquire(dir.path(), &work).unwrap();
        let err = AccountLock::acquire(dir.path(), &work).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "account `work` is locked by pid {}",
                std::process::id()
            )),
            "{msg}"
        );
        // Another account is independent.
        let _other = AccountLock::acquire(dir.path(), &AccountName("home".into())).unwrap();
        drop(lock);
        let _again = AccountLock::acquire(dir.path(), &work).unwrap();
    }

    #[test]
    fn bad_account_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            AccountLock::acquire(dir.path(), &AccountName("../x".into())),
            Err(LockError::BadAccountName(_))
        ));
    }
}
