//! The unified planner: one test per case of the match, the rule 6/7 guards, and property
//! tests against an in-memory world for convergence and "never duplicate, never delete
//! without a complete observation".

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::plan::{Action, Copy, Entry, Halt, Observed, Plan, Snapshot, Source, SourceView, plan};
use crate::model::{AccountName, Flag, Flags, FolderName, MaildirKey, MessageId};
use crate::sync::MASS_DELETE_FLOOR;

fn fl(s: &str) -> Flags {
    s.chars()
        .map(|c| Flag::from_maildir_letter(c).unwrap())
        .collect()
}

fn k(s: &str) -> MaildirKey {
    MaildirKey(s.into())
}

fn src(account: &str) -> Source {
    Source {
        account: AccountName(account.into()),
        folder: FolderName("INBOX".into()),
    }
}

fn entry(u: &str, account: &str, local: &str, base: &str) -> Entry {
    Entry {
        unified: k(u),
        source: src(account),
        local_key: k(local),
        base: fl(base),
    }
}

fn snap(files: &[(&str, &str)], complete: bool) -> Snapshot {
    Snapshot {
        messages: files.iter().map(|(key, f)| (k(key), fl(f))).collect(),
        ambiguous: BTreeSet::new(),
        complete,
    }
}

fn observed(unified: Option<Snapshot>, sources: &[(&str, Option<Snapshot>)]) -> Observed {
    Observed {
        unified,
        sources: sources
            .iter()
            .map(|(a, s)| {
                (
                    src(a),
                    SourceView {
                        snapshot: s.clone(),
                        max_delete_share: 0.5,
                        ..SourceView::default()
                    },
                )
            })
            .collect(),
        allow_mass_delete: false,
        stranger_ids: BTreeMap::new(),
        stranger_inodes: BTreeMap::new(),
        stranger_shared: BTreeSet::new(),
    }
}

#[test]
fn in_step_plans_nothing() {
    let e = [
        entry("u1", "work", "a1", "S"),
        entry("u2", "home", "h1", ""),
    ];
    let o = observed(
        Some(snap(&[("u1", "S"), ("u2", "")], true)),
        &[
            ("work", Some(snap(&[("a1", "S")], true))),
            ("home", Some(snap(&[("h1", "")], true))),
        ],
    );
    assert_eq!(plan(&e, &o), Plan::default());
}

#[test]
fn flag_set_in_unified_renames_the_account_copy() {
    let e = [entry("u1", "work", "a1", "")];
    let o = observed(
        Some(snap(&[("u1", "S")], true)),
        &[("work", Some(snap(&[("a1", "")], true)))],
    );
    assert_eq!(
        plan(&e, &o).actions,
        [
            Action::SetSourceFlags {
                unified: k("u1"),
                source: src("work"),
                local_key: k("a1"),
                flags: fl("S")
            },
            Action::RecordBase {
                unified: k("u1"),
                flags: fl("S")
            }
        ]
    );
}

#[test]
fn flag_changed_in_the_account_renames_the_unified_copy() {
    let e = [entry("u1", "work", "a1", "S")];
    let o = observed(
        Some(snap(&[("u1", "S")], true)),
        &[("work", Some(snap(&[("a1", "FS")], true)))],
    );
    assert_eq!(
        plan(&e, &o).actions,
        [
            Action::SetUnifiedFlags {
                unified: k("u1"),
                flags: fl("FS")
            },
            Action::RecordBase {
                unified: k("u1"),
                flags: fl("FS")
            }
        ]
    );
}

#[test]
fn independent_changes_on_both_sides_merge_per_flag() {
    // Base R; unified +S; account -R +F.
    let e = [entry("u1", "work", "a1", "R")];
    let o = observed(
        Some(snap(&[("u1", "RS")], true)),
        &[("work", Some(snap(&[("a1", "F")], true)))],
    );
    let p = plan(&e, &o);
    assert!(p.actions.contains(&Action::SetSourceFlags {
        unified: k("u1"),
        source: src("work"),
        local_key: k("a1"),
        flags: fl("FS")
    }));
    assert!(p.actions.contains(&Action::SetUnifiedFlags {
        unified: k("u1"),
        flags: fl("FS")
    }));
    assert_eq!(
        p.actions.last(),
        Some(&Action::RecordBase {
            unified: k("u1"),
            flags: fl("FS")
        })
    );
}

#[test]
fn same_change_on_both_sides_only_records_the_base() {
    let e = [entry("u1", "work", "a1", "")];
    let o = observed(
        Some(snap(&[("u1", "S")], true)),
        &[("work", Some(snap(&[("a1", "S")], true)))],
    );
    assert_eq!(
        plan(&e, &o).actions,
        [Action::RecordBase {
            unified: k("u1"),
            flags: fl("S")
        }]
    );
}

#[test]
fn deleted_in_unified_deletes_the_account_copy() {
    let e = [
        entry("u1", "work", "a1", "S"),
        entry("u2", "work", "a2", ""),
    ];
    let o = observed(
        Some(snap(&[("u2", "")], true)),
        &[("work", Some(snap(&[("a1", "S"), ("a2", "")], true)))],
    );
    assert_eq!(
        plan(&e, &o).actions,
        [Action::DeleteSource {
            unified: k("u1"),
            source: src("work"),
            local_key: k("a1")
        }]
    );
}

#[test]
fn deleted_in_unified_but_flagged_in_the_account_is_kept_and_shown_again() {
    let e = [entry("u1", "work", "a1", ""), entry("u2", "work", "a2", "")];
    let o = observed(
        Some(snap(&[("u2", "")], true)),
        &[("work", Some(snap(&[("a1", "F"), ("a2", "")], true)))],
    );
    let p = plan(&e, &o);
    assert_eq!(
        p.actions,
        [
            Action::Forget { unified: k("u1") },
            Action::Link {
                source: src("work"),
                local_key: k("a1"),
                flags: fl("F")
            }
        ]
    );
    assert_eq!(p.kept, [(src("work"), k("a1"))]);
}

#[test]
fn gone_from_the_account_removes_the_unified_copy() {
    let e = [entry("u1", "work", "a1", ""), entry("u2", "work", "a2", "")];
    let o = observed(
        Some(snap(&[("u1", ""), ("u2", "")], true)),
        &[("work", Some(snap(&[("a2", "")], true)))],
    );
    assert_eq!(
        plan(&e, &o).actions,
        [Action::RemoveUnified {
            unified: k("u1"),
            source: src("work"),
            local_key: k("a1")
        }]
    );
}

#[test]
fn gone_from_both_drops_the_entry() {
    let e = [entry("u1", "work", "a1", ""), entry("u2", "work", "a2", "")];
    let o = observed(
        Some(snap(&[("u2", "")], true)),
        &[("work", Some(snap(&[("a2", "")], true)))],
    );
    assert_eq!(plan(&e, &o).actions, [Action::Forget { unified: k("u1") }]);
}

#[test]
fn unmapped_account_messages_are_linked_per_source() {
    let o = observed(
        Some(snap(&[], true)),
        &[
            ("work", Some(snap(&[("a1", "S")], true))),
            ("home", Some(snap(&[("h1", "")], false))),
        ],
    );
    assert_eq!(
        plan(&[], &o).actions,
        [
            Action::Link {
                source: src("home"),
                local_key: k("h1"),
                flags: fl("")
            },
            Action::Link {
                source: src("work"),
                local_key: k("a1"),
                flags: fl("S")
            }
        ]
    );
}

#[test]
fn a_file_saved_into_the_unified_folder_is_left_alone_and_named() {
    let e = [entry("u1", "work", "a1", "")];
    let o = observed(
        Some(snap(&[("u1", ""), ("mine", "S")], true)),
        &[("work", Some(snap(&[("a1", "")], true)))],
    );
    let p = plan(&e, &o);
    assert!(p.actions.is_empty());
    assert_eq!(p.strangers, [k("mine")]);
}

#[test]
fn entries_of_sources_no_longer_configured_are_left_alone() {
    let e = [entry("u1", "gone", "a1", "")];
    let o = observed(
        Some(snap(&[("u1", "")], true)),
        &[("work", Some(snap(&[], true)))],
    );
    let p = plan(&e, &o);
    assert!(p.actions.is_empty() && p.halts.is_empty());
    assert_eq!(p.orphans, 1);
}

#[test]
fn ambiguous_keys_are_never_touched() {
    let e = [entry("u1", "work", "a1", ""), entry("u2", "work", "a2", "")];
    let mut account = snap(&[], true);
    account.ambiguous.insert(k("a1"));
    let mut unified = snap(&[("u1", "S")], true);
    unified.ambiguous.insert(k("u2"));
    let o = observed(Some(unified), &[("work", Some(account))]);
    let p = plan(&e, &o);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
}

#[test]
fn rule_6_an_unstable_unified_scan_deletes_nothing_in_the_account() {
    let e = [entry("u1", "work", "a1", ""), entry("u2", "work", "a2", "")];
    let o = observed(
        Some(snap(&[("u2", "S")], false)),
        &[("work", Some(snap(&[("a1", ""), ("a2", "")], true)))],
    );
    let p = plan(&e, &o);
    // The flag still travels; the deletion waits for a stable scan.
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::DeleteSource { .. }))
    );
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::SetSourceFlags { .. }))
    );
}

#[test]
fn rule_6_an_unstable_account_scan_removes_nothing_from_unified() {
    let e = [entry("u1", "work", "a1", ""), entry("u2", "work", "a2", "")];
    let o = observed(
        Some(snap(&[("u1", ""), ("u2", "")], true)),
        &[("work", Some(snap(&[("a2", "")], false)))],
    );
    assert!(plan(&e, &o).actions.is_empty());
    // Gone from both but one side unstable: the entry stays too.
    let o = observed(
        Some(snap(&[("u2", "")], true)),
        &[("work", Some(snap(&[("a2", "")], false)))],
    );
    assert!(plan(&e, &o).actions.is_empty());
}

#[test]
fn rule_7_a_missing_unified_folder_deletes_nothing() {
    let e = [entry("u1", "work", "a1", "")];
    let o = observed(
        None,
        &[("work", Some(snap(&[("a1", ""), ("a2", "")], true)))],
    );
    let p = plan(&e, &o);
    assert!(p.actions.is_empty());
    assert_eq!(p.halts, [Halt::UnifiedMissing { entries: 1 }]);
    assert!(p.halts[0].to_string().contains("syncmail unified rebuild"));
}

#[test]
fn rule_7_a_missing_account_folder_removes_nothing() {
    let e = [entry("u1", "work", "a1", "")];
    let o = observed(Some(snap(&[("u1", "")], true)), &[("work", None)]);
    let p = plan(&e, &o);
    assert!(p.actions.is_empty());
    assert_eq!(
        p.halts,
        [Halt::SourceMissing {
            source: src("work"),
            entries: 1
        }]
    );
    // A source never seen and without entries is simply not there yet.
    let o = observed(
        Some(snap(&[("u1", "")], true)),
        &[("work", Some(snap(&[("a1", "")], true))), ("home", None)],
    );
    assert!(plan(&e, &o).halts.is_empty());
}

#[test]
fn rule_7_an_emptied_unified_folder_is_held_back() {
    let e = [entry("u1", "work", "a1", "")];
    let o = observed(
        Some(snap(&[], true)),
        &[("work", Some(snap(&[("a1", "")], true)))],
    );
    let p = plan(&e, &o);
    assert!(p.actions.is_empty());
    assert_eq!(p.held.len(), 1);
    assert!(matches!(
        p.halts[..],
        [Halt::Emptied {
            copy: Copy::Account,
            count: 1,
            ..
        }]
    ));
    assert!(p.halts[0].to_string().contains("--confirm-delete"));
    let mut confirmed = o.clone();
    confirmed.allow_mass_delete = true;
    assert_eq!(plan(&e, &confirmed).actions.len(), 1);
}

#[test]
fn rule_7_an_emptied_account_folder_keeps_the_unified_copies() {
    let e = [entry("u1", "work", "a1", "")];
    let o = observed(
        Some(snap(&[("u1", "")], true)),
        &[("work", Some(snap(&[], true)))],
    );
    let p = plan(&e, &o);
    assert!(p.actions.is_empty());
    assert!(matches!(
        p.halts[..],
        [Halt::Emptied {
            copy: Copy::Unified,
            ..
        }]
    ));
}

#[test]
fn rule_7_more_than_the_share_is_held_back_per_source() {
    let n = MASS_DELETE_FLOOR * 2;
    let keys: Vec<(String, String)> = (0..n).map(|i| (format!("u{i}"), format!("a{i}"))).collect();
    let mut e: Vec<Entry> = keys.iter().map(|(u, a)| entry(u, "work", a, "")).collect();
    e.push(entry("h", "home", "h1", ""));
    let account: Vec<(&str, &str)> = keys.iter().map(|(_, a)| (a.as_str(), "")).collect();
    // The user deleted all but 5 of work's entries, and home's.
    let kept: Vec<(&str, &str)> = keys[..5].iter().map(|(u, _)| (u.as_str(), "")).collect();
    let o = observed(
        Some(snap(&kept, true)),
        &[
            ("work", Some(snap(&account, true))),
            ("home", Some(snap(&[("h1", "")], true))),
        ],
    );
    let p = plan(&e, &o);
    assert_eq!(p.held.len(), n - 5);
    assert_eq!(
        p.halts,
        [Halt::MassDelete {
            source: src("work"),
            copy: Copy::Account,
            count: n - 5,
            total: n
        }]
    );
    // home is its own folder: its one deletion goes ahead.
    assert_eq!(
        p.actions,
        [Action::DeleteSource {
            unified: k("h"),
            source: src("home"),
            local_key: k("h1")
        }]
    );
    // Below the floor, any share goes ahead.
    let small: Vec<Entry> = e[..MASS_DELETE_FLOOR - 1].to_vec();
    let o = observed(
        Some(snap(&[("saved-by-me", "")], true)),
        &[("work", Some(snap(&account, true)))],
    );
    let p = plan(&small, &o);
    assert!(p.halts.is_empty());
    assert_eq!(
        p.actions
            .iter()
            .filter(|a| matches!(a, Action::DeleteSource { .. }))
            .count(),
        MASS_DELETE_FLOOR - 1
    );
}

// ---- property tests -----------------------------------------------------------------

/// An in-memory unified folder, two account folders and the mapping.
#[derive(Clone, Debug)]
struct World {
    unified: BTreeMap<MaildirKey, Flags>,
    accounts: BTreeMap<Source, BTreeMap<MaildirKey, Flags>>,
    entries: Vec<Entry>,
    next: u32,
}

impl World {
    fn observe(&self, unified_complete: bool, complete: &[bool; 2], allow: bool) -> Observed {
        Observed {
            unified: Some(Snapshot {
                messages: self.unified.clone(),
                ambiguous: BTreeSet::new(),
                complete: unified_complete,
            }),
            sources: self
                .accounts
                .iter()
                .zip(complete)
                .map(|((s, m), c)| {
                    (
                        s.clone(),
                        SourceView {
                            snapshot: Some(Snapshot {
                                messages: m.clone(),
                                ambiguous: BTreeSet::new(),
                                complete: *c,
                            }),
                            max_delete_share: 0.5,
                            ..SourceView::default()
                        },
                    )
                })
                .collect(),
            allow_mass_delete: allow,
            stranger_ids: BTreeMap::new(),
            stranger_inodes: BTreeMap::new(),
            stranger_shared: BTreeSet::new(),
        }
    }

    fn entry_mut(&mut self, u: &MaildirKey) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| &e.unified == u)
    }

    fn apply(&mut self, p: &Plan) {
        for a in &p.actions {
            match a {
                Action::SetSourceFlags {
                    source,
                    local_key,
                    flags,
                    ..
                } => {
                    let m = self.accounts.get_mut(source).unwrap();
                    *m.get_mut(local_key)
                        .expect("renamed a missing account copy") = flags.clone();
                }
                Action::SetUnifiedFlags { unified, flags } => {
                    *self
                        .unified
                        .get_mut(unified)
                        .expect("renamed a missing unified copy") = flags.clone();
                }
                Action::RecordBase { unified, flags } => {
                    self.entry_mut(unified).unwrap().base = flags.clone();
                }
                Action::DeleteSource {
                    unified,
                    source,
                    local_key,
                } => {
                    self.accounts.get_mut(source).unwrap().remove(local_key);
                    self.entries.retain(|e| &e.unified != unified);
                }
                Action::RemoveUnified { unified, .. } => {
                    self.unified.remove(unified);
                    self.entries.retain(|e| &e.unified != unified);
                }
                Action::Forget { unified } => self.entries.retain(|e| &e.unified != unified),
                Action::Adopt {
                    unified,
                    source,
                    flags,
                    ..
                } => {
                    self.next += 1;
                    let local = MaildirKey(format!("adopted{}", self.next));
                    self.accounts
                        .get_mut(source)
                        .unwrap()
                        .insert(local.clone(), flags.clone());
                    self.entries.push(Entry {
                        unified: unified.clone(),
                        source: source.clone(),
                        local_key: local,
                        base: flags.clone(),
                    });
                }
                Action::Rekey { unified, to } => {
                    self.entry_mut(unified).unwrap().unified = to.clone();
                }
                Action::Claim {
                    unified,
                    source,
                    local_key,
                    flags,
                } => self.entries.push(Entry {
                    unified: unified.clone(),
                    source: source.clone(),
                    local_key: local_key.clone(),
                    base: flags.clone(),
                }),
                Action::Link {
                    source,
                    local_key,
                    flags,
                } => {
                    self.next += 1;
                    let u = MaildirKey(format!("new{}", self.next));
                    self.unified.insert(u.clone(), flags.clone());
                    self.entries.push(Entry {
                        unified: u,
                        source: source.clone(),
                        local_key: local_key.clone(),
                        base: flags.clone(),
                    });
                }
            }
        }
    }

    /// Each account message and each unified file is mapped at most once.
    fn check_no_duplicates(&self) -> Result<(), String> {
        let mut locals = BTreeSet::new();
        let mut unifieds = BTreeSet::new();
        for e in &self.entries {
            if !locals.insert((&e.source, &e.local_key)) {
                return Err(format!("{:?} mapped twice", e.local_key));
            }
            if !unifieds.insert(&e.unified) {
                return Err(format!("{:?} mapped twice", e.unified));
            }
        }
        Ok(())
    }
}

fn flags() -> impl Strategy<Value = Flags> {
    (0u8..64).prop_map(|bits| {
        Flag::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, f)| f)
            .collect()
    })
}

/// Per message: in the account?, in unified?, mapped?, base, account flags, unified flags.
type Msg = (bool, bool, bool, Flags, Flags, Flags);

fn world() -> impl Strategy<Value = World> {
    fn msg() -> impl Strategy<Value = Msg> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            flags(),
            flags(),
            flags(),
        )
    }
    (
        proptest::collection::vec(msg(), 0..14),
        proptest::collection::vec(msg(), 0..6),
        proptest::collection::vec(flags(), 0..3),
    )
        .prop_map(
            |(work, home, strangers): (Vec<Msg>, Vec<Msg>, Vec<Flags>)| {
                let mut w = World {
                    unified: BTreeMap::new(),
                    accounts: BTreeMap::new(),
                    entries: Vec::new(),
                    next: 0,
                };
                for (name, msgs) in [("home", home), ("work", work)] {
                    let s = src(name);
                    let mut files = BTreeMap::new();
                    for (i, (in_account, in_unified, is_mapped, base, a, u)) in
                        msgs.into_iter().enumerate()
                    {
                        let local = k(&format!("{name}{i}"));
                        let unified = k(&format!("u-{name}{i}"));
                        if in_account {
                            files.insert(local.clone(), a);
                        }
                        if is_mapped {
                            if in_unified {
                                w.unified.insert(unified.clone(), u);
                            }
                            w.entries.push(Entry {
                                unified,
                                source: s.clone(),
                                local_key: local,
                                base,
                            });
                        }
                    }
                    w.accounts.insert(s, files);
                }
                for (i, f) in strangers.into_iter().enumerate() {
                    w.unified.insert(k(&format!("saved{i}")), f);
                }
                w
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// With complete scans and deletions confirmed, one reconcile leaves both sides in
    /// step: every account message shown once with its flags, and a replan is empty.
    #[test]
    fn prop_one_reconcile_converges(mut w in world()) {
        let p = plan(&w.entries, &w.observe(true, &[true, true], true));
        prop_assert!(p.halts.is_empty());
        w.apply(&p);
        prop_assert!(w.check_no_duplicates().is_ok(), "{:?}", w.check_no_duplicates());
        let again = plan(&w.entries, &w.observe(true, &[true, true], true));
        prop_assert!(again.actions.is_empty(), "replan: {:?}\nafter {:?}", again.actions, p.actions);
        for (s, files) in &w.accounts {
            for (key, f) in files {
                let e = w.entries.iter().find(|e| &e.source == s && &e.local_key == key);
                prop_assert!(e.is_some(), "{key:?} not shown");
                let e = e.unwrap();
                prop_assert_eq!(&w.unified[&e.unified], f);
                prop_assert_eq!(&e.base, f);
            }
        }
        prop_assert_eq!(
            w.unified.len(),
            w.entries.len() + p.strangers.len(),
            "every unified file is an entry or one the user saved"
        );
    }

    /// Whatever the scans' completeness: no deletion on a side not seen completely, no
    /// link of a message already shown, never a duplicate; guards only ever hold back.
    #[test]
    fn prop_never_duplicates_never_deletes_blind(
        mut w in world(),
        unified_complete in any::<bool>(),
        complete in any::<[bool; 2]>(),
        allow in any::<bool>(),
    ) {
        let before = w.clone();
        let o = w.observe(unified_complete, &complete, allow);
        let p = plan(&w.entries, &o);
        let complete_of = |s: &Source| o.sources[s].snapshot.as_ref().unwrap().complete;
        for a in &p.actions {
            match a {
                Action::DeleteSource { .. } => prop_assert!(unified_complete, "{a:?}"),
                Action::RemoveUnified { source, .. } => prop_assert!(complete_of(source), "{a:?}"),
                Action::Forget { unified } => {
                    let e = before.entries.iter().find(|e| &e.unified == unified).unwrap();
                    prop_assert!(unified_complete && !before.unified.contains_key(unified));
                    let kept = p.kept.iter().any(|(s, l)| s == &e.source && l == &e.local_key);
                    prop_assert!(kept || complete_of(&e.source));
                }
                _ => {}
            }
        }
        if !allow {
            prop_assert_eq!(p.halts.is_empty(), p.held.is_empty());
        } else {
            prop_assert!(p.held.is_empty());
        }
        w.apply(&p);
        prop_assert!(w.check_no_duplicates().is_ok(), "{:?}", w.check_no_duplicates());
        // Nothing of an account is gone unless its unified copy was deleted by the user.
        for (s, files) in &before.accounts {
            for key in files.keys() {
                if !w.accounts[s].contains_key(key) {
                    let e = before.entries.iter().find(|e| &e.source == s && &e.local_key == key);
                    prop_assert!(e.is_some_and(|e| !before.unified.contains_key(&e.unified)));
                }
            }
        }
        // A unified file goes only when its account copy is gone.
        for u in before.unified.keys() {
            if !w.unified.contains_key(u) {
                let e = before.entries.iter().find(|e| &e.unified == u).unwrap();
                prop_assert!(!before.accounts[&e.source].contains_key(&e.local_key));
            }
        }
    }
}

// ---- strangers: an edit in the unified folder, a link a crash left unrecorded ----------

fn with_strangers(mut o: Observed, ids: &[(&str, &str)], inodes: &[(&str, u64)]) -> Observed {
    o.stranger_ids = ids
        .iter()
        .map(|(key, id)| (k(key), MessageId(id.to_string())))
        .collect();
    o.stranger_inodes = inodes.iter().map(|(key, n)| (k(key), (1, *n))).collect();
    o
}

#[test]
fn an_edit_in_unified_replaces_the_account_copy_instead_of_losing_it() {
    // mutt's edit-message: u1 (showing work's a1) removed, `edited` written beside it.
    let e = [
        entry("u1", "work", "a1", "S"),
        entry("u2", "work", "a2", ""),
    ];
    let mut o = with_strangers(
        observed(
            Some(snap(&[("u2", ""), ("edited", "S")], true)),
            &[("work", Some(snap(&[("a1", "S"), ("a2", "")], true)))],
        ),
        &[("edited", "<a1@x>")],
        &[],
    );
    o.sources.get_mut(&src("work")).unwrap().message_ids =
        [(k("a1"), MessageId("<a1@x>".to_owned()))].into();
    let p = plan(&e, &o);
    assert!(p.actions.contains(&Action::DeleteSource {
        unified: k("u1"),
        source: src("work"),
        local_key: k("a1"),
    }));
    assert!(p.actions.contains(&Action::Adopt {
        unified: k("edited"),
        source: src("work"),
        flags: fl("S"),
        replaces: k("a1"),
    }));
    assert!(p.strangers.is_empty(), "adopted, so no longer a stranger");
}

#[test]
fn a_stranger_with_another_message_id_is_not_adopted() {
    let e = [entry("u1", "work", "a1", ""), entry("u2", "work", "a2", "")];
    let mut o = with_strangers(
        observed(
            Some(snap(&[("u2", ""), ("mine", "")], true)),
            &[("work", Some(snap(&[("a1", ""), ("a2", "")], true)))],
        ),
        &[("mine", "<other@x>")],
        &[],
    );
    o.sources.get_mut(&src("work")).unwrap().message_ids =
        [(k("a1"), MessageId("<a1@x>".to_owned()))].into();
    let p = plan(&e, &o);
    assert!(!p.actions.iter().any(|a| matches!(a, Action::Adopt { .. })));
    assert_eq!(p.strangers, [k("mine")]);
}

#[test]
fn rule_7_no_adoption_while_the_deletion_is_held_back() {
    // Eleven of twelve entries gone from unified at once, one of them replaced: the
    // mass-delete guard holds the deletions, so adopting would show a2 twice in work.
    let keys: Vec<(String, String)> = (0..12)
        .map(|i| (format!("u{i}"), format!("a{i}")))
        .collect();
    let e: Vec<Entry> = keys.iter().map(|(u, a)| entry(u, "work", a, "")).collect();
    let account: Vec<(&str, &str)> = keys.iter().map(|(_, a)| (a.as_str(), "")).collect();
    let mut o = with_strangers(
        observed(
            Some(snap(&[("u11", ""), ("edited", "")], true)),
            &[("work", Some(snap(&account, true)))],
        ),
        &[("edited", "<a2@x>")],
        &[],
    );
    o.sources.get_mut(&src("work")).unwrap().message_ids =
        [(k("a2"), MessageId("<a2@x>".to_owned()))].into();
    let p = plan(&e, &o);
    assert!(matches!(p.halts[..], [Halt::MassDelete { .. }]), "{p:?}");
    assert!(
        !p.actions.iter().any(|a| matches!(a, Action::Adopt { .. })),
        "{p:?}"
    );
    assert_eq!(
        p.strangers,
        [k("edited")],
        "left alone while the guard holds"
    );
}

#[test]
fn rule_1_a_link_a_crash_left_unrecorded_is_claimed_not_linked_again() {
    // The unified file `orphan` is the same inode as work's unmapped a9.
    let mut o = with_strangers(
        observed(
            Some(snap(&[("orphan", "S")], true)),
            &[("work", Some(snap(&[("a9", "S")], true)))],
        ),
        &[],
        &[("orphan", 42)],
    );
    o.sources.get_mut(&src("work")).unwrap().inodes = [(k("a9"), (1, 42))].into();
    let p = plan(&[], &o);
    assert_eq!(
        p.actions,
        [Action::Claim {
            unified: k("orphan"),
            source: src("work"),
            local_key: k("a9"),
            flags: fl("S"),
        }]
    );
    assert!(p.strangers.is_empty());
}

#[test]
fn a_rename_to_a_new_unique_part_in_unified_is_the_same_entry_not_a_delete() {
    // A client renamed u1 to `renamed` (same file) and flagged it on the way.
    let e = [entry("u1", "work", "a1", "S")];
    let mut o = with_strangers(
        observed(
            Some(snap(&[("renamed", "FS")], true)),
            &[("work", Some(snap(&[("a1", "S")], true)))],
        ),
        &[("renamed", "<a1@x>")],
        &[("renamed", 7)],
    );
    let view = o.sources.get_mut(&src("work")).unwrap();
    view.inodes = [(k("a1"), (1, 7))].into();
    view.message_ids = [(k("a1"), MessageId("<a1@x>".to_owned()))].into();
    let p = plan(&e, &o);
    assert_eq!(
        p.actions,
        [
            Action::Rekey {
                unified: k("u1"),
                to: k("renamed"),
            },
            Action::SetSourceFlags {
                unified: k("renamed"),
                source: src("work"),
                local_key: k("a1"),
                flags: fl("FS"),
            },
            Action::RecordBase {
                unified: k("renamed"),
                flags: fl("FS"),
            },
        ]
    );
    assert!(p.strangers.is_empty());
}

#[test]
fn a_link_of_another_accounts_message_is_never_adopted() {
    // work's a1 deleted in unified; `orphan` has the same Message-ID but is home's h1
    // (linked before a crash): home claims it, work adopts nothing.
    let e = [entry("u1", "work", "a1", ""), entry("u2", "work", "a2", "")];
    let mut o = with_strangers(
        observed(
            Some(snap(&[("u2", ""), ("orphan", "")], true)),
            &[
                ("work", Some(snap(&[("a1", ""), ("a2", "")], true))),
                ("home", Some(snap(&[("h1", "")], true))),
            ],
        ),
        &[("orphan", "<same@x>")],
        &[("orphan", 9)],
    );
    o.sources.get_mut(&src("work")).unwrap().message_ids =
        [(k("a1"), MessageId("<same@x>".to_owned()))].into();
    o.sources.get_mut(&src("home")).unwrap().inodes = [(k("h1"), (1, 9))].into();
    // A link has two names.
    o.stranger_shared = [k("orphan")].into();
    let p = plan(&e, &o);
    assert!(
        !p.actions.iter().any(|a| matches!(a, Action::Adopt { .. })),
        "{p:?}"
    );
    assert!(p.actions.contains(&Action::Claim {
        unified: k("orphan"),
        source: src("home"),
        local_key: k("h1"),
        flags: fl(""),
    }));
    assert!(p.actions.contains(&Action::DeleteSource {
        unified: k("u1"),
        source: src("work"),
        local_key: k("a1"),
    }));
}

#[test]
fn the_same_inode_on_another_device_is_another_file() {
    let mut o = with_strangers(
        observed(
            Some(snap(&[("saved", "")], true)),
            &[("work", Some(snap(&[("a9", "")], true)))],
        ),
        &[],
        &[("saved", 42)],
    );
    o.sources.get_mut(&src("work")).unwrap().inodes = [(k("a9"), (2, 42))].into();
    let p = plan(&[], &o);
    assert!(matches!(p.actions[..], [Action::Link { .. }]), "{p:?}");
    assert_eq!(p.strangers, [k("saved")]);
}
