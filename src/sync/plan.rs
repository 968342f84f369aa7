//! `plan()`: one folder, one pass. Every message known to either side or to the base is
//! classified once, in one exhaustive `match`, into the actions that bring both sides to
//! agreement, with every change and conflict recorded. Pure: no IO, no clock.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Flag, Flags, MaildirKey, ModSeq, Uid};

use super::actions::{
    Action, Change, ChangeKind, Conflict, ConflictKind, Halt, Outcome, Plan, Resolution, Side,
    Timestamp,
};
use super::merge::{SideFlags, local_eq, merge_flags, minus};
use super::policy::{DeleteVsFlag, MASS_DELETE_FLOOR, Policy};
use super::repair::{RepairOutcome, repair_uids};
use super::snapshot::{
    Base, LocalMessage, LocalSnapshot, Pair, RemoteListing, RemoteSnapshot, RemoteState,
};
use super::uidset::UidSet;

/// A paired message's server copy as this pass sees it.
#[derive(Clone, Copy, Debug)]
struct RemoteView<'a> {
    flags: &'a Flags,
}

/// A base key as the Maildir scan saw it.
#[derive(Clone, Copy, Debug)]
enum Seen<'a> {
    Present(&'a LocalMessage),
    /// Absent from a stable scan: deleted.
    Gone,
    /// Absent from an unstable scan: perhaps mid-rename; we cannot tell (rule 6).
    Unseen,
}

/// Everything the planner can know about one message, from the base and both sides.
#[derive(Clone, Copy, Debug)]
enum Entry<'a> {
    /// In the base as a pair; `remote` is None when the server copy is gone.
    Paired {
        pair: &'a Pair,
        remote: Option<RemoteView<'a>>,
        local: Seen<'a>,
    },
    /// On the server, unknown to the base.
    NewOnServer { uid: Uid },
    /// In the Maildir, unknown to the base.
    NewLocally {
        key: &'a MaildirKey,
        msg: &'a LocalMessage,
    },
    /// Kept deliberately server-only by an earlier pass.
    RemoteOnly { uid: Uid, present: bool },
    /// Kept deliberately local-only by an earlier pass.
    LocalOnly {
        key: &'a MaildirKey,
        local: Seen<'a>,
    },
}

/// Plan one folder pass. See [`Action`] for what each step means to the engine.
pub fn plan(
    remote: &RemoteSnapshot,
    local: &LocalSnapshot,
    base: &Base,
    policy: &Policy,
    now: Timestamp,
) -> Plan {
    let mut out = Plan::new(base.folder.clone());
    let repaired;
    let base = match repair_uids(remote, local, base, policy) {
        RepairOutcome::NotNeeded => base,
        RepairOutcome::Halt {
            old,
            new,
            reason,
            acceptable,
        } => {
            out.conflicts.push(Conflict {
                at: now,
                uid: None,
                key: None,
                kind: ConflictKind::UidValidityChanged { old, new },
                resolution: Resolution::Halted,
            });
            out.halt = Some(Halt::UidValidity {
                old,
                new,
                reason,
                confirm_command: acceptable
                    .then(|| confirm_command(policy, base, "--confirm-repair")),
            });
            return out;
        }
        RepairOutcome::Repaired { repair, base } => {
            out.conflicts.push(Conflict {
                at: now,
                uid: None,
                key: None,
                kind: ConflictKind::UidValidityChanged {
                    old: repair.old,
                    new: repair.new,
                },
                resolution: Resolution::Repaired {
                    confirmed: repair.map.len(),
                    unmatched: repair.unmatched.len(),
                },
            });
            out.actions.push(Action::RepairUids(repair));
            repaired = base;
            &repaired
        }
    };

    let mut b = Builder::new(policy, now, local.carries_keywords, remote.highest_modseq);

    // Pairs in UID order; each side is joined to them without a per-pair tree lookup
    // (100,000 string-keyed BTreeMap lookups alone would blow the planning budget).
    let pairs: Vec<&Pair> = base.pairs.values().collect();

    // Maildir side: a merge join too, over the pairs sorted by key. Keys are mostly
    // delivery-time ordered like UIDs, so the (run-adaptive) sort is nearly linear, and
    // the join reads both key lists in order instead of probing a table at random.
    // Sorting on an inline 16-byte prefix first settles most comparisons without a
    // trip to the heap for the key's bytes (a third of the time with keys in random
    // order).
    let mut by_key: Vec<(u128, &str, usize)> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| (key_prefix(&p.key.0), p.key.0.as_str(), i))
        .collect();
    by_key.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    let mut local_of: Vec<Option<&LocalMessage>> = vec![None; pairs.len()];
    let mut unpaired_local: Vec<(&MaildirKey, &LocalMessage)> = Vec::new();
    let mut scanned = local.messages.iter().peekable();
    // A matched file stays current until a greater pair key comes, so that a (corrupt)
    // base pairing one key twice sees the file twice instead of a deletion.
    let mut current_matched = false;
    for &(_, key, i) in &by_key {
        while let Some(&(k, m)) = scanned.peek() {
            match k.0.as_str().cmp(key) {
                Ordering::Less => {
                    if !current_matched {
                        unpaired_local.push((k, m));
                    }
                    scanned.next();
                    current_matched = false;
                }
                Ordering::Equal => {
                    local_of[i] = Some(m);
                    current_matched = true;
                    break;
                }
                Ordering::Greater => break,
            }
        }
    }
    if current_matched {
        scanned.next();
    }
    unpaired_local.extend(scanned);
    let is_paired_key = |key: &MaildirKey| {
        let wanted = (key_prefix(&key.0), key.0.as_str());
        by_key
            .binary_search_by(|&(p, k, _)| (p, k).cmp(&wanted))
            .is_ok()
    };

    // Server side: a merge join of two UID-ordered sequences for a complete listing;
    // an incremental listing is small, so it is simply probed.
    let (remote_of, unpaired_remote) = join_remote(remote, &pairs);

    for ((pair, r), l) in pairs.iter().zip(remote_of).zip(local_of) {
        let remote = match r {
            RemoteState::Listed(m) => Some(RemoteView { flags: &m.flags }),
            RemoteState::Unchanged => Some(RemoteView {
                flags: &pair.remote_flags,
            }),
            RemoteState::Gone => None,
        };
        let local = match l {
            Some(m) => Seen::Present(m),
            None if local.stable => Seen::Gone,
            None => Seen::Unseen,
        };
        b.entry(Entry::Paired {
            pair,
            remote,
            local,
        });
    }
    for uid in unpaired_remote {
        if !base.remote_only.contains(&uid) {
            b.entry(Entry::NewOnServer { uid });
        }
    }
    for &uid in &base.remote_only {
        if !base.pairs.contains_key(&uid) {
            let present = !matches!(remote.state(uid), RemoteState::Gone);
            b.entry(Entry::RemoteOnly { uid, present });
        }
    }
    for (key, msg) in unpaired_local {
        if !base.local_only.contains(key) {
            b.entry(Entry::NewLocally { key, msg });
        }
    }
    for key in &base.local_only {
        if !is_paired_key(key) {
            b.entry(Entry::LocalOnly {
                key,
                local: seen(local, key),
            });
        }
    }

    b.finish(&mut out, remote, local, base);
    out
}

/// The first 16 bytes of a key as a big-endian number (zero-padded): ordering by it,
/// then by the whole key, is exactly the keys' byte order.
fn key_prefix(key: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let n = key.len().min(16);
    bytes[..n].copy_from_slice(&key.as_bytes()[..n]);
    u128::from_be_bytes(bytes)
}

/// Each pair's server state (in `pairs` order), and the listed UIDs no pair has.
fn join_remote<'a>(
    remote: &'a RemoteSnapshot,
    pairs: &[&Pair],
) -> (Vec<RemoteState<'a>>, Vec<Uid>) {
    match &remote.listing {
        RemoteListing::Complete(all) => {
            let mut states = Vec::with_capacity(pairs.len());
            let mut unpaired = Vec::new();
            let mut listed = all.iter().peekable();
            for pair in pairs {
                while let Some((&uid, _)) = listed.next_if(|(uid, _)| **uid < pair.uid) {
                    unpaired.push(uid);
                }
                match listed.next_if(|(uid, _)| **uid == pair.uid) {
                    Some((_, m)) => states.push(RemoteState::Listed(m)),
                    None => states.push(RemoteState::Gone),
                }
            }
            unpaired.extend(listed.map(|(&uid, _)| uid));
            (states, unpaired)
        }
        RemoteListing::Changes { changed, .. } => {
            let states = pairs.iter().map(|p| remote.state(p.uid)).collect();
            let unpaired = changed
                .keys()
                .copied()
                .filter(|uid| pairs.binary_search_by_key(uid, |p| p.uid).is_err())
                .collect();
            (states, unpaired)
        }
    }
}

fn seen<'a>(local: &'a LocalSnapshot, key: &MaildirKey) -> Seen<'a> {
    match local.messages.get(key) {
        Some(m) => Seen::Present(m),
        None if local.stable => Seen::Gone,
        None => Seen::Unseen,
    }
}

/// Collects the steps in sorted containers, so the plan's order does not depend on the
/// order the entries were visited in.
struct Builder<'p> {
    policy: &'p Policy,
    now: Timestamp,
    carries_keywords: bool,
    unchanged_since: Option<ModSeq>,
    unpair: BTreeMap<Uid, MaildirKey>,
    keep_local: BTreeSet<MaildirKey>,
    keep_remote: BTreeSet<Uid>,
    fetch: UidSet,
    append: BTreeMap<MaildirKey, Flags>,
    store: BTreeMap<(Flags, Flags), UidSet>,
    set_local: BTreeMap<MaildirKey, Flags>,
    record: BTreeMap<Uid, (Flags, Flags)>,
    delete_server: UidSet,
    delete_local: BTreeSet<MaildirKey>,
    forget: BTreeMap<Uid, MaildirKey>,
    drop_local_only: BTreeSet<MaildirKey>,
    drop_remote_only: BTreeSet<Uid>,
    changes: Vec<Change>,
    conflicts: Vec<Conflict>,
}

impl<'p> Builder<'p> {
    fn new(
        policy: &'p Policy,
        now: Timestamp,
        carries_keywords: bool,
        unchanged_since: Option<ModSeq>,
    ) -> Builder<'p> {
        Builder {
            policy,
            now,
            carries_keywords,
            unchanged_since,
            unpair: BTreeMap::new(),
            keep_local: BTreeSet::new(),
            keep_remote: BTreeSet::new(),
            fetch: UidSet::new(),
            append: BTreeMap::new(),
            store: BTreeMap::new(),
            set_local: BTreeMap::new(),
            record: BTreeMap::new(),
            delete_server: UidSet::new(),
            delete_local: BTreeSet::new(),
            forget: BTreeMap::new(),
            drop_local_only: BTreeSet::new(),
            drop_remote_only: BTreeSet::new(),
            changes: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    /// The case analysis. Every combination of "in the base?", "on the server?" and "in
    /// the Maildir?" has exactly one arm, and the compiler checks that none is missing.
    fn entry(&mut self, entry: Entry<'_>) {
        match entry {
            // Both copies present: merge flags; a changed file is a conflict.
            Entry::Paired {
                pair,
                remote: Some(r),
                local: Seen::Present(l),
            } => {
                if l.size != pair.local_size {
                    self.content_changed(pair, l);
                } else {
                    self.merge(pair, r, l);
                }
            }
            // Deleted locally, still on the server.
            Entry::Paired {
                pair,
                remote: Some(r),
                local: Seen::Gone,
            } => self.deleted_locally(pair, r),
            // Expunged on the server, still in the Maildir.
            Entry::Paired {
                pair,
                remote: None,
                local: Seen::Present(l),
            } => self.deleted_on_server(pair, l),
            // Gone from both: nothing left to do but forget the pair.
            Entry::Paired {
                pair,
                remote: None,
                local: Seen::Gone,
            } => {
                self.change(
                    Side::Server,
                    pair,
                    ChangeKind::Deleted,
                    Outcome::AlreadyInSync,
                );
                self.change(
                    Side::Local,
                    pair,
                    ChangeKind::Deleted,
                    Outcome::AlreadyInSync,
                );
                self.forget.insert(pair.uid, pair.key.clone());
            }
            // Not in an unstable scan: it may be mid-rename, so nothing about this pair
            // is decided this pass (rule 6); the next stable scan settles it.
            Entry::Paired {
                local: Seen::Unseen,
                ..
            } => {}
            // New on the server: download it, unless direction is push. The fetch is
            // the whole record here: the engine logs each message as "new, propagated"
            // when the batch that brought it commits, so a first sync of a million
            // messages holds no million change records (issue 19).
            Entry::NewOnServer { uid } => {
                if self.policy.direction.fetches() {
                    self.fetch.insert(uid);
                } else {
                    self.keep_remote.insert(uid);
                    self.remote_change(uid, ChangeKind::New, Outcome::NotPropagated(PUSH_ONLY));
                }
            }
            // New in the Maildir: upload it, unless direction is pull.
            Entry::NewLocally { key, msg } => {
                if self.policy.direction.sends() {
                    self.append
                        .insert(key.clone(), self.local_flags(&msg.flags));
                    self.local_change(key, ChangeKind::New, Outcome::Propagated);
                } else {
                    self.keep_local.insert(key.clone());
                    self.local_change(key, ChangeKind::New, Outcome::NotPropagated(PULL_ONLY));
                }
            }
            // Kept server-only and still there: deliberately left alone.
            Entry::RemoteOnly { present: true, .. } => {}
            // Kept server-only and now gone: stop remembering it.
            Entry::RemoteOnly {
                uid,
                present: false,
            } => {
                self.drop_remote_only.insert(uid);
            }
            // Kept local-only and still there (or not decidable): leave it alone.
            Entry::LocalOnly {
                local: Seen::Present(_) | Seen::Unseen,
                ..
            } => {}
            // Kept local-only and gone from a stable scan: stop remembering it.
            Entry::LocalOnly {
                key,
                local: Seen::Gone,
            } => {
                self.drop_local_only.insert(key.clone());
            }
        }
    }

    fn local_flags(&self, flags: &Flags) -> Flags {
        if self.carries_keywords {
            flags.clone()
        } else {
            flags.system_only()
        }
    }

    fn merge(&mut self, pair: &Pair, r: RemoteView<'_>, l: &LocalMessage) {
        let remote_same = *r.flags == pair.remote_flags;
        if remote_same && local_eq(&l.flags, &pair.local_flags, self.carries_keywords) {
            return;
        }
        let local_now = self.local_flags(&l.flags);
        let m = merge_flags(
            SideFlags {
                base: &pair.remote_flags,
                now: r.flags,
            },
            SideFlags {
                base: &pair.local_flags,
                now: &local_now,
            },
            self.carries_keywords,
            self.policy.direction,
        );
        let conflict = !m.conflicts.is_empty();
        let sent_to_server = m.remote != *r.flags;
        let sent_to_local = m.local != local_now;
        if !remote_same {
            let outcome = match (conflict, sent_to_local) {
                (true, _) => Outcome::Conflict,
                (false, true) => Outcome::Propagated,
                (false, false) if m.local.iter().eq(r.flags.iter()) => Outcome::AlreadyInSync,
                (false, false) => Outcome::NotPropagated(PUSH_ONLY),
            };
            let kind = ChangeKind::Flags {
                added: minus(r.flags, &pair.remote_flags),
                removed: minus(&pair.remote_flags, r.flags),
            };
            self.change(Side::Server, pair, kind, outcome);
        }
        if local_now != pair.local_flags {
            let outcome = match (conflict, sent_to_server) {
                (true, _) => Outcome::Conflict,
                (false, true) => Outcome::Propagated,
                (false, false) if self.policy.direction.sends() => Outcome::AlreadyInSync,
                (false, false) => Outcome::NotPropagated(PULL_ONLY),
            };
            let kind = ChangeKind::Flags {
                added: minus(&local_now, &pair.local_flags),
                removed: minus(&pair.local_flags, &local_now),
            };
            self.change(Side::Local, pair, kind, outcome);
        }
        for (flag, set_on) in m.conflicts {
            self.conflict(
                pair,
                ConflictKind::SetVsRemoved { flag, set_on },
                Resolution::SetWins,
            );
        }
        if sent_to_server {
            let add = minus(&m.remote, r.flags);
            let remove = minus(r.flags, &m.remote);
            self.store
                .entry((add, remove))
                .or_default()
                .insert(pair.uid);
        }
        if sent_to_local {
            self.set_local.insert(pair.key.clone(), m.local.clone());
        }
        if m.remote != pair.remote_flags || m.local != pair.local_flags {
            self.record.insert(pair.uid, (m.remote, m.local));
        }
    }

    /// The Maildir file is not the message that was paired: keep both versions as separate
    /// messages, each copied to the other side where the direction allows.
    fn content_changed(&mut self, pair: &Pair, l: &LocalMessage) {
        let kind = ChangeKind::Content {
            base_size: pair.local_size,
            size: l.size,
        };
        self.change(Side::Local, pair, kind, Outcome::Conflict);
        self.conflict(
            pair,
            ConflictKind::ContentChangedLocally {
                base_size: pair.local_size,
                size: l.size,
            },
            Resolution::KeptBoth,
        );
        self.unpair.insert(pair.uid, pair.key.clone());
        self.resend_local(&pair.key, l);
        self.restore_remote(pair.uid);
    }

    fn deleted_locally(&mut self, pair: &Pair, r: RemoteView<'_>) {
        let changed = *r.flags != pair.remote_flags;
        if !self.policy.direction.sends() || !self.policy.expunge.on_server() {
            let why = if self.policy.direction.sends() {
                NO_SERVER_EXPUNGE
            } else {
                PULL_ONLY
            };
            self.change(
                Side::Local,
                pair,
                ChangeKind::Deleted,
                Outcome::NotPropagated(why),
            );
            self.unpair.insert(pair.uid, pair.key.clone());
            self.keep_remote.insert(pair.uid);
            return;
        }
        if !changed {
            self.change(Side::Local, pair, ChangeKind::Deleted, Outcome::Propagated);
            self.delete_server.insert(pair.uid);
            return;
        }
        let (added, removed) = (
            minus(r.flags, &pair.remote_flags),
            minus(&pair.remote_flags, r.flags),
        );
        let kind = ConflictKind::DeleteVsChange {
            deleted_on: Side::Local,
            added: added.clone(),
            removed: removed.clone(),
            content_changed: false,
        };
        self.change(Side::Local, pair, ChangeKind::Deleted, Outcome::Conflict);
        self.change(
            Side::Server,
            pair,
            ChangeKind::Flags { added, removed },
            Outcome::Conflict,
        );
        if self.keeps(r.flags) {
            self.unpair.insert(pair.uid, pair.key.clone());
            let resolution = self.restore_remote(pair.uid);
            self.conflict(pair, kind, resolution);
        } else {
            self.delete_server.insert(pair.uid);
            self.conflict(pair, kind, Resolution::DeletionWins);
        }
    }

    fn deleted_on_server(&mut self, pair: &Pair, l: &LocalMessage) {
        if !self.policy.direction.fetches() || !self.policy.expunge.locally() {
            let why = if self.policy.direction.fetches() {
                NO_LOCAL_EXPUNGE
            } else {
                PUSH_ONLY
            };
            self.change(
                Side::Server,
                pair,
                ChangeKind::Deleted,
                Outcome::NotPropagated(why),
            );
            self.unpair.insert(pair.uid, pair.key.clone());
            self.keep_local.insert(pair.key.clone());
            return;
        }
        let flags_changed = !local_eq(&l.flags, &pair.local_flags, self.carries_keywords);
        let content_changed = l.size != pair.local_size;
        if !flags_changed && !content_changed {
            self.change(Side::Server, pair, ChangeKind::Deleted, Outcome::Propagated);
            self.delete_local.insert(pair.key.clone());
            return;
        }
        let local_now = self.local_flags(&l.flags);
        let (added, removed) = (
            minus(&local_now, &pair.local_flags),
            minus(&pair.local_flags, &local_now),
        );
        let kind = ConflictKind::DeleteVsChange {
            deleted_on: Side::Server,
            added: added.clone(),
            removed: removed.clone(),
            content_changed,
        };
        self.change(Side::Server, pair, ChangeKind::Deleted, Outcome::Conflict);
        if flags_changed {
            self.change(
                Side::Local,
                pair,
                ChangeKind::Flags { added, removed },
                Outcome::Conflict,
            );
        }
        if content_changed {
            let kind = ChangeKind::Content {
                base_size: pair.local_size,
                size: l.size,
            };
            self.change(Side::Local, pair, kind, Outcome::Conflict);
        }
        // An edited file is never deleted: it is a version the server never had.
        if content_changed || self.keeps(&l.flags) {
            self.unpair.insert(pair.uid, pair.key.clone());
            let resolution = self.resend_local(&pair.key, l);
            self.conflict(pair, kind, resolution);
        } else {
            self.delete_local.insert(pair.key.clone());
            self.conflict(pair, kind, Resolution::DeletionWins);
        }
    }

    /// Rule 11: whether the surviving, changed copy is kept.
    fn keeps(&self, survivor: &Flags) -> bool {
        match self.policy.delete_vs_flag {
            DeleteVsFlag::DeleteWinsUnlessFlagged => survivor.contains(Flag::Flagged),
            DeleteVsFlag::DeleteWins => false,
            DeleteVsFlag::KeepChanged => true,
        }
    }

    /// An unpaired local copy goes (back) to the server, or stays local-only under pull.
    fn resend_local(&mut self, key: &MaildirKey, l: &LocalMessage) -> Resolution {
        if self.policy.direction.sends() {
            self.append.insert(key.clone(), self.local_flags(&l.flags));
            Resolution::KeptAndRestored
        } else {
            self.keep_local.insert(key.clone());
            Resolution::KeptOneSide
        }
    }

    /// An unpaired server copy comes (back) into the Maildir, or stays server-only under
    /// push.
    fn restore_remote(&mut self, uid: Uid) -> Resolution {
        if self.policy.direction.fetches() {
            self.fetch.insert(uid);
            Resolution::KeptAndRestored
        } else {
            self.keep_remote.insert(uid);
            Resolution::KeptOneSide
        }
    }

    fn change(&mut self, side: Side, pair: &Pair, kind: ChangeKind, outcome: Outcome) {
        self.changes.push(Change {
            side,
            uid: Some(pair.uid),
            key: Some(pair.key.clone()),
            kind,
            outcome,
        });
    }

    fn remote_change(&mut self, uid: Uid, kind: ChangeKind, outcome: Outcome) {
        self.changes.push(Change {
            side: Side::Server,
            uid: Some(uid),
            key: None,
            kind,
            outcome,
        });
    }

    fn local_change(&mut self, key: &MaildirKey, kind: ChangeKind, outcome: Outcome) {
        self.changes.push(Change {
            side: Side::Local,
            uid: None,
            key: Some(key.clone()),
            kind,
            outcome,
        });
    }

    fn conflict(&mut self, pair: &Pair, kind: ConflictKind, resolution: Resolution) {
        self.conflicts.push(Conflict {
            at: self.now,
            uid: Some(pair.uid),
            key: Some(pair.key.clone()),
            kind,
            resolution,
        });
    }

    /// Apply the deletion guards (rule 7), then lay the steps out in their fixed order:
    /// base bookkeeping that must precede re-fetches and re-appends, additions, flag
    /// changes, deletions last, then base bookkeeping for what is gone.
    fn finish(self, out: &mut Plan, remote: &RemoteSnapshot, local: &LocalSnapshot, base: &Base) {
        out.changes = self.changes;
        out.conflicts.extend(self.conflicts);

        let a = &mut out.actions;
        a.extend(
            self.unpair
                .into_iter()
                .map(|(uid, key)| Action::Unpair { uid, key }),
        );
        a.extend(
            self.keep_local
                .into_iter()
                .map(|key| Action::KeepLocalOnly { key }),
        );
        a.extend(
            self.keep_remote
                .into_iter()
                .map(|uid| Action::KeepRemoteOnly { uid }),
        );
        if !self.fetch.is_empty() {
            a.push(Action::Fetch { uids: self.fetch });
        }
        a.extend(
            self.append
                .into_iter()
                .map(|(key, flags)| Action::Append { key, flags }),
        );
        a.extend(
            self.store
                .into_iter()
                .map(|((add, remove), uids)| Action::StoreFlags {
                    uids,
                    add,
                    remove,
                    unchanged_since: self.unchanged_since,
                }),
        );
        a.extend(
            self.set_local
                .into_iter()
                .map(|(key, flags)| Action::SetLocalFlags { key, flags }),
        );
        a.extend(
            self.record
                .into_iter()
                .map(|(uid, (remote, local))| Action::RecordFlags { uid, remote, local }),
        );
        if !self.delete_server.is_empty() {
            match &self.policy.trash {
                Some(trash) if *trash != base.folder => a.push(Action::MoveToTrash {
                    uids: self.delete_server,
                    trash: trash.clone(),
                }),
                _ => a.push(Action::DeleteOnServer {
                    uids: self.delete_server,
                }),
            }
        }
        a.extend(
            self.delete_local
                .into_iter()
                .map(|key| Action::DeleteLocal { key }),
        );
        a.extend(
            self.forget
                .into_iter()
                .map(|(uid, key)| Action::Forget { uid, key }),
        );
        a.extend(
            self.drop_local_only
                .into_iter()
                .map(|key| Action::DropLocalOnly { key }),
        );
        a.extend(
            self.drop_remote_only
                .into_iter()
                .map(|uid| Action::DropRemoteOnly { uid }),
        );
        guard_deletions(out, remote, local, base, self.policy);
    }
}

/// Rule 7's guards, applied to a finished plan: deletions from an emptied side, or more
/// than the policy's share of the folder, are moved from `actions` to `held` and the plan
/// halts with the count and the command that confirms them. Re-run after move detection
/// (a message moved to another folder is not a deletion), so it is idempotent.
pub fn guard_deletions(
    plan: &mut Plan,
    remote: &RemoteSnapshot,
    local: &LocalSnapshot,
    base: &Base,
    policy: &Policy,
) {
    if matches!(plan.halt, Some(Halt::UidValidity { .. })) {
        return;
    }
    let (mut deletions, mut rest): (Vec<Action>, Vec<Action>) = std::mem::take(&mut plan.actions)
        .into_iter()
        .partition(Action::is_deletion);
    deletions.append(&mut plan.held);
    deletions.sort_by_key(|a| match a {
        Action::MoveToTrash { .. } | Action::DeleteOnServer { .. } => 0,
        _ => 1,
    });
    let on_server: usize = deletions
        .iter()
        .map(|a| match a {
            Action::MoveToTrash { uids, .. } | Action::DeleteOnServer { uids } => uids.len(),
            _ => 0,
        })
        .sum();
    let on_local = deletions.len() - deletions.iter().filter(|a| a.touches_server()).count();

    let total = base.pairs.len();
    let confirm_command = confirm_command(policy, base, "--confirm-delete");
    let too_many = |count: usize| {
        count >= MASS_DELETE_FLOOR && count as f64 > policy.max_delete_share * total as f64
    };
    plan.halt = if policy.allow_mass_delete {
        None
    } else if on_server > 0 && local.stable && local.messages.is_empty() {
        Some(Halt::Emptied {
            side: Side::Local,
            pairs: total,
            confirm_command,
        })
    } else if on_local > 0 && remote.is_complete() && remote.listed().is_empty() {
        Some(Halt::Emptied {
            side: Side::Server,
            pairs: total,
            confirm_command,
        })
    } else if too_many(on_server) {
        Some(Halt::MassDelete {
            side: Side::Server,
            count: on_server,
            total,
            confirm_command,
        })
    } else if too_many(on_local) {
        Some(Halt::MassDelete {
            side: Side::Local,
            count: on_local,
            total,
            confirm_command,
        })
    } else {
        None
    };
    // The change log says what happened: a held deletion was not carried (yet).
    let (from, to) = if plan.halt.is_some() {
        (Outcome::Propagated, Outcome::NotPropagated(HELD))
    } else {
        (Outcome::NotPropagated(HELD), Outcome::Propagated)
    };
    for c in plan.changes.iter_mut() {
        if c.kind == ChangeKind::Deleted && c.outcome == from {
            c.outcome = to;
        }
    }
    if plan.halt.is_some() {
        plan.held = deletions;
    } else {
        // Deletions run after every addition and flag change, before base bookkeeping.
        let at = rest
            .iter()
            .position(|a| {
                matches!(
                    a,
                    Action::Forget { .. }
                        | Action::DropLocalOnly { .. }
                        | Action::DropRemoteOnly { .. }
                )
            })
            .unwrap_or(rest.len());
        rest.splice(at..at, deletions);
    }
    plan.actions = rest;
}

const PULL_ONLY: &str = "direction is pull";
pub(super) const HELD: &str = "held until confirmed (rule 7)";
const PUSH_ONLY: &str = "direction is push";
const NO_SERVER_EXPUNGE: &str = "expunge policy keeps server copies";
const NO_LOCAL_EXPUNGE: &str = "expunge policy keeps local copies";

/// The command that re-runs this folder's pass with its deletions confirmed.
fn confirm_command(policy: &Policy, base: &Base, flag: &str) -> String {
    format!(
        "syncmail sync {} --folder {} {flag}",
        shell_word(&policy.account.0),
        shell_word(&base.folder.0)
    )
}

/// Quote a word for a POSIX shell when it needs it, so the printed command can be pasted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+@:,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::key_prefix;
    use proptest::prelude::*;

    proptest! {
        /// The join relies on (prefix, key) ordering exactly as the keys themselves do.
        #[test]
        fn prefix_then_key_orders_like_the_key(a in "[0-9.A-Za-z,:_\u{0}-\u{2}]{0,24}", b in "[0-9.A-Za-z,:_\u{0}-\u{2}]{0,24}") {
            prop_assert_eq!((key_prefix(&a), &a).cmp(&(key_prefix(&b), &b)), a.cmp(&b));
        }

        #[test]
        fn shared_long_prefixes_still_order(suffix_a in "[0-9]{0,6}", suffix_b in "[0-9]{0,6}") {
            let (a, b) = (format!("1700000000.M12{suffix_a}"), format!("1700000000.M12{suffix_b}"));
            prop_assert_eq!((key_prefix(&a), &a).cmp(&(key_prefix(&b), &b)), a.cmp(&b));
        }
    }
}
