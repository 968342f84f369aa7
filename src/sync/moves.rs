//! Cross-folder moves, decided over every folder's plan of one account pass: a message
//! that left one folder and appeared in another is moved, not copied and then deleted.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{FolderName, MaildirKey, Uid};

use super::actions::{Action, ChangeKind, Outcome, Plan, Side};
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
}

/// Rewrite deletion + append (or deletion + download) pairs across folders into moves,
/// matching only when exactly one candidate exists on each side. Local moves become
/// server moves only when the server has MOVE; otherwise append + delete stays (the
/// copy lands before the original goes). Re-applies the deletion guards afterwards:
/// a move is not a deletion.
pub fn detect_moves(passes: &mut [FolderPass<'_>], server_has_move: bool) -> Vec<Move> {
    let mut moves = Vec::new();
    if server_has_move {
        local_moves(passes, &mut moves);
    }
    server_moves(passes, &mut moves);
    for p in passes.iter_mut() {
        guard_deletions(&mut p.plan, p.remote, p.local, p.base, p.policy);
    }
    moves
}

fn all_actions(plan: &Plan) -> impl Iterator<Item = &Action> {
    plan.actions.iter().chain(&plan.held)
}

/// Keys whose file left folder A (so A deletes the server copy) and appeared in B.
fn local_moves(passes: &mut [FolderPass<'_>], moves: &mut Vec<Move>) {
    let mut left: BTreeMap<MaildirKey, Vec<(usize, Uid)>> = BTreeMap::new();
    let mut arrived: BTreeMap<MaildirKey, Vec<usize>> = BTreeMap::new();
    for (i, p) in passes.iter().enumerate() {
        // A key appended after an Unpair is a kept conflict copy going back: not a move.
        let unpaired: BTreeSet<&MaildirKey> = p
            .plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Unpair { key, .. } => Some(key),
                _ => None,
            })
            .collect();
        for a in all_actions(&p.plan) {
            match a {
                Action::DeleteOnServer { uids } | Action::MoveToTrash { uids, .. } => {
                    for uid in uids.iter() {
                        if let Some(pair) = p.base.pairs.get(&uid) {
                            left.entry(pair.key.clone()).or_default().push((i, uid));
                        }
                    }
                }
                Action::Append { key, .. } if !unpaired.contains(key) => {
                    arrived.entry(key.clone()).or_default().push(i);
                }
                _ => {}
            }
        }
    }
    for (key, from) in left {
        let [(a, uid)] = from[..] else { continue };
        let Some(&[b]) = arrived.get(&key).map(Vec::as_slice) else {
            continue;
        };
        if a == b {
            continue;
        }
        let Some(pair) = passes[a].base.pairs.get(&uid).cloned() else {
            continue;
        };
        remove_server_deletion(&mut passes[a].plan, uid);
        passes[b]
            .plan
            .actions
            .retain(|x| !matches!(x, Action::Append { key: k, .. } if *k == key));
        mark_moved(&mut passes[a].plan, Side::Local, &key, ChangeKind::Deleted);
        mark_moved(&mut passes[b].plan, Side::Local, &key, ChangeKind::New);
        moves.push(Move::OnServer {
            from: passes[a].base.folder.clone(),
            to: passes[b].base.folder.clone(),
            pair,
        });
    }
}

/// Server messages that left folder A (so A deletes the local copy) and appeared in B
/// with the same Message-ID and size.
fn server_moves(passes: &mut [FolderPass<'_>], moves: &mut Vec<Move>) {
    type Identity = (MessageId, u64);
    let mut left: BTreeMap<Identity, Vec<(usize, Pair)>> = BTreeMap::new();
    let mut arrived: BTreeMap<Identity, Vec<(usize, Uid)>> = BTreeMap::new();
    for (i, p) in passes.iter().enumerate() {
        let deleted: BTreeSet<&MaildirKey> = all_actions(&p.plan)
            .filter_map(|a| match a {
                Action::DeleteLocal { key } => Some(key),
                _ => None,
            })
            .collect();
        if !deleted.is_empty() {
            for pair in p.base.pairs.values() {
                if let Some(id) = &pair.message_id
                    && deleted.contains(&pair.key)
                {
                    left.entry((id.clone(), pair.remote_size))
                        .or_default()
                        .push((i, pair.clone()));
                }
            }
        }
        for a in all_actions(&p.plan) {
            if let Action::Fetch { uids } = a {
                for uid in uids.iter() {
                    // A re-fetch of a paired UID restores a conflict copy: not a move.
                    if p.base.pairs.contains_key(&uid) {
                        continue;
                    }
                    if let Some(m) = p.remote.listed().get(&uid)
                        && let Some(id) = &m.message_id
                    {
                        arrived
                            .entry((id.clone(), m.size))
                            .or_default()
                            .push((i, uid));
                    }
                }
            }
        }
    }
    for (identity, from) in left {
        let [(a, ref pair)] = from[..] else { continue };
        let Some(&[(b, uid)]) = arrived.get(&identity).map(Vec::as_slice) else {
            continue;
        };
        if a == b {
            continue;
        }
        let key = pair.key.clone();
        passes[a]
            .plan
            .actions
            .retain(|x| !matches!(x, Action::DeleteLocal { key: k } if *k == key));
        passes[a]
            .plan
            .held
            .retain(|x| !matches!(x, Action::DeleteLocal { key: k } if *k == key));
        remove_fetch(&mut passes[b].plan, uid);
        mark_moved(&mut passes[a].plan, Side::Server, &key, ChangeKind::Deleted);
        if let Some(c) = passes[b]
            .plan
            .changes
            .iter_mut()
            .find(|c| c.side == Side::Server && c.uid == Some(uid) && c.kind == ChangeKind::New)
        {
            c.outcome = Outcome::Moved;
        }
        moves.push(Move::Local {
            from: passes[a].base.folder.clone(),
            to: passes[b].base.folder.clone(),
            pair: pair.clone(),
            uid,
        });
    }
}

fn remove_server_deletion(plan: &mut Plan, uid: Uid) {
    for list in [&mut plan.actions, &mut plan.held] {
        for a in list.iter_mut() {
            if let Action::DeleteOnServer { uids } | Action::MoveToTrash { uids, .. } = a {
                uids.remove(uid);
            }
        }
        list.retain(|a| {
            !matches!(a, Action::DeleteOnServer { uids } | Action::MoveToTrash { uids, .. } if uids.is_empty())
        });
    }
}

fn remove_fetch(plan: &mut Plan, uid: Uid) {
    for a in plan.actions.iter_mut() {
        if let Action::Fetch { uids } = a {
            uids.remove(uid);
        }
    }
    plan.actions
        .retain(|a| !matches!(a, Action::Fetch { uids } if uids.is_empty()));
}

fn mark_moved(plan: &mut Plan, side: Side, key: &MaildirKey, kind: ChangeKind) {
    if let Some(c) = plan
        .changes
        .iter_mut()
        .find(|c| c.side == side && c.key.as_ref() == Some(key) && c.kind == kind)
    {
        c.outcome = Outcome::Moved;
    }
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
        let p = policy();
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
                policy: &p,
                plan: inbox.plan(&p),
            },
            FolderPass {
                remote: &ra,
                local: &la,
                base: &archive.base,
                policy: &p,
                plan: archive.plan(&p),
            },
        ];
        let moves = detect_moves(&mut passes, has_move);
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
