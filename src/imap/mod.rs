//! IMAP: TLS and STARTTLS, login, and (with the sync engine) the session layer that wraps
//! async-imap's gaps: timeouts, checked FETCH results, raw APPEND and QRESYNC.

mod connect;
mod idle;
mod session;
pub mod tls;

use std::time::Duration;

use async_imap::types::NameAttribute;
use futures::TryStreamExt;

pub use connect::{Connected, ImapStream, connect};
pub use idle::{IdleSession, IdleWake};
pub use session::{
    FetchedBody, ImapSession, RemoteMessage, Selected, StoreOutcome, quote, uid_set,
};

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The network: refused, reset, closed. Worth retrying later.
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer while {what} within {limit:?}")]
    Timeout { what: &'static str, limit: Duration },
    /// Certificate, STARTTLS or plaintext-policy failure: retrying will not help.
    #[error("{0}")]
    Tls(String),
    /// Wrong credentials or no usable mechanism.
    #[error("login failed: {0}")]
    Auth(String),
    /// The server said something we cannot accept.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ImapError {
    /// Failures that may go away by themselves (network, timeouts), as opposed to ones
    /// the user must fix (credentials, certificates).
    pub fn is_transient(&self) -> bool {
        matches!(self, ImapError::Connect(_) | ImapError::Timeout { .. })
    }
}

/// A folder as LIST reports it: the raw (modified UTF-7) name and its delimiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFolder {
    pub raw_name: String,
    pub delimiter: Option<char>,
    /// `\Noselect` / `\NonExistent`: a hierarchy node that holds no messages.
    pub selectable: bool,
}

/// `LIST "" "*"`: every folder with its hierarchy delimiter. NAMESPACE is avoided on
/// purpose: async-imap's parser cannot read it.
pub async fn list_folders(
    connected: &mut Connected,
    timeout: Duration,
) -> Result<Vec<ListedFolder>, ImapError> {
    let fut = async {
        let stream = connected
            .session
            .list(Some(""), Some("*"))
            .await
            .map_err(|e| ImapError::Protocol(format!("LIST failed: {e}")))?;
        let names: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| ImapError::Protocol(format!("LIST failed: {e}")))?;
        Ok::<_, ImapError>(names)
    };
    let names = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ImapError::Timeout {
            what: "listing folders",
            limit: timeout,
        })??;
    let mut folders: Vec<ListedFolder> = names
        .iter()
        .map(|n| ListedFolder {
            raw_name: n.name().to_owned(),
            delimiter: n.delimiter().and_then(|d| d.chars().next()),
            selectable: !n.attributes().iter().any(|a| match a {
                NameAttribute::NoSelect => true,
                NameAttribute::Extension(ext) => ext.eq_ignore_ascii_case("\\NonExistent"),
                _ => false,
            }),
        })
        .collect();
    folders.sort_by(|a, b| a.raw_name.cmp(&b.raw_name));
    Ok(folders)
}
