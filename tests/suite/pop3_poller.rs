//! The POP3 poller against a real Dovecot: a fresh download of 500 messages and nothing
//! twice, byte-exact delivery, both deletion policies, a link dropped between DELE and
//! QUIT (rule 15), a kill between delivery and the UIDL commit (rule 1), a wrong
//! password; and the no-UIDL fallback against a scripted server.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use syncmail::config::{self, Account, AccountKind, Config, Dirs, Pop3Settings};
use syncmail::engine::pop3::{PollReport, poll_account};

use crate::support::dovecot::{DOT_LINES_MESSAGE, dotted_5_mib_message, message};
use crate::support::pop3_script::{no_uidl_server, no_uidl_server_failing_quit};
use crate::support::sync_env::SyncEnv;
use crate::support::{Dovecot, assert_crashed_at_a_fault_point, stderr, stdout};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

type Pop3Env = SyncEnv;

fn loaded(env: &Pop3Env) -> Config {
    let text = std::fs::read_to_string(&env.config).unwrap();
    config::parse(&env.config, &text, &Dirs::default())
        .unwrap()
        .config
}

/// Poll through the library with the clock as a parameter.
async fn poll_at(env: &Pop3Env, now: SystemTime) -> PollReport {
    let config = loaded(env);
    let account: &Account = &config.accounts[0];
    let AccountKind::Pop3(settings) = &account.kind else {
        panic!("not a POP3 account");
    };
    let settings: &Pop3Settings = settings;
    poll_account(account, settings, &config.general, now)
        .await
        .unwrap_or_else(|e| panic!("poll failed: {e}\n{}", env.dovecot.logs()))
}

fn on_server(env: &Pop3Env) -> usize {
    env.dovecot.list("alice", "INBOX").len()
}

/// The server count, once Dovecot has finished with a session that just ended.
fn on_server_settled(env: &Pop3Env, want: usize) -> usize {
    let mut n = on_server(env);
    for _ in 0..50 {
        if n == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        n = on_server(env);
    }
    n
}

/// Every delivered message's bytes, sorted; panics on anything in `cur/` or `tmp/`.
fn local(inbox: &Path) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(inbox.join("new"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    for sub in ["cur", "tmp"] {
        assert_eq!(
            std::fs::read_dir(inbox.join(sub)).unwrap().count(),
            0,
            "nothing may be left in {sub}/"
        );
    }
    out.sort();
    out
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

fn numbered(n: usize) -> Vec<Vec<u8>> {
    (1..=n)
        .map(|i| {
            message(
                &format!("m{i}"),
                &format!("m{i}@test"),
                &format!("body {i}"),
            )
        })
        .collect()
}

/// Put messages into alice's INBOX the way an MDA does: write into the Maildir's `tmp/`,
/// rename into `new/`. One `doveadm save` per message would take most of a minute for
/// 500; Dovecot picks these up at the next session.
fn seed_fast(dovecot: &Dovecot, messages: &[Vec<u8>]) {
    use std::os::unix::fs::MetadataExt;
    // Have Dovecot create the Maildir with its own owner first.
    dovecot.doveadm(
        &["mailbox", "status", "-u", "alice", "messages", "INBOX"],
        None,
    );
    let maildir = dovecot.root().join("mail/alice/Maildir");
    let meta = std::fs::metadata(&maildir).unwrap();
    // Unique names across calls: Dovecot ignores a name it already has in cur/.
    let batch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    for (i, m) in messages.iter().enumerate() {
        let name = format!("1790000000.S{batch}N{i}.localhost");
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, m).unwrap();
        std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid())).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
}

fn assert_summary(summary: &str, downloaded: usize, deleted: usize) {
    let want = format!("downloaded {downloaded} (");
    assert!(summary.contains(&want), "want {want:?}: {summary}");
    let want = format!("deleted {deleted} on the server");
    assert!(summary.contains(&want), "want {want:?}: {summary}");
}

#[test]
fn fresh_download_of_500_then_nothing_twice() {
    let env = SyncEnv::pop3("");
    let seeded = numbered(500);
    seed_fast(&env.dovecot, &seeded);
    let started = std::time::Instant::now();
    let summary = env.sync_ok();
    eprintln!("500 messages polled in {:?}", started.elapsed());
    assert_summary(&summary, 500, 0);
    assert!(summary.starts_with("p: pop3: "), "{summary}");
    assert_eq!(local(&env.inbox()), sorted(seeded.clone()));
    assert_eq!(on_server(&env), 500, "keep_on_server is the default");

    let summary = env.sync_ok();
    assert_summary(&summary, 0, 0);
    assert!(summary.contains("500 kept there"), "{summary}");
    assert_eq!(local(&env.inbox()).len(), 500, "nothing downloaded twice");

    // New mail is fetched, and only it.
    let more = numbered(502).split_off(500);
    seed_fast(&env.dovecot, &more);
    assert_summary(&env.sync_ok(), 2, 0);
    let mut all = seeded;
    all.extend(more);
    assert_eq!(local(&env.inbox()), sorted(all));

    // Mode 0700 directories and 0600 files (rule 20).
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.inbox()), 0o700);
    let file = std::fs::read_dir(env.inbox().join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(mode(&file), 0o600);
}

#[test]
fn rule_15_dot_lines_and_a_5_mib_message_arrive_byte_exact() {
    let env = SyncEnv::pop3("");
    let dots = DOT_LINES_MESSAGE.to_vec();
    let big = dotted_5_mib_message();
    env.dovecot.seed("alice", "INBOX", &dots);
    env.dovecot.seed("alice", "INBOX", &big);
    let summary = env.sync_ok();
    assert_summary(&summary, 2, 0);
    let got = local(&env.inbox());
    assert_eq!(got.len(), 2);
    let (small, large) = if got[0].len() < got[1].len() {
        (&got[0], &got[1])
    } else {
        (&got[1], &got[0])
    };
    assert_eq!(
        String::from_utf8_lossy(small),
        String::from_utf8_lossy(&dots)
    );
    assert!(*large == big, "the 5 MiB message differs");
}

#[test]
fn keep_on_server_false_deletes_after_delivery() {
    let env = SyncEnv::pop3("keep_on_server = false\n");
    let seeded = numbered(3);
    for m in &seeded {
        env.dovecot.seed("alice", "INBOX", m);
    }
    assert_summary(&env.sync_ok(), 3, 3);
    assert_eq!(local(&env.inbox()), sorted(seeded.clone()));
    assert_eq!(on_server(&env), 0);

    // Nothing left to do; new mail is fetched and deleted in turn.
    assert_summary(&env.sync_ok(), 0, 0);
    let more = numbered(4).split_off(3);
    env.dovecot.seed("alice", "INBOX", &more[0]);
    assert_summary(&env.sync_ok(), 1, 1);
    assert_eq!(on_server(&env), 0);
    assert_eq!(local(&env.inbox()).len(), 4);

    // The UIDLs of deleted mail are forgotten once the server no longer lists them.
    assert_summary(&env.sync_ok(), 0, 0);
    let log = env.log(&[]);
    assert_eq!(log.matches("downloaded (POP3 UIDL").count(), 4, "{log}");
    assert_eq!(log.matches("deleted on the server").count(), 4, "{log}");
}

#[tokio::test]
async fn delete_after_days_counts_from_first_sight() {
    let env = SyncEnv::pop3("delete_after_days = 3\n");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let seeded = numbered(3);
    env.dovecot.seed("alice", "INBOX", &seeded[0]);
    env.dovecot.seed("alice", "INBOX", &seeded[1]);

    let r = poll_at(&env, t0).await;
    assert_eq!((r.downloaded, r.deleted, r.kept), (2, 0, 2), "{r:?}");

    // Two days later a third arrives; nothing is old enough yet.
    env.dovecot.seed("alice", "INBOX", &seeded[2]);
    let r = poll_at(&env, t0 + DAY * 2).await;
    assert_eq!((r.downloaded, r.deleted, r.kept), (1, 0, 3), "{r:?}");
    let r = poll_at(&env, t0 + DAY * 3 - Duration::from_secs(1)).await;
    assert_eq!((r.downloaded, r.deleted, r.kept), (0, 0, 3), "{r:?}");

    // Three days after the first sight of the first two, they go; the third stays.
    let r = poll_at(&env, t0 + DAY * 3).await;
    assert_eq!((r.downloaded, r.deleted, r.kept), (0, 2, 1), "{r:?}");
    assert_eq!(on_server(&env), 1);
    let r = poll_at(&env, t0 + DAY * 5).await;
    assert_eq!((r.downloaded, r.deleted, r.kept), (0, 1, 0), "{r:?}");
    assert_eq!(on_server(&env), 0);
    assert_eq!(local(&env.inbox()), sorted(seeded));
}

#[test]
fn rule_15_connection_dropped_after_dele_before_quit() {
    let env = SyncEnv::pop3("keep_on_server = false\n");
    let seeded = numbered(3);
    for m in &seeded {
        env.dovecot.seed("alice", "INBOX", m);
    }
    // The process dies after sending DELE and before QUIT: the link drops mid-session.
    let out = env.run(
        "sync",
        &[],
        &[("SYNCMAIL_FAULT", "pop3-after-dele-before-quit")],
    );
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stderr(&out).contains("fault point"), "{}", stderr(&out));
    assert_eq!(
        on_server_settled(&env, 3),
        3,
        "DELE without QUIT deleted mail"
    );
    assert_eq!(local(&env.inbox()), sorted(seeded.clone()));

    // The next session downloads nothing again and sends DELE again; QUIT makes it real.
    assert_summary(&env.sync_ok(), 0, 3);
    assert_eq!(on_server(&env), 0);
    assert_eq!(local(&env.inbox()), sorted(seeded));
    assert_summary(&env.sync_ok(), 0, 0);
}

#[test]
fn rule_01_sigkill_after_delivery_before_uidl_commit_no_duplicate() {
    let env = SyncEnv::pop3("");
    let seeded = numbered(3);
    for m in &seeded {
        env.dovecot.seed("alice", "INBOX", m);
    }
    let out = env.run(
        "sync",
        &[],
        &[("SYNCMAIL_FAULT", "pop3-before-uidl-commit")],
    );
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stderr(&out).contains("fault point"), "{}", stderr(&out));
    // Delivered and durable, but the UIDLs were never recorded.
    assert_eq!(local(&env.inbox()), sorted(seeded.clone()));

    let summary = env.sync_ok();
    assert_summary(&summary, 0, 0);
    assert!(summary.contains("3 recovered after a crash"), "{summary}");
    assert_eq!(local(&env.inbox()), sorted(seeded));
    assert_eq!(on_server(&env), 3);
}

/// Rule 1 at every step: crash at the N-th fault point of a poll that downloads and
/// deletes, for every N; a normal rerun then ends with each message exactly once locally
/// and none on the server.
#[test]
fn rule_01_kill_at_every_step_then_rerun_loses_and_duplicates_nothing() {
    let seeded = numbered(3);
    let mut crashes = 0;
    for n in 1.. {
        let env = SyncEnv::pop3("keep_on_server = false\n");
        for m in &seeded {
            env.dovecot.seed("alice", "INBOX", m);
        }
        let out = env.run("sync", &[], &[("SYNCMAIL_FAULT", &format!("#{n}"))]);
        if out.status.code() == Some(0) {
            assert_summary(&stdout(&out), 3, 3);
            break;
        }
        assert_crashed_at_a_fault_point(&out, n);
        crashes += 1;
        let after = std::fs::read_dir(env.inbox().join("new"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(after <= 3, "duplicate right after crash #{n}");
        env.sync_ok();
        on_server_settled(&env, 0);
        // A deletion cut before QUIT may need one more session; after it, all is settled.
        let last = env.sync_ok();
        assert_summary(&last, 0, 0);
        assert_eq!(
            local(&env.inbox()),
            sorted(seeded.clone()),
            "after crash #{n}"
        );
        assert_eq!(on_server(&env), 0, "after crash #{n}");
    }
    eprintln!("crashed and recovered at {crashes} fault points");
    assert!(crashes >= 7, "only {crashes} fault points were reached");
}

#[test]
fn wrong_password_is_a_clear_permanent_error() {
    let env = SyncEnv::pop3("");
    let text = std::fs::read_to_string(&env.config).unwrap();
    let wrong = "n0t-the-Passw0rd";
    std::fs::write(
        &env.config,
        text.replace(crate::support::DEFAULT_PASSWORD, wrong),
    )
    .unwrap();
    env.dovecot.seed("alice", "INBOX", &numbered(1)[0]);
    let out = env.run("sync", &[], &[]);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a wrong password is not worth retrying (not 75): {err}"
    );
    assert!(err.contains("POP3 account `p`"), "{err}");
    assert!(err.contains("login failed"), "{err}");
    assert!(err.contains("`alice`"), "{err}");
    assert!(!err.contains(wrong), "rule 20: {err}");
    assert!(!env.inbox().join("new").exists() || local(&env.inbox()).is_empty());
}

#[tokio::test]
async fn without_uidl_a_content_hash_identifies_messages() {
    let a = message("a", "a@test", "body a");
    let b = message("b", "b@test", "body b");
    // Two identical copies are two messages, both delivered once.
    let port = no_uidl_server(vec![a.clone(), b.clone(), a.clone()]).await;
    let home = tempfile::tempdir().unwrap();
    let text = format!(
        "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n\
         [[account]]\nname = \"old\"\nkind = \"pop3\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\nuser = \"alice\"\npassword = \"pw\"\nauth = \"login\"\n",
        home.path().display()
    );
    let config = config::parse(Path::new("t.toml"), &text, &Dirs::default())
        .unwrap()
        .config;
    let account = &config.accounts[0];
    let AccountKind::Pop3(settings) = &account.kind else {
        panic!("not POP3");
    };
    let now = SystemTime::now();
    let r = poll_account(account, settings, &config.general, now)
        .await
        .unwrap();
    assert_eq!((r.downloaded, r.deleted, r.kept), (3, 0, 3), "{r:?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("does not support UIDL")),
        "{r:?}"
    );
    let inbox = home.path().join("Mail/old/INBOX");
    assert_eq!(local(&inbox), sorted(vec![a.clone(), a.clone(), b.clone()]));

    let r = poll_account(account, settings, &config.general, now)
        .await
        .unwrap();
    assert_eq!(
        (r.downloaded, r.kept),
        (0, 3),
        "nothing fetched twice: {r:?}"
    );

    // With deletion on, all three go, and nothing is fetched again.
    let mut deleting = settings.clone();
    deleting.keep_on_server = false;
    let r = poll_account(account, &deleting, &config.general, now)
        .await
        .unwrap();
    assert_eq!((r.downloaded, r.deleted, r.kept), (0, 3, 0), "{r:?}");
    let r = poll_account(account, &deleting, &config.general, now)
        .await
        .unwrap();
    assert_eq!((r.downloaded, r.deleted, r.kept), (0, 0, 0), "{r:?}");
    assert_eq!(local(&inbox).len(), 3);
}

/// Rule 7's spirit for POP3: a Maildir that vanished (an unmounted disk) while UIDLs are
/// recorded stops the poll before anything is fetched into a fresh directory or deleted.
#[test]
fn a_missing_maildir_with_recorded_mail_halts_the_poll() {
    let env = SyncEnv::pop3("keep_on_server = false\n");
    env.dovecot.seed("alice", "INBOX", &numbered(1)[0]);
    env.sync_ok();
    // Its UIDL is forgotten once the server no longer lists it; the state still knows
    // the folder had mail.
    env.sync_ok();
    env.dovecot.seed("alice", "INBOX", &numbered(2)[1]);
    let moved = env.home.path().join("Mail-elsewhere");
    std::fs::rename(env.home.path().join("Mail"), &moved).unwrap();
    let out = env.run("sync", &[], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("POP3 account `p`") && err.contains("missing"),
        "{err}"
    );
    assert!(
        !env.inbox().exists(),
        "nothing delivered into a fresh directory"
    );
    assert_eq!(on_server(&env), 1, "nothing deleted");
}

#[tokio::test]
async fn a_quit_that_fails_leaves_deletions_pending_for_the_next_poll() {
    let quit_fails = Arc::new(AtomicBool::new(true));
    let msgs = vec![
        message("a", "a@test", "body a"),
        message("b", "b@test", "body b"),
    ];
    let port = no_uidl_server_failing_quit(msgs, Arc::clone(&quit_fails)).await;
    let home = tempfile::tempdir().unwrap();
    let text = format!(
        "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n\
         [[account]]\nname = \"old\"\nkind = \"pop3\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         tls = \"none\"\nuser = \"alice\"\npassword = \"pw\"\nauth = \"login\"\n\
         keep_on_server = false\n",
        home.path().display()
    );
    let config = config::parse(Path::new("t.toml"), &text, &Dirs::default())
        .unwrap()
        .config;
    let account = &config.accounts[0];
    let AccountKind::Pop3(settings) = &account.kind else {
        panic!("not POP3");
    };
    let now = SystemTime::now();
    let r = poll_account(account, settings, &config.general, now)
        .await
        .unwrap();
    assert_eq!((r.downloaded, r.deleted, r.kept), (2, 0, 2), "{r:?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("did not confirm every deletion")),
        "{r:?}"
    );
    quit_fails.store(false, Ordering::SeqCst);
    let r = poll_account(account, settings, &config.general, now)
        .await
        .unwrap();
    assert_eq!((r.downloaded, r.deleted, r.kept), (0, 2, 0), "{r:?}");
    let r = poll_account(account, settings, &config.general, now)
        .await
        .unwrap();
    assert_eq!((r.downloaded, r.deleted, r.kept), (0, 0, 0), "{r:?}");
    assert_eq!(local(&home.path().join("Mail/old/INBOX")).len(), 2);
}
