//! The transport IMAP and POP3 share: TCP with the plaintext policy, TLS (rustls, readable
//! certificate errors, pinning), the [`Stream`] a session runs over, the input bounds that
//! hold before any protocol grammar applies, and the SASL mechanism choice and responses.
//!
//! The seam: [`Stream`] is only `Plain` or `Tls`, what every protocol runs over; POP3
//! uses it as is. COMPRESS=DEFLATE (async-imap's `DeflateStream`) and the literal-aware
//! framing bound (`imap::bound`) follow IMAP's grammar, so `imap::ImapStream` wraps a
//! `Stream` in its own enum for them; holding them here would make `net` know IMAP.

mod bound;
pub mod sasl;
mod stream;
pub mod tls;

pub use bound::{MAX_MESSAGE, MAX_PRELOGIN_LINE, MAX_PRELOGIN_LINES, read_line};
pub use stream::{Stream, bare_host, check_plaintext, connect_tcp};

/// A transport failure, in the terms both protocols' errors have.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The network: refused, reset, closed. Worth retrying later.
    #[error("{0}")]
    Connect(String),
    /// Certificate, STARTTLS or plaintext-policy failure: retrying will not help.
    #[error("{0}")]
    Tls(String),
    /// The server sent what no client should accept (an overlong line).
    #[error("{0}")]
    Protocol(String),
}
