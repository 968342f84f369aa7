//! Per-account SQLite state: folders and watermarks, pairs and base flags, the intents
//! journal, the change and conflict logs, POP3 UIDLs, and the account lock.
//!
//! One database file per account (`<state_dir>/<account>.sqlite3`, WAL, 0600). All access
//! goes through [`Store`], a cheap-to-clone handle to one thread that owns the only
//! connection: one writer by construction, and async callers never block on SQLite.
//! Every multi-row change is one transaction ([`Store::commit`]).

pub mod files;
pub mod lock;
mod ops;
pub mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use lock::{AccountLock, LockError};
pub use writer::Store;

/// A server message paired with a local file and the base flags of both sides: the
/// planner's own type, stored as it is.
pub use crate::sync::Pair;

use crate::model::{AccountName, Flag, Flags, FolderName, MaildirKey, ModSeq, Uid, UidValidity};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state database {path:?}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state database has schema version {found}, newer than this syncmail supports ({supported}); upgrade syncmail"
    )]
    TooNew { found: u32, supported: u32 },
    #[error("account name {0:?} cannot name a state file")]
    BadAccountName(String),
    #[error("state database: {0}")]
    Invalid(String),
    #[error("the state database thread has stopped")]
    WriterGone,
    #[error(transparent)]
    Locked(#[from] LockError),
}

/// What `syncmail sync` and the daemon do first: take the account lock, then open (and
/// migrate) the account's database. Keep the lock for as long as the store is used.
pub fn open_account(
    state_dir: &Path,
    account: &AccountName,
) -> Result<(AccountLock, Store), StoreError> {
    let lock = AccountLock::acquire(state_dir, account)?;
    let store = Store::open(&db_path(state_dir, account)?)?;
    Ok((lock, store))
}

/// The database file of an account.
pub fn db_path(state_dir: &Path, account: &AccountName) -> Result<PathBuf, StoreError> {
    Ok(state_dir.join(format!("{}.sqlite3", checked_account(account)?)))
}

/// The lock file of an account, next to its database.
pub fn lock_path(state_dir: &Path, account: &AccountName) -> Result<PathBuf, StoreError> {
    Ok(state_dir.join(format!("{}.lock", checked_account(account)?)))
}

fn checked_account(account: &AccountName) -> Result<&str, StoreError> {
    let n = account.0.as_str();
    let ok = !n.is_empty()
        && n.len() <= 200
        && !n.starts_with('.')
        && !n.contains('/')
        && !n.chars().any(char::is_control);
    if ok {
        Ok(n)
    } else {
        Err(StoreError::BadAccountName(n.to_owned()))
    }
}

/// Row id of a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderId(pub i64);

/// Why a pair gone from its folder waits one pass before it is taken as deleted (a
/// row per pair and kind, which lives as long as the pair's row is unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// One end of its move is seen, the other not, even after a relist
    /// (`pass::wait_for_unseen_moves`).
    Move,
    /// Gone from both sides with no arrival seen anywhere (`pass::wait_for_gone_pairs`).
    Gone,
}

impl Wait {
    fn table(self) -> &'static str {
        match self {
            Wait::Move => "move_waits",
            Wait::Gone => "gone_waits",
        }
    }
}

/// What we know about one server folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderState {
    pub id: FolderId,
    pub server_name: FolderName,
    pub local_path: PathBuf,
    pub uidvalidity: Option<UidValidity>,
    pub highestmodseq: Option<ModSeq>,
    pub uidnext: Option<Uid>,
    /// Every UID up to this one has been pulled (or found paired). `Uid(0)`: none yet.
    pub highest_uid_pulled: Uid,
    /// Set when the folder is halted (e.g. an unresolvable UIDVALIDITY change); the
    /// engine skips it until a human clears it.
    pub halt_reason: Option<String>,
    /// The Maildir folder's directory stamp when it last matched the base exactly (see
    /// `maildir::Maildir::stamp`); `None` when unknown.
    pub local_stamp: Option<String>,
}

/// Watermark updates; `None` leaves a value as it is. The engine moves them only after a
/// whole folder pass committed (rule 4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watermarks {
    pub uidvalidity: Option<UidValidity>,
    pub highestmodseq: Option<ModSeq>,
    pub uidnext: Option<Uid>,
    pub highest_uid_pulled: Option<Uid>,
    /// `Some(stamp)` records the Maildir stamp (`Some(None)` forgets it).
    pub local_stamp: Option<Option<String>>,
}

/// Row id of an intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntentId(pub i64);

/// The non-idempotent actions that are journaled (rule 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntentKind {
    /// A server message written into the Maildir; `local_key` is the planned key.
    Deliver,
    /// A local message APPENDed to the server; `token` is the unique header, `uid` the
    /// UIDNEXT saved before (rule 2).
    Append,
    /// `+FLAGS.SILENT (\Deleted)` on `uid`.
    FlagDeleted,
    /// `UID EXPUNGE` of `uid`.
    Expunge,
    /// `UID MOVE` of `uid`; `detail` names the target folder.
    Move,
    /// Unlinking `local_key`.
    LocalDelete,
    /// A POP3 message delivered; `uidl` and the planned `local_key`.
    Pop3Deliver,
    /// `DELE` for `uidl` (takes effect at QUIT, rule 15).
    Pop3Dele,
}

impl IntentKind {
    const ALL: [IntentKind; 8] = [
        IntentKind::Deliver,
        IntentKind::Append,
        IntentKind::FlagDeleted,
        IntentKind::Expunge,
        IntentKind::Move,
        IntentKind::LocalDelete,
        IntentKind::Pop3Deliver,
        IntentKind::Pop3Dele,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IntentKind::Deliver => "deliver",
            IntentKind::Append => "append",
            IntentKind::FlagDeleted => "flag-deleted",
            IntentKind::Expunge => "expunge",
            IntentKind::Move => "move",
            IntentKind::LocalDelete => "local-delete",
            IntentKind::Pop3Deliver => "pop3-deliver",
            IntentKind::Pop3Dele => "pop3-dele",
        }
    }

    pub fn parse(s: &str) -> Option<IntentKind> {
        IntentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An intent as the engine records it, before acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentSpec {
    pub kind: IntentKind,
    pub folder: Option<FolderId>,
    pub uid: Option<Uid>,
    pub local_key: Option<MaildirKey>,
    pub token: Option<String>,
    pub uidl: Option<String>,
    pub detail: String,
}

impl IntentSpec {
    pub fn new(kind: IntentKind) -> IntentSpec {
        IntentSpec {
            kind,
            folder: None,
            uid: None,
            local_key: None,
            token: None,
            uidl: None,
            detail: String::new(),
        }
    }

    /// A delivery of server message `uid` into `folder` under the planned `key`, with
    /// the server's flags at fetch time (kept in `detail`: they become the pair's base if
    /// recovery finds the file, so a client's later change still shows as a change).
    pub fn deliver(folder: FolderId, uid: Uid, key: MaildirKey, flags: &Flags) -> IntentSpec {
        IntentSpec {
            folder: Some(folder),
            uid: Some(uid),
            local_key: Some(key),
            detail: flags_to_db(flags),
            ..IntentSpec::new(IntentKind::Deliver)
        }
    }

    /// A POP3 message `uidl` delivered into `folder` under the planned `key`.
    pub fn pop3_deliver(folder: FolderId, uidl: &str, key: MaildirKey) -> IntentSpec {
        IntentSpec {
            folder: Some(folder),
            uidl: Some(uidl.to_owned()),
            local_key: Some(key),
            ..IntentSpec::new(IntentKind::Pop3Deliver)
        }
    }

    /// The flags a [`IntentSpec::deliver`] intent recorded.
    pub fn delivered_flags(&self) -> Result<Flags, StoreError> {
        flags_from_db(&self.detail)
    }
}

/// A journaled intent still open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub id: IntentId,
    pub created_at: SystemTime,
    pub spec: IntentSpec,
}

/// Which side a change was seen on: the planner's own type. Stored as `local` /
/// `remote`.
pub use crate::sync::Side;

pub(crate) fn side_to_db(side: Side) -> &'static str {
    match side {
        Side::Local => "local",
        Side::Server => "remote",
    }
}

/// A flag change or deletion seen on one side, and what was done about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRecord {
    pub at: SystemTime,
    pub folder: FolderName,
    pub side: Side,
    pub uid: Option<Uid>,
    pub local_key: Option<MaildirKey>,
    /// e.g. `+S -F`, `deleted`, `new`.
    pub change: String,
    /// e.g. `sent +FLAGS (\Seen)`, `unlinked`, `skipped: direction pull`.
    pub action: String,
}

/// Changes on both sides that met, and how they were resolved (rule 11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictRecord {
    pub at: SystemTime,
    pub folder: FolderName,
    pub uid: Option<Uid>,
    pub local_key: Option<MaildirKey>,
    /// The message's Message-ID, when the base knew it.
    pub message_id: Option<crate::model::MessageId>,
    pub local_change: String,
    pub remote_change: String,
    pub resolution: String,
}

impl ConflictRecord {
    /// What happened, as one phrase: the side that holds the description (the other
    /// holds a placeholder such as "deleted").
    pub fn what(&self) -> &str {
        if ["deleted", "removed", "unchanged"].contains(&self.local_change.as_str()) {
            &self.remote_change
        } else {
            &self.local_change
        }
    }

    /// Which message: its UID, file and Message-ID, as far as known.
    pub fn which(&self) -> String {
        let mut parts = Vec::new();
        if let Some(uid) = self.uid {
            parts.push(format!("UID {uid}"));
        }
        if let Some(key) = &self.local_key {
            parts.push(format!("file {key}"));
        }
        if let Some(id) = &self.message_id {
            parts.push(format!("Message-ID {id}"));
        }
        if parts.is_empty() {
            "the folder".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The latest pass over a folder (or, with `folder` `None`, the account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassStatus {
    pub folder: Option<FolderName>,
    pub last_ok: Option<SystemTime>,
    pub last_attempt: SystemTime,
    /// The error of the latest attempt; `None` when it succeeded.
    pub last_error: Option<String>,
    /// What the daemon is doing for the account (account row only).
    pub daemon_state: Option<String>,
}

/// What `syncmail status` shows of an account, read without taking the lock.
#[derive(Clone, Debug, Default)]
pub struct StatusSnapshot {
    pub folders: Vec<FolderState>,
    pub passes: Vec<PassStatus>,
    /// Journalled actions not yet completed (work an interrupted pass left).
    pub open_intents: usize,
    /// Messages a first contact held, waiting for `syncmail adopt` (rule 21).
    pub holds: Vec<HoldRecord>,
}

/// Read an account's status from its database read-only: works while a daemon holds the
/// lock and writes (WAL readers never block the writer), and never migrates or creates.
pub fn read_status(path: &Path) -> Result<StatusSnapshot, StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let version = schema::version(&conn)?;
    if version > schema::latest_version() {
        return Err(StoreError::TooNew {
            found: version,
            supported: schema::latest_version(),
        });
    }
    if version == 0 {
        return Ok(StatusSnapshot::default());
    }
    Ok(StatusSnapshot {
        folders: ops::folders(&conn)?,
        // Version 1 (an older syncmail wrote it) has no pass records yet.
        passes: if version >= 2 {
            ops::pass_status(&conn)?
        } else {
            Vec::new()
        },
        open_intents: ops::open_intent_count(&conn)?,
        holds: if version >= 3 {
            ops::holds(&conn, None)?
        } else {
            Vec::new()
        },
    })
}

/// Where a POP3 message's DELE stands (rule 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleState {
    /// Keep it on the server.
    None,
    /// DELE to be (re)sent; the server forgets DELEs of a session that did not QUIT.
    Pending,
    /// A session that sent DELE ended with a successful QUIT.
    Done,
}

impl DeleState {
    fn as_str(self) -> &'static str {
        match self {
            DeleState::None => "none",
            DeleState::Pending => "pending",
            DeleState::Done => "done",
        }
    }

    fn parse(s: &str) -> Option<DeleState> {
        match s {
            "none" => Some(DeleState::None),
            "pending" => Some(DeleState::Pending),
            "done" => Some(DeleState::Done),
            _ => None,
        }
    }
}

/// A POP3 message we have delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidlRecord {
    pub uidl: String,
    pub local_key: Option<MaildirKey>,
    pub first_seen: SystemTime,
    pub dele: DeleState,
}

/// Everything one step of a pass commits, in one transaction: the outcome of its intents,
/// the pair (base) changes, watermarks, log entries and POP3 UIDLs.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// The folder `upsert_pairs`, `remove_pairs` and `watermarks` apply to.
    pub folder: Option<FolderId>,
    /// Drop every pair and remote-only UID of the folder before applying the rest: the
    /// UIDs changed wholesale (a re-pair after a UIDVALIDITY change).
    pub reset_uids: bool,
    /// Pairs to insert or replace, each UID at most once. Uniqueness of local keys is
    /// checked against the commit's end state, so keys may move between UIDs.
    pub upsert_pairs: Vec<Pair>,
    pub remove_pairs: Vec<Uid>,
    pub add_local_only: Vec<MaildirKey>,
    pub remove_local_only: Vec<MaildirKey>,
    pub add_remote_only: Vec<Uid>,
    pub remove_remote_only: Vec<Uid>,
    pub watermarks: Option<Watermarks>,
    pub changes: Vec<ChangeRecord>,
    pub conflicts: Vec<ConflictRecord>,
    pub uidls: Vec<UidlRecord>,
    /// Intents whose outcome this commit records; their rows are removed.
    pub complete_intents: Vec<IntentId>,
    /// Messages a first contact held (rule 21); the commit also keeps each one-sided.
    pub holds: Vec<Hold>,
}

/// A message a first contact could not tell apart from another (rule 21): kept on its
/// side, transferred nowhere, until `syncmail adopt` says what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub side: Side,
    /// The server UID (side `Server`) or the Maildir key (side `Local`).
    pub item: String,
    pub reason: String,
}

/// A hold as `syncmail status` and `syncmail adopt` list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRecord {
    pub folder: FolderName,
    pub hold: Hold,
    pub at: SystemTime,
}

/// Base flags as stored: Maildir letters, then keywords, space separated (`FS $Junk`).
/// IMAP keywords are atoms, so they never contain a space.
pub(crate) fn flags_to_db(flags: &Flags) -> String {
    let mut s = flags.maildir_letters();
    for k in flags.keywords() {
        s.push(' ');
        s.push_str(k);
    }
    s
}

pub(crate) fn flags_from_db(s: &str) -> Result<Flags, StoreError> {
    let mut parts = s.split(' ');
    let mut flags = Flags::new();
    for c in parts.next().unwrap_or("").chars() {
        let flag = Flag::from_maildir_letter(c)
            .ok_or_else(|| StoreError::Invalid(format!("bad flag letter {c:?} in {s:?}")))?;
        flags.insert(flag);
    }
    for k in parts.filter(|k| !k.is_empty()) {
        flags.insert_keyword(k);
    }
    Ok(flags)
}

fn time_to_db(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn time_from_db(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_through_db_text() {
        let mut f = Flags::new().with(Flag::Seen).with(Flag::Flagged);
        f.insert_keyword("$Junk");
        f.insert_keyword("work");
        assert_eq!(flags_to_db(&f), "FS $Junk work");
        assert_eq!(flags_from_db("FS $Junk work").unwrap(), f);
        assert_eq!(flags_from_db("").unwrap(), Flags::new());
        let mut k = Flags::new();
        k.insert_keyword("x");
        assert_eq!(flags_from_db(&flags_to_db(&k)).unwrap(), k);
        assert!(flags_from_db("Q").is_err());
    }

    #[tokio::test]
    async fn pass_status_keeps_the_last_success_across_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite3");
        let store = Store::open(&path).unwrap();
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        let inbox = FolderName("INBOX".into());
        store
            .record_pass(Some(inbox.clone()), t(10), None)
            .await
            .unwrap();
        store
            .record_pass(Some(inbox.clone()), t(20), Some("disk full".into()))
            .await
            .unwrap();
        store.record_pass(None, t(21), None).await.unwrap();
        store
            .set_daemon_state(Some("retrying in 2s".into()))
            .await
            .unwrap();
        let snap = read_status(&path).unwrap();
        assert_eq!(snap.passes.len(), 2);
        let (account, folder) = (&snap.passes[0], &snap.passes[1]);
        assert_eq!(account.folder, None);
        assert_eq!(account.last_ok, Some(t(21)));
        assert_eq!(account.daemon_state.as_deref(), Some("retrying in 2s"));
        assert_eq!(folder.folder, Some(inbox));
        assert_eq!(folder.last_ok, Some(t(10)));
        assert_eq!(folder.last_attempt, t(20));
        assert_eq!(folder.last_error.as_deref(), Some("disk full"));
        assert_eq!(snap.open_intents, 0);
    }

    #[test]
    fn open_account_takes_the_lock_first() {
        let dir = tempfile::tempdir().unwrap();
        let work = AccountName("work".into());
        let (_lock, _store) = open_account(dir.path(), &work).unwrap();
        assert!(dir.path().join("work.sqlite3").exists());
        let err = open_account(dir.path(), &work).unwrap_err();
        assert!(
            matches!(err, StoreError::Locked(LockError::Held { .. })),
            "{err}"
        );
    }

    #[test]
    fn account_names_must_be_plain_file_names() {
        let dir = Path::new("/state");
        assert!(db_path(dir, &AccountName("work".into())).is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a\0b"] {
            assert!(db_path(dir, &AccountName(bad.into())).is_err(), "{bad:?}");
        }
    }
}
