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

use crate::imap::ImapSession;
use crate::maildir::{FolderMap, LocalScan, Maildir, utf7};
use crate::model::MaildirKey;
use crate::store::{
    Commit, DeleState, FolderId, FolderState, Intent, IntentKind, Store, StoreError, UidlRecord,
};
use crate::sync::{MessageId, Pair};

use super::LocalError;
use super::apply::{AppendSizes, find_appended, unlink_key};
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
                            commit.upsert_pairs.push(Pair::synced(
                                uid,
                                key.clone(),
                                intent.spec.delivered_flags()?,
                                msg.size,
                                None,
                            ))
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
    for intent in intents {
        let kind = intent.spec.kind;
        if matches!(
            kind,
            IntentKind::Deliver | IntentKind::Pop3Deliver | IntentKind::Pop3Dele
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
            unlink_key(&md, None, key)?;
            md.sync_dirs().map_err(LocalError::io(&path))?;
        }
        store
            .commit(Commit {
                remove_pairs: spec.uid.into_iter().collect(),
                ..commit
            })
            .await?;
        return Ok(());
    }
    let wire = utf7::encode(&folder.server_name.0);
    let selected = session.select(&wire, None).await?;
    // UIDs of another UIDVALIDITY mean nothing now; the pass will re-pair the folder.
    if folder.uidvalidity.is_some() && selected.uidvalidity != folder.uidvalidity {
        store.drop_intents(vec![intent.id]).await?;
        return Ok(());
    }
    match spec.kind {
        IntentKind::Append => {
            let (Some(uidnext), Some(key), Some((sizes, flags))) = (
                spec.uid,
                spec.local_key.clone(),
                AppendSizes::from_detail(&spec.detail),
            ) else {
                store.drop_intents(vec![intent.id]).await?;
                return Ok(());
            };
            let message_id = spec.token.clone().map(MessageId);
            match find_appended(session, uidnext, message_id.as_ref(), &sizes).await? {
                Some(uid) => {
                    let pair = Pair {
                        uid,
                        key,
                        remote_flags: flags.clone(),
                        local_flags: flags.system_only(),
                        remote_size: sizes.crlf,
                        local_size: sizes.raw,
                        message_id,
                    };
                    store
                        .commit(Commit {
                            upsert_pairs: vec![pair],
                            ..commit
                        })
                        .await?;
                }
                // Never stored: the key is still unpaired, so the next pass appends it.
                None => store.drop_intents(vec![intent.id]).await?,
            }
        }
        IntentKind::Expunge | IntentKind::FlagDeleted => {
            if let Some(uid) = spec.uid {
                session.delete(&[uid], false).await?;
            }
            store
                .commit(Commit {
                    remove_pairs: spec.uid.into_iter().collect(),
                    ..commit
                })
                .await?;
        }
        IntentKind::Move => {
            let present = match spec.uid {
                Some(uid) => !session.search(&format!("UID {}", uid.0)).await?.is_empty(),
                None => false,
            };
            match MoveDetail::decode(&spec.detail) {
                Some(MoveDetail::Trash(trash)) => {
                    if let (true, Some(uid)) = (present, spec.uid) {
                        session.move_to(&[uid], &trash).await?;
                    }
                    store
                        .commit(Commit {
                            remove_pairs: spec.uid.into_iter().collect(),
                            ..commit
                        })
                        .await?;
                }
                Some(MoveDetail::Server { to }) => {
                    let Some((dest, pair)) = parties(store, folders, folder, to, spec.uid).await?
                    else {
                        store.drop_intents(vec![intent.id]).await?;
                        return Ok(());
                    };
                    let dest_wire = utf7::encode(&dest.server_name.0);
                    let new_uid = if present {
                        session
                            .move_to(&[pair.uid], &dest_wire)
                            .await?
                            .get(&pair.uid)
                            .copied()
                    } else {
                        None
                    };
                    let new_uid = match (new_uid, &spec.token) {
                        (Some(uid), _) => Some(uid),
                        (None, Some(id)) => {
                            session.select(&dest_wire, None).await?;
                            let found = session
                                .search(&format!("HEADER Message-ID {}", crate::imap::quote(id)?))
                                .await?;
                            (found.len() == 1)
                                .then(|| found.into_iter().next())
                                .flatten()
                        }
                        (None, None) => None,
                    };
                    match new_uid {
                        Some(uid) => {
                            repair_moved(store, folder.id, dest.id, &pair, uid, Some(intent.id))
                                .await?
                        }
                        None => {
                            return Err(EngineError::Server(format!(
                                "the moved message {} cannot be found in {}",
                                pair.key, dest.server_name
                            )));
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
                    rename_into(&from_md, &to_md, &pair.key, None)?;
                    repair_moved(store, folder.id, dest.id, &pair, uid, Some(intent.id)).await?;
                }
                None => store.drop_intents(vec![intent.id]).await?,
            }
        }
        IntentKind::LocalDelete
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
