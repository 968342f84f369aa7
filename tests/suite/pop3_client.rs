//! The POP3 client against a real Dovecot: implicit TLS and STLS login, listings,
//! byte-exact streamed RETR (dot lines, 5 MiB), and DELE that only counts at QUIT.

use std::io::Write;

use syncmail::pop3::{MsgNo, Pop3Client, Pop3Error};
use syncmail::secret::{CredentialKind, Secret};

use crate::support::account::{account, secret_of};
use crate::support::dovecot::{DOT_LINES_MESSAGE, dotted_5_mib_message, message};
use crate::support::{DEFAULT_PASSWORD, Dovecot};

async fn connect(dovecot: &Dovecot, tls: &str) -> Pop3Client {
    let account = account(&dovecot.pop3_account("t", "alice", tls));
    let (secret, kind) = secret_of(&account).await;
    Pop3Client::connect(&account.server, &secret, kind)
        .await
        .unwrap()
}

fn seed(dovecot: &Dovecot, n: usize) -> Vec<Vec<u8>> {
    (1..=n)
        .map(|i| {
            let m = message(
                &format!("m{i}"),
                &format!("m{i}@test"),
                &format!("body {i}"),
            );
            dovecot.seed("alice", "INBOX", &m);
            m
        })
        .collect()
}

#[tokio::test]
async fn implicit_tls_login_stat_uidl_list() {
    let dovecot = Dovecot::start();
    let seeded = seed(&dovecot, 3);
    let mut c = connect(&dovecot, "implicit").await;
    assert!(c.has_capability("UIDL") && c.has_capability("top"), "{c:?}");

    let stat = c.stat().await.unwrap();
    assert_eq!(stat.count, 3);
    let total: usize = seeded.iter().map(Vec::len).sum();
    assert_eq!(stat.octets, total as u64);

    let uidls = c.uidl().await.unwrap();
    assert_eq!(
        uidls.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        [MsgNo(1), MsgNo(2), MsgNo(3)]
    );
    let distinct: std::collections::BTreeSet<_> = uidls.iter().map(|(_, u)| u).collect();
    assert_eq!(distinct.len(), 3, "{uidls:?}");
    assert_eq!(c.uidl_one(MsgNo(2)).await.unwrap(), uidls[1].1);

    let sizes = c.list().await.unwrap();
    let want: Vec<_> = seeded
        .iter()
        .enumerate()
        .map(|(i, m)| (MsgNo(i as u32 + 1), m.len() as u64))
        .collect();
    assert_eq!(sizes, want);

    // TOP n 0: the header and the blank line, nothing of the body.
    let mut head = Vec::new();
    c.top(MsgNo(1), 0, &mut head).await.unwrap();
    let end = seeded[0].windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(head, &seeded[0][..end]);

    c.noop().await.unwrap();
    c.quit().await.unwrap();
    assert_eq!(dovecot.list("alice", "INBOX").len(), 3, "nothing deleted");
}

#[tokio::test]
async fn stls_login_on_the_plain_port() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 1);
    let mut c = connect(&dovecot, "starttls").await;
    // CAPA was read again over TLS: Dovecot no longer offers STLS there.
    assert!(!c.has_capability("STLS"), "{c:?}");
    assert!(c.has_capability("UIDL"), "{c:?}");
    assert_eq!(c.stat().await.unwrap().count, 1);
    let mut body = Vec::new();
    c.retr(MsgNo(1), &mut body).await.unwrap();
    assert!(body.starts_with(b"From: Sender"));
    c.quit().await.unwrap();
}

#[tokio::test]
async fn user_pass_login_when_configured() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 1);
    let toml = dovecot.pop3_account("t", "alice", "implicit") + "auth = \"login\"\n";
    let a = account(&toml);
    let mut c = Pop3Client::connect(
        &a.server,
        &Secret::new(DEFAULT_PASSWORD),
        CredentialKind::Password,
    )
    .await
    .unwrap();
    assert_eq!(c.stat().await.unwrap().count, 1);
    c.quit().await.unwrap();
}

#[tokio::test]
async fn rule_20_password_not_in_errors() {
    let dovecot = Dovecot::start();
    let wrong = "wr0ng-s3cret-Zq7";
    for auth in ["auto", "login", "plain"] {
        let toml = dovecot.pop3_account("t", "alice", "implicit") + &format!("auth = \"{auth}\"\n");
        let a = account(&toml);
        let err = Pop3Client::connect(&a.server, &Secret::new(wrong), CredentialKind::Password)
            .await
            .expect_err("wrong password accepted");
        assert!(matches!(err, Pop3Error::Auth(_)), "{auth}: {err:?}");
        assert!(
            !err.is_transient(),
            "{auth}: a wrong password is not worth retrying"
        );
        let text = err.to_string();
        assert!(text.contains("`alice`"), "{auth}: {text}");
        assert!(
            text.contains(&format!("localhost:{}", dovecot.pop3s_port)),
            "{auth}: {text}"
        );
        assert!(!text.contains(wrong), "{auth}: {text}");
        assert!(!format!("{err:?}").contains(wrong), "{auth}: {err:?}");
    }
}

#[tokio::test]
async fn apop_without_a_greeting_timestamp_is_an_auth_error() {
    let dovecot = Dovecot::start();
    let toml = dovecot.pop3_account("t", "alice", "implicit") + "auth = \"apop\"\n";
    let a = account(&toml);
    let err = Pop3Client::connect(
        &a.server,
        &Secret::new(DEFAULT_PASSWORD),
        CredentialKind::Password,
    )
    .await
    .expect_err("APOP without a timestamp");
    assert!(matches!(err, Pop3Error::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("APOP timestamp"), "{err}");
}

#[tokio::test]
async fn rule_15_dot_lines_arrive_byte_exact() {
    let dovecot = Dovecot::start();
    let original = DOT_LINES_MESSAGE;
    dovecot.seed("alice", "INBOX", original);
    let mut c = connect(&dovecot, "implicit").await;
    let mut got = Vec::new();
    let n = c.retr(MsgNo(1), &mut got).await.unwrap();
    assert_eq!(n, got.len() as u64);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(original)
    );
    assert_eq!(got, original);
    c.quit().await.unwrap();
}

/// Counts and hashes what it is given, keeping none of it; notes the largest write.
struct Sink {
    digest: ring::digest::Context,
    len: u64,
    largest_write: usize,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.digest.update(buf);
        self.len += buf.len() as u64;
        self.largest_write = self.largest_write.max(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_5_mib_message_streams_byte_exact_in_bounded_chunks() {
    let dovecot = Dovecot::start();
    let original = dotted_5_mib_message();
    dovecot.seed("alice", "INBOX", &original);
    let mut c = connect(&dovecot, "implicit").await;
    assert_eq!(c.list().await.unwrap(), [(MsgNo(1), original.len() as u64)]);
    let mut sink = Sink {
        digest: ring::digest::Context::new(&ring::digest::SHA256),
        len: 0,
        largest_write: 0,
    };
    let n = c.retr(MsgNo(1), &mut sink).await.unwrap();
    assert_eq!(n, original.len() as u64);
    assert_eq!(sink.len, original.len() as u64);
    assert_eq!(
        sink.digest.finish().as_ref(),
        ring::digest::digest(&ring::digest::SHA256, &original).as_ref()
    );
    // Streamed: no write was more than one body chunk.
    assert!(
        sink.largest_write <= syncmail::pop3::proto::BODY_CHUNK,
        "{}",
        sink.largest_write
    );

    // And into a file, as the poller will do with a Maildir tmp/ file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    c.retr(MsgNo(1), &mut file).await.unwrap();
    file.flush().unwrap();
    drop(file);
    assert!(std::fs::read(&path).unwrap() == original);
    c.quit().await.unwrap();
}

#[tokio::test]
async fn rule_15_dele_takes_effect_only_at_quit() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 2);

    // DELE, then the connection drops without QUIT: nothing is deleted.
    let mut c = connect(&dovecot, "implicit").await;
    let before = c.uidl().await.unwrap();
    c.dele(MsgNo(1)).await.unwrap();
    drop(c);
    let mut remaining = dovecot.list("alice", "INBOX");
    for _ in 0..50 {
        if remaining.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        remaining = dovecot.list("alice", "INBOX");
    }
    assert_eq!(
        remaining.len(),
        2,
        "DELE without QUIT deleted: {remaining:?}"
    );

    // The next session still sees both with the same UIDLs; DELE is sent again, and
    // QUIT makes it real.
    let mut c = connect(&dovecot, "implicit").await;
    assert_eq!(c.uidl().await.unwrap(), before);
    c.dele(MsgNo(1)).await.unwrap();
    // A deleted message is gone for the rest of the session.
    let err = c.retr(MsgNo(1), &mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, Pop3Error::Refused { .. }), "{err:?}");
    c.quit().await.unwrap();
    assert_eq!(dovecot.list("alice", "INBOX").len(), 1);
    let mut c = connect(&dovecot, "implicit").await;
    assert_eq!(c.uidl().await.unwrap(), [(MsgNo(1), before[1].1.clone())]);
    c.quit().await.unwrap();
}

#[tokio::test]
async fn rset_undoes_dele_and_a_bad_message_number_is_refused() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 1);
    let mut c = connect(&dovecot, "implicit").await;
    let err = c.retr(MsgNo(7), &mut Vec::new()).await.unwrap_err();
    match &err {
        Pop3Error::Refused { command, text, .. } => {
            assert_eq!(command, "RETR 7");
            assert!(!text.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient());
    // The session is still in step.
    c.dele(MsgNo(1)).await.unwrap();
    c.rset().await.unwrap();
    c.quit().await.unwrap();
    assert_eq!(dovecot.list("alice", "INBOX").len(), 1);
}

#[tokio::test]
async fn dele_many_is_pipelined_and_reports_a_refusal_after_all_answers() {
    let dovecot = Dovecot::start();
    let n = 70; // more than one pipelining window
    seed(&dovecot, n);
    let mut c = connect(&dovecot, "implicit").await;
    assert!(c.has_capability("PIPELINING"), "{c:?}");
    let uidls = c.uidl().await.unwrap();
    let mut doomed: Vec<MsgNo> = (1..n as u32).map(MsgNo).collect();
    doomed.insert(10, MsgNo(999));
    let err = c.dele_many(&doomed).await.unwrap_err();
    assert!(
        matches!(&err, Pop3Error::Refused { command, .. } if command == "DELE 999"),
        "{err:?}"
    );
    // Still in step after the whole batch.
    assert_eq!(c.stat().await.unwrap().count, 1);
    c.quit().await.unwrap();
    let mut c = connect(&dovecot, "implicit").await;
    assert_eq!(
        c.uidl().await.unwrap(),
        [(MsgNo(1), uidls[n - 1].1.clone())]
    );
    c.quit().await.unwrap();
}

#[tokio::test]
async fn pipelined_retr_reads_answers_in_order_and_survives_a_refusal() {
    let dovecot = Dovecot::start();
    let seeded = seed(&dovecot, 3);
    let mut c = connect(&dovecot, "implicit").await;
    c.retr_ahead(&[MsgNo(1), MsgNo(7)]).await.unwrap();
    c.retr_ahead(&[MsgNo(3)]).await.unwrap();
    // Nothing else goes out while RETR answers are owed, and that does not break it.
    let err = c.stat().await.unwrap_err();
    assert!(matches!(err, Pop3Error::Protocol(_)), "{err:?}");
    let mut one = Vec::new();
    c.retr_next(&mut one).await.unwrap();
    assert_eq!(one, seeded[0]);
    let err = c.retr_next(&mut Vec::new()).await.unwrap_err();
    assert!(
        matches!(&err, Pop3Error::Refused { command, .. } if command == "RETR 7"),
        "{err:?}"
    );
    let mut three = Vec::new();
    c.retr_next(&mut three).await.unwrap();
    assert_eq!(three, seeded[2]);
    assert!(c.retr_next(&mut Vec::new()).await.is_err(), "none left");
    assert_eq!(c.stat().await.unwrap().count, 3);
    c.quit().await.unwrap();
}
