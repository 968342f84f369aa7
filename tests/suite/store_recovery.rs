//! Start-up resolution of delivery intents beyond the crash test's happy path: POP3
//! deliveries, keys that cannot be decided, and intents that are not ours to resolve.

use std::time::SystemTime;

use syncmail::engine::resolve_delivery_intents;
use syncmail::maildir::{DeliveryBatch, FolderMap, Layout, Maildir, Placement, new_key};
use syncmail::model::{Flag, Flags, FolderName, Uid};
use syncmail::store::{DeleState, IntentKind, IntentSpec, Store};

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    md: Maildir,
    folder: syncmail::store::FolderId,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state/t.sqlite3")).unwrap();
    let map = FolderMap::new(dir.path(), Layout::MaildirPlusPlus, Some('/'));
    let inbox = FolderName("INBOX".into());
    let path = map.create(&inbox).unwrap();
    let folder = store.ensure_folder(&inbox, &path).await.unwrap().id;
    Setup {
        store,
        md: Maildir::open(path).unwrap(),
        folder,
        _dir: dir,
    }
}

#[tokio::test]
async fn pop3_deliveries_record_their_uidl_or_are_dropped() {
    let s = setup().await;
    let (found, lost) = (new_key(), new_key());
    s.store
        .begin_intents(
            vec![
                IntentSpec::pop3_deliver(s.folder, "uidl-found", found.clone()),
                IntentSpec::pop3_deliver(s.folder, "uidl-lost", lost.clone()),
            ],
            SystemTime::now(),
        )
        .await
        .unwrap();
    let mut batch = DeliveryBatch::new(&s.md);
    batch.deliver(found.clone(), b"x", Placement::New).unwrap();
    batch.commit_durable().unwrap();
    // The other one only reached tmp/.
    std::fs::write(s.md.tmp_dir().join(&lost.0), b"partial").unwrap();

    let report = resolve_delivery_intents(&s.store).await.unwrap();
    assert_eq!(report.completed, vec![found.clone()]);
    assert_eq!(report.dropped, vec![lost.clone()]);
    assert!(!s.md.tmp_dir().join(&lost.0).exists());
    let uidls = s.store.uidls().await.unwrap();
    assert_eq!(uidls.len(), 1);
    assert_eq!(uidls[0].uidl, "uidl-found");
    assert_eq!(uidls[0].local_key, Some(found));
    assert_eq!(uidls[0].dele, DeleState::None);
    assert!(s.store.open_intents().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_journaled_flags_become_the_base_not_the_files_current_flags() {
    let s = setup().await;
    let key = new_key();
    let seen = Flags::new().with(Flag::Seen);
    s.store
        .begin_intents(
            vec![IntentSpec::deliver(s.folder, Uid(9), key.clone(), &seen)],
            SystemTime::now(),
        )
        .await
        .unwrap();
    let mut batch = DeliveryBatch::new(&s.md);
    batch
        .deliver(key.clone(), b"x", Placement::Cur(seen.clone()))
        .unwrap();
    let delivered = batch.commit_durable().unwrap();
    // Before we restart, a client flags the message.
    let flagged = format!("{}:2,FS", key.0);
    std::fs::rename(&delivered[0].path, s.md.cur_dir().join(flagged)).unwrap();

    resolve_delivery_intents(&s.store).await.unwrap();
    let pairs = s.store.pairs(s.folder).await.unwrap();
    assert_eq!(pairs.len(), 1);
    // The base is what the server had; the client's \Flagged is a change to propagate.
    assert_eq!(pairs[0].local_flags, seen);
}

#[tokio::test]
async fn undecidable_intents_stay_open_and_others_are_left_alone() {
    let s = setup().await;
    let dup = new_key();
    let ids = s
        .store
        .begin_intents(
            vec![
                IntentSpec::deliver(s.folder, Uid(1), dup.clone(), &Flags::new()),
                IntentSpec {
                    uid: Some(Uid(2)),
                    folder: Some(s.folder),
                    ..IntentSpec::new(IntentKind::Expunge)
                },
            ],
            SystemTime::now(),
        )
        .await
        .unwrap();
    // Two files carry the planned key: not ours to choose.
    std::fs::write(s.md.new_dir().join(&dup.0), b"a").unwrap();
    std::fs::write(s.md.cur_dir().join(format!("{}:2,S", dup.0)), b"b").unwrap();
    let report = resolve_delivery_intents(&s.store).await.unwrap();
    assert_eq!(report.unresolved.len(), 1);
    assert_eq!(report.unresolved[0].0, dup);
    let open: Vec<_> = s
        .store
        .open_intents()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(open, ids, "both intents remain open");
    assert!(s.store.pairs(s.folder).await.unwrap().is_empty());

    // A folder whose directory vanished: unresolved too, never "not delivered".
    std::fs::remove_dir_all(s.md.cur_dir()).unwrap();
    let report = resolve_delivery_intents(&s.store).await.unwrap();
    assert_eq!(report.unresolved.len(), 1);
    assert!(report.dropped.is_empty());
}
