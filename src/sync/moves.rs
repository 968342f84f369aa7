//! Cross-folder moves, decided over every folder's plan of one account pass: a message
//! that left one folder and appeared in another is moved, not copied and then deleted.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{FolderName, MaildirKey, Uid};

use super::actions::{Action, Change, ChangeKind, Outcome, Plan, Side};
use super::plan::guard_deletions;
use super::policy::Policy;
use super::snapshot::{Base, LocalSnapshot, MessageId, Pair, RemoteSnapshot};

/// One folder's inputs and its plan from [`super::plan()`], as move detection sees them.
#[derive(Debug)]
pub struct FolderPass<'a> {
    pub remote: &'a RemoteSnapshot,
    pub local: &'a LocalSnapshot,
    pub base: &'a Base,
    pub policy: &'a Policy,
    pub plan: Plan,
}

/// A message moved between folders on one side, to be mirrored by a move on the other.
/// The engine runs moves before the folders' plans; each commits "forget `pair` in
/// `from`, record the moved pair in `to`" with `pair`'s base flags, so a flag change made
/// along with the move is still merged by the next pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Move {
    /// The Maildir file moved from `from` to `to`: `UID MOVE pair.uid` from `from` to
    /// `to` (RFC 6851) and pair the UID the server reports (COPYUID) with `pair.key`.
    OnServer {
        from: FolderName,
        to: FolderName,
        pair: Pair,
    },
    /// The server moved the message from `from` to `to`, where it is now `uid` (same
    /// Message-ID and size): rename the file `pair.key` into `to`'s Maildir.
    Local {
        from: FolderName,
        to: FolderName,
        pair: Pair,
        uid: Uid,
    },
    /// Both sides made the same move (two clients, or a server rule and a local
    /// filter): no IO, only re-pair `pair.key` with `uid` in `to`. Without this the
    /// message would be appended and downloaded, a duplicate on each side.
    Both {
        from: FolderName,
        to: FolderName,
        pair: Pair,
        uid: Uid,
    },
    /// Both sides moved the message out of `from`, to different folders: the file went
    /// to `local_to`, the server copy to `to`, where it is `uid`. One message must stay
    /// one message: the server's folder wins (every other device sees it there), so the
    /// file follows it from `local_to` (a folder of the pass, or one rule 9 keeps locally
    /// after the server deleted it) into `to` and is paired with `uid`. Without this
    /// each side would get a copy of the other's, a duplicate in two folders.
    Diverged {
        from: FolderName,
        local_to: FolderName,
        to: FolderName,
        pair: Pair,
        uid: Uid,
    },
}

/// Rewrite deletion + append (or deletion + download) pairs across folders into moves,
/// matching only when exactly one candidate exists on each side. Local moves become
/// server moves only when the server has MOVE; otherwise append + delete stays (the
/// copy lands before the original goes). A source folder takes part only when its
/// policy would have carried the deletion over (direction and expunge). Re-applies the
/// deletion guards afterwards: a move is not a deletion.
///
/// `held` names the files found in folders no pass looks at: ones the server deleted
/// that rule 9 keeps locally because they hold mail. A file moved into one while the
/// server copy moved elsewhere follows the server ([`Move::Diverged`]).
pub fn detect_moves(
    passes: &mut [FolderPass<'_>],
    server_has_move: bool,
    held: &BTreeMap<MaildirKey, FolderName>,
) -> Vec<Move> {
    let mut moves = Vec::new();
    same_moves(passes, held, &mut moves);
    if server_has_move {
        local_moves(passes, &mut moves);
    }
    server_moves(passes, &mut moves);
    for p in passes.iter_mut() {
        guard_deletions(&mut p.plan, p.remote, p.local, p.base, p.policy);
    }
    moves
}

/// The pairs a folder's plan has leaving it, on either side: each may be half of a move
/// whose other half is in a folder the pass does not cover. A pass over some folders
/// only (the daemon's, after an IDLE event or a local change) must then cover every
/// folder, or a server move seen without its destination becomes a deletion here and a
/// download there, and a flag changed meanwhile on the source copy keeps both (rule 11).
/// (`Unpair` is a side gone against a change on the other: a conflict, rule 11;
/// `Forget`, gone from both sides: the same move on each, or two different ones.)
pub fn leaving<'b>(plan: &Plan, base: &'b Base) -> Vec<&'b Pair> {
    let mut out = Vec::new();
    for a in all_actions(plan).filter(|a| leaves(a)) {
        match a {
            Action::DeleteOnServer { uids } | Action::MoveToTrash { uids, .. } => {
                out.extend(uids.iter().filter_map(|u| base.pairs.get(&u)));
            }
            Action::Unpair { uid, .. } | Action::Forget { uid, .. } => {
                out.extend(base.pairs.get(uid));
            }
            Action::DeleteLocal { key } => {
                out.extend(base.pairs.values().filter(|p| &p.key == key));
            }
            _ => {}
        }
    }
    out
}

/// Whether anything leaves the folder (see [`leaving`]).
pub fn leaves_folder(plan: &Plan) -> bool {
    all_actions(plan).any(leaves)
}

/// An action that takes a message out of its folder on one side or both.
fn leaves(a: &Action) -> bool {
    matches!(
        a,
        Action::DeleteLocal { .. }
            | Action::DeleteOnServer { .. }
            | Action::MoveToTrash { .. }
            | Action::Unpair { .. }
            | Action::Forget { .. }
    )
}

fn all_actions(plan: &Plan) -> impl Iterator<Item = &Action> {
    plan.actions.iter().chain(&plan.held)
}

/// Keys appended by each folder's plan (see [`arrivals`]).
fn appended(passes: &[FolderPass<'_>]) -> BTreeMap<MaildirKey, Vec<usize>> {
    let mut out: BTreeMap<MaildirKey, Vec<usize>> = BTreeMap::new();
    for (i, p) in passes.iter().enumerate() {
        for key in arrivals(&p.plan) {
            out.entry(key.clone()).or_default().push(i);
        }
    }
    out
}

/// The local files a plan uploads as new messages: its `Append`s, except re-appends of
/// a kept conflict copy, which always follow an `Unpair` of the same key.
pub fn arrivals(plan: &Plan) -> Vec<&MaildirKey> {
    let unpaired: BTreeSet<&MaildirKey> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Unpair { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Append { key, .. } if !unpaired.contains(key) => Some(key),
            _ => None,
        })
        .collect()
}

/// New server messages each folder's plan downloads, by Message-ID and size.
fn downloaded(passes: &[FolderPass<'_>]) -> BTreeMap<(MessageId, u64), Vec<(usize, Uid)>> {
    let mut out: BTreeMap<(MessageId, u64), Vec<(usize, Uid)>> = BTreeMap::new();
    for (i, p) in passes.iter().enumerate() {
        for (uid, identity) in new_downloads(&p.plan, p.base, p.remote) {
            out.entry(identity).or_default().push((i, uid));
        }
    }
    out
}

/// The new server messages a folder's plan downloads, with their Message-ID and size
/// (those whose Message-ID the listing has).
pub fn new_downloads(
    plan: &Plan,
    base: &Base,
    remote: &RemoteSnapshot,
) -> Vec<(Uid, (MessageId, u64))> {
    let mut out = Vec::new();
    for a in &plan.actions {
        let Action::Fetch { uids } = a else { continue };
        // A re-fetch of a paired UID restores a conflict copy: not an arrival.
        for uid in uids.iter().filter(|u| !base.pairs.contains_key(u)) {
            if let Some(m) = remote.listed().get(&uid)
                && let Some(id) = &m.message_id
            {
                out.push((uid, (id.clone(), m.size)));
            }
        }
    }
    out
}

/// A pair gone from both sides of folder A whose key arrived in B's Maildir (or in a
/// `held` folder's) while a message with its Message-ID and size arrived on B's server
/// (or on another folder C's: [`Move::Diverged`]).
fn same_moves(
    passes: &mut [FolderPass<'_>],
    held: &BTreeMap<MaildirKey, FolderName>,
    moves: &mut Vec<Move>,
) {
    let mut left: BTreeMap<MaildirKey, Vec<(usize, Pair)>> = BTreeMap::new();
    for (i, p) in passes.iter().enumerate() {
        for a in &p.plan.actions {
            if let Action::Forget { uid, key } = a
                && let Some(pair) = p.base.pairs.get(uid)
                && pair.message_id.is_some()
            {
                left.entry(key.clone()).or_default().push((i, pair.clone()));
            }
        }
    }
    let arrived_local = appended(passes);
    let arrived_remote = downloaded(passes);
    for (key, from) in left {
        let [(a, ref pair)] = from[..] else { continue };
        // Where the file went: a folder of the pass, or a held one.
        let b = match (arrived_local.get(&key).map(Vec::as_slice), held.get(&key)) {
            (Some(&[b]), _) => Some(b),
            (None, Some(_)) => None,
            _ => continue,
        };
        let Some(id) = pair.message_id.clone() else {
            continue;
        };
        let Some(&[(b2, uid)]) = arrived_remote
            .get(&(id, pair.remote_size))
            .map(Vec::as_slice)
        else {
            continue;
        };
        if b == Some(a) || a == b2 {
            continue;
        }
        leave_source(&mut passes[a].plan, pair);
        if let Some(b) = b {
            arrive_locally(&mut passes[b].plan, &key);
        }
        arrive_on_server(&mut passes[b2].plan, uid);
        let (from, to) = (
            passes[a].base.folder.clone(),
            passes[b2].base.folder.clone(),
        );
        let local_to = match b {
            Some(b) => passes[b].base.folder.clone(),
            None => held[&key].clone(),
        };
        moves.push(if b == Some(b2) {
            Move::Both {
                from,
                to,
                pair: pair.clone(),
                uid,
            }
        } else {
            Move::Diverged {
                from,
                local_to,
                to,
                pair: pair.clone(),
                uid,
            }
        });
    }
}

/// A move of which a pass sees one end only: one folder's plan forgets a pair (gone from
/// both of its sides) while another folder's plan takes the pair's message as new (see
/// [`moved_while_gone`] and [`moved_out_of_sight`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unseen {
    /// The folder (its index among the pass's plans) whose plan forgets the pair.
    pub from: usize,
    /// The forgotten pair's UID there, and its file's key.
    pub uid: Uid,
    pub key: MaildirKey,
    /// The folder whose plan takes the message as new.
    pub to: usize,
    /// `None`: it uploads the file (which the mail client moved there); `Some(uid)`: it
    /// downloads the server message at this UID (which another device moved there).
    pub download: Option<Uid>,
}

/// The keys of these unseen moves.
pub fn unseen_keys(unseen: &[Unseen]) -> BTreeSet<MaildirKey> {
    unseen.iter().map(|u| u.key.clone()).collect()
}

/// Pairs one folder's plan forgets (gone from both of its sides) whose key another
/// folder's plan uploads as new: what [`detect_moves`] found no server arrival for. The
/// mail client moved the file while the server copy left too: another device deleted it,
/// or moved it where this pass did not see it arrive (a folder made after the pass
/// listed, or one observed before the message got there). Uploaded now, a second copy if
/// it was a move.
pub fn moved_while_gone<'p>(plans: impl IntoIterator<Item = &'p Plan>) -> Vec<Unseen> {
    let mut forgotten: Vec<(usize, Uid, &MaildirKey)> = Vec::new();
    let mut arrived: BTreeMap<&MaildirKey, BTreeSet<usize>> = BTreeMap::new();
    for (i, plan) in plans.into_iter().enumerate() {
        for a in &plan.actions {
            if let Action::Forget { uid, key } = a {
                forgotten.push((i, *uid, key));
            }
        }
        for key in arrivals(plan) {
            arrived.entry(key).or_default().insert(i);
        }
    }
    let forgetting: BTreeSet<(&MaildirKey, usize)> =
        forgotten.iter().map(|(i, _, key)| (*key, *i)).collect();
    let mut out = Vec::new();
    for (from, uid, key) in &forgotten {
        for to in arrived.get(key).into_iter().flatten() {
            if !forgetting.contains(&(*key, *to)) {
                out.push(Unseen {
                    from: *from,
                    uid: *uid,
                    key: (*key).clone(),
                    to: *to,
                    download: None,
                });
            }
        }
    }
    out
}

/// Pairs one folder's plan forgets (gone from both of its sides) whose message another
/// folder's plan downloads as new (same Message-ID and size), while no folder of the pass
/// uploads the file: the server moved it, and the mail client moved the file too, into a
/// folder the pass did not look at (one made after the pass listed the folders), or
/// deleted it. Downloaded now, with the file uploaded from its new folder by a later pass,
/// a move would be two messages (the soak's duplicate, seed 20261209 on 85f10ea).
pub fn moved_out_of_sight<'p>(
    passes: impl IntoIterator<Item = (&'p Plan, &'p Base, &'p RemoteSnapshot)>,
) -> Vec<Unseen> {
    let mut forgotten: Vec<(usize, &Pair)> = Vec::new();
    let mut arrived: BTreeSet<&MaildirKey> = BTreeSet::new();
    let mut downloaded: BTreeMap<(MessageId, u64), Vec<(usize, Uid)>> = BTreeMap::new();
    for (i, (plan, base, remote)) in passes.into_iter().enumerate() {
        for a in &plan.actions {
            if let Action::Forget { uid, .. } = a
                && let Some(pair) = base.pairs.get(uid)
            {
                forgotten.push((i, pair));
            }
        }
        arrived.extend(arrivals(plan));
        for (uid, identity) in new_downloads(plan, base, remote) {
            downloaded.entry(identity).or_default().push((i, uid));
        }
    }
    let mut out = Vec::new();
    for (from, pair) in forgotten {
        if arrived.contains(&pair.key) {
            continue;
        }
        let Some(id) = &pair.message_id else { continue };
        for &(to, uid) in downloaded
            .get(&(id.clone(), pair.remote_size))
            .into_iter()
            .flatten()
        {
            if to != from {
                out.push(Unseen {
                    from,
                    uid: pair.uid,
                    key: pair.key.clone(),
                    to,
                    download: Some(uid),
                });
            }
        }
    }
    out
}

/// Pairs a plan forgets (gone from both sides of its folder) whose message no folder of
/// the pass saw arrive, once its moves are matched ([`detect_moves`]) and the half-seen
/// ones named ([`moved_while_gone`], [`moved_out_of_sight`]): deleted on both sides, or
/// moved on both after the pass had observed where they went (the soak's duplicate, seed
/// 20261209 on d13caf0: forgotten, the file was uploaded and the message downloaded by the
/// next pass). Only pairs with a Message-ID: a later pass can match no other.
pub fn gone_unseen(plan: &Plan, base: &Base) -> Vec<(Uid, MaildirKey)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Forget { uid, key }
                if base.pairs.get(uid).is_some_and(|p| p.message_id.is_some()) =>
            {
                Some((*uid, key.clone()))
            }
            _ => None,
        })
        .collect()
}

/// A pair gone from both sides of its folder stays for the next pass (its move is
/// still unseen): the plan neither forgets it nor records any change of it.
pub fn keep_pair(plan: &mut Plan, uid: Uid, key: &MaildirKey) {
    drop_pair(plan, uid, key);
    plan.changes
        .retain(|c| c.uid != Some(uid) && c.key.as_ref() != Some(key));
}

/// Pairs whose file left folder A's Maildir while the server copy is still in A,
/// however A's plan resolved it (deletion, or a kept conflict copy), and whose key
/// arrived in B's Maildir.
fn local_moves(passes: &mut [FolderPass<'_>], moves: &mut Vec<Move>) {
    let mut left: BTreeMap<MaildirKey, Vec<(usize, Pair)>> = BTreeMap::new();
    for (i, p) in passes.iter().enumerate() {
        if !p.local.stable || !p.policy.direction.sends() || !p.policy.expunge.on_server() {
            continue;
        }
        let mut uids: BTreeSet<Uid> = BTreeSet::new();
        for a in all_actions(&p.plan) {
            match a {
                Action::DeleteOnServer { uids: u } | Action::MoveToTrash { uids: u, .. } => {
                    uids.extend(u.iter())
                }
                Action::Unpair { uid, key } if !p.local.messages.contains_key(key) => {
                    uids.insert(*uid);
                }
                _ => {}
            }
        }
        for uid in uids {
            if let Some(pair) = p.base.pairs.get(&uid) {
                left.entry(pair.key.clone())
                    .or_default()
                    .push((i, pair.clone()));
            }
        }
    }
    let arrived = appended(passes);
    for (key, from) in left {
        let [(a, ref pair)] = from[..] else { continue };
        let Some(&[b]) = arrived.get(&key).map(Vec::as_slice) else {
            continue;
        };
        if a == b {
            continue;
        }
        leave_source(&mut passes[a].plan, pair);
        arrive_locally(&mut passes[b].plan, &key);
        moves.push(Move::OnServer {
            from: passes[a].base.folder.clone(),
            to: passes[b].base.folder.clone(),
            pair: pair.clone(),
        });
    }
}

/// Pairs whose server copy left folder A while the (unedited) file is still in A,
/// however A's plan resolved it, and whose Message-ID and size arrived on B's server.
fn server_moves(passes: &mut [FolderPass<'_>], moves: &mut Vec<Move>) {
    type Identity = (MessageId, u64);
    let mut left: BTreeMap<Identity, Vec<(usize, Pair)>> = BTreeMap::new();
    for (i, p) in passes.iter().enumerate() {
        if !p.policy.direction.fetches() || !p.policy.expunge.locally() {
            continue;
        }
        let keys: BTreeSet<&MaildirKey> = all_actions(&p.plan)
            .filter_map(|a| match a {
                Action::DeleteLocal { key } => Some(key),
                Action::Unpair { uid, key }
                    if matches!(p.remote.state(*uid), super::snapshot::RemoteState::Gone) =>
                {
                    Some(key)
                }
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            continue;
        }
        for pair in p.base.pairs.values() {
            let unedited = p
                .local
                .messages
                .get(&pair.key)
                .is_some_and(|m| m.size == pair.local_size);
            if let Some(id) = &pair.message_id
                && unedited
                && keys.contains(&pair.key)
            {
                left.entry((id.clone(), pair.remote_size))
                    .or_default()
                    .push((i, pair.clone()));
            }
        }
    }
    let arrived = downloaded(passes);
    for (identity, from) in left {
        let [(a, ref pair)] = from[..] else { continue };
        let Some(&[(b, uid)]) = arrived.get(&identity).map(Vec::as_slice) else {
            continue;
        };
        if a == b {
            continue;
        }
        leave_source(&mut passes[a].plan, pair);
        arrive_on_server(&mut passes[b].plan, uid);
        moves.push(Move::Local {
            from: passes[a].base.folder.clone(),
            to: passes[b].base.folder.clone(),
            pair: pair.clone(),
            uid,
        });
    }
}

/// The pair leaves the source folder: whatever its plan meant to do with either copy
/// (delete, restore, keep, re-flag) is void, and its conflict, if any, was a move.
fn leave_source(plan: &mut Plan, pair: &Pair) {
    let (uid, key) = (pair.uid, &pair.key);
    drop_pair(plan, uid, key);
    for c in &mut plan.changes {
        if c.uid == Some(uid) || c.key.as_ref() == Some(key) {
            c.outcome = Outcome::Moved;
        }
    }
}

/// Every action and conflict of the pair (`uid`, `key`) leaves the plan.
fn drop_pair(plan: &mut Plan, uid: Uid, key: &MaildirKey) {
    for list in [&mut plan.actions, &mut plan.held] {
        for a in list.iter_mut() {
            match a {
                Action::Fetch { uids }
                | Action::StoreFlags { uids, .. }
                | Action::DeleteOnServer { uids }
                | Action::MoveToTrash { uids, .. } => {
                    uids.remove(uid);
                }
                _ => {}
            }
        }
        list.retain(|a| match a {
            Action::Fetch { uids }
            | Action::StoreFlags { uids, .. }
            | Action::DeleteOnServer { uids }
            | Action::MoveToTrash { uids, .. } => !uids.is_empty(),
            Action::Unpair { uid: u, .. }
            | Action::Forget { uid: u, .. }
            | Action::RecordFlags { uid: u, .. }
            | Action::KeepRemoteOnly { uid: u } => *u != uid,
            Action::Append { key: k, .. }
            | Action::SetLocalFlags { key: k, .. }
            | Action::DeleteLocal { key: k }
            | Action::KeepLocalOnly { key: k } => k != key,
            Action::RepairUids(_)
            | Action::DropLocalOnly { .. }
            | Action::DropRemoteOnly { .. } => true,
        });
    }
    plan.conflicts
        .retain(|c| c.uid != Some(uid) && c.key.as_ref() != Some(key));
}

/// A file that arrived in this folder is not uploaded this pass (it left another folder
/// after that folder was observed: the next pass sees the move): no `Append`, and no
/// "new, propagated" change for it.
pub fn defer_arrival(plan: &mut Plan, key: &MaildirKey) {
    plan.actions
        .retain(|x| !matches!(x, Action::Append { key: k, .. } if k == key));
    plan.changes.retain(|c| {
        !(c.side == Side::Local && c.key.as_ref() == Some(key) && c.kind == ChangeKind::New)
    });
}

/// A server message that arrived in this folder is not downloaded this pass (it left
/// another folder after that folder was observed: the next pass sees the move).
pub fn defer_download(plan: &mut Plan, uid: Uid) {
    for a in plan.actions.iter_mut() {
        if let Action::Fetch { uids } = a {
            uids.remove(uid);
        }
    }
    plan.actions
        .retain(|a| !matches!(a, Action::Fetch { uids } if uids.is_empty()));
}

/// The moved file arrives in the destination: no upload.
fn arrive_locally(plan: &mut Plan, key: &MaildirKey) {
    plan.actions
        .retain(|x| !matches!(x, Action::Append { key: k, .. } if k == key));
    for c in &mut plan.changes {
        if c.side == Side::Local && c.key.as_ref() == Some(key) && c.kind == ChangeKind::New {
            c.outcome = Outcome::Moved;
        }
    }
}

/// The moved server message arrives in the destination: no download. (A download is
/// logged when it commits, so the plan holds no change for it: the move's is added.)
fn arrive_on_server(plan: &mut Plan, uid: Uid) {
    for a in plan.actions.iter_mut() {
        if let Action::Fetch { uids } = a {
            uids.remove(uid);
        }
    }
    plan.actions
        .retain(|a| !matches!(a, Action::Fetch { uids } if uids.is_empty()));
    plan.changes.push(Change {
        side: Side::Server,
        uid: Some(uid),
        key: None,
        kind: ChangeKind::New,
        outcome: Outcome::Moved,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, Flags};
    use crate::sync::actions::Halt;
    use crate::sync::sim::{World, policy};

    /// INBOX with `n` messages and Archive with 2, keys distinct across folders.
    fn account(n: usize) -> (World, World) {
        let inbox = World::synced(&vec![Flags::new(); n], false);
        let mut archive = World::synced(&[Flags::new(), Flags::new()], false);
        archive.base.folder = FolderName("Archive".into());
        let rekey = |k: &MaildirKey| MaildirKey(format!("archive-{k}"));
        archive.local = std::mem::take(&mut archive.local)
            .into_iter()
            .map(|(k, m)| (rekey(&k), m))
            .collect();
        for p in archive.base.pairs.values_mut() {
            p.key = rekey(&p.key);
            p.message_id = p.message_id.as_ref().map(|m| MessageId(format!("a{m}")));
        }
        for m in archive.server.values_mut() {
            m.message_id = m.message_id.as_ref().map(|m| MessageId(format!("a{m}")));
        }
        (inbox, archive)
    }

    fn run(inbox: &World, archive: &World, has_move: bool) -> (Vec<Move>, Plan, Plan) {
        run_with(&policy(), inbox, archive, has_move)
    }

    fn run_with(
        p: &Policy,
        inbox: &World,
        archive: &World,
        has_move: bool,
    ) -> (Vec<Move>, Plan, Plan) {
        let (ri, li, ra, la) = (
            inbox.remote(),
            inbox.local_snapshot(),
            archive.remote(),
            archive.local_snapshot(),
        );
        let mut passes = [
            FolderPass {
                remote: &ri,
                local: &li,
                base: &inbox.base,
                policy: p,
                plan: inbox.plan(p),
            },
            FolderPass {
                remote: &ra,
                local: &la,
                base: &archive.base,
                policy: p,
                plan: archive.plan(p),
            },
        ];
        let moves = detect_moves(&mut passes, has_move, &BTreeMap::new());
        let [a, b] = passes;
        (moves, a.plan, b.plan)
    }

    /// What the engine does for a move, on the simulated account.
    fn apply_move(inbox: &mut World, archive: &mut World, m: &Move) {
        match m {
            Move::OnServer { pair, .. } => {
                let msg = inbox.server.remove(&pair.uid).unwrap();
                inbox.base.pairs.remove(&pair.uid);
                let uid = archive.next_uid();
                archive.server.insert(uid, msg);
                archive.base.pairs.insert(
                    uid,
                    Pair {
                        uid,
                        ..pair.clone()
                    },
                );
            }
            Move::Local { pair, uid, .. } => {
                let file = inbox.local.remove(&pair.key).unwrap();
                inbox.base.pairs.remove(&pair.uid);
                archive.local.insert(pair.key.clone(), file);
                archive.base.pairs.insert(
                    *uid,
                    Pair {
                        uid: *uid,
                        ..pair.clone()
                    },
                );
            }
            Move::Diverged { .. } => unreachable!("two folders cannot diverge"),
            Move::Both { pair, uid, .. } => {
                inbox.base.pairs.remove(&pair.uid);
                archive.base.pairs.insert(
                    *uid,
                    Pair {
                        uid: *uid,
                        ..pair.clone()
                    },
                );
            }
        }
    }

    fn settle(inbox: &mut World, archive: &mut World, moves: &[Move], a: &Plan, b: &Plan) {
        for m in moves {
            apply_move(inbox, archive, m);
        }
        inbox.apply(a);
        archive.apply(b);
        for w in [inbox, archive] {
            // A flag changed along with a move is merged by the next pass.
            w.pass(&policy());
            w.check_in_sync().unwrap();
            let again = w.plan(&policy());
            assert!(again.is_empty(), "{again}");
        }
    }

    #[test]
    fn a_file_moved_between_maildir_folders_becomes_a_server_uid_move() {
        let (mut inbox, mut archive) = account(3);
        let pair = inbox.base.pairs[&Uid(2)].clone();
        let mut file = inbox.local.remove(&pair.key).unwrap();
        file.flags.insert(Flag::Seen); // read on the way: still merged next pass
        archive.local.insert(pair.key.clone(), file);

        let (moves, a, b) = run(&inbox, &archive, true);
        assert_eq!(
            moves,
            vec![Move::OnServer {
                from: FolderName("INBOX".into()),
                to: FolderName("Archive".into()),
                pair: pair.clone()
            }]
        );
        assert!(a.actions.is_empty(), "{a}");
        assert!(b.actions.is_empty(), "{b}");
        assert_eq!(a.changes[0].outcome, Outcome::Moved);
        assert_eq!(b.changes[0].outcome, Outcome::Moved);
        assert!(
            moves[0]
                .to_string()
                .starts_with("move UID 2 from INBOX to Archive")
        );
        settle(&mut inbox, &mut archive, &moves, &a, &b);
        assert_eq!((inbox.server.len(), archive.server.len()), (2, 3));
        assert!(
            archive
                .server
                .values()
                .any(|m| m.flags.contains(Flag::Seen))
        );
    }

    #[test]
    fn a_file_moved_while_its_server_copy_left_for_where_the_pass_did_not_look_is_named() {
        let (mut inbox, mut archive) = account(3);
        let pair = inbox.base.pairs[&Uid(2)].clone();
        let file = inbox.local.remove(&pair.key).unwrap();
        archive.local.insert(pair.key.clone(), file);
        // The server copy left INBOX for a folder this pass did not list.
        inbox.server.remove(&Uid(2));
        let (moves, a, b) = run(&inbox, &archive, true);
        assert!(moves.is_empty(), "{moves:?}");
        assert_eq!(
            moved_while_gone([&a, &b]),
            [Unseen {
                from: 0,
                uid: Uid(2),
                key: pair.key.clone(),
                to: 1,
                download: None
            }]
        );
        // A file gone from one folder only, or arrived in its own folder, is not named.
        let (inbox, archive) = account(3);
        let (_, a, b) = run(&inbox, &archive, true);
        assert!(moved_while_gone([&a, &b]).is_empty());
    }

    #[test]
    fn a_server_move_whose_file_went_where_the_pass_did_not_look_is_named() {
        let (mut inbox, mut archive) = account(3);
        let pair = inbox.base.pairs[&Uid(3)].clone();
        // The server moved it to Archive; the file went to a folder this pass did not list.
        let msg = inbox.server.remove(&Uid(3)).unwrap();
        let uid = archive.next_uid();
        archive.server.insert(uid, msg);
        let file = inbox.local.remove(&pair.key).unwrap();
        let (moves, a, b) = run(&inbox, &archive, true);
        assert!(moves.is_empty(), "{moves:?}");
        let (ri, ra) = (inbox.remote(), archive.remote());
        assert_eq!(
            moved_out_of_sight([(&a, &inbox.base, &ri), (&b, &archive.base, &ra)]),
            [Unseen {
                from: 0,
                uid: Uid(3),
                key: pair.key.clone(),
                to: 1,
                download: Some(uid)
            }]
        );
        // Both moves seen: a move, named by nobody.
        archive.local.insert(pair.key.clone(), file);
        let (moves, a, b) = run(&inbox, &archive, true);
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert!(moved_out_of_sight([(&a, &inbox.base, &ri), (&b, &archive.base, &ra)]).is_empty());
    }

    #[test]
    fn a_pair_gone_from_both_sides_is_unseen_until_both_ends_show() {
        let (mut inbox, mut archive) = account(3);
        let pair = inbox.base.pairs[&Uid(3)].clone();
        // Gone from both sides of INBOX; Archive was observed before either arrived.
        let msg = inbox.server.remove(&Uid(3)).unwrap();
        let file = inbox.local.remove(&pair.key).unwrap();
        let (moves, a, b) = run(&inbox, &archive, true);
        assert!(moves.is_empty(), "{moves:?}");
        assert_eq!(gone_unseen(&a, &inbox.base), [(Uid(3), pair.key.clone())]);
        assert!(gone_unseen(&b, &archive.base).is_empty());
        // The next pass sees both ends: a move, nothing unseen.
        let uid = archive.next_uid();
        archive.server.insert(uid, msg);
        archive.local.insert(pair.key.clone(), file);
        let (moves, a, _) = run(&inbox, &archive, true);
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert!(gone_unseen(&a, &inbox.base).is_empty(), "{a}");
        // Without a Message-ID, no later pass can match it: not named.
        let (mut inbox, archive) = account(3);
        let pair = inbox.base.pairs.get_mut(&Uid(3)).unwrap();
        pair.message_id = None;
        let key = pair.key.clone();
        inbox.server.remove(&Uid(3));
        inbox.local.remove(&key);
        let (_, a, _) = run(&inbox, &archive, true);
        assert!(
            a.actions.iter().any(|x| matches!(x, Action::Forget { .. })),
            "{a}"
        );
        assert!(gone_unseen(&a, &inbox.base).is_empty(), "{a}");
    }

    #[test]
    fn a_kept_pair_is_neither_forgotten_nor_logged() {
        let (mut inbox, mut archive) = account(3);
        let pair = inbox.base.pairs[&Uid(2)].clone();
        let file = inbox.local.remove(&pair.key).unwrap();
        archive.local.insert(pair.key.clone(), file);
        inbox.server.remove(&Uid(2));
        let (_, mut a, _) = run(&inbox, &archive, true);
        assert!(a.changes.iter().any(|c| c.uid == Some(Uid(2))));
        keep_pair(&mut a, Uid(2), &pair.key);
        assert!(a.actions.is_empty(), "{a}");
        assert!(!a.changes.iter().any(|c| c.uid == Some(Uid(2))), "{a}");
    }

    #[test]
    fn without_move_support_a_local_move_stays_append_then_delete() {
        let (mut inbox, mut archive) = account(3);
        let key = inbox.base.pairs[&Uid(2)].key.clone();
        let file = inbox.local.remove(&key).unwrap();
        archive.local.insert(key.clone(), file);
        let (moves, a, b) = run(&inbox, &archive, false);
        assert!(moves.is_empty());
        assert!(matches!(a.actions[..], [Action::DeleteOnServer { .. }]));
        assert!(matches!(b.actions[..], [Action::Append { .. }]));
        settle(&mut inbox, &mut archive, &moves, &a, &b);
    }

    #[test]
    fn a_message_moved_between_server_folders_becomes_a_local_rename() {
        let (mut inbox, mut archive) = account(3);
        let pair = inbox.base.pairs[&Uid(3)].clone();
        let msg = inbox.server.remove(&Uid(3)).unwrap();
        let uid = archive.next_uid();
        archive.server.insert(uid, msg);

        let (moves, a, b) = run(&inbox, &archive, true);
        assert_eq!(
            moves,
            vec![Move::Local {
                from: FolderName("INBOX".into()),
                to: FolderName("Archive".into()),
                pair,
                uid
            }]
        );
        assert!(a.actions.is_empty(), "{a}");
        assert!(b.actions.is_empty(), "{b}");
        settle(&mut inbox, &mut archive, &moves, &a, &b);
        assert_eq!((inbox.local.len(), archive.local.len()), (2, 3));
    }

    #[test]
    fn the_same_move_on_both_sides_is_only_re_paired() {
        let (mut inbox, mut archive) = account(3);
        let pair = inbox.base.pairs[&Uid(1)].clone();
        let file = inbox.local.remove(&pair.key).unwrap();
        archive.local.insert(pair.key.clone(), file);
        let msg = inbox.server.remove(&Uid(1)).unwrap();
        let uid = archive.next_uid();
        archive.server.insert(uid, msg);

        let (moves, a, b) = run(&inbox, &archive, true);
        assert_eq!(
            moves,
            vec![Move::Both {
                from: FolderName("INBOX".into()),
                to: FolderName("Archive".into()),
                pair,
                uid
            }]
        );
        assert!(a.actions.is_empty() && b.actions.is_empty(), "{a}{b}");
        settle(&mut inbox, &mut archive, &moves, &a, &b);
        assert_eq!((archive.server.len(), archive.local.len()), (3, 3));
    }

    /// Moved out of INBOX on both sides, to different folders: one message, in the
    /// server's folder; no upload, no download (soak, issue 20).
    #[test]
    fn moves_to_different_folders_on_each_side_keep_one_message_where_the_server_put_it() {
        let (mut inbox, mut archive) = account(3);
        let (_, mut work) = account(0);
        work.base.folder = FolderName("Work".into());
        let rekey = |k: &MaildirKey| MaildirKey(k.0.replace("archive-", "work-"));
        work.local = std::mem::take(&mut work.local)
            .into_iter()
            .map(|(k, m)| (rekey(&k), m))
            .collect();
        for p in work.base.pairs.values_mut() {
            p.key = rekey(&p.key);
            p.message_id = p.message_id.as_ref().map(|m| MessageId(format!("w{m}")));
        }
        for m in work.server.values_mut() {
            m.message_id = m.message_id.as_ref().map(|m| MessageId(format!("w{m}")));
        }
        let pair = inbox.base.pairs[&Uid(1)].clone();
        let file = inbox.local.remove(&pair.key).unwrap();
        archive.local.insert(pair.key.clone(), file);
        let msg = inbox.server.remove(&Uid(1)).unwrap();
        let uid = work.next_uid();
        work.server.insert(uid, msg);

        let p = policy();
        let snapshots = [&inbox, &archive, &work].map(|w| (w.remote(), w.local_snapshot()));
        let mut passes: Vec<FolderPass<'_>> = [&inbox, &archive, &work]
            .iter()
            .zip(&snapshots)
            .map(|(w, (remote, local))| FolderPass {
                remote,
                local,
                base: &w.base,
                policy: &p,
                plan: w.plan(&p),
            })
            .collect();
        let moves = detect_moves(&mut passes, true, &BTreeMap::new());
        assert_eq!(
            moves,
            vec![Move::Diverged {
                from: FolderName("INBOX".into()),
                local_to: FolderName("Archive".into()),
                to: FolderName("Work".into()),
                pair,
                uid
            }]
        );
        for pass in &passes {
            assert!(
                !pass
                    .plan
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Append { .. } | Action::Fetch { .. })),
                "{}",
                pass.plan
            );
        }
    }

    #[test]
    fn a_file_moved_into_a_held_folder_follows_the_servers_move() {
        // The client moved the file into a folder the server deleted and rule 9 keeps
        // (no pass of its own); the phone moved the server copy to Archive.
        let (mut inbox, mut archive) = account(3);
        let pair = inbox.base.pairs[&Uid(1)].clone();
        inbox.local.remove(&pair.key).unwrap();
        let msg = inbox.server.remove(&Uid(1)).unwrap();
        let uid = archive.next_uid();
        archive.server.insert(uid, msg);
        let p = policy();
        let snapshots = [&inbox, &archive].map(|w| (w.remote(), w.local_snapshot()));
        let passes = |held: &BTreeMap<MaildirKey, FolderName>| {
            let mut passes: Vec<FolderPass<'_>> = [&inbox, &archive]
                .iter()
                .zip(&snapshots)
                .map(|(w, (remote, local))| FolderPass {
                    remote,
                    local,
                    base: &w.base,
                    policy: &p,
                    plan: w.plan(&p),
                })
                .collect();
            let moves = detect_moves(&mut passes, true, held);
            let fetches = passes
                .iter()
                .flat_map(|p| &p.plan.actions)
                .filter(|a| matches!(a, Action::Fetch { .. }))
                .count();
            (moves, fetches)
        };
        // Not knowing where the file went: the pair is forgotten, the copy downloaded.
        assert_eq!(passes(&BTreeMap::new()), (vec![], 1));
        let kept = FolderName("Kept".into());
        let held = BTreeMap::from([(pair.key.clone(), kept.clone())]);
        assert_eq!(
            passes(&held),
            (
                vec![Move::Diverged {
                    from: FolderName("INBOX".into()),
                    local_to: kept,
                    to: FolderName("Archive".into()),
                    pair,
                    uid
                }],
                0
            )
        );
    }

    /// One thing a user does to the account between passes.
    #[derive(Clone, Debug)]
    enum Op {
        MoveLocally(usize),
        MoveOnServer(usize),
        MoveOnBoth(usize),
        Flag(usize, bool),
    }

    fn nth_uid(w: &World, i: usize) -> Option<Uid> {
        w.base
            .pairs
            .keys()
            .nth(i % w.base.pairs.len().max(1))
            .copied()
    }

    fn apply_op(inbox: &mut World, archive: &mut World, op: &Op) {
        let (i, local, server) = match *op {
            Op::MoveLocally(i) => (i, true, false),
            Op::MoveOnServer(i) => (i, false, true),
            Op::MoveOnBoth(i) => (i, true, true),
            Op::Flag(i, server) => {
                let Some(uid) = nth_uid(inbox, i) else { return };
                let key = inbox.base.pairs[&uid].key.clone();
                let flags = if server {
                    inbox.server.get_mut(&uid).map(|m| &mut m.flags)
                } else {
                    inbox.local.get_mut(&key).map(|m| &mut m.flags)
                };
                if let Some(f) = flags {
                    f.insert(Flag::Flagged);
                }
                return;
            }
        };
        let Some(uid) = nth_uid(inbox, i) else { return };
        let key = inbox.base.pairs[&uid].key.clone();
        if local && let Some(file) = inbox.local.remove(&key) {
            archive.local.insert(key, file);
        }
        if server && let Some(msg) = inbox.server.remove(&uid) {
            let new = archive.next_uid();
            archive.server.insert(new, msg);
        }
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            any::<usize>().prop_map(Op::MoveLocally),
            any::<usize>().prop_map(Op::MoveOnServer),
            any::<usize>().prop_map(Op::MoveOnBoth),
            (any::<usize>(), any::<bool>()).prop_map(|(i, s)| Op::Flag(i, s)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Moves in any mix, with or without server MOVE support: the account settles
        /// with every message exactly once per side, and never more than one copy.
        #[test]
        fn prop_moves_settle_without_loss_or_duplicates(
            n in 0usize..12,
            ops in proptest::collection::vec(op(), 0..10),
            has_move in proptest::prelude::any::<bool>(),
        ) {
            let (mut inbox, mut archive) = account(n);
            for o in &ops {
                apply_op(&mut inbox, &mut archive, o);
            }
            let server_total = inbox.server.len() + archive.server.len();
            let local_total = inbox.local.len() + archive.local.len();
            // Emptying a folder by moving everything out, without MOVE, is append +
            // delete: the user confirms it like any mass deletion.
            let mut confirmed = policy();
            confirmed.allow_mass_delete = true;
            let (moves, a, b) = run_with(&confirmed, &inbox, &archive, has_move);
            for m in &moves {
                apply_move(&mut inbox, &mut archive, m);
            }
            inbox.apply(&a);
            archive.apply(&b);
            for w in [&mut inbox, &mut archive] {
                w.pass(&policy());
                proptest::prop_assert!(w.check_in_sync().is_ok(), "{:?}", w.check_in_sync());
                let again = w.plan(&policy());
                proptest::prop_assert!(again.is_empty(), "{}", again);
            }
            proptest::prop_assert_eq!(inbox.server.len(), inbox.local.len());
            proptest::prop_assert_eq!(archive.server.len(), archive.local.len());
            // No duplicates, except a rule-11 copy kept (and logged) when the server
            // cannot MOVE and the server copy changed while its file was moved away.
            let kept = a.conflicts.len() + b.conflicts.len();
            let total = inbox.server.len() + archive.server.len();
            proptest::prop_assert!(total <= server_total.max(local_total) + kept);
            if has_move {
                proptest::prop_assert!(total <= server_total.max(local_total));
            }
        }
    }

    #[test]
    fn ambiguous_server_moves_are_left_as_download_and_delete() {
        let (mut inbox, mut archive) = account(3);
        let msg = inbox.server.remove(&Uid(3)).unwrap();
        for _ in 0..2 {
            let uid = archive.next_uid();
            archive.server.insert(uid, msg.clone());
        }
        let (moves, a, b) = run(&inbox, &archive, true);
        assert!(moves.is_empty());
        assert!(matches!(a.actions[..], [Action::DeleteLocal { .. }]));
        assert!(matches!(b.actions[..], [Action::Fetch { .. }]));
    }

    #[test]
    fn moving_most_of_a_folder_is_not_a_mass_delete() {
        let (mut inbox, mut archive) = account(20);
        for uid in 1..=15 {
            let key = inbox.base.pairs[&Uid(uid)].key.clone();
            let file = inbox.local.remove(&key).unwrap();
            archive.local.insert(key, file);
        }
        let p = policy();
        assert!(matches!(
            inbox.plan(&p).halt,
            Some(Halt::MassDelete { count: 15, .. })
        ));
        let (moves, a, b) = run(&inbox, &archive, true);
        assert_eq!(moves.len(), 15);
        assert!(a.halt.is_none() && a.held.is_empty(), "{a}");
        settle(&mut inbox, &mut archive, &moves, &a, &b);
        assert_eq!(archive.server.len(), 17);
    }

    #[test]
    fn a_re_appended_conflict_copy_is_not_a_move() {
        let (mut inbox, mut archive) = account(2);
        // Archive: server deleted UID 1 while the local copy got \Flagged: re-append.
        let key = archive.base.pairs[&Uid(1)].key.clone();
        archive.server.remove(&Uid(1));
        archive
            .local
            .get_mut(&key)
            .unwrap()
            .flags
            .insert(Flag::Flagged);
        // INBOX: an unrelated local deletion.
        let k = inbox.base.pairs[&Uid(1)].key.clone();
        inbox.local.remove(&k);
        let (moves, a, b) = run(&inbox, &archive, true);
        assert!(moves.is_empty());
        settle(&mut inbox, &mut archive, &moves, &a, &b);
    }
}
