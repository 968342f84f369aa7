//! The scenario set against each provider profile (support::profiles): Dovecot showing
//! Microsoft 365's, Gmail's, Yahoo's or iCloud's capabilities, with a scripted layer for
//! throttling, connection limits and MESSAGELIMIT. The set is the matrix's: the initial
//! pull of nested and non-ASCII folders, flags and deletions each way, the rule 11
//! conflict, folders made on either side, the daemon's push, and the crash loop (rule 1,
//! `sync_crash::crash_loop`). Each scenario ends by counting Message-IDs on both sides:
//! nothing duplicated, nothing lost.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, wait_until};
use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::profiles::{self, Profile, Rules, ScriptProxy, Throttle};
use crate::support::sync_env::SyncEnv;
use crate::support::{stderr, stdout};

const FOLDERS: [&str; 5] = [
    "INBOX",
    "Archive/2024",
    "Entwürfe",
    "Local Only",
    "Projects/Alpha",
];

/// The scenario set. `bulk` more messages sit in the server's INBOX from the start.
/// Returns the environment and how long the first pass took.
fn scenarios(
    profile: Profile,
    extra: &str,
    bulk: usize,
) -> (SyncEnv, Option<ScriptProxy>, Duration) {
    let (env, proxy) = profile.start().env(extra);
    env.dovecot.create_mailbox("alice", "Archive/2024");
    env.dovecot.create_mailbox("alice", "Entwürfe");
    // UIDs 1-4 in INBOX, in this order.
    for id in ["a", "b", "x", "y"] {
        env.seed("INBOX", id);
    }
    env.seed("Archive/2024", "c");
    env.seed("Entwürfe", "d");
    env.dovecot
        .add_flags("alice", "INBOX", 2, "\\Seen \\Flagged");
    if bulk > 0 {
        profiles::seed_bulk(&env.dovecot, "m", bulk);
    }

    // Initial pull: nested and non-ASCII folders.
    let started = Instant::now();
    let summary = env.sync_ok();
    let first_pass = started.elapsed();
    assert!(
        summary.contains(&format!("fetched {}", 6 + bulk)),
        "{summary}"
    );
    assert_eq!(md::messages(&env.folder("INBOX")).len(), 4 + bulk);
    assert_eq!(md::messages(&env.folder("Archive/2024")).len(), 1);
    assert_eq!(md::messages(&env.folder("Entwürfe")).len(), 1);
    let inbox = env.folder("INBOX");
    assert_eq!(md::messages(&inbox)[&env.key_of("INBOX", "b")], "FS");
    // Rule 12: nothing was marked \Seen by syncing.
    assert!(!env.server("INBOX")[0].1.contains("\\Seen"));

    // Flags added, each way: a flagged locally, b answered on the server.
    md::set_flags(&inbox, &env.key_of("INBOX", "a"), "F");
    env.dovecot.add_flags("alice", "INBOX", 2, "\\Answered");
    let summary = env.sync_ok();
    assert!(summary.contains("flags pushed 1 pulled 1"), "{summary}");
    assert_eq!(server_flags(&env, 1), "\\Flagged");
    assert_eq!(md::messages(&inbox)[&env.key_of("INBOX", "b")], "FRS");

    // Flags removed, each way: b unread locally, a unflagged on the server.
    md::set_flags(&inbox, &env.key_of("INBOX", "b"), "FR");
    env.dovecot.remove_flags("alice", "INBOX", 1, "\\Flagged");
    let summary = env.sync_ok();
    assert!(summary.contains("flags pushed 1 pulled 1"), "{summary}");
    assert_eq!(server_flags(&env, 2), "\\Answered \\Flagged");
    assert_eq!(md::messages(&inbox)[&env.key_of("INBOX", "a")], "");

    // A local deletion and a server expunge.
    md::delete(&inbox, &env.key_of("INBOX", "x"));
    env.dovecot.expunge("alice", "INBOX", 4);
    let summary = env.sync_ok();
    assert!(
        summary.contains("deleted 1 on server 1 locally"),
        "{summary}"
    );

    // A new local message, and a folder made locally.
    md::add(
        &inbox,
        "1700000000.draft.host",
        "DS",
        &message("draft", "draft@test", "body of draft"),
    );
    md::add(
        &env.folder("Local Only"),
        "1700000000.l.host",
        "S",
        &message("l", "l@test", "body of l"),
    );
    let summary = env.sync_ok();
    assert!(summary.contains("appended 2"), "{summary}");
    let drafts: Vec<_> = env
        .server("INBOX")
        .into_iter()
        .filter(|(_, f)| f.contains("\\Draft"))
        .collect();
    assert_eq!(drafts.len(), 1, "{drafts:?}");
    assert_eq!(env.server("Local Only").len(), 1);

    // Rule 11: deleted locally while the server flagged one and marked the other read.
    // The default policy: the flagged one is kept and copied back, the other's
    // deletion wins.
    env.seed("INBOX", "keep");
    env.seed("INBOX", "gone");
    env.sync_ok();
    md::delete(&inbox, &env.key_of("INBOX", "keep"));
    md::delete(&inbox, &env.key_of("INBOX", "gone"));
    let keep = env.dovecot.uid_of("alice", "INBOX", "keep@test");
    let gone = env.dovecot.uid_of("alice", "INBOX", "gone@test");
    env.dovecot.add_flags("alice", "INBOX", keep, "\\Flagged");
    env.dovecot.add_flags("alice", "INBOX", gone, "\\Seen");
    let summary = env.sync_ok();
    assert!(summary.contains("2 conflicts"), "{summary}");
    assert_eq!(md::messages(&inbox)[&env.key_of("INBOX", "keep")], "F");
    let log = env.log(&["--conflicts"]);
    assert!(
        log.contains("kept and copied back") && log.contains("deletion wins"),
        "{log}"
    );

    // A folder made on the server, nested.
    env.dovecot.create_mailbox("alice", "Projects/Alpha");
    env.seed("Projects/Alpha", "p");
    let summary = env.sync_ok();
    assert!(summary.contains("fetched 1"), "{summary}");

    env.assert_quiet();
    let expected = BTreeMap::from([
        ("INBOX", 4 + bulk),
        ("Archive/2024", 1),
        ("Entwürfe", 1),
        ("Local Only", 1),
        ("Projects/Alpha", 1),
    ]);
    assert_same_message_ids(&env, &expected);

    push(profile, &env);
    let mut expected = expected;
    expected.insert("INBOX", 5 + bulk);
    assert_same_message_ids(&env, &expected);
    (env, proxy, first_pass)
}

/// The daemon: a message delivered on the server lands in the Maildir by IDLE within a
/// bounded wait; the latency is printed for the README.
fn push(profile: Profile, env: &SyncEnv) {
    let daemon = Daemon::launch(env.home.path(), &env.config, &[]);
    let inbox = env.folder("INBOX");
    let count = || md::messages(&inbox).len();
    let before = count();
    wait_until(&daemon, Duration::from_secs(20), "the initial pass", || {
        daemon.log().contains("idling on INBOX")
    });
    // Let the initial pass finish its other folders.
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    env.seed("INBOX", "pushed");
    wait_until(
        &daemon,
        Duration::from_secs(5),
        "the pushed message",
        || count() == before + 1,
    );
    eprintln!(
        "{profile:?}: server delivery to file in the Maildir in {} ms, by IDLE",
        sent.elapsed().as_millis()
    );
    daemon.stop();
}

fn server_flags(env: &SyncEnv, uid: u32) -> String {
    env.server("INBOX")
        .into_iter()
        .find(|(u, _)| *u == uid)
        .map(|(_, f)| f)
        .unwrap_or_else(|| panic!("no UID {uid} on the server"))
}

/// Every folder holds the same Message-IDs on both sides, each once, as many as expected.
fn assert_same_message_ids(env: &SyncEnv, expected: &BTreeMap<&str, usize>) {
    for folder in FOLDERS {
        let ids = |rows: Vec<(String, String)>| {
            let mut ids: Vec<String> = rows.into_iter().map(|(id, _)| id).collect();
            ids.sort();
            ids
        };
        let server = ids(env.dovecot.state("alice", folder));
        let local = ids(md::state(&env.folder(folder)));
        let mut unique = server.clone();
        unique.dedup();
        assert_eq!(
            unique.len(),
            server.len(),
            "{folder}: a duplicate on the server"
        );
        assert_eq!(server, local, "{folder}: the two sides differ");
        assert_eq!(
            server.len(),
            expected[folder],
            "{folder}: messages lost or added"
        );
    }
}

#[test]
fn microsoft365_throttling_is_waited_for_not_failed() {
    // One connection, so the throttled commands wait one after the other: over several,
    // their waits overlap (each connection waits what it was asked), and the pass is
    // shorter than their sum (seen once the 50 ms sleeps per folder were gone).
    let (_env, proxy, first_pass) = scenarios(Profile::Microsoft365, "connections = 1\n", 0);
    let proxy = proxy.unwrap();
    assert_eq!(
        proxy.seen.throttled.load(Ordering::SeqCst),
        profiles::M365_THROTTLED,
        "the throttle was hit"
    );
    let waited = Duration::from_millis(profiles::M365_BACKOFF_MS * profiles::M365_THROTTLED as u64);
    assert!(
        first_pass >= waited,
        "the pass took {first_pass:?}, less than the {waited:?} the server asked for"
    );
    // Without CONDSTORE or ENABLE advertised, none is used.
    let commands = proxy.seen.commands.lock().unwrap();
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("ENABLE") || c.contains("CONDSTORE") || c.contains("COMPRESS")),
        "{commands:?}"
    );
}

#[test]
fn microsoft365_endless_throttling_is_a_transient_failure() {
    let rules = Rules {
        throttle: Some(Throttle {
            verb: "UID FETCH",
            count: usize::MAX,
            backoff_ms: 100,
        }),
        ..Rules::default()
    };
    let (env, proxy) = Profile::Microsoft365.start_with(Some(rules)).env("");
    env.seed("INBOX", "a");
    let out = env.sync(&[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(75), "a temporary failure: {text}");
    assert!(text.contains("throttled"), "{text}");
    // One first attempt and the bounded retries, no more.
    assert_eq!(proxy.unwrap().seen.throttled.load(Ordering::SeqCst), 6);
    assert!(md::messages(&env.folder("INBOX")).is_empty());
}

#[test]
fn gmail_extra_connections_refused_with_an_alert_mean_fewer_connections() {
    let (env, proxy, _) = scenarios(Profile::Gmail, "connections = 4\n", 0);
    let proxy = proxy.unwrap();
    assert!(
        proxy.seen.refused_connections.load(Ordering::SeqCst) > 0,
        "the pass asked for more connections than the server allows"
    );
    drop(env);
}

#[test]
fn gmail_a_message_above_appendlimit_is_that_messages_failure() {
    let (env, _proxy) = Profile::Gmail.start().env("");
    env.sync_ok();
    let inbox = env.folder("INBOX");
    let mut big = message("big", "big@test", "");
    big.resize(profiles::GMAIL_APPENDLIMIT as usize + 1024, b'x');
    big.extend_from_slice(b"\r\n");
    md::add(&inbox, "1700000000.big.host", "S", &big);
    md::add(
        &inbox,
        "1700000000.small.host",
        "S",
        &message("small", "small@test", "body of small"),
    );
    let out = env.sync(&[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    // A warning naming the file, not a failed folder or pass.
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("appended 1"),
        "the small one still goes: {text}"
    );
    assert!(text.contains("APPENDLIMIT"), "the big one is named: {text}");
    let server = env.dovecot.state("alice", "INBOX");
    assert_eq!(server.len(), 1, "{server:?}");
    assert_eq!(server[0].0, "<small@test>");
}

#[test]
fn yahoo_messagelimit_chunks_every_set() {
    let bulk = profiles::YAHOO_MESSAGELIMIT + 150;
    let (env, proxy, _) = scenarios(Profile::Yahoo, "", bulk);
    let proxy = proxy.unwrap();
    // A flag change on every bulk message at once: STORE sets above the limit too.
    let inbox = env.folder("INBOX");
    for (key, _) in md::messages(&inbox) {
        let text = String::from_utf8_lossy(&md::read(&inbox, &key)).into_owned();
        if text.contains("@bulk>") {
            md::set_flags(&inbox, &key, "S");
        }
    }
    let summary = env.sync_ok();
    assert!(
        summary.contains(&format!("flags pushed {bulk}")),
        "{summary}"
    );
    let seen = env
        .server("INBOX")
        .into_iter()
        .filter(|(_, f)| f.contains("\\Seen"))
        .count();
    assert!(seen >= bulk, "{seen} of {bulk} marked read on the server");
    env.assert_quiet();
    let seen_by_layer = &proxy.seen;
    assert_eq!(
        seen_by_layer.limit_refusals.load(Ordering::SeqCst),
        0,
        "a command above MESSAGELIMIT: {:?}",
        seen_by_layer
            .commands
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.len() < 200)
            .collect::<Vec<_>>()
    );
    let largest = seen_by_layer.largest_set.load(Ordering::SeqCst);
    assert!(
        largest <= profiles::YAHOO_MESSAGELIMIT && largest > profiles::YAHOO_MESSAGELIMIT / 2,
        "sets were cut to the limit, not below need: largest {largest}"
    );
}

#[test]
fn yahoo_layer_refuses_a_set_above_the_limit() {
    // The layer itself: without chunking, a listing of the whole folder is refused.
    let server = Profile::Yahoo.start();
    profiles::seed_bulk(&server.dovecot, "r", profiles::YAHOO_MESSAGELIMIT + 1);
    let proxy = server.proxy.as_ref().unwrap();
    let mut client = crate::support::imap_client::ImapClient::login(
        proxy.port,
        "alice",
        crate::support::DEFAULT_PASSWORD,
    )
    .unwrap();
    client.command_ok("SELECT INBOX");
    let answer = client.command("UID FETCH 1:* (FLAGS)").unwrap();
    assert!(answer.status.starts_with("NO [LIMIT]"), "{}", answer.status);
    client.command_ok("UID FETCH 1:1000 (FLAGS)");
    client.command_ok("UID FETCH 1001:* (FLAGS)");
}

#[test]
fn icloud_runs_the_scenarios() {
    scenarios(Profile::ICloud, "", 0);
}

/// Rule 1 on each profile: a pass killed at every fault point in turn, then rerun, ends
/// as an uninterrupted pass does (the same loop as against plain Dovecot).
fn crash_loop(profile: Profile) {
    crate::sync_crash::crash_loop(&format!("{profile:?}"), || profile.start().env(""));
}

#[test]
fn microsoft365_crash_loop() {
    crash_loop(Profile::Microsoft365);
}

#[test]
fn gmail_crash_loop() {
    crash_loop(Profile::Gmail);
}

#[test]
fn yahoo_crash_loop() {
    crash_loop(Profile::Yahoo);
}

#[test]
fn icloud_crash_loop() {
    crash_loop(Profile::ICloud);
}
