//! Rule 19, certificates: every way a server certificate can be wrong is refused, for
//! IMAP and POP3 alike, each over implicit TLS and STARTTLS/STLS, with a message that says which check
//! failed; a pin over a private CA is accepted, and a pin never stands in for the chain.
//! Run through `syncmail check-config --connect`, the command a user tries first.

use std::path::Path;

use crate::support::certs::TestCa;
use crate::support::dovecot::{LOCAL_NAMES, ServerCert, Setup};
use crate::support::{DEFAULT_PASSWORD, Dovecot, stderr, stdout, syncmail_with_env};

/// The accounts every case checks: IMAPS, IMAP with STARTTLS, POP3S, POP3 with STLS.
const ACCOUNTS: [&str; 4] = ["imaps", "imap-starttls", "pop3s", "pop3-stls"];

fn start(cert: ServerCert<'_>) -> Dovecot {
    Dovecot::start_setup(Setup {
        users: &[("alice", DEFAULT_PASSWORD)],
        cert,
        extra_config: "",
    })
}

/// The four accounts against `dovecot`, each with `extra` keys, trusting `ca_file`.
fn accounts(dovecot: &Dovecot, ca_file: &Path, extra: &str) -> String {
    [
        dovecot.imap_account("imaps", "alice", "implicit"),
        dovecot.imap_account("imap-starttls", "alice", "starttls"),
        dovecot.pop3_account("pop3s", "alice", "implicit"),
        dovecot.pop3_account("pop3-stls", "alice", "starttls"),
    ]
    .iter()
    .map(|a| {
        let a = a.replace(
            &dovecot.ca_file.display().to_string(),
            &ca_file.display().to_string(),
        );
        format!("{a}{extra}\n")
    })
    .collect()
}

/// `syncmail check-config --connect` over `accounts`: exit code, stdout, stderr.
fn check_connect(accounts: &str) -> (Option<i32>, String, String) {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[general]\nmaildir = \"mail\"\n\n{accounts}"),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // Dates print in the local time zone: pin it, so the expected text is the same
    // on every machine.
    let out = syncmail_with_env(
        home.path(),
        &[
            "check-config",
            "--connect",
            "--config",
            config.to_str().unwrap(),
        ],
        &[("TZ", "UTC")],
    );
    (out.status.code(), stdout(&out), stderr(&out))
}

/// Every account was refused (exit 1: retrying will not fix a certificate), each with a
/// line that names it and says `why`; nothing got as far as logging in.
fn assert_refused(dovecot: &Dovecot, accounts: &str, why: &str) -> String {
    let (code, out, err) = check_connect(accounts);
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    for name in ACCOUNTS {
        let line = err
            .lines()
            .find(|l| l.contains(&format!("account `{name}`:")))
            .unwrap_or_else(|| panic!("no error line for {name}:\n{err}"));
        assert!(line.contains(why), "{name}: expected `{why}` in:\n{line}");
        assert!(
            !out.contains(&format!("account {name}: logged in")),
            "{out}"
        );
    }
    let log = dovecot.logs();
    assert!(
        !log.contains("Login: user=<alice>"),
        "a refused certificate must stop before login:\n{log}"
    );
    err
}

#[test]
fn rule_19_expired_certificate_is_refused_as_expired() {
    let dovecot = start(ServerCert::Expired);
    let err = assert_refused(
        &dovecot,
        &accounts(&dovecot, &dovecot.ca_file, ""),
        "the server's certificate has expired (on 2021-01-01 00:00:00 +00:00)",
    );
    assert!(!err.contains("trusted CA"), "{err}");
}

#[test]
fn rule_19_certificate_for_another_host_is_refused_naming_the_host() {
    let dovecot = start(ServerCert::For(&["mail.example.org"]));
    assert_refused(
        &dovecot,
        &accounts(&dovecot, &dovecot.ca_file, ""),
        "not valid for host localhost (it is for mail.example.org)",
    );
}

#[test]
fn rule_19_self_signed_certificate_is_refused_as_self_signed() {
    let dovecot = start(ServerCert::SelfSigned);
    assert_refused(
        &dovecot,
        &accounts(&dovecot, &dovecot.ca_file, ""),
        "the server's certificate is self-signed: no trusted CA issued it",
    );
}

#[test]
fn rule_19_certificate_from_an_untrusted_ca_is_refused() {
    let dovecot = start(ServerCert::For(LOCAL_NAMES));
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, TestCa::new("some other CA").cert_pem).unwrap();
    assert_refused(
        &dovecot,
        &accounts(&dovecot, &other, ""),
        "the server's certificate is not signed by a trusted CA",
    );
}

#[test]
fn rule_19_pin_mismatch_is_refused_naming_both_fingerprints() {
    let dovecot = start(ServerCert::For(LOCAL_NAMES));
    let wrong = format!("sha256:{}", "AB".repeat(32));
    let pin = format!("cert_fingerprint = \"{wrong}\"");
    let err = assert_refused(
        &dovecot,
        &accounts(&dovecot, &dovecot.ca_file, &pin),
        "certificate fingerprint mismatch: expected sha256:AB:AB:",
    );
    let got = format!("got {}", dovecot.cert_pin());
    assert_eq!(err.matches(&got).count(), ACCOUNTS.len(), "{err}");
}

#[test]
fn rule_19_pin_over_a_private_ca_is_accepted() {
    let dovecot = start(ServerCert::For(LOCAL_NAMES));
    dovecot.seed(
        "alice",
        "INBOX",
        &crate::support::dovecot::message("a", "a@t", "body"),
    );
    // The private test CA as ca_file, plus the leaf's pin (lower case, as some tools
    // print it): both checks pass.
    let pin = format!(
        "cert_fingerprint = \"{}\"",
        dovecot.cert_pin().to_lowercase()
    );
    let (code, out, err) = check_connect(&accounts(&dovecot, &dovecot.ca_file, &pin));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("account pop3s: logged in; 1 messages"),
        "{out}"
    );
    assert_eq!(out.matches("sync   INBOX").count(), 2, "{out}");
}

#[test]
fn rule_19_a_pin_never_replaces_the_chain() {
    // The right pin for a certificate no trusted CA issued: still refused.
    let dovecot = start(ServerCert::SelfSigned);
    let pin = format!("cert_fingerprint = \"{}\"", dovecot.cert_pin());
    assert_refused(
        &dovecot,
        &accounts(&dovecot, &dovecot.ca_file, &pin),
        "self-signed",
    );
}

#[test]
fn rule_19_a_self_signed_certificate_named_as_ca_file_is_trusted() {
    // What the refusal advises: trust this one certificate, and pin it.
    let dovecot = start(ServerCert::SelfSigned);
    let own = dovecot.root().join("tls/server.pem");
    let pin = format!("cert_fingerprint = \"{}\"", dovecot.cert_pin());
    let (code, out, err) = check_connect(&accounts(&dovecot, &own, &pin));
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.matches("logged in").count(), ACCOUNTS.len(), "{out}");
}
