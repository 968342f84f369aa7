//! The systemd notification protocol (sd_notify(3)): one datagram per state change to
//! `$NOTIFY_SOCKET`, a path or an abstract `@name`. Without the variable it does
//! nothing, so the same binary runs under launchd or a terminal.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Notifier {
    socket: Option<String>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        Notifier {
            socket: std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    pub fn to_socket(socket: impl Into<String>) -> Notifier {
        Notifier {
            socket: Some(socket.into()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Send `state` (e.g. `READY=1`); failures are logged, never fatal.
    pub fn send(&self, state: &str) {
        let Some(socket) = &self.socket else {
            return;
        };
        if let Err(e) = send_to(socket, state.as_bytes()) {
            tracing::debug!("sd_notify to {socket}: {e}");
        }
    }

    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// One line for `systemctl status`.
    pub fn status(&self, line: &str) {
        self.send(&format!("STATUS={}", line.replace('\n', " ")));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

/// Half of `$WATCHDOG_USEC` when the watchdog is on for this process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec) / 2)
}

fn send_to(socket: &str, message: &[u8]) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(message, &addr)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets need Linux"));
        }
    }
    sock.send_to(message, socket)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to_socket(path.to_str().unwrap());
        n.ready();
        n.status("2 accounts, all idle\nsecond line");
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=2 accounts, all idle second line");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("syncmail-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::to_socket(format!("@{name}")).watchdog();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn silent_without_a_socket() {
        Notifier::default().ready();
        assert!(!Notifier::default().enabled());
    }
}
