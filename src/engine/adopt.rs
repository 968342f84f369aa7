//! First contact (rule 21): gather what tells the unpaired messages of a folder's two
//! sides apart (the previous tool's state, each local file's Message-ID and size with
//! CRLF line endings, content hashes where twins could match), let the pure
//! [`sync::adopt`] pair them, and commit the pairs and holds before anything is planned.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::imap::ImapSession;
use crate::maildir::{LocalScan, Maildir, peers};
use crate::model::{ContentHash, FolderName, MaildirKey, MessageId, Uid, crlf_size, tuid_line};
use crate::store::{ChangeRecord, Commit, FolderId, Hold};
use crate::sync::adopt::{Adoption, Evidence, LocalIdentity, needs_hash};
use crate::sync::{self, Base, RemoteSnapshot, Side};

use super::{EngineError, LocalError};

/// How much of a file is read for its Message-ID when the previous tool's state already
/// names its pair (the header only; the body is never needed then).
const HEADER_READ: u64 = 64 * 1024;

/// Server bodies fetched per command when content hashes are needed.
const HASH_BATCH: usize = 50;

/// Whether a first contact may be coming: the folder was never synced and the Maildir
/// holds messages the base does not know (the server side is not observed yet).
pub(super) fn may_pair(base: &Base, scan: &LocalScan) -> bool {
    base.uid_validity.is_none() && unpaired_local(base, scan).next().is_some()
}

/// A folder the base has never seen synced, with unpaired mail on both sides: what
/// mbsync or OfflineIMAP left, or syncmail's own state lost. Only a complete server
/// listing can be compared.
pub(super) fn is_first_contact(base: &Base, remote: &RemoteSnapshot, scan: &LocalScan) -> bool {
    base.uid_validity.is_none()
        && remote.is_complete()
        && remote
            .listed()
            .keys()
            .any(|u| !base.pairs.contains_key(u) && !base.remote_only.contains(u))
        && unpaired_local(base, scan).next().is_some()
}

fn unpaired_local<'a>(
    base: &'a Base,
    scan: &'a LocalScan,
) -> impl Iterator<Item = &'a crate::maildir::LocalMessage> + 'a {
    let paired: BTreeSet<&MaildirKey> = base.pairs.values().map(|p| &p.key).collect();
    scan.messages
        .values()
        .filter(move |m| !paired.contains(&m.key) && !base.local_only.contains(&m.key))
}

/// Pair what both sides hold (rule 21). Reads every unpaired local file once (its
/// header only where the previous tool's state names its pair), and fetches server
/// bodies only for the few messages [`needs_hash`] asks about.
pub(super) async fn first_contact(
    session: &mut ImapSession,
    md: &Maildir,
    scan: &LocalScan,
    remote: &RemoteSnapshot,
    base: &Base,
    names: &peers::FolderNames<'_>,
) -> Result<Adoption, EngineError> {
    let remote_unpaired: BTreeMap<Uid, &sync::RemoteMessage> = remote
        .listed()
        .iter()
        .filter(|(u, _)| !base.pairs.contains_key(u) && !base.remote_only.contains(u))
        .map(|(u, m)| (*u, m))
        .collect();
    let local_unpaired: BTreeMap<MaildirKey, &crate::maildir::LocalMessage> =
        unpaired_local(base, scan)
            .map(|m| (m.key.clone(), m))
            .collect();

    let previous =
        peers::previous_pairs(md.path(), names, remote.uid_validity, local_unpaired.keys());
    // Only a pair whose server message is still there spares reading the file whole; a
    // file whose named UID is gone is compared by Message-ID and size like any other.
    let named: BTreeSet<&MaildirKey> = previous
        .iter()
        .filter(|(uid, _, _)| remote_unpaired.contains_key(uid))
        .map(|(_, k, _)| k)
        .collect();
    let jobs: Vec<(MaildirKey, PathBuf, bool)> = local_unpaired
        .values()
        .map(|m| (m.key.clone(), m.path.clone(), !named.contains(&m.key)))
        .collect();
    let mut local = read_identities(jobs).await?;

    let (want_uids, want_keys) = needs_hash(&remote_unpaired, &local);
    let jobs: Vec<(MaildirKey, PathBuf)> = want_keys
        .iter()
        .filter_map(|k| local_unpaired.get(k).map(|m| (k.clone(), m.path.clone())))
        .collect();
    for (key, hash) in hash_files(jobs).await? {
        if let Some(id) = local.get_mut(&key) {
            id.hash = Some(hash);
        }
    }
    let mut remote_hashes = BTreeMap::new();
    let uids: Vec<Uid> = want_uids.into_iter().collect();
    for batch in uids.chunks(HASH_BATCH) {
        session
            .fetch_bodies(batch, |b| {
                remote_hashes.insert(b.uid, ContentHash::of(b.body));
                Ok(())
            })
            .await?;
    }
    let plain: BTreeMap<MaildirKey, sync::LocalMessage> = local_unpaired
        .iter()
        .map(|(k, m)| {
            (
                k.clone(),
                sync::LocalMessage {
                    flags: m.flags.clone(),
                    size: m.size,
                },
            )
        })
        .collect();
    let evidence = Evidence {
        local,
        remote_hashes,
        previous,
    };
    Ok(sync::adopt::adopt(
        &remote_unpaired,
        &plain.iter().map(|(k, m)| (k.clone(), m)).collect(),
        &evidence,
    ))
}

/// The commit that makes an adoption the folder's base: its pairs, its holds, and a
/// change-log line for each saying how it was found (or why it is held).
pub(super) fn commit(folder: FolderId, name: &FolderName, adoption: &Adoption) -> Commit {
    let at = SystemTime::now();
    let mut changes = Vec::with_capacity(adoption.pairs.len());
    for (pair, method) in &adoption.pairs {
        changes.push(ChangeRecord {
            at,
            folder: name.clone(),
            side: Side::Local,
            uid: Some(pair.uid),
            local_key: Some(pair.key.clone()),
            change: "found on both sides at first contact".into(),
            action: format!("paired by {method}"),
        });
    }
    let mut holds = Vec::new();
    for (uid, why) in &adoption.held_remote {
        holds.push(Hold {
            side: Side::Server,
            item: uid.0.to_string(),
            reason: why.clone(),
        });
        changes.push(held(at, name, Side::Server, Some(*uid), None, why));
    }
    for (key, why) in &adoption.held_local {
        holds.push(Hold {
            side: Side::Local,
            item: key.0.clone(),
            reason: why.clone(),
        });
        changes.push(held(at, name, Side::Local, None, Some(key.clone()), why));
    }
    Commit {
        folder: Some(folder),
        upsert_pairs: adoption.pairs.iter().map(|(p, _)| p.clone()).collect(),
        holds,
        changes,
        ..Commit::default()
    }
}

fn held(
    at: SystemTime,
    folder: &FolderName,
    side: Side,
    uid: Option<Uid>,
    local_key: Option<MaildirKey>,
    why: &str,
) -> ChangeRecord {
    ChangeRecord {
        at,
        folder: folder.clone(),
        side,
        uid,
        local_key,
        change: "held at first contact".into(),
        action: format!("not transferred until `syncmail adopt` decides: {why}"),
    }
}

/// Each file's identity, read on as many threads as the machine has (up to 4): the
/// whole file where its size with CRLF is needed, the header only where `full` is false.
async fn read_identities(
    jobs: Vec<(MaildirKey, PathBuf, bool)>,
) -> Result<BTreeMap<MaildirKey, LocalIdentity>, EngineError> {
    in_parallel(jobs, |(key, path, full)| {
        let id = read_identity(&path, full).map_err(LocalError::io(&path))?;
        Ok((key, id))
    })
    .await
    .map(|v| v.into_iter().collect())
}

fn read_identity(path: &std::path::Path, full: bool) -> std::io::Result<LocalIdentity> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    if full {
        let mut file = file;
        file.read_to_end(&mut bytes)?;
    } else {
        file.take(HEADER_READ).read_to_end(&mut bytes)?;
    }
    Ok(LocalIdentity {
        message_id: MessageId::from_header(&bytes),
        crlf_size: full.then(|| crlf_size(&bytes)),
        tuid_size: tuid_line(&bytes).map_or(0, |line| crlf_size(&bytes[line])),
        hash: None,
    })
}

async fn hash_files(
    jobs: Vec<(MaildirKey, PathBuf)>,
) -> Result<Vec<(MaildirKey, ContentHash)>, EngineError> {
    in_parallel(jobs, |(key, path)| {
        let bytes = std::fs::read(&path).map_err(LocalError::io(&path))?;
        Ok((key, ContentHash::of(&bytes)))
    })
    .await
}

/// Run `work` over `jobs` on a few threads off the async runtime, keeping the order.
async fn in_parallel<J, T, F>(jobs: Vec<J>, work: F) -> Result<Vec<T>, EngineError>
where
    J: Send + 'static,
    T: Send + 'static,
    F: Fn(J) -> Result<T, EngineError> + Send + Sync + 'static,
{
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let per = jobs.len().div_ceil(threads);
        let mut chunks: Vec<Vec<J>> = Vec::new();
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            chunks.push(jobs.by_ref().take(per).collect());
        }
        let work = &work;
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| s.spawn(move || chunk.into_iter().map(work).collect::<Vec<_>>()))
                .collect();
            let mut out = Vec::new();
            for h in handles {
                let results = h.join().map_err(|_| {
                    EngineError::Local(LocalError::Unexpected(
                        "a thread reading message files panicked".into(),
                    ))
                })?;
                for r in results {
                    out.push(r?);
                }
            }
            Ok(out)
        })
    })
    .await
    .map_err(|e| {
        EngineError::Local(LocalError::Unexpected(format!(
            "reading message files: {e}"
        )))
    })?
}
