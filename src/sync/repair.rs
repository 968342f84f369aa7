//! Rule 13: after a UIDVALIDITY change, re-pair the base by Message-ID and size, or
//! refuse with a reason. Never wipe, never re-download blindly.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{MaildirKey, Uid, UidValidity};

use super::actions::Repair;
use super::policy::Policy;
use super::snapshot::{Base, LocalSnapshot, MessageId, Pair, RemoteListing, RemoteSnapshot};

/// The largest share of pairs that may go unconfirmed (no Message-ID, or no longer on
/// the server) for a re-pairing to be accepted. Those become local-only, never deleted.
pub const REPAIR_MAX_UNMATCHED_SHARE: f64 = 0.1;

/// What to do about the folder's UIDVALIDITY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// Unchanged, or the folder was never synced.
    NotNeeded,
    /// Re-paired: plan against `base`, and commit `repair` before anything else.
    Repaired { repair: Repair, base: Base },
    /// Not safe to re-pair: the folder halts. `acceptable` when a user who knows the
    /// folder may accept the re-pairing anyway (too few confirmations, never a
    /// contradiction).
    Halt {
        old: UidValidity,
        new: UidValidity,
        reason: String,
        acceptable: bool,
    },
}

/// Re-pair `base` to the server's new UIDs, accepting only an unambiguous, contradiction
/// free mapping that confirms at least one pair and nearly all of them; with
/// `policy.accept_repair` (the user confirmed), any contradiction free mapping.
///
/// A pair whose message is gone from both sides (no file in a stable scan, no server
/// message with its Message-ID) is no evidence either way: a message deleted or moved
/// out on both sides while the folder was renumbered. It is left out of the counts, and
/// forgotten like any other unconfirmed pair. So is a pair whose message the server no
/// longer has here but shows arriving in exactly one other folder (`policy.moved_out`):
/// another device moved it out, and the engine moves the file after it.
pub fn repair_uids(
    remote: &RemoteSnapshot,
    local: &LocalSnapshot,
    base: &Base,
    policy: &Policy,
) -> RepairOutcome {
    let accept = policy.accept_repair;
    let new = remote.uid_validity;
    let old = match base.uid_validity {
        Some(old) if old != new => old,
        _ => return RepairOutcome::NotNeeded,
    };
    let halt = |reason: String| RepairOutcome::Halt {
        old,
        new,
        reason,
        acceptable: false,
    };
    let too_few = |reason: String| RepairOutcome::Halt {
        old,
        new,
        reason,
        acceptable: true,
    };
    let RemoteListing::Complete(all) = &remote.listing else {
        return halt("only an incremental listing was taken; re-pairing needs a full one".into());
    };
    if all.is_empty() && !base.pairs.is_empty() && !accept && !gone_everywhere(local, base, policy)
    {
        return too_few(format!(
            "the server folder is now empty while {} messages were paired; nothing is \
             deleted locally until the server shows them again",
            base.pairs.len()
        ));
    }

    let mut by_id: BTreeMap<(&MessageId, u64), Vec<Uid>> = BTreeMap::new();
    let mut sizes: BTreeMap<&MessageId, BTreeSet<u64>> = BTreeMap::new();
    for (&uid, msg) in all {
        if let Some(id) = &msg.message_id {
            by_id.entry((id, msg.size)).or_default().push(uid);
            sizes.entry(id).or_default().insert(msg.size);
        }
    }

    let mut map: BTreeMap<Uid, Uid> = BTreeMap::new();
    let mut claimed: BTreeSet<Uid> = BTreeSet::new();
    let mut unmatched: BTreeSet<MaildirKey> = BTreeSet::new();
    let mut contradictions: Vec<String> = Vec::new();
    let mut gone = 0usize;
    for pair in base.pairs.values() {
        let gone_locally = local.stable && !local.messages.contains_key(&pair.key);
        let gone_here = pair
            .message_id
            .as_ref()
            .is_none_or(|id| !sizes.contains_key(id));
        let moved_out = pair
            .message_id
            .as_ref()
            .is_some_and(|id| policy.moved_out.contains(&(id.clone(), pair.remote_size)));
        if gone_here && (gone_locally || moved_out) {
            gone += 1;
            unmatched.insert(pair.key.clone());
            continue;
        }
        let Some(id) = &pair.message_id else {
            unmatched.insert(pair.key.clone());
            continue;
        };
        match by_id.get(&(id, pair.remote_size)).map(Vec::as_slice) {
            Some([uid]) if claimed.insert(*uid) => {
                map.insert(pair.uid, *uid);
            }
            Some([uid]) => contradictions.push(format!(
                "two paired messages claim new UID {uid} (Message-ID {id})"
            )),
            Some(uids) if uids.len() > 1 => contradictions.push(format!(
                "Message-ID {id} with size {} matches {} server messages",
                pair.remote_size,
                uids.len()
            )),
            _ if sizes.contains_key(id) => contradictions.push(format!(
                "Message-ID {id} had size {} but the server now has another size",
                pair.remote_size
            )),
            _ => {
                unmatched.insert(pair.key.clone());
            }
        }
    }
    if let Some(first) = contradictions.first() {
        return halt(format!(
            "{} contradiction(s) re-pairing by Message-ID and size, first: {first}",
            contradictions.len()
        ));
    }
    let total = base.pairs.len() - gone;
    let unconfirmed = unmatched.len() - gone;
    if total > 0 && map.is_empty() && !accept {
        return too_few(format!(
            "none of the {total} paired messages could be confirmed by Message-ID and size"
        ));
    }
    if unconfirmed as f64 > REPAIR_MAX_UNMATCHED_SHARE * total as f64 && !accept {
        return too_few(format!(
            "only {} of {total} paired messages confirmed by Message-ID and size",
            map.len()
        ));
    }

    let repair = Repair {
        old,
        new,
        map,
        unmatched,
    };
    let base = apply_repair(base, &repair);
    RepairOutcome::Repaired { repair, base }
}

/// The pairs a renumbered folder's new listing has no message for (none with their
/// Message-ID) while their file is still here: moved out or deleted by another device.
/// Those the pass sees arrive in another folder go in `Policy::moved_out`.
pub fn absent_from_listing<'b>(
    remote: &RemoteSnapshot,
    local: &LocalSnapshot,
    base: &'b Base,
) -> Vec<&'b Pair> {
    let RemoteListing::Complete(all) = &remote.listing else {
        return Vec::new();
    };
    if base
        .uid_validity
        .is_none_or(|old| old == remote.uid_validity)
    {
        return Vec::new();
    }
    let listed: BTreeSet<&MessageId> = all.values().filter_map(|m| m.message_id.as_ref()).collect();
    base.pairs
        .values()
        .filter(|p| {
            local.messages.contains_key(&p.key)
                && p.message_id.as_ref().is_some_and(|id| !listed.contains(id))
        })
        .collect()
}

/// Whether every paired message is gone from the Maildir too (a stable scan) or moved out
/// to another folder.
fn gone_everywhere(local: &LocalSnapshot, base: &Base, policy: &Policy) -> bool {
    base.pairs.values().all(|p| {
        (local.stable && !local.messages.contains_key(&p.key))
            || p.message_id
                .as_ref()
                .is_some_and(|id| policy.moved_out.contains(&(id.clone(), p.remote_size)))
    })
}

/// The base after `repair` is committed (what [`super::Action::RepairUids`] means).
pub fn apply_repair(base: &Base, repair: &Repair) -> Base {
    let mut out = base.clone();
    out.pairs = base
        .pairs
        .values()
        .filter_map(|pair| {
            let &uid = repair.map.get(&pair.uid)?;
            let mut pair = pair.clone();
            pair.uid = uid;
            Some((uid, pair))
        })
        .collect();
    out.local_only.extend(repair.unmatched.iter().cloned());
    out.remote_only.clear();
    out.uid_validity = Some(repair.new);
    out.highest_modseq = None;
    out.highest_uid_pulled = repair.map.values().copied().max();
    out
}
