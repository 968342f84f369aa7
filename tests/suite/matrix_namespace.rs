//! Rule 24 against the real servers of the matrix (support/servers.rs), through the
//! binary: folder names are mapped through the server's personal NAMESPACE prefix
//! (`INBOX.` in Cyrus's standard namespace and in Courier), and a folder that fails is
//! that folder's failure, named, never the account's.

use std::collections::BTreeMap;

use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::servers::{MatrixHome as Home, MatrixServer, ServerKind};
use crate::support::sync_env::QUIET;
use crate::support::{stderr, stdout};

fn run_ok(server: &MatrixServer, home: &Home, args: &[&str]) -> String {
    let out = home.run(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?} against {} failed:\n{}\n{}\n{}",
        server.kind,
        stdout(&out),
        stderr(&out),
        server.logs()
    );
    stdout(&out)
}

fn ids(list: &[&str]) -> BTreeMap<String, usize> {
    list.iter().map(|id| (format!("<{id}@test>"), 1)).collect()
}

/// Initial pull of `INBOX.Archive`, `INBOX.Archive.2024` and `INBOX.Entwürfe` into
/// `Archive/`, `Archive/2024/` and `Entwürfe/`; a local top-level `Projects` goes up as
/// `INBOX.Projects` with its message; a second pass is quiet; every Message-ID once on
/// each side.
fn folders_map_through_the_prefix(kind: ServerKind) {
    let server = MatrixServer::start(kind);
    assert_eq!(kind.personal_prefix(), "INBOX.");
    for folder in ["Archive", "Archive/2024", "Entwürfe"] {
        server.create_mailbox("alice", folder);
    }
    server.seed("alice", "INBOX", &message("in", "in-1@test", "inbox"));
    server.seed("alice", "Archive", &message("a", "arch-1@test", "archive"));
    server.seed(
        "alice",
        "Archive/2024",
        &message("b", "arch-2024@test", "2024"),
    );
    server.seed("alice", "Entwürfe", &message("c", "draft-1@test", "draft"));

    let home = Home::new(&server, "alice", "implicit", "");
    let check = run_ok(&server, &home, &["check-config", "--connect"]);
    assert!(
        check.contains("personal namespace \"INBOX.\""),
        "{kind}: check-config names the namespace:\n{check}"
    );
    let summary = run_ok(&server, &home, &["sync"]);
    assert!(summary.contains("fetched 4"), "{kind}: {summary}");
    assert_eq!(md::state(&home.folder("Archive")).len(), 1, "{kind}");
    assert_eq!(md::state(&home.folder("Archive/2024")).len(), 1, "{kind}");
    assert_eq!(md::state(&home.folder("Entwürfe")).len(), 1, "{kind}");
    assert!(
        !home.folder("INBOX/Archive").exists(),
        "{kind}: the prefix is not a local directory"
    );

    // A folder a mail client made at the top level.
    let projects = home.folder("Projects");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(projects.join(sub)).unwrap();
    }
    md::add(
        &projects,
        "1700000000.P1Q1.host",
        "S",
        &message("p", "proj-1@test", "projects"),
    );
    let summary = run_ok(&server, &home, &["sync"]);
    assert!(summary.contains("appended 1"), "{kind}: {summary}");
    assert!(
        server
            .folders("alice")
            .contains(&"INBOX.Projects".to_owned()),
        "{kind}: {:?}",
        server.folders("alice")
    );
    assert_eq!(
        server.state("alice", "Projects"),
        vec![("<proj-1@test>".to_owned(), "\\Seen".to_owned())],
        "{kind}"
    );
    let summary = run_ok(&server, &home, &["sync"]);
    assert!(
        summary.contains(QUIET),
        "{kind}: a rerun must do nothing: {summary}"
    );

    // Nothing duplicated, nothing lost, on either side.
    let on_server = server.message_ids("alice");
    let want_server: BTreeMap<String, BTreeMap<String, usize>> = [
        ("INBOX", ids(&["in-1"])),
        ("INBOX.Archive", ids(&["arch-1"])),
        ("INBOX.Archive.2024", ids(&["arch-2024"])),
        ("INBOX.Entwürfe", ids(&["draft-1"])),
        ("INBOX.Projects", ids(&["proj-1"])),
    ]
    .into_iter()
    .map(|(f, i)| (f.to_owned(), i))
    .collect();
    assert_eq!(on_server, want_server, "{kind}");
    let want_local: BTreeMap<String, BTreeMap<String, usize>> = [
        ("INBOX", ids(&["in-1"])),
        ("Archive", ids(&["arch-1"])),
        ("Archive/2024", ids(&["arch-2024"])),
        ("Entwürfe", ids(&["draft-1"])),
        ("Projects", ids(&["proj-1"])),
    ]
    .into_iter()
    .map(|(f, i)| (f.to_owned(), i))
    .collect();
    assert_eq!(home.message_ids(), want_local, "{kind}");
}

#[test]
fn rule_24_cyrus_standard_namespace_maps_folders_through_the_prefix() {
    folders_map_through_the_prefix(ServerKind::Cyrus);
}

#[test]
fn rule_24_courier_maps_folders_through_the_prefix() {
    folders_map_through_the_prefix(ServerKind::Courier);
}

/// Rule 24: a folder made locally that the server refuses to create (Cyrus refuses `%`
/// in a name: "Invalid mailbox name") is that folder's failure, named in the error and
/// in `syncmail status`; the other folders still sync, new mail in INBOX still arrives,
/// the summary line still prints, and the exit code says a folder failed.
fn a_refused_create_is_that_folders_failure(kind: ServerKind) {
    let server = MatrixServer::start(kind);
    let home = Home::new(&server, "alice", "implicit", "");
    run_ok(&server, &home, &["sync"]);
    server.seed("alice", "INBOX", &message("in", "in-1@test", "new mail"));
    for (folder, id) in [("Bad%Name", "bad-1@test"), ("Projects", "proj-1@test")] {
        let dir = home.folder(folder);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        md::add(&dir, "1700000000.P1Q1.host", "S", &message("x", id, folder));
    }
    for pass in 1..=2 {
        let out = home.run(&["sync"]);
        let (out_text, err_text) = (stdout(&out), stderr(&out));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{kind} pass {pass}: a folder failed:\n{out_text}\n{err_text}"
        );
        assert!(
            err_text.contains("Bad%Name") && err_text.contains("refused to create"),
            "{kind} pass {pass}: the error names the folder:\n{err_text}"
        );
        assert_eq!(
            err_text
                .lines()
                .filter(|l| l.contains("syncmail: account"))
                .count(),
            1,
            "{kind} pass {pass}: only that folder failed:\n{err_text}"
        );
        assert!(
            out_text
                .lines()
                .any(|l| l.starts_with("t: ") && l.contains("fetched")),
            "{kind} pass {pass}: the summary line prints:\n{out_text}"
        );
    }
    assert_eq!(
        md::state(&home.folder("INBOX")),
        vec![("<in-1@test>".to_owned(), String::new())],
        "{kind}: new mail in INBOX arrived"
    );
    let projects = server.server_name("Projects");
    assert!(server.folders("alice").contains(&projects), "{kind}");
    assert_eq!(
        server.state("alice", "Projects"),
        vec![("<proj-1@test>".to_owned(), "\\Seen".to_owned())],
        "{kind}: the other local folder went up once"
    );
    assert!(
        !server.folders("alice").iter().any(|f| f.contains("Bad")),
        "{kind}"
    );
    assert_eq!(
        md::state(&home.folder("Bad%Name")).len(),
        1,
        "{kind}: kept locally"
    );
    let status = stdout(&home.run(&["status"]));
    let bad = server.server_name("Bad%Name");
    assert!(
        status
            .lines()
            .any(|l| l.contains(&bad) && l.contains("refused")),
        "{kind}: status names the folder:\n{status}"
    );
}

#[test]
fn rule_24_cyrus_a_refused_create_is_that_folders_failure() {
    a_refused_create_is_that_folders_failure(ServerKind::Cyrus);
}

#[test]
fn rule_24_cyrus_altnamespace_a_refused_create_is_that_folders_failure() {
    a_refused_create_is_that_folders_failure(ServerKind::CyrusAltNamespace);
}
