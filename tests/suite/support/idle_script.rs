//! A one-connection IMAP server on loopback for IDLE: it answers LOGIN and EXAMINE, then
//! plays one script once the client idles (the transcripts a real server will not produce
//! on cue: a silent half-open link, a connection closed mid-IDLE, news before the `+`).
//! Unlike `imap_script`, it sends no greeting and runs on the test's own runtime.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the scripted server does once the client is idling.
#[derive(Clone, Copy)]
pub enum Script {
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
    /// Accept NOTIFY; while idling, report a folder deep in the tree (STATUS) and a
    /// folder created (LIST).
    NotifyEvents,
    /// Refuse NOTIFY (a server that advertises it but will not watch).
    NotifyRefused,
}

/// Listen on a free loopback port and serve the first connection with `script`. Returns
/// the port and the server task.
pub async fn start(script: Script) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (port, tokio::spawn(serve(listener, script)))
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
            "NOTIFY" if matches!(script, Script::NotifyRefused) => {
                format!("{tag} NO [NOTIFICATIONOVERFLOW] not now\r\n")
            }
            "NOTIFY" => format!("{tag} OK NOTIFY set\r\n"),
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
                    Script::NotifyEvents => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        write
                            .write_all(
                                b"* STATUS \"Lists/rust/2026\" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1)\r\n\
                                  * LIST () \"/\" \"Receipts\"\r\n",
                            )
                            .await
                            .unwrap();
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
