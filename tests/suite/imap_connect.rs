//! Connecting and logging in to a real Dovecot: implicit TLS verified against the test CA,
//! strict STARTTLS, plaintext on loopback, and refusals that say which check failed.

use std::path::Path;

use syncmail::secret::{self, Secret};
use syncmail::{imap, net};

use crate::support::account::{account, imap_login};
use crate::support::certs::TestCa;
use crate::support::{DEFAULT_PASSWORD, Dovecot, stderr, stdout, syncmail};

/// A private config file in `home` holding these accounts.
fn config_file(home: &Path, accounts: &str) -> std::path::PathBuf {
    let path = home.join("config.toml");
    std::fs::write(
        &path,
        format!("[general]\nmaildir = \"mail\"\n\n{accounts}"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// `syncmail check-config --connect` on a config file.
fn check_connect(home: &Path, config: &Path) -> std::process::Output {
    syncmail(
        home,
        &[
            "check-config",
            "--connect",
            "--config",
            config.to_str().unwrap(),
        ],
    )
}

#[tokio::test]
async fn implicit_tls_verified_against_test_ca_logs_in() {
    let dovecot = Dovecot::start();
    let account = account(&dovecot.imap_account("t", "alice", "implicit"));
    let mut connected = imap_login(&account)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", dovecot.logs()));
    assert!(
        connected.has("IMAP4rev1") && connected.has("UIDPLUS"),
        "{:?}",
        connected.capabilities
    );
    let folders = imap::list_folders(&mut connected, account.server.timeout)
        .await
        .unwrap();
    assert!(folders.iter().any(|f| f.raw_name == "INBOX"), "{folders:?}");
    connected.session.logout().await.unwrap();
}

#[tokio::test]
async fn starttls_upgrades_then_logs_in() {
    let dovecot = Dovecot::start();
    let account = account(&dovecot.imap_account("t", "alice", "starttls"));
    let connected = imap_login(&account).await.unwrap();
    // Capabilities were read again after TLS and login.
    assert!(!connected.has("STARTTLS"), "{:?}", connected.capabilities);
    assert!(connected.has("IDLE"));
}

#[tokio::test]
async fn plaintext_login_on_loopback() {
    let dovecot = Dovecot::start();
    let account = account(&dovecot.imap_account("t", "alice", "none"));
    assert!(imap_login(&account).await.is_ok());
}

#[tokio::test]
async fn wrong_ca_is_refused_with_a_reason() {
    let dovecot = Dovecot::start();
    let other_ca = TestCa::new("some other CA");
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, &other_ca.cert_pem).unwrap();
    let toml = dovecot.imap_account("t", "alice", "implicit").replace(
        &dovecot.ca_file.display().to_string(),
        &other.display().to_string(),
    );
    let err = match imap_login(&account(&toml)).await {
        Ok(_) => panic!("a server signed by an untrusted CA was accepted"),
        Err(e) => e,
    };
    assert!(matches!(err, imap::ImapError::Tls(_)), "{err:?}");
    assert!(
        err.to_string().contains("not signed by a trusted CA"),
        "{err}"
    );
    assert!(!err.is_transient(), "retrying will not fix a certificate");
}

#[tokio::test]
async fn wrong_host_name_is_refused() {
    // A certificate for another host, from the trusted test CA.
    let dovecot = Dovecot::start_with(&["alice"], &["mail.example.org"]);
    let err = imap_login(&account(&dovecot.imap_account("t", "alice", "implicit")))
        .await
        .err()
        .expect("a certificate for another host was accepted");
    assert!(
        err.to_string().contains("not valid for host localhost"),
        "{err}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn certificate_pin_is_checked_on_top_of_the_chain() {
    let dovecot = Dovecot::start();
    let pem = std::fs::read_to_string(dovecot.root().join("tls/server.pem")).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|c: rustls::pki_types::CertificateDer| c.to_vec())
        .unwrap();
    let right = net::tls::fingerprint_hex(&net::tls::fingerprint(&der));
    let base = dovecot.imap_account("t", "alice", "implicit");
    let ok = imap_login(&account(&format!("{base}cert_fingerprint = \"{right}\"\n"))).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    let wrong = format!("sha256:{}", "00".repeat(32));
    let err = imap_login(&account(&format!("{base}cert_fingerprint = \"{wrong}\"\n")))
        .await
        .err()
        .expect("pin mismatch accepted");
    assert!(err.to_string().contains("fingerprint mismatch"), "{err}");
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_not_transient() {
    let dovecot = Dovecot::start();
    let toml = dovecot
        .imap_account("t", "alice", "implicit")
        .replace(DEFAULT_PASSWORD, "wrong");
    let a = account(&toml);
    let err = imap::connect(
        &a.server,
        &Secret::new("wrong"),
        secret::CredentialKind::Password,
    )
    .await
    .err()
    .expect("wrong password accepted");
    assert!(matches!(err, imap::ImapError::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("alice"), "{err}");
    assert!(!err.to_string().contains("wrong\""), "{err}");
}

#[test]
fn check_config_connect_lists_folders_and_maps_exit_codes() {
    let dovecot = Dovecot::start();
    dovecot.create_mailbox("alice", "Archive/2024");
    dovecot.create_mailbox("alice", "Junk");
    let home = tempfile::tempdir().unwrap();
    let account = dovecot.imap_account("t", "alice", "implicit") + "folders = [\"*\", \"!Junk\"]\n";
    let path = config_file(home.path(), &account);
    let out = check_connect(home.path(), &path);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}\n{text}", stderr(&out));
    assert!(
        text.contains("sync   Archive/2024") && text.contains("skip   Junk"),
        "{text}"
    );

    // A server that is down is transient: exit 75, so a timer can retry.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = account.replace(
        &format!("port = {}", dovecot.imaps_port),
        &format!("port = {port}"),
    );
    config_file(home.path(), &down);
    let out = check_connect(home.path(), &path);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(stderr(&out).contains("account `t`"), "{}", stderr(&out));
}

#[tokio::test]
async fn compress_deflate_is_used_when_offered_unless_turned_off() {
    let dovecot = Dovecot::start();
    let toml = dovecot.imap_account("t", "alice", "implicit");
    let mut on = imap_login(&account(&toml)).await.unwrap();
    assert!(on.has("COMPRESS=DEFLATE"), "{:?}", on.capabilities);
    assert!(matches!(
        on.session.get_ref().transport(),
        imap::ImapStream::Deflate(_)
    ));
    // A compressed session does real work: list the folders through it.
    let folders = imap::list_folders(&mut on, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert!(folders.iter().any(|f| f.raw_name == "INBOX"));
    let off = imap_login(&account(&format!("{toml}compress = false\n")))
        .await
        .unwrap();
    assert!(matches!(
        off.session.get_ref().transport(),
        imap::ImapStream::Net(net::Stream::Tls(_))
    ));
}

#[test]
fn check_config_connect_logs_in_to_pop3_and_changes_nothing() {
    let dovecot = Dovecot::start();
    dovecot.seed(
        "alice",
        "INBOX",
        &crate::support::dovecot::message("a", "a@t", "body"),
    );
    let home = tempfile::tempdir().unwrap();
    let account = dovecot.pop3_account("p", "alice", "implicit");
    let path = config_file(home.path(), &account);
    let out = check_connect(home.path(), &path);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("account p: logged in; 1 messages"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        dovecot.list("alice", "INBOX").len(),
        1,
        "a check deletes nothing"
    );
}
