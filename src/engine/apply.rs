//! Running one folder's plan. Every non-idempotent act is journaled before it happens and
//! its outcome committed with the base change it implies (rule 1). Flag changes are
//! idempotent, so their base updates are gathered and committed once at the end, after
//! the renames are durable; a crash before that replays the same merge next pass.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::fault;
use crate::imap::{Deleted, ImapSession};
use crate::maildir::{
    self, DeliveryBatch, LocalMessage, Maildir, MessageError, NamesDigest, Placement,
};
use crate::model::{ContentHash, EmailId, Flag, Flags, MaildirKey, MessageId, Uid, imap_date};
use crate::store::{
    ChangeRecord, Commit, FolderState, IntentKind, IntentSpec, Store, flags_from_db, flags_to_db,
};
use crate::sync::actions::{Change, ChangeKind, Outcome, Side};
use crate::sync::{Action, Pair, RemoteMessage, RemoteSnapshot, UidSet};

use super::LocalError;
use super::identity;
use super::observe;
use super::{Counts, EngineError};

/// How many messages one fetch round trip (and one durable delivery batch) carries, and
/// the bytes at which a batch is cut short: large enough that the server is rarely idle
/// while a batch is committed, small enough to bound what a cut link makes us refetch.
const FETCH_BATCH: usize = 500;
const FETCH_BATCH_BYTES: u64 = 32 * 1024 * 1024;

pub struct FolderRun<'a> {
    pub session: &'a mut ImapSession,
    pub store: &'a Store,
    pub md: &'a Maildir,
    pub folder: &'a FolderState,
    pub wire_name: &'a str,
    /// Server deletions become a MOVE here instead of an expunge.
    pub trash_wire: Option<String>,
    pub remote: &'a RemoteSnapshot,
    /// The next UID the server will assign: where a lost APPEND answer is searched for.
    pub uidnext: Uid,
    pub counts: &'a mut Counts,
    progress: Option<super::Progress>,
    /// The pairs as they stand after each step (starts as the base).
    pub pairs: BTreeMap<Uid, Pair>,
    pub local: BTreeMap<MaildirKey, LocalMessage>,
    /// Highest UID delivered in this pass (the pulled watermark, rule 4).
    pub highest_pulled: Option<Uid>,
    /// The names of the files this run delivered, summed (they are committed, not kept
    /// in `pairs`: an initial sync of a large folder would hold every pair at once), and
    /// how many: what the folder's stamp is checked against afterwards.
    pub delivered: (NamesDigest, usize),
    /// The plan's record of each server deletion it carries to the Maildir, by key,
    /// until the unlink's own commit logs it (and takes it out).
    pub deletions: BTreeMap<MaildirKey, Change>,
    /// The same for each local deletion it carries to the server, by UID, until the
    /// commit that drops the expunged pair logs it (and takes it out).
    pub local_deletions: BTreeMap<Uid, Change>,
    /// Set by the caller to stop between fetch batches (shutdown).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The identities the pass's folder runs are downloading (set by the caller when
    /// several run at once).
    pub claims: Option<identity::Claims>,
    failed_uids: BTreeSet<Uid>,
    pub(super) failed_keys: BTreeSet<MaildirKey>,
    /// A file this run was to delete had left its folder: the next pass must get the
    /// server's side of its pair again (the watermark holds).
    pub(super) moved_away: bool,
    dirty: BTreeSet<Uid>,
    renamed: bool,
    /// A deletion stayed marked `\Deleted` on the server (rule 8): tried again next pass.
    left_marked: bool,
    /// Keys appended whose server UID is not known yet: their intents stay open, and the
    /// next pass pairs them before anything else (rule 22).
    pub unconfirmed: BTreeSet<MaildirKey>,
    /// Messages appended with their UID known: the size sent, and the hash of the header
    /// sent where it holds 8-bit bytes; checked against what the server stored once the
    /// folder's run is done.
    appended: Vec<(Uid, u64, Option<ContentHash>)>,
}

impl<'a> FolderRun<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        session: &'a mut ImapSession,
        store: &'a Store,
        md: &'a Maildir,
        folder: &'a FolderState,
        wire_name: &'a str,
        trash_wire: Option<String>,
        remote: &'a RemoteSnapshot,
        uidnext: Uid,
        counts: &'a mut Counts,
        progress: Option<super::Progress>,
        pairs: BTreeMap<Uid, Pair>,
        local: BTreeMap<MaildirKey, LocalMessage>,
    ) -> FolderRun<'a> {
        FolderRun {
            session,
            store,
            md,
            folder,
            wire_name,
            trash_wire,
            remote,
            uidnext,
            counts,
            progress,
            pairs,
            local,
            highest_pulled: None,
            delivered: (NamesDigest::default(), 0),
            deletions: BTreeMap::new(),
            local_deletions: BTreeMap::new(),
            stop: None,
            claims: None,
            failed_uids: BTreeSet::new(),
            failed_keys: BTreeSet::new(),
            moved_away: false,
            dirty: BTreeSet::new(),
            renamed: false,
            left_marked: false,
            unconfirmed: BTreeSet::new(),
            appended: Vec::new(),
        }
    }

    /// Commit a base-only change to this folder.
    async fn commit_base(&self, change: Commit) -> Result<(), EngineError> {
        self.store
            .commit(Commit {
                folder: Some(self.folder.id),
                ..change
            })
            .await?;
        Ok(())
    }

    fn commit(&self) -> Commit {
        Commit {
            folder: Some(self.folder.id),
            ..Commit::default()
        }
    }

    /// The change log's row for a message that came from the server (downloaded or
    /// linked), committed with the batch that made it durable: the plan holds no
    /// change per download, so a first sync's memory does not grow with the folder.
    fn arrived(&self, uid: Uid, key: &MaildirKey) -> ChangeRecord {
        super::report::change_record(
            &self.folder.server_name,
            &Change {
                side: Side::Server,
                uid: Some(uid),
                key: Some(key.clone()),
                kind: ChangeKind::New,
                outcome: Outcome::Propagated,
            },
        )
    }

    pub async fn run(&mut self, action: &Action) -> Result<(), EngineError> {
        match action {
            Action::RepairUids(repair) => {
                let mut repaired = BTreeMap::new();
                for (old, new) in &repair.map {
                    if let Some(p) = self.pairs.get(old) {
                        repaired.insert(
                            *new,
                            Pair {
                                uid: *new,
                                ..p.clone()
                            },
                        );
                    }
                }
                self.store
                    .commit(Commit {
                        reset_uids: true,
                        upsert_pairs: repaired.values().cloned().collect(),
                        add_local_only: repair.unmatched.iter().cloned().collect(),
                        watermarks: Some(crate::store::Watermarks {
                            uidvalidity: Some(repair.new),
                            ..Default::default()
                        }),
                        ..self.commit()
                    })
                    .await?;
                self.pairs = repaired;
            }
            Action::Unpair { uid, .. } | Action::Forget { uid, .. } => {
                self.store
                    .commit(Commit {
                        remove_pairs: vec![*uid],
                        ..self.commit()
                    })
                    .await?;
                self.pairs.remove(uid);
            }
            // Base only: which messages stay on one side.
            Action::KeepLocalOnly { key } => {
                self.commit_base(Commit {
                    add_local_only: vec![key.clone()],
                    ..Commit::default()
                })
                .await?
            }
            Action::KeepRemoteOnly { uid } => {
                self.commit_base(Commit {
                    add_remote_only: vec![*uid],
                    ..Commit::default()
                })
                .await?
            }
            Action::DropLocalOnly { key } => {
                self.commit_base(Commit {
                    remove_local_only: vec![key.clone()],
                    ..Commit::default()
                })
                .await?
            }
            Action::DropRemoteOnly { uid } => {
                self.commit_base(Commit {
                    remove_remote_only: vec![*uid],
                    ..Commit::default()
                })
                .await?
            }
            Action::Fetch { uids } => {
                let remote = self.remote;
                self.fetch(uids, remote.listed()).await?
            }
            Action::Append { key, flags } => self.append(key, flags).await?,
            Action::StoreFlags {
                uids,
                add,
                remove,
                unchanged_since,
            } => {
                let list: Vec<Uid> = uids.iter().collect();
                for (is_add, flags) in [(true, add), (false, remove)] {
                    let out = self
                        .session
                        .store(&list, is_add, flags, *unchanged_since)
                        .await?;
                    // Changed on the server since we looked: re-merged next pass.
                    self.failed_uids.extend(out.modified);
                }
                self.counts.flags_pushed += list.len();
            }
            Action::SetLocalFlags { key, flags } => {
                let Some(msg) = self.local.get(key) else {
                    self.failed_keys.insert(key.clone());
                    return Ok(());
                };
                match self.md.set_flags(msg, flags) {
                    Ok(updated) => {
                        self.local.insert(key.clone(), updated);
                        self.renamed = true;
                        self.counts.flags_pulled += 1;
                    }
                    // A client renamed or moved it since the scan: rescan next pass
                    // (rule 14), never a deletion.
                    Err(MessageError::Vanished { .. }) => {
                        self.failed_keys.insert(key.clone());
                    }
                    Err(e) => return Err(LocalError::from(e).into()),
                }
            }
            Action::RecordFlags { uid, remote, local } => {
                let failed = self.failed_uids.contains(uid)
                    || self
                        .pairs
                        .get(uid)
                        .is_some_and(|p| self.failed_keys.contains(&p.key));
                if !failed && let Some(pair) = self.pairs.get_mut(uid) {
                    pair.remote_flags = remote.clone();
                    pair.local_flags = local.clone();
                    self.dirty.insert(*uid);
                }
            }
            Action::MoveToTrash { uids, .. } => {
                let list: Vec<Uid> = uids.iter().collect();
                let Some(trash) = self.trash_wire.clone() else {
                    return Err(LocalError::Unexpected(
                        "a move to trash without a trash folder".into(),
                    )
                    .into());
                };
                self.say_gmail_deletion(list.len(), true);
                let detail = super::moves::MoveDetail::Trash(trash.clone()).encode();
                let ids = self.journal(&list, IntentKind::Move, &detail).await?;
                if self.session.has_move() {
                    self.session.move_to(&list, &trash).await?;
                    fault::point("after-move");
                    self.forget_uids(&list, ids).await?;
                    self.counts.deleted_server += list.len();
                } else {
                    // COPY, then delete as without a trash folder. A message we marked
                    // on an earlier pass (its base has \Deleted) was copied then.
                    let copy: Vec<Uid> = list
                        .iter()
                        .filter(|u| {
                            !self
                                .pairs
                                .get(u)
                                .is_some_and(|p| p.remote_flags.contains(Flag::Trashed))
                        })
                        .copied()
                        .collect();
                    self.session.copy_to(&copy, &trash).await?;
                    let outcome = self.session.delete(&list).await?;
                    fault::point("after-move");
                    self.deleted(&list, ids, outcome).await?;
                }
            }
            Action::DeleteOnServer { uids } => {
                let list: Vec<Uid> = uids.iter().collect();
                self.say_gmail_deletion(list.len(), false);
                let ids = self.journal(&list, IntentKind::Expunge, "").await?;
                let outcome = self.session.delete(&list).await?;
                fault::point("after-expunge");
                self.deleted(&list, ids, outcome).await?;
            }
            Action::DeleteLocal { key } => self.delete_local(key).await?,
        }
        Ok(())
    }

    /// On Gmail a folder is a label: say what a deletion there does, in Gmail's words.
    fn say_gmail_deletion(&self, n: usize, to_trash: bool) {
        if self.session.identity() != Some(crate::imap::Identity::Gmail) {
            return;
        }
        let folder = &self.folder.server_name.0;
        let words = gmail_deletion(folder, n, to_trash);
        tracing::info!(folder = %folder, "{words}");
    }

    async fn journal(
        &self,
        uids: &[Uid],
        kind: IntentKind,
        detail: &str,
    ) -> Result<Vec<crate::store::IntentId>, EngineError> {
        let specs = uids
            .iter()
            .map(|uid| IntentSpec {
                folder: Some(self.folder.id),
                uid: Some(*uid),
                local_key: self.pairs.get(uid).map(|p| p.key.clone()),
                detail: detail.to_owned(),
                ..IntentSpec::new(kind)
            })
            .collect();
        let ids = self.store.begin_intents(specs, SystemTime::now()).await?;
        fault::point("after-intent");
        Ok(ids)
    }

    async fn forget_uids(
        &mut self,
        uids: &[Uid],
        intents: Vec<crate::store::IntentId>,
    ) -> Result<(), EngineError> {
        // Logged with the commit that drops the pairs: a kill before the pass's last
        // commit must not leave a deletion syncmail made without its record.
        let changes = uids
            .iter()
            .filter_map(|u| self.local_deletions.remove(u))
            .map(|c| super::report::change_record(&self.folder.server_name, &c))
            .collect();
        self.store
            .commit(Commit {
                remove_pairs: uids.to_vec(),
                complete_intents: intents,
                changes,
                ..self.commit()
            })
            .await?;
        for uid in uids {
            self.pairs.remove(uid);
        }
        Ok(())
    }

    /// Commit what a deletion on the server came to: expunged, the pairs go; left marked
    /// (rule 8, no UIDPLUS), the pairs stay with `\Deleted` in their server base, so the
    /// next pass sees only the local deletion and tries the expunge again.
    async fn deleted(
        &mut self,
        uids: &[Uid],
        intents: Vec<crate::store::IntentId>,
        outcome: Deleted,
    ) -> Result<(), EngineError> {
        match outcome {
            Deleted::Expunged => {
                self.forget_uids(uids, intents).await?;
                self.counts.deleted_server += uids.len();
            }
            Deleted::LeftMarked { others } => {
                tracing::warn!(
                    folder = %self.folder.server_name,
                    "{}",
                    left_marked_reason(uids, &others)
                );
                let marked = mark_deleted(&mut self.pairs, uids);
                self.store
                    .commit(Commit {
                        upsert_pairs: marked,
                        complete_intents: intents,
                        ..self.commit()
                    })
                    .await?;
                self.left_marked = true;
            }
        }
        Ok(())
    }

    /// Bring the messages into the Maildir: those the account already stores (the same
    /// server identity in any folder) as links to that file, the rest downloaded. A
    /// message another folder run of this pass is downloading right now is waited for
    /// and then linked, so it is downloaded once.
    async fn fetch(
        &mut self,
        uids: &UidSet,
        listed: &BTreeMap<Uid, RemoteMessage>,
    ) -> Result<(), EngineError> {
        let mut todo: Vec<Uid> = uids
            .iter()
            .filter(|u| !self.pairs.contains_key(u))
            .collect();
        let id_of = |u: &Uid| listed.get(u).and_then(|m| m.email_id.clone());
        loop {
            let rest = self.link_stored(todo, listed).await?;
            let claims = self.claims.clone().unwrap_or_default();
            let mut mine = Vec::new();
            let mut deferred = Vec::new();
            let mut claimed = identity::Claimed {
                claims: &claims,
                ids: BTreeSet::new(),
            };
            for uid in rest {
                match id_of(&uid) {
                    Some(id) if !claims.try_claim(&id) => deferred.push(uid),
                    Some(id) => {
                        claimed.ids.insert(id);
                        mine.push(uid);
                    }
                    None => mine.push(uid),
                }
            }
            self.download(&mine, listed).await?;
            drop(claimed);
            if deferred.is_empty() {
                return Ok(());
            }
            let waiting: BTreeSet<EmailId> = deferred.iter().filter_map(id_of).collect();
            tracing::debug!(folder = %self.folder.server_name, messages = deferred.len(), "waiting for another folder's download of the same messages, to link them");
            claims.wait_for(&waiting).await;
            todo = deferred;
        }
    }

    /// The rest of a folder whose first listing stopped after one window (see
    /// [`observe::window`]): each next window listed by UID range and fetched, to the
    /// end, so what is held at once is a window's listing, never the folder's. Messages
    /// that change or arrive meanwhile are the next pass's, as in any pass: the folder's
    /// HIGHESTMODSEQ is the one its first window was listed at.
    pub async fn fetch_rest(&mut self, mut from: observe::Window) -> Result<(), EngineError> {
        // The session may have observed other folders since (a plan with nothing to do
        // on the server does not select its folder again).
        self.session.select(self.wire_name, None).await?;
        loop {
            fault::pause("window");
            let (listed, next) = observe::next_window(self.session, from).await?;
            tracing::debug!(folder = %self.folder.server_name, after = from.after.0, messages = listed.len(), "the next window of the first listing");
            let uids: UidSet = listed.keys().copied().collect();
            self.fetch(&uids, &listed).await?;
            match next {
                Some(n) => from = n,
                None => return Ok(()),
            }
        }
    }

    /// Link the messages of `todo` the account already stores in some folder; returns
    /// the UIDs left to download. Journaled like a download (rule 1): the keys are
    /// recorded first, each link is made without overwriting, the directories synced,
    /// then the pairs committed.
    async fn link_stored(
        &mut self,
        todo: Vec<Uid>,
        listed: &BTreeMap<Uid, RemoteMessage>,
    ) -> Result<Vec<Uid>, EngineError> {
        let id_of = |u: &Uid| listed.get(u).and_then(|m| m.email_id.clone());
        let ids: BTreeSet<EmailId> = todo.iter().filter_map(id_of).collect();
        if ids.is_empty() {
            return Ok(todo);
        }
        let stored = identity::stored_copies(self.store, &ids, (self.folder.id, self.md)).await?;
        let (link, mut rest): (Vec<Uid>, Vec<Uid>) = todo
            .into_iter()
            .partition(|u| id_of(u).is_some_and(|id| stored.contains_key(&id)));
        if link.is_empty() {
            return Ok(rest);
        }
        let keys: BTreeMap<Uid, MaildirKey> =
            link.iter().map(|uid| (*uid, maildir::new_key())).collect();
        let local_flags = |uid: &Uid| {
            listed
                .get(uid)
                .map(|m| m.flags.system_only())
                .unwrap_or_default()
        };
        let specs = keys
            .iter()
            .map(|(uid, key)| IntentSpec {
                token: id_of(uid).map(|id| id.0),
                ..IntentSpec::deliver(self.folder.id, *uid, key.clone(), &local_flags(uid))
            })
            .collect();
        let intents = self.store.begin_intents(specs, SystemTime::now()).await?;
        fault::point("before-link");
        let mut copies = DeliveryBatch::new(self.md);
        let mut made: BTreeMap<Uid, u64> = BTreeMap::new();
        let mut copied: Vec<Uid> = Vec::new();
        for uid in &link {
            let (Some(key), Some((source, _))) =
                (keys.get(uid), id_of(uid).and_then(|id| stored.get(&id)))
            else {
                continue;
            };
            match identity::link_into(self.md, source, key, &local_flags(uid), &mut copies)? {
                identity::Linked::Link { size, .. } => {
                    made.insert(*uid, size);
                    fault::point("link-mid-batch");
                }
                identity::Linked::Copied => copied.push(*uid),
                identity::Linked::SourceGone => rest.push(*uid),
            }
        }
        for d in copies.commit_durable().map_err(LocalError::from)? {
            if let Some(uid) = copied.iter().find(|u| keys.get(u) == Some(&d.key)) {
                made.insert(*uid, d.size);
            }
        }
        self.md
            .sync_dirs()
            .map_err(LocalError::io(self.md.path()))?;
        fault::point("after-link");
        let mut commit = self.commit();
        for (uid, size) in &made {
            let (Some(key), Some(id)) = (keys.get(uid), id_of(uid)) else {
                continue;
            };
            let source = stored.get(&id).map(|(_, p)| p);
            let m = listed.get(uid);
            let pair = Pair {
                uid: *uid,
                key: key.clone(),
                remote_flags: m.map(|m| m.flags.clone()).unwrap_or_default(),
                local_flags: local_flags(uid),
                remote_size: m
                    .map(|m| m.size)
                    .filter(|s| *s > 0)
                    .or(source.map(|p| p.remote_size))
                    .unwrap_or(*size),
                local_size: *size,
                message_id: m
                    .and_then(|m| m.message_id.clone())
                    .or_else(|| source.and_then(|p| p.message_id.clone())),
                email_id: Some(id),
            };
            commit.changes.push(self.arrived(*uid, key));
            self.pairs.insert(*uid, pair.clone());
            commit.upsert_pairs.push(pair);
            self.counts.linked += 1;
            self.highest_pulled = self.highest_pulled.max(Some(*uid));
        }
        // A link not made (its source gone since the scan) left nothing under its key.
        commit.complete_intents = intents;
        self.store.commit(commit).await?;
        if !made.is_empty() {
            tracing::debug!(folder = %self.folder.server_name, linked = made.len(), "linked messages the account already stores, no download");
        }
        self.report_progress();
        rest.sort();
        Ok(rest)
    }

    /// Download in batches: journal each planned key, stream the bodies into `tmp/`, make
    /// the batch durable with one round of syncs, then commit its pairs (rules 1, 3, 5).
    async fn download(
        &mut self,
        todo: &[Uid],
        listed: &BTreeMap<Uid, RemoteMessage>,
    ) -> Result<(), EngineError> {
        // The store's writer commits a batch while the next one downloads: the server
        // would otherwise idle through every commit. However the batches end, the last
        // commit lands before this returns.
        let mut committing = None;
        let result = self.download_batches(todo, listed, &mut committing).await;
        let last = committed(committing).await;
        result.and(last)
    }

    /// [`Self::download`]'s batches; each one's commit is left in `committing`. The next
    /// batch's intents are journaled before it (rule 1), so the writer, one queue, never
    /// holds them up behind the commit.
    async fn download_batches(
        &mut self,
        todo: &[Uid],
        listed: &BTreeMap<Uid, RemoteMessage>,
        committing: &mut Option<Committing>,
    ) -> Result<(), EngineError> {
        let size_of = |uid: &Uid| listed.get(uid).map_or(0, |m| m.size);
        let chunks = batches(todo, size_of);
        let mut journaled: Option<(BTreeMap<Uid, MaildirKey>, Vec<crate::store::IntentId>)> = None;
        for (n, chunk) in chunks.iter().enumerate() {
            // Shutdown: stop at a batch boundary, everything before it committed.
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(EngineError::Stopped);
            }
            let chunk = chunk.as_slice();
            let (keys, intents) = match journaled.take() {
                Some(j) => j,
                None => self.journal_batch(chunk, listed).await?,
            };
            let intent_of: BTreeMap<Uid, crate::store::IntentId> =
                chunk.iter().copied().zip(intents.iter().copied()).collect();
            let mut batch = DeliveryBatch::new(self.md);
            let mut fetched: BTreeMap<Uid, (Flags, u64, Option<MessageId>)> = BTreeMap::new();
            let mut failure: Option<EngineError> = None;
            let missing = self
                .session
                .fetch_bodies(chunk, |m| {
                    let Some(key) = keys.get(&m.uid) else {
                        return Ok(());
                    };
                    let local_flags = m.flags.system_only();
                    let placement = if local_flags.is_empty() {
                        Placement::New
                    } else {
                        Placement::Cur(local_flags)
                    };
                    if let Err(e) = batch.deliver(key.clone(), m.body, placement) {
                        let text = e.to_string();
                        failure.get_or_insert(LocalError::from(e).into());
                        return Err(crate::imap::ImapError::Protocol(format!(
                            "cannot write the message locally: {text}"
                        )));
                    }
                    fetched.insert(
                        m.uid,
                        (m.flags, m.body.len() as u64, MessageId::from_header(m.body)),
                    );
                    Ok(())
                })
                .await;
            if let Some(e) = failure {
                return Err(e);
            }
            let missing = missing?;
            fault::point("before-durable");
            let delivered = batch.commit_durable().map_err(LocalError::from)?;
            fault::point("after-deliver");
            let by_key: BTreeMap<&MaildirKey, &maildir::Delivered> =
                delivered.iter().map(|d| (&d.key, d)).collect();
            let mut commit = self.commit();
            for (uid, (flags, body_len, body_id)) in &fetched {
                let (Some(key), Some(d)) =
                    (keys.get(uid), keys.get(uid).and_then(|k| by_key.get(k)))
                else {
                    continue;
                };
                let listed_msg = listed.get(uid);
                let pair = Pair {
                    uid: *uid,
                    key: key.clone(),
                    remote_flags: flags.clone(),
                    local_flags: d.flags.clone(),
                    remote_size: listed_msg
                        .map(|m| m.size)
                        .filter(|s| *s > 0)
                        .unwrap_or(*body_len),
                    local_size: d.size,
                    message_id: listed_msg
                        .and_then(|m| m.message_id.clone())
                        .or_else(|| body_id.clone()),
                    email_id: listed_msg.and_then(|m| m.email_id.clone()),
                };
                // Committed, not kept: nothing later in the run looks a fetched UID up
                // (uploads pair at or above UIDNEXT, flag steps concern known pairs).
                self.delivered.0.add(&pair.key, &pair.local_flags);
                self.delivered.1 += 1;
                commit.changes.push(self.arrived(*uid, key));
                commit.upsert_pairs.push(pair);
                self.counts.fetched += 1;
                self.counts.fetched_bytes += d.size;
                self.highest_pulled = self.highest_pulled.max(Some(*uid));
            }
            // Intents of UIDs expunged meanwhile are closed too: nothing was written.
            commit.complete_intents = intent_of.values().copied().collect();
            if let Some(following) = chunks.get(n + 1) {
                journaled = Some(self.journal_batch(following, listed).await?);
            }
            committed(committing.take()).await?;
            let store = self.store.clone();
            *committing = Some(tokio::spawn(async move { store.commit(commit).await }));
            self.report_progress();
            if !missing.is_empty() {
                tracing::debug!(folder = %self.folder.server_name, missing = missing.len(), "messages expunged on the server while fetching");
            }
        }
        Ok(())
    }

    /// Journal one download batch's intents: a new key for each UID (rule 1).
    async fn journal_batch(
        &self,
        chunk: &[Uid],
        listed: &BTreeMap<Uid, RemoteMessage>,
    ) -> Result<(BTreeMap<Uid, MaildirKey>, Vec<crate::store::IntentId>), EngineError> {
        let keys: BTreeMap<Uid, MaildirKey> =
            chunk.iter().map(|uid| (*uid, maildir::new_key())).collect();
        let specs = keys
            .iter()
            .map(|(uid, key)| {
                let m = listed.get(uid);
                let flags = m.map(|m| m.flags.clone()).unwrap_or_default();
                IntentSpec {
                    token: m.and_then(|m| m.email_id.as_ref()).map(|id| id.0.clone()),
                    ..IntentSpec::deliver(self.folder.id, *uid, key.clone(), &flags.system_only())
                }
            })
            .collect();
        let intents = self.store.begin_intents(specs, SystemTime::now()).await?;
        Ok((keys, intents))
    }

    /// APPEND a local message. UIDNEXT is saved in the intent first, so a lost answer is
    /// found again by searching from it, never appended twice (rule 2).
    async fn append(&mut self, key: &MaildirKey, flags: &Flags) -> Result<(), EngineError> {
        if self.pairs.values().any(|p| &p.key == key) {
            return Ok(());
        }
        let Some(msg) = self.local.get(key) else {
            self.failed_keys.insert(key.clone());
            return Ok(());
        };
        let body = match std::fs::read(&msg.path) {
            Ok(b) => b,
            // Renamed by a client since the scan: next pass (rule 14).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.failed_keys.insert(key.clone());
                return Ok(());
            }
            Err(e) => {
                return Err(EngineError::Local(LocalError::Io {
                    path: msg.path.to_path_buf(),
                    source: e,
                }));
            }
        };
        let message_id = MessageId::from_header(&body);
        let sizes = AppendSizes::of(&body);
        // Above the server's APPENDLIMIT: this message stays local and is named, the
        // folder's other changes still go through (nothing is sent, so no intent).
        if let Some(limit) = self.session.append_limit()
            && sizes.raw.max(sizes.crlf) > limit
        {
            tracing::warn!(
                folder = %self.folder.server_name,
                file = %msg.path.display(),
                size = sizes.raw.max(sizes.crlf),
                limit,
                "not uploaded: the message is larger than the server's APPENDLIMIT"
            );
            self.failed_keys.insert(key.clone());
            return Ok(());
        }
        let spec = IntentSpec {
            folder: Some(self.folder.id),
            uid: Some(self.uidnext),
            local_key: Some(key.clone()),
            token: message_id.as_ref().map(|m| m.0.clone()),
            detail: sizes.detail(flags),
            ..IntentSpec::new(IntentKind::Append)
        };
        let ids = self
            .store
            .begin_intents(vec![spec], SystemTime::now())
            .await?;
        fault::point("before-append");
        let date = imap_date(msg.mtime);
        let answer = self
            .session
            .append(self.wire_name, flags, Some(&date), &body)
            .await?;
        fault::point("after-append");
        let paired: BTreeSet<Uid> = self.pairs.keys().copied().collect();
        let uid = match answer {
            // A new message's UID is at least UIDNEXT and not one we already pair; an
            // answer that breaks this is not trusted, the message is searched for.
            Some((uv, uid))
                if uv == self.remote.uid_validity
                    && uid >= self.uidnext
                    && !self.pairs.contains_key(&uid) =>
            {
                Some(uid)
            }
            Some((uv, uid)) if uv == self.remote.uid_validity => {
                tracing::warn!(
                    uid = uid.0,
                    "APPENDUID names a UID that cannot be new; searching for the message instead"
                );
                // From UIDNEXT as SELECT saw it: an earlier answer may have lied too.
                let from = self.remote.uid_next;
                find_appended(
                    self.session,
                    from,
                    message_id.as_ref(),
                    &sizes,
                    &body,
                    &paired,
                )
                .await?
            }
            Some((uv, _)) => {
                return Err(EngineError::Server(format!(
                    "APPENDUID names UIDVALIDITY {uv}, but the folder has {}; refusing to pair",
                    self.remote.uid_validity
                )));
            }
            // Without UIDPLUS a UID is believed only from a fresh SELECT: GNU imap4d shows
            // the folder's own APPENDs to the session that made them only after one, and
            // the UID another session saw before can change. The next pass confirms it.
            None if !self.session.has_uidplus() => None,
            None => {
                find_appended(
                    self.session,
                    self.uidnext,
                    message_id.as_ref(),
                    &sizes,
                    &body,
                    &paired,
                )
                .await?
            }
        };
        let Some(uid) = uid else {
            // Stored but not confirmed: the intent stays open and the next pass pairs
            // the upload with the server's new message by Message-ID, size and content
            // before anything is fetched or appended again (rule 22).
            tracing::debug!(folder = %self.folder.server_name, %key, "appended; the server's UID is confirmed next pass");
            self.unconfirmed.insert(key.clone());
            self.counts.appended += 1;
            self.report_progress();
            return Ok(());
        };
        let pair = Pair {
            uid,
            key: key.clone(),
            remote_flags: flags.clone(),
            local_flags: flags.system_only(),
            remote_size: sizes.crlf,
            local_size: sizes.raw,
            message_id,
            // Asked for with the sizes of this run's uploads (`check_stored_copies`).
            email_id: None,
        };
        self.store
            .commit(Commit {
                upsert_pairs: vec![pair.clone()],
                complete_intents: ids,
                ..self.commit()
            })
            .await?;
        self.pairs.insert(uid, pair);
        let header = crate::model::header_block(&body);
        let eight_bit = header
            .iter()
            .any(|b| *b >= 0x80)
            .then(|| ContentHash::of(header));
        self.appended.push((uid, sizes.crlf, eight_bit));
        // The UID is the server's word: u32::MAX must not overflow (rule 18).
        self.uidnext = Uid(uid.0.max(self.uidnext.0).saturating_add(1));
        self.counts.appended += 1;
        self.report_progress();
        Ok(())
    }

    async fn delete_local(&mut self, key: &MaildirKey) -> Result<(), EngineError> {
        let uid = self.pairs.values().find(|p| &p.key == key).map(|p| p.uid);
        let spec = IntentSpec {
            folder: Some(self.folder.id),
            uid,
            local_key: Some(key.clone()),
            ..IntentSpec::new(IntentKind::LocalDelete)
        };
        let ids = self
            .store
            .begin_intents(vec![spec], SystemTime::now())
            .await?;
        let removed = unlink_key(self.md, self.local.get(key), key)?;
        self.md
            .sync_dirs()
            .map_err(LocalError::io(self.md.path()))?;
        fault::point("after-unlink");
        let change = self.deletions.remove(key);
        if !removed {
            // The mail client moved (or deleted) the file since the scan: not a deletion
            // this pass made (rule 14). The pair stays, nothing is logged, and the next
            // pass, which gets the server's side again, sees where it went: moved to
            // another folder while another device moved the server copy, it is one move
            // (the soak's duplicate, seed 20261209 on 27a2a15).
            self.store
                .commit(Commit {
                    complete_intents: ids,
                    ..self.commit()
                })
                .await?;
            self.failed_keys.insert(key.clone());
            self.moved_away = true;
            return Ok(());
        }
        self.store
            .commit(Commit {
                remove_pairs: uid.into_iter().collect(),
                complete_intents: ids,
                changes: change
                    .map(|c| super::report::change_record(&self.folder.server_name, &c))
                    .into_iter()
                    .collect(),
                ..self.commit()
            })
            .await?;
        if let Some(uid) = uid {
            self.pairs.remove(&uid);
        }
        self.local.remove(key);
        self.counts.deleted_local += 1;
        Ok(())
    }

    fn report_progress(&self) {
        if let Some(p) = &self.progress {
            (p.0)(&self.folder.server_name, self.counts);
        }
    }

    /// Every step did what the plan said: no flag store refused, no file gone missing.
    pub fn clean(&self) -> bool {
        self.failed_uids.is_empty()
            && self.failed_keys.is_empty()
            && !self.left_marked
            && self.unconfirmed.is_empty()
    }

    /// The base updates gathered from flag merges, once the renames are durable.
    pub async fn finish(&mut self, mut last: Commit) -> Result<(), EngineError> {
        if self.renamed {
            self.md
                .sync_dirs()
                .map_err(LocalError::io(self.md.path()))?;
        }
        last.folder = Some(self.folder.id);
        self.check_stored_copies().await?;
        // Pairs that had no server identity yet get the one this listing carries.
        for (uid, m) in self.remote.listed() {
            if let (Some(id), Some(pair)) = (&m.email_id, self.pairs.get_mut(uid))
                && pair.email_id.is_none()
            {
                pair.email_id = Some(id.clone());
                self.dirty.insert(*uid);
            }
        }
        last.upsert_pairs.extend(
            self.dirty
                .iter()
                .filter_map(|uid| self.pairs.get(uid).cloned()),
        );
        self.store.commit(last).await?;
        Ok(())
    }
}

impl FolderRun<'_> {
    /// Some servers store another copy than the one sent (Cyrus rewrites 8-bit header
    /// bytes, `Grüße` becoming `GrXXXXe`): the two copies then silently differ. One FETCH
    /// of the sizes of this run's uploads finds it; the pair records the size the server
    /// keeps, and the log says so once per folder and pass.
    async fn check_stored_copies(&mut self) -> Result<(), EngineError> {
        if self.appended.is_empty() {
            return Ok(());
        }
        let uids: Vec<Uid> = self.appended.iter().map(|(u, _, _)| *u).collect();
        let stored = self
            .session
            .fetch_identities(&crate::imap::uid_set(&uids))
            .await?;
        // The server's identity of each upload, so a copy another client makes of it
        // later is linked, not downloaded.
        if self.session.identity().is_some() {
            let listed = self
                .session
                .fetch_flags(&crate::imap::uid_set(&uids), None)
                .await?;
            for (uid, m) in listed {
                if let (Some(id), Some(p)) = (m.email_id, self.pairs.get_mut(&uid)) {
                    p.email_id = Some(id);
                    self.dirty.insert(uid);
                }
            }
        }
        // 8-bit header bytes are what servers rewrite, often byte for byte (`ü` as `XX`):
        // those headers are compared, not only sizes.
        let eight_bit: Vec<Uid> = self
            .appended
            .iter()
            .filter(|(_, _, h)| h.is_some())
            .map(|(u, _, _)| *u)
            .collect();
        let headers = if eight_bit.is_empty() {
            BTreeMap::new()
        } else {
            self.session.fetch_headers(&eight_bit).await?
        };
        let mut differ = Vec::new();
        for (uid, sent, header) in std::mem::take(&mut self.appended) {
            let Some((_, size)) = stored.get(&uid) else {
                continue;
            };
            let rewritten = header.is_some_and(|h| {
                headers
                    .get(&uid)
                    .is_some_and(|stored| ContentHash::of(stored) != h)
            });
            if *size != sent || rewritten {
                differ.push((uid, sent, *size));
                if let Some(p) = self.pairs.get_mut(&uid) {
                    p.remote_size = *size;
                    self.dirty.insert(uid);
                }
            }
        }
        if let Some((uid, sent, size)) = differ.first() {
            tracing::warn!(
                folder = %self.folder.server_name,
                "the server stored {} uploaded message(s) differently from what was sent (UID {uid}: {sent} bytes sent, {size} stored): it rewrote them (Cyrus rewrites 8-bit header bytes), so the server's copy and the local file now differ",
                differ.len()
            );
        }
        Ok(())
    }
}

/// What deleting `n` messages in a Gmail folder does there: in a label folder the label
/// goes and the message stays in All Mail and its other labels; in All Mail (or with the
/// trash setting) the message goes to the Trash with every label.
pub fn gmail_deletion(folder: &str, n: usize, to_trash: bool) -> String {
    let all_mail = folder.ends_with("/All Mail") || folder == "All Mail";
    let label = folder
        .strip_prefix("[Gmail]/")
        .or_else(|| folder.strip_prefix("[Google Mail]/"))
        .unwrap_or(folder);
    if to_trash || all_mail {
        format!(
            "moving {n} message(s) from {label} to the Trash: Gmail removes every label from them"
        )
    } else {
        format!(
            "removing the label {label} from {n} message(s): Gmail keeps them in All Mail and under their other labels"
        )
    }
}

/// Why a deletion stayed marked on the server, for the log (rule 8).
pub fn left_marked_reason(ours: &[Uid], others: &BTreeSet<Uid>) -> String {
    let others: Vec<Uid> = others.iter().copied().collect();
    format!(
        "UID {} marked \\Deleted but not expunged: the server lacks UIDPLUS, and another client marked UID {} \\Deleted too, which a plain EXPUNGE would remove as well; trying again next pass",
        crate::imap::uid_set(ours),
        crate::imap::uid_set(&others)
    )
}

/// Put `\Deleted` into the server base of these pairs; returns the pairs changed.
pub fn mark_deleted(pairs: &mut BTreeMap<Uid, Pair>, uids: &[Uid]) -> Vec<Pair> {
    let mut changed = Vec::new();
    for uid in uids {
        if let Some(p) = pairs.get_mut(uid) {
            p.remote_flags.insert(Flag::Trashed);
            changed.push(p.clone());
        }
    }
    changed
}

/// A batch's commit on its way through the store's writer.
type Committing = tokio::task::JoinHandle<Result<(), crate::store::StoreError>>;

/// The outcome of a batch commit sent to the store's writer while the next batch ran.
async fn committed(commit: Option<Committing>) -> Result<(), EngineError> {
    match commit {
        None => Ok(()),
        Some(task) => Ok(task
            .await
            .map_err(|e| LocalError::Unexpected(format!("a batch commit failed: {e}")))??),
    }
}

/// Split UIDs into fetch batches of at most [`FETCH_BATCH`] messages or about
/// [`FETCH_BATCH_BYTES`], whichever comes first (a batch always holds at least one).
fn batches(uids: &[Uid], size_of: impl Fn(&Uid) -> u64) -> Vec<Vec<Uid>> {
    let mut out: Vec<Vec<Uid>> = Vec::new();
    let mut bytes = 0u64;
    for uid in uids {
        let size = size_of(uid);
        let full = out.last().is_none_or(|b| {
            b.len() >= FETCH_BATCH || (bytes + size > FETCH_BATCH_BYTES && !b.is_empty())
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(b) = out.last_mut() {
            b.push(*uid);
        }
    }
    out
}

/// Unlink the file holding `key`, wherever a client may have renamed it to.
pub fn unlink_key(
    md: &Maildir,
    known: Option<&LocalMessage>,
    key: &MaildirKey,
) -> Result<bool, EngineError> {
    if let Some(msg) = known {
        match md.delete(msg) {
            Ok(()) => return Ok(true),
            Err(MessageError::Vanished { .. }) => {}
            Err(e) => return Err(LocalError::from(e).into()),
        }
    }
    // ENOENT means "look again", not "gone" (rule 14).
    let scan = md.scan().map_err(LocalError::io(md.path()))?;
    match scan.messages.get(key) {
        Some(msg) => {
            md.delete(msg).map_err(LocalError::from)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Sizes of a message we APPEND: as the file holds it, and as the server counts it
/// (RFC822.SIZE is in CRLF form, and files written by clients often use bare LF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendSizes {
    pub raw: u64,
    pub crlf: u64,
}

impl AppendSizes {
    pub fn of(body: &[u8]) -> AppendSizes {
        AppendSizes {
            raw: body.len() as u64,
            crlf: crate::model::crlf_size(body),
        }
    }

    fn detail(&self, flags: &Flags) -> String {
        format!("{} {} {}", self.raw, self.crlf, flags_to_db(flags))
    }

    /// Sizes and flags back from an intent's `detail`.
    pub fn from_detail(detail: &str) -> Option<(AppendSizes, Flags)> {
        let mut parts = detail.splitn(3, ' ');
        let raw = parts.next()?.parse().ok()?;
        let crlf = parts.next()?.parse().ok()?;
        let flags = flags_from_db(parts.next().unwrap_or("")).ok()?;
        Some((AppendSizes { raw, crlf }, flags))
    }
}

/// Find a message we appended, among the folder's messages from `uidnext` on that no
/// pair holds: by Message-ID (or, without one, among them all) and size, then by content
/// where several match. Exactly one match pairs; none means it is not confirmed; several
/// stop the pass, since guessing could pair the wrong copy (rule 2). The search names
/// no `n:*` range: GNU imap4d answers `UID SEARCH UID n:*` with nothing (rule 22).
pub async fn find_appended(
    session: &mut ImapSession,
    uidnext: Uid,
    message_id: Option<&MessageId>,
    sizes: &AppendSizes,
    body: &[u8],
    paired: &BTreeSet<Uid>,
) -> Result<Option<Uid>, EngineError> {
    let criteria = match message_id {
        Some(id) => format!("HEADER Message-ID {}", crate::imap::quote(&id.0)?),
        None => "ALL".to_owned(),
    };
    let candidates: Vec<Uid> = session
        .search(&criteria)
        .await?
        .into_iter()
        .filter(|u| *u >= uidnext && !paired.contains(u))
        .collect();
    if candidates.is_empty() {
        return Ok(None);
    }
    let ids = session
        .fetch_identities(&crate::imap::uid_set(&candidates))
        .await?;
    let matches: Vec<Uid> = ids
        .into_iter()
        // Only the UIDs asked about: a FETCH answer for another is not evidence.
        .filter(|(uid, _)| candidates.contains(uid))
        .filter(|(_, (id, size))| {
            (*size == sizes.crlf || *size == sizes.raw)
                && (message_id.is_none() || id.as_ref() == message_id)
        })
        .map(|(uid, _)| uid)
        .collect();
    if matches.len() < 2 {
        return Ok(matches.first().copied());
    }
    // Copies of one Message-ID and size (or messages without one): their contents tell.
    let ours = ContentHash::of(body);
    let mut same = Vec::new();
    session
        .fetch_bodies(&matches, |b| {
            if ContentHash::of(b.body) == ours {
                same.push(b.uid);
            }
            Ok(())
        })
        .await?;
    match same.as_slice() {
        [uid] => Ok(Some(*uid)),
        [] => Ok(None),
        several => Err(EngineError::Server(format!(
            "an interrupted APPEND matches {} messages (UIDs {}); not guessing which is ours",
            several.len(),
            crate::imap::uid_set(several)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_batches_are_cut_by_count_and_bytes() {
        let uids: Vec<Uid> = (1..=1200).map(Uid).collect();
        let by_count = batches(&uids, |_| 1000);
        assert_eq!(
            by_count.iter().map(Vec::len).collect::<Vec<_>>(),
            [500, 500, 200]
        );
        let by_bytes = batches(&uids[..10], |_| 12 * 1024 * 1024);
        assert_eq!(
            by_bytes.iter().map(Vec::len).collect::<Vec<_>>(),
            [2, 2, 2, 2, 2]
        );
        let huge = batches(&uids[..2], |_| 100 * 1024 * 1024);
        assert_eq!(
            huge.len(),
            2,
            "an oversized message still gets its own batch"
        );
        assert_eq!(
            batches(&uids, |_| 1).concat(),
            uids,
            "every UID exactly once, in order"
        );
    }

    #[test]
    fn gmail_deletions_are_said_in_gmails_words() {
        assert_eq!(
            gmail_deletion("Work", 2, false),
            "removing the label Work from 2 message(s): Gmail keeps them in All Mail and under their other labels"
        );
        assert!(
            gmail_deletion("[Gmail]/All Mail", 1, false)
                .starts_with("moving 1 message(s) from All Mail to the Trash")
        );
        assert!(gmail_deletion("INBOX", 1, true).contains("to the Trash"));
    }

    #[test]
    fn append_sizes_count_bare_line_feeds() {
        assert_eq!(
            AppendSizes::of(b"a\nb\r\nc\n"),
            AppendSizes { raw: 7, crlf: 9 }
        );
        let flags = Flags::new().with(crate::model::Flag::Seen);
        let (sizes, back) =
            AppendSizes::from_detail(&AppendSizes::of(b"x\n").detail(&flags)).unwrap();
        assert_eq!((sizes.raw, sizes.crlf, back), (2, 3, flags));
    }
}
