//! Start-up resolution of server-side intents left open by a crash (rule 1), before any
//! new pass: an APPEND whose answer was lost is found again, never repeated (rule 2);
//! deletions and moves are finished (they are idempotent on exactly their UIDs).

use crate::imap::ImapSession;
use crate::maildir::{FolderMap, Maildir, utf7};
use crate::store::{Commit, FolderState, Intent, IntentKind, Store};
use crate::sync::{MessageId, Pair};

use super::apply::{AppendSizes, find_appended, unlink_key};
use super::moves::{MoveDetail, rename_into, repair_moved};
use super::{AccountReport, EngineError};

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
        let md = Maildir::open(map.to_local(&folder.server_name)?)
            .map_err(|e| EngineError::Local(e.to_string()))?;
        if let Some(key) = &spec.local_key {
            unlink_key(&md, None, key)?;
            md.sync_dirs()
                .map_err(|e| EngineError::Local(e.to_string()))?;
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
                        Maildir::open(path)
                            .map_err(|e| EngineError::Local(format!("{}: {e}", path.display())))
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
