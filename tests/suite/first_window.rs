//! A large folder's first pass lists and fetches its messages window by window, so what
//! it holds at once is a window's listing, never the folder's (memory flat in mailbox
//! size). Tested with windows of three messages (`SYNCMAIL_LIST_WINDOW`), so a folder
//! of ten crosses four.

use crate::support::flags::maildir_to_imap;
use crate::support::sync_env::{QUIET, State, SyncEnv};
use crate::support::{assert_crashed_at_a_fault_point, stderr, stdout};

const SMALL_WINDOWS: (&str, &str) = ("SYNCMAIL_LIST_WINDOW", "3");

/// Each side's Message-IDs appear once, and the Maildir's flags are the server's.
fn assert_mirrored(state: &State, when: &str) {
    let local: Vec<(String, String)> = state
        .1
        .iter()
        .map(|(id, f)| (id.clone(), maildir_to_imap(f)))
        .collect();
    assert_eq!(state.0, local, "{when}: the Maildir is not the server's");
    let mut ids: Vec<&String> = state.0.iter().map(|(id, _)| id).collect();
    ids.dedup();
    assert_eq!(ids.len(), state.0.len(), "{when}: a duplicate: {state:?}");
}

fn seeded(n: usize) -> SyncEnv {
    let env = SyncEnv::new("");
    for i in 0..n {
        env.seed("INBOX", &format!("m{i}"));
    }
    env
}

#[test]
fn a_first_sync_in_windows_fetches_every_message_once_with_its_flags() {
    let env = seeded(10);
    env.dovecot.add_flags("alice", "INBOX", 5, "\\Flagged");
    env.dovecot.add_flags("alice", "INBOX", 10, "\\Seen");
    // Three more windows after the first (3 + 3 + 3 + 1).
    let summary = env.sync_paused("window=1", 3, &[SMALL_WINDOWS], || {});
    assert!(summary.contains("fetched 10 "), "{summary}");
    let state = env.state();
    assert_eq!(state.0.len(), 10);
    assert_mirrored(&state, "after the first sync");
    // The folder is in sync: its watermarks moved, nothing is fetched again.
    let out = env.run("sync", &[], &[SMALL_WINDOWS]);
    assert!(stdout(&out).contains(QUIET), "{}", stdout(&out));
    // The log names each download once.
    let log = env.log(&[]);
    let rows = log
        .lines()
        .filter(|l| l.contains(": new (propagated)"))
        .count();
    assert_eq!(rows, 10, "{log}");
}

/// The phone changes the folder while its first pass is between windows: a message
/// already fetched is flagged and one expunged, one not listed yet is expunged, and new
/// mail arrives. The first pass fetches what it lists; the next pass (from the
/// HIGHESTMODSEQ of the first window) brings the rest, and nothing is fetched twice.
#[test]
fn changes_between_the_windows_of_a_first_sync_reach_the_maildir() {
    let env = seeded(10);
    let summary = env.sync_paused("window=2000", 1, &[SMALL_WINDOWS], || {
        env.dovecot.add_flags("alice", "INBOX", 1, "\\Flagged");
        env.dovecot.expunge("alice", "INBOX", 2);
        env.dovecot.expunge("alice", "INBOX", 8);
        env.dovecot.add_flags("alice", "INBOX", 6, "\\Answered");
        env.seed("INBOX", "late");
    });
    assert!(!summary.contains("fetched 0 "), "{summary}");
    env.sync_ok();
    let state = env.state();
    assert_eq!(state.0.len(), 9, "ten, two expunged, one new: {state:?}");
    assert_mirrored(&state, "after the next pass");
    env.assert_quiet();
}

/// Rule 1 for a windowed first sync: killed at every fault point in turn, the rerun
/// ends with every message once, as an uninterrupted run does.
#[test]
fn rule_01_a_first_sync_in_windows_killed_at_every_step_then_rerun_loses_nothing() {
    let mut crashes = 0;
    for n in 1.. {
        let env = seeded(7);
        let fault = format!("#{n}");
        let out = env.run("sync", &[], &[SMALL_WINDOWS, ("SYNCMAIL_FAULT", &fault)]);
        if out.status.code() == Some(0) {
            assert_mirrored(&env.state(), "a run with an unreached fault point");
            break;
        }
        assert_crashed_at_a_fault_point(&out, n);
        crashes += 1;
        let out = env.run("sync", &[], &[SMALL_WINDOWS]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "rerun after crash #{n}: {}",
            stderr(&out)
        );
        let state = env.state();
        assert_eq!(state.0.len(), 7, "after crash #{n}: {state:?}");
        assert_mirrored(&state, &format!("after crash #{n}"));
        let out = env.run("sync", &[], &[SMALL_WINDOWS]);
        assert!(
            stdout(&out).contains(QUIET),
            "the pass after recovery from crash #{n} was not quiet: {}",
            stdout(&out)
        );
    }
    assert!(
        crashes >= 9,
        "only {crashes} fault points: three windows cross more"
    );
}

/// `direction = "push"` never fetches: not the first window, not the rest.
#[test]
fn a_push_only_first_sync_fetches_no_window() {
    let env = SyncEnv::new("direction = \"push\"\n");
    env.dovecot.create_mailbox("alice", "Other");
    env.seed("Other", "o");
    for i in 0..7 {
        env.seed("INBOX", &format!("m{i}"));
    }
    let out = env.run("sync", &[], &[SMALL_WINDOWS]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("fetched 0 "), "{}", stdout(&out));
    assert!(env.state().1.is_empty(), "nothing in the Maildir");
}

/// A webmail user makes a folder and moves a whole folder's mail into it: every message
/// is a move (the first listing of the new folder is made whole when messages leave
/// another), none is fetched again.
#[test]
fn messages_moved_into_a_new_folder_beyond_its_first_window_are_moves() {
    let env = seeded(7);
    env.sync_ok();
    env.dovecot.create_mailbox("alice", "Big");
    env.dovecot.doveadm(
        &["move", "-u", "alice", "Big", "mailbox", "INBOX", "all"],
        None,
    );
    let out = env.run("sync", &[], &[SMALL_WINDOWS]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(
        summary.contains("fetched 0 ") && summary.contains("moved 7"),
        "{summary}"
    );
    assert!(env.state().1.is_empty(), "INBOX is empty");
    assert_eq!(
        crate::support::maildir::messages(&env.folder("Big")).len(),
        7
    );
    env.assert_quiet();
}
