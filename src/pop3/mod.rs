//! POP3 for legacy accounts: a sans-IO protocol state machine ([`proto`]), a thin
//! tokio driver ([`Pop3Client`]) with TLS, strict STLS, login, and streamed RETR. The
//! poller that delivers a maildrop into an account's INBOX is `crate::engine::pop3`:
//! like the IMAP engine, it is where the server, the Maildir and the state DB meet.
//!
//! A poller drives one session as rule 15 asks:
//!
//! ```text
//! let mut c = Pop3Client::connect(&server, &secret, kind).await?;
//! let uidls = c.uidl().await?;              // Err(NoUidl) -> fall back to list()/top()
//! for (msg, uidl) in new ones {
//!     c.retr(msg, &mut tmp_file).await?;    // streamed, dot-unstuffed, byte-exact
//!     /* make durable, record the UIDL */
//! }
//! c.dele_many(&to_delete).await?;          // only marks them (pipelined)
//! c.quit().await?;                          // deletions happen here, and only if Ok
//! ```
//!
//! Dropping a client without [`Pop3Client::quit`] closes the connection without the
//! UPDATE state: the server deletes nothing, so a later session must send DELE again.

mod client;
pub mod proto;

use std::time::Duration;

use crate::net::NetError;

pub use client::{Pop3Client, Stat};
pub use proto::{MsgNo, ProtoError};

#[derive(Debug, thiserror::Error)]
pub enum Pop3Error {
    /// The network: refused, reset, closed. Worth retrying later.
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{server}: no answer while {what} within {limit:?}")]
    Timeout {
        server: String,
        what: &'static str,
        limit: Duration,
    },
    /// The server is temporarily unable (`-ERR [IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`,
    /// RFC 2449/3206): another client holds the maildrop, or a login rate limit.
    #[error("{0}")]
    Busy(String),
    /// Certificate, STLS or plaintext-policy failure: retrying will not help.
    #[error("{0}")]
    Tls(String),
    /// Wrong credentials or no usable mechanism.
    #[error("login failed: {0}")]
    Auth(String),
    /// The server has no UIDL command; the caller may fall back to content hashes.
    #[error("{server} does not support UIDL: {text}")]
    NoUidl { server: String, text: String },
    /// `-ERR` to a command after login (e.g. RETR of a message number that is gone, or
    /// QUIT failing to delete). The session is still usable unless it was QUIT.
    #[error("{server} refused {command}: {text}")]
    Refused {
        server: String,
        command: String,
        text: String,
    },
    /// The server said something we cannot accept (overlong line, bad UIDL, garbage).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Writing a message into the caller's writer failed (e.g. a full disk). The session
    /// is left mid-message and unusable.
    #[error("writing the message locally failed: {0}")]
    Write(#[source] std::io::Error),
}

impl From<NetError> for Pop3Error {
    fn from(e: NetError) -> Pop3Error {
        match e {
            NetError::Connect(m) => Pop3Error::Connect(m),
            NetError::Tls(m) => Pop3Error::Tls(m),
            NetError::Protocol(m) => Pop3Error::Protocol(m),
        }
    }
}

impl Pop3Error {
    /// Failures that may go away by themselves (network, timeouts, a locked maildrop),
    /// as opposed to ones the user must fix (credentials, certificates, a broken server).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Pop3Error::Connect(_) | Pop3Error::Timeout { .. } | Pop3Error::Busy(_)
        )
    }
}
