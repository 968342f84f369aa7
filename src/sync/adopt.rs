//! Rule 21: first contact is a pairing, never a copy. A folder with no base (a user
//! arriving from mbsync or OfflineIMAP, or syncmail's own state lost) but messages on
//! both sides is paired before anything is planned: by the previous tool's state where it
//! is valid, else by Message-ID and size, else by a content hash. Only what is truly on
//! one side is then transferred; what cannot be told apart is held, never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use crate::model::ContentHash;
use crate::model::{Flag, Flags, MaildirKey, MessageId, Uid};

use super::snapshot::{Base, LocalMessage, Pair, RemoteMessage};

/// The sync tool whose state named a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreviousTool {
    Mbsync,
    OfflineImap,
}

/// How a first contact found a pair; written to the change log with every pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// The previous tool's state, its UIDVALIDITY equal to the server's, confirmed by
    /// Message-ID where the message has one.
    PreviousTool(PreviousTool),
    /// Equal Message-ID and equal size (the local file's size with CRLF line endings).
    MessageIdAndSize,
    /// Equal content hash (messages without a Message-ID, or copies sharing one).
    ContentHash,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::PreviousTool(PreviousTool::Mbsync) => "mbsync's state",
            Method::PreviousTool(PreviousTool::OfflineImap) => "OfflineIMAP's file name",
            Method::MessageIdAndSize => "Message-ID and size",
            Method::ContentHash => "content hash",
        })
    }
}

/// What one local file says about which message it is, as the engine read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalIdentity {
    pub message_id: Option<MessageId>,
    /// The file's size with every bare LF counted as CRLF: what the server's
    /// RFC822.SIZE of the same message is. `None` when only the header was read (a
    /// previous tool's pair being confirmed).
    pub crlf_size: Option<u64>,
    /// The CRLF length of an `X-TUID` header mbsync wrote into the file (0: none): the
    /// server's copy of a message mbsync downloaded is that much smaller.
    pub tuid_size: u64,
    pub hash: Option<ContentHash>,
}

impl LocalIdentity {
    /// The size to compare with the server's: as the file is, or without mbsync's
    /// `X-TUID` line, whichever a server message with the same Message-ID has.
    fn size_for(&self, remote_ids: &BTreeSet<(&MessageId, u64)>) -> Option<u64> {
        let size = self.crlf_size?;
        let stripped = size.saturating_sub(self.tuid_size);
        match &self.message_id {
            Some(id) if remote_ids.contains(&(id, size)) => Some(size),
            _ => Some(stripped),
        }
    }
}

fn remote_id_set<'a>(remote: &BTreeMap<Uid, &'a RemoteMessage>) -> BTreeSet<(&'a MessageId, u64)> {
    remote
        .values()
        .filter_map(|m| Some((m.message_id.as_ref()?, m.size)))
        .collect()
}

/// Everything a first contact knows beyond the two listings.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// The unpaired local files' identities.
    pub local: BTreeMap<MaildirKey, LocalIdentity>,
    /// Content hashes of the server messages [`needs_hash`] asked for.
    pub remote_hashes: BTreeMap<Uid, ContentHash>,
    /// Pairs the previous tool's state names, already checked against the server's
    /// UIDVALIDITY by whoever read that state.
    pub previous: Vec<(Uid, MaildirKey, PreviousTool)>,
}

/// The outcome of a first contact: the pairs found, and what is held because it could
/// not be told apart (nothing is transferred for a held message until the user decides).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adoption {
    pub pairs: Vec<(Pair, Method)>,
    pub held_remote: BTreeMap<Uid, String>,
    pub held_local: BTreeMap<MaildirKey, String>,
}

impl Adoption {
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.held_remote.is_empty() && self.held_local.is_empty()
    }

    /// How many pairs each method found, in a fixed order.
    pub fn by_method(&self) -> BTreeMap<Method, usize> {
        let mut out = BTreeMap::new();
        for (_, m) in &self.pairs {
            *out.entry(*m).or_default() += 1;
        }
        out
    }
}

impl fmt::Display for Adoption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} paired", self.pairs.len())?;
        let methods: Vec<String> = self
            .by_method()
            .iter()
            .map(|(m, n)| format!("{n} by {m}"))
            .collect();
        if !methods.is_empty() {
            write!(f, " ({})", methods.join(", "))?;
        }
        let held = self.held_remote.len() + self.held_local.len();
        if held > 0 {
            write!(
                f,
                ", {held} held as ambiguous ({} on the server, {} local)",
                self.held_remote.len(),
                self.held_local.len()
            )?;
        }
        Ok(())
    }
}

/// What identifies a message for pairing when no previous state names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Identity<'a> {
    Id(&'a MessageId, u64),
    Hash(ContentHash),
}

fn remote_identity<'a>(m: &'a RemoteMessage, hash: Option<ContentHash>) -> Option<Identity<'a>> {
    match (&m.message_id, hash) {
        (Some(id), _) => Some(Identity::Id(id, m.size)),
        (None, Some(h)) => Some(Identity::Hash(h)),
        (None, None) => None,
    }
}

fn local_identity<'a>(
    l: &'a LocalIdentity,
    remote_ids: &BTreeSet<(&MessageId, u64)>,
) -> Option<Identity<'a>> {
    match (&l.message_id, l.size_for(remote_ids), l.hash) {
        (Some(id), Some(size), _) => Some(Identity::Id(id, size)),
        (None, _, Some(h)) => Some(Identity::Hash(h)),
        _ => None,
    }
}

/// Which messages need a content hash: those without a Message-ID whose size some
/// message without one on the other side shares, and every copy of a Message-ID and
/// size that occurs more than once on either side (to tell the copies apart). Reading
/// bodies is costly on the server side, so no more are asked for than that.
pub fn needs_hash(
    remote: &BTreeMap<Uid, &RemoteMessage>,
    local: &BTreeMap<MaildirKey, LocalIdentity>,
) -> (BTreeSet<Uid>, BTreeSet<MaildirKey>) {
    let mut remote_no_id: BTreeMap<u64, Vec<Uid>> = BTreeMap::new();
    let mut remote_ids: BTreeMap<(&MessageId, u64), Vec<Uid>> = BTreeMap::new();
    for (&uid, m) in remote {
        match &m.message_id {
            Some(id) => remote_ids.entry((id, m.size)).or_default().push(uid),
            None => remote_no_id.entry(m.size).or_default().push(uid),
        }
    }
    let ids = remote_id_set(remote);
    let mut local_no_id: BTreeMap<u64, Vec<&MaildirKey>> = BTreeMap::new();
    let mut local_ids: BTreeMap<(&MessageId, u64), Vec<&MaildirKey>> = BTreeMap::new();
    for (key, l) in local {
        let Some(size) = l.size_for(&ids) else {
            continue;
        };
        match &l.message_id {
            Some(id) => local_ids.entry((id, size)).or_default().push(key),
            None => local_no_id.entry(size).or_default().push(key),
        }
    }
    let mut uids = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (size, rs) in &remote_no_id {
        if let Some(ls) = local_no_id.get(size) {
            uids.extend(rs.iter().copied());
            keys.extend(ls.iter().map(|k| (*k).clone()));
        }
    }
    for (identity, rs) in &remote_ids {
        if let Some(ls) = local_ids.get(identity)
            && (rs.len() > 1 || ls.len() > 1)
        {
            uids.extend(rs.iter().copied());
            keys.extend(ls.iter().map(|k| (*k).clone()));
        }
    }
    (uids, keys)
}

/// Pair the unpaired messages of a folder's two sides (rule 21). `remote` and `local`
/// hold only what the base does not pair or keep one-sided already.
pub fn adopt(
    remote: &BTreeMap<Uid, &RemoteMessage>,
    local: &BTreeMap<MaildirKey, &LocalMessage>,
    evidence: &Evidence,
) -> Adoption {
    let mut out = Adoption::default();
    let remote_ids = remote_id_set(remote);
    let mut used_uids: BTreeSet<Uid> = BTreeSet::new();
    let mut used_keys: BTreeSet<&MaildirKey> = BTreeSet::new();
    let no_identity = LocalIdentity::default();
    let identity_of = |key: &MaildirKey| evidence.local.get(key).unwrap_or(&no_identity);

    // The previous tool's pairs, each confirmed by Message-ID: a state that names two
    // different messages is wrong about this pair, and the pair is held, not trusted.
    let mut named_uid: BTreeMap<Uid, usize> = BTreeMap::new();
    let mut named_key: BTreeMap<&MaildirKey, usize> = BTreeMap::new();
    for (uid, key, _) in &evidence.previous {
        *named_uid.entry(*uid).or_default() += 1;
        *named_key.entry(key).or_default() += 1;
    }
    for (uid, key, tool) in &evidence.previous {
        let (Some(r), Some(l)) = (remote.get(uid), local.get(key)) else {
            continue;
        };
        if named_uid[uid] > 1 || named_key[key] > 1 || used_keys.contains(key) {
            continue;
        }
        let local_id = identity_of(key);
        if r.message_id.is_some() && local_id.message_id != r.message_id {
            let why = format!(
                "the {} state pairs it with the other side's UID {uid} / file {key}, but their Message-IDs differ",
                match tool {
                    PreviousTool::Mbsync => "mbsync",
                    PreviousTool::OfflineImap => "OfflineIMAP",
                }
            );
            out.held_remote.insert(*uid, why.clone());
            out.held_local.insert(key.clone(), why);
            used_uids.insert(*uid);
            used_keys.insert(key);
            continue;
        }
        out.pairs.push((
            adopted_pair(*uid, r, key, l, local_id),
            Method::PreviousTool(*tool),
        ));
        used_uids.insert(*uid);
        used_keys.insert(key);
    }

    // Everything else by identity: Message-ID and size, or content hash.
    let mut groups: BTreeMap<Identity<'_>, (Vec<Uid>, Vec<&MaildirKey>)> = BTreeMap::new();
    for (&uid, r) in remote {
        if used_uids.contains(&uid) {
            continue;
        }
        if let Some(id) = remote_identity(r, evidence.remote_hashes.get(&uid).copied()) {
            groups.entry(id).or_default().0.push(uid);
        }
    }
    for key in local.keys() {
        if used_keys.contains(key) {
            continue;
        }
        if let Some(id) = local_identity(identity_of(key), &remote_ids) {
            groups.entry(id).or_default().1.push(key);
        }
    }
    for (identity, (uids, keys)) in &groups {
        if uids.is_empty() || keys.is_empty() {
            continue;
        }
        let method = match identity {
            Identity::Id(..) => Method::MessageIdAndSize,
            Identity::Hash(_) => Method::ContentHash,
        };
        if let ([uid], [key]) = (uids.as_slice(), keys.as_slice()) {
            out.pairs.push((
                adopted_pair(*uid, remote[uid], key, local[*key], identity_of(key)),
                method,
            ));
            used_uids.insert(*uid);
            used_keys.insert(key);
            continue;
        }
        // Several copies of one Message-ID and size: only their contents tell them
        // apart. Equal contents in equal numbers are the same messages; anything else
        // is held.
        let mut by_hash: BTreeMap<ContentHash, (Vec<Uid>, Vec<&MaildirKey>)> = BTreeMap::new();
        let mut unhashed = false;
        for uid in uids {
            match evidence.remote_hashes.get(uid) {
                Some(h) => by_hash.entry(*h).or_default().0.push(*uid),
                None => unhashed = true,
            }
        }
        for key in keys {
            match identity_of(key).hash {
                Some(h) => by_hash.entry(h).or_default().1.push(key),
                None => unhashed = true,
            }
        }
        let why = format!(
            "{} server messages and {} local files share one {}; which is which cannot be told",
            uids.len(),
            keys.len(),
            match identity {
                Identity::Id(id, size) => format!("Message-ID {id} and size {size}"),
                Identity::Hash(_) => "content".to_owned(),
            }
        );
        for (rs, ls) in by_hash.values() {
            if unhashed || rs.len() != ls.len() {
                continue;
            }
            for (uid, key) in rs.iter().zip(ls) {
                out.pairs.push((
                    adopted_pair(*uid, remote[uid], key, local[*key], identity_of(key)),
                    Method::ContentHash,
                ));
                used_uids.insert(*uid);
                used_keys.insert(key);
            }
        }
        for uid in uids.iter().filter(|u| !used_uids.contains(u)) {
            out.held_remote.insert(*uid, why.clone());
        }
        for key in keys.iter().filter(|k| !used_keys.contains(*k)) {
            out.held_local.insert((*key).clone(), why.clone());
        }
    }

    // One Message-ID left unpaired on both sides with different sizes: a changed copy
    // (an edit, a server that rewrote a header) or two messages; never guessed.
    let mut left_remote: BTreeMap<&MessageId, Vec<Uid>> = BTreeMap::new();
    for (&uid, r) in remote {
        if let Some(id) = &r.message_id
            && !used_uids.contains(&uid)
            && !out.held_remote.contains_key(&uid)
        {
            left_remote.entry(id).or_default().push(uid);
        }
    }
    let mut left_local: BTreeMap<&MessageId, Vec<&MaildirKey>> = BTreeMap::new();
    for key in local.keys() {
        if let Some(id) = &identity_of(key).message_id
            && !used_keys.contains(key)
            && !out.held_local.contains_key(key)
        {
            left_local.entry(id).or_default().push(key);
        }
    }
    for (id, uids) in &left_remote {
        let Some(keys) = left_local.get(id) else {
            continue;
        };
        let why = format!(
            "Message-ID {id} is on both sides with different contents (sizes differ); an edited copy or two messages"
        );
        for uid in uids {
            out.held_remote.insert(*uid, why.clone());
        }
        for key in keys {
            out.held_local.insert((*key).clone(), why.clone());
        }
    }
    out.pairs.sort_by_key(|(p, _)| p.uid);
    out
}

/// A pair found at first contact. With no base, its flags become the union of both
/// sides: each side's base holds only what both sides have, so every flag one side has
/// and the other lacks reads as set on that side and is carried over (rule 21).
/// `\Deleted` / `T` is not spread: it stays in its own side's base, so it reads as
/// unchanged. Keywords the Maildir cannot hold stay the server's.
fn adopted_pair(
    uid: Uid,
    r: &RemoteMessage,
    key: &MaildirKey,
    l: &LocalMessage,
    identity: &LocalIdentity,
) -> Pair {
    let both: Flags = Flag::ALL
        .into_iter()
        .filter(|f| r.flags.contains(*f) && l.flags.contains(*f))
        .collect();
    let mut remote_flags = both.clone();
    for keyword in r.flags.keywords() {
        remote_flags.insert_keyword(keyword.clone());
    }
    let mut local_flags = both;
    remote_flags.set(Flag::Trashed, r.flags.contains(Flag::Trashed));
    local_flags.set(Flag::Trashed, l.flags.contains(Flag::Trashed));
    Pair {
        uid,
        key: key.clone(),
        remote_flags,
        local_flags,
        remote_size: r.size,
        local_size: l.size,
        message_id: r.message_id.clone().or_else(|| identity.message_id.clone()),
        email_id: r.email_id.clone(),
    }
}

/// The base a first contact plans against: the adopted pairs added, and what is held
/// kept one-sided so that nothing is transferred for it (rule 21).
pub fn apply_adoption(base: &Base, adoption: &Adoption) -> Base {
    let mut out = base.clone();
    for (pair, _) in &adoption.pairs {
        out.pairs.insert(pair.uid, pair.clone());
    }
    out.local_only.extend(adoption.held_local.keys().cloned());
    out.remote_only.extend(adoption.held_remote.keys().copied());
    out
}

#[cfg(test)]
#[path = "adopt_tests.rs"]
mod tests;
