//! The server matrix (issue 15), first contact: for each real server other than Dovecot
//! (support/servers.rs), `syncmail check-config --connect` logs in over implicit TLS and
//! STARTTLS, a sync of the empty account succeeds, and a message another client appended
//! arrives as a file, byte for byte, once, and a rerun does nothing.

use std::path::{Path, PathBuf};

use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::servers::{MatrixHome as Home, MatrixServer, ServerKind};
use crate::support::sync_env::QUIET;
use crate::support::{stderr, stdout};

fn assert_ok(server: &MatrixServer, what: &str, out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what} against {} failed:\n{}\n{}\n{}",
        server.kind,
        stdout(out),
        stderr(out),
        server.logs()
    );
    stdout(out)
}

fn check_connect(server: &MatrixServer, tls: &str) {
    let home = Home::new(server, "alice", tls, "");
    let out = home.run(&["check-config", "--connect"]);
    assert_ok(
        server,
        &format!("check-config --connect (tls = {tls})"),
        &out,
    );
}

fn only_message(folder: &Path) -> Vec<u8> {
    let all = md::messages(folder);
    assert_eq!(all.len(), 1, "{folder:?}: {all:?}");
    md::read(folder, all.keys().next().unwrap())
}

fn smoke(kind: ServerKind) {
    let server = MatrixServer::start(kind);
    check_connect(&server, "implicit");

    let home = Home::new(&server, "alice", "implicit", "");
    let summary = assert_ok(&server, "sync of the empty account", &home.run(&["sync"]));
    assert!(summary.contains("fetched 0"), "{kind}: {summary}");

    let sent = message("smoke", "smoke-1@test", "body of smoke-1");
    server.seed("alice", "INBOX", &sent);
    let summary = assert_ok(&server, "sync of one new message", &home.run(&["sync"]));
    assert!(summary.contains("fetched 1"), "{kind}: {summary}");
    assert_eq!(only_message(&home.folder("INBOX")), sent, "{kind}");

    // Nothing duplicated, nothing lost, nothing marked \Seen by the sync (rule 12).
    assert_eq!(
        server.state("alice", "INBOX"),
        vec![("<smoke-1@test>".to_owned(), String::new())],
        "{kind}"
    );
    assert_eq!(
        md::state(&home.folder("INBOX")),
        vec![("<smoke-1@test>".to_owned(), String::new())],
        "{kind}"
    );
    let summary = assert_ok(&server, "a rerun", &home.run(&["sync"]));
    assert!(
        summary.contains(QUIET),
        "{kind}: a rerun must do nothing: {summary}"
    );
}

/// STARTTLS, then login by the mechanism the capabilities offer after TLS.
fn starttls(kind: ServerKind) {
    let server = MatrixServer::start(kind);
    check_connect(&server, "starttls");
}

#[test]
fn cyrus_standard_namespace_logs_in_and_pulls_a_message() {
    smoke(ServerKind::Cyrus);
}

#[test]
fn cyrus_standard_namespace_starttls() {
    starttls(ServerKind::Cyrus);
}

#[test]
fn cyrus_altnamespace_logs_in_and_pulls_a_message() {
    smoke(ServerKind::CyrusAltNamespace);
}

#[test]
fn courier_logs_in_and_pulls_a_message() {
    smoke(ServerKind::Courier);
}

#[test]
fn courier_starttls() {
    starttls(ServerKind::Courier);
}

#[test]
fn imap4d_logs_in_and_pulls_a_message() {
    smoke(ServerKind::Imap4d);
}

/// imap4d 3.15 ends the tagged OK of AUTHENTICATE with a bare LF
/// (`A1 OK AUTHENTICATE PLAIN authentication successful\n`). Over STARTTLS the
/// capabilities come from CAPABILITY and offer AUTH=PLAIN, so syncmail authenticates
/// (implicit TLS: the greeting names no mechanism, LOGIN is used, and its OK ends in
/// CRLF). The bound layer reads the bare LF as a line's end (`imap::bound`); before it,
/// the login waited for a CR until the 60 s timeout.
#[test]
fn imap4d_starttls() {
    starttls(ServerKind::Imap4d);
}

/// Not a test: start `$MATRIX_KIND` and keep it running for `$MATRIX_SECS` seconds, with
/// a config for it in `$MATRIX_HOME`, to poke at by hand.
#[test]
#[ignore = "manual: a server to poke at"]
fn serve_for_manual_poking() {
    let kind = match std::env::var("MATRIX_KIND").as_deref() {
        Ok("cyrus") => ServerKind::Cyrus,
        Ok("cyrus-altnamespace") => ServerKind::CyrusAltNamespace,
        Ok("courier") => ServerKind::Courier,
        _ => ServerKind::Imap4d,
    };
    let server = MatrixServer::start(kind);
    let home = PathBuf::from(std::env::var("MATRIX_HOME").unwrap());
    let tls = std::env::var("MATRIX_TLS").unwrap_or("implicit".into());
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n{1}",
            home.display(),
            server.imap_account("t", "alice", &tls)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(
        home.join("server.env"),
        format!(
            "ROOT={}\nIMAP={}\nIMAPS={}\n",
            server.root().display(),
            server.imap_port,
            server.imaps_port
        ),
    )
    .unwrap();
    let secs: u64 = std::env::var("MATRIX_SECS").map_or(600, |s| s.parse().unwrap());
    std::thread::sleep(std::time::Duration::from_secs(secs));
}
