//! The unified inbox end to end: two IMAP accounts (alice as `work`, bob as `home`) and a
//! POP3 account (carol as `old`) on a private Dovecot, merged into one Maildir by the real
//! binary. Every test ends by checking that no Message-ID appears twice anywhere.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::support::daemon::{Daemon, wait_until};
use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::sync_env::QUIET;
use crate::support::unified_env::UnifiedEnv as Env;
use crate::support::{stderr, stdout};

/// What a reconcile that changed nothing prints.
const UNIFIED_QUIET: &str = "unified: linked 0, flags to accounts 0 to unified 0, deleted 0 in accounts, removed 0 from unified";

fn ids(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|i| format!("<{i}@test>")).collect();
    v.sort();
    v
}

fn inode(dir: &Path, key: &str) -> u64 {
    std::fs::metadata(md::path_of(dir, key)).unwrap().ino()
}

/// Alice has a1 and a2, bob b1; one sync shows them all.
fn synced(pop3: bool) -> Env {
    let env = Env::new(pop3, "");
    env.seed("alice", "a1");
    env.seed("alice", "a2");
    env.seed("bob", "b1");
    if pop3 {
        env.seed("carol", "c1");
    }
    env.sync_ok();
    env
}

#[test]
fn messages_of_every_account_appear_once_as_hard_links_and_stay_put() {
    let env = synced(true);
    let u = env.unified();
    let state = env.unified_state();
    let got: Vec<String> = state.iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(got, ids(&["a1", "a2", "b1", "c1"]));
    for (account, id) in [
        ("work", "a1"),
        ("work", "a2"),
        ("home", "b1"),
        ("old", "c1"),
    ] {
        let inbox = env.inbox(account);
        let (uk, ak) = (env.key_of(&u, id), env.key_of(&inbox, id));
        assert_eq!(md::read(&u, &uk), md::read(&inbox, &ak), "{id}");
        assert_eq!(inode(&u, &uk), inode(&inbox, &ak), "{id} is a hard link");
        assert_ne!(uk, ak, "unified files get their own unique part");
    }
    let mode = std::fs::metadata(&u).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let db = env.home.path().join("state/unified.sqlite");
    assert_eq!(std::fs::metadata(&db).unwrap().mode() & 0o777, 0o600);

    let out = env.run(&["check-config"]);
    assert!(
        stdout(&out).contains("unified folder")
            && stdout(&out).contains("INBOX of work, home, old"),
        "{}",
        stdout(&out)
    );

    // A file saved into the unified folder by hand is left alone and named once.
    md::add(
        &u,
        "1700000000.M1P1.mine",
        "S",
        &message("mine", "mine@test", "body of mine"),
    );
    let names = md::messages(&u);
    let rows = env.mapping();
    assert_eq!(rows.len(), 4);
    for round in 0..2 {
        let out = env.run(&["sync"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(UNIFIED_QUIET), "round {round}: {text}");
        assert_eq!(text.matches(QUIET).count(), 2, "round {round}: {text}");
        let warned = stderr(&out).contains("1700000000.M1P1.mine");
        assert_eq!(warned, round == 0, "warned once: {}", stderr(&out));
        assert_eq!(md::messages(&u), names, "no new links, no renames");
        assert_eq!(env.mapping(), rows, "the mapping is kept as it was");
    }
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2"]));
    let status = stdout(&env.run(&["unified", "status"]));
    assert!(status.contains("4 entries"), "{status}");
    assert!(
        status.contains("1 from account `home` folder INBOX"),
        "{status}"
    );
    assert!(status.contains("last good reconcile"), "{status}");
    assert!(stdout(&env.run(&["status"])).contains("4 entries"));
    env.assert_no_duplicates();
}

#[test]
fn a_flag_set_in_unified_reaches_only_its_server_in_one_sync() {
    let env = synced(false);
    let u = env.unified();
    md::set_flags(&u, &env.key_of(&u, "a1"), "S");
    let text = env.sync_ok();
    assert!(text.contains("flags to accounts 1"), "{text}");
    assert_eq!(env.server_flags("alice", "a1"), "\\Seen");
    assert_eq!(env.server_flags("alice", "a2"), "");
    assert_eq!(env.server_flags("bob", "b1"), "");
    // The account copy carries it too, and a rerun is quiet.
    let inbox = env.inbox("work");
    assert_eq!(md::messages(&inbox)[&env.key_of(&inbox, "a1")], "S");
    let text = env.sync_ok();
    assert!(
        text.contains(UNIFIED_QUIET) && text.matches(QUIET).count() == 2,
        "{text}"
    );
    env.assert_no_duplicates();
}

#[test]
fn a_deletion_in_unified_expunges_only_on_its_server_in_one_sync() {
    // Bob keeps one message: the account's own guard holds back emptying a folder.
    let env = Env::new(false, "");
    env.seed("alice", "a1");
    env.seed("alice", "a2");
    env.seed("bob", "b1");
    env.seed("bob", "b2");
    env.sync_ok();
    let u = env.unified();
    md::delete(&u, &env.key_of(&u, "b1"));
    let text = env.sync_ok();
    assert!(text.contains("deleted 1 in accounts"), "{text}");
    assert_eq!(
        env.server_ids("bob"),
        ids(&["b2"]),
        "b1 expunged on bob's server"
    );
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2"]));
    assert_eq!(md::messages(&env.inbox("home")).len(), 1);
    let got: Vec<String> = env.unified_state().into_iter().map(|(i, _)| i).collect();
    assert_eq!(got, ids(&["a1", "a2", "b2"]));
    let text = env.sync_ok();
    assert!(text.contains(UNIFIED_QUIET), "{text}");
    env.assert_no_duplicates();
}

/// mutt's `edit-message` in the unified folder: a new file with the same Message-ID, the
/// old one removed. The edit replaces the message in its own account (and so on its
/// server), exactly as an edit in the account folder would; nothing is lost or doubled.
#[test]
fn an_edit_in_unified_replaces_the_message_on_its_own_server() {
    let env = Env::new(false, "");
    env.seed("alice", "a1");
    env.seed("alice", "a2");
    env.seed("alice", "a3");
    env.seed("bob", "b1");
    env.sync_ok();
    let u = env.unified();
    let old = env.key_of(&u, "a2");
    let edited = md::read(&u, &old)
        .strip_suffix(b"body of a2\r\n")
        .expect("the seeded body")
        .iter()
        .chain(b"body of a2, edited\r\n")
        .copied()
        .collect::<Vec<u8>>();
    md::add(&u, "1800000000.edit.host", "S", &edited);
    md::delete(&u, &old);

    let text = env.sync_ok();
    assert!(text.contains("deleted 1 in accounts"), "{text}");
    // On alice's server: a2 once, with the edited body and the flag the edit carried.
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2", "a3"]));
    assert_eq!(env.server_flags("alice", "a2"), "\\Seen");
    let bodies = env
        .dovecot
        .doveadm(&["fetch", "-u", "alice", "text", "mailbox", "INBOX"], None);
    let bodies = String::from_utf8_lossy(&bodies.stdout);
    assert!(bodies.contains("body of a2, edited"), "{bodies}");
    assert!(
        !bodies.contains("body of a2\r") && !bodies.contains("body of a2\n"),
        "the old version is gone: {bodies}"
    );
    assert_eq!(env.server_ids("bob"), ids(&["b1"]));
    // The edited file is the unified entry now: same inode as the account's copy.
    let account_key = env.key_of(&env.inbox("work"), "a2, edited");
    assert_eq!(
        inode(&u, "1800000000.edit.host"),
        inode(&env.inbox("work"), &account_key)
    );
    let text = env.sync_ok();
    assert!(text.contains(UNIFIED_QUIET), "{text}");
    assert!(text.contains(QUIET), "{text}");
    env.assert_no_duplicates();
}

#[test]
fn server_flag_changes_and_expunges_show_in_unified_after_a_sync() {
    let env = synced(false);
    env.dovecot
        .add_flags("alice", "INBOX", 1, "\\Flagged \\Seen");
    env.dovecot.add_flags("bob", "INBOX", 1, "\\Answered");
    let text = env.sync_ok();
    assert!(text.contains("to unified 2,"), "{text}");
    let state: BTreeMap<String, String> = env.unified_state().into_iter().collect();
    assert_eq!(state["<a1@test>"], "FS");
    assert_eq!(state["<b1@test>"], "R");
    assert_eq!(state["<a2@test>"], "");
    env.dovecot.remove_flags("alice", "INBOX", 1, "\\Flagged");
    env.dovecot.expunge("alice", "INBOX", 2);
    let text = env.sync_ok();
    assert!(text.contains("removed 1 from unified"), "{text}");
    let state: BTreeMap<String, String> = env.unified_state().into_iter().collect();
    assert_eq!(state.len(), 2, "{state:?}");
    assert_eq!(state["<a1@test>"], "S");
    assert!(!state.contains_key("<a2@test>"));
    env.assert_no_duplicates();
}

#[test]
fn rule_7_a_missing_unified_folder_deletes_nothing_and_rebuild_restores_it() {
    let env = synced(true);
    let before = env.unified_state();
    std::fs::remove_dir_all(env.unified()).unwrap();
    for _ in 0..2 {
        let out = env.run(&["sync"]);
        assert_ne!(out.status.code(), Some(0), "a halt is not a success");
        assert!(
            stderr(&out).contains("unified folder is missing")
                && stderr(&out).contains("syncmail unified rebuild"),
            "{}",
            stderr(&out)
        );
        assert!(!env.unified().exists(), "not silently recreated empty");
    }
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2"]));
    assert_eq!(env.server_ids("bob"), ids(&["b1"]));
    assert_eq!(md::messages(&env.inbox("old")).len(), 1);
    let status = stdout(&env.run(&["unified", "status"]));
    assert!(
        status.contains("the folder is missing") && status.contains("halted:"),
        "{status}"
    );

    let out = env.run(&["unified", "rebuild"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.unified_state(), before);
    let text = env.sync_ok();
    assert!(text.contains(UNIFIED_QUIET), "{text}");
    env.assert_no_duplicates();
}

#[test]
fn unified_rebuild_recreates_the_same_view_and_deletes_nothing_in_accounts() {
    let env = synced(false);
    let u = env.unified();
    md::set_flags(&u, &env.key_of(&u, "a2"), "F");
    env.sync_ok();
    let before = env.unified_state();
    let keys_before = md::messages(&u);
    let out = env.run(&["unified", "rebuild"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("linked 3"), "{}", stdout(&out));
    assert_eq!(env.unified_state(), before);
    assert_ne!(md::messages(&u), keys_before, "entries made afresh");
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2"]));
    assert_eq!(env.server_flags("alice", "a2"), "\\Flagged");
    let text = env.sync_ok();
    assert!(
        text.contains(UNIFIED_QUIET) && text.matches(QUIET).count() == 2,
        "{text}"
    );
    env.assert_no_duplicates();
}

// ---- the daemon ---------------------------------------------------------------------

#[test]
fn daemon_shows_new_mail_in_unified_and_carries_a_unified_flag_to_the_server() {
    let env = Env::new(
        false,
        "timeout = \"4s\"\npoll_interval = \"1h\"\nidle_refresh = \"3s\"\n",
    );
    env.seed("alice", "a1");
    env.seed("bob", "b1");
    let daemon = Daemon::launch(env.home.path(), &env.config, &[]);
    let u = env.unified();
    let count = |dir: &Path| {
        if dir.join("cur").is_dir() {
            md::messages(dir).len()
        } else {
            0
        }
    };
    wait_until(&daemon, Duration::from_secs(20), "the first view", || {
        count(&u) == 2
    });

    // Server -> account (IDLE) -> unified.
    env.seed("bob", "b2");
    wait_until(
        &daemon,
        Duration::from_secs(10),
        "b2 in the unified folder",
        || count(&u) == 3,
    );

    // Unified -> account (reconcile) -> server (the account's watcher).
    md::set_flags(&u, &env.key_of(&u, "a1"), "FS");
    wait_until(
        &daemon,
        Duration::from_secs(10),
        "a1's flags on alice's server",
        || env.server_flags("alice", "a1") == "\\Flagged \\Seen",
    );
    assert_eq!(env.server_flags("bob", "b2"), "");
    let log = daemon.log();
    assert!(log.contains("unified: linked as"), "{log}");
    daemon.stop();
    let got: Vec<String> = env.unified_state().into_iter().map(|(i, _)| i).collect();
    assert_eq!(got, ids(&["a1", "b1", "b2"]));
    let text = env.sync_ok();
    assert!(text.contains(UNIFIED_QUIET), "{text}");
    env.assert_no_duplicates();
}

#[test]
fn rule_7_deleting_most_of_an_account_in_unified_stops_and_asks() {
    let env = Env::new(false, "");
    let n = 12;
    for i in 0..n {
        env.seed("alice", &format!("m{i}"));
    }
    env.seed("bob", "b1");
    env.seed("bob", "b2");
    env.sync_ok();
    let u = env.unified();
    for i in 1..n {
        md::delete(&u, &env.key_of(&u, &format!("m{i}")));
    }
    let out = env.run(&["sync"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("held back deleting 11 of 12")
            && err.contains("syncmail unified reconcile --confirm-delete"),
        "{err}"
    );
    assert_eq!(
        env.server_ids("alice").len(),
        n,
        "nothing deleted on the server"
    );
    assert_eq!(md::messages(&env.inbox("work")).len(), n);
    // Bob's folder is not affected by work's halt.
    md::delete(&u, &env.key_of(&u, "b1"));
    let out = env.run(&["sync"]);
    assert!(
        stdout(&out).contains("deleted 1 in accounts"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.server_ids("bob"), ids(&["b2"]));
    let status = stdout(&env.run(&["unified", "status"]));
    assert!(status.contains("halted:"), "{status}");

    // Confirmed: the account copies go; the account's own guard then asks for the server.
    let out = env.run(&["unified", "reconcile", "--confirm-delete"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("deleted 11 in accounts"),
        "{}",
        stdout(&out)
    );
    let out = env.run(&["sync", "--confirm-delete"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.server_ids("alice"), ids(&["m0"]));
    let status = stdout(&env.run(&["unified", "status"]));
    assert!(!status.contains("halted:"), "{status}");
    env.assert_no_duplicates();
}
