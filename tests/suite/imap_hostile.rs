//! The real `syncmail sync` against a scripted hostile IMAP server: STARTTLS stripping
//! and injection (rule 19), folder names that try to leave the Maildir root (rule 17),
//! huge literals, endless lines and greetings, UID ranges that would expand to billions
//! (rule 18), lying APPENDUIDs, unrequested FETCH data, messages without a header, and
//! servers that stop answering; and, against Dovecot, the bound above COMPRESS. Each run checks the
//! error names the account and the fault, that nothing was written outside the Maildir
//! root, and (where it matters) the child's peak memory.

use std::time::Duration;

use syncmail::imap::{ImapSession, ImapStream};
use syncmail::model::Uid;

use crate::support::Dovecot;
use crate::support::account::{account, imap_login};
use crate::support::hostile::{ACCOUNT, Home, MAX_RSS_KIB, PASSWORD, TIMEOUT};
use crate::support::imap_script::{Misbehaviour, ScriptedImap};

fn message(id: &str) -> Vec<u8> {
    format!(
        "From: a@example.com\r\nSubject: {id}\r\nMessage-ID: <{id}@test>\r\n\r\nbody of {id}\r\n"
    )
    .into_bytes()
}

/// No credential in any form: neither the password nor a LOGIN or AUTHENTICATE command
/// (which would carry it, perhaps base64-encoded) reached the server.
fn assert_no_password(server: &ScriptedImap) {
    let wire = server.transcript();
    assert!(
        !wire.contains(PASSWORD),
        "the password went over the wire: {wire:?}"
    );
    let upper = wire.to_ascii_uppercase();
    assert!(
        !upper.contains(" LOGIN ") && !upper.contains(" AUTHENTICATE "),
        "a login was attempted: {wire:?}"
    );
}

/// A STARTTLS misbehaviour: the pass fails at once as a TLS (not transient) error that
/// names the account and the reason, before any credential is sent.
fn starttls_refused_with(m: Misbehaviour, reason: &str) {
    let server = ScriptedImap::start(m);
    server.add("INBOX", &[], &message("m1"));
    let home = Home::new("imap", server.port, "starttls");
    let run = home.sync();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`")) && run.stderr.contains(reason),
        "{run}"
    );
    assert_no_password(&server);
    assert!(home.messages("INBOX").is_empty(), "{run}");
    home.assert_nothing_outside_the_root();
}

#[test]
fn rule_19_starttls_not_offered_aborts_before_login() {
    starttls_refused_with(Misbehaviour::StarttlsNotOffered, "does not offer STARTTLS");
}

#[test]
fn rule_19_starttls_refused_aborts_before_login() {
    starttls_refused_with(
        Misbehaviour::StarttlsRefused,
        "refused STARTTLS: s1 NO not today",
    );
}

#[test]
fn rule_19_a_preauth_greeting_aborts() {
    starttls_refused_with(Misbehaviour::Preauth, "PREAUTH");
}

#[test]
fn rule_19_bytes_injected_after_the_starttls_ok_abort() {
    starttls_refused_with(Misbehaviour::StarttlsInjection, "injection");
}

#[test]
fn rule_18_an_endless_greeting_is_refused() {
    for tls in ["none", "starttls"] {
        let server = ScriptedImap::start(Misbehaviour::EndlessGreeting);
        let home = Home::new("imap", server.port, tls);
        let run = home.sync();
        assert_eq!(run.code, Some(1), "{tls}: {run}");
        assert!(
            run.stderr.contains(&format!("account `{ACCOUNT}`"))
                && run
                    .stderr
                    .contains("a pre-login line longer than 16384 bytes"),
            "{tls}: {run}"
        );
        assert!(run.max_rss_kib < MAX_RSS_KIB, "peak memory too high: {run}");
        assert_no_password(&server);
        home.assert_nothing_outside_the_root();
    }
}

#[test]
fn rule_18_an_endless_pre_tls_capability_answer_is_refused() {
    let server = ScriptedImap::start(Misbehaviour::CapabilityFlood);
    let home = Home::new("imap", server.port, "starttls");
    let run = home.sync();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`"))
            && run
                .stderr
                .contains("more than 100 lines without answering CAPABILITY"),
        "{run}"
    );
    assert!(run.max_rss_kib < MAX_RSS_KIB, "peak memory too high: {run}");
    assert_no_password(&server);
    home.assert_nothing_outside_the_root();
}

#[test]
fn rule_17_hostile_folder_names_are_refused_and_the_rest_syncs() {
    let long = "x".repeat(5000);
    // As sent (modified UTF-7), and how the warning shows it: decoded, quoted, escaped,
    // cut after 100 characters.
    let hostile = [
        ("../x", "\"../x\""),
        ("a/../../b", "\"a/../../b\""),
        ("&AC4ALg-", "\"&AC4ALg-\""),
        ("&AAA-", "\"\\0\""),
        ("cur", "\"cur\""),
        ("Archive/new", "\"Archive/new\""),
        (long.as_str(), "\"xxxxxxxxxx"),
        // The delimiter smuggled into a component through modified UTF-7.
        ("a&AC8-b", "\"a&AC8-b\""),
    ];
    let server = ScriptedImap::start(Misbehaviour::ListNames(
        hostile.iter().map(|(wire, _)| wire.to_string()).collect(),
    ));
    server.add("INBOX", &[], &message("in"));
    server.add("Archive", &["\\Seen"], &message("arch"));
    let home = Home::new("imap", server.port, "none");
    let run = home.sync();
    // The sane folders synced; each hostile one is reported, naming it and the account.
    assert_eq!(home.messages("INBOX"), [message("in")], "{run}");
    assert_eq!(home.messages("Archive"), [message("arch")], "{run}");
    assert_eq!(home.folders(), ["Archive", "INBOX"], "{run}");
    assert_eq!(run.code, Some(1), "the refusals need attention: {run}");
    for (wire, shown) in hostile {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(&format!("server folder {shown}")))
            .unwrap_or_else(|| panic!("no warning names {wire:?}: {run}"));
        assert!(
            line.starts_with(&format!("syncmail: account `{ACCOUNT}`: ")),
            "{line}"
        );
        // Printable, and short even for the 5 kB name.
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.len() < 400, "{line}");
    }
    assert!(
        !server.transcript().contains("\"../x\""),
        "a hostile folder was selected: {}",
        server.transcript()
    );
    home.assert_nothing_outside_the_root();
}

#[test]
fn rule_17_with_a_dot_delimiter_a_slash_inside_a_component_is_refused() {
    // Components are split at the server's delimiter '.', so '/' is data inside one.
    let hostile = [
        ("x/y", "component contains '/'"),
        ("../etc", "empty hierarchy component"),
        ("a./..", "component contains '/'"),
        ("INBOX./tmp", "component contains '/'"),
    ];
    let server = ScriptedImap::start_with(
        '.',
        Misbehaviour::ListNames(hostile.iter().map(|(n, _)| n.to_string()).collect()),
    );
    server.add("INBOX", &[], &message("in"));
    server.add("Archive.2024", &[], &message("nested"));
    let home = Home::new("imap", server.port, "none");
    let run = home.sync();
    assert_eq!(home.messages("INBOX"), [message("in")], "{run}");
    assert_eq!(home.messages("Archive/2024"), [message("nested")], "{run}");
    assert_eq!(home.folders(), ["Archive", "INBOX"], "{run}");
    assert_eq!(run.code, Some(1), "{run}");
    for (name, reason) in hostile {
        assert!(
            run.stderr.lines().any(|l| l.starts_with(&format!(
                "syncmail: account `{ACCOUNT}`: server folder {name:?}: {reason}"
            ))),
            "no warning for {name:?}: {run}"
        );
    }
    home.assert_nothing_outside_the_root();
}

/// A pass that a bound stops: exit 1 at once, the account and the server named, peak
/// memory far below what was offered, nothing written.
fn bounded_failure(m: Misbehaviour, what: &str) {
    let server = ScriptedImap::start(m);
    server.add("INBOX", &[], &message("m1"));
    let home = Home::new("imap", server.port, "none");
    let run = home.sync();
    // Shown with --nocapture: how far below the bound the pass stayed.
    eprintln!("{run}");
    assert_eq!(run.code, Some(1), "{run}");
    let server_name = format!("127.0.0.1:{}", server.port);
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`"))
            && run.stderr.contains(&server_name)
            && run.stderr.contains(what),
        "{run}"
    );
    assert!(run.max_rss_kib < MAX_RSS_KIB, "peak memory too high: {run}");
    assert!(home.messages("INBOX").is_empty(), "{run}");
    home.assert_nothing_outside_the_root();
}

#[test]
fn rule_18_a_4_gib_literal_is_refused_with_bounded_memory() {
    bounded_failure(
        Misbehaviour::HugeLiteral,
        "sent a literal of 4294967295 bytes; the limit is 268435456 bytes",
    );
}

#[test]
fn rule_18_a_100_mb_line_is_refused_with_bounded_memory() {
    bounded_failure(
        Misbehaviour::EndlessLine,
        "sent a line longer than 8388608 bytes without an end",
    );
}

/// A well-behaved scripted server and a home that completed a first pass against it:
/// the start of the APPENDUID cases, which then turn the server hostile.
fn synced_once() -> (ScriptedImap, Home) {
    let server = ScriptedImap::start(Misbehaviour::None);
    let home = Home::new("imap", server.port, "none");
    let first = home.sync();
    assert_eq!(first.code, Some(0), "{first}");
    (server, home)
}

#[test]
fn rule_2_an_appenduid_for_another_uidvalidity_pairs_nothing_and_duplicates_nothing() {
    let (server, home) = synced_once();
    let local = message("local");
    std::fs::write(home.root().join("INBOX/new/1700000000.local.host"), &local).unwrap();

    server.set_misbehaviour(Misbehaviour::AppendUidValidity(99));
    let run = home.sync();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`: INBOX:"))
            && run.stderr.contains("APPENDUID names UIDVALIDITY 99"),
        "{run}"
    );

    // A sane server next: the interrupted APPEND is found again, not repeated.
    server.set_misbehaviour(Misbehaviour::None);
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    let inbox = server.folder("INBOX").unwrap();
    assert_eq!(inbox.messages.len(), 1, "a duplicate on the server: {run}");
    assert_eq!(home.messages("INBOX"), [local], "{run}");
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.contains("appended 0") && run.stdout.contains("fetched 0"),
        "{run}"
    );
    assert_eq!(server.folder("INBOX").unwrap().messages.len(), 1);
    home.assert_nothing_outside_the_root();
}

/// `[APPENDUID 7 1:4294967295]` is 27 bytes; expanded it would be 16 GiB. It is taken as
/// no APPENDUID at all, and the message is found again by searching (rule 2).
#[test]
fn rule_18_an_appenduid_range_of_four_billion_is_not_expanded() {
    let (server, home) = synced_once();
    let local = message("local");
    std::fs::write(home.root().join("INBOX/new/1700000000.local.host"), &local).unwrap();
    server.set_misbehaviour(Misbehaviour::AppendUidSet("1:4294967295"));
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("appended 1"), "{run}");
    assert!(run.max_rss_kib < MAX_RSS_KIB, "peak memory too high: {run}");
    let transcript = server.transcript();
    assert!(
        transcript.contains("HEADER Message-ID \"<local@test>\""),
        "the APPEND was not searched for: {transcript}"
    );
    server.set_misbehaviour(Misbehaviour::None);
    let again = home.sync();
    assert_eq!(again.code, Some(0), "{again}");
    assert!(again.stdout.contains("appended 0"), "{again}");
    assert_eq!(server.folder("INBOX").unwrap().messages.len(), 1);
    assert_eq!(home.messages("INBOX"), [local]);
    home.assert_nothing_outside_the_root();
}

/// An APPENDUID naming UID 4294967295 twice: counting past it must not overflow and
/// crash, and a UID already paired is not believed a second time.
#[test]
fn rule_18_an_appenduid_of_the_largest_uid_does_not_crash() {
    let (server, home) = synced_once();
    for i in 0..2 {
        let local = message(&format!("local{i}"));
        std::fs::write(
            home.root().join(format!("INBOX/new/170000000{i}.l.host")),
            &local,
        )
        .unwrap();
    }
    server.set_misbehaviour(Misbehaviour::AppendUidSet("4294967295"));
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("appended 2"), "{run}");
    // The second answer repeats a paired UID: not trusted, the message is searched for.
    assert!(run.stderr.contains("cannot be new"), "{run}");
    assert_eq!(server.folder("INBOX").unwrap().messages.len(), 2, "{run}");

    // A sane server next: the first pair is wrong (UID 4294967295 does not exist), so
    // that message is seen deleted on the server and fetched again under its real UID;
    // nothing is lost and nothing is appended twice.
    server.set_misbehaviour(Misbehaviour::None);
    let next = home.sync();
    assert_eq!(next.code, Some(0), "{next}");
    assert!(next.stdout.contains("appended 0"), "{next}");
    assert_eq!(server.folder("INBOX").unwrap().messages.len(), 2, "{next}");
    let mut want = vec![message("local0"), message("local1")];
    want.sort();
    assert_eq!(home.messages("INBOX"), want, "{next}");
    home.assert_nothing_outside_the_root();
}

#[test]
fn a_fetch_for_a_uid_nobody_asked_for_is_never_written() {
    let server = ScriptedImap::start(Misbehaviour::UnaskedFetch(999));
    server.add("INBOX", &[], &message("asked"));
    let home = Home::new("imap", server.port, "none");
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(home.messages("INBOX"), [message("asked")], "{run}");
    assert!(
        run.stderr.contains("a message we did not ask for; ignored"),
        "{run}"
    );
    home.assert_nothing_outside_the_root();
}

#[test]
fn messages_without_a_header_are_stored_byte_exact() {
    let bodies: [&[u8]; 3] = [
        b"just a body line, no header at all\r\n",
        b"no line end either",
        b"",
    ];
    let server = ScriptedImap::start(Misbehaviour::None);
    for body in bodies {
        server.add("INBOX", &[], body);
    }
    let home = Home::new("imap", server.port, "none");
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    let mut want: Vec<Vec<u8>> = bodies.iter().map(|b| b.to_vec()).collect();
    want.sort();
    assert_eq!(home.messages("INBOX"), want, "{run}");
    // A rerun sees them as already paired: nothing fetched or appended again.
    let again = home.sync();
    assert_eq!(again.code, Some(0), "{again}");
    assert!(
        again.stdout.contains("fetched 0") && again.stdout.contains("appended 0"),
        "{again}"
    );
    assert_eq!(server.folder("INBOX").unwrap().messages.len(), 3);
    home.assert_nothing_outside_the_root();
}

/// A server that stops answering: a timeout naming the account, exit 75 (try again
/// later), within a few of the account's timeouts.
fn times_out(m: Misbehaviour, what: &str) {
    let server = ScriptedImap::start(m);
    server.add("INBOX", &[], &message("m1"));
    let home = Home::new("imap", server.port, "none");
    let run = home.sync();
    assert_eq!(run.code, Some(75), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`"))
            && run.stderr.contains(&format!("no answer while {what}")),
        "{run}"
    );
    assert!(run.elapsed < TIMEOUT * 4, "{run}");
    assert!(home.messages("INBOX").is_empty(), "{run}");
    home.assert_nothing_outside_the_root();
}

#[test]
fn rule_16_a_server_silent_after_the_greeting_times_out() {
    times_out(Misbehaviour::SilentAfterGreeting, "logging in");
}

#[test]
fn rule_16_a_server_silent_mid_command_times_out() {
    times_out(
        Misbehaviour::SilentAt("UID FETCH"),
        "waiting for the server",
    );
}

/// With COMPRESS=DEFLATE the bound must check what the decompressor yields, not the
/// compressed bytes: the session reads through a checking layer above `Deflate`, whose
/// own layer below has stopped checking; a 3 MB message comes through intact.
#[tokio::test]
async fn rule_18_the_bound_checks_what_compress_decodes() {
    let dovecot = Dovecot::start();
    let body: String = (0..40_000)
        .map(|i| format!("line {i:06} of a message big enough to need many reads\r\n"))
        .collect();
    let msg = crate::support::dovecot::message("big", "big@test", &body);
    dovecot.seed("alice", "INBOX", &msg);
    let account = account(&dovecot.imap_account("t", "alice", "implicit"));
    let connected = imap_login(&account).await.unwrap();
    let ImapStream::Bounded(outer) = connected.session.get_ref() else {
        panic!("the session does not read through the bound");
    };
    assert!(outer.is_checking());
    let ImapStream::Deflate(deflate) = outer.get_ref() else {
        panic!("no COMPRESS=DEFLATE under the bound");
    };
    let ImapStream::Bounded(inner) = deflate.get_ref() else {
        panic!("no transport layer under the decompressor");
    };
    assert!(
        !inner.is_checking(),
        "compressed bytes must not be scanned as IMAP"
    );

    let mut session = ImapSession::new(connected, Duration::from_secs(20))
        .await
        .unwrap();
    session.select("INBOX", None).await.unwrap();
    let mut got = Vec::new();
    let missing = session
        .fetch_bodies(&[Uid(1)], |m| {
            got = m.body.to_vec();
            Ok(())
        })
        .await
        .unwrap();
    assert!(missing.is_empty());
    assert_eq!(got.len(), msg.len());
    assert!(got == msg, "the message changed on the way");
    session.logout().await;
}
