//! Gmail's labels (issue 18) against the scripted Gmail layer in front of Dovecot
//! (support/profiles.rs: X-GM-EXT-1, `X-GM-MSGID` the same in every label folder,
//! per-message flags, the Trash that takes a message out of every label, the connection
//! limit, APPENDLIMIT and the bandwidth `[ALERT]`): a message with three labels is one
//! file in four folders (All Mail included) after a first sync, a label added on the
//! server is a new link with no download, a local deletion in a label folder removes only
//! that label, and the preset's defaults are what `check-config --connect` shows.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::profiles::Profile;
use crate::support::sync_env::SyncEnv;
use crate::support::{stderr, stdout};

const ALL_MAIL: &str = "[Gmail]/All Mail";
const TRASH: &str = "[Gmail]/Trash";
const SPAM: &str = "[Gmail]/Spam";
/// The account's preset: on a real Gmail the host would choose it.
const PRESET: &str = "provider = \"gmail\"\n";

fn body(id: &str) -> Vec<u8> {
    message(id, &format!("{id}@test"), &format!("body of {id}"))
}

/// The inode of `<id@test>`'s file in a local folder, if it has exactly one.
fn inode(env: &SyncEnv, folder: &str, id: &str) -> Option<u64> {
    let dir = env.folder(folder);
    let found: Vec<u64> = md::messages(&dir)
        .into_keys()
        .filter(|k| md::read(&dir, k).ends_with(format!("body of {id}\r\n").as_bytes()))
        .map(|k| std::fs::metadata(md::path_of(&dir, &k)).unwrap().ino())
        .collect();
    assert!(found.len() <= 1, "{folder}: {} copies of {id}", found.len());
    found.first().copied()
}

fn on_server(env: &SyncEnv, folder: &str, id: &str) -> bool {
    env.dovecot
        .state("alice", folder)
        .iter()
        .any(|(m, _)| *m == format!("<{id}@test>"))
}

#[test]
fn gmail_labels_are_one_file_new_labels_are_links_and_a_deletion_removes_one_label() {
    let server = Profile::Gmail.start();
    for folder in [ALL_MAIL, TRASH, SPAM, "Work", "Travel", "Receipts"] {
        server.dovecot.create_mailbox("alice", folder);
    }
    // `m` in INBOX with the labels Work and Travel (and, as every message, in All Mail);
    // `n` in INBOX only.
    for folder in ["INBOX", ALL_MAIL, "Work", "Travel"] {
        server.dovecot.seed("alice", folder, &body("m"));
    }
    for folder in ["INBOX", ALL_MAIL] {
        server.dovecot.seed("alice", folder, &body("n"));
    }
    // `t` has the label Travel only (no folder is ever emptied, which rule 7 holds).
    for folder in [ALL_MAIL, "Travel"] {
        server.dovecot.seed("alice", folder, &body("t"));
    }
    server.dovecot.seed("alice", SPAM, &body("spam"));
    server.dovecot.seed("alice", TRASH, &body("old"));
    let (env, proxy) = server.env(PRESET);
    let proxy = proxy.unwrap();

    let summary = env.sync_ok();
    assert!(
        summary.contains("fetched 3 (") && summary.contains("linked 5"),
        "m, n and t downloaded once each, linked into their other folders: {summary}"
    );
    let inodes: BTreeSet<Option<u64>> = ["INBOX", ALL_MAIL, "Work", "Travel"]
        .iter()
        .map(|f| inode(&env, f, "m"))
        .collect();
    assert_eq!(inodes.len(), 1, "one file in four folders: {inodes:?}");
    assert!(inodes.iter().all(Option::is_some));
    assert!(
        !env.folder(SPAM).exists() && !env.folder(TRASH).exists(),
        "the preset syncs neither Spam nor Trash"
    );
    let first = inode(&env, "INBOX", "m");
    assert!(
        proxy
            .seen
            .commands
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.contains("X-GM-MSGID")),
        "the flags are listed with X-GM-MSGID"
    );
    env.assert_quiet();

    // `syncmail labels`: m's four folders.
    let labels = stdout(&env.run("labels", &[], &[]));
    let line = labels.lines().find(|l| l.contains("<m@test>")).unwrap();
    assert!(
        line.ends_with(": INBOX, Travel, Work, [Gmail]/All Mail"),
        "{line}"
    );

    // A label added on the web: a new link, no download.
    server_seed(&env, "Receipts", "m");
    let summary = env.sync_ok();
    assert!(
        summary.contains("fetched 0 (") && summary.contains("linked 1"),
        "{summary}"
    );
    assert_eq!(inode(&env, "Receipts", "m"), first);
    env.assert_quiet();

    // Gmail's flags are per message: flagged in Work, it is flagged in every label
    // folder on the server, and the next pass renames each entry (still one file).
    md::set_flags(&env.folder("Work"), &env.key_of("Work", "m"), "F");
    let summary = env.sync_ok();
    assert!(summary.contains("flags pushed 1"), "{summary}");
    let summary = env.sync_ok();
    assert!(
        summary.contains("pulled 4"),
        "INBOX, All Mail, Travel, Receipts: {summary}"
    );
    for folder in ["INBOX", ALL_MAIL, "Work", "Travel", "Receipts"] {
        assert_eq!(
            md::messages(&env.folder(folder))[&env.key_of(folder, "m")],
            "F",
            "{folder}"
        );
        assert_eq!(inode(&env, folder, "m"), first, "{folder}");
    }
    env.assert_quiet();

    // A local deletion in a label folder removes that label only.
    md::delete(&env.folder("Travel"), &env.key_of("Travel", "m"));
    let out = env.sync(&[]);
    let log = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("deleted 1 on server 0 locally"), "{log}");
    assert!(
        log.contains("removing the label Travel from 1 message"),
        "said in Gmail's words: {log}"
    );
    assert!(!on_server(&env, "Travel", "m"));
    for folder in ["INBOX", ALL_MAIL, "Work", "Receipts"] {
        assert!(on_server(&env, folder, "m"), "still in {folder}");
        assert_eq!(inode(&env, folder, "m"), first, "{folder}");
    }
    env.assert_quiet();

    // A local deletion in All Mail moves the message to the Trash (the preset's rule).
    md::delete(&env.folder(ALL_MAIL), &env.key_of(ALL_MAIL, "n"));
    let out = env.sync(&[]);
    let log = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("moving 1 message(s) from All Mail to the Trash"),
        "{log}"
    );
    assert!(!on_server(&env, ALL_MAIL, "n"));
    assert!(
        on_server(&env, TRASH, "n"),
        "moved to the Trash, not expunged"
    );
    // In the Trash a message has no label left: INBOX lost it on the server, and the
    // next pass removes INBOX's entry.
    assert!(!on_server(&env, "INBOX", "n"));
    let summary = env.sync_ok();
    assert!(
        summary.contains("deleted 0 on server 1 locally"),
        "{summary}"
    );
    assert_eq!(inode(&env, "INBOX", "n"), None);
    env.assert_quiet();
}

fn server_seed(env: &SyncEnv, folder: &str, id: &str) {
    env.dovecot.seed("alice", folder, &body(id));
}

#[test]
fn gmail_check_config_connect_names_the_provider_and_its_defaults() {
    let server = Profile::Gmail.start();
    for folder in [ALL_MAIL, TRASH, SPAM] {
        server.dovecot.create_mailbox("alice", folder);
    }
    let (mut env, _proxy) = server.env("");
    // Without the preset: the server's X-GM-EXT-1 says it is Gmail.
    let check = |env: &SyncEnv| {
        let out = env.run("check-config", &["--connect"], &[]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
        text
    };
    let text = check(&env);
    assert!(
        text.contains("Gmail (X-GM-EXT-1): X-GM-MSGID identifies a message across labels"),
        "{text}"
    );
    assert!(
        text.contains("the server offers X-GM-EXT-1: it is Gmail; set provider = \"gmail\""),
        "{text}"
    );
    // With it: the defaults, and which folders they select.
    env.set_extra(PRESET);
    let text = check(&env);
    assert!(
        text.contains("provider gmail (provider = \"gmail\"): [Gmail]/All Mail synced as links")
            && text.contains("not synced: [Gmail]/Spam, [Gmail]/Trash")
            && text.contains("a deletion in a label folder removes that label; in All Mail it moves the message to [Gmail]/Trash")
            && text.contains("at most 3 connections (Gmail allows 15)"),
        "{text}"
    );
    for line in [
        "sync   [Gmail]/All Mail",
        "skip   [Gmail]/Spam",
        "skip   [Gmail]/Trash",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[test]
fn gmail_preset_comes_from_the_host_and_caps_connections() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let account = |extra: &str| {
        format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n[[account]]\nname = \"g\"\nkind = \"imap\"\nhost = \"imap.gmail.com\"\nuser = \"me@gmail.com\"\npassword_command = [\"true\"]\n{extra}",
            dir.path().display()
        )
    };
    crate::support::write_private(&config, &account("max_connections = 16\n"));
    let out = crate::support::syncmail(
        dir.path(),
        &["check-config", "--config", config.to_str().unwrap()],
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(
        text.contains("max_connections = 16 is above Gmail's limit"),
        "{text}"
    );
    crate::support::write_private(&config, &account("max_connections = 15\n"));
    let out = crate::support::syncmail(
        dir.path(),
        &["check-config", "--config", config.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("imap, gmail preset (from the host), folders * ![Gmail]/Spam ![Gmail]/Trash"),
        "{text}"
    );
}

/// Gmail's daily limit: `NO [ALERT] Account exceeded command or bandwidth limits` on a
/// download. A one-shot sync says so and exits "try again later" (75) after one refused
/// download, not a retry loop; the daemon pauses the account with a message and does
/// not ask again while paused.
#[test]
fn gmail_bandwidth_alert_pauses_the_account_instead_of_retrying() {
    use crate::support::daemon::{Daemon, wait_until};
    use crate::support::profiles::Rules;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    let server = Profile::Gmail.start_with(Some(Rules {
        max_connections: Some(crate::support::profiles::GMAIL_CONNECTIONS),
        identity: Some(crate::support::profiles::IdentityItem::GmailMsgId),
        over_limit: true,
        ..Rules::default()
    }));
    server.dovecot.seed("alice", "INBOX", &body("a"));
    let (env, proxy) = server.env(PRESET);
    let proxy = proxy.unwrap();
    let out = env.sync(&[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(75), "try again later: {text}");
    assert!(
        text.contains("the server paused the account")
            && text.contains("Account exceeded command or bandwidth limits"),
        "{text}"
    );
    assert_eq!(
        proxy.seen.over_limit.load(Ordering::SeqCst),
        1,
        "asked once"
    );

    let daemon = Daemon::start(&env);
    wait_until(
        &daemon,
        Duration::from_secs(20),
        "the daemon pauses",
        || {
            proxy.seen.over_limit.load(Ordering::SeqCst) == 2
                && daemon
                    .log()
                    .contains("paused: the server paused the account")
        },
    );
    let asked = proxy.seen.over_limit.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        proxy.seen.over_limit.load(Ordering::SeqCst),
        asked,
        "not retried while paused: {}",
        daemon.log()
    );
    let status = stdout(&env.run("status", &[], &[]));
    assert!(
        status.contains("paused: the server paused the account")
            && status.contains("retrying in 3600s"),
        "{status}"
    );
    daemon.stop();
}
