//! IDLE against a scripted server: the transcripts a real server will not produce on
//! cue (a silent half-open link, a connection closed mid-IDLE, news before the `+`).

use std::time::Duration;

use syncmail::imap::{Connected, IdleSession, IdleWake, ImapError, ImapStream};
use syncmail::net;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted server does once the client is idling.
#[derive(Clone, Copy)]
enum Script {
    /// Report a new message, then answer DONE.
    Exists,
    /// Say nothing, answer DONE (a quiet folder).
    Quiet,
    /// Say nothing and never answer DONE (a half-open link).
    Silent,
    /// Close the connection.
    Close,
    /// EXISTS before the continuation.
    ExistsBeforeContinue,
}

async fn serve(listener: TcpListener, script: Script) {
    let (sock, _) = listener.accept().await.unwrap();
    let (read, mut write) = sock.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
        let verb = rest.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "LOGIN" => format!("{tag} OK logged in\r\n"),
            "EXAMINE" => {
                format!("* 1 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n{tag} OK [READ-ONLY] done\r\n")
            }
            "IDLE" => {
                let idle_tag = tag.to_owned();
                match script {
                    Script::ExistsBeforeContinue => {
                        write
                            .write_all(b"* 2 EXISTS\r\n+ idling\r\n")
                            .await
                            .unwrap();
                    }
                    _ => write.write_all(b"+ idling\r\n").await.unwrap(),
                }
                match script {
                    Script::Exists => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        write.write_all(b"* 2 EXISTS\r\n").await.unwrap();
                    }
                    Script::Close => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        return;
                    }
                    _ => {}
                }
                // Wait for DONE.
                let Ok(Some(done)) = lines.next_line().await else {
                    return;
                };
                assert_eq!(done.trim(), "DONE");
                if matches!(script, Script::Silent) {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                format!("{idle_tag} OK idle done\r\n")
            }
            "LOGOUT" => format!("* BYE\r\n{tag} OK bye\r\n"),
            _ => format!("{tag} BAD unexpected\r\n"),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn idle_against(script: Script) -> (IdleSession, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(serve(listener, script));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let client = async_imap::Client::new(ImapStream::Net(net::Stream::Plain(tcp)));
    let session = client.login("u", "p").await.map_err(|(e, _)| e).unwrap();
    let connected = Connected {
        session,
        capabilities: vec!["IMAP4rev1".into(), "IDLE".into()],
    };
    assert!(IdleSession::supported(&connected));
    let idle = IdleSession::start(connected, "INBOX", Duration::from_millis(500))
        .await
        .unwrap();
    (idle, server)
}

const REFRESH: Duration = Duration::from_millis(300);

#[tokio::test]
async fn idle_reports_exists_as_a_change() {
    let (mut idle, _s) = idle_against(Script::Exists).await;
    let wake = idle.wait(REFRESH, std::future::pending()).await.unwrap();
    assert_eq!(wake, IdleWake::Changed);
}

#[tokio::test]
async fn news_before_the_continuation_is_not_lost() {
    let (mut idle, _s) = idle_against(Script::ExistsBeforeContinue).await;
    let wake = idle.wait(REFRESH, std::future::pending()).await.unwrap();
    assert_eq!(wake, IdleWake::Changed);
}

#[tokio::test]
async fn a_quiet_folder_is_refreshed_and_interrupts_work() {
    let (mut idle, _s) = idle_against(Script::Quiet).await;
    let t0 = std::time::Instant::now();
    let wake = idle.wait(REFRESH, std::future::pending()).await.unwrap();
    assert_eq!(wake, IdleWake::Refreshed);
    assert!(t0.elapsed() >= REFRESH);
    let wake = idle
        .wait(Duration::from_secs(60), async {
            tokio::time::sleep(Duration::from_millis(50)).await
        })
        .await
        .unwrap();
    assert_eq!(wake, IdleWake::Interrupted);
    idle.logout().await;
}

#[tokio::test]
async fn a_half_open_link_times_out_at_the_refresh() {
    let (mut idle, _s) = idle_against(Script::Silent).await;
    let t0 = std::time::Instant::now();
    let err = idle
        .wait(REFRESH, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ImapError::Timeout { .. }), "{err}");
    assert!(err.is_transient());
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_closed_connection_is_an_error_not_an_interrupt() {
    let (mut idle, _s) = idle_against(Script::Close).await;
    let err = idle
        .wait(Duration::from_secs(60), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ImapError::Connect(_)), "{err}");
}
