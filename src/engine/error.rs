//! How a pass fails: typed, so that callers tell a full disk, a permission problem, a
//! vanished file and a server fault apart without reading text.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::imap::ImapError;
use crate::maildir::{self, DeliveryError, FolderError, MessageError};
use crate::model::FolderName;
use crate::secret::SecretError;
use crate::store::{LockError, StoreError};

use super::recover::RecoveryError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// The Maildir: a full disk, permissions, a vanished root or file.
    #[error("local: {0}")]
    Local(#[from] LocalError),
    /// The server did something a sync cannot accept.
    #[error("server: {0}")]
    Server(String),
    #[error("{0}")]
    Unsupported(String),
    /// Every connection `max_connections` allows is in use (by this process or
    /// another on the same state directory): worth a short wait, not a human.
    #[error("all {0} connections of max_connections are in use")]
    Busy(usize),
    /// The caller asked the pass to stop (shutdown); what was done is committed.
    #[error("stopped before the pass finished (shutting down)")]
    Stopped,
}

/// A held account lock stays a lock error, whichever layer found it, so a caller can
/// wait for the holder instead of failing.
impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> EngineError {
        match e {
            StoreError::Locked(lock) => EngineError::Lock(lock),
            other => EngineError::Store(other),
        }
    }
}

impl EngineError {
    /// Worth retrying later without a human (network trouble).
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Busy(_) => true,
            EngineError::Imap(e) => e.is_transient(),
            EngineError::Secret(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The provider paused the account (its command or bandwidth limit): wait long.
    pub fn is_over_limit(&self) -> bool {
        matches!(self, EngineError::Imap(e) if e.is_over_limit())
    }

    /// Only a new `syncmail login` can help (no stored OAuth2 login, or a refused one).
    pub fn needs_login(&self) -> bool {
        matches!(self, EngineError::Secret(e) if e.needs_login())
    }

    /// The disk (the Maildir's or the state directory's) is full: worth a pause, not a
    /// human, and worth saying so.
    pub fn is_disk_full(&self) -> bool {
        match self {
            EngineError::Local(e) => e.io_error().is_some_and(io_is_disk_full),
            EngineError::Store(e) => store_is_disk_full(e),
            EngineError::Folder(FolderError::Io { source, .. }) => io_is_disk_full(source),
            _ => false,
        }
    }
}

/// A failure on the local side of a folder, with the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A file-system call on a path failed (a full disk, permissions, a vanished root).
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// Renaming, reading or deleting one message file.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// Writing new messages into the Maildir.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// Resolving deliveries a crash interrupted.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// The Maildir is not as the plan left it (a message in neither folder of a move, a
    /// name already taken); a later pass looks again.
    #[error("{0}")]
    Unexpected(String),
}

impl LocalError {
    /// An IO error on `path`, for `map_err`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LocalError {
        let path = path.into();
        move |source| LocalError::Io { path, source }
    }

    /// The operating system's error underneath, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            LocalError::Io { source, .. }
            | LocalError::Message(MessageError::Io { source, .. })
            | LocalError::Delivery(
                DeliveryError::Io { source, .. } | DeliveryError::Sync { source, .. },
            )
            | LocalError::Recovery(RecoveryError::Io { source, .. }) => Some(source),
            _ => None,
        }
    }
}

/// ENOSPC or EDQUOT.
fn io_is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(libc::ENOSPC)
}

fn store_is_disk_full(e: &StoreError) -> bool {
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
            f.code == rusqlite::ErrorCode::DiskFull
        }
        StoreError::Io { source, .. } => io_is_disk_full(source),
        _ => false,
    }
}

/// What kind of failure a folder had: what the daemon does about it follows from this,
/// never from the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The network or the server, for now: retried with backoff.
    Transient,
    /// Retrying will not help until something changes (a refused CREATE, a name that
    /// cannot be a path): tried again at the next full pass, not in a loop.
    Permanent,
    /// The disk (Maildir or state) is full: the account pauses until space returns.
    DiskFull,
    /// The folder stopped and waits for a human (a deletion guard, a UIDVALIDITY change,
    /// a missing Maildir folder): not retried until the state changes.
    Halted,
}

impl FailureKind {
    /// The kind of a pass error.
    pub fn of(e: &EngineError) -> FailureKind {
        if e.is_disk_full() {
            FailureKind::DiskFull
        } else if e.is_transient() {
            FailureKind::Transient
        } else {
            FailureKind::Permanent
        }
    }
}

/// One thing in an account pass that failed while the rest ran on: a folder (named,
/// so the daemon retries that folder) or something of the whole account (a folder name
/// the server sent that cannot be a path, an unresolved interrupted delivery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderFailure {
    pub folder: Option<FolderName>,
    pub kind: FailureKind,
    /// The line to print: names the folder itself, made safe to print.
    pub text: String,
}

impl FolderFailure {
    /// A folder's failure. A folder error names the folder itself; any other gets the
    /// name in front, made safe to print (rule 17: names come from the server).
    pub fn of_folder(name: &FolderName, e: &EngineError) -> FolderFailure {
        let text = match e {
            EngineError::Folder(_) => e.to_string(),
            _ => format!("{}: {e}", maildir::shown_prefix(&name.0)),
        };
        FolderFailure {
            folder: Some(name.clone()),
            kind: FailureKind::of(e),
            text,
        }
    }

    /// A problem in a folder that is not an error of the pass (its pass still ran).
    pub fn in_folder(name: &FolderName, text: String) -> FolderFailure {
        FolderFailure {
            folder: Some(name.clone()),
            kind: FailureKind::Permanent,
            text,
        }
    }

    /// A folder that stopped and waits for a human; `text` says why and what to run.
    pub fn halted(name: &FolderName, text: String) -> FolderFailure {
        FolderFailure {
            folder: Some(name.clone()),
            kind: FailureKind::Halted,
            text,
        }
    }

    /// Something of the whole account, no one folder's.
    pub fn account(text: impl fmt::Display) -> FolderFailure {
        FolderFailure {
            folder: None,
            kind: FailureKind::Permanent,
            text: text.to_string(),
        }
    }

    /// Worth trying again soon by itself (the network, a full disk that may clear).
    pub fn retry_soon(&self) -> bool {
        matches!(self.kind, FailureKind::Transient | FailureKind::DiskFull)
    }
}

impl fmt::Display for FolderFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
