//! `syncmail daemon` against a real Dovecot: push in both directions within a bounded
//! wait, hooks, status, sd_notify, reload and sync-now signals.

use std::time::Duration;

use crate::support::daemon::{Daemon, FAST, add_general, converged, local_count, wait_until};
use crate::support::maildir as md;
use crate::support::sync_env::SyncEnv as Env;
use crate::support::{stderr, stdout};

const PUSH: Duration = Duration::from_secs(5);

#[test]
fn push_both_ways_server_append_local_flag_and_local_delete() {
    let env = Env::new(FAST);
    env.seed("INBOX", "a");
    let daemon = Daemon::start_synced(&env, "INBOX", 1);

    // Server -> Maildir: another client delivers.
    env.seed("INBOX", "b");
    wait_until(&daemon, PUSH, "b to arrive locally", || {
        local_count(&env, "INBOX") == 2
    });

    // Maildir -> server: a flag change by rename, as mutt makes it.
    let inbox = env.folder("INBOX");
    let a = env.key_of("INBOX", "a");
    md::set_flags(&inbox, &a, "FS");
    wait_until(&daemon, PUSH, "the flags of a on the server", || {
        env.server("INBOX")
            .iter()
            .any(|(uid, f)| *uid == 1 && f.contains("\\Seen") && f.contains("\\Flagged"))
    });

    // Maildir -> server: a deletion is expunged.
    let b = env.key_of("INBOX", "b");
    md::delete(&inbox, &b);
    wait_until(&daemon, PUSH, "b to be expunged on the server", || {
        env.server("INBOX").len() == 1
    });

    // The daemon holds the account: a one-shot sync has it run the pass, and says so.
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "the daemon (pid {}) holds this account; it runs the pass",
            daemon.pid()
        )),
        "{}",
        stderr(&out)
    );

    // Status works while the daemon runs.
    let out = env.run("status", &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("t (imap): running, pid {}", daemon.pid())),
        "{text}"
    );
    assert!(text.contains("folder INBOX: last pass ok"), "{text}");

    let log = daemon.log();
    assert!(!log.contains("cannot watch"), "{log}");
    daemon.stop();
    assert!(converged(&env), "{:?}", env.state());
    env.assert_quiet();
    let text = stdout(&env.run("status", &[], &[]));
    assert!(text.contains("t (imap): no daemon running"), "{text}");
}

/// A folder a mail client makes while the daemon runs, with mail saved into it at once,
/// reaches the server by the file watcher alone (the poll is an hour away), and so does
/// mail saved into it later: the watcher covers each folder, its `cur/` and `new/`, so a
/// folder made after it started is watched from the pass that finds it.
#[test]
fn a_folder_made_locally_and_mail_saved_into_it_reach_the_server() {
    let env = Env::new(FAST);
    env.seed("INBOX", "a");
    let daemon = Daemon::start_synced(&env, "INBOX", 1);
    let projects = env.folder("Projects");
    md::add(
        &projects,
        "1.local1.host",
        "S",
        &crate::support::dovecot::message("p1", "p1@test", "first"),
    );
    wait_until(
        &daemon,
        PUSH,
        "Projects and its message on the server",
        || env.server("Projects").len() == 1,
    );
    // Past the passes the server's echo of that upload brings: from here only the
    // watcher tells the daemon.
    std::thread::sleep(Duration::from_secs(2));
    let nested = env.folder("Projects/2026");
    md::add(
        &nested,
        "2.local2.host",
        "",
        &crate::support::dovecot::message("p2", "p2@test", "nested"),
    );
    md::add(
        &projects,
        "3.local3.host",
        "",
        &crate::support::dovecot::message("p3", "p3@test", "later"),
    );
    wait_until(&daemon, PUSH, "the later messages on the server", || {
        env.server("Projects").len() == 2 && env.server("Projects/2026").len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    // A message saved into the nested folder after its first pass comes from the watch
    // made for it.
    md::add(
        &nested,
        "4.local4.host",
        "",
        &crate::support::dovecot::message("p4", "p4@test", "nested later"),
    );
    wait_until(&daemon, PUSH, "the last message on the server", || {
        env.server("Projects/2026").len() == 2
    });
    let log = daemon.log();
    assert!(!log.contains("cannot watch"), "{log}");
    daemon.stop();
}

#[test]
fn a_burst_of_local_changes_is_coalesced_and_converges() {
    let env = Env::new(FAST);
    for i in 0..30 {
        env.seed("INBOX", &format!("m{i}"));
    }
    let daemon = Daemon::start(&env);
    wait_until(&daemon, Duration::from_secs(20), "the initial pass", || {
        local_count(&env, "INBOX") == 30
    });
    let inbox = env.folder("INBOX");
    for key in md::messages(&inbox).into_keys() {
        md::set_flags(&inbox, &key, "S");
    }
    wait_until(
        &daemon,
        Duration::from_secs(10),
        "30 flags on the server",
        || {
            env.server("INBOX")
                .iter()
                .all(|(_, f)| f.contains("\\Seen"))
        },
    );
    let log = daemon.log();
    daemon.stop();
    // 30 renames within the debounce make a handful of passes, not 30.
    let pushes = log.matches("flags pushed").count();
    assert!(pushes < 10, "{pushes} passes for one burst:\n{log}");
    env.assert_quiet();
}

#[test]
fn hooks_run_with_account_folder_and_count() {
    let env = Env::new(FAST);
    let out = env.home.path().join("hook.out");
    let after = env.home.path().join("after.out");
    add_general(
        &env,
        &format!(
            "on_new_mail = [\"sh\", \"-c\", \"echo $SYNCMAIL_ACCOUNT $SYNCMAIL_FOLDER $SYNCMAIL_NEW_COUNT >> {}\"]\n\
             after_sync = [\"sh\", \"-c\", \"echo done >> {}\"]\nhook_timeout = \"5s\"\n",
            out.display(),
            after.display()
        ),
    );
    env.seed("INBOX", "a");
    env.seed("INBOX", "b");
    let daemon = Daemon::start(&env);
    wait_until(
        &daemon,
        Duration::from_secs(15),
        "the on_new_mail hook",
        || std::fs::read_to_string(&out).is_ok_and(|t| t.contains("t INBOX 2")),
    );
    wait_until(&daemon, PUSH, "the after_sync hook", || after.exists());
    env.seed("INBOX", "c");
    wait_until(&daemon, PUSH, "the hook for the pushed message", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("t INBOX 1"))
    });
    daemon.stop();
}

#[test]
fn sd_notify_ready_status_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let env = Env::new(FAST);
    let socket = env.home.path().join("notify.sock");
    let listener = UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let daemon = Daemon::start_with(&env, &[("NOTIFY_SOCKET", socket.to_str().unwrap())]);
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !seen
        .iter()
        .any(|m: &String| m == "STATUS=1 account: 1 idle")
    {
        let n = listener
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; got {seen:?}; log:\n{}", daemon.log()));
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(seen.contains(&"READY=1".to_owned()), "{seen:?}");
    daemon.stop();
    let mut rest = Vec::new();
    while let Ok(n) = listener.recv(&mut buf) {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        if rest.iter().any(|m| m == "STOPPING=1") {
            break;
        }
    }
    assert!(rest.contains(&"STOPPING=1".to_owned()), "{rest:?}");
}

#[test]
fn sighup_adds_an_account_and_sigusr1_syncs_an_unwatched_folder_now() {
    let mut env = Env::new(FAST);
    env.dovecot.create_mailbox("alice", "Archive");
    env.seed("INBOX", "a");
    let daemon = Daemon::start_synced(&env, "INBOX", 1);
    // Let the start-up passes (and the follow-ups their own writes cause) finish.
    std::thread::sleep(Duration::from_millis(1500));
    // Archive has no IDLE and polls hourly: only SIGUSR1 brings this now.
    env.seed("Archive", "old");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(local_count(&env, "Archive"), 0);
    daemon.signal("USR1");
    wait_until(&daemon, PUSH, "Archive after SIGUSR1", || {
        local_count(&env, "Archive") == 1
    });

    // A second account appears in the config; the first keeps running untouched.
    let second = env
        .dovecot
        .imap_account("t2", "alice", "implicit")
        .replace("name = \"t2\"", "name = \"t2\"\nmaildir = \"t2\"");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{text}\n{second}{FAST}")).unwrap();
    let _ = &mut env;
    daemon.signal("HUP");
    let t2 = env.home.path().join("Mail/t2/INBOX");
    wait_until(
        &daemon,
        Duration::from_secs(15),
        "account t2 to sync",
        || md::messages(&t2).len() == 1,
    );
    env.seed("INBOX", "b");
    wait_until(&daemon, PUSH, "b in both accounts", || {
        local_count(&env, "INBOX") == 2 && md::messages(&t2).len() == 2
    });
    // And removed again: t2 stops and lets go of its lock; t keeps pushing.
    std::fs::write(&env.config, &text).unwrap();
    daemon.signal("HUP");
    let t2_lock = env.home.path().join("state/t2.lock");
    wait_until(
        &daemon,
        Duration::from_secs(15),
        "t2 to release its lock",
        || std::fs::read_to_string(&t2_lock).is_ok_and(|pid| pid.trim().is_empty()),
    );
    env.seed("INBOX", "c");
    wait_until(&daemon, PUSH, "c in t only", || {
        local_count(&env, "INBOX") == 3 && md::messages(&t2).len() == 2
    });
    let log = daemon.log();
    assert!(!log.contains("restarting"), "t was never restarted:\n{log}");
    assert!(log.contains("1 account(s) removed"), "{log}");
    daemon.stop();
}

#[test]
fn a_wrong_password_is_retried_slowly_and_shown_in_status() {
    // Dovecot answers a failed login only after a penalty delay of a few seconds.
    let env = Env::new("timeout = \"20s\"\npoll_interval = \"1h\"\n");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(crate::support::DEFAULT_PASSWORD, "wrong-password"),
    )
    .unwrap();
    let daemon = Daemon::start(&env);
    wait_until(
        &daemon,
        Duration::from_secs(30),
        "the login failure in status",
        || {
            let out = stdout(&env.run("status", &[], &[]));
            out.contains("daemon: error: login failed") && out.contains("retrying in 9")
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    // One try by the pass connection and one by the IDLE connection, then quiet.
    let attempts = env
        .dovecot
        .logs()
        .matches("auth failed")
        .count()
        .max(daemon.log().matches("login failed").count());
    assert!(
        attempts <= 4,
        "retried in a loop: {attempts}\n{}",
        daemon.log()
    );

    // A second daemon on the same accounts is refused and says who holds them.
    let second = env.run("daemon", &[], &[]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains(&format!("locked by pid {}", daemon.pid())),
        "{}",
        stderr(&second)
    );
    daemon.stop();
}

#[test]
fn an_account_busy_with_a_one_shot_sync_is_taken_over_when_free() {
    let env = Env::new(FAST);
    let second = env
        .dovecot
        .imap_account("t2", "alice", "implicit")
        .replace("name = \"t2\"", "name = \"t2\"\nmaildir = \"t2\"");
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{text}\n{second}{FAST}")).unwrap();
    env.seed("INBOX", "a");
    // Hold t2's lock the way a running `syncmail sync` does.
    let state = env.home.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let held = std::fs::File::create(state.join("t2.lock")).unwrap();
    held.lock().unwrap();
    let daemon = Daemon::start(&env);
    let t2 = env.home.path().join("Mail/t2/INBOX");
    wait_until(&daemon, Duration::from_secs(15), "account t", || {
        local_count(&env, "INBOX") == 1
    });
    assert_eq!(md::messages(&t2).len(), 0);
    drop(held);
    wait_until(&daemon, Duration::from_secs(30), "t2 once free", || {
        md::messages(&t2).len() == 1
    });
    daemon.stop();
}

#[test]
fn a_pop3_account_is_polled_at_start_and_on_sigusr1() {
    let env = Env::new(FAST);
    // The same server user, fetched over POP3 into its own Maildir.
    let pop = env.dovecot.pop3_account("p", "alice", "implicit").replace(
        "name = \"p\"",
        "name = \"p\"\nmaildir = \"p\"\npoll_interval = \"1h\"",
    );
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{text}\n{pop}")).unwrap();
    env.seed("INBOX", "first");
    let daemon = Daemon::start(&env);
    let inbox = env.home.path().join("Mail/p/INBOX");
    wait_until(&daemon, Duration::from_secs(15), "the first poll", || {
        md::messages(&inbox).len() == 1
    });
    env.seed("INBOX", "second");
    daemon.signal("USR1");
    wait_until(
        &daemon,
        Duration::from_secs(15),
        "the poll SIGUSR1 asks for",
        || md::messages(&inbox).len() == 2,
    );
    daemon.stop();
}

/// Dovecot's capabilities without IDLE: the daemon says so once and polls the folder
/// every `poll_interval`, so new mail still arrives, and local changes still go up at
/// once through the file watcher.
#[test]
fn without_idle_the_daemon_polls_every_poll_interval() {
    let dovecot = crate::support::Dovecot::start_setup(crate::support::dovecot::Setup {
        users: &[("alice", crate::support::DEFAULT_PASSWORD)],
        cert: crate::support::dovecot::ServerCert::For(crate::support::dovecot::LOCAL_NAMES),
        extra_config: "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE \
                       UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED CONDSTORE QRESYNC \
                       ESEARCH SEARCHRES LIST-STATUS MOVE LITERAL+ SPECIAL-USE",
    });
    let env = Env::with_dovecot(dovecot, "timeout = \"4s\"\npoll_interval = \"2s\"\n");
    env.seed("INBOX", "a");
    let daemon = Daemon::start_synced(&env, "INBOX", 1);
    wait_until(
        &daemon,
        Duration::from_secs(5),
        "the no-IDLE notice",
        || {
            daemon
                .log()
                .contains("the server has neither NOTIFY nor IDLE; every folder is swept every 60s and passed in full every 2s")
        },
    );
    // Server -> Maildir: found by the next poll, within two intervals.
    env.seed("INBOX", "b");
    wait_until(
        &daemon,
        Duration::from_secs(6),
        "b to arrive by polling",
        || local_count(&env, "INBOX") == 2,
    );
    // Maildir -> server: the file watcher does not depend on IDLE.
    let inbox = env.folder("INBOX");
    md::set_flags(&inbox, &env.key_of("INBOX", "a"), "S");
    wait_until(&daemon, PUSH, "the flag of a on the server", || {
        env.server("INBOX")
            .iter()
            .any(|(uid, f)| *uid == 1 && f.contains("\\Seen"))
    });
    assert!(converged(&env));
    daemon.stop();
}
