//! The planner through its public API only, as the engine and `syncmail sync --dry-run`
//! use it: build the three inputs, plan, and print. Pins the dry-run rendering.

use std::collections::{BTreeMap, BTreeSet};

use syncmail::model::{AccountName, Flag, Flags, FolderName, MaildirKey, ModSeq, Uid, UidValidity};
use syncmail::sync::{
    Action, Base, FolderPass, LocalMessage, LocalSnapshot, MessageId, Pair, Policy, RemoteListing,
    RemoteMessage, RemoteSnapshot, Timestamp, detect_moves, plan,
};

use crate::support::flags::flags;

fn pair(uid: u32, key: &str, f: Flags) -> Pair {
    Pair {
        uid: Uid(uid),
        key: MaildirKey(key.into()),
        remote_flags: f.clone(),
        local_flags: f,
        remote_size: 100 + u64::from(uid),
        local_size: 100 + u64::from(uid),
        message_id: Some(MessageId(format!("<{uid}@example.org>"))),
        email_id: None,
    }
}

fn remote_message(uid: u32, f: Flags) -> RemoteMessage {
    RemoteMessage {
        flags: f,
        size: 100 + u64::from(uid),
        message_id: Some(MessageId(format!("<{uid}@example.org>"))),
        email_id: None,
    }
}

#[test]
fn dry_run_of_a_typical_incremental_pass() {
    let seen = flags(&[Flag::Seen]);
    let mut base = Base::empty(FolderName("INBOX".into()));
    base.uid_validity = Some(UidValidity(7));
    base.highest_modseq = Some(ModSeq(500));
    base.highest_uid_pulled = Some(Uid(4));
    for (uid, key) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        base.pairs.insert(Uid(uid), pair(uid, key, seen.clone()));
    }

    // Server: UID 2 flagged elsewhere, UID 4 expunged elsewhere, UIDs 5 and 6 new.
    let remote = RemoteSnapshot {
        uid_validity: UidValidity(7),
        highest_modseq: Some(ModSeq(520)),
        uid_next: Uid(7),
        listing: RemoteListing::Changes {
            changed: BTreeMap::from([
                (
                    Uid(2),
                    remote_message(2, flags(&[Flag::Seen, Flag::Flagged])),
                ),
                (Uid(5), remote_message(5, Flags::new())),
                (Uid(6), remote_message(6, Flags::new())),
            ]),
            vanished: BTreeSet::from([Uid(4)]),
        },
    };
    // Maildir: `a` answered, `c` deleted, a draft saved.
    let mut messages: BTreeMap<MaildirKey, LocalMessage> = ["a", "b", "d"]
        .into_iter()
        .zip([101, 102, 104])
        .map(|(k, size)| {
            let msg = LocalMessage {
                flags: seen.clone(),
                size,
            };
            (MaildirKey(k.into()), msg)
        })
        .collect();
    messages.get_mut(&MaildirKey("a".into())).unwrap().flags = flags(&[Flag::Replied, Flag::Seen]);
    messages.insert(
        MaildirKey("draft".into()),
        LocalMessage {
            flags: flags(&[Flag::Draft]),
            size: 42,
        },
    );
    let local = LocalSnapshot {
        messages,
        stable: true,
        carries_keywords: false,
    };
    let policy = Policy::new(AccountName("work".into()));

    let p = plan(&remote, &local, &base, &policy, Timestamp(1_763_800_000));
    let expected = "\
folder INBOX: 8 action(s), 5 change(s), 0 conflict(s)
  do: fetch UID 5:6 (2 message(s))
  do: append draft (\\Draft)
  do: store UID 1 (UNCHANGEDSINCE 520) +FLAGS.SILENT (\\Answered)
  do: rename b to :2,FS
  do: record UID 1 flags server RS maildir RS
  do: record UID 2 flags server FS maildir FS
  do: delete UID 3 on the server (\\Deleted + UID EXPUNGE)
  do: delete d from the maildir
  change: maildir UID 1 / a: flags +R, propagated
  change: server UID 2 / b: flags +F, propagated
  change: maildir UID 3 / c: deleted, propagated
  change: server UID 4 / d: deleted, propagated
  change: maildir draft: new, propagated
";
    assert_eq!(p.to_string(), expected);
    assert!(p.halt.is_none());

    // The same plan through the account-level step: one folder, nothing to pair.
    let mut passes = [FolderPass {
        remote: &remote,
        local: &local,
        base: &base,
        policy: &policy,
        plan: p.clone(),
    }];
    assert!(detect_moves(&mut passes, true, &Default::default()).is_empty());
    assert_eq!(passes[0].plan, p);
    assert!(matches!(p.actions[0], Action::Fetch { .. }));
}
