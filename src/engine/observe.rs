//! Read-only observation of both sides of one folder, turned into the planner's snapshots.
//! The server is asked as little as the extensions allow: QRESYNC makes an unchanged
//! folder one round trip; CONDSTORE a changed-since listing plus the UID list; otherwise
//! a full flag listing.

use std::collections::{BTreeMap, BTreeSet};

use crate::imap::{ImapError, ImapSession, Selected, uid_set};
use crate::maildir::LocalScan;
use crate::model::{Flags, ModSeq, Uid, UidValidity};
use crate::sync::{self, Base, LocalSnapshot, MessageId, RemoteListing, RemoteSnapshot};

/// What the server side of a folder looks like, plus what a pass needs to apply a plan.
pub struct RemoteObservation {
    pub snapshot: RemoteSnapshot,
    /// UIDNEXT as SELECT reported it: the start of the range an APPEND's answer is
    /// searched in if it is lost (rule 2).
    pub uidnext: Uid,
}

/// A SELECT already made of the folder, and the state it was made against.
pub struct Preselected {
    pub known: (UidValidity, ModSeq),
    pub selected: Selected,
}

/// Observe the server side. `wire_name` is the folder's name as the server spells it;
/// `pre` is a SELECT just made against the base's state, used instead of a second one.
pub async fn remote(
    session: &mut ImapSession,
    wire_name: &str,
    base: &Base,
    pre: Option<Preselected>,
) -> Result<RemoteObservation, ImapError> {
    let known = base.uid_validity.zip(base.highest_modseq);
    let selected = match pre {
        Some(p) if Some(p.known) == known => p.selected,
        _ => session.select(wire_name, known).await?,
    };
    let uid_validity = selected
        .uidvalidity
        .ok_or_else(|| ImapError::Protocol(format!("SELECT {wire_name} gave no UIDVALIDITY")))?;
    let same_uidvalidity = base.uid_validity == Some(uid_validity);
    let listing = if selected.resynced {
        let changed = selected
            .changed
            .into_iter()
            .map(|(uid, flags)| (uid, (flags, None)))
            .collect();
        changes(session, base, changed, selected.vanished).await?
    } else if selected.exists == 0 {
        RemoteListing::Complete(BTreeMap::new())
    } else if let (true, true, Some(modseq)) = (
        session.has_condstore(),
        same_uidvalidity,
        base.highest_modseq,
    ) {
        let changed = session
            .fetch_flags("1:*", Some(modseq))
            .await?
            .into_iter()
            .map(|(uid, m)| (uid, (m.flags, m.size)))
            .collect();
        let all = session.all_uids().await?;
        let vanished = base
            .pairs
            .keys()
            .chain(base.remote_only.iter())
            .filter(|uid| !all.contains(uid))
            .copied()
            .collect();
        changes(session, base, changed, vanished).await?
    } else {
        let listed = session.fetch_flags("1:*", None).await?;
        // After a UIDVALIDITY change every message needs its identity for re-pairing
        // (rule 13); otherwise only the ones the base does not know. A folder's first pass
        // asks for none: it downloads every message anyway and reads the Message-ID from
        // the body, instead of making the server parse every header twice.
        let first_pass = base.uid_validity.is_none() && base.pairs.is_empty();
        let unknown: Vec<Uid> = listed
            .keys()
            .filter(|uid| !first_pass && (!same_uidvalidity || !base.pairs.contains_key(uid)))
            .copied()
            .collect();
        let ids = identities(session, &unknown).await?;
        RemoteListing::Complete(
            listed
                .into_iter()
                .map(|(uid, m)| {
                    let size = m.size.unwrap_or(0);
                    let message_id = message_id(&ids, base, uid);
                    (
                        uid,
                        sync::RemoteMessage {
                            flags: m.flags,
                            size,
                            message_id,
                        },
                    )
                })
                .collect(),
        )
    };
    let next_from_listing = match &listing {
        RemoteListing::Complete(all) => all.keys().next_back().map(|u| Uid(u.0.saturating_add(1))),
        RemoteListing::Changes { changed, .. } => changed
            .keys()
            .next_back()
            .map(|u| Uid(u.0.saturating_add(1))),
    };
    let uidnext = selected.uidnext.or(next_from_listing).unwrap_or(Uid(1));
    Ok(RemoteObservation {
        snapshot: RemoteSnapshot {
            uid_validity,
            highest_modseq: selected.highestmodseq,
            uid_next: uidnext,
            listing,
        },
        uidnext,
    })
}

/// A message's Message-ID: as just fetched, else as the base remembers it.
fn message_id(
    fetched: &BTreeMap<Uid, (Option<MessageId>, u64)>,
    base: &Base,
    uid: Uid,
) -> Option<MessageId> {
    fetched
        .get(&uid)
        .and_then(|(id, _)| id.clone())
        .or_else(|| base.pairs.get(&uid).and_then(|p| p.message_id.clone()))
}

/// An incremental listing: sizes of known messages come from the base (a server message
/// never changes content); new ones are asked for their size and Message-ID.
async fn changes(
    session: &mut ImapSession,
    base: &Base,
    changed: BTreeMap<Uid, (Flags, Option<u64>)>,
    vanished: BTreeSet<Uid>,
) -> Result<RemoteListing, ImapError> {
    let new: Vec<Uid> = changed
        .keys()
        .filter(|uid| !base.pairs.contains_key(uid))
        .copied()
        .collect();
    let ids = identities(session, &new).await?;
    let changed = changed
        .into_iter()
        .map(|(uid, (flags, size))| {
            let size = size
                .or_else(|| base.pairs.get(&uid).map(|p| p.remote_size))
                .or_else(|| ids.get(&uid).map(|(_, size)| *size))
                .unwrap_or(0);
            let message_id = message_id(&ids, base, uid);
            (
                uid,
                sync::RemoteMessage {
                    flags,
                    size,
                    message_id,
                },
            )
        })
        .collect();
    Ok(RemoteListing::Changes { changed, vanished })
}

/// Message-ID and RFC822.SIZE of these UIDs.
async fn identities(
    session: &mut ImapSession,
    uids: &[Uid],
) -> Result<BTreeMap<Uid, (Option<MessageId>, u64)>, ImapError> {
    if uids.is_empty() {
        return Ok(BTreeMap::new());
    }
    session.fetch_identities(&uid_set(uids)).await
}

/// The planner's view of a Maildir scan. A key held by several files is left out of the
/// messages and makes the scan count as unstable, so nothing is deleted because of it.
pub fn local(scan: &LocalScan) -> LocalSnapshot {
    LocalSnapshot {
        messages: scan
            .messages
            .iter()
            .map(|(key, m)| {
                (
                    key.clone(),
                    sync::LocalMessage {
                        flags: m.flags.clone(),
                        size: m.size,
                    },
                )
            })
            .collect(),
        stable: scan.stable && scan.duplicates.is_empty(),
        carries_keywords: false,
    }
}
