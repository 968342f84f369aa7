//! Uploads and deletions on servers other than Dovecot (issue 15, bugs 1, 3, 4): a file
//! with LF line endings goes to the server as CRLF (rule 23, Cyrus refuses bare LF); an
//! upload the server does not confirm is paired next pass, never repeated (rule 22, GNU
//! imap4d: no UIDPLUS, no `UID n:*` in SEARCH, APPENDs shown only after a SELECT); and a
//! deletion without UIDPLUS never halts the folder (rule 8). Each scenario ends by
//! counting Message-IDs on both sides.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::hostile::Home as ScriptedHome;
use crate::support::imap_script::{Misbehaviour, ScriptedImap};
use crate::support::maildir as md;
use crate::support::servers::{MatrixHome as Home, MatrixServer, ServerKind};
use crate::support::stdout;
use crate::support::sync_env::QUIET;

/// A message as mutt writes it: LF line endings.
fn lf_message(id: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@test>\nTo: bob@test\nSubject: written locally {id}\n\
         Message-ID: <{id}@test>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\n\
         first line\nsecond line\n"
    )
    .into_bytes()
}

fn crlf(body: &[u8]) -> Vec<u8> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes()
}

/// Message-ID -> copies, on the server's INBOX and in the Maildir's.
fn counts(
    server: &MatrixServer,
    home: &Home,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let remote = server
        .message_ids("alice")
        .remove("INBOX")
        .unwrap_or_default();
    let mut local = BTreeMap::new();
    for (id, _) in md::state(&home.inbox()) {
        *local.entry(id).or_insert(0) += 1;
    }
    (remote, local)
}

fn once_each(ids: &[&str]) -> BTreeMap<String, usize> {
    ids.iter().map(|id| (format!("<{id}@test>"), 1)).collect()
}

fn uid_of(server: &MatrixServer, id: &str) -> u32 {
    server
        .fetch_all("alice", "INBOX")
        .into_iter()
        .find(|f| f.message_id == format!("<{id}@test>"))
        .unwrap_or_else(|| panic!("<{id}@test> is not on the server"))
        .uid
}

fn key_of(folder: &Path, id: &str) -> String {
    md::messages(folder)
        .into_keys()
        .find(|k| String::from_utf8_lossy(&md::read(folder, k)).contains(&format!("<{id}@test>")))
        .unwrap_or_else(|| panic!("<{id}@test> is not in {folder:?}"))
}

#[test]
fn rule_23_cyrus_takes_a_file_with_lf_line_endings_and_the_folder_keeps_syncing() {
    let server = MatrixServer::start(ServerKind::Cyrus);
    let home = Home::new(&server, "alice", "implicit", "");
    // Another message stays, so the deletion below does not empty the folder (rule 7).
    server.seed("alice", "INBOX", &crlf(&lf_message("cyrus-1")));
    home.sync(&server, "the first pass");
    let written = lf_message("mutt-1");
    md::add(&home.inbox(), "1700000000.mutt1.host", "", &written);

    let (summary, log) = home.sync(&server, "the upload of an LF file");
    assert!(summary.contains("appended 1"), "{summary}\n{log}");
    let uid = uid_of(&server, "mutt-1");
    assert_eq!(
        server.body("alice", "INBOX", uid),
        crlf(&written),
        "the server's copy is the file with CRLF line endings"
    );
    assert_eq!(
        md::read(&home.inbox(), "1700000000.mutt1.host"),
        written,
        "the local file stays as it was"
    );
    let (summary, log) = home.sync(&server, "the pass after");
    assert!(
        summary.contains(QUIET),
        "the pair holds, sizes included: {summary}\n{log}"
    );

    // The same folder's flag changes and deletions reach the server.
    md::set_flags(&home.inbox(), "1700000000.mutt1.host", "FS");
    let (summary, _) = home.sync(&server, "a local flag change");
    assert!(summary.contains("flags pushed 1"), "{summary}");
    assert_eq!(
        server.state("alice", "INBOX"),
        vec![
            ("<cyrus-1@test>".to_owned(), String::new()),
            ("<mutt-1@test>".to_owned(), "\\Flagged \\Seen".to_owned())
        ]
    );
    md::delete(&home.inbox(), "1700000000.mutt1.host");
    let (summary, _) = home.sync(&server, "a local deletion");
    assert!(summary.contains("deleted 1 on server"), "{summary}");
    assert_eq!(
        counts(&server, &home),
        (once_each(&["cyrus-1"]), once_each(&["cyrus-1"]))
    );
    let (summary, _) = home.sync(&server, "a rerun");
    assert!(summary.contains(QUIET), "{summary}");
}

#[test]
fn rule_22_imap4d_gets_each_local_message_exactly_once_over_four_passes() {
    let server = MatrixServer::start(ServerKind::Imap4d);
    let home = Home::new(&server, "alice", "implicit", "");
    home.sync(&server, "the first pass");
    let ids = ["local-1", "local-2", "local-3"];
    for (i, id) in ids.iter().enumerate() {
        md::add(
            &home.inbox(),
            &format!("170000000{i}.{id}.host"),
            if i == 0 { "S" } else { "" },
            &lf_message(id),
        );
    }
    // A message from another client too: it comes down once, beside the uploads.
    server.seed("alice", "INBOX", &crlf(&lf_message("server-1")));
    let keys_before = md::messages(&home.inbox());
    let mut all = ids.to_vec();
    all.push("server-1");
    let mut last = String::new();
    for pass in 1..=4 {
        let (summary, log) = home.sync(&server, &format!("pass {pass}"));
        assert!(
            !log.contains("cannot be found again"),
            "pass {pass}: {summary}\n{log}"
        );
        let (remote, local) = counts(&server, &home);
        assert_eq!(
            remote,
            once_each(&all),
            "pass {pass}, server: {summary}\n{log}"
        );
        assert_eq!(
            local,
            once_each(&all),
            "pass {pass}, Maildir: {summary}\n{log}"
        );
        // The uploads' files are the ones written: nothing was downloaded again.
        for key in keys_before.keys() {
            md::path_of(&home.inbox(), key);
        }
        if pass == 1 {
            assert!(summary.contains("appended 3"), "{summary}\n{log}");
            assert!(summary.contains("fetched 1"), "{summary}\n{log}");
        } else {
            assert!(
                summary.contains("appended 0"),
                "pass {pass}: {summary}\n{log}"
            );
            assert!(
                summary.contains("fetched 0"),
                "pass {pass}: {summary}\n{log}"
            );
        }
        last = summary;
        if pass == 1 {
            // imap4d reports the clock as the UIDVALIDITY of a folder it has not written
            // back yet: a second later the next pass sees a new one, and the unconfirmed
            // uploads must join the re-pairing (rule 13) rather than come down again.
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
    }
    assert!(last.contains(QUIET), "the fourth pass: {last}");
    // imap4d ignores the flags an APPEND names: \Seen follows as a flag change.
    assert_eq!(
        server.state("alice", "INBOX"),
        md_state_as_imap(&home.inbox())
    );
}

/// The Maildir's `(Message-ID, flags)` in the server's spelling, for comparing.
fn md_state_as_imap(folder: &Path) -> Vec<(String, String)> {
    md::state(folder)
        .into_iter()
        .map(|(id, letters)| {
            let mut flags: Vec<&str> = letters
                .chars()
                .filter_map(|c| match c {
                    'F' => Some("\\Flagged"),
                    'R' => Some("\\Answered"),
                    'S' => Some("\\Seen"),
                    'D' => Some("\\Draft"),
                    'T' => Some("\\Deleted"),
                    _ => None,
                })
                .collect();
            flags.sort();
            (id, flags.join(" "))
        })
        .collect()
}

#[test]
fn rule_08_imap4d_deletes_without_uidplus_and_the_folder_never_halts() {
    let server = MatrixServer::start(ServerKind::Imap4d);
    let home = Home::new(&server, "alice", "implicit", "");
    for id in ["del-1", "del-2", "del-3", "del-4"] {
        server.seed("alice", "INBOX", &crlf(&lf_message(id)));
    }
    let (summary, _) = home.sync(&server, "the first pass");
    assert!(summary.contains("fetched 4"), "{summary}");
    // check-config --connect says what the missing extensions cost here.
    let check = stdout(&home.run(&["check-config", "--connect"]));
    for line in [
        "no UIDPLUS: a deletion marks",
        "no MOVE:",
        "no CONDSTORE:",
        "no QRESYNC:",
        "no OBJECTID:",
    ] {
        assert!(check.contains(line), "{line}: {check}");
    }
    assert!(
        !check.contains("no IDLE") && !check.contains("no NAMESPACE"),
        "{check}"
    );

    // Nothing else marked: our message is marked and expunged.
    md::delete(&home.inbox(), &key_of(&home.inbox(), "del-1"));
    let (summary, log) = home.sync(&server, "a local deletion");
    assert!(summary.contains("deleted 1 on server"), "{summary}\n{log}");
    assert!(!log.contains("HALTED") && !log.contains("halted"), "{log}");
    assert_eq!(
        counts(&server, &home).0,
        once_each(&["del-2", "del-3", "del-4"])
    );

    // Another client marks del-2 \Deleted and leaves it: a plain EXPUNGE would remove
    // it too, so our deletion of del-3 stays marked, and the log says why.
    let del2 = uid_of(&server, "del-2");
    server.add_flags("alice", "INBOX", del2, "\\Deleted");
    home.sync(&server, "the other client's mark comes down");
    md::delete(&home.inbox(), &key_of(&home.inbox(), "del-3"));
    let (summary, log) = home.sync(&server, "a local deletion beside a foreign mark");
    assert!(summary.contains("deleted 0 on server"), "{summary}\n{log}");
    assert!(
        log.contains("not expunged") && log.contains("another client marked"),
        "the log must say why: {log}"
    );
    let del3 = uid_of(&server, "del-3");
    assert!(
        server
            .list("alice", "INBOX")
            .contains(&(del3, "\\Deleted".to_owned())),
        "our message stays marked: {:?}",
        server.list("alice", "INBOX")
    );
    // Server flag changes keep arriving; the folder is never halted.
    let del4 = uid_of(&server, "del-4");
    server.add_flags("alice", "INBOX", del4, "\\Flagged");
    let (summary, log) = home.sync(&server, "a server flag change");
    assert!(summary.contains("pulled 1"), "{summary}\n{log}");
    assert!(!log.contains("HALTED") && !log.contains("halted"), "{log}");
    let status = stdout(&home.run(&["status"]));
    assert!(!status.contains("HALTED"), "{status}");
    assert_eq!(
        md::messages(&home.inbox())
            .get(&key_of(&home.inbox(), "del-4"))
            .map(String::as_str),
        Some("F")
    );

    // The other client takes its mark back: the next pass expunges ours.
    server.remove_flags("alice", "INBOX", del2, "\\Deleted");
    let (summary, log) = home.sync(&server, "the retry");
    assert!(summary.contains("deleted 1 on server"), "{summary}\n{log}");
    let (remote, local) = counts(&server, &home);
    assert_eq!(remote, once_each(&["del-2", "del-4"]), "{log}");
    assert_eq!(local, once_each(&["del-2", "del-4"]), "{log}");
    let (summary, log) = home.sync(&server, "a rerun");
    assert!(summary.contains(QUIET), "{summary}\n{log}");
}

/// Rule 23 on the wire: the APPEND literal a scripted server receives for an LF file has
/// no bare LF, and the pair holds: the pass after is quiet.
#[test]
fn rule_23_the_append_literal_carries_crlf_only() {
    let server = ScriptedImap::start(Misbehaviour::None);
    let home = ScriptedHome::new("imap", server.port, "none");
    let first = home.sync();
    assert_eq!(first.code, Some(0), "{first}");
    let written = lf_message("wire-1");
    std::fs::write(home.root().join("INBOX/new/1700000000.wire.host"), &written).unwrap();
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("appended 1"), "{run}");
    let stored: Vec<Vec<u8>> = server
        .folder("INBOX")
        .unwrap()
        .messages
        .values()
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(stored, [crlf(&written)]);
    let received = server.received();
    let at = received
        .windows(11)
        .position(|w| w == b"From: Alice")
        .expect("the APPEND literal was received");
    let literal = &received[at..at + crlf(&written).len()];
    assert!(
        !literal
            .iter()
            .enumerate()
            .any(|(i, b)| *b == b'\n' && (i == 0 || literal[i - 1] != b'\r')),
        "a bare LF went to the server: {}",
        String::from_utf8_lossy(literal)
    );
    assert_eq!(
        home.messages("INBOX"),
        [written],
        "the file stays as it was"
    );
    let again = home.sync();
    assert_eq!(again.code, Some(0), "{again}");
    assert!(
        again.stdout.contains("appended 0") && again.stdout.contains("fetched 0"),
        "{again}"
    );
}

/// Cyrus rewrites 8-bit bytes in a header it is sent (a raw UTF-8 Subject is stored as
/// `GrXXXXe`), often without changing the size: the two copies then differ silently.
/// syncmail compares what it sent with what the server keeps and says so, once.
#[test]
fn cyrus_rewriting_an_8bit_header_is_reported() {
    let server = MatrixServer::start(ServerKind::Cyrus);
    let home = Home::new(&server, "alice", "implicit", "");
    home.sync(&server, "the first pass");
    let body = "From: Alice <alice@test>\nTo: bob@test\nSubject: Gr\u{fc}\u{df}e\n\
                Message-ID: <eight@test>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nhello\n";
    md::add(&home.inbox(), "1800000000.eight.host", "S", body.as_bytes());
    let (summary, log) = home.sync(&server, "the upload");
    assert!(summary.contains("appended 1,"), "{summary}");
    assert!(
        log.contains("stored 1 uploaded message(s) differently from what was sent"),
        "the rewrite is reported:\n{log}"
    );
    let (summary, log) = home.sync(&server, "the next pass");
    assert!(summary.contains(QUIET), "{summary}");
    assert!(!log.contains("differently"), "said once:\n{log}");
    let (remote, local) = counts(&server, &home);
    assert_eq!(remote, once_each(&["eight"]));
    assert_eq!(local, once_each(&["eight"]));
}

/// Rule 8 with `trash` on a server without MOVE or UIDPLUS (GNU imap4d): a local deletion
/// is a `UID COPY` to the trash folder, then the deletion above. The message ends in
/// Trash once on each side, never twice, and not in INBOX.
#[test]
fn rule_08_imap4d_moves_a_local_deletion_to_trash_by_copy() {
    let server = MatrixServer::start(ServerKind::Imap4d);
    server.create_mailbox("alice", "Trash");
    let home = Home::new(&server, "alice", "implicit", "trash = \"Trash\"\n");
    for id in ["keep", "binned"] {
        server.seed("alice", "INBOX", &crlf(&lf_message(id)));
    }
    let (summary, _) = home.sync(&server, "the first pass");
    assert!(summary.contains("fetched 2"), "{summary}");
    md::delete(&home.inbox(), &key_of(&home.inbox(), "binned"));
    let (summary, log) = home.sync(&server, "a local deletion with trash set");
    assert!(!log.contains("HALTED") && !log.contains("halted"), "{log}");
    assert!(summary.contains("1 on server"), "{summary}\n{log}");
    home.sync(&server, "the trash copy comes down");
    let remote = server.message_ids("alice");
    assert_eq!(remote["INBOX"], once_each(&["keep"]), "{log}");
    assert_eq!(remote["Trash"], once_each(&["binned"]), "{log}");
    let mut local_trash = BTreeMap::new();
    for (id, _) in md::state(&home.folder("Trash")) {
        *local_trash.entry(id).or_insert(0) += 1;
    }
    assert_eq!(local_trash, once_each(&["binned"]));
    assert_eq!(counts(&server, &home).1, once_each(&["keep"]));
    home.assert_quiet(&server, "a rerun");
}
