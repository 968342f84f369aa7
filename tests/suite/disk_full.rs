//! A full disk under `syncmail sync` (IMAP, and a POP3 poll that deletes what it
//! fetched): the pass stops with a message naming the account, the folder and the cause,
//! leaves no partial message and a clean `tmp/`, loses nothing on the server, and once
//! there is room a rerun finishes the job exactly once.

use std::path::Path;

use crate::support::daemon::seed_many;
use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::sync_env::SyncEnv;
use crate::support::tmpfs::Tmpfs;
use crate::support::{stderr, stdout};

/// The bytes the server holds for the message with this Subject (see `seed_many`).
fn expected(subject: &str) -> Vec<u8> {
    let id = subject;
    let body = if id == "f-first" {
        format!("body of {id}")
    } else {
        format!("body of {id} {}", "x".repeat(2000))
    };
    message(id, &format!("{id}@test"), &body)
}

/// Every message file in `cur/` and `new/` is whole: byte for byte what the server has.
/// Returns their Subjects.
fn assert_whole(folder: &Path) -> Vec<String> {
    let mut subjects = Vec::new();
    for key in md::messages(folder).keys() {
        let bytes = md::read(folder, key);
        let text = String::from_utf8_lossy(&bytes);
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_else(|| panic!("{key}: no Subject, a partial file?\n{text}"))
            .trim()
            .to_owned();
        assert!(
            bytes == expected(&subject),
            "{key} is not the whole message {subject} ({} bytes)",
            bytes.len()
        );
        subjects.push(subject);
    }
    subjects
}

/// `seed_many`'s messages and the one it seeds first.
const ALL: usize = 1201;

fn tmp_is_empty(folder: &Path) -> bool {
    std::fs::read_dir(folder.join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

#[test]
fn disk_full_sync_fails_cleanly_and_resumes() {
    let env = SyncEnv::new("");
    let small = env.home.path().join("small");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{text}maildir = \"{}\"\n", small.display()),
    )
    .unwrap();
    // 1201 messages of about 2.2 KiB, a 4 KiB page each on tmpfs: about 4.7 MiB for a
    // disk of 3. The first batch of 500 fits, so the disk fills with work committed.
    let disk = Tmpfs::mount_or_fail(&small, "3m");
    seed_many(&env, "f", 1200);
    let inbox = small.join("INBOX");
    let server_before = env.server("INBOX");
    assert_eq!(server_before.len(), ALL);

    let out = env.sync(&[]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a full disk needs attention: exit 1\n{}\n{err}",
        stdout(&out)
    );
    let line = err
        .lines()
        .find(|l| l.to_lowercase().contains("no space left"))
        .unwrap_or_else(|| panic!("no line says the disk is full:\n{err}"));
    assert!(
        line.contains("account `t`") && line.contains("INBOX"),
        "the message names the account and the folder: {line}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let partial = assert_whole(&inbox);
    assert!(
        !partial.is_empty() && partial.len() < ALL,
        "the disk was meant to fill after a committed batch: {}",
        partial.len()
    );
    assert!(tmp_is_empty(&inbox), "tmp/ keeps no partial download");
    // The summary counts what was fetched and committed before the disk filled.
    assert!(
        stdout(&out).contains(&format!("fetched {}", partial.len())),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        env.server("INBOX"),
        server_before,
        "the server is untouched"
    );
    // The state says what happened, for `syncmail status`, the account line included.
    let status = stdout(&env.run("status", &[], &[]));
    assert!(status.contains("1 folder FAILED"), "{status}");
    assert!(
        status.lines().any(|l| l.contains("folder INBOX")
            && l.contains("FAILED")
            && l.contains("No space left")),
        "{status}"
    );

    disk.grow("64m");
    let summary = env.sync_ok();
    assert!(
        summary.contains(&format!("fetched {}", ALL - partial.len())),
        "the rerun fetches only what is missing: {summary}"
    );
    let mut all = assert_whole(&inbox);
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a message twice");
    assert_eq!(all.len(), ALL);
    assert!(tmp_is_empty(&inbox));
    assert_eq!(env.server("INBOX"), server_before, "nothing went back up");
    let status = stdout(&env.run("status", &[], &[]));
    assert!(
        !status.contains("FAILED") && !status.contains("interrupted"),
        "the rerun resolved everything: {status}"
    );
    env.assert_quiet();
    eprintln!("the disk filled at {} of {ALL}: {line}", partial.len());
}

#[test]
fn disk_full_pop3_poll_loses_nothing_and_resumes() {
    let env = SyncEnv::new("");
    let small = env.home.path().join("small");
    let disk = Tmpfs::mount_or_fail(&small, "3m");
    seed_many(&env, "f", 1200);
    // Only a POP3 account that deletes what it fetched: a DELE of a message that never
    // reached the disk would lose it for good.
    std::fs::write(
        &env.config,
        format!(
            "[general]\nmaildir = \"{}\"\nstate_dir = \"{}/state\"\n\n{}keep_on_server = false\n",
            small.display(),
            env.home.path().display(),
            env.dovecot.pop3_account("p", "alice", "implicit"),
        ),
    )
    .unwrap();
    let inbox = small.join("p/INBOX");
    let ids = |rows: Vec<(String, String)>| -> Vec<String> {
        rows.into_iter().map(|(id, _)| id).collect()
    };
    let all = ids(env.dovecot.state("alice", "INBOX"));
    assert_eq!(all.len(), ALL);

    let out = env.sync(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{err}", stdout(&out));
    let line = err
        .lines()
        .find(|l| l.to_lowercase().contains("no space left"))
        .unwrap_or_else(|| panic!("no line says the disk is full:\n{err}"));
    assert!(
        line.contains("`p`"),
        "the message names the account: {line}"
    );

    let local = assert_whole(&inbox);
    assert!(!local.is_empty() && local.len() < ALL, "{}", local.len());
    assert!(tmp_is_empty(&inbox), "tmp/ keeps no partial download");
    // Every message is on the disk or still on the server: none deleted unsaved.
    let mut held: Vec<String> = ids(env.dovecot.state("alice", "INBOX"));
    held.extend(local.iter().map(|s| format!("<{s}@test>")));
    held.sort();
    held.dedup();
    assert_eq!(
        held, all,
        "a message was deleted on the server but not saved"
    );

    disk.grow("64m");
    let summary = env.sync_ok();
    let mut got = assert_whole(&inbox);
    got.sort();
    let count = got.len();
    got.dedup();
    assert_eq!((count, got.len()), (ALL, ALL), "{summary}");
    assert!(tmp_is_empty(&inbox));
    assert!(
        env.dovecot.state("alice", "INBOX").is_empty(),
        "delivered messages are deleted from the server: {summary}"
    );
    let third = env.sync_ok();
    assert_eq!(md::messages(&inbox).len(), ALL, "{third}");
    eprintln!("the disk filled at {} of {ALL}: {line}", local.len());
}
