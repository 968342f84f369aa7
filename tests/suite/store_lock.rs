//! The account lock across processes: a second process is refused with the holder's pid,
//! and the lock is free again once the holder is killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use syncmail::model::AccountName;
use syncmail::store::{AccountLock, LockError, StoreError, open_account};

use crate::support::test_in_child;

const CHILD_DIR_ENV: &str = "SYNCMAIL_TEST_LOCK_DIR";
const TEST_NAME: &str = "a_killed_holder_releases_the_lock_and_is_named_while_alive";

#[test]
fn a_killed_holder_releases_the_lock_and_is_named_while_alive() {
    let account = AccountName("work".into());
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        // Child: hold the account like a daemon would, then wait to be killed.
        let (_lock, _store) = open_account(std::path::Path::new(&dir), &account).unwrap();
        println!("LOCKED");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = test_in_child(module_path!(), TEST_NAME)
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the child even if an assertion below fails.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("LOCKED"))),
        "child never took the lock"
    );

    let err = open_account(dir.path(), &account).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StoreError::Locked(LockError::Held { .. })),
        "{msg}"
    );
    assert_eq!(
        msg,
        format!(
            "account `work` is locked by pid {} (a `syncmail daemon` or another `syncmail sync`)",
            child.0.id()
        )
    );

    child.0.kill().unwrap(); // SIGKILL: no destructor runs in the child.
    child.0.wait().unwrap();
    let _lock = AccountLock::acquire(dir.path(), &account).unwrap();
}
