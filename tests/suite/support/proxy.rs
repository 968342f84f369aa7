//! A loopback TCP proxy in front of a server that cuts every connection after a given
//! number of bytes in one direction: a link dropped mid-literal, which a real server
//! will not do on cue.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Clone, Copy, Debug)]
pub enum Direction {
    /// Bytes the server sends (a FETCH answer).
    ToClient,
    /// Bytes the client sends (an APPEND literal).
    ToServer,
}

pub struct CutProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(target_port: u16, direction: Direction, cut_after: usize) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(("127.0.0.1", target_port)).unwrap();
                        let (to_client, to_server) = match direction {
                            Direction::ToClient => (Some(cut_after), None),
                            Direction::ToServer => (None, Some(cut_after)),
                        };
                        pump(
                            server.try_clone().unwrap(),
                            client.try_clone().unwrap(),
                            to_client,
                        );
                        pump(client, server, to_server);
                    }
                    Err(_) => thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        CutProxy { port, stop }
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copy `from` -> `to`; after `limit` bytes, cut both sockets.
fn pump(mut from: TcpStream, mut to: TcpStream, limit: Option<usize>) {
    thread::spawn(move || {
        let mut sent = 0usize;
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let allowed = limit.map_or(n, |l| n.min(l.saturating_sub(sent)));
            if to.write_all(&buf[..allowed]).is_err() {
                break;
            }
            sent += allowed;
            if allowed < n {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A loopback proxy for long-lived connections with a hand on the cable: cut every
/// current connection now (a dropped link), stop forwarding while keeping them open (a
/// half-open link: nothing arrives, nothing says so), or slow it down (a poor link).
pub struct LinkProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    /// Milliseconds of delay before each chunk of at most 16 KiB is passed on.
    delay_ms: Arc<AtomicU64>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl LinkProxy {
    pub fn start(target_port: u16) -> LinkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        listener.set_nonblocking(true).unwrap();
        let (stopping, conns) = (stop.clone(), live.clone());
        let link = Link {
            paused: paused.clone(),
            delay_ms: delay_ms.clone(),
        };
        thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                            continue;
                        };
                        {
                            let mut c = conns.lock().unwrap();
                            // Forget the closed ones, so a long run holds no more than
                            // it has open.
                            c.retain(|s| s.peer_addr().is_ok());
                            c.push(client.try_clone().unwrap());
                            c.push(server.try_clone().unwrap());
                        }
                        relay(
                            server.try_clone().unwrap(),
                            client.try_clone().unwrap(),
                            link.clone(),
                        );
                        relay(client, server, link.clone());
                    }
                    Err(_) => thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        LinkProxy {
            port,
            stop,
            paused,
            delay_ms,
            live,
        }
    }

    /// Drop every connection open now; new ones are accepted as before.
    pub fn cut_all(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// While paused, bytes are held back in both directions and connections stay open.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Wait this long before passing on each chunk (0: full speed).
    pub fn set_delay(&self, per_chunk: std::time::Duration) {
        self.delay_ms
            .store(per_chunk.as_millis() as u64, Ordering::Relaxed);
    }
}

/// What the hand on the cable has set, shared by every relay of one proxy.
#[derive(Clone)]
struct Link {
    paused: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut_all();
    }
}

/// Copy `from` -> `to`, holding bytes back while paused, slowed while a delay is set.
fn relay(mut from: TcpStream, mut to: TcpStream, link: Link) {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while link.paused.load(Ordering::Relaxed) {
                thread::sleep(std::time::Duration::from_millis(10));
            }
            let delay = link.delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                thread::sleep(std::time::Duration::from_millis(delay));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
