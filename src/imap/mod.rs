//! IMAP: the greeting, STARTTLS and login over a [`crate::net`] transport, COMPRESS, the
//! bounds on IMAP framing, and (with the sync engine) the session layer that wraps
//! async-imap's gaps: timeouts, checked FETCH results, raw APPEND and QRESYNC.

pub mod bound;
mod caps;
mod connect;
mod idle;
mod namespace;
mod session;
mod status;

use std::time::Duration;

use async_imap::types::NameAttribute;
use futures::TryStreamExt;

use crate::net::NetError;

pub use caps::fallbacks;
pub use connect::{Connected, ImapStream, connect};
pub use idle::{IdleSession, IdleWake, Notice};
pub use namespace::{Namespace, parse_personal as parse_namespace};
pub use session::{
    Deleted, FetchedBody, Identity, ImapSession, RemoteMessage, Selected, StoreOutcome, quote,
    uid_set,
};
pub use status::{FolderStatus, Statuses};

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
    /// The server sent a line or literal beyond the bounds (rule 18): hostile or broken.
    /// The connection is out of step and unusable; retrying soon will not help.
    #[error("{0}")]
    Bound(String),
    /// The server kept refusing a command as throttled (`Suggested Backoff Time`), after
    /// waiting as asked each time. Worth retrying later.
    #[error(
        "the server throttled {what} {attempts} times (last asked to wait {backoff:?}); trying again later"
    )]
    Throttled {
        what: String,
        backoff: Duration,
        attempts: u32,
    },
    /// The server refused the connection as one too many for this user (Gmail's
    /// `[ALERT] Too many simultaneous connections`, Dovecot's
    /// `mail_max_userip_connections`): retried later with fewer connections.
    #[error("the server refused one connection too many: {0}")]
    TooManyConnections(String),
    /// The provider stopped the account for a while (Gmail's `[ALERT] Account exceeded
    /// command or bandwidth limits`): the account pauses, it is not retried in a loop.
    #[error(
        "the server paused the account: {0} (its daily command or bandwidth limit; syncmail waits before trying again)"
    )]
    OverLimit(String),
    /// The folder is not on the server (any more): another client deleted or renamed it
    /// after we listed it. Not the folder's failure: the next listing sees it gone.
    #[error("{0}")]
    NoSuchFolder(String),
    /// A message above the server's APPENDLIMIT: that message's failure, not the folder's.
    #[error("the message is {size} bytes, above the server's APPENDLIMIT of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
}

impl ImapError {
    /// A failed read or write on the session's stream: a crossed bound (rule 18) is the
    /// server's fault and says what it sent; anything else is the network.
    pub(crate) fn io(e: &std::io::Error, during: impl std::fmt::Display) -> ImapError {
        match bound::BoundError::within(e) {
            Some(b) => ImapError::Bound(format!("{b} ({during})")),
            None if closed_mid_deflate(e) => ImapError::Connect(format!(
                "{during}: the connection closed (the server's compressed stream ended)"
            )),
            None => ImapError::Connect(format!("{during}: {e}")),
        }
    }

    /// The same for an error async-imap reports.
    pub(crate) fn lib(e: &async_imap::error::Error, during: impl std::fmt::Display) -> ImapError {
        match e {
            async_imap::error::Error::Io(io) => ImapError::io(io, during),
            other => ImapError::Connect(format!("{during}: {other}")),
        }
    }

    /// Failures that may go away by themselves (network, timeouts), as opposed to ones
    /// the user must fix (credentials, certificates).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ImapError::Connect(_)
                | ImapError::Timeout { .. }
                | ImapError::Throttled { .. }
                | ImapError::TooManyConnections(_)
                | ImapError::OverLimit(_)
        )
    }

    /// The provider's limit on the account was reached: pause, do not retry soon.
    pub fn is_over_limit(&self) -> bool {
        matches!(self, ImapError::OverLimit(_))
    }

    /// Whether the connection is gone or out of step, so nothing more can be sent on it.
    pub fn ends_session(&self) -> bool {
        self.is_transient() || matches!(self, ImapError::Bound(_))
    }
}

/// Whether a read failed because the connection closed under COMPRESS=DEFLATE: the
/// decompressor, told the input ended, cannot finish a stream that never ends (RFC
/// 4978) and says "unexpected BufError" (async-compression 0.4 over flate2), where an
/// uncompressed session reads a plain end of stream. The soak's cut links and server
/// restarts showed up as that text, which named no cause.
fn closed_mid_deflate(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string() == "unexpected BufError"
}

/// Whether a server's answer (a NO, a BYE) says the account exceeded the provider's
/// command or bandwidth limit (Gmail: `[ALERT] Account exceeded command or bandwidth
/// limits`). Recognised by its words, not by who sent it.
pub(crate) fn says_over_limit(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("exceeded command or bandwidth limits") || lower.contains("bandwidth limit")
}

/// Whether a server's refusal (a NO to the login, a BYE) says the user has too many
/// connections open. Recognised by its words, not by who sent it.
pub(crate) fn says_too_many_connections(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("too many simultaneous connections")
        || lower.contains("too many connections")
        || lower.contains("maximum number of connections")
        || lower.contains("mail_max_userip_connections")
}

impl From<NetError> for ImapError {
    fn from(e: NetError) -> ImapError {
        match e {
            NetError::Connect(m) => ImapError::Connect(m),
            NetError::Tls(m) => ImapError::Tls(m),
            NetError::Protocol(m) => ImapError::Protocol(m),
        }
    }
}

/// A failed LIST: a crossed bound, the network, or the server's refusal.
fn list_error(e: &async_imap::error::Error) -> ImapError {
    match e {
        async_imap::error::Error::Io(io) => ImapError::io(io, "during LIST"),
        other => ImapError::Protocol(format!("LIST failed: {other}")),
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

/// A hierarchy node without messages: `\Noselect` or `\NonExistent`.
fn selectable(attributes: &[NameAttribute<'_>]) -> bool {
    !attributes.iter().any(|a| match a {
        NameAttribute::NoSelect => true,
        NameAttribute::Extension(ext) => ext.eq_ignore_ascii_case("\\NonExistent"),
        _ => false,
    })
}

/// A LIST response as a [`ListedFolder`] (LIST-STATUS and NOTIFY send them unasked).
fn listed_folder(list: &async_imap::imap_proto::MailboxListData<'_>) -> ListedFolder {
    ListedFolder {
        raw_name: list.name.to_string(),
        delimiter: list.delimiter.as_deref().and_then(|d| d.chars().next()),
        selectable: selectable(&list.name_attributes),
    }
}

/// `LIST "" "*"`: every folder with its hierarchy delimiter. (The personal namespace
/// comes from NAMESPACE at login: [`Connected::namespace`].)
pub async fn list_folders(
    connected: &mut Connected,
    timeout: Duration,
) -> Result<Vec<ListedFolder>, ImapError> {
    let fut = async {
        let stream = connected
            .session
            .list(Some(""), Some("*"))
            .await
            .map_err(|e| list_error(&e))?;
        let names: Vec<_> = stream.try_collect().await.map_err(|e| list_error(&e))?;
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
            selectable: selectable(n.attributes()),
        })
        .collect();
    folders.sort_by(|a, b| a.raw_name.cmp(&b.raw_name));
    Ok(folders)
}

#[cfg(test)]
mod too_many_tests {
    use super::says_too_many_connections as too_many;

    #[test]
    fn the_words_of_gmail_and_dovecot_are_too_many_connections() {
        assert!(too_many(
            "[ALERT] Too many simultaneous connections. (Failure)"
        ));
        assert!(too_many(
            "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)"
        ));
        assert!(!too_many("[AUTHENTICATIONFAILED] Authentication failed."));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compressed_connection_that_closes_says_so() {
        let e = std::io::Error::other("unexpected BufError");
        let got = ImapError::io(&e, "during SELECT").to_string();
        assert_eq!(
            got,
            "cannot connect: during SELECT: the connection closed (the server's compressed stream ended)"
        );
        assert!(ImapError::io(&e, "x").ends_session());
        let other = std::io::Error::other("something else");
        assert!(
            ImapError::io(&other, "x")
                .to_string()
                .ends_with("something else")
        );
    }
}
