//! The connection under a session, plain TCP or TLS, and how it is opened: the host as a
//! socket wants it, the plaintext policy (rule 19), TCP without Nagle's delay.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::NetError;
use super::tls::TlsSocket;
use crate::config::{Server, Tls};

/// The connection under an IMAP or POP3 session: plain TCP (loopback or explicitly
/// allowed) or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsSocket>),
}

/// The host without the brackets an IPv6 literal is written with in the config.
pub fn bare_host(server: &Server) -> &str {
    server.host.trim_start_matches('[').trim_end_matches(']')
}

/// Refuse `tls = "none"` unless the host is loopback or `allow_plaintext` is set. Asked
/// before any byte goes out, so a refused plaintext never even connects.
pub fn check_plaintext(server: &Server) -> Result<(), NetError> {
    if server.tls == Tls::None && !server.plaintext_allowed() {
        return Err(NetError::Tls(format!(
            "refusing a plaintext connection to {}:{} (not loopback, allow_plaintext not set)",
            server.host, server.port
        )));
    }
    Ok(())
}

/// TCP to the server, without a deadline: the caller sets one.
pub async fn connect_tcp(server: &Server) -> Result<TcpStream, NetError> {
    let tcp = TcpStream::connect((bare_host(server), server.port))
        .await
        .map_err(|e| NetError::Connect(format!("{}:{}: {e}", server.host, server.port)))?;
    // Commands are small and each waits for its answer: sending them at once matters.
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
