//! Table tests for every arm of the planner's match, the SYNC-RULES.md rule tests (named
//! after their rule), and property tests against the in-memory executor in `sim`.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::model::{Flag, Flags, FolderName, MaildirKey, ModSeq, Uid, UidValidity};

use super::actions::{Action, ChangeKind, ConflictKind, Halt, Outcome, Plan, Resolution, Side};
use super::policy::{DeleteVsFlag, Direction, Expunge, MASS_DELETE_FLOOR};
use super::sim::{LocalMsg, ServerMsg, World, policy};
use super::snapshot::{RemoteListing, RemoteMessage};
use super::uidset::UidSet;

/// `"FS+work+$Junk"`: Maildir letters, then keywords.
fn fl(s: &str) -> Flags {
    let mut parts = s.split('+');
    let mut flags: Flags = parts
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| Flag::from_maildir_letter(c).unwrap())
        .collect();
    for kw in parts {
        flags.insert_keyword(kw);
    }
    flags
}

fn key(w: &World, uid: u32) -> MaildirKey {
    w.base.pairs[&Uid(uid)].key.clone()
}

fn uids(list: &[u32]) -> UidSet {
    list.iter().copied().map(Uid).collect()
}

fn deletions(p: &Plan) -> Vec<&Action> {
    p.actions.iter().filter(|a| a.is_deletion()).collect()
}

/// Plan, apply, and check the folder is in sync and quiet afterwards.
fn pass_and_settle(w: &mut World, policy: &super::Policy) -> Plan {
    let p = w.pass(policy);
    w.check_in_sync().unwrap();
    let again = w.plan(policy);
    assert!(again.is_empty(), "replan not empty:\n{again}");
    p
}

// ---- one test per arm of the match -------------------------------------------------

#[test]
fn arm_paired_unchanged_on_both_sides_plans_nothing() {
    let w = World::synced(&[fl("S"), fl("FR"), fl("")], false);
    let p = w.plan(&policy());
    assert!(p.is_empty(), "{p}");
    assert_eq!(p.to_string(), "folder INBOX: in sync\n");
}

#[test]
fn arm_paired_flags_changed_on_both_sides_are_merged() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("FS");
    let k2 = key(&w, 2);
    w.local.get_mut(&k2).unwrap().flags = fl("RS");
    let p = w.plan(&policy());
    assert_eq!(
        p.actions,
        vec![
            Action::StoreFlags {
                uids: uids(&[2]),
                add: fl("R"),
                remove: fl(""),
                unchanged_since: None
            },
            Action::SetLocalFlags {
                key: key(&w, 1),
                flags: fl("FS")
            },
            Action::RecordFlags {
                uid: Uid(1),
                remote: fl("FS"),
                local: fl("FS")
            },
            Action::RecordFlags {
                uid: Uid(2),
                remote: fl("RS"),
                local: fl("RS")
            },
        ]
    );
    assert_eq!(p.changes.len(), 2);
    assert!(p.changes.iter().all(|c| c.outcome == Outcome::Propagated));
    pass_and_settle(&mut w, &policy());
}

#[test]
fn arm_paired_content_changed_keeps_both_versions() {
    let mut w = World::synced(&[fl("S")], false);
    let k = key(&w, 1);
    w.local.get_mut(&k).unwrap().size += 10;
    let p = w.plan(&policy());
    assert_eq!(
        p.actions,
        vec![
            Action::Unpair {
                uid: Uid(1),
                key: k.clone()
            },
            Action::Fetch { uids: uids(&[1]) },
            Action::Append {
                key: k.clone(),
                flags: fl("S")
            },
        ]
    );
    assert_eq!(p.conflicts.len(), 1);
    assert_eq!(p.conflicts[0].resolution, Resolution::KeptBoth);
    assert!(matches!(
        p.conflicts[0].kind,
        ConflictKind::ContentChangedLocally {
            base_size: 1001,
            size: 1011
        }
    ));
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.server.len(), 2);
    assert_eq!(w.local.len(), 2);
}

#[test]
fn arm_paired_deleted_locally_unchanged_on_server_deletes_on_server() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    let k = key(&w, 2);
    w.local.remove(&k);
    let p = w.plan(&policy());
    assert_eq!(p.actions, vec![Action::DeleteOnServer { uids: uids(&[2]) }]);
    assert_eq!(p.changes[0].kind, ChangeKind::Deleted);
    assert_eq!(p.changes[0].side, Side::Local);
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.server.len(), 1);
}

#[test]
fn arm_paired_deleted_on_server_unchanged_locally_deletes_locally() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    w.server.remove(&Uid(1));
    let p = w.plan(&policy());
    assert_eq!(p.actions, vec![Action::DeleteLocal { key: key(&w, 1) }]);
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.local.len(), 1);
}

#[test]
fn arm_paired_gone_on_both_sides_is_forgotten() {
    let mut w = World::synced(&[fl("S"), fl("")], false);
    let k = key(&w, 1);
    w.local.remove(&k);
    w.server.remove(&Uid(1));
    let p = w.plan(&policy());
    assert_eq!(
        p.actions,
        vec![Action::Forget {
            uid: Uid(1),
            key: k
        }]
    );
    assert!(
        p.changes
            .iter()
            .all(|c| c.outcome == Outcome::AlreadyInSync)
    );
    pass_and_settle(&mut w, &policy());
}

#[test]
fn arm_paired_unseen_in_unstable_scan_is_left_for_the_next_pass() {
    let mut w = World::synced(&[fl("S"), fl("")], false);
    let k = key(&w, 1);
    w.local.remove(&k);
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("FS");
    let mut local = w.local_snapshot();
    local.stable = false;
    let p = super::plan(&w.remote(), &local, &w.base, &policy(), super::Timestamp(0));
    assert!(p.is_empty(), "{p}");
}

#[test]
fn arm_paired_unseen_and_gone_on_server_is_left_too() {
    let mut w = World::synced(&[fl("S")], false);
    let k = key(&w, 1);
    w.local.remove(&k);
    w.server.remove(&Uid(1));
    let mut local = w.local_snapshot();
    local.stable = false;
    let p = super::plan(&w.remote(), &local, &w.base, &policy(), super::Timestamp(0));
    assert!(p.is_empty(), "{p}");
}

#[test]
fn a_base_pairing_one_key_twice_never_deletes() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    let k1 = key(&w, 1);
    let k2 = key(&w, 2);
    w.local.remove(&k2);
    w.base.pairs.get_mut(&Uid(2)).unwrap().key = k1;
    let p = w.plan(&policy());
    // The sizes differ, so it surfaces as a content conflict that keeps both copies.
    assert!(deletions(&p).is_empty(), "{p}");
}

#[test]
fn arm_new_on_server_is_fetched_unless_push() {
    let mut w = World::synced(&[fl("S")], false);
    for flags in [fl("F"), fl(""), fl("S+work")] {
        let uid = w.next_uid();
        w.server.insert(
            uid,
            ServerMsg {
                flags,
                size: 5,
                message_id: None,
            },
        );
    }
    let p = w.plan(&policy());
    assert_eq!(
        p.actions,
        vec![Action::Fetch {
            uids: uids(&[2, 3, 4])
        }]
    );
    assert!(p.to_string().contains("fetch UID 2:4 (3 message(s))"));
    let mut push = policy();
    push.direction = Direction::Push;
    let p = w.plan(&push);
    assert_eq!(p.actions.len(), 3);
    assert!(
        p.actions
            .iter()
            .all(|a| matches!(a, Action::KeepRemoteOnly { .. }))
    );
    pass_and_settle(&mut w, &policy());
    assert!(w.local.values().all(|m| m.flags.keywords().is_empty()));
}

#[test]
fn arm_new_locally_is_appended_unless_pull() {
    let mut w = World::synced(&[fl("S")], false);
    let k = MaildirKey("new1".into());
    w.local.insert(
        k.clone(),
        LocalMsg {
            flags: fl("DS"),
            size: 7,
            message_id: None,
        },
    );
    let p = w.plan(&policy());
    assert_eq!(
        p.actions,
        vec![Action::Append {
            key: k.clone(),
            flags: fl("DS")
        }]
    );
    let mut pull = policy();
    pull.direction = Direction::Pull;
    assert_eq!(
        w.plan(&pull).actions,
        vec![Action::KeepLocalOnly { key: k.clone() }]
    );
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.server.len(), 2);
}

#[test]
fn arm_remote_only_is_left_alone_and_dropped_when_gone() {
    let mut w = World::synced(&[fl("S")], false);
    w.server.insert(
        Uid(9),
        ServerMsg {
            flags: fl(""),
            size: 1,
            message_id: None,
        },
    );
    w.base.remote_only.insert(Uid(9));
    assert!(w.plan(&policy()).is_empty());
    w.server.remove(&Uid(9));
    assert_eq!(
        w.plan(&policy()).actions,
        vec![Action::DropRemoteOnly { uid: Uid(9) }]
    );
}

#[test]
fn arm_local_only_is_left_alone_and_dropped_when_gone_from_a_stable_scan() {
    let mut w = World::synced(&[fl("S")], false);
    let k = MaildirKey("mine".into());
    w.base.local_only.insert(k.clone());
    w.local.insert(
        k.clone(),
        LocalMsg {
            flags: fl(""),
            size: 1,
            message_id: None,
        },
    );
    assert!(w.plan(&policy()).is_empty());
    w.local.remove(&k);
    let mut unstable = w.local_snapshot();
    unstable.stable = false;
    let p = super::plan(
        &w.remote(),
        &unstable,
        &w.base,
        &policy(),
        super::Timestamp(0),
    );
    assert!(p.is_empty());
    assert_eq!(
        w.plan(&policy()).actions,
        vec![Action::DropLocalOnly { key: k }]
    );
}

// ---- SYNC-RULES.md ---------------------------------------------------------------------

#[test]
fn rule_06_no_deletion_from_incremental_listing() {
    let mut w = World::synced(&[fl("S"), fl("S"), fl("S")], false);
    // UID 2 changed, UID 3 vanished, UID 1 unmentioned (unchanged, not deleted).
    let mut remote = w.remote();
    remote.listing = RemoteListing::Changes {
        changed: BTreeMap::from([(
            Uid(2),
            RemoteMessage {
                flags: fl("FS"),
                size: 1002,
                message_id: None,
                email_id: None,
            },
        )]),
        vanished: BTreeSet::from([Uid(3)]),
    };
    let p = super::plan(
        &remote,
        &w.local_snapshot(),
        &w.base,
        &policy(),
        super::Timestamp(0),
    );
    assert_eq!(
        p.actions,
        vec![
            Action::SetLocalFlags {
                key: key(&w, 2),
                flags: fl("FS")
            },
            Action::RecordFlags {
                uid: Uid(2),
                remote: fl("FS"),
                local: fl("FS")
            },
            Action::DeleteLocal { key: key(&w, 3) },
        ]
    );
    // Unmentioned UID 1 with a local flag change: sent, never treated as gone.
    let k1 = key(&w, 1);
    w.local.get_mut(&k1).unwrap().flags = fl("RS");
    remote.listing = RemoteListing::Changes {
        changed: BTreeMap::new(),
        vanished: BTreeSet::new(),
    };
    let p = super::plan(
        &remote,
        &w.local_snapshot(),
        &w.base,
        &policy(),
        super::Timestamp(0),
    );
    assert!(deletions(&p).is_empty());
    assert!(matches!(p.actions[0], Action::StoreFlags { .. }));
}

#[test]
fn rule_06_no_deletion_from_unstable_scan() {
    let w = World::synced(&[fl("S"), fl("S"), fl("S")], false);
    let mut local = w.local_snapshot();
    local.messages.clear();
    local.stable = false;
    let p = super::plan(&w.remote(), &local, &w.base, &policy(), super::Timestamp(0));
    assert!(p.actions.is_empty(), "{p}");
    assert!(p.halt.is_none());
}

#[test]
fn rule_07_mass_delete_halts() {
    let mut w = World::synced(&vec![fl("S"); 20], false);
    for uid in 1..=15 {
        let k = key(&w, uid);
        w.local.remove(&k);
    }
    let p = w.plan(&policy());
    assert!(deletions(&p).is_empty(), "{p}");
    assert_eq!(
        p.halt,
        Some(Halt::MassDelete {
            side: Side::Server,
            count: 15,
            total: 20,
            confirm_command: "syncmail sync test --folder INBOX --confirm-delete".into()
        })
    );
    assert!(
        p.to_string()
            .contains("would delete 15 of 20 messages on the server")
    );
    // The change log says the deletions were held, not carried (the soak, hour on
    // b4cbcad: a held deletion was logged as propagated on every pass).
    let held = |p: &Plan| {
        p.changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .map(|c| c.outcome)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        held(&p),
        vec![Outcome::NotPropagated(super::plan::HELD); 15]
    );
    // The user confirms: the same pass now deletes.
    let mut confirmed = policy();
    confirmed.allow_mass_delete = true;
    let p = pass_and_settle(&mut w, &confirmed);
    assert_eq!(held(&p), vec![Outcome::Propagated; 15]);
    assert_eq!(deletions(&p).len(), 1);
    assert_eq!(w.server.len(), 5);
}

#[test]
fn rule_07_mass_delete_below_floor_or_share_proceeds() {
    // 9 of 10: below the floor.
    let mut w = World::synced(&vec![fl(""); 10], false);
    for uid in 1..MASS_DELETE_FLOOR as u32 {
        w.server.remove(&Uid(uid));
    }
    let p = w.plan(&policy());
    assert!(p.halt.is_none());
    assert_eq!(deletions(&p).len(), MASS_DELETE_FLOOR - 1);
    // 10 of 30: at the floor but within the share.
    let mut w = World::synced(&vec![fl(""); 30], false);
    for uid in 1..=10 {
        w.server.remove(&Uid(uid));
    }
    let p = w.plan(&policy());
    assert!(p.halt.is_none());
    assert_eq!(deletions(&p).len(), 10);
    // A folder quoted in the confirmation command.
    let mut w = World::synced(&vec![fl(""); 12], false);
    w.base.folder = FolderName("Sent Items".into());
    for uid in 1..=11 {
        w.server.remove(&Uid(uid));
    }
    let p = w.plan(&policy());
    match p.halt {
        Some(Halt::MassDelete {
            side: Side::Local,
            count: 11,
            total: 12,
            confirm_command,
        }) => assert_eq!(
            confirm_command,
            "syncmail sync test --folder 'Sent Items' --confirm-delete"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rule_07_emptied_maildir_never_deletes_server() {
    let mut w = World::synced(&[fl("S"), fl("S"), fl("F")], false);
    w.local.clear();
    let p = w.plan(&policy());
    assert!(matches!(
        p.halt,
        Some(Halt::Emptied {
            side: Side::Local,
            pairs: 3,
            ..
        })
    ));
    assert!(p.actions.iter().all(|a| !a.touches_server()), "{p}");
}

#[test]
fn rule_07_emptied_server_folder_never_deletes_locally() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    w.server.clear();
    let p = w.plan(&policy());
    assert!(matches!(
        p.halt,
        Some(Halt::Emptied {
            side: Side::Server,
            pairs: 2,
            ..
        })
    ));
    assert!(deletions(&p).is_empty());
}

#[test]
fn rule_08_server_deletion_is_flag_then_uid_expunge() {
    let mut w = World::synced(&vec![fl("S"); 12], false);
    for uid in [2, 3, 4, 9] {
        let k = key(&w, uid);
        w.local.remove(&k);
    }
    let p = w.plan(&policy());
    // Exactly our UIDs, one batch, as \Deleted + UID EXPUNGE.
    assert_eq!(
        p.actions,
        vec![Action::DeleteOnServer {
            uids: uids(&[2, 3, 4, 9])
        }]
    );
    assert!(
        p.to_string()
            .contains("delete UID 2:4,9 on the server (\\Deleted + UID EXPUNGE)")
    );
    let mut trash = policy();
    trash.trash = Some(FolderName("Trash".into()));
    assert_eq!(
        w.plan(&trash).actions,
        vec![Action::MoveToTrash {
            uids: uids(&[2, 3, 4, 9]),
            trash: FolderName("Trash".into())
        }]
    );
    // Syncing the trash folder itself: really delete.
    trash.trash = Some(FolderName("INBOX".into()));
    assert!(matches!(
        w.plan(&trash).actions[0],
        Action::DeleteOnServer { .. }
    ));
}

#[test]
fn rule_10_per_flag_three_way_merge() {
    // base R; local +S; server +F and -R -> both sides S,F without R.
    let mut w = World::synced(&[fl("R")], false);
    let k = key(&w, 1);
    w.local.get_mut(&k).unwrap().flags = fl("RS");
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("F");
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.server[&Uid(1)].flags, fl("FS"));
    assert_eq!(w.local[&k].flags, fl("FS"));
}

#[test]
fn rule_10_only_plus_minus_flags_never_replace() {
    let mut w = World::synced(&[fl("RS+work")], false);
    let k = key(&w, 1);
    w.local.get_mut(&k).unwrap().flags = fl("F");
    let mut remote = w.remote();
    remote.highest_modseq = Some(ModSeq(77));
    let p = super::plan(
        &remote,
        &w.local_snapshot(),
        &w.base,
        &policy(),
        super::Timestamp(0),
    );
    assert_eq!(
        p.actions[0],
        Action::StoreFlags {
            uids: uids(&[1]),
            add: fl("F"),
            remove: fl("RS"),
            unchanged_since: Some(ModSeq(77)),
        }
    );
    let text = p.to_string();
    let store = text.lines().find(|l| l.contains("store")).unwrap();
    assert_eq!(
        store,
        "  do: store UID 1 (UNCHANGEDSINCE 77) +FLAGS.SILENT (\\Flagged) -FLAGS.SILENT (\\Answered \\Seen)"
    );
    assert!(!text.contains(" FLAGS "), "{text}");
    // The keyword the Maildir cannot carry is neither removed nor replaced.
    assert!(
        text.contains("record UID 1 flags server F+work maildir F"),
        "{text}"
    );
}

#[test]
fn rule_10_keywords_are_never_removed_by_a_side_that_cannot_carry_them() {
    let mut w = World::synced(&[fl("S+work"), fl("+$Junk")], false);
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("S+work+urgent");
    let k2 = key(&w, 2);
    w.local.get_mut(&k2).unwrap().flags = fl("S");
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.server[&Uid(1)].flags, fl("S+work+urgent"));
    assert_eq!(w.server[&Uid(2)].flags, fl("S+$Junk"));
}

#[test]
fn rule_10_keywords_travel_when_the_maildir_carries_them() {
    let mut w = World::synced(&[fl("S+work")], true);
    let k = key(&w, 1);
    w.local.get_mut(&k).unwrap().flags = fl("S+home");
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.server[&Uid(1)].flags, fl("S+home"));
}

#[test]
fn rule_10_keyword_set_on_one_side_removed_on_the_other_is_a_conflict() {
    // Relative to different bases: the server's base lacks `work` (left unsent during a
    // pull period), the Maildir's base has it.
    let mut w = World::synced(&[fl("S")], true);
    let k = key(&w, 1);
    w.base.pairs.get_mut(&Uid(1)).unwrap().local_flags = fl("S+work");
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("S+work");
    let p = w.plan(&policy());
    assert_eq!(p.conflicts.len(), 1);
    assert_eq!(
        p.conflicts[0].kind,
        ConflictKind::SetVsRemoved {
            flag: fl("+work"),
            set_on: Side::Server
        }
    );
    assert_eq!(p.conflicts[0].resolution, Resolution::SetWins);
    assert!(
        p.to_string()
            .contains("+work set on server, removed on maildir => set on both sides")
    );
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.local[&k].flags, fl("S+work"));
}

#[test]
fn rule_11_delete_vs_flag_default_keeps_flagged() {
    // Deleted locally, flagged on the server meanwhile: kept and fetched again.
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    let k = key(&w, 1);
    w.local.remove(&k);
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("FS");
    let p = w.plan(&policy());
    assert_eq!(
        p.actions,
        vec![
            Action::Unpair {
                uid: Uid(1),
                key: k.clone()
            },
            Action::Fetch { uids: uids(&[1]) }
        ]
    );
    assert_eq!(p.conflicts.len(), 1);
    let c = &p.conflicts[0];
    assert_eq!(c.resolution, Resolution::KeptAndRestored);
    assert_eq!(
        c.kind,
        ConflictKind::DeleteVsChange {
            deleted_on: Side::Local,
            added: fl("F"),
            removed: fl(""),
            content_changed: false
        }
    );
    assert_eq!(c.at, super::Timestamp(1_700_000_000));
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.local.values().filter(|m| m.flags == fl("FS")).count(), 1);
}

#[test]
fn rule_11_delete_vs_flag_default_deletion_wins_when_not_flagged() {
    let mut w = World::synced(&[fl(""), fl("")], false);
    let k = key(&w, 1);
    w.local.remove(&k);
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("S");
    let p = w.plan(&policy());
    assert_eq!(p.actions, vec![Action::DeleteOnServer { uids: uids(&[1]) }]);
    assert_eq!(p.conflicts[0].resolution, Resolution::DeletionWins);
    assert!(
        p.changes
            .iter()
            .any(|c| c.side == Side::Server && c.outcome == Outcome::Conflict)
    );
}

#[test]
fn rule_11_server_deletion_vs_local_flag_reappends_flagged() {
    let mut w = World::synced(&[fl(""), fl("")], false);
    let k = key(&w, 2);
    w.server.remove(&Uid(2));
    w.local.get_mut(&k).unwrap().flags = fl("F");
    let p = w.plan(&policy());
    assert_eq!(
        p.actions,
        vec![
            Action::Unpair {
                uid: Uid(2),
                key: k.clone()
            },
            Action::Append {
                key: k.clone(),
                flags: fl("F")
            }
        ]
    );
    assert_eq!(p.conflicts[0].resolution, Resolution::KeptAndRestored);
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.server.len(), 2);
}

#[test]
fn rule_11_delete_wins_and_keep_changed_policies() {
    let mut w = World::synced(&[fl(""), fl("")], false);
    let k = key(&w, 1);
    w.local.remove(&k);
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("F");
    let mut p = policy();
    p.delete_vs_flag = DeleteVsFlag::DeleteWins;
    assert_eq!(
        w.plan(&p).actions,
        vec![Action::DeleteOnServer { uids: uids(&[1]) }]
    );
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("S");
    p.delete_vs_flag = DeleteVsFlag::KeepChanged;
    let plan = w.plan(&p);
    assert!(plan.actions.contains(&Action::Fetch { uids: uids(&[1]) }));
    assert_eq!(plan.conflicts[0].resolution, Resolution::KeptAndRestored);
}

#[test]
fn rule_11_server_deletion_vs_edited_file_keeps_the_file() {
    let mut w = World::synced(&[fl("")], false);
    let k = key(&w, 1);
    w.server.remove(&Uid(1));
    w.local.get_mut(&k).unwrap().size += 3;
    let mut p = policy();
    p.delete_vs_flag = DeleteVsFlag::DeleteWins;
    let plan = w.plan(&p);
    assert!(deletions(&plan).is_empty());
    assert!(matches!(
        plan.conflicts[0].kind,
        ConflictKind::DeleteVsChange {
            content_changed: true,
            ..
        }
    ));
}

#[test]
fn rule_13_uidvalidity_change_repairs_by_message_id() {
    let mut w = World::synced(&[fl("S"), fl("F"), fl("")], false);
    // The server renumbered everything; meanwhile message 2 got \Seen.
    let old: Vec<(Uid, ServerMsg)> = std::mem::take(&mut w.server).into_iter().collect();
    w.uid_validity = UidValidity(2);
    w.uid_next = 100;
    for (_, mut m) in old {
        if m.flags == fl("F") {
            m.flags = fl("FS");
        }
        let uid = w.next_uid();
        w.server.insert(uid, m);
    }
    let p = w.plan(&policy());
    let Action::RepairUids(r) = &p.actions[0] else {
        panic!("{p}")
    };
    assert_eq!(
        r.map,
        BTreeMap::from([(Uid(1), Uid(100)), (Uid(2), Uid(101)), (Uid(3), Uid(102))])
    );
    assert!(p.halt.is_none());
    assert!(deletions(&p).is_empty());
    assert!(!p.actions.iter().any(|a| matches!(a, Action::Fetch { .. })));
    assert!(matches!(
        p.conflicts[0].resolution,
        Resolution::Repaired {
            confirmed: 3,
            unmatched: 0
        }
    ));
    pass_and_settle(&mut w, &policy());
    assert_eq!(w.local.len(), 3);
    assert_eq!(w.base.uid_validity, Some(UidValidity(2)));
}

fn renumber(w: &mut World) {
    w.renumber();
}

#[test]
fn rule_13_uidvalidity_change_with_emptied_folder_halts() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    w.server.clear();
    w.uid_validity = UidValidity(9);
    let p = w.plan(&policy());
    assert!(p.actions.is_empty());
    let Some(Halt::UidValidity {
        old,
        new,
        reason,
        confirm_command,
    }) = &p.halt
    else {
        panic!("{p}")
    };
    assert_eq!((*old, *new), (UidValidity(1), UidValidity(9)));
    assert!(reason.contains("empty"), "{reason}");
    assert_eq!(
        confirm_command.as_deref(),
        Some("syncmail sync test --folder INBOX --confirm-repair")
    );
    assert_eq!(p.conflicts[0].resolution, Resolution::Halted);
}

fn key_of_local_only(w: &World) -> MaildirKey {
    w.base
        .local_only
        .iter()
        .next()
        .cloned()
        .expect("a local-only key")
}

fn accepting() -> super::Policy {
    let mut p = policy();
    p.accept_repair = true;
    p
}

#[test]
fn rule_13_a_confirmed_repair_keeps_the_confirmed_pairs_however_few() {
    // Another client expunged one message while the server renumbered the folder: one of
    // three pairs is unconfirmed (its file is still here), which halts; the user's
    // confirmation re-pairs the other two and keeps that file, deleting nothing.
    let mut w = World::synced(&[fl("S"), fl("S"), fl("")], false);
    let kept = key(&w, 3);
    w.server.remove(&Uid(3));
    renumber(&mut w);
    let halted = w.plan(&policy());
    let Some(Halt::UidValidity {
        confirm_command: Some(command),
        ..
    }) = &halted.halt
    else {
        panic!("{halted}")
    };
    assert!(halted.to_string().contains(command.as_str()), "{halted}");
    let p = pass_and_settle(&mut w, &accepting());
    assert!(p.halt.is_none(), "{p}");
    assert!(deletions(&p).is_empty(), "{p}");
    assert_eq!(w.base.pairs.len(), 2);
    assert!(w.base.local_only.contains(&kept));
    assert_eq!(w.local.len(), 3);
    assert_eq!(w.server.len(), 2);
}

#[test]
fn rule_13_a_pair_moved_out_to_another_folder_is_not_counted_unconfirmed() {
    // Another device moved one of two messages out while the server renumbered the
    // folder: alone, one of two pairs unconfirmed halts (the soak, seed 20261205 on
    // 71c9f28). The pass saw its Message-ID and size arrive in one other folder: a move.
    let mut w = World::synced(&[fl("S"), fl("")], false);
    let moved = w.base.pairs[&Uid(2)].clone();
    w.server.remove(&Uid(2));
    renumber(&mut w);
    let absent = super::absent_from_listing(&w.remote(), &w.local_snapshot(), &w.base);
    assert_eq!(absent, vec![&moved]);
    assert!(halted_on_uidvalidity(&w.plan(&policy())));
    let mut told = policy();
    told.moved_out = BTreeSet::from([(moved.message_id.clone().unwrap(), moved.remote_size)]);
    let p = w.plan(&told);
    assert!(p.halt.is_none(), "{p}");
    let Action::RepairUids(r) = &p.actions[0] else {
        panic!("{p}")
    };
    assert_eq!(r.map.len(), 1);
    assert_eq!(r.unmatched, BTreeSet::from([moved.key.clone()]));
    assert!(deletions(&p).is_empty(), "{p}");
    // Another message's arrival elsewhere is no such evidence.
    let mut other = policy();
    other.moved_out = BTreeSet::from([(moved.message_id.clone().unwrap(), moved.remote_size + 1)]);
    assert!(halted_on_uidvalidity(&w.plan(&other)));
    // Nor is it for a message the server still lists here.
    let mut w = World::synced(&[fl("S"), fl("")], false);
    renumber(&mut w);
    assert!(super::absent_from_listing(&w.remote(), &w.local_snapshot(), &w.base).is_empty());
    // And the only message of a folder moved out leaves nothing to doubt.
    let mut w = World::synced(&[fl("S")], false);
    let only = w.base.pairs[&Uid(1)].clone();
    w.server.clear();
    renumber(&mut w);
    assert!(halted_on_uidvalidity(&w.plan(&policy())));
    let mut told = policy();
    told.moved_out = BTreeSet::from([(only.message_id.clone().unwrap(), only.remote_size)]);
    let p = w.plan(&told);
    assert!(p.halt.is_none(), "{p}");
    assert!(deletions(&p).is_empty(), "{p}");
}

#[test]
fn rule_13_a_message_gone_from_both_sides_is_no_evidence_against_the_repairing() {
    // The message was moved out (or deleted) on both sides while the server renumbered
    // the folder: nothing to pair, nothing to doubt. The others re-pair without a halt.
    let mut w = World::synced(&[fl("S"), fl("S"), fl("")], false);
    let gone = key(&w, 3);
    w.server.remove(&Uid(3));
    w.local.remove(&gone);
    renumber(&mut w);
    let p = pass_and_settle(&mut w, &policy());
    assert!(p.halt.is_none(), "{p}");
    assert!(deletions(&p).is_empty(), "{p}");
    assert_eq!(w.base.pairs.len(), 2);
    assert_eq!((w.local.len(), w.server.len()), (2, 2));
    // A file merely unseen (an unstable scan) is not "gone": that still halts.
    let mut w = World::synced(&[fl("S"), fl("S"), fl("")], false);
    let gone = key(&w, 3);
    w.server.remove(&Uid(3));
    w.local.remove(&gone);
    renumber(&mut w);
    let mut local = w.local_snapshot();
    local.stable = false;
    let p = super::plan(&w.remote(), &local, &w.base, &policy(), super::Timestamp(0));
    assert!(matches!(p.halt, Some(Halt::UidValidity { .. })), "{p}");
}

#[test]
fn rule_13_a_confirmed_repair_deletes_on_the_server_what_left_the_maildir() {
    // The client moved one message out of the folder while its UIDVALIDITY changed: once
    // the re-pairing is accepted, its pair is confirmed on the server and the local
    // deletion reaches the server like any other.
    // The other client moved another one out on the server: unconfirmed, it stays in the
    // Maildir as it is.
    let mut w = World::synced(&[fl("S"), fl("S"), fl("")], false);
    w.server.remove(&Uid(2));
    let moved = key(&w, 3);
    w.local.remove(&moved);
    renumber(&mut w);
    assert!(w.plan(&policy()).halt.is_some());
    let p = pass_and_settle(&mut w, &accepting());
    assert!(p.halt.is_none(), "{p}");
    assert_eq!(w.server.len(), 1, "{p}");
    assert_eq!(w.local.len(), 2);
    assert!(w.local.contains_key(&key_of_local_only(&w)));
}

#[test]
fn rule_13_a_contradiction_halts_even_when_the_user_confirms() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    renumber(&mut w);
    let dup = w.server.values().next().unwrap().clone();
    let uid = w.next_uid();
    w.server.insert(uid, dup);
    let p = w.plan(&accepting());
    assert!(
        matches!(
            &p.halt,
            Some(Halt::UidValidity {
                confirm_command: None,
                ..
            })
        ),
        "{p}"
    );
    assert!(p.actions.is_empty());
}

#[test]
fn rule_13_uidvalidity_change_with_ambiguous_message_id_halts() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    renumber(&mut w);
    let dup = w.server.values().next().unwrap().clone();
    let uid = w.next_uid();
    w.server.insert(uid, dup);
    let p = w.plan(&policy());
    assert!(p.actions.is_empty());
    assert!(
        matches!(&p.halt, Some(Halt::UidValidity { reason, .. }) if reason.contains("matches 2"))
    );
}

#[test]
fn rule_13_uidvalidity_change_with_size_contradiction_halts() {
    let mut w = World::synced(&[fl("S"), fl("S")], false);
    renumber(&mut w);
    w.server.values_mut().next().unwrap().size += 1;
    let p = w.plan(&policy());
    assert!(matches!(&p.halt, Some(Halt::UidValidity { reason, .. }) if reason.contains("size")));
}

#[test]
fn rule_13_uidvalidity_change_without_enough_confirmed_pairs_halts() {
    let mut w = World::synced(&[fl("S"), fl("S"), fl("")], false);
    for p in w.base.pairs.values_mut() {
        p.message_id = None;
    }
    renumber(&mut w);
    assert!(matches!(
        w.plan(&policy()).halt,
        Some(Halt::UidValidity { .. })
    ));
    // One of three unconfirmed is more than the tolerated share.
    let mut w = World::synced(&[fl("S"), fl("S"), fl("")], false);
    w.base.pairs.get_mut(&Uid(3)).unwrap().message_id = None;
    renumber(&mut w);
    assert!(matches!(
        w.plan(&policy()).halt,
        Some(Halt::UidValidity { .. })
    ));
}

#[test]
fn rule_13_uidvalidity_change_keeps_unconfirmed_copies_local_only() {
    let mut w = World::synced(&vec![fl("S"); 20], false);
    w.base.pairs.get_mut(&Uid(20)).unwrap().message_id = None;
    let k20 = key(&w, 20);
    renumber(&mut w);
    let p = pass_and_settle(&mut w, &policy());
    assert!(deletions(&p).is_empty());
    assert!(w.base.local_only.contains(&k20));
    assert!(w.local.contains_key(&k20));
}

#[test]
fn rule_13_incremental_listing_across_uidvalidity_change_halts() {
    let w = World::synced(&[fl("S")], false);
    let mut remote = w.remote();
    remote.uid_validity = UidValidity(5);
    remote.listing = RemoteListing::Changes {
        changed: BTreeMap::new(),
        vanished: BTreeSet::new(),
    };
    let p = super::plan(
        &remote,
        &w.local_snapshot(),
        &w.base,
        &policy(),
        super::Timestamp(0),
    );
    assert!(matches!(p.halt, Some(Halt::UidValidity { .. })));
    assert!(p.actions.is_empty());
}

// ---- direction and expunge policies --------------------------------------------------

#[test]
fn direction_pull_never_writes_the_server_and_goes_quiet() {
    let mut pull = policy();
    pull.direction = Direction::Pull;
    let mut w = World::synced(&[fl(""), fl(""), fl("")], false);
    let (k1, k2) = (key(&w, 1), key(&w, 2));
    w.local.get_mut(&k1).unwrap().flags = fl("S");
    w.local.remove(&k2);
    w.local.insert(
        MaildirKey("draft".into()),
        LocalMsg {
            flags: fl("D"),
            size: 3,
            message_id: None,
        },
    );
    w.server.get_mut(&Uid(3)).unwrap().flags = fl("F");
    let before = w.server.clone();
    let p = w.pass(&pull);
    assert!(p.actions.iter().all(|a| !a.touches_server()), "{p}");
    assert_eq!(w.server, before);
    assert_eq!(w.local[&key(&w, 3)].flags, fl("F"));
    assert!(w.plan(&pull).is_empty(), "{}", w.plan(&pull));
    // A later server change still reaches the Maildir, merged with the kept local one.
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("R");
    w.pass(&pull);
    assert_eq!(w.local[&k1].flags, fl("RS"));
    assert!(w.plan(&pull).is_empty());
}

#[test]
fn direction_push_never_writes_the_maildir_and_goes_quiet() {
    let mut push = policy();
    push.direction = Direction::Push;
    let mut w = World::synced(&[fl(""), fl(""), fl("")], false);
    let k1 = key(&w, 1);
    w.server.get_mut(&Uid(1)).unwrap().flags = fl("S");
    w.server.remove(&Uid(2));
    let uid = w.next_uid();
    w.server.insert(
        uid,
        ServerMsg {
            flags: fl(""),
            size: 3,
            message_id: None,
        },
    );
    let k3 = key(&w, 3);
    w.local.get_mut(&k3).unwrap().flags = fl("F");
    let before = w.local.clone();
    let p = w.pass(&push);
    assert!(p.actions.iter().all(|a| !a.touches_local()), "{p}");
    assert_eq!(w.local, before);
    assert_eq!(w.server[&Uid(3)].flags, fl("F"));
    assert_eq!(w.local[&k1].flags, fl(""));
    assert!(w.plan(&push).is_empty());
}

#[test]
fn expunge_none_records_deletions_and_removes_nothing() {
    let mut p = policy();
    p.expunge = Expunge::None;
    let mut w = World::synced(&[fl(""), fl("")], false);
    let k1 = key(&w, 1);
    w.local.remove(&k1);
    w.server.remove(&Uid(2));
    let plan = w.pass(&p);
    assert!(deletions(&plan).is_empty());
    assert!(
        plan.changes
            .iter()
            .all(|c| matches!(c.outcome, Outcome::NotPropagated(_)))
    );
    assert_eq!((w.server.len(), w.local.len()), (1, 1));
    assert!(w.plan(&p).is_empty());
}

#[test]
fn plans_are_deterministic_and_print_the_same() {
    let mut w = World::synced(&vec![fl(""); 8], false);
    for uid in [1, 2, 3, 5] {
        w.server.get_mut(&Uid(uid)).unwrap().flags = fl("S");
    }
    for uid in [6, 7] {
        let k = key(&w, uid);
        w.local.get_mut(&k).unwrap().flags = fl("F");
    }
    let (a, b) = (w.plan(&policy()), w.plan(&policy()));
    assert_eq!(a, b);
    let text = a.to_string();
    assert_eq!(text, b.to_string());
    assert!(
        text.contains("change: server UID 1 / k0001: flags +S, propagated\n"),
        "{text}"
    );
    assert!(
        text.contains("store UID 6:7 +FLAGS.SILENT (\\Flagged)"),
        "{text}"
    );
    assert!(
        text.starts_with("folder INBOX: 11 action(s), 6 change(s), 0 conflict(s)\n"),
        "{text}"
    );
}

// ---- property tests ---------------------------------------------------------------------

/// One thing a user or another client does to one side between passes.
#[derive(Clone, Debug)]
enum Edit {
    ServerAdd(u8),
    ServerDelete(usize),
    ServerFlag(usize, u8, bool),
    LocalAdd(u8),
    LocalDelete(usize),
    LocalFlag(usize, u8, bool),
    LocalContent(usize),
    /// The server changes UIDVALIDITY and renumbers (never while a pass runs).
    ServerRenumber,
}

fn flags_of(bits: u8) -> Flags {
    let mut f: Flags = Flag::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, f)| f)
        .collect();
    if bits & 0x40 != 0 {
        f.insert_keyword("work");
    }
    if bits & 0x80 != 0 {
        f.insert_keyword("$Junk");
    }
    f
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => any::<u8>().prop_map(Edit::ServerAdd),
        6 => any::<usize>().prop_map(Edit::ServerDelete),
        6 => (any::<usize>(), 0u8..8, any::<bool>()).prop_map(|(i, f, on)| Edit::ServerFlag(i, f, on)),
        6 => any::<u8>().prop_map(Edit::LocalAdd),
        6 => any::<usize>().prop_map(Edit::LocalDelete),
        6 => (any::<usize>(), 0u8..8, any::<bool>()).prop_map(|(i, f, on)| Edit::LocalFlag(i, f, on)),
        6 => any::<usize>().prop_map(Edit::LocalContent),
        1 => Just(Edit::ServerRenumber),
    ]
}

fn set_bit(flags: &mut Flags, bit: u8, on: bool) {
    match bit {
        0..=5 => flags.set(Flag::ALL[bit as usize], on),
        _ => {
            let kw = if bit == 6 { "work" } else { "$Junk" };
            if on {
                flags.insert_keyword(kw);
            } else {
                flags.remove_keyword(kw);
            }
        }
    }
}

/// Apply an edit to the world; `concurrent` marks what it touched as changed since the
/// observation (so the executor's guarded writes fail on it).
fn apply_edit(w: &mut World, e: &Edit, concurrent: bool) {
    match e {
        Edit::ServerRenumber => {
            if !concurrent {
                w.renumber();
            }
        }
        Edit::ServerAdd(bits) => {
            let uid = w.next_uid();
            let message_id = Some(w.fresh_message_id());
            w.server.insert(
                uid,
                ServerMsg {
                    flags: flags_of(*bits),
                    size: 500 + u64::from(*bits),
                    message_id,
                },
            );
        }
        Edit::ServerDelete(i) => {
            if let Some(&uid) = w.server.keys().nth(i % w.server.len().max(1)) {
                w.server.remove(&uid);
                if concurrent {
                    w.touched_uids.insert(uid);
                }
            }
        }
        Edit::ServerFlag(i, bit, on) => {
            let n = w.server.len().max(1);
            if let Some((&uid, m)) = w.server.iter_mut().nth(i % n) {
                set_bit(&mut m.flags, *bit, *on);
                if concurrent {
                    w.touched_uids.insert(uid);
                }
            }
        }
        Edit::LocalAdd(bits) => {
            let key = w.fresh_key("n");
            let message_id = Some(w.fresh_message_id());
            let flags = w.storable(&flags_of(*bits));
            w.local.insert(
                key,
                LocalMsg {
                    flags,
                    size: 700 + u64::from(*bits),
                    message_id,
                },
            );
        }
        Edit::LocalDelete(i) => {
            if let Some(k) = w.local.keys().nth(i % w.local.len().max(1)).cloned() {
                w.local.remove(&k);
                if concurrent {
                    w.touched_keys.insert(k);
                }
            }
        }
        Edit::LocalFlag(i, bit, on) => {
            let carries = w.carries_keywords;
            let n = w.local.len().max(1);
            if let Some((k, m)) = w.local.iter_mut().nth(i % n)
                && (*bit < 6 || carries)
            {
                set_bit(&mut m.flags, *bit, *on);
                if concurrent {
                    w.touched_keys.insert(k.clone());
                }
            }
        }
        Edit::LocalContent(i) => {
            let n = w.local.len().max(1);
            if let Some((k, m)) = w.local.iter_mut().nth(i % n) {
                m.size += 1;
                if concurrent {
                    w.touched_keys.insert(k.clone());
                }
            }
        }
    }
}

fn world() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec(any::<u8>(), 0..12),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(bits, kw, incremental)| {
            let flags: Vec<Flags> = bits.into_iter().map(flags_of).collect();
            let mut w = World::synced(&flags, kw);
            w.incremental = incremental;
            w
        })
}

/// A UIDVALIDITY change that could not be re-paired stops the folder with no action;
/// nothing more can converge until a human looks.
fn halted_on_uidvalidity(plan: &Plan) -> bool {
    matches!(plan.halt, Some(Halt::UidValidity { .. }))
}

fn confirmed_policy() -> super::Policy {
    let mut p = policy();
    p.allow_mass_delete = true;
    p
}

/// Any two-way policy the user can configure, deletions confirmed.
fn any_policy() -> impl Strategy<Value = super::Policy> {
    (
        prop_oneof![
            Just(Expunge::Both),
            Just(Expunge::Server),
            Just(Expunge::Local),
            Just(Expunge::None)
        ],
        prop_oneof![
            Just(DeleteVsFlag::DeleteWinsUnlessFlagged),
            Just(DeleteVsFlag::DeleteWins),
            Just(DeleteVsFlag::KeepChanged)
        ],
        any::<bool>(),
    )
        .prop_map(|(expunge, delete_vs_flag, trash)| {
            let mut p = confirmed_policy();
            p.expunge = expunge;
            p.delete_vs_flag = delete_vs_flag;
            p.trash = trash.then(|| FolderName("Trash".into()));
            p
        })
}

/// Rule 11's recorded conflict or a propagated deletion must explain every message that
/// left a side: it was paired, and the other side no longer had it.
fn check_no_silent_loss(before: &World, after: &World, plan: &Plan) -> Result<(), String> {
    // Judge against the base the plan used: re-paired when the UIDVALIDITY changed.
    let mut before = before.clone();
    if let Some(Action::RepairUids(r)) = plan.actions.first() {
        before.base = super::repair::apply_repair(&before.base, r);
    }
    let before = &before;
    let local_before: BTreeSet<&MaildirKey> = before.local.keys().collect();
    for (uid, m) in &before.server {
        if after.server.contains_key(uid) {
            continue;
        }
        let pair = before
            .base
            .pairs
            .get(uid)
            .ok_or(format!("unpaired UID {uid} vanished from the server"))?;
        if local_before.contains(&pair.key) {
            return Err(format!(
                "UID {uid} deleted on the server though still local"
            ));
        }
        let changed = m.flags != pair.remote_flags;
        if changed && !plan.conflicts.iter().any(|c| c.uid == Some(*uid)) {
            return Err(format!(
                "changed UID {uid} deleted without a conflict record"
            ));
        }
    }
    for (key, m) in &before.local {
        if after.local.contains_key(key) {
            continue;
        }
        let pair = before
            .base
            .pairs
            .values()
            .find(|p| p.key == *key)
            .ok_or(format!("unpaired {key} vanished from the maildir"))?;
        if before.server.contains_key(&pair.uid) {
            return Err(format!("{key} deleted locally though still on the server"));
        }
        let changed = m.flags != pair.local_flags || m.size != pair.local_size;
        if changed && !plan.conflicts.iter().any(|c| c.key.as_ref() == Some(key)) {
            return Err(format!("changed {key} deleted without a conflict record"));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// (1) convergence, (2) no silent loss, (3) idempotence, for one round of edits.
    #[test]
    fn prop_one_pass_converges_loses_nothing_and_is_idempotent(
        mut w in world(),
        edits in proptest::collection::vec(edit(), 0..12),
        policy in any_policy(),
    ) {
        for e in &edits {
            apply_edit(&mut w, e, false);
        }
        let before = w.clone();
        let plan = w.plan(&policy);
        if halted_on_uidvalidity(&plan) {
            prop_assert!(plan.actions.is_empty());
            return Ok(());
        }
        w.apply(&plan);
        prop_assert!(w.check_in_sync().is_ok(), "{:?}\n{}", w.check_in_sync(), plan);
        let again = w.plan(&policy);
        prop_assert!(again.is_empty(), "replan:\n{}\nafter:\n{}", again, plan);
        if let Err(e) = check_no_silent_loss(&before, &w, &plan) {
            prop_assert!(false, "{}\n{}", e, plan);
        }
        let once = w.clone();
        w.apply(&plan);
        prop_assert_eq!(&w, &once);
    }

    /// (4) Random edits on both sides between passes, and while a pass runs (its guarded
    /// writes then fail), still converge once the edits stop.
    #[test]
    fn prop_interleaved_edits_converge(
        mut w in world(),
        rounds in proptest::collection::vec(
            (proptest::collection::vec(edit(), 0..6), proptest::collection::vec(edit(), 0..3)),
            1..5,
        ),
        policy in any_policy(),
    ) {
        for (between, during) in &rounds {
            for e in between {
                apply_edit(&mut w, e, false);
            }
            let before = w.clone();
            let plan = w.plan(&policy);
            if halted_on_uidvalidity(&plan) {
                prop_assert!(plan.actions.is_empty());
                return Ok(());
            }
            w.touched_uids.clear();
            w.touched_keys.clear();
            for e in during {
                apply_edit(&mut w, e, true);
            }
            let during_edits = w.clone();
            w.apply(&plan);
            if during.is_empty() {
                if let Err(e) = check_no_silent_loss(&before, &w, &plan) {
                    prop_assert!(false, "{}\n{}", e, plan);
                }
            } else {
                let _ = during_edits;
            }
        }
        // Quiet now: at most two passes settle whatever the concurrent edits disturbed.
        w.touched_uids.clear();
        w.touched_keys.clear();
        for _ in 0..2 {
            let plan = w.pass(&policy);
            if halted_on_uidvalidity(&plan) {
                return Ok(());
            }
        }
        prop_assert!(w.check_in_sync().is_ok(), "{:?}", w.check_in_sync());
        let again = w.plan(&policy);
        prop_assert!(again.is_empty(), "{}", again);
    }

    /// Rule 7 as a property: a halted plan never deletes, and deletes nothing at all
    /// from an emptied side.
    #[test]
    fn prop_guards_hold_deletions(
        w in world(),
        edits in proptest::collection::vec(edit(), 0..20),
        empty_local in any::<bool>(),
    ) {
        let mut w = w;
        for e in &edits {
            apply_edit(&mut w, e, false);
        }
        if empty_local {
            w.local.clear();
        }
        let plan = w.plan(&policy());
        if plan.halt.is_some() {
            prop_assert!(deletions(&plan).is_empty());
        }
        if w.local.is_empty() && !w.base.pairs.is_empty() {
            let server_deletes = plan.actions.iter().any(|a| {
                matches!(a, Action::DeleteOnServer { .. } | Action::MoveToTrash { .. })
            });
            prop_assert!(!server_deletes);
        }
    }

    /// Pull never writes the server, push never the Maildir, and both go quiet.
    #[test]
    fn prop_one_way_directions_stay_one_way(
        mut w in world(),
        edits in proptest::collection::vec(edit(), 0..12),
        push in any::<bool>(),
    ) {
        for e in &edits {
            apply_edit(&mut w, e, false);
        }
        let mut policy = confirmed_policy();
        policy.direction = if push { Direction::Push } else { Direction::Pull };
        let before = w.clone();
        let plan = w.pass(&policy);
        if halted_on_uidvalidity(&plan) {
            return Ok(());
        }
        if let Err(e) = check_no_silent_loss(&before, &w, &plan) {
            prop_assert!(false, "{}\n{}", e, plan);
        }
        for a in &plan.actions {
            prop_assert!(if push { !a.touches_local() } else { !a.touches_server() }, "{}", a);
        }
        let again = w.plan(&policy);
        prop_assert!(again.is_empty(), "{}", again);
    }
}

/// Issue 19: a first sync's plan holds one fetch for the whole folder and no change per
/// message (each download is logged when its batch commits), so its memory does not
/// grow with the folder beyond the UID set.
#[test]
fn a_first_sync_plan_holds_no_change_per_download() {
    let mut w = World::synced(&[], false);
    let n = 10_000;
    for _ in 0..n {
        let uid = w.next_uid();
        w.server.insert(
            uid,
            ServerMsg {
                flags: fl("S"),
                size: 5,
                message_id: None,
            },
        );
    }
    let p = w.plan(&policy());
    assert!(p.changes.is_empty(), "{} changes", p.changes.len());
    assert_eq!(p.actions.len(), 1, "{p}");
    assert!(matches!(&p.actions[0], Action::Fetch { uids } if uids.len() == n));
}
