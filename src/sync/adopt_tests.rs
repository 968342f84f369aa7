//! Rule 21 tests: a first contact pairs what both sides hold, transfers only what is on
//! one side alone, holds what it cannot tell apart, and deletes nothing.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::model::{Flag, Flags, FolderName, MaildirKey, MessageId, Uid, UidValidity};
use crate::sync::actions::{Action, Timestamp};
use crate::sync::sim::policy;
use crate::sync::snapshot::{LocalSnapshot, RemoteListing, RemoteSnapshot};
use crate::sync::{Plan, plan};

fn fl(letters: &str) -> Flags {
    letters
        .chars()
        .map(|c| Flag::from_maildir_letter(c).unwrap())
        .collect()
}

fn id(s: &str) -> MessageId {
    MessageId(format!("<{s}@example.org>"))
}

fn k(s: &str) -> MaildirKey {
    MaildirKey(s.to_owned())
}

fn hash(n: u8) -> ContentHash {
    ContentHash([n; 32])
}

/// One folder's two sides, as a first contact sees them.
#[derive(Default)]
struct Sides {
    remote: BTreeMap<Uid, RemoteMessage>,
    local: BTreeMap<MaildirKey, LocalMessage>,
    evidence: Evidence,
}

impl Sides {
    fn server(&mut self, uid: u32, flags: &str, size: u64, mid: Option<&str>) -> &mut Self {
        self.remote.insert(
            Uid(uid),
            RemoteMessage {
                flags: fl(flags),
                size,
                message_id: mid.map(id),
                email_id: None,
            },
        );
        self
    }

    /// A local file whose CRLF size is `size`; its raw size is a little smaller (LF).
    fn local(&mut self, key: &str, flags: &str, size: u64, mid: Option<&str>) -> &mut Self {
        self.local.insert(
            k(key),
            LocalMessage {
                flags: fl(flags),
                size: size - 10,
            },
        );
        self.evidence.local.insert(
            k(key),
            LocalIdentity {
                message_id: mid.map(id),
                crlf_size: Some(size),
                tuid_size: 0,
                hash: None,
            },
        );
        self
    }

    fn hashes(&mut self, uid_hashes: &[(u32, u8)], key_hashes: &[(&str, u8)]) -> &mut Self {
        for (uid, h) in uid_hashes {
            self.evidence.remote_hashes.insert(Uid(*uid), hash(*h));
        }
        for (key, h) in key_hashes {
            self.evidence.local.get_mut(&k(key)).unwrap().hash = Some(hash(*h));
        }
        self
    }

    fn adopt(&self) -> Adoption {
        let remote = self.remote.iter().map(|(u, m)| (*u, m)).collect();
        let local = self.local.iter().map(|(k, m)| (k.clone(), m)).collect();
        adopt(&remote, &local, &self.evidence)
    }

    /// Adopt, then plan against the adopted base, as the engine does.
    fn plan(&self) -> (Adoption, Plan) {
        let adoption = self.adopt();
        let base = apply_adoption(&Base::empty(FolderName("INBOX".into())), &adoption);
        let remote = RemoteSnapshot {
            uid_validity: UidValidity(7),
            highest_modseq: None,
            uid_next: Uid(1000),
            listing: RemoteListing::Complete(self.remote.clone()),
        };
        let local = LocalSnapshot {
            messages: self.local.clone(),
            stable: true,
            carries_keywords: false,
        };
        let p = plan(&remote, &local, &base, &policy(), Timestamp(0));
        (adoption, p)
    }
}

fn pairs(a: &Adoption) -> Vec<(u32, &str, Method)> {
    a.pairs
        .iter()
        .map(|(p, m)| (p.uid.0, p.key.0.as_str(), *m))
        .collect()
}

fn transfers(p: &Plan) -> (Vec<u32>, Vec<String>) {
    let mut fetched = Vec::new();
    let mut appended = Vec::new();
    for a in &p.actions {
        match a {
            Action::Fetch { uids, .. } => fetched.extend(uids.iter().map(|u| u.0)),
            Action::Append { key, .. } => appended.push(key.0.clone()),
            _ => {}
        }
    }
    (fetched, appended)
}

#[test]
fn rule_21_first_contact_pairs_by_message_id_and_size_and_transfers_nothing() {
    let mut s = Sides::default();
    s.server(1, "S", 100, Some("a"))
        .server(2, "", 200, Some("b"))
        .local("ka", "S", 100, Some("a"))
        .local("kb", "", 200, Some("b"));
    let (a, p) = s.plan();
    assert_eq!(
        pairs(&a),
        [
            (1, "ka", Method::MessageIdAndSize),
            (2, "kb", Method::MessageIdAndSize)
        ]
    );
    assert!(p.is_empty(), "nothing to do after adoption:\n{p}");
}

#[test]
fn rule_21_flags_become_the_union_and_deleted_is_not_spread() {
    let mut s = Sides::default();
    s.server(1, "FS", 100, Some("a"))
        .local("ka", "RS", 100, Some("a"))
        .server(2, "ST", 100, Some("b"))
        .local("kb", "", 100, Some("b"))
        .server(3, "", 100, Some("c"))
        .local("kc", "T", 100, Some("c"));
    let (_, p) = s.plan();
    let text = p.to_string();
    // F travels down, R travels up; S is on both already.
    assert!(
        p.actions.iter().any(|a| matches!(a, Action::SetLocalFlags { key, flags } if key.0 == "ka" && flags.contains(Flag::Flagged))),
        "{text}"
    );
    assert!(
        p.actions.iter().any(|a| matches!(a, Action::StoreFlags { uids, add, .. } if uids.contains(Uid(1)) && add.contains(Flag::Replied))),
        "{text}"
    );
    // S travels down to kb, but \Deleted does not; T does not travel up from kc.
    for a in &p.actions {
        match a {
            Action::SetLocalFlags { key, flags } if key.0 == "kb" => {
                assert!(!flags.contains(Flag::Trashed), "{text}")
            }
            Action::StoreFlags { add, .. } => assert!(!add.contains(Flag::Trashed), "{text}"),
            _ => {}
        }
        assert!(!a.is_deletion(), "a first contact deletes nothing:\n{text}");
    }
}

#[test]
fn rule_21_a_message_without_message_id_pairs_by_content_hash() {
    let mut s = Sides::default();
    s.server(1, "", 100, None)
        .server(2, "", 100, None)
        .local("k1", "", 100, None)
        .local("k2", "", 100, None)
        .hashes(&[(1, 1), (2, 2)], &[("k1", 2), ("k2", 1)]);
    let (a, p) = s.plan();
    assert_eq!(
        pairs(&a),
        [
            (1, "k2", Method::ContentHash),
            (2, "k1", Method::ContentHash)
        ]
    );
    assert!(p.is_empty(), "{p}");
}

#[test]
fn rule_21_two_messages_sharing_a_message_id_pair_by_their_sizes() {
    let mut s = Sides::default();
    s.server(1, "", 100, Some("dup"))
        .server(2, "", 250, Some("dup"))
        .local("k1", "", 250, Some("dup"))
        .local("k2", "", 100, Some("dup"));
    let (a, p) = s.plan();
    assert_eq!(
        pairs(&a),
        [
            (1, "k2", Method::MessageIdAndSize),
            (2, "k1", Method::MessageIdAndSize)
        ]
    );
    assert!(p.is_empty(), "{p}");
}

#[test]
fn rule_21_identical_copies_in_equal_numbers_pair_by_content() {
    let mut s = Sides::default();
    s.server(1, "", 100, Some("x"))
        .server(2, "", 100, Some("x"))
        .local("k1", "", 100, Some("x"))
        .local("k2", "", 100, Some("x"))
        .hashes(&[(1, 5), (2, 5)], &[("k1", 5), ("k2", 5)]);
    let (a, p) = s.plan();
    assert_eq!(a.pairs.len(), 2);
    assert!(a.pairs.iter().all(|(_, m)| *m == Method::ContentHash));
    assert!(p.is_empty(), "{p}");
}

#[test]
fn rule_21_two_local_files_for_one_server_message_are_held_not_guessed() {
    let mut s = Sides::default();
    s.server(1, "", 100, Some("x"))
        .local("k1", "", 100, Some("x"))
        .local("k2", "", 100, Some("x"))
        .hashes(&[(1, 5)], &[("k1", 5), ("k2", 5)]);
    let (a, p) = s.plan();
    assert!(a.pairs.is_empty());
    assert_eq!(a.held_remote.keys().copied().collect::<Vec<_>>(), [Uid(1)]);
    assert_eq!(a.held_local.len(), 2);
    assert!(a.held_local[&k("k1")].contains("2 local files"), "{a:?}");
    let (fetched, appended) = transfers(&p);
    assert!(
        fetched.is_empty() && appended.is_empty(),
        "nothing moves for a held message:\n{p}"
    );
}

#[test]
fn rule_21_one_message_id_with_different_bodies_is_held() {
    let mut s = Sides::default();
    s.server(1, "", 100, Some("x"))
        .local("k1", "", 120, Some("x"))
        .server(2, "", 50, Some("y"))
        .local("k2", "", 50, Some("y"));
    let (a, p) = s.plan();
    assert_eq!(pairs(&a), [(2, "k2", Method::MessageIdAndSize)]);
    assert!(
        a.held_remote[&Uid(1)].contains("different contents"),
        "{a:?}"
    );
    assert!(a.held_local.contains_key(&k("k1")));
    assert_eq!(transfers(&p), (vec![], vec![]), "{p}");
}

#[test]
fn rule_21_only_truly_one_sided_messages_move_and_nothing_is_deleted() {
    let mut s = Sides::default();
    s.server(1, "", 100, Some("both"))
        .local("k1", "", 100, Some("both"))
        // New on the server while the previous tool was not running.
        .server(2, "", 300, Some("server-only"))
        // Written locally meanwhile.
        .local("k3", "", 400, Some("local-only"))
        // No Message-ID and no size twin on the other side: no hash needed, one-sided.
        .server(4, "", 77, None)
        .local("k5", "", 88, None);
    let remote: BTreeMap<Uid, &RemoteMessage> = s.remote.iter().map(|(u, m)| (*u, m)).collect();
    assert_eq!(
        needs_hash(&remote, &s.evidence.local),
        (BTreeSet::new(), BTreeSet::new()),
        "no body is read where no twin could match"
    );
    let (a, p) = s.plan();
    assert_eq!(pairs(&a), [(1, "k1", Method::MessageIdAndSize)]);
    let (fetched, appended) = transfers(&p);
    assert_eq!(fetched, [2, 4]);
    assert_eq!(appended, ["k3", "k5"]);
    assert!(p.actions.iter().all(|a| !a.is_deletion()), "{p}");
}

#[test]
fn rule_21_previous_tool_state_pairs_without_reading_bodies_and_is_checked_by_message_id() {
    let mut s = Sides::default();
    s.server(1, "S", 100, Some("a"))
        .server(2, "", 100, Some("b"))
        .server(3, "", 100, None);
    // Only the header was read for these: no CRLF size, no hash.
    for (key, mid) in [("m1", Some("a")), ("m2", Some("not-b")), ("m3", None)] {
        s.local.insert(
            k(key),
            LocalMessage {
                flags: Flags::new(),
                size: 90,
            },
        );
        s.evidence.local.insert(
            k(key),
            LocalIdentity {
                message_id: mid.map(id),
                crlf_size: None,
                tuid_size: 0,
                hash: None,
            },
        );
    }
    s.evidence.previous = vec![
        (Uid(1), k("m1"), PreviousTool::Mbsync),
        (Uid(2), k("m2"), PreviousTool::Mbsync),
        (Uid(3), k("m3"), PreviousTool::Mbsync),
    ];
    let (a, p) = s.plan();
    assert_eq!(
        pairs(&a),
        [
            (1, "m1", Method::PreviousTool(PreviousTool::Mbsync)),
            (3, "m3", Method::PreviousTool(PreviousTool::Mbsync))
        ]
    );
    assert!(
        a.held_remote[&Uid(2)].contains("Message-IDs differ"),
        "{a:?}"
    );
    assert!(a.held_local.contains_key(&k("m2")));
    let (fetched, appended) = transfers(&p);
    assert!(fetched.is_empty() && appended.is_empty(), "{p}");
    // The local S was missing: the union carries it down.
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::SetLocalFlags { key, .. } if key.0 == "m1")),
        "{p}"
    );
}

#[test]
fn rule_21_a_state_naming_one_uid_twice_is_not_trusted() {
    let mut s = Sides::default();
    s.server(1, "", 100, Some("a"))
        .local("m1", "", 100, Some("a"))
        .local("m2", "", 100, Some("z"));
    s.evidence.previous = vec![
        (Uid(1), k("m1"), PreviousTool::OfflineImap),
        (Uid(1), k("m2"), PreviousTool::OfflineImap),
    ];
    let a = s.adopt();
    assert_eq!(pairs(&a), [(1, "m1", Method::MessageIdAndSize)]);
}

#[test]
fn rule_21_an_mbsync_file_pairs_although_its_transaction_id_makes_it_larger() {
    let mut s = Sides::default();
    s.server(1, "S", 152, Some("a"))
        .local("ka", "S", 174, Some("a"))
        // A message mbsync uploaded carries the X-TUID on the server too.
        .server(2, "", 300, Some("b"))
        .local("kb", "", 300, Some("b"));
    s.evidence.local.get_mut(&k("ka")).unwrap().tuid_size = 22;
    s.evidence.local.get_mut(&k("kb")).unwrap().tuid_size = 22;
    let (a, p) = s.plan();
    assert_eq!(
        pairs(&a),
        [
            (1, "ka", Method::MessageIdAndSize),
            (2, "kb", Method::MessageIdAndSize)
        ]
    );
    assert!(p.is_empty(), "{p}");
}

#[test]
fn needs_hash_asks_for_twins_only() {
    let mut s = Sides::default();
    s.server(1, "", 100, None)
        .server(2, "", 200, None)
        .local("k1", "", 100, None)
        .server(3, "", 50, Some("x"))
        .server(4, "", 50, Some("x"))
        .local("k3", "", 50, Some("x"))
        .server(5, "", 60, Some("y"))
        .local("k5", "", 60, Some("y"));
    let remote: BTreeMap<Uid, &RemoteMessage> = s.remote.iter().map(|(u, m)| (*u, m)).collect();
    let (uids, keys) = needs_hash(&remote, &s.evidence.local);
    assert_eq!(uids, [1, 3, 4].into_iter().map(Uid).collect());
    assert_eq!(keys, [k("k1"), k("k3")].into_iter().collect());
}

#[test]
fn the_summary_names_each_method() {
    let mut s = Sides::default();
    s.server(1, "", 100, Some("a"))
        .local("ka", "", 100, Some("a"))
        .server(2, "", 100, Some("b"))
        .local("kb", "", 120, Some("b"));
    assert_eq!(
        s.adopt().to_string(),
        "1 paired (1 by Message-ID and size), 2 held as ambiguous (1 on the server, 1 local)"
    );
}

/// A message as both sides may hold it: its identity, and whether it has a Message-ID.
#[derive(Clone, Debug)]
struct Msg {
    mid: Option<u8>,
    size: u64,
    body: u8,
}

fn msgs() -> impl Strategy<Value = Vec<(Msg, u8, u8)>> {
    // Each message: how many copies the server holds (0-2) and the Maildir holds (0-2).
    prop::collection::vec(
        (
            (prop::option::of(0u8..6), 1u64..4, 0u8..4).prop_map(|(mid, size, body)| Msg {
                mid,
                size,
                body,
            }),
            0u8..3,
            0u8..3,
        ),
        0..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever the two sides hold: a pair always joins one message's copies, no UID or
    /// file is paired twice or both paired and held, nothing is deleted, and a message
    /// held is neither fetched nor appended.
    #[test]
    fn rule_21_adoption_never_pairs_different_messages_and_never_deletes(spec in msgs()) {
        let mut s = Sides::default();
        let mut truth_uid: BTreeMap<Uid, (Option<u8>, u64, u8)> = BTreeMap::new();
        let mut truth_key: BTreeMap<MaildirKey, (Option<u8>, u64, u8)> = BTreeMap::new();
        let (mut uid, mut n) = (0u32, 0u32);
        for (m, on_server, on_disk) in &spec {
            let identity = (m.mid, m.size * 100 + u64::from(m.body), m.body);
            let mid = m.mid.map(|x| format!("m{x}"));
            let size = identity.1;
            // The content hash is the identity itself: equal only for equal messages.
            let h = hash((m.mid.unwrap_or(9) * 16 + m.body) ^ (m.size as u8) << 5);
            for _ in 0..*on_server {
                uid += 1;
                s.server(uid, "", size, mid.as_deref());
                s.evidence.remote_hashes.insert(Uid(uid), h);
                truth_uid.insert(Uid(uid), identity);
            }
            for _ in 0..*on_disk {
                n += 1;
                let key = format!("k{n}");
                s.local(&key, "", size, mid.as_deref());
                s.evidence.local.get_mut(&k(&key)).unwrap().hash = Some(h);
                truth_key.insert(k(&key), identity);
            }
        }
        let (a, p) = s.plan();
        let mut seen_uids = BTreeSet::new();
        let mut seen_keys = BTreeSet::new();
        for (pair, _) in &a.pairs {
            prop_assert_eq!(truth_uid[&pair.uid], truth_key[&pair.key]);
            prop_assert!(seen_uids.insert(pair.uid));
            prop_assert!(seen_keys.insert(pair.key.clone()));
            prop_assert!(!a.held_remote.contains_key(&pair.uid));
            prop_assert!(!a.held_local.contains_key(&pair.key));
        }
        let (fetched, appended) = transfers(&p);
        for u in &fetched {
            prop_assert!(!a.held_remote.contains_key(&Uid(*u)));
        }
        for key in &appended {
            prop_assert!(!a.held_local.contains_key(&k(key)));
        }
        prop_assert!(p.actions.iter().all(|a| !a.is_deletion()));
        // A message held as many times on each side, with nothing alike beside it, is
        // paired in full.
        for (m, on_server, on_disk) in &spec {
            let alike = spec.iter().filter(|(o, _, _)| o.mid == m.mid && (m.mid.is_some() || o.size * 100 + u64::from(o.body) == m.size * 100 + u64::from(m.body))).count();
            if alike == 1 && on_server == on_disk && *on_server > 0 {
                let identity = (m.mid, m.size * 100 + u64::from(m.body), m.body);
                let paired = a.pairs.iter().filter(|(p, _)| truth_uid[&p.uid] == identity).count();
                prop_assert_eq!(paired, usize::from(*on_server));
            }
        }
    }
}
