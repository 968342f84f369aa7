//! Rule 9: what happens to a folder that was synced before and is now missing on one
//! side. It is deleted on the other side only when that side holds nothing; a folder
//! with mail in it is never removed automatically, and a Maildir root that looks
//! unmounted never counts as "every folder deleted". A folder renamed on the server is
//! recognised first, so it is moved locally rather than kept and fetched again.

use std::collections::BTreeMap;

use super::{Direction, Pair};
use crate::model::{FolderName, MessageId, Uid, UidValidity};

/// What the engine knows about one folder that has state from an earlier pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderFacts {
    /// The server lists it (selectable).
    pub on_server: bool,
    /// Its Maildir folder exists (has `cur/`).
    pub on_local: bool,
    /// Messages paired in the base.
    pub paired: usize,
    /// Messages the server holds; asked only when it decides something.
    pub server_messages: Option<u32>,
    /// Messages in the Maildir folder (and files in its `tmp/`); asked only when needed.
    pub local_messages: Option<usize>,
    /// The Maildir root can be trusted to show deletions: it exists and at least one
    /// known folder is still in it. An empty or missing root is an unmounted disk until
    /// proven otherwise (rule 7).
    pub local_root_trusted: bool,
    /// A pass over the folder completed once, so both sides had it. A folder only ever
    /// seen by a dry run or an interrupted first pass was never made on one side: a
    /// side missing it deleted nothing.
    pub synced: bool,
}

/// The decision for one folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderFate {
    /// Both sides have it, or the ordinary folder pass decides (recreate a missing side
    /// and copy messages; or halt because pairs point into a missing Maildir folder).
    Sync,
    /// Deleted locally and empty on the server: `DELETE` it there, forget it.
    DeleteOnServer,
    /// Deleted on the server and empty locally: remove the Maildir folder, forget it.
    DeleteLocally,
    /// Gone from both sides: forget the state.
    Forget,
    /// Deleted on the server but the Maildir folder still holds messages, or the
    /// direction forbids the deletion: left alone, and said so.
    KeepLocal,
}

/// Which facts [`folder_fate`] needs counted: the server's message count for a folder
/// missing locally, the local one for a folder missing on the server.
pub fn needs_counts(f: &FolderFacts) -> (bool, bool) {
    let server = f.synced && f.on_server && !f.on_local && f.local_root_trusted && f.paired == 0;
    // (Paired or not: the files of its pairs may all be gone too.)
    let local = f.synced && !f.on_server && f.on_local;
    (server, local)
}

/// Decide one folder's fate (rule 9).
pub fn folder_fate(f: &FolderFacts, direction: Direction) -> FolderFate {
    if !f.synced && f.paired == 0 && !(f.on_server && f.on_local) {
        // Never in sync: forget the half-made state, and the folder is new again on
        // the side that has it (made on the other by the ordinary pass).
        return FolderFate::Forget;
    }
    match (f.on_server, f.on_local) {
        (true, true) => FolderFate::Sync,
        (false, false) => FolderFate::Forget,
        // Deleted locally. Paired messages in a missing folder halt in the folder pass
        // (rule 7); so does an untrusted root. Mail on the server comes back down.
        (true, false) => {
            let empty_server = f.server_messages == Some(0);
            if f.local_root_trusted && f.paired == 0 && empty_server && direction.sends() {
                FolderFate::DeleteOnServer
            } else {
                FolderFate::Sync
            }
        }
        // Deleted on the server. A Maildir folder with pairs but no file left is empty
        // too: the mail client deleted (or moved away) what the server then deleted with
        // the folder, so there is nothing to carry either way.
        (false, true) => {
            let empty_local = f.local_messages == Some(0);
            if f.synced && empty_local && direction.fetches() {
                FolderFate::DeleteLocally
            } else {
                FolderFate::KeepLocal
            }
        }
    }
}

/// Folders the server may have renamed: each synced folder gone from the server whose
/// Maildir folder is still there (`gone`), matched with a server folder that neither
/// the state nor the Maildir knows (`new`) by UIDVALIDITY, which a server keeps across
/// RENAME when it renames cheaply (Dovecot does). A value two new folders share matches
/// nothing. A value several gone folders share (a folder renamed while empty, whose old
/// Maildir folder rule 9 kept once mail was put in it, then renamed again) names each of
/// them: a match is only a candidate, and the caller takes the one gone folder whose
/// messages [`rename_confirmed`], none if several are.
pub fn rename_candidates(
    gone: &[(FolderName, UidValidity)],
    new: &[(FolderName, UidValidity)],
) -> Vec<(FolderName, FolderName)> {
    let mut by: BTreeMap<UidValidity, Vec<FolderName>> = BTreeMap::new();
    for (name, uv) in new {
        by.entry(*uv).or_default().push(name.clone());
    }
    let mut out: Vec<_> = gone
        .iter()
        .filter_map(|(old, uv)| match by.get(uv).map(Vec::as_slice) {
            Some([to]) => Some((old.clone(), to.clone())),
            _ => None,
        })
        .collect();
    // Parents first: moving a parent's directory may carry its children along.
    out.sort();
    out
}

/// Whether the renamed candidate holds the gone folder's messages: the identities
/// (Message-ID, size) the server gives for the paired UIDs agree with the pairs, with
/// no contradiction, at least one confirmed by Message-ID, and most of the pairs still
/// there. Anything less is left to rule 9 and a first contact, which never guess.
pub fn rename_confirmed(pairs: &[Pair], found: &BTreeMap<Uid, (Option<MessageId>, u64)>) -> bool {
    let mut seen = 0;
    let mut by_id = 0;
    for pair in pairs {
        let Some((id, size)) = found.get(&pair.uid) else {
            continue;
        };
        if *size != pair.remote_size || *id != pair.message_id {
            return false;
        }
        seen += 1;
        by_id += usize::from(id.is_some());
    }
    by_id > 0 && seen * 2 >= pairs.len()
}

/// Whether a renamed candidate that holds none of the gone folder's pairs still is that
/// folder: the server's QRESYNC answer (`vanished`, for the gone folder's UIDVALIDITY and
/// HIGHESTMODSEQ, `resynced` when valid) reports every pair expunged since, and its
/// HIGHESTMODSEQ moved past the stored one. The phone expunged a folder's last paired
/// messages and renamed it within seconds (the soak, seed 20261209 on b4cbcad): no
/// identity is left to confirm it by, but the server's own history of the folder is.
/// From rule 7's floor up, the folder is too big to take on that history alone (a
/// server with an inexact VANISHED and a shared UIDVALIDITY could make an unrelated
/// folder look like it, and its files would go): rule 9 keeps it instead.
pub fn rename_confirmed_by_expunges(
    pairs: &[Pair],
    found: &BTreeMap<Uid, (Option<MessageId>, u64)>,
    vanished: &std::collections::BTreeSet<Uid>,
    resynced: bool,
    moved_on: bool,
) -> bool {
    resynced
        && moved_on
        && !pairs.is_empty()
        && pairs.len() < super::MASS_DELETE_FLOOR
        && found.is_empty()
        && pairs.iter().all(|p| vanished.contains(&p.uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(on_server: bool, on_local: bool) -> FolderFacts {
        FolderFacts {
            on_server,
            on_local,
            paired: 0,
            server_messages: Some(0),
            local_messages: Some(0),
            local_root_trusted: true,
            synced: true,
        }
    }

    #[test]
    fn rule_9_a_folder_never_synced_is_forgotten_not_deleted() {
        // A dry run or an interrupted first pass left a row, but one side never had it.
        for (on_server, on_local) in [(true, false), (false, true), (false, false)] {
            let f = FolderFacts {
                synced: false,
                ..facts(on_server, on_local)
            };
            assert_eq!(
                folder_fate(&f, Direction::Both),
                FolderFate::Forget,
                "{f:?}"
            );
            assert_eq!(needs_counts(&f), (false, false));
        }
        assert_eq!(
            folder_fate(
                &FolderFacts {
                    synced: false,
                    ..facts(true, true)
                },
                Direction::Both
            ),
            FolderFate::Sync
        );
    }

    #[test]
    fn rule_9_an_empty_folder_deleted_locally_is_deleted_on_the_server() {
        assert_eq!(
            folder_fate(&facts(true, false), Direction::Both),
            FolderFate::DeleteOnServer
        );
    }

    #[test]
    fn rule_9_a_folder_deleted_locally_with_mail_on_the_server_is_never_deleted() {
        let f = FolderFacts {
            server_messages: Some(3),
            ..facts(true, false)
        };
        assert_eq!(folder_fate(&f, Direction::Both), FolderFate::Sync);
        // Unknown counts never read as empty.
        let f = FolderFacts {
            server_messages: None,
            ..facts(true, false)
        };
        assert_eq!(folder_fate(&f, Direction::Both), FolderFate::Sync);
    }

    #[test]
    fn rule_9_a_folder_with_paired_messages_is_never_deleted_for_a_missing_maildir() {
        let f = FolderFacts {
            paired: 1,
            ..facts(true, false)
        };
        assert_eq!(folder_fate(&f, Direction::Both), FolderFate::Sync);
        assert_eq!(needs_counts(&f), (false, false));
    }

    #[test]
    fn rule_7_an_untrusted_local_root_deletes_no_server_folder() {
        let f = FolderFacts {
            local_root_trusted: false,
            ..facts(true, false)
        };
        assert_eq!(folder_fate(&f, Direction::Both), FolderFate::Sync);
        assert_eq!(needs_counts(&f), (false, false));
    }

    #[test]
    fn rule_9_an_empty_folder_deleted_on_the_server_is_removed_locally() {
        assert_eq!(
            folder_fate(&facts(false, true), Direction::Both),
            FolderFate::DeleteLocally
        );
        assert_eq!(needs_counts(&facts(false, true)), (false, true));
    }

    #[test]
    fn rule_9_a_folder_deleted_on_the_server_with_local_mail_is_kept() {
        for f in [
            FolderFacts {
                local_messages: Some(2),
                ..facts(false, true)
            },
            FolderFacts {
                local_messages: None,
                ..facts(false, true)
            },
            FolderFacts {
                paired: 4,
                local_messages: Some(1),
                ..facts(false, true)
            },
        ] {
            assert_eq!(
                folder_fate(&f, Direction::Both),
                FolderFate::KeepLocal,
                "{f:?}"
            );
        }
    }

    /// The soak (seed 20261209 on 8ed40ea): the mail client deleted the folder's last file
    /// while the phone deleted the folder on the server. Its pairs made it "still holding
    /// messages", kept for the user to clear, and the client's deletion was never logged.
    #[test]
    fn rule_9_a_folder_deleted_on_the_server_whose_paired_files_are_gone_is_removed_locally() {
        let f = FolderFacts {
            paired: 4,
            local_messages: Some(0),
            ..facts(false, true)
        };
        assert_eq!(needs_counts(&f), (false, true));
        assert_eq!(folder_fate(&f, Direction::Both), FolderFate::DeleteLocally);
        assert_eq!(folder_fate(&f, Direction::Push), FolderFate::KeepLocal);
    }

    #[test]
    fn rule_9_one_way_directions_delete_only_in_their_direction() {
        assert_eq!(
            folder_fate(&facts(true, false), Direction::Pull),
            FolderFate::Sync,
            "pull never changes the server"
        );
        assert_eq!(
            folder_fate(&facts(false, true), Direction::Push),
            FolderFate::KeepLocal,
            "push never takes a server change to the Maildir"
        );
        assert_eq!(
            folder_fate(&facts(true, false), Direction::Push),
            FolderFate::DeleteOnServer
        );
        assert_eq!(
            folder_fate(&facts(false, true), Direction::Pull),
            FolderFate::DeleteLocally
        );
    }

    #[test]
    fn rule_9_every_combination_deletes_only_an_empty_side() {
        // Exhaustive over the facts that matter: a deletion never happens while the
        // side losing the folder has, or may have, a message, nor for a folder that was
        // never in sync.
        let counts = [None, Some(0), Some(1)];
        let mut cases = 0;
        for bits in 0..16u8 {
            let bit = |n: u8| bits & (1 << n) != 0;
            let (on_server, on_local, trusted, synced) = (bit(0), bit(1), bit(2), bit(3));
            for paired in [0, 1] {
                for server_messages in counts {
                    for local_messages in counts.map(|c| c.map(|n| n as usize)) {
                        for direction in [Direction::Both, Direction::Pull, Direction::Push] {
                            cases += 1;
                            let f = FolderFacts {
                                on_server,
                                on_local,
                                paired,
                                server_messages,
                                local_messages,
                                local_root_trusted: trusted,
                                synced,
                            };
                            match folder_fate(&f, direction) {
                                FolderFate::DeleteOnServer => {
                                    assert!(synced && server_messages == Some(0) && paired == 0);
                                    assert!(trusted && !on_local && direction.sends());
                                }
                                FolderFate::DeleteLocally => {
                                    assert!(synced && local_messages == Some(0));
                                    assert!(!on_server && direction.fetches());
                                }
                                FolderFate::Forget => {
                                    assert!(!(on_server && on_local));
                                    assert!(!synced || (!on_server && !on_local));
                                    assert!(paired == 0 || (!on_server && !on_local));
                                }
                                FolderFate::Sync => assert!(on_server),
                                FolderFate::KeepLocal => assert!(!on_server && on_local),
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 16 * 2 * 3 * 3 * 3);
    }

    #[test]
    fn a_rename_with_every_pair_expunged_is_confirmed_by_the_servers_history_alone() {
        let pair = |u: u32| {
            Pair::synced(
                Uid(u),
                crate::model::MaildirKey(format!("k{u}")),
                Default::default(),
                10,
                None,
            )
        };
        let pairs = [pair(1), pair(2)];
        let none = BTreeMap::new();
        let both: std::collections::BTreeSet<Uid> = [Uid(1), Uid(2)].into();
        assert!(rename_confirmed_by_expunges(
            &pairs, &none, &both, true, true
        ));
        // Not a valid incremental answer, or nothing changed since: no history to go by.
        assert!(!rename_confirmed_by_expunges(
            &pairs, &none, &both, false, true
        ));
        assert!(!rename_confirmed_by_expunges(
            &pairs, &none, &both, true, false
        ));
        // One pair not reported expunged, or still there: the identities decide.
        let one: std::collections::BTreeSet<Uid> = [Uid(1)].into();
        assert!(!rename_confirmed_by_expunges(
            &pairs, &none, &one, true, true
        ));
        let there = BTreeMap::from([(Uid(2), (None, 10))]);
        assert!(!rename_confirmed_by_expunges(
            &pairs, &there, &both, true, true
        ));
        assert!(!rename_confirmed_by_expunges(&[], &none, &both, true, true));
        // Too many to take on the server's history alone.
        let many: Vec<Pair> = (1..=10).map(pair).collect();
        let all = many.iter().map(|p| p.uid).collect();
        assert!(!rename_confirmed_by_expunges(
            &many, &none, &all, true, true
        ));
        assert!(rename_confirmed_by_expunges(
            &many[..9],
            &none,
            &all,
            true,
            true
        ));
    }

    fn uv(n: u32) -> UidValidity {
        UidValidity(n)
    }

    fn name(n: &str) -> FolderName {
        FolderName(n.into())
    }

    #[test]
    fn a_rename_matches_gone_and_new_by_uidvalidity_unique_among_the_new() {
        let gone = [
            (name("Old"), uv(7)),
            (name("Old/sub"), uv(8)),
            (name("X"), uv(9)),
        ];
        let new = [
            (name("New/sub"), uv(8)),
            (name("New"), uv(7)),
            (name("Y"), uv(10)),
        ];
        assert_eq!(
            rename_candidates(&gone, &new),
            vec![
                (name("Old"), name("New")),
                (name("Old/sub"), name("New/sub"))
            ]
        );
        // Two new folders with one value: nobody can tell which, so neither.
        let new = [(name("A"), uv(7)), (name("B"), uv(7))];
        assert!(rename_candidates(&gone, &new).is_empty());
        // Two gone folders with one value: both candidates, for their messages to tell.
        let gone = [(name("Old"), uv(7)), (name("Other"), uv(7))];
        assert_eq!(
            rename_candidates(&gone, &[(name("A"), uv(7))]),
            vec![(name("Old"), name("A")), (name("Other"), name("A"))]
        );
        assert!(rename_candidates(&[], &[(name("A"), uv(7))]).is_empty());
    }

    fn pair(uid: u32, id: Option<&str>, size: u64) -> Pair {
        Pair {
            uid: Uid(uid),
            key: crate::model::MaildirKey(format!("k{uid}")),
            remote_flags: Default::default(),
            local_flags: Default::default(),
            remote_size: size,
            local_size: size,
            message_id: id.map(|i| MessageId(i.into())),
            email_id: None,
        }
    }

    fn found(list: &[(u32, Option<&str>, u64)]) -> BTreeMap<Uid, (Option<MessageId>, u64)> {
        list.iter()
            .map(|(u, id, s)| (Uid(*u), (id.map(|i| MessageId(i.into())), *s)))
            .collect()
    }

    #[test]
    fn a_rename_is_confirmed_only_by_the_same_messages() {
        let pairs = [
            pair(1, Some("a@x"), 10),
            pair(2, Some("b@x"), 20),
            pair(3, None, 30),
        ];
        assert!(rename_confirmed(
            &pairs,
            &found(&[(1, Some("a@x"), 10), (2, Some("b@x"), 20), (3, None, 30)])
        ));
        // One expunged meanwhile: still most of them.
        assert!(rename_confirmed(
            &pairs,
            &found(&[(1, Some("a@x"), 10), (3, None, 30)])
        ));
        // A contradiction anywhere, too few left, or nothing confirmed by Message-ID.
        assert!(!rename_confirmed(
            &pairs,
            &found(&[(1, Some("a@x"), 10), (2, Some("c@x"), 20)])
        ));
        assert!(!rename_confirmed(
            &pairs,
            &found(&[(1, Some("a@x"), 11), (2, Some("b@x"), 20)])
        ));
        assert!(!rename_confirmed(&pairs, &found(&[(1, Some("a@x"), 10)])));
        assert!(!rename_confirmed(&pairs, &found(&[(3, None, 30)])));
        assert!(!rename_confirmed(&[], &found(&[])));
    }
}
