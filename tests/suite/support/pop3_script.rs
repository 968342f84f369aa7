//! Scripted POP3 servers on loopback plaintext, for what a real server will not do on
//! cue: `scripted` answers one connection line by line from a plain function (refusals,
//! injected bytes, floods, stalls); `no_uidl_server` serves a small maildrop without
//! UIDL to every connection and deletes at QUIT; `silent` accepts and never greets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the scripted server does when a command line arrives.
pub enum Reply {
    Send(Vec<u8>),
    /// Say nothing and keep the connection open.
    Stall,
    /// Send `head`, then `body` `times` times (a flood), then say nothing.
    Flood {
        head: &'static [u8],
        body: &'static [u8],
        times: usize,
    },
}

/// A one-connection server: sends `greeting`, then answers each command line with
/// `answer(line)`. Returns its port and the command lines it received.
pub async fn scripted(
    greeting: &'static [u8],
    answer: fn(&str) -> Reply,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        write.write_all(greeting).await.unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let command = line.trim_end().to_owned();
            log.lock().unwrap().push(command.clone());
            match answer(&command) {
                Reply::Send(bytes) => {
                    if write.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Reply::Stall => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Reply::Flood { head, body, times } => {
                    if write.write_all(head).await.is_err() {
                        return;
                    }
                    for _ in 0..times {
                        if write.write_all(body).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            }
        }
    });
    (port, seen)
}

pub fn send(s: &str) -> Reply {
    Reply::Send(s.as_bytes().to_vec())
}

/// A well-behaved plaintext server with USER/PASS; `extra` answers anything else.
pub fn logged_in(line: &str, extra: fn(&str) -> Reply) -> Reply {
    match line.split(' ').next().unwrap_or("") {
        "CAPA" => send("+OK\r\nUSER\r\nUIDL\r\n.\r\n"),
        "USER" => send("+OK\r\n"),
        "PASS" => send("+OK logged in\r\n"),
        _ => extra(line),
    }
}

/// A well-behaved maildrop of one message, except for RETR (the caller's part).
pub fn one_message(line: &str) -> Reply {
    logged_in(line, |l| match l.split(' ').next().unwrap_or("") {
        "STAT" => send("+OK 1 100\r\n"),
        "LIST" => send("+OK\r\n1 100\r\n.\r\n"),
        "UIDL" => send("+OK\r\n1 one\r\n.\r\n"),
        "QUIT" => send("+OK bye\r\n"),
        _ => send("-ERR not in this script\r\n"),
    })
}

/// A server that accepts one connection and never says a word. Returns its port.
pub async fn silent() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (_socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    port
}

/// A scripted POP3 server without UIDL, on loopback plaintext: serves `maildrop` to every
/// connection and deletes what was marked at QUIT. Returns its port.
pub async fn no_uidl_server(maildrop: Vec<Vec<u8>>) -> u16 {
    no_uidl_server_failing_quit(maildrop, Arc::new(AtomicBool::new(false))).await
}

/// The same; while `quit_fails` is set, QUIT answers `-ERR` and deletes nothing.
pub async fn no_uidl_server_failing_quit(
    maildrop: Vec<Vec<u8>>,
    quit_fails: Arc<AtomicBool>,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let drop_box = Arc::new(Mutex::new(maildrop));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let drop_box = Arc::clone(&drop_box);
            let quit_fails = Arc::clone(&quit_fails);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut read = BufReader::new(read);
                let msgs = drop_box.lock().unwrap().clone();
                let mut marked = vec![false; msgs.len()];
                let _ = write.write_all(b"+OK ready\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let n = |i: usize| words.get(i).and_then(|w| w.parse::<usize>().ok());
                    let body = |m: &[u8], head_only: bool| {
                        let end = if head_only {
                            m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4
                        } else {
                            m.len()
                        };
                        let mut out = b"+OK\r\n".to_vec();
                        for l in m[..end].split_inclusive(|b| *b == b'\n') {
                            if l.starts_with(b".") {
                                out.push(b'.');
                            }
                            out.extend_from_slice(l);
                        }
                        out.extend_from_slice(b".\r\n");
                        out
                    };
                    let reply: Vec<u8> = match words.first().map(|w| w.to_ascii_uppercase()) {
                        Some(c) if c == "USER" || c == "PASS" || c == "NOOP" => b"+OK\r\n".to_vec(),
                        Some(c) if c == "CAPA" => b"+OK\r\nUSER\r\nTOP\r\n.\r\n".to_vec(),
                        Some(c) if c == "UIDL" => b"-ERR unknown command\r\n".to_vec(),
                        Some(c) if c == "LIST" => {
                            let mut out = b"+OK\r\n".to_vec();
                            for (i, m) in msgs.iter().enumerate() {
                                if !marked[i] {
                                    out.extend(format!("{} {}\r\n", i + 1, m.len()).bytes());
                                }
                            }
                            out.extend_from_slice(b".\r\n");
                            out
                        }
                        Some(c) if c == "TOP" || c == "RETR" => match n(1) {
                            Some(i) if i >= 1 && i <= msgs.len() && !marked[i - 1] => {
                                body(&msgs[i - 1], c == "TOP")
                            }
                            _ => b"-ERR no such message\r\n".to_vec(),
                        },
                        Some(c) if c == "DELE" => match n(1) {
                            Some(i) if i >= 1 && i <= msgs.len() => {
                                marked[i - 1] = true;
                                b"+OK\r\n".to_vec()
                            }
                            _ => b"-ERR no such message\r\n".to_vec(),
                        },
                        Some(c) if c == "QUIT" && quit_fails.load(Ordering::SeqCst) => {
                            let _ = write.write_all(b"-ERR [SYS/PERM] cannot delete\r\n").await;
                            return;
                        }
                        Some(c) if c == "QUIT" => {
                            let kept: Vec<Vec<u8>> = msgs
                                .iter()
                                .zip(&marked)
                                .filter(|(_, m)| !**m)
                                .map(|(b, _)| b.clone())
                                .collect();
                            *drop_box.lock().unwrap() = kept;
                            let _ = write.write_all(b"+OK bye\r\n").await;
                            return;
                        }
                        _ => b"-ERR what\r\n".to_vec(),
                    };
                    if write.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}
