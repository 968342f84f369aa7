//! Rule 20, file modes: whatever the umask (000 or 077), what syncmail creates is private:
//! the state directory 0700, the state DBs, their -wal/-shm and the lock files 0600, every
//! Maildir directory (root, account, folders, cur/new/tmp; verbatim and Maildir++
//! layouts) 0700 and every file in them 0600.
//! One-shot IMAP sync and POP3 poll, then the daemon (read while it runs, when the WAL
//! and shared-memory files exist).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::message;
use crate::support::{Dovecot, stderr, stdout};

/// Run the real binary under `umask`, through a shell that sets it and execs.
fn syncmail_under(umask: &str, home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_syncmail"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(Stdio::null());
    cmd
}

/// `(path, mode)` of everything below `dir`, `dir` included, symlinks not followed.
fn modes(dir: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
    let meta = std::fs::symlink_metadata(dir).unwrap();
    out.push((dir.to_owned(), meta.permissions().mode() & 0o7777, true));
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // gone meanwhile (a WAL checkpointed away)
        };
        if meta.is_dir() {
            modes(&path, out);
        } else {
            out.push((path, meta.permissions().mode() & 0o7777, false));
        }
    }
}

/// Every directory is 0700 and every file 0600; returns the names of the files seen.
fn assert_private(root: &Path, umask: &str) -> Vec<String> {
    let mut all = Vec::new();
    modes(root, &mut all);
    let wrong: Vec<String> = all
        .iter()
        .filter(|(_, mode, dir)| *mode != if *dir { 0o700 } else { 0o600 })
        .map(|(p, mode, _)| format!("{} {mode:o}", p.display()))
        .collect();
    assert!(
        wrong.is_empty(),
        "under umask {umask}, not private:\n{}",
        wrong.join("\n")
    );
    all.iter()
        .filter(|(_, _, dir)| !dir)
        .map(|(p, _, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn check_umask(dovecot: &Dovecot, umask: &str) {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n{1}\n{2}layout = \"maildir++\"\n\n{3}keep_on_server = true\n",
            home.path().display(),
            dovecot.imap_account("imap", "alice", "implicit"),
            dovecot.imap_account("plusplus", "carol", "implicit"),
            dovecot.pop3_account("pop", "bob", "implicit"),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = config.to_str().unwrap();

    let out = syncmail_under(umask, home.path(), &["sync", "--config", config])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let state = home.path().join("state");
    let mail = home.path().join("Mail");
    assert_private(&state, umask);
    assert_private(&mail, umask);
    assert_eq!(
        crate::support::maildir::messages(&mail.join("imap/Archive/2024")).len(),
        1
    );
    assert_eq!(
        crate::support::maildir::messages(&mail.join("plusplus/.Archive.2024")).len(),
        1
    );
    assert_eq!(
        crate::support::maildir::messages(&mail.join("pop/INBOX")).len(),
        1
    );

    // The daemon: a local message to upload and flags to push make it write, and its
    // databases stay open, with their -wal and -shm, while it idles.
    let on_server = dovecot.list("alice", "INBOX").len();
    let local = mail.join("imap/INBOX");
    let uploaded = local.join(format!("cur/1700000000.local{umask}.host:2,S"));
    std::fs::write(&uploaded, message("local", "local@t", "body")).unwrap();
    std::fs::set_permissions(&uploaded, std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = home.path().join("daemon.log");
    let mut daemon = syncmail_under(umask, home.path(), &["daemon", "--config", config])
        .env("SYNCMAIL_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::fs::remove_file(&log).unwrap(); // still written through the open file
    let deadline = Instant::now() + Duration::from_secs(30);
    let names = loop {
        let mut files = Vec::new();
        modes(&state, &mut files);
        let names: Vec<String> = files
            .iter()
            .map(|(p, _, _)| p.display().to_string())
            .collect();
        let uploaded = dovecot.list("alice", "INBOX").len() == on_server + 1;
        if uploaded
            && names.iter().any(|n| n.ends_with("imap.sqlite3-wal"))
            && names.iter().any(|n| n.ends_with("imap.sqlite3-shm"))
        {
            break assert_private(&state, umask);
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not upload or has no WAL open: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_private(&mail, umask);
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    assert!(daemon.wait().unwrap().success());
    for expected in [
        "imap.sqlite3",
        "imap.sqlite3-wal",
        "imap.sqlite3-shm",
        "imap.lock",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
}

#[test]
fn rule_20_state_and_maildir_are_private_under_any_umask() {
    let dovecot = Dovecot::start_with_users(&["alice", "bob", "carol"]);
    for user in ["alice", "carol"] {
        dovecot.create_mailbox(user, "Archive/2024");
        dovecot.seed(user, "INBOX", &message("a", "a@t", "a"));
        dovecot.seed(user, "Archive/2024", &message("b", "b@t", "b"));
    }
    dovecot.seed("bob", "INBOX", &message("p", "p@t", "p"));
    for umask in ["000", "077"] {
        check_umask(&dovecot, umask);
    }
}
