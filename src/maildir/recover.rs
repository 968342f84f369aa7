//! Start-up recovery of interrupted deliveries (rule 1). A delivery intent names the key
//! chosen before writing; after a crash the file under that key either exists complete in
//! `new/`/`cur/` (delivery synced the data before giving it a name) or not at all. Found:
//! commit the pair. Not found: drop the intent and any `tmp/` leftover, and the next pass
//! fetches the message again. Nothing is lost, nothing delivered twice.

use std::collections::BTreeMap;

use crate::maildir::{LocalScan, Maildir};
use crate::model::MaildirKey;
use crate::store::{
    Commit, DeleState, FolderId, Intent, IntentKind, Pair, Store, StoreError, UidlRecord,
};

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
