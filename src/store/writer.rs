//! The single writer: one thread owns the account's only SQLite connection and runs jobs
//! sent over a channel, in order; callers await the answer on a oneshot. One connection
//! means one writer by construction (no `SQLITE_BUSY` between our own tasks), and no
//! async task ever blocks on disk I/O. Reads go through the same thread: they are short,
//! and it keeps every read consistent with the writes queued before it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use crate::model::{FolderName, MaildirKey, Uid};
use crate::store::{
    ChangeRecord, Commit, ConflictRecord, DeleState, FolderId, FolderState, Intent, IntentId,
    IntentSpec, Pair, StoreError, UidlRecord, Wait, ops, schema,
};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

struct Inner {
    sender: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
    /// Base rows (pairs and one-sided marks) read so far: what the test that a pass's
    /// cost follows its changes, not the mailbox, counts.
    base_rows: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the thread after the queued jobs; wait for it so the
        // connection is closed (and the WAL checkpointed) when the last handle goes.
        self.sender.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Handle to an account's state database. Clone freely; all clones share one writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io { path, source }
}

impl Store {
    /// Open (creating if needed) the database at `path`: parent directory 0700, file
    /// 0600 whatever the umask (rule 20), WAL, synchronous=FULL (a committed intent must
    /// survive power loss), foreign keys on, migrated to the latest schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = super::files::open_db(path)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        Store::spawn(conn, path)
    }

    /// Open an existing database for reading only (`syncmail status`, `syncmail log`
    /// while a daemon owns the account): no lock needed, no migration; every write
    /// method fails. WAL lets it read while the daemon writes.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let found = schema::version(&conn)?;
        if found != schema::latest_version() {
            return Err(StoreError::Invalid(format!(
                "{} has schema version {found}, this syncmail reads version {}; run a sync first",
                path.display(),
                schema::latest_version()
            )));
        }
        Store::spawn(conn, path)
    }

    fn spawn(conn: Connection, path: &Path) -> Result<Store, StoreError> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("syncmail-store".into())
            .spawn(move || {
                let mut conn = conn;
                for job in receiver {
                    // A panicking job must not take the store down with it: its caller
                    // gets `WriterGone` (its reply sender is dropped), its transaction
                    // rolls back on unwind, and the next job runs normally.
                    let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("a state database job panicked; continuing");
                    }
                }
            })
            .map_err(io_err(path))?;
        Ok(Store {
            inner: Arc::new(Inner {
                sender: Some(sender),
                thread: Some(thread),
                path: path.to_owned(),
                base_rows: AtomicU64::new(0),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `f` on the writer thread and await its result. Every typed method is this;
    /// crate-private so all SQL stays in this module.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.inner
            .sender
            .as_ref()
            .ok_or(StoreError::WriterGone)?
            .send(job)
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub async fn folder(&self, name: &FolderName) -> Result<Option<FolderState>, StoreError> {
        let name = name.clone();
        self.call(move |c| ops::folder(c, &name)).await
    }

    pub async fn folders(&self) -> Result<Vec<FolderState>, StoreError> {
        self.call(|c| ops::folders(c)).await
    }

    /// The folder's row, created if new. An existing folder recorded at another local
    /// path is an error: moving a folder must be deliberate.
    pub async fn ensure_folder(
        &self,
        name: &FolderName,
        local_path: &Path,
    ) -> Result<FolderState, StoreError> {
        let (name, local_path) = (name.clone(), local_path.to_owned());
        self.call(move |c| ops::ensure_folder(c, &name, &local_path))
            .await
    }

    /// Rename a folder the server renamed, keeping its pairs; refused while it has
    /// open intents.
    pub async fn rename_folder(
        &self,
        folder: FolderId,
        name: &FolderName,
        local_path: &Path,
    ) -> Result<(), StoreError> {
        let name = name.clone();
        let local_path = local_path.to_path_buf();
        self.call(move |c| ops::rename_folder(c, folder, &name, &local_path))
            .await
    }

    /// Forget a folder and its pairs; refused while it has open intents.
    pub async fn delete_folder(&self, folder: FolderId) -> Result<(), StoreError> {
        self.call(move |c| ops::delete_folder(c, folder)).await
    }

    /// Halt a folder with a reason, or clear the halt with `None`.
    pub async fn set_halt(
        &self,
        folder: FolderId,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |c| ops::set_halt(c, folder, reason.as_deref()))
            .await
    }

    /// For each (folder, key), the other folders whose pairs hold `key`.
    pub async fn pairing_folders(
        &self,
        keys: Vec<(FolderId, MaildirKey)>,
    ) -> Result<Vec<(MaildirKey, FolderId)>, StoreError> {
        self.call(move |c| ops::pairing_folders(c, &keys)).await
    }

    /// Which of these pairs already waited a pass of this kind (see [`Wait`]).
    pub async fn waited(
        &self,
        wait: Wait,
        pairs: Vec<(FolderId, Uid)>,
    ) -> Result<BTreeSet<(FolderId, Uid)>, StoreError> {
        if pairs.is_empty() {
            return Ok(BTreeSet::new());
        }
        self.call(move |c| ops::waited(c, wait, &pairs)).await
    }

    /// These pairs wait a pass of this kind; the wait ends with any change of the pair.
    pub async fn wait(&self, wait: Wait, pairs: Vec<(FolderId, Uid)>) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.call(move |c| ops::wait(c, wait, &pairs)).await
    }

    /// How many base rows (pairs, local-only and server-only marks) this handle's
    /// reads returned so far.
    pub fn base_rows_read(&self) -> u64 {
        self.inner.base_rows.load(Ordering::Relaxed)
    }

    fn count_rows(&self, n: usize) {
        self.inner.base_rows.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// All pairs of a folder (the base), by UID.
    pub async fn pairs(&self, folder: FolderId) -> Result<Vec<Pair>, StoreError> {
        let pairs = self.call(move |c| ops::pairs(c, folder)).await?;
        self.count_rows(pairs.len());
        Ok(pairs)
    }

    /// The pairs of `folder` whose message has one of these Message-IDs.
    pub async fn pairs_with_message_ids(
        &self,
        folder: FolderId,
        ids: Vec<crate::model::MessageId>,
    ) -> Result<Vec<Pair>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pairs = self
            .call(move |c| ops::pairs_with_message_ids(c, folder, &ids))
            .await?;
        self.count_rows(pairs.len());
        Ok(pairs)
    }

    /// Every pair of the account, in any folder, holding a message with one of these
    /// Message-IDs, with its folder.
    pub async fn pairs_with_message_ids_anywhere(
        &self,
        ids: Vec<crate::model::MessageId>,
    ) -> Result<Vec<(FolderId, Pair)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pairs = self
            .call(move |c| ops::pairs_with_message_ids_anywhere(c, &ids))
            .await?;
        self.count_rows(pairs.len());
        Ok(pairs)
    }

    /// Every pair of the account holding a message with one of these server identities,
    /// with its folder.
    pub async fn pairs_by_email_id(
        &self,
        ids: Vec<crate::model::EmailId>,
    ) -> Result<Vec<(FolderId, Pair)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.call(move |c| ops::pairs_by_email_id(c, &ids)).await
    }

    /// The planner's view of a folder: its pairs, one-sided messages and watermarks, read
    /// in one transaction so they agree with each other.
    pub async fn base(&self, folder: &FolderState) -> Result<crate::sync::Base, StoreError> {
        let f = folder.clone();
        let base = self
            .call(move |c| {
                let tx = c.transaction()?;
                let pairs = ops::pairs(&tx, f.id)?;
                let (local_only, remote_only) = ops::one_sided(&tx, f.id)?;
                tx.commit()?;
                let mut base = empty_base(&f);
                base.pairs = pairs.into_iter().map(|p| (p.uid, p)).collect();
                base.local_only = local_only;
                base.remote_only = remote_only;
                Ok(base)
            })
            .await?;
        self.count_rows(base.pairs.len() + base.local_only.len() + base.remote_only.len());
        Ok(base)
    }

    /// The part of a folder's base that concerns these UIDs: their pairs and server-only
    /// marks, and no local-only keys. What a pass that trusts the Maildir's stamp plans
    /// with, so its cost follows the number of changes, not the size of the folder.
    pub async fn base_of(
        &self,
        folder: &FolderState,
        uids: Vec<crate::model::Uid>,
    ) -> Result<crate::sync::Base, StoreError> {
        let f = folder.clone();
        let base = self
            .call(move |c| {
                let tx = c.transaction()?;
                let (pairs, remote_only) = ops::pairs_of(&tx, f.id, &uids)?;
                tx.commit()?;
                let mut base = empty_base(&f);
                base.pairs = pairs.into_iter().map(|p| (p.uid, p)).collect();
                base.remote_only = remote_only;
                Ok(base)
            })
            .await?;
        self.count_rows(base.pairs.len() + base.remote_only.len());
        Ok(base)
    }

    /// Apply a step's outcome in one transaction: pairs, watermarks, logs, UIDLs, and the
    /// removal of the intents it completes. All or nothing.
    pub async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        self.call(move |c| ops::commit(c, &commit)).await
    }

    /// Journal intents durably, in one transaction, before acting on them (rule 1).
    pub async fn begin_intents(
        &self,
        specs: Vec<IntentSpec>,
        now: SystemTime,
    ) -> Result<Vec<IntentId>, StoreError> {
        self.call(move |c| ops::begin_intents(c, &specs, now)).await
    }

    /// Intents not yet completed, oldest first. Resolve all of them before a pass.
    pub async fn open_intents(&self) -> Result<Vec<Intent>, StoreError> {
        self.call(|c| ops::open_intents(c)).await
    }

    /// Close intents whose action never took effect (nothing else to record).
    pub async fn drop_intents(&self, ids: Vec<IntentId>) -> Result<(), StoreError> {
        self.commit(Commit {
            complete_intents: ids,
            ..Commit::default()
        })
        .await
    }

    pub async fn log_changes(&self, changes: Vec<ChangeRecord>) -> Result<(), StoreError> {
        self.commit(Commit {
            changes,
            ..Commit::default()
        })
        .await
    }

    pub async fn log_conflicts(&self, conflicts: Vec<ConflictRecord>) -> Result<(), StoreError> {
        self.commit(Commit {
            conflicts,
            ..Commit::default()
        })
        .await
    }

    /// The newest `limit` change-log entries, of one folder or all, oldest first.
    pub async fn changes(
        &self,
        folder: Option<FolderName>,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        self.call(move |c| ops::changes(c, folder.as_ref(), limit))
            .await
    }

    /// The newest `limit` conflict-log entries, of one folder or all, oldest first.
    pub async fn conflicts(
        &self,
        folder: Option<FolderName>,
        limit: usize,
    ) -> Result<Vec<ConflictRecord>, StoreError> {
        self.call(move |c| ops::conflicts(c, folder.as_ref(), limit))
            .await
    }

    /// Record POP3 UIDLs (insert, or update key and DELE state; first-seen is kept).
    pub async fn record_uidls(&self, uidls: Vec<UidlRecord>) -> Result<(), StoreError> {
        self.commit(Commit {
            uidls,
            ..Commit::default()
        })
        .await
    }

    pub async fn uidls(&self) -> Result<Vec<UidlRecord>, StoreError> {
        self.call(|c| ops::uidls(c)).await
    }

    pub async fn set_dele(&self, uidls: Vec<String>, state: DeleState) -> Result<(), StoreError> {
        self.call(move |c| ops::set_dele(c, &uidls, state)).await
    }

    /// Record the outcome of a pass over `folder` (`None`: the account as a whole).
    pub async fn record_pass(
        &self,
        folder: Option<FolderName>,
        at: SystemTime,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |c| ops::record_pass(c, folder.as_ref(), at, error.as_deref()))
            .await
    }

    /// What the daemon is doing for this account, for `syncmail status`.
    pub async fn set_daemon_state(&self, state: Option<String>) -> Result<(), StoreError> {
        self.call(move |c| ops::set_daemon_state(c, SystemTime::now(), state.as_deref()))
            .await
    }

    pub async fn pass_status(&self) -> Result<Vec<crate::store::PassStatus>, StoreError> {
        self.call(|c| ops::pass_status(c)).await
    }

    /// Messages a first contact held (rule 21) and still keeps one-sided.
    pub async fn holds(
        &self,
        folder: Option<FolderId>,
    ) -> Result<Vec<crate::store::HoldRecord>, StoreError> {
        self.call(move |c| ops::holds(c, folder)).await
    }

    /// End the holds of a folder (or all): `transfer` copies each across on the next
    /// pass, otherwise each stays on its side for good. Returns how many ended.
    pub async fn release_holds(
        &self,
        folder: Option<FolderId>,
        transfer: bool,
    ) -> Result<usize, StoreError> {
        self.call(move |c| ops::release_holds(c, folder, transfer))
            .await
    }

    pub async fn forget_uidls(&self, uidls: Vec<String>) -> Result<(), StoreError> {
        self.call(move |c| ops::forget_uidls(c, &uidls)).await
    }
}

/// A folder's watermarks as a base without pairs.
fn empty_base(f: &FolderState) -> crate::sync::Base {
    crate::sync::Base {
        highest_uid_pulled: (f.highest_uid_pulled.0 > 0).then_some(f.highest_uid_pulled),
        uid_validity: f.uidvalidity,
        highest_modseq: f.highestmodseq,
        ..crate::sync::Base::empty(f.server_name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, Flags, MaildirKey, ModSeq, Uid, UidValidity};
    use crate::store::{IntentKind, Side, Watermarks};

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state/work.sqlite3")).unwrap();
        (dir, store)
    }

    fn pair(uid: u32, key: &str, flags: Flags) -> Pair {
        Pair::synced(Uid(uid), MaildirKey(key.into()), flags, 1234, None)
    }

    #[tokio::test]
    async fn folders_pairs_and_watermarks_commit_together() {
        let (_d, store) = open();
        let inbox = FolderName("INBOX".into());
        let f = store
            .ensure_folder(&inbox, Path::new("/m/INBOX"))
            .await
            .unwrap();
        assert_eq!(f.highest_uid_pulled, Uid(0));
        assert_eq!(f.uidvalidity, None);
        let seen = Flags::new().with(Flag::Seen);
        store
            .commit(Commit {
                folder: Some(f.id),
                upsert_pairs: vec![pair(1, "a", seen.clone()), pair(2, "b", Flags::new())],
                watermarks: Some(Watermarks {
                    uidvalidity: Some(UidValidity(42)),
                    highestmodseq: Some(ModSeq(1 << 40)),
                    uidnext: Some(Uid(3)),
                    highest_uid_pulled: Some(Uid(2)),
                    local_stamp: None,
                }),
                ..Commit::default()
            })
            .await
            .unwrap();
        let f2 = store.folder(&inbox).await.unwrap().unwrap();
        assert_eq!(f2.uidvalidity, Some(UidValidity(42)));
        assert_eq!(f2.highestmodseq, Some(ModSeq(1 << 40)));
        assert_eq!(f2.uidnext, Some(Uid(3)));
        assert_eq!(f2.highest_uid_pulled, Uid(2));
        assert_eq!(store.pairs(f.id).await.unwrap().len(), 2);

        // A failing commit changes nothing: a second UID for key "a" breaks uniqueness.
        let err = store
            .commit(Commit {
                folder: Some(f.id),
                remove_pairs: vec![Uid(2)],
                upsert_pairs: vec![pair(3, "a", Flags::new())],
                watermarks: Some(Watermarks {
                    uidnext: Some(Uid(9)),
                    ..Watermarks::default()
                }),
                ..Commit::default()
            })
            .await;
        assert!(err.is_err());
        assert_eq!(store.pairs(f.id).await.unwrap().len(), 2);
        assert_eq!(
            store.folder(&inbox).await.unwrap().unwrap().uidnext,
            Some(Uid(3))
        );

        // Update flags, remove one.
        store
            .commit(Commit {
                folder: Some(f.id),
                remove_pairs: vec![Uid(2)],
                upsert_pairs: vec![pair(1, "a", seen.clone().with(Flag::Flagged))],
                ..Commit::default()
            })
            .await
            .unwrap();
        let pairs = store.pairs(f.id).await.unwrap();
        assert_eq!(pairs, vec![pair(1, "a", seen.with(Flag::Flagged))]);

        store
            .set_halt(f.id, Some("UIDVALIDITY changed".into()))
            .await
            .unwrap();
        let halted = store.folder(&inbox).await.unwrap().unwrap();
        assert_eq!(halted.halt_reason.as_deref(), Some("UIDVALIDITY changed"));

        // Deleting a folder takes its pairs with it, unless intents are open on it.
        let ids = store
            .begin_intents(
                vec![IntentSpec::deliver(
                    f.id,
                    Uid(5),
                    MaildirKey("k".into()),
                    &Flags::new(),
                )],
                SystemTime::UNIX_EPOCH,
            )
            .await
            .unwrap();
        assert!(store.delete_folder(f.id).await.is_err());
        store.drop_intents(ids).await.unwrap();
        store.delete_folder(f.id).await.unwrap();
        assert!(store.folder(&inbox).await.unwrap().is_none());
        assert!(store.pairs(f.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn intents_are_journaled_and_completed_with_their_outcome() {
        let (_d, store) = open();
        let f = store
            .ensure_folder(&FolderName("INBOX".into()), Path::new("/m"))
            .await
            .unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ids = store
            .begin_intents(
                vec![
                    IntentSpec::deliver(f.id, Uid(7), MaildirKey("k7".into()), &Flags::new()),
                    IntentSpec::deliver(
                        f.id,
                        Uid(8),
                        MaildirKey("k8".into()),
                        &Flags::new().with(Flag::Seen),
                    ),
                ],
                now,
            )
            .await
            .unwrap();
        let open = store.open_intents().await.unwrap();
        assert_eq!(open.len(), 2);
        assert_eq!(open[0].spec.kind, IntentKind::Deliver);
        assert_eq!(open[0].spec.local_key, Some(MaildirKey("k7".into())));
        assert_eq!(open[0].created_at, now);
        assert_eq!(
            open[1].spec.delivered_flags().unwrap(),
            Flags::new().with(Flag::Seen)
        );
        store
            .commit(Commit {
                folder: Some(f.id),
                upsert_pairs: vec![pair(7, "k7", Flags::new())],
                complete_intents: vec![ids[0]],
                ..Commit::default()
            })
            .await
            .unwrap();
        store.drop_intents(vec![ids[1]]).await.unwrap();
        assert!(store.open_intents().await.unwrap().is_empty());
        // Completing an intent twice is an error, and rolls back the rest.
        let err = store
            .commit(Commit {
                folder: Some(f.id),
                upsert_pairs: vec![pair(8, "k8", Flags::new())],
                complete_intents: vec![ids[1]],
                ..Commit::default()
            })
            .await;
        assert!(err.is_err());
        assert_eq!(store.pairs(f.id).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn logs_and_uidls() {
        let (_d, store) = open();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let inbox = FolderName("INBOX".into());
        let change = |n: u32| ChangeRecord {
            at,
            folder: inbox.clone(),
            side: Side::Local,
            uid: Some(Uid(n)),
            local_key: None,
            change: "+S".into(),
            action: "sent +FLAGS (\\Seen)".into(),
        };
        store
            .log_changes((1..=5).map(change).collect())
            .await
            .unwrap();
        let last = store.changes(Some(inbox.clone()), 2).await.unwrap();
        assert_eq!(last, vec![change(4), change(5)]);
        assert!(
            store
                .changes(Some(FolderName("x".into())), 9)
                .await
                .unwrap()
                .is_empty()
        );
        let conflict = ConflictRecord {
            at,
            folder: inbox.clone(),
            uid: Some(Uid(3)),
            local_key: Some(MaildirKey("k".into())),
            message_id: Some(crate::model::MessageId("<m@x>".into())),
            local_change: "deleted".into(),
            remote_change: "+F".into(),
            resolution: "kept: flagged on the server".into(),
        };
        store.log_conflicts(vec![conflict.clone()]).await.unwrap();
        assert_eq!(store.conflicts(None, 10).await.unwrap(), vec![conflict]);

        let rec = |u: &str| UidlRecord {
            uidl: u.into(),
            local_key: Some(MaildirKey(format!("key-{u}"))),
            first_seen: at,
            dele: DeleState::None,
        };
        store.record_uidls(vec![rec("a"), rec("b")]).await.unwrap();
        store
            .set_dele(vec!["a".into()], DeleState::Pending)
            .await
            .unwrap();
        let u = store.uidls().await.unwrap();
        assert_eq!(u[0].dele, DeleState::Pending);
        assert_eq!(u[1].dele, DeleState::None);
        store
            .set_dele(vec!["a".into()], DeleState::Done)
            .await
            .unwrap();
        store.forget_uidls(vec!["a".into()]).await.unwrap();
        assert_eq!(store.uidls().await.unwrap(), vec![rec("b")]);
    }

    #[tokio::test]
    async fn rule_20_state_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let path = state.join("work.sqlite3");
        let store = Store::open(&path).unwrap();
        store.folders().await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&path), 0o600);
        let wal = state.join("work.sqlite3-wal");
        if wal.exists() {
            assert_eq!(mode(&wal), 0o600);
        }
        // An existing, too-open file is tightened.
        drop(store);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _store = Store::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[tokio::test]
    async fn read_only_handle_reads_and_cannot_write() {
        let (dir, store) = open();
        let inbox = FolderName("INBOX".into());
        store.ensure_folder(&inbox, Path::new("/m")).await.unwrap();
        let ro = Store::open_read_only(&dir.path().join("state/work.sqlite3")).unwrap();
        assert_eq!(ro.folders().await.unwrap().len(), 1);
        assert!(
            ro.ensure_folder(&FolderName("x".into()), Path::new("/x"))
                .await
                .is_err()
        );
        assert!(Store::open_read_only(&dir.path().join("state/none.sqlite3")).is_err());
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_the_writer() {
        let (_d, store) = open();
        let r: Result<(), StoreError> = store.call(|_| panic!("boom")).await;
        assert!(matches!(r, Err(StoreError::WriterGone)));
        assert!(store.folders().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn many_clones_one_writer() {
        let (_d, store) = open();
        let f = store
            .ensure_folder(&FolderName("INBOX".into()), Path::new("/m"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25u32 {
                    let uid = t * 100 + i + 1;
                    s.commit(Commit {
                        folder: Some(f.id),
                        upsert_pairs: vec![pair(uid, &format!("k{uid}"), Flags::new())],
                        ..Commit::default()
                    })
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.pairs(f.id).await.unwrap().len(), 200);
    }
}
