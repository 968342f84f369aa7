//! `syncmail sync` end to end against a real Dovecot, one scenario each; every scenario
//! ends with a rerun that must do nothing.

use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::sync_env::SyncEnv as Env;
use crate::support::{stderr, stdout};

/// The only key in a folder.
fn only_key(folder: &std::path::Path) -> String {
    let all = md::messages(folder);
    assert_eq!(all.len(), 1, "{all:?}");
    all.into_keys().next().unwrap()
}

#[test]
fn initial_pull_of_nested_and_non_ascii_folders() {
    let env = Env::new("");
    env.dovecot.create_mailbox("alice", "Archive/2024");
    env.dovecot.create_mailbox("alice", "Entwürfe");
    env.seed("INBOX", "a");
    env.seed("INBOX", "b");
    env.seed("Archive/2024", "c");
    env.seed("Entwürfe", "d");
    env.dovecot
        .add_flags("alice", "INBOX", 2, "\\Seen \\Flagged");
    let summary = env.sync_ok();
    assert!(summary.contains("fetched 4"), "{summary}");
    let inbox = md::messages(&env.folder("INBOX"));
    assert_eq!(inbox.len(), 2);
    assert_eq!(
        inbox.values().filter(|f| f.as_str() == "FS").count(),
        1,
        "{inbox:?}"
    );
    assert_eq!(md::messages(&env.folder("Archive/2024")).len(), 1);
    let key = only_key(&env.folder("Entwürfe"));
    assert_eq!(
        md::read(&env.folder("Entwürfe"), &key),
        message("d", "d@test", "body of d")
    );
    // Rule 12: syncing marked nothing \Seen.
    assert!(!env.server("INBOX")[0].1.contains("\\Seen"));
    env.assert_quiet();
}

#[test]
fn local_new_message_is_appended_with_its_flags() {
    let env = Env::new("");
    env.sync_ok();
    let body = message("draft", "draft@test", "written locally");
    md::add(&env.folder("INBOX"), "1700000000.local1.host", "DS", &body);
    let summary = env.sync_ok();
    assert!(summary.contains("appended 1"), "{summary}");
    let server = env.server("INBOX");
    assert_eq!(server.len(), 1);
    assert!(
        server[0].1.contains("\\Draft") && server[0].1.contains("\\Seen"),
        "{server:?}"
    );
    env.assert_quiet();
}

#[test]
fn rule_10_flag_merge_base_r_local_plus_s_server_plus_f_minus_r() {
    let env = Env::new("");
    env.seed("INBOX", "m");
    env.dovecot.add_flags("alice", "INBOX", 1, "\\Answered");
    env.sync_ok();
    let inbox = env.folder("INBOX");
    let key = only_key(&inbox);
    assert_eq!(md::messages(&inbox)[&key], "R");
    md::set_flags(&inbox, &key, "RS");
    env.dovecot.add_flags("alice", "INBOX", 1, "\\Flagged");
    env.dovecot.remove_flags("alice", "INBOX", 1, "\\Answered");
    env.sync_ok();
    assert_eq!(md::messages(&inbox)[&key], "FS");
    let server = &env.server("INBOX")[0].1;
    assert!(
        server.contains("\\Seen") && server.contains("\\Flagged") && !server.contains("\\Answered"),
        "{server}"
    );
    env.assert_quiet();
}

#[test]
fn rule_11_local_delete_vs_server_flag_change() {
    let env = Env::new("");
    env.seed("INBOX", "keep");
    env.seed("INBOX", "gone");
    env.seed("INBOX", "untouched");
    env.sync_ok();
    let inbox = env.folder("INBOX");
    let (k1, k2) = (env.key_of("INBOX", "keep"), env.key_of("INBOX", "gone"));
    // Two deleted locally; meanwhile the server flags one and marks the other read.
    md::delete(&inbox, &k1);
    md::delete(&inbox, &k2);
    env.dovecot.add_flags("alice", "INBOX", 1, "\\Flagged");
    env.dovecot.add_flags("alice", "INBOX", 2, "\\Seen");
    env.sync_ok();
    // Default policy: the flagged one is kept and restored locally; the other is deleted.
    let server = env.server("INBOX");
    assert_eq!(
        server.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
        [1, 3],
        "{server:?}"
    );
    assert!(server[0].1.contains("\\Flagged"));
    let local = md::messages(&inbox);
    assert_eq!(local.len(), 2, "the flagged message is back: {local:?}");
    assert_eq!(local.values().filter(|f| f.contains('F')).count(), 1);
    let log = env.log(&["--conflicts"]);
    assert_eq!(
        log.lines().filter(|l| l.contains("conflict")).count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("kept and copied back") && log.contains("deletion wins"),
        "{log}"
    );
    env.assert_quiet();
}

#[test]
fn rule_11_server_expunge_vs_local_flag_change() {
    let env = Env::new("");
    env.seed("INBOX", "x");
    env.sync_ok();
    let inbox = env.folder("INBOX");
    let key = only_key(&inbox);
    md::set_flags(&inbox, &key, "F");
    env.dovecot.expunge("alice", "INBOX", 1);
    env.sync_ok();
    // Flagged locally: kept and copied back to the server.
    assert_eq!(md::messages(&inbox).len(), 1);
    let server = env.server("INBOX");
    assert_eq!(server.len(), 1, "{server:?}");
    assert!(server[0].1.contains("\\Flagged"));
    assert!(env.log(&["--conflicts"]).contains("kept and copied back"));
    env.assert_quiet();
}

#[test]
fn server_expunge_propagates_and_local_delete_reaches_server() {
    let env = Env::new("");
    for id in ["a", "b", "c"] {
        env.seed("INBOX", id);
    }
    env.sync_ok();
    env.dovecot.expunge("alice", "INBOX", 1);
    let summary = env.sync_ok();
    assert!(
        summary.contains("deleted 0 on server 1 locally"),
        "{summary}"
    );
    assert_eq!(md::messages(&env.folder("INBOX")).len(), 2);
    let key = md::messages(&env.folder("INBOX"))
        .into_keys()
        .next()
        .unwrap();
    md::delete(&env.folder("INBOX"), &key);
    let summary = env.sync_ok();
    assert!(
        summary.contains("deleted 1 on server 0 locally"),
        "{summary}"
    );
    assert_eq!(env.server("INBOX").len(), 1);
    env.assert_quiet();
}

#[test]
fn folders_created_on_either_side() {
    let env = Env::new("");
    env.sync_ok();
    env.dovecot.create_mailbox("alice", "Projects/Alpha");
    env.seed("Projects/Alpha", "p");
    md::add(
        &env.folder("Local Only"),
        "1700000000.l.host",
        "S",
        &message("l", "l@test", "local"),
    );
    env.sync_ok();
    assert_eq!(md::messages(&env.folder("Projects/Alpha")).len(), 1);
    assert_eq!(
        env.server("Local Only").len(),
        1,
        "the local folder and its message reached the server"
    );
    env.assert_quiet();
}

#[test]
fn rule_13_uidvalidity_change_with_same_messages_repairs() {
    let env = Env::new("");
    for id in ["a", "b"] {
        env.seed("INBOX", id);
    }
    env.sync_ok();
    let before = md::messages(&env.folder("INBOX"));
    env.dovecot.set_uidvalidity("alice", "INBOX", 12345);
    let summary = env.sync_ok();
    assert!(
        summary.contains("fetched 0") && summary.contains("deleted 0 on server 0 locally"),
        "{summary}"
    );
    assert_eq!(
        md::messages(&env.folder("INBOX")),
        before,
        "no re-download, no deletion"
    );
    assert_eq!(env.server("INBOX").len(), 2);
    env.assert_quiet();
}

#[test]
fn rule_13_uidvalidity_change_with_emptied_folder_halts() {
    let env = Env::new("");
    for id in ["a", "b"] {
        env.seed("INBOX", id);
    }
    env.sync_ok();
    let before = md::messages(&env.folder("INBOX"));
    env.dovecot.expunge("alice", "INBOX", 1);
    env.dovecot.expunge("alice", "INBOX", 2);
    env.dovecot.set_uidvalidity("alice", "INBOX", 999);
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(1), "a halted folder is not success");
    assert!(stderr(&out).contains("UIDVALIDITY"), "{}", stderr(&out));
    assert_eq!(
        md::messages(&env.folder("INBOX")),
        before,
        "local mail untouched"
    );
    // It stays halted, saying why, until a human acts.
    let again = env.sync(&[]);
    assert!(stderr(&again).contains("halted"), "{}", stderr(&again));
    assert_eq!(md::messages(&env.folder("INBOX")), before);
}

#[test]
fn rule_13_a_halted_folder_resumes_with_the_command_it_prints() {
    // Three messages; while the server renumbers the folder, the mail client deletes one
    // and another client expunges another: one of three pairs cannot be confirmed (its
    // file is here, its server message gone), so the folder halts, printing the command
    // that accepts the re-pairing. That command keeps
    // the confirmed pairs, carries the client's deletion to the server, keeps the
    // unconfirmed message in the Maildir, and the folder syncs normally afterwards.
    let env = Env::new("");
    for id in ["a", "b", "c"] {
        env.seed("INBOX", id);
    }
    env.sync_ok();
    let inbox = env.inbox();
    let (b, c) = (env.key_of("INBOX", "b"), env.key_of("INBOX", "c"));
    md::delete(&inbox, &c);
    env.dovecot.expunge("alice", "INBOX", 2);
    env.dovecot.set_uidvalidity("alice", "INBOX", 777);
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let command = err
        .split("nothing is deleted): ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("the halt names no command: {err}"))
        .to_owned();
    assert_eq!(command, "syncmail sync t --folder INBOX --confirm-repair");
    // Still halted on the next plain pass.
    assert!(stderr(&env.sync(&[])).contains("halted"));
    let args: Vec<&str> = command.split(' ').skip(3).collect();
    let out = env.sync(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let server: Vec<String> = env
        .dovecot
        .state("alice", "INBOX")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        server,
        ["<a@test>"],
        "c deleted on the server, b already gone"
    );
    let local = md::messages(&inbox);
    assert_eq!(local.len(), 2, "a, and b kept as it was: {local:?}");
    assert!(local.contains_key(&b));
    let log = env.log(&[]);
    for said in [
        "folder halted",
        "re-paired 2, 1 kept local-only",
        "deleted (propagated)",
    ] {
        assert!(log.contains(said), "{said:?} not in the log:\n{log}");
    }
    env.assert_quiet();
}

#[test]
fn rule_07_mass_deletion_is_refused_until_confirmed() {
    let env = Env::new("");
    for i in 0..20 {
        env.seed("INBOX", &format!("m{i}"));
    }
    env.sync_ok();
    for uid in 1..=15 {
        env.dovecot.expunge("alice", "INBOX", uid);
    }
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("would delete 15 of 20") && err.contains("--confirm-delete"),
        "{err}"
    );
    assert_eq!(
        md::messages(&env.folder("INBOX")).len(),
        20,
        "nothing deleted"
    );
    // Still held on the next pass (QRESYNC must report the deletions again).
    assert_eq!(env.sync(&[]).status.code(), Some(1));
    let out = env.sync(&["--confirm-delete"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(md::messages(&env.folder("INBOX")).len(), 5);
    env.assert_quiet();
}

#[test]
fn rule_07_emptied_maildir_never_empties_the_server() {
    let env = Env::new("");
    for i in 0..12 {
        env.seed("INBOX", &format!("m{i}"));
    }
    env.sync_ok();
    std::fs::remove_dir_all(env.folder("INBOX")).unwrap();
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    assert_eq!(env.server("INBOX").len(), 12, "the server keeps everything");
}

#[test]
fn dry_run_changes_nothing_and_prints_the_plan() {
    let env = Env::new("");
    env.seed("INBOX", "a");
    let out = env.sync(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("INBOX"), "{}", stdout(&out));
    assert!(!env.folder("INBOX").exists(), "dry run created the folder");
    assert!(env.sync_ok().contains("fetched 1"));
}

#[test]
fn local_move_becomes_a_server_move_without_reupload() {
    let env = Env::new("");
    env.dovecot.create_mailbox("alice", "Archive");
    env.seed("INBOX", "m");
    env.sync_ok();
    let key = env.key_of("INBOX", "m");
    // mutt's save-message: the file leaves INBOX and lands in Archive, same name.
    let from = md::path_of(&env.folder("INBOX"), &key);
    let to = env
        .folder("Archive")
        .join("cur")
        .join(from.file_name().unwrap());
    std::fs::rename(&from, &to).unwrap();
    let summary = env.sync_ok();
    assert!(
        summary.contains("appended 0") && summary.contains("moved 1"),
        "{summary}"
    );
    assert!(env.server("INBOX").is_empty());
    assert_eq!(env.dovecot.state("alice", "Archive").len(), 1);
    env.assert_quiet();
}

#[test]
fn server_move_becomes_a_local_rename_without_download() {
    let env = Env::new("");
    env.dovecot.create_mailbox("alice", "Archive");
    env.seed("INBOX", "m");
    env.sync_ok();
    let key = env.key_of("INBOX", "m");
    env.dovecot.doveadm(
        &[
            "move", "-u", "alice", "Archive", "mailbox", "INBOX", "uid", "1",
        ],
        None,
    );
    let summary = env.sync_ok();
    assert!(
        summary.contains("fetched 0") && summary.contains("moved 1"),
        "{summary}"
    );
    assert!(md::messages(&env.folder("INBOX")).is_empty());
    assert!(
        md::messages(&env.folder("Archive")).contains_key(&key),
        "same file, same key"
    );
    env.assert_quiet();
}

#[test]
fn rule_06_unchanged_folder_is_skipped_but_a_change_right_after_a_pass_is_seen() {
    let env = Env::new("");
    env.seed("INBOX", "m");
    env.sync_ok();
    env.assert_quiet();
    // A rename the instant a pass ends must move the folder's stamp, never hide behind it.
    let key = env.key_of("INBOX", "m");
    md::set_flags(&env.folder("INBOX"), &key, "S");
    env.sync_ok();
    assert!(env.server("INBOX")[0].1.contains("\\Seen"));
    md::set_flags(&env.folder("INBOX"), &key, "FS");
    env.sync_ok();
    assert!(env.server("INBOX")[0].1.contains("\\Flagged"));
    env.assert_quiet();
}
