//! The connection budget against a server that allows two connections per user and IP
//! (Dovecot's `mail_max_userip_connections = 2`): the daemon and a one-shot sync on the
//! same state directory share them, both complete, and a refusal lowers the budget
//! instead of starting an error loop (issue 16). A sync of the daemon's own account
//! hands its pass to the daemon, which runs it within the same two.

use std::time::Duration;

use crate::support::daemon::{Daemon, FAST, local_count, wait_until};
use crate::support::dovecot::{Dovecot, message};
use crate::support::sync_env::SyncEnv as Env;
use crate::support::{stderr, stdout};

const LIMIT_TWO: &str = "protocol imap {\n  mail_max_userip_connections = 2\n}\n";

/// Dovecot's log line for each login it refused as one too many.
const REFUSED: &str = "Maximum number of connections from user+IP exceeded";

#[test]
fn with_two_connections_allowed_the_daemon_and_a_one_shot_sync_both_complete() {
    let env = Env::with_dovecot(Dovecot::start_extra(LIMIT_TWO), FAST);
    for f in ["Archive", "Lists/rust", "Receipts"] {
        env.dovecot.create_mailbox("alice", f);
        for i in 0..5 {
            env.seed(f, &format!("{f}-{i}"));
        }
    }
    env.seed("INBOX", "inbox-0");
    let daemon = Daemon::start(&env);
    wait_until(
        &daemon,
        Duration::from_secs(30),
        "the daemon's first pass",
        || local_count(&env, "INBOX") == 1 && local_count(&env, "Receipts") == 5,
    );

    // A second account for the same mailbox, in another config with the same state
    // directory (so the same connection budget), synced once while the daemon runs.
    let other = env.home.path().join("other.toml");
    let account = env
        .dovecot
        .imap_account("u", "alice", "implicit")
        .replace(&format!("port = {}", env.dovecot.imap_port), "")
        .replace("name = \"u\"", "name = \"u\"\nmaildir = \"u\"");
    std::fs::write(
        &other,
        format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n{account}{FAST}",
            env.home.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The daemon keeps working meanwhile: mail arrives for it during the sync.
    let arrivals = {
        let dovecot_root = env.dovecot.root().to_owned();
        let conf = dovecot_root.join("dovecot.conf");
        std::thread::spawn(move || {
            for i in 0..3 {
                let m = message(&format!("late-{i}"), &format!("late-{i}@test"), "late");
                let mut child = std::process::Command::new("doveadm")
                    .arg("-c")
                    .arg(&conf)
                    .args(["save", "-u", "alice", "-m", "Archive"])
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&m).unwrap();
                assert!(child.wait().unwrap().success());
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let out = crate::support::syncmail_with_env(
        env.home.path(),
        &["sync", "--config", other.to_str().unwrap()],
        &[],
    );
    arrivals.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the one-shot sync must complete:\n{}\n{}\ndaemon:\n{}",
        stdout(&out),
        stderr(&out),
        daemon.log()
    );
    let u = env.home.path().join("Mail/u");
    assert_eq!(
        crate::support::maildir::messages(&u.join("Receipts")).len(),
        5,
        "{}",
        stdout(&out)
    );
    wait_until(
        &daemon,
        Duration::from_secs(30),
        "the late mail in the daemon's Maildir",
        || local_count(&env, "Archive") == 8,
    );

    let log = daemon.log();
    daemon.stop();
    // Nothing failed for good: no login error, no folder error.
    assert!(!log.contains("login failed"), "{log}");
    assert!(!log.contains("folder errors"), "{log}");
    // The daemon met the limit in its first pass (pass, push and extra connections)
    // and lowered its budget once.
    assert_eq!(
        log.matches("using at most 2 from now on").count(),
        1,
        "{log}"
    );
    // Each refusal lowered the budget: the server never refused twice within the
    // shortest backoff (1 s, jittered down to half).
    let server_log = std::fs::read_to_string(env.dovecot.root().join("dovecot.log")).unwrap();
    let refusals: Vec<&str> = server_log.lines().filter(|l| l.contains(REFUSED)).collect();
    eprintln!("{} refusals:\n{}", refusals.len(), refusals.join("\n"));
    for l in log
        .lines()
        .filter(|l| l.contains("too many") || l.contains("WARN"))
    {
        eprintln!("daemon: {l}");
    }
    assert!(refusals.len() <= 2, "{}", refusals.join("\n"));
}

/// Dovecot's log with microseconds, so refusals can be told apart within a second.
const LIMIT_TWO_TIMED: &str = "protocol imap {\n  mail_max_userip_connections = 2\n}\nlog_timestamp = \"%Y-%m-%d %H:%M:%S.%{usecs} \"\n";

/// Seconds since midnight of a `log_timestamp` above.
fn logged_at(line: &str) -> Option<f64> {
    let time = line.split_whitespace().nth(1)?;
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The same account: the daemon holds it, and two `syncmail sync` run meanwhile (a
/// mutt macro pressed twice) while mail arrives. Each sync hands its pass to the
/// daemon, which runs it within its own budget of two; both syncs and the daemon
/// complete, nothing fails for good, and the server refuses a login at most once per
/// backoff period (the shortest, 1 s jittered down to half).
#[test]
fn with_two_connections_allowed_the_daemon_and_a_sync_of_the_same_account_both_complete() {
    let env = Env::with_dovecot(Dovecot::start_extra(LIMIT_TWO_TIMED), FAST);
    for f in ["Archive", "Lists/rust", "Receipts"] {
        env.dovecot.create_mailbox("alice", f);
        for i in 0..5 {
            env.seed(f, &format!("{f}-{i}"));
        }
    }
    env.seed("INBOX", "inbox-0");
    let daemon = Daemon::start(&env);
    wait_until(
        &daemon,
        Duration::from_secs(30),
        "the daemon's first pass",
        || local_count(&env, "INBOX") == 1 && local_count(&env, "Receipts") == 5,
    );
    for i in 0..3 {
        env.seed("Receipts", &format!("late-{i}"));
    }
    let syncs: Vec<_> = (0..2)
        .map(|_| {
            let home = env.home.path().to_owned();
            let config = env.config.clone();
            std::thread::spawn(move || {
                crate::support::syncmail_with_env(
                    &home,
                    &["sync", "--config", config.to_str().unwrap()],
                    &[],
                )
            })
        })
        .collect();
    for sync in syncs {
        let out = sync.join().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "the sync must complete:\n{}\n{}\ndaemon:\n{}",
            stdout(&out),
            stderr(&out),
            daemon.log()
        );
        assert!(
            stdout(&out).contains("t: 4 folders: fetched"),
            "{}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains("it runs the pass"),
            "{}",
            stderr(&out)
        );
    }
    // What the syncs asked for was done by the time they returned.
    assert_eq!(local_count(&env, "Receipts"), 8);

    let log = daemon.log();
    daemon.stop();
    assert!(!log.contains("login failed"), "{log}");
    assert!(!log.contains("folder errors"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
    let server_log = std::fs::read_to_string(env.dovecot.root().join("dovecot.log")).unwrap();
    let refusals: Vec<&str> = server_log.lines().filter(|l| l.contains(REFUSED)).collect();
    eprintln!("{} refusals:\n{}", refusals.len(), refusals.join("\n"));
    let times: Vec<f64> = refusals.iter().filter_map(|l| logged_at(l)).collect();
    assert_eq!(times.len(), refusals.len(), "timestamps: {refusals:?}");
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 0.5,
            "two refusals within one backoff period:\n{}",
            refusals.join("\n")
        );
    }
    assert!(refusals.len() <= 2, "{}", refusals.join("\n"));
}
