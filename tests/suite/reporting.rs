//! What syncmail tells the user, against a real Dovecot: progress lines labelled with
//! what they count, a failed folder named in `status` even when it has no row of its
//! own, and conflict log lines that say which message, as one sentence.

use crate::support::maildir as md;
use crate::support::sync_env::SyncEnv;
use crate::support::{stderr, stdout};

#[test]
fn progress_lines_label_the_accounts_running_totals_with_the_account() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "Archive");
    for i in 0..2 {
        env.seed("INBOX", &format!("in{i}"));
    }
    for i in 0..3 {
        env.seed("Archive", &format!("ar{i}"));
    }
    let out = env.sync(&[]);
    let err = stderr(&out);
    let progress: Vec<&str> = err.lines().filter(|l| l.contains(" fetched (")).collect();
    assert!(!progress.is_empty(), "no progress lines:\n{err}");
    for line in &progress {
        // The totals are the account's: never printed as if they were one folder's.
        assert!(
            line.contains("t: ") && line.contains("so far; now in "),
            "{line}"
        );
        assert!(
            !line.contains("INBOX: ") && !line.contains("Archive: "),
            "{line}"
        );
    }
    assert!(stdout(&out).contains("fetched 5 "), "{}", stdout(&out));
}

#[test]
fn rule_24_a_folder_that_cannot_be_mapped_is_named_in_status() {
    let env = SyncEnv::new("");
    // A server folder called `tmp` would collide with the Maildir's own tmp/, so it is
    // refused (rule 17); the other folders sync.
    env.dovecot.create_mailbox("alice", "tmp");
    env.seed("tmp", "refused");
    env.seed("INBOX", "fine");
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("tmp"), "{}", stderr(&out));
    assert_eq!(md::messages(&env.inbox()).len(), 1, "INBOX still synced");
    let status = stdout(&env.run("status", &[], &[]));
    assert!(status.contains("1 folder FAILED (below)"), "{status}");
    let line = status
        .lines()
        .find(|l| l.contains("folder tmp"))
        .unwrap_or_else(|| panic!("the failed folder is not listed:\n{status}"));
    assert!(line.contains("FAILED"), "{line}");
}

#[test]
fn rule_11_a_conflict_line_names_its_message_as_one_sentence() {
    let env = SyncEnv::new("");
    env.seed("INBOX", "keep-me");
    env.sync_ok();
    let inbox = env.inbox();
    let key = env.key_of("INBOX", "keep-me");
    md::delete(&inbox, &key);
    env.dovecot.add_flags("alice", "INBOX", 1, "\\Flagged");
    env.sync_ok();
    let log = env.log(&["--conflicts"]);
    let line = log
        .lines()
        .find(|l| l.contains("conflict"))
        .unwrap_or_else(|| panic!("no conflict:\n{log}"));
    assert!(
        line.contains(" t INBOX: conflict over UID 1, file "),
        "{line}"
    );
    assert!(line.contains("Message-ID <keep-me"), "{line}");
    assert!(
        line.ends_with("deleted on maildir, changed on server (flags +F); kept and copied back"),
        "{line}"
    );
}

#[test]
fn rule_07_a_missing_maildir_folder_says_how_to_restore_it_or_confirm_its_deletion() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "Old");
    env.seed("Old", "old1");
    env.seed("Old", "old2");
    env.sync_ok();
    let old = env.folder("Old");
    std::fs::remove_dir_all(&old).unwrap();

    // Nothing deleted, and the message says what to do.
    let out = env.sync(&[]);
    let err = stderr(&out);
    assert!(
        err.contains("is missing while 2 messages are paired"),
        "{err}"
    );
    assert!(
        err.contains("syncmail sync t --folder \"Old\" --restore"),
        "{err}"
    );
    assert!(err.contains("--confirm-delete"), "{err}");
    assert_eq!(env.dovecot.list("alice", "Old").len(), 2);

    // Bring it back: fetched again, nothing deleted anywhere, then quiet.
    let out = env.sync(&["--folder", "Old", "--restore"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("fetched 2 "), "{}", stdout(&out));
    assert_eq!(md::messages(&old).len(), 2);
    assert_eq!(env.dovecot.list("alice", "Old").len(), 2);
    env.assert_quiet();

    // Deleted on purpose: its messages go from the server too.
    std::fs::remove_dir_all(&old).unwrap();
    let out = env.sync(&["--folder", "Old", "--confirm-delete"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("deleted 2 on server"),
        "{}",
        stdout(&out)
    );
    assert!(env.dovecot.list("alice", "Old").is_empty());
    assert_eq!(env.dovecot.list("alice", "INBOX").len(), 0);
    env.assert_quiet();
}
