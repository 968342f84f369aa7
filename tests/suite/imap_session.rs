//! The IMAP operations of a sync pass against a real Dovecot: QRESYNC select, flag
//! listings, checked body fetches, APPENDUID, conditional STORE, and deletion of exactly
//! our own UIDs.

use syncmail::imap::{self, ImapSession};
use syncmail::model::{Flag, Uid};

use crate::support::account::{account, secret_of};
use crate::support::dovecot::message;
use crate::support::flags::flags;
use crate::support::{DEFAULT_PASSWORD, Dovecot};

async fn session(dovecot: &Dovecot, user: &str) -> ImapSession {
    let account = account(&dovecot.imap_account("t", user, "implicit"));
    let (secret, kind) = secret_of(&account).await;
    assert_eq!(secret.expose(), DEFAULT_PASSWORD);
    let connected = imap::connect(&account.server, &secret, kind).await.unwrap();
    ImapSession::new(connected, account.server.timeout)
        .await
        .unwrap()
}

fn seed(dovecot: &Dovecot, n: usize) {
    for i in 1..=n {
        dovecot.seed(
            "alice",
            "INBOX",
            &message(
                &format!("m{i}"),
                &format!("m{i}@test"),
                &format!("body {i}"),
            ),
        );
    }
}

#[tokio::test]
async fn qresync_select_reports_only_what_changed() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 3);
    let mut s = session(&dovecot, "alice").await;
    assert!(s.has_qresync(), "Dovecot offers QRESYNC");
    let first = s.select("INBOX", None).await.unwrap();
    assert_eq!(first.exists, 3);
    assert_eq!(first.uidnext, Some(Uid(4)));
    let (uv, ms) = (first.uidvalidity.unwrap(), first.highestmodseq.unwrap());

    // Unchanged: the incremental select reports nothing.
    let again = s.select("INBOX", Some((uv, ms))).await.unwrap();
    assert!(
        again.resynced && again.changed.is_empty() && again.vanished.is_empty(),
        "{again:?}"
    );

    // Another client flags 2 and expunges 3.
    dovecot.add_flags("alice", "INBOX", 2, "\\Flagged");
    dovecot.expunge("alice", "INBOX", 3);
    let delta = s.select("INBOX", Some((uv, ms))).await.unwrap();
    assert!(delta.resynced);
    assert_eq!(delta.changed.keys().copied().collect::<Vec<_>>(), [Uid(2)]);
    assert!(delta.changed[&Uid(2)].contains(Flag::Flagged));
    assert_eq!(delta.vanished.iter().copied().collect::<Vec<_>>(), [Uid(3)]);
    assert!(delta.highestmodseq.unwrap() > ms);

    // A stale UIDVALIDITY makes the answer non-incremental, never trusted.
    let stale = s
        .select("INBOX", Some((syncmail::model::UidValidity(uv.0 - 1), ms)))
        .await
        .unwrap();
    assert!(!stale.resynced && stale.vanished.is_empty());
}

#[tokio::test]
async fn flag_listing_full_and_changed_since() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 2);
    dovecot.add_flags("alice", "INBOX", 1, "\\Seen $Junk");
    let mut s = session(&dovecot, "alice").await;
    let sel = s.select("INBOX", None).await.unwrap();
    let all = s.fetch_flags("1:*", None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[&Uid(1)].flags.contains(Flag::Seen));
    assert!(all[&Uid(1)].flags.keywords().contains("$Junk"));
    assert!(all[&Uid(2)].size.unwrap() > 0);
    dovecot.add_flags("alice", "INBOX", 2, "\\Answered");
    let changed = s.fetch_flags("1:*", sel.highestmodseq).await.unwrap();
    assert_eq!(changed.keys().copied().collect::<Vec<_>>(), [Uid(2)]);
    assert_eq!(s.all_uids().await.unwrap().len(), 2);
}

#[tokio::test]
async fn rule_12_bodies_are_fetched_with_peek_and_missing_uids_reported() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 2);
    let mut s = session(&dovecot, "alice").await;
    s.select("INBOX", None).await.unwrap();
    let mut got = Vec::new();
    let missing = s
        .fetch_bodies(&[Uid(1), Uid(2), Uid(99)], |m| {
            got.push((m.uid, m.body.to_vec(), m.internaldate.map(str::to_owned)));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        missing.into_iter().collect::<Vec<_>>(),
        [Uid(99)],
        "a UID that did not come back is reported"
    );
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1, message("m1", "m1@test", "body 1"), "byte-exact");
    assert!(got[0].2.is_some(), "INTERNALDATE");
    for (uid, flags) in dovecot.list("alice", "INBOX") {
        assert!(
            !flags.contains("\\Seen"),
            "uid {uid} was marked seen by syncing"
        );
    }
}

#[tokio::test]
async fn append_returns_appenduid_with_flags_and_date() {
    let dovecot = Dovecot::start();
    let mut s = session(&dovecot, "alice").await;
    let sel = s.select("INBOX", None).await.unwrap();
    let body = message("new", "new@test", "hello");
    let mut f = flags(&[Flag::Seen, Flag::Flagged]);
    f.insert_keyword("work");
    let (uv, uid) = s
        .append("INBOX", &f, Some("21-Nov-2026 10:00:00 +0000"), &body)
        .await
        .unwrap()
        .expect("Dovecot has UIDPLUS");
    assert_eq!(Some(uv), sel.uidvalidity);
    assert_eq!(uid, Uid(1));
    let listed = dovecot.list("alice", "INBOX");
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].1.contains("\\Seen")
            && listed[0].1.contains("\\Flagged")
            && listed[0].1.contains("work"),
        "{listed:?}"
    );
    let ids = s.fetch_identities("1:*").await.unwrap();
    assert_eq!(
        ids[&uid],
        (
            Some(syncmail::model::MessageId("<new@test>".to_owned())),
            body.len() as u64
        )
    );
    assert_eq!(
        s.search("HEADER Message-ID \"<new@test>\"")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn rule_10_conditional_store_refuses_what_changed_meanwhile() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 2);
    let mut s = session(&dovecot, "alice").await;
    let sel = s.select("INBOX", None).await.unwrap();
    let ms = sel.highestmodseq.unwrap();
    // Another client touches 2 after we observed.
    dovecot.add_flags("alice", "INBOX", 2, "\\Answered");
    let out = s
        .store(&[Uid(1), Uid(2)], true, &flags(&[Flag::Seen]), Some(ms))
        .await
        .unwrap();
    assert_eq!(out.modified.into_iter().collect::<Vec<_>>(), [Uid(2)]);
    let listed = dovecot.list("alice", "INBOX");
    assert!(listed[0].1.contains("\\Seen"), "1 was unchanged: stored");
    assert!(
        !listed[1].1.contains("\\Seen"),
        "2 changed meanwhile: refused, to be re-merged"
    );
    // -FLAGS removes only what is named; \Answered set by the other client stays.
    s.store(&[Uid(2)], false, &flags(&[Flag::Seen]), None)
        .await
        .unwrap();
    assert!(dovecot.list("alice", "INBOX")[1].1.contains("\\Answered"));
}

#[tokio::test]
async fn rule_08_delete_expunges_exactly_our_uids() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 3);
    // Another client marked 3 \Deleted but has not expunged it.
    dovecot.add_flags("alice", "INBOX", 3, "\\Deleted");
    let mut s = session(&dovecot, "alice").await;
    s.select("INBOX", None).await.unwrap();
    assert_eq!(
        s.delete(&[Uid(1)]).await.unwrap(),
        syncmail::imap::Deleted::Expunged
    );
    let uids: Vec<u32> = dovecot
        .list("alice", "INBOX")
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(
        uids,
        [2, 3],
        "only UID 1 is gone; the other client's \\Deleted 3 is untouched"
    );
}

#[tokio::test]
async fn move_reports_new_uids_and_create_makes_folders() {
    let dovecot = Dovecot::start();
    seed(&dovecot, 2);
    let mut s = session(&dovecot, "alice").await;
    s.create("Archive/2026").await.unwrap();
    s.select("INBOX", None).await.unwrap();
    let mapping = s.move_to(&[Uid(2)], "Archive/2026").await.unwrap();
    assert_eq!(mapping.into_iter().collect::<Vec<_>>(), [(Uid(2), Uid(1))]);
    assert_eq!(dovecot.list("alice", "INBOX").len(), 1);
    assert_eq!(dovecot.list("alice", "Archive/2026").len(), 1);
    let err = s.create("Archive/2026").await.unwrap_err();
    assert!(err.to_string().contains("CREATE failed"), "{err}");
}
