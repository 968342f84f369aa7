//! Push for every folder over one connection per account: NOTIFY where Dovecot offers it,
//! else IDLE on INBOX and a STATUS sweep of the rest that passes only the folders whose
//! numbers moved (issue 16).

use std::time::Duration;

use crate::support::daemon::{Daemon, FAST, local_count, wait_until};
use crate::support::dovecot::{Dovecot, WITH_NOTIFY, WITHOUT_NOTIFY, WITHOUT_NOTIFY_OR_CONDSTORE};
use crate::support::sync_env::SyncEnv as Env;

const PUSH: Duration = Duration::from_secs(5);
const DEEP: &str = "Lists/rust/2026";

/// A server with INBOX, a folder three levels deep and `others` more folders, each
/// holding one message.
fn env_with_folders(extra_config: &str, account_keys: &str, others: usize) -> Env {
    let env = Env::with_dovecot(Dovecot::start_extra(extra_config), account_keys);
    env.seed("INBOX", "inbox-1");
    env.dovecot.create_mailbox("alice", DEEP);
    env.seed(DEEP, "deep-1");
    for i in 0..others {
        let name = format!("Folder{i:02}");
        env.dovecot.create_mailbox("alice", &name);
        env.seed(&name, &format!("f{i}-1"));
    }
    env
}

fn initial_pass(daemon: &Daemon, env: &Env, others: usize) {
    wait_until(daemon, Duration::from_secs(30), "the initial pass", || {
        local_count(env, "INBOX") == 1
            && local_count(env, DEEP) == 1
            && (0..others).all(|i| local_count(env, &format!("Folder{i:02}")) == 1)
    });
}

/// The folders the daemon passed (its `pass:` lines) in the log after `from`.
fn passes_after(log: &str, from: usize) -> Vec<String> {
    log[from..]
        .lines()
        .filter_map(|l| l.split_once(" pass: ").map(|(_, f)| f.to_owned()))
        .map(|f| f.split(" account=").next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn notify_brings_a_message_three_levels_deep_and_a_new_server_folder_over_one_connection() {
    let others = 20;
    let env = env_with_folders(WITH_NOTIFY, FAST, others);
    let daemon = Daemon::start(&env);
    initial_pass(&daemon, &env, others);
    wait_until(&daemon, PUSH, "NOTIFY to start", || {
        daemon
            .log()
            .contains("NOTIFY: one connection watches every folder")
    });

    // Another client (a server-side filter) files a message three levels deep.
    env.seed(DEEP, "deep-2");
    wait_until(&daemon, PUSH, "the message in Lists/rust/2026", || {
        local_count(&env, DEEP) == 2
    });

    // A folder made on the server appears locally.
    env.dovecot.create_mailbox("alice", "Receipts");
    env.seed("Receipts", "receipt-1");
    wait_until(&daemon, PUSH, "the new server folder", || {
        env.folder("Receipts").join("cur").is_dir() && local_count(&env, "Receipts") == 1
    });

    // One connection watches all 22 folders: with the pass connection, two in all once
    // the passes' extra connections are closed.
    wait_until(&daemon, PUSH, "two connections at rest", || {
        env.dovecot.connections("alice") == 2
    });
    let log = daemon.log();
    assert_eq!(
        log.matches("NOTIFY: one connection watches every folder")
            .count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("idling on"),
        "no IDLE connection besides NOTIFY:\n{log}"
    );
    assert!(log.contains(&format!("NOTIFY: {DEEP} changed")), "{log}");
    assert!(log.contains("NOTIFY: the folder list changed"), "{log}");
    daemon.stop();
}

/// Without NOTIFY: IDLE on INBOX, and the sweep finds a message in another folder within
/// one sweep interval and passes only that folder.
fn sweep_finds_one_folder(extra_config: &str) {
    let others = 10;
    let keys = format!("{FAST}sweep_interval = \"2s\"\n");
    let env = env_with_folders(extra_config, &keys, others);
    let daemon = Daemon::start(&env);
    initial_pass(&daemon, &env, others);
    wait_until(&daemon, PUSH, "IDLE on INBOX", || {
        daemon.log().contains("idling on INBOX")
    });
    assert!(!daemon.log().contains("NOTIFY: one connection"));
    // Let one quiet sweep go by, so the one that matters starts from rest.
    wait_until(&daemon, PUSH, "a quiet sweep", || {
        daemon
            .log()
            .contains(&format!("sweep: {} folders", others + 2))
    });
    let from = daemon.log().len();
    env.seed(DEEP, "deep-2");
    let seeded = std::time::Instant::now();
    wait_until(&daemon, Duration::from_secs(4), "the swept message", || {
        local_count(&env, DEEP) == 2
    });
    let took = seeded.elapsed();
    let log = daemon.log();
    let passes = passes_after(&log, from);
    assert!(!passes.is_empty(), "{log}");
    assert!(
        passes.iter().all(|p| p == DEEP),
        "only {DEEP} is passed after the sweep, not {passes:?}:\n{}",
        &log[from..]
    );
    assert!(
        log[from..].contains(&format!("moved: {DEEP}")),
        "{}",
        &log[from..]
    );
    eprintln!("swept in {took:?}");
    daemon.stop();
}

#[test]
fn without_notify_the_sweep_passes_only_the_folder_that_moved() {
    sweep_finds_one_folder(WITHOUT_NOTIFY);
}

#[test]
fn without_notify_or_condstore_the_sweep_passes_only_the_folder_that_moved() {
    sweep_finds_one_folder(WITHOUT_NOTIFY_OR_CONDSTORE);
}

/// A budget of one connection: no push at all (it would leave passes nothing), every
/// folder swept on the one connection, and never a second login.
#[test]
fn with_one_connection_allowed_every_folder_is_swept_and_none_pushed() {
    let keys = format!("{FAST}sweep_interval = \"2s\"\nmax_connections = 1\n");
    let env = env_with_folders(WITH_NOTIFY, &keys, 3);
    let daemon = Daemon::start(&env);
    initial_pass(&daemon, &env, 3);
    wait_until(&daemon, PUSH, "a quiet sweep", || {
        daemon.log().contains("sweep: 5 folders")
    });
    let from = daemon.log().len();
    env.seed(DEEP, "deep-2");
    env.seed("INBOX", "inbox-2");
    wait_until(&daemon, Duration::from_secs(5), "both by the sweep", || {
        local_count(&env, DEEP) == 2 && local_count(&env, "INBOX") == 2
    });
    assert!(env.dovecot.connections("alice") <= 1);
    let log = daemon.log();
    daemon.stop();
    assert!(!log.contains("NOTIFY: one connection"), "{log}");
    assert!(!log.contains("idling on"), "{log}");
    let after = &log[from..];
    assert!(
        after.contains(&format!("moved: INBOX, {DEEP}"))
            || (after.contains("moved: INBOX") && after.contains(&format!("moved: {DEEP}"))),
        "{after}"
    );
}

/// Message file name -> inode, for every file of a Maildir folder.
fn inodes(folder: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    crate::support::maildir::files(folder)
        .into_iter()
        .map(|f| (f.key, std::fs::metadata(&f.path).unwrap().ino()))
        .collect()
}

/// Folders renamed and deleted on the server while NOTIFY watches. Dovecot reports a
/// rename as `* LIST () "/" "New" ("OLDNAME" ("Old"))`, which imap-proto cannot parse:
/// it used to cost the push connection. Now the folder (and its child) move locally
/// with the same files, nothing fetched again; the deleted folders follow rule 9 (the
/// empty one goes, the one holding mail stays and says so); and the push connection is
/// the one it was at the start.
#[test]
fn notify_a_folder_renamed_or_deleted_on_the_server_keeps_its_files_and_the_connection() {
    let env = env_with_folders(WITH_NOTIFY, FAST, 0);
    for (folder, n) in [("Projects", 3), ("Projects/2026", 1), ("Kept", 1)] {
        env.dovecot.create_mailbox("alice", folder);
        for i in 0..n {
            env.seed(folder, &format!("{}-{i}", folder.replace('/', "-")));
        }
    }
    env.dovecot.create_mailbox("alice", "Empty");
    let daemon = Daemon::start(&env);
    wait_until(&daemon, Duration::from_secs(30), "the initial pass", || {
        local_count(&env, "Projects") == 3
            && local_count(&env, "Projects/2026") == 1
            && local_count(&env, "Kept") == 1
            && env.folder("Empty").join("cur").is_dir()
    });
    wait_until(&daemon, PUSH, "NOTIFY to start", || {
        daemon
            .log()
            .contains("NOTIFY: one connection watches every folder")
    });
    wait_until(&daemon, PUSH, "the initial pass's report", || {
        daemon.log().contains("6 folders: fetched 7")
    });
    // Let the passes the first one set off (its own SELECTs are events too) go by.
    std::thread::sleep(Duration::from_secs(2));
    let from = daemon.log().len();
    let before = inodes(&env.folder("Projects"));
    let child_before = inodes(&env.folder("Projects/2026"));
    assert_eq!(before.len(), 3);

    env.dovecot.doveadm(
        &[
            "mailbox",
            "rename",
            "-u",
            "alice",
            "Projects",
            "Archive/Projects",
        ],
        None,
    );
    wait_until(&daemon, PUSH, "the renamed folder", || {
        !env.folder("Projects").exists()
            && local_count(&env, "Archive/Projects") == 3
            && local_count(&env, "Archive/Projects/2026") == 1
    });
    // The same files: moved, not fetched again.
    assert_eq!(inodes(&env.folder("Archive/Projects")), before);
    assert_eq!(inodes(&env.folder("Archive/Projects/2026")), child_before);
    // The rename's pass reports before the deletions begin.
    wait_until(&daemon, PUSH, "the rename's report", || {
        daemon.log()[from..].contains("Projects: renamed on the server to Archive/Projects")
    });
    std::thread::sleep(Duration::from_millis(500));
    let renamed_at = daemon.log().len();

    env.dovecot
        .doveadm(&["mailbox", "delete", "-u", "alice", "Empty", "Kept"], None);
    wait_until(&daemon, PUSH, "the deleted folders handled", || {
        !env.folder("Empty").exists()
            && daemon
                .log()
                .contains("Kept: deleted on the server, but the Maildir folder")
    });
    assert_eq!(local_count(&env, "Kept"), 1, "a folder with mail is kept");
    // Nothing moved back up: the server has no Projects, Empty or Kept again.
    let listed = env
        .dovecot
        .doveadm(&["mailbox", "list", "-u", "alice"], None);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "Archive",
            "Archive/Projects",
            "Archive/Projects/2026",
            "INBOX",
            DEEP.split('/').next().unwrap(),
            "Lists/rust",
            DEEP
        ],
        "the server's folders"
    );

    let log = daemon.log();
    daemon.stop();
    let (rename, delete) = (&log[from..renamed_at], &log[renamed_at..]);
    // NOTIFY brought both: each event a pass of every folder, nothing fetched again.
    assert!(
        rename.contains("NOTIFY: the folder list changed"),
        "{rename}"
    );
    assert!(
        rename.contains("renamed on the server from Projects"),
        "{rename}"
    );
    assert!(
        delete.contains("NOTIFY: the folder list changed"),
        "{delete}"
    );
    assert!(
        !log[from..].contains("fetched 1"),
        "nothing fetched again:\n{log}"
    );
    // One push connection from start to end: never lost, never made again.
    assert_eq!(
        log.matches("NOTIFY: one connection watches every folder")
            .count(),
        1,
        "{log}"
    );
    assert!(!log.contains("reconnecting"), "{log}");
}
