//! Start-up resolution of the intents a crash left open (rule 1), before any new pass,
//! next to the engine and the POP3 poller that write them.
//!
//! Deliveries (IMAP and POP3): an intent names the key chosen before writing; after a
//! crash the file under that key either exists complete in `new/`/`cur/` (delivery
//! synced the data before giving it a name) or not at all. Found: commit the pair (or
//! record the UIDL). Not found: drop the intent and any `tmp/` leftover, and the next
//! pass fetches the message again. Nothing is lost, nothing delivered twice.
//!
//! Server-side intents: an APPEND whose answer was lost is found again, never repeated
//! (rule 2); deletions and moves are finished (they are idempotent on exactly their UIDs).

use std::collections::BTreeMap;

use crate::imap::{Deleted, ImapSession, uid_set};
use crate::maildir::{FolderMap, LocalScan, Maildir, utf7};
use crate::model::{ContentHash, MaildirKey, Uid, crlf_size};
use crate::store::{
    Commit, DeleState, FolderId, FolderState, Intent, IntentKind, Store, StoreError, UidlRecord,
};
use crate::sync::{Change, ChangeKind, MessageId, Outcome, Pair, Side};

use super::LocalError;
use super::apply::{AppendSizes, left_marked_reason, mark_deleted, unlink_key};
use super::moves::{MoveDetail, rename_into, repair_moved};
use super::{AccountReport, EngineError};

/// What [`resolve_delivery_intents`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Intents whose file was found and is now paired (or its UIDL recorded).
    pub completed: Vec<MaildirKey>,
    /// Intents whose file never became visible; dropped, to be fetched again.
    pub dropped: Vec<MaildirKey>,
    /// Intents left open because the folder could not be observed reliably (unstable
    /// scan, duplicate key, missing folder); the engine must not start a pass on it.
    pub unresolved: Vec<(MaildirKey, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("recovering deliveries in {path:?}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Resolve every open `Deliver` and `Pop3Deliver` intent, one commit per folder. Other
/// intent kinds concern the server and are left to the engine.
pub async fn resolve_delivery_intents(store: &Store) -> Result<Recovery, RecoveryError> {
    let mut by_folder: BTreeMap<FolderId, Vec<Intent>> = BTreeMap::new();
    let mut report = Recovery::default();
    for intent in store.open_intents().await? {
        let ours = matches!(
            intent.spec.kind,
            IntentKind::Deliver | IntentKind::Pop3Deliver
        );
        if !ours {
            continue;
        }
        match (intent.spec.folder, intent.spec.local_key.clone()) {
            (Some(f), Some(_)) => by_folder.entry(f).or_default().push(intent),
            (_, key) => report.unresolved.push((
                key.unwrap_or(MaildirKey(String::new())),
                format!("intent {} names no folder or key", intent.id.0),
            )),
        }
    }
    if by_folder.is_empty() {
        return Ok(report);
    }
    let folders: BTreeMap<FolderId, _> = store
        .folders()
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
    for (folder_id, intents) in by_folder {
        let keys = || intents.iter().filter_map(|i| i.spec.local_key.clone());
        let Some(folder) = folders.get(&folder_id) else {
            report
                .unresolved
                .extend(keys().map(|k| (k, format!("folder {} is gone", folder_id.0))));
            continue;
        };
        let md = match Maildir::open(&folder.local_path) {
            Ok(md) => md,
            Err(e) => {
                let why = format!("{}: {e}", folder.local_path.display());
                report.unresolved.extend(keys().map(|k| (k, why.clone())));
                continue;
            }
        };
        let scan: LocalScan = md.scan().map_err(|source| RecoveryError::Io {
            path: folder.local_path.clone(),
            source,
        })?;
        if !scan.stable {
            let why = format!("{} keeps changing; retry", folder.local_path.display());
            report.unresolved.extend(keys().map(|k| (k, why.clone())));
            continue;
        }
        let mut commit = Commit {
            folder: Some(folder_id),
            ..Commit::default()
        };
        for intent in intents {
            let Some(key) = intent.spec.local_key.clone() else {
                continue;
            };
            if scan.duplicates.iter().any(|d| d.key == key) {
                report
                    .unresolved
                    .push((key, "several files carry this key".into()));
                continue;
            }
            match scan.messages.get(&key) {
                Some(msg) => {
                    match (intent.spec.kind, intent.spec.uid, &intent.spec.uidl) {
                        (IntentKind::Deliver, Some(uid), _) => {
                            commit.upsert_pairs.push(Pair {
                                // A download or a link records the message's server
                                // identity, so the recovered entry can be linked from.
                                email_id: intent.spec.token.clone().map(crate::model::EmailId),
                                ..Pair::synced(
                                    uid,
                                    key.clone(),
                                    intent.spec.delivered_flags()?,
                                    msg.size,
                                    None,
                                )
                            })
                        }
                        (IntentKind::Pop3Deliver, _, Some(uidl)) => commit.uidls.push(UidlRecord {
                            uidl: uidl.clone(),
                            local_key: Some(key.clone()),
                            first_seen: intent.created_at,
                            dele: DeleState::None,
                        }),
                        _ => {
                            report
                                .unresolved
                                .push((key, "intent lacks its UID or UIDL".into()));
                            continue;
                        }
                    }
                    // A tmp/ link survives if the crash came before its unlink was durable.
                    md.discard_tmp(&key).map_err(|source| RecoveryError::Io {
                        path: md.tmp_dir(),
                        source,
                    })?;
                    report.completed.push(key);
                }
                None => {
                    md.discard_tmp(&key).map_err(|source| RecoveryError::Io {
                        path: md.tmp_dir(),
                        source,
                    })?;
                    report.dropped.push(key);
                }
            }
            commit.complete_intents.push(intent.id);
        }
        store.commit(commit).await?;
    }
    Ok(report)
}

pub async fn server_intents(
    store: &Store,
    session: &mut ImapSession,
    map: &FolderMap,
    report: &mut AccountReport,
) -> Result<(), EngineError> {
    let intents = store.open_intents().await?;
    if intents.is_empty() {
        return Ok(());
    }
    let folders = store.folders().await?;
    // Uploads are confirmed a folder at a time: one SELECT, one pairing (rule 22).
    let mut uploads: BTreeMap<FolderId, Vec<Intent>> = BTreeMap::new();
    for intent in intents.iter().filter(|i| i.spec.kind == IntentKind::Append) {
        match intent.spec.folder {
            Some(f) if folders.iter().any(|x| x.id == f) => {
                uploads.entry(f).or_default().push(intent.clone())
            }
            _ => store.drop_intents(vec![intent.id]).await?,
        }
    }
    for (id, intents) in uploads {
        let Some(folder) = folders.iter().find(|f| f.id == id) else {
            continue;
        };
        if folder.halt_reason.is_some() {
            continue;
        }
        match confirm_uploads(store, session, map, folder, &intents).await {
            Ok(()) => {}
            // Deleted on the server since (another client): a copy the append made went
            // with the folder, and the file is still here, unpaired, for the pass (rule 9
            // keeps a Maildir folder that holds mail). Never a halt, which would keep the
            // intents open and the folder's state stuck behind them (the soak, seed
            // 20261209 on 9786e9e).
            Err(EngineError::Imap(crate::imap::ImapError::NoSuchFolder(why))) => {
                tracing::info!(
                    folder = %folder.server_name,
                    "{why}: its interrupted append is moot; the pass sees the folder gone"
                );
                store
                    .drop_intents(intents.iter().map(|i| i.id).collect())
                    .await?;
            }
            Err(e) => {
                // An ambiguous match stops this folder until a human looks (rule 2).
                let reason = format!("an interrupted append could not be resolved: {e}");
                store.set_halt(folder.id, Some(reason.clone())).await?;
                report
                    .halts
                    .push(format!("{}: {reason}", folder.server_name));
            }
        }
    }
    for intent in intents {
        let kind = intent.spec.kind;
        if matches!(
            kind,
            IntentKind::Deliver
                | IntentKind::Pop3Deliver
                | IntentKind::Pop3Dele
                | IntentKind::Append
        ) {
            continue;
        }
        let Some(folder) = intent
            .spec
            .folder
            .and_then(|id| folders.iter().find(|f| f.id == id))
        else {
            store.drop_intents(vec![intent.id]).await?;
            continue;
        };
        if let Err(e) = resolve(store, session, map, &folders, folder, &intent).await {
            // An ambiguous APPEND stops this folder until a human looks (rule 2).
            let reason = format!(
                "an interrupted {} could not be resolved: {e}",
                kind.as_str()
            );
            store.set_halt(folder.id, Some(reason.clone())).await?;
            report
                .halts
                .push(format!("{}: {reason}", folder.server_name));
        }
    }
    Ok(())
}

async fn resolve(
    store: &Store,
    session: &mut ImapSession,
    map: &FolderMap,
    folders: &[FolderState],
    folder: &FolderState,
    intent: &Intent,
) -> Result<(), EngineError> {
    let spec = &intent.spec;
    let commit = Commit {
        folder: Some(folder.id),
        complete_intents: vec![intent.id],
        ..Commit::default()
    };
    if spec.kind == IntentKind::LocalDelete {
        let path = map.to_local(&folder.server_name)?;
        let md = Maildir::open(&path).map_err(LocalError::io(&path))?;
        if let Some(key) = &spec.local_key {
            // Gone already: most likely unlinked before the crash.
            unlink_key(&md, None, key)?;
            md.sync_dirs().map_err(LocalError::io(&path))?;
        }
        // A local deletion carries a server one (the message left the server): its log
        // record, which the interrupted pass did not commit.
        let change = Change {
            side: Side::Server,
            uid: spec.uid,
            key: spec.local_key.clone(),
            kind: ChangeKind::Deleted,
            outcome: Outcome::Propagated,
        };
        store
            .commit(Commit {
                remove_pairs: spec.uid.into_iter().collect(),
                changes: vec![super::report::change_record(&folder.server_name, &change)],
                ..commit
            })
            .await?;
        return Ok(());
    }
    let wire = utf7::encode(&folder.server_name.0);
    let selected = match session.select(&wire, None).await {
        // Deleted on the server since (another client): what the intent was doing there
        // is moot, and the pass sees the folder gone (rule 9). Never a halt for that.
        Err(crate::imap::ImapError::NoSuchFolder(why)) => {
            tracing::info!(
                folder = %folder.server_name,
                "{why}: its interrupted {} is moot; the pass sees the folder gone",
                spec.kind.as_str()
            );
            store.drop_intents(vec![intent.id]).await?;
            return Ok(());
        }
        other => other?,
    };
    // UIDs of another UIDVALIDITY mean nothing now; the pass will re-pair the folder.
    if folder.uidvalidity.is_some() && selected.uidvalidity != folder.uidvalidity {
        store.drop_intents(vec![intent.id]).await?;
        return Ok(());
    }
    match spec.kind {
        IntentKind::Expunge | IntentKind::FlagDeleted => {
            // Only what is still there: the expunge may have happened before the
            // interruption, and a server may refuse a STORE that names a UID it no longer
            // has (GNU imap4d: `BAD Failed to parse message set`).
            let uids: Vec<Uid> = spec.uid.into_iter().collect();
            let present: Vec<Uid> = session.present(&uids).await?.into_iter().collect();
            let gone: Vec<Uid> = uids
                .iter()
                .filter(|u| !present.contains(u))
                .copied()
                .collect();
            let outcome = session.delete(&present).await?;
            let deletion = Deletion {
                present: &present,
                gone: &gone,
                key: spec.local_key.as_ref(),
            };
            finish_deletion(store, folder, deletion, outcome, commit).await?;
        }
        IntentKind::Move => {
            let present = match spec.uid {
                Some(uid) => !session.present(&[uid]).await?.is_empty(),
                None => false,
            };
            match MoveDetail::decode(&spec.detail) {
                Some(MoveDetail::Trash(trash)) => {
                    let uids: Vec<Uid> = spec.uid.filter(|_| present).into_iter().collect();
                    let gone: Vec<Uid> = spec.uid.filter(|_| !present).into_iter().collect();
                    let outcome = if session.has_move() {
                        session.move_to(&uids, &trash).await?;
                        Deleted::Expunged
                    } else {
                        // Marked already: the copy was made before the interruption.
                        let marked = match uids.as_slice() {
                            [uid] => !session
                                .search(&format!("UID {} DELETED", uid.0))
                                .await?
                                .is_empty(),
                            _ => true,
                        };
                        if !marked {
                            session.copy_to(&uids, &trash).await?;
                        }
                        session.delete(&uids).await?
                    };
                    let deletion = Deletion {
                        present: &uids,
                        gone: &gone,
                        key: spec.local_key.as_ref(),
                    };
                    finish_deletion(store, folder, deletion, outcome, commit).await?;
                }
                Some(MoveDetail::Server { to }) => {
                    let Some((dest, pair)) = parties(store, folders, folder, to, spec.uid).await?
                    else {
                        store.drop_intents(vec![intent.id]).await?;
                        return Ok(());
                    };
                    let dest_wire = utf7::encode(&dest.server_name.0);
                    let new_uid = if present {
                        match session.move_to(&[pair.uid], &dest_wire).await {
                            Ok(mapping) => mapping.get(&pair.uid).copied(),
                            // The destination was deleted since (another client): the
                            // message stays where it is, and the pass sees it there.
                            Err(crate::imap::ImapError::Protocol(why))
                                if session.is_gone(&dest_wire, &why).await? =>
                            {
                                tracing::info!(
                                    folder = %folder.server_name,
                                    "{} was deleted before the interrupted move of {} into it finished; the message stays",
                                    dest.server_name,
                                    pair.key
                                );
                                store.drop_intents(vec![intent.id]).await?;
                                return Ok(());
                            }
                            Err(e) => return Err(e.into()),
                        }
                    } else {
                        None
                    };
                    let new_uid = match (new_uid, &spec.token) {
                        (Some(uid), _) => Some(uid),
                        (None, Some(id)) => match session.select(&dest_wire, None).await {
                            // The destination was deleted since: the message is not there.
                            Err(crate::imap::ImapError::NoSuchFolder(_)) => None,
                            other => {
                                other?;
                                let found = session
                                    .search(&format!(
                                        "HEADER Message-ID {}",
                                        crate::imap::quote(id)?
                                    ))
                                    .await?;
                                (found.len() == 1)
                                    .then(|| found.into_iter().next())
                                    .flatten()
                            }
                        },
                        (None, None) => None,
                    };
                    match new_uid {
                        Some(uid) => {
                            repair_moved(store, folder.id, dest.id, &pair, uid, Some(intent.id))
                                .await?
                        }
                        None => {
                            // Not where the move sent it: another client moved or removed
                            // it since. Nothing is left to finish; the pass sees where it
                            // is now (never a halt for what another client did).
                            tracing::info!(
                                folder = %folder.server_name,
                                "the message {} moved to {} is no longer there; the pass looks for it",
                                pair.key,
                                dest.server_name
                            );
                            store.drop_intents(vec![intent.id]).await?;
                        }
                    }
                }
                Some(MoveDetail::Local { to, uid }) => {
                    let Some((dest, pair)) = parties(store, folders, folder, to, spec.uid).await?
                    else {
                        store.drop_intents(vec![intent.id]).await?;
                        return Ok(());
                    };
                    let open = |path: &std::path::Path| {
                        Maildir::open(path).map_err(|e| {
                            EngineError::Local(LocalError::Io {
                                path: path.to_path_buf(),
                                source: e,
                            })
                        })
                    };
                    let from_md = open(&map.to_local(&folder.server_name)?)?;
                    let to_md = open(&map.to_local(&dest.server_name)?)?;
                    if !rename_into(&from_md, &to_md, &pair.key, None)? {
                        // The mail client moved or deleted the file since: the pass sees
                        // where it is now (never a halt for what the user did).
                        tracing::info!(
                            folder = %folder.server_name,
                            "{} left {} before its move finished; the pass looks for it",
                            pair.key,
                            folder.server_name
                        );
                        store.drop_intents(vec![intent.id]).await?;
                        return Ok(());
                    }
                    repair_moved(store, folder.id, dest.id, &pair, uid, Some(intent.id)).await?;
                }
                None => store.drop_intents(vec![intent.id]).await?,
            }
        }
        IntentKind::LocalDelete
        | IntentKind::Append
        | IntentKind::Deliver
        | IntentKind::Pop3Deliver
        | IntentKind::Pop3Dele => {}
    }
    Ok(())
}

/// The destination folder and the source pair a journaled move names; `None` when either
/// is gone, and the move is moot.
async fn parties<'f>(
    store: &Store,
    folders: &'f [FolderState],
    from: &FolderState,
    to: crate::store::FolderId,
    uid: Option<crate::model::Uid>,
) -> Result<Option<(&'f FolderState, Pair)>, EngineError> {
    let Some(dest) = folders.iter().find(|f| f.id == to) else {
        return Ok(None);
    };
    let pair = store
        .pairs(from.id)
        .await?
        .into_iter()
        .find(|p| Some(p.uid) == uid);
    Ok(pair.map(|p| (dest, p)))
}

/// An interrupted deletion on the server (a local deletion carried there): the UIDs
/// still `present` when recovery looked, which it deleted now, and those already `gone`
/// (the deletion went through before the interruption), with the file's key.
struct Deletion<'a> {
    present: &'a [Uid],
    gone: &'a [Uid],
    key: Option<&'a MaildirKey>,
}

/// Commit what an interrupted deletion came to: the pairs of the messages gone from the
/// server go, each with its record in the change log (the interrupted pass would have
/// logged it with its last commit: the soak's unexplained deletion, seed 20261209 on
/// b12337a, a link cut during `UID EXPUNGE`); left marked (rule 8, no UIDPLUS), the
/// pairs stay with `\Deleted` in their server base, and the pass that expunges them logs.
/// Either way the intent is resolved: never a halt for this.
async fn finish_deletion(
    store: &Store,
    folder: &FolderState,
    deletion: Deletion<'_>,
    outcome: Deleted,
    commit: Commit,
) -> Result<(), EngineError> {
    let mut removed: Vec<Uid> = deletion.gone.to_vec();
    let mut marked = Vec::new();
    match outcome {
        Deleted::Expunged => removed.extend_from_slice(deletion.present),
        Deleted::LeftMarked { others } => {
            tracing::warn!(folder = %folder.server_name, "{}", left_marked_reason(deletion.present, &others));
            let mut pairs: BTreeMap<Uid, Pair> = store
                .pairs(folder.id)
                .await?
                .into_iter()
                .filter(|p| deletion.present.contains(&p.uid))
                .map(|p| (p.uid, p))
                .collect();
            marked = mark_deleted(&mut pairs, deletion.present);
        }
    }
    let changes = removed
        .iter()
        .map(|uid| {
            let change = Change {
                side: Side::Local,
                uid: Some(*uid),
                key: deletion.key.cloned(),
                kind: ChangeKind::Deleted,
                outcome: Outcome::Propagated,
            };
            super::report::change_record(&folder.server_name, &change)
        })
        .collect();
    store
        .commit(Commit {
            remove_pairs: removed,
            upsert_pairs: marked,
            changes,
            ..commit
        })
        .await?;
    Ok(())
}

/// Pair a folder's unconfirmed uploads with the server's new messages (rules 2, 22): a
/// fresh SELECT (a server without UIDPLUS may show or number an APPEND only after one),
/// a search that names no `n:*` range, then the same pairing a first contact uses, by
/// Message-ID and size with CRLF line endings, else content, over the messages from each
/// upload's saved UIDNEXT on that no pair holds. Paired: the intent is done. Nothing
/// there: it was never stored, and the next plan appends it again. Ambiguous: an error,
/// and the folder halts rather than guess.
async fn confirm_uploads(
    store: &Store,
    session: &mut ImapSession,
    map: &FolderMap,
    folder: &FolderState,
    intents: &[Intent],
) -> Result<(), EngineError> {
    let wire = utf7::encode(&folder.server_name.0);
    let selected = session.select(&wire, None).await?;
    let renumbered = folder.uidvalidity.is_some() && selected.uidvalidity != folder.uidvalidity;
    struct Upload<'a> {
        intent: &'a Intent,
        key: MaildirKey,
        from: Uid,
        sizes: AppendSizes,
        flags: crate::model::Flags,
        message_id: Option<MessageId>,
    }
    let mut uploads = Vec::new();
    let mut broken = Vec::new();
    for intent in intents {
        let spec = &intent.spec;
        match (
            spec.uid,
            spec.local_key.clone(),
            AppendSizes::from_detail(&spec.detail),
        ) {
            (Some(from), Some(key), Some((sizes, flags))) => uploads.push(Upload {
                intent,
                key,
                from,
                sizes,
                flags,
                message_id: spec.token.clone().map(MessageId),
            }),
            _ => broken.push(intent.id),
        }
    }
    store.drop_intents(broken).await?;
    if uploads.is_empty() {
        return Ok(());
    }
    let base = store.base(folder).await?;
    if renumbered {
        // The server's UIDs mean something else now (GNU imap4d reports the clock as the
        // UIDVALIDITY of a folder it has not written back yet). The pass re-pairs the
        // folder by Message-ID and size (rule 13); each upload joins that re-pairing as
        // a pair under a free UID of the old numbering at or above its saved UIDNEXT,
        // where its APPEND landed. Its flags start from an empty base, so each side's
        // flags reach the other (a server may have ignored the ones APPEND named).
        let mut commit = Commit {
            folder: Some(folder.id),
            ..Commit::default()
        };
        let mut taken: std::collections::BTreeSet<Uid> = base.pairs.keys().copied().collect();
        taken.extend(base.remote_only.iter().copied());
        let mut unpairable = Vec::new();
        for u in &uploads {
            let Some(message_id) = u.message_id.clone() else {
                unpairable.push(u.intent.id);
                continue;
            };
            let mut uid = u.from;
            while taken.contains(&uid) {
                uid = Uid(uid.0.saturating_add(1));
            }
            taken.insert(uid);
            commit.upsert_pairs.push(Pair {
                uid,
                key: u.key.clone(),
                remote_flags: crate::model::Flags::new(),
                local_flags: crate::model::Flags::new(),
                remote_size: u.sizes.crlf,
                local_size: u.sizes.raw,
                message_id: Some(message_id),
                email_id: None,
            });
            commit.complete_intents.push(u.intent.id);
        }
        tracing::debug!(folder = %folder.server_name, was = ?folder.uidvalidity, now = ?selected.uidvalidity, uploads = commit.upsert_pairs.len(), "UIDVALIDITY changed; unconfirmed uploads join the re-pairing");
        store.commit(commit).await?;
        // Without a Message-ID the re-pairing cannot find it: the plan decides afresh.
        store.drop_intents(unpairable).await?;
        return Ok(());
    }
    let lowest = uploads.iter().map(|u| u.from).min().unwrap_or(Uid(1));
    // The searches: one per Message-ID, one of everything if an upload has none.
    let mut found = std::collections::BTreeSet::new();
    let ids: std::collections::BTreeSet<&MessageId> = uploads
        .iter()
        .filter_map(|u| u.message_id.as_ref())
        .collect();
    for id in ids {
        found.extend(
            session
                .search(&format!("HEADER Message-ID {}", crate::imap::quote(&id.0)?))
                .await?,
        );
    }
    if uploads.iter().any(|u| u.message_id.is_none()) {
        found.extend(session.all_uids().await?);
    }
    let candidates: Vec<Uid> = found
        .into_iter()
        .filter(|u| *u >= lowest && !base.pairs.contains_key(u) && !base.remote_only.contains(u))
        .collect();
    let mut remote: BTreeMap<Uid, crate::sync::RemoteMessage> = BTreeMap::new();
    if !candidates.is_empty() {
        let set = uid_set(&candidates);
        let identities = session.fetch_identities(&set).await?;
        for (uid, m) in session.fetch_flags(&set, None).await? {
            let Some((message_id, size)) = identities.get(&uid).cloned() else {
                continue;
            };
            if !candidates.contains(&uid) {
                continue;
            }
            remote.insert(
                uid,
                crate::sync::RemoteMessage {
                    flags: m.flags,
                    size: m.size.unwrap_or(size),
                    message_id,
                    email_id: m.email_id,
                },
            );
        }
    }
    // Each upload as the Maildir holds it now; a file deleted since is described by what
    // the intent saved, so its server copy is still found (and the deletion then follows).
    let path = map.to_local(&folder.server_name)?;
    let scan = Maildir::open(&path)
        .and_then(|md| md.scan())
        .map_err(LocalError::io(&path))?;
    let mut local: BTreeMap<MaildirKey, crate::sync::LocalMessage> = BTreeMap::new();
    let mut evidence = crate::sync::adopt::Evidence::default();
    for u in &uploads {
        let file = scan.messages.get(&u.key);
        let bytes = file.and_then(|m| std::fs::read(&m.path).ok());
        local.insert(
            u.key.clone(),
            crate::sync::LocalMessage {
                flags: file.map_or_else(|| u.flags.system_only(), |m| m.flags.clone()),
                size: file.map_or(u.sizes.raw, |m| m.size),
            },
        );
        evidence.local.insert(
            u.key.clone(),
            crate::sync::adopt::LocalIdentity {
                message_id: u.message_id.clone(),
                crlf_size: Some(bytes.as_deref().map_or(u.sizes.crlf, crlf_size)),
                tuid_size: 0,
                hash: bytes.as_deref().map(ContentHash::of),
            },
        );
    }
    // Only the uploads' own candidates: a message from before an upload's UIDNEXT is not it.
    let remote_refs: BTreeMap<Uid, &crate::sync::RemoteMessage> =
        remote.iter().map(|(u, m)| (*u, m)).collect();
    let (want, _) = crate::sync::adopt::needs_hash(&remote_refs, &evidence.local);
    let want: Vec<Uid> = want.into_iter().collect();
    if !want.is_empty() {
        session
            .fetch_bodies(&want, |b| {
                evidence
                    .remote_hashes
                    .insert(b.uid, ContentHash::of(b.body));
                Ok(())
            })
            .await?;
    }
    let local_refs: BTreeMap<MaildirKey, &crate::sync::LocalMessage> =
        local.iter().map(|(k, m)| (k.clone(), m)).collect();
    let adoption = crate::sync::adopt::adopt(&remote_refs, &local_refs, &evidence);
    tracing::debug!(folder = %folder.server_name, uploads = uploads.len(), candidates = ?candidates, found = %adoption, "confirming unconfirmed uploads");
    let mut commit = Commit {
        folder: Some(folder.id),
        ..Commit::default()
    };
    let mut unfound = Vec::new();
    for u in &uploads {
        let pair = adoption
            .pairs
            .iter()
            .map(|(p, _)| p)
            .find(|p| p.key == u.key && p.uid >= u.from);
        match pair {
            Some(p) => {
                commit.upsert_pairs.push(Pair {
                    remote_size: remote.get(&p.uid).map_or(u.sizes.crlf, |m| m.size),
                    ..p.clone()
                });
                commit.complete_intents.push(u.intent.id);
            }
            None if adoption.held_local.contains_key(&u.key) => {
                return Err(EngineError::Server(format!(
                    "the upload of {} cannot be told apart on the server: {}",
                    u.key, adoption.held_local[&u.key]
                )));
            }
            // Never stored (or removed since by another client): the plan appends it.
            None => unfound.push(u.intent.id),
        }
    }
    store.commit(commit).await?;
    store.drop_intents(unfound).await?;
    Ok(())
}
