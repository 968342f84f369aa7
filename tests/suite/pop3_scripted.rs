//! The POP3 client against scripted, misbehaving servers on loopback: STLS not offered,
//! refused or followed by injected bytes (rule 19), overlong lines and UIDLs (rule 18),
//! a RETR that never ends, a locked maildrop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::hostile::{ACCOUNT, Home, MAX_RSS_KIB};
use crate::support::pop3_script::{self, Reply, logged_in, one_message, scripted, send};
use syncmail::config::{AuthMech, Server, Tls};
use syncmail::pop3::{MsgNo, Pop3Client, Pop3Error};
use syncmail::secret::{CredentialKind, Secret};

const PASSWORD: &str = "scripted-pw-4711";

fn server(port: u16, tls: Tls) -> Server {
    Server {
        host: "127.0.0.1".into(),
        port,
        tls,
        allow_plaintext: false,
        user: "alice".into(),
        auth: AuthMech::Auto,
        ca_file: None,
        cert_fingerprint: None,
        compress: false,
        timeout: Duration::from_millis(500),
    }
}

async fn connect(server: &Server) -> Result<Pop3Client, Pop3Error> {
    Pop3Client::connect(server, &Secret::new(PASSWORD), CredentialKind::Password).await
}

fn no_password_sent(seen: &Arc<Mutex<Vec<String>>>) {
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|l| !l.starts_with("USER") && !l.starts_with("PASS") && !l.starts_with("AUTH")),
        "credentials were sent: {seen:?}"
    );
}

#[tokio::test]
async fn rule_19_stls_not_offered_aborts() {
    let (port, seen) = scripted(b"+OK hello\r\n", |line| match line {
        "CAPA" => send("+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"),
        _ => send("+OK\r\n"),
    })
    .await;
    let err = connect(&server(port, Tls::Starttls)).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("does not offer STLS"), "{err}");
    assert!(!err.is_transient());
    no_password_sent(&seen);

    // A server without CAPA at all offers no STLS either.
    let (port, seen) = scripted(b"+OK hello\r\n", |_| send("-ERR unknown command\r\n")).await;
    let err = connect(&server(port, Tls::Starttls)).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Tls(_)), "{err:?}");
    no_password_sent(&seen);
}

#[tokio::test]
async fn rule_19_stls_refused_aborts() {
    let (port, seen) = scripted(b"+OK hello\r\n", |line| match line {
        "CAPA" => send("+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
        "STLS" => send("-ERR TLS not available right now\r\n"),
        _ => send("+OK\r\n"),
    })
    .await;
    let err = connect(&server(port, Tls::Starttls)).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Tls(_)), "{err:?}");
    assert!(
        err.to_string().contains("refused STLS") && err.to_string().contains("not available"),
        "{err}"
    );
    no_password_sent(&seen);
}

#[tokio::test]
async fn rule_19_bytes_after_the_stls_ok_abort() {
    let (port, seen) = scripted(b"+OK hello\r\n", |line| match line {
        "CAPA" => send("+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
        // A man in the middle appends a forged answer before the handshake.
        "STLS" => send("+OK begin TLS\r\n+OK\r\nUSER\r\n.\r\n"),
        _ => send("+OK\r\n"),
    })
    .await;
    let err = connect(&server(port, Tls::Starttls)).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("injection"), "{err}");
    no_password_sent(&seen);
}

#[tokio::test]
async fn rule_19_plaintext_to_a_remote_host_is_refused_before_connecting() {
    let mut s = server(9, Tls::None);
    s.host = "pop.example.invalid".into();
    let err = connect(&s).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("plaintext"), "{err}");
}

#[tokio::test]
async fn plaintext_to_loopback_logs_in_with_user_pass() {
    let (port, seen) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |l| match l {
            "STAT" => send("+OK 0 0\r\n"),
            _ => send("+OK bye\r\n"),
        })
    })
    .await;
    let mut c = connect(&server(port, Tls::None)).await.unwrap();
    assert_eq!(c.stat().await.unwrap().count, 0);
    c.quit().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "CAPA".to_owned(),
            "USER alice".into(),
            format!("PASS {PASSWORD}"),
            "STAT".into(),
            "QUIT".into()
        ]
    );
}

#[tokio::test]
async fn a_retr_that_never_ends_times_out() {
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |l| match l {
            "RETR 1" => send("+OK\r\nSubject: stalled\r\n\r\nfirst line\r\n"),
            _ => Reply::Stall,
        })
    })
    .await;
    let mut c = connect(&server(port, Tls::None)).await.unwrap();
    let mut partial = Vec::new();
    let started = std::time::Instant::now();
    let err = c.retr(MsgNo(1), &mut partial).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5));
    // What arrived was written; the caller discards its tmp file.
    assert_eq!(partial, b"Subject: stalled\r\n\r\nfirst line\r\n");
    // The session is out of step now and says so.
    let again = c.noop().await.unwrap_err();
    assert!(again.to_string().contains("unusable"), "{again}");
}

#[tokio::test]
async fn a_silent_server_times_out_at_the_greeting() {
    let port = pop3_script::silent().await;
    let err = connect(&server(port, Tls::None)).await.unwrap_err();
    assert!(
        matches!(err, Pop3Error::Timeout { what, .. } if what.contains("greeting")),
        "{err:?}"
    );
}

#[tokio::test]
async fn rule_18_overlong_line_is_an_error() {
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |l| match l {
            "STAT" => Reply::Send([b"+OK 1 ".as_slice(), &vec![b'9'; 100_000]].concat()),
            _ => Reply::Stall,
        })
    })
    .await;
    let mut c = connect(&server(port, Tls::None)).await.unwrap();
    let err = c.stat().await.unwrap_err();
    assert!(matches!(err, Pop3Error::Protocol(_)), "{err:?}");
    assert!(err.to_string().contains("longer than"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn rule_18_a_200_byte_uidl_is_an_error_naming_the_message() {
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |l| match l {
            "UIDL" => {
                Reply::Send(format!("+OK\r\n1 ok\r\n2 {}\r\n.\r\n", "u".repeat(200)).into_bytes())
            }
            _ => Reply::Stall,
        })
    })
    .await;
    let mut c = connect(&server(port, Tls::None)).await.unwrap();
    let err = c.uidl().await.unwrap_err();
    assert!(matches!(err, Pop3Error::Protocol(_)), "{err:?}");
    assert!(err.to_string().contains("message 2"), "{err}");
}

#[tokio::test]
async fn a_server_without_uidl_says_so() {
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |l| match l {
            "UIDL" => send("-ERR unknown command\r\n"),
            "LIST" => send("+OK\r\n1 10\r\n.\r\n"),
            _ => Reply::Stall,
        })
    })
    .await;
    let mut c = connect(&server(port, Tls::None)).await.unwrap();
    let err = c.uidl().await.unwrap_err();
    assert!(matches!(err, Pop3Error::NoUidl { .. }), "{err:?}");
    // The caller falls back on the same session.
    assert_eq!(c.list().await.unwrap(), [(MsgNo(1), 10)]);
}

#[tokio::test]
async fn a_locked_maildrop_is_transient_and_a_wrong_password_is_not() {
    let (port, _) = scripted(b"+OK hello\r\n", |line| match line.split(' ').next() {
        Some("CAPA") => send("+OK\r\nUSER\r\nRESP-CODES\r\n.\r\n"),
        Some("USER") => send("+OK\r\n"),
        _ => send("-ERR [IN-USE] maildrop locked by another session\r\n"),
    })
    .await;
    let err = connect(&server(port, Tls::None)).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Busy(_)), "{err:?}");
    assert!(err.is_transient());

    // A server that echoes the password back: it is cut out of the error (rule 20).
    let (port, _) = scripted(b"+OK hello\r\n", |line| match line.split(' ').next() {
        Some("CAPA") => send("+OK\r\nUSER\r\n.\r\n"),
        Some("USER") => send("+OK\r\n"),
        _ => send("-ERR [AUTH] bad password scripted-pw-4711\r\n"),
    })
    .await;
    let err = connect(&server(port, Tls::None)).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Auth(_)), "{err:?}");
    assert!(!err.is_transient());
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    assert!(err.to_string().contains("<redacted>"), "{err}");
}

#[tokio::test]
async fn auth_plain_is_used_when_offered() {
    let (port, seen) = scripted(b"+OK hello\r\n", |line| match line.split(' ').next() {
        Some("CAPA") => send("+OK\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n"),
        Some("AUTH") => send("+OK logged in\r\n"),
        _ => send("+OK\r\n"),
    })
    .await;
    let c = connect(&server(port, Tls::None)).await.unwrap();
    c.quit().await.unwrap();
    let seen = seen.lock().unwrap();
    // base64("\0alice\0scripted-pw-4711")
    assert_eq!(seen[1], "AUTH PLAIN AGFsaWNlAHNjcmlwdGVkLXB3LTQ3MTE=");
}

#[tokio::test]
async fn apop_login_when_configured() {
    let (port, seen) = scripted(
        b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n",
        |line| match line.split(' ').next() {
            Some("CAPA") => send("-ERR\r\n"),
            _ => send("+OK\r\n"),
        },
    )
    .await;
    let mut s = server(port, Tls::None);
    s.auth = AuthMech::Apop;
    s.user = "mrose".into();
    let c = Pop3Client::connect(&s, &Secret::new("tanstaaf"), CredentialKind::Password)
        .await
        .unwrap();
    c.quit().await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[1], "APOP mrose c4c9334bac560ecc979e58001b3e22fb");
}

#[tokio::test]
async fn a_failed_quit_is_reported() {
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |l| match l {
            "QUIT" => send("-ERR [SYS/PERM] some deleted messages not removed\r\n"),
            _ => send("+OK\r\n"),
        })
    })
    .await;
    let mut c = connect(&server(port, Tls::None)).await.unwrap();
    c.dele(MsgNo(1)).await.unwrap();
    let err = c.quit().await.unwrap_err();
    assert!(
        matches!(&err, Pop3Error::Refused { command, .. } if command == "QUIT"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_cancelled_call_leaves_the_session_refusing_commands() {
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |l| match l {
            "RETR 1" => send("+OK\r\nhalf of a message\r\n"),
            _ => send("+OK\r\n"),
        })
    })
    .await;
    let mut c = connect(&server(port, Tls::None)).await.unwrap();
    let mut partial = Vec::new();
    let cut =
        tokio::time::timeout(Duration::from_millis(100), c.retr(MsgNo(1), &mut partial)).await;
    assert!(cut.is_err(), "the caller's own deadline fired");
    let err = c.noop().await.unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(c.dele(MsgNo(1)).await.is_err());
}

#[tokio::test]
async fn a_refusing_greeting_is_transient() {
    let (port, _) = scripted(b"-ERR too many connections, try later\r\n", |_| {
        Reply::Stall
    })
    .await;
    let err = connect(&server(port, Tls::None)).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Connect(_)), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("too many connections"), "{err}");
}

#[tokio::test]
async fn a_password_with_a_line_break_is_never_sent() {
    let (port, seen) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |_| send("+OK\r\n"))
    })
    .await;
    let err = Pop3Client::connect(
        &server(port, Tls::None),
        &Secret::new("pw\r\nDELE 1"),
        CredentialKind::Password,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Pop3Error::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("DELE"), "{err}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|l| !l.starts_with("PASS") && !l.starts_with("DELE")),
        "{seen:?}"
    );
}

/// `syncmail sync` off the runtime the scripted server runs on.
async fn sync(home: Home) -> (Home, crate::support::hostile::Run) {
    tokio::task::spawn_blocking(move || {
        let run = home.sync();
        (home, run)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_18_an_endless_retr_goes_to_tmp_only_and_memory_stays_bounded() {
    const LINE: &[u8] =
        b"0123456789012345678901234567890123456789012345678901234567890123456789012345\r\n";
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        if !line.starts_with("RETR") {
            return one_message(line);
        }
        Reply::Flood {
            head: b"+OK\r\nSubject: endless\r\n\r\n",
            body: LINE,
            // 100 MB, and no terminating dot: then silence.
            times: 100_000_000 / LINE.len(),
        }
    })
    .await;
    let (home, run) = sync(Home::new("pop3", port, "none")).await;
    eprintln!("{run}");
    assert_eq!(run.code, Some(75), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`")) && run.stderr.contains("no answer"),
        "{run}"
    );
    assert!(run.max_rss_kib < MAX_RSS_KIB, "peak memory too high: {run}");
    assert!(home.messages("INBOX").is_empty(), "{run}");
    let tmp: Vec<_> = std::fs::read_dir(home.root().join("INBOX/tmp"))
        .unwrap()
        .collect();
    assert!(
        tmp.is_empty(),
        "the unfinished download stayed in tmp/: {tmp:?}"
    );
    home.assert_nothing_outside_the_root();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_18_a_message_above_256_mib_is_refused_and_removed_from_tmp() {
    const LINE: &[u8] =
        b"0123456789012345678901234567890123456789012345678901234567890123456789012345\r\n";
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        if !line.starts_with("RETR") {
            return one_message(line);
        }
        Reply::Flood {
            head: b"+OK\r\nSubject: too big\r\n\r\n",
            body: LINE,
            // Just past the bound, still without an end.
            times: (270 << 20) / LINE.len(),
        }
    })
    .await;
    let (home, run) = sync(Home::new("pop3", port, "none")).await;
    eprintln!("{run}");
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`"))
            && run.stderr.contains(&format!("127.0.0.1:{port}"))
            && run
                .stderr
                .contains("RETR sent a message longer than 268435456 bytes"),
        "{run}"
    );
    assert!(run.max_rss_kib < MAX_RSS_KIB, "peak memory too high: {run}");
    assert!(home.messages("INBOX").is_empty(), "{run}");
    let tmp: Vec<_> = std::fs::read_dir(home.root().join("INBOX/tmp"))
        .unwrap()
        .collect();
    assert!(
        tmp.is_empty(),
        "the refused download stayed in tmp/: {tmp:?}"
    );
    home.assert_nothing_outside_the_root();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_18_a_200_byte_uidl_fails_the_poll_and_writes_nothing() {
    let (port, _) = scripted(b"+OK hello\r\n", |line| {
        logged_in(line, |l| match l {
            "UIDL" => {
                Reply::Send(format!("+OK\r\n1 ok\r\n2 {}\r\n.\r\n", "u".repeat(200)).into_bytes())
            }
            "QUIT" => send("+OK bye\r\n"),
            _ => send("-ERR not in this script\r\n"),
        })
    })
    .await;
    let (home, run) = sync(Home::new("pop3", port, "none")).await;
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`")) && run.stderr.contains("message 2"),
        "{run}"
    );
    assert!(home.messages("INBOX").is_empty(), "{run}");
    home.assert_nothing_outside_the_root();
}
