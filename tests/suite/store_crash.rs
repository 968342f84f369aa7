//! Rule 1: a process killed between delivering messages and committing their pairs leaves
//! a state the next start recovers from, with no message lost and none duplicated.
//!
//! The test re-runs its own binary as a child (`--exact <this test>`) with
//! `SYNCMAIL_FAULT` naming a fault point; the child runs the delivery protocol and aborts
//! there. The parent then recovers like a fresh start and runs the next "pass".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use syncmail::engine::resolve_delivery_intents;
use syncmail::fault;
use syncmail::maildir::{DeliveryBatch, FolderMap, Layout, Maildir, Placement, new_key};
use syncmail::model::{AccountName, Flag, Flags, FolderName, Uid};
use syncmail::store::{AccountLock, Commit, IntentSpec, Pair, Store};

use crate::support::test_in_child;

const CHILD_DIR_ENV: &str = "SYNCMAIL_TEST_CRASH_DIR";
const TEST_NAME: &str = "rule_01_crash_between_delivery_and_commit_recovers";
/// The "server": UIDs 1..=SERVER_MESSAGES.
const SERVER_MESSAGES: u32 = 20;
/// Delivered and committed before the crashing batch.
const ALREADY_SYNCED: u32 = 5;

fn server_message(uid: u32) -> Vec<u8> {
    format!(
        "Message-ID: <{uid}@example.org>\r\nSubject: message {uid}\r\n\r\n{}\r\n",
        "body line\r\n".repeat(uid as usize * 7)
    )
    .into_bytes()
}

fn server_flags(uid: u32) -> Flags {
    if uid.is_multiple_of(3) {
        Flags::new().with(Flag::Seen)
    } else {
        Flags::new()
    }
}

struct Account {
    store: Store,
    md: Maildir,
    folder: syncmail::store::FolderId,
    _lock: AccountLock,
}

async fn open_account(dir: &Path) -> Account {
    let state = dir.join("state");
    let lock = AccountLock::acquire(&state, &AccountName("crash".into())).unwrap();
    let store = Store::open(&state.join("crash.sqlite3")).unwrap();
    let map = FolderMap::new(dir.join("mail"), Layout::MaildirPlusPlus, Some('/'));
    std::fs::create_dir_all(&map.root).unwrap();
    let inbox = FolderName("INBOX".into());
    let path = map.create(&inbox).unwrap();
    let folder = store.ensure_folder(&inbox, &path).await.unwrap();
    Account {
        store,
        md: Maildir::open(path).unwrap(),
        folder: folder.id,
        _lock: lock,
    }
}

/// One pass of the engine's pull protocol for the given UIDs: journal intents with the
/// planned keys, deliver, make the batch durable, commit pairs + close intents.
async fn pull(acct: &Account, uids: &[u32]) {
    let planned: Vec<(u32, syncmail::model::MaildirKey)> =
        uids.iter().map(|&u| (u, new_key())).collect();
    let specs = planned
        .iter()
        .map(|(u, k)| IntentSpec::deliver(acct.folder, Uid(*u), k.clone(), &server_flags(*u)))
        .collect();
    let ids = acct
        .store
        .begin_intents(specs, SystemTime::now())
        .await
        .unwrap();
    fault::point("after-intents");
    let mut batch = DeliveryBatch::new(&acct.md);
    for (u, k) in &planned {
        let flags = server_flags(*u);
        let placement = if flags.is_empty() {
            Placement::New
        } else {
            Placement::Cur(flags)
        };
        batch
            .deliver(k.clone(), &server_message(*u), placement)
            .unwrap();
    }
    fault::point("before-durable");
    let delivered = batch.commit_durable().unwrap();
    fault::point("after-deliver");
    let pairs = planned
        .iter()
        .zip(&delivered)
        .map(|((u, k), d)| Pair::synced(Uid(*u), k.clone(), server_flags(*u), d.size, None))
        .collect();
    acct.store
        .commit(Commit {
            folder: Some(acct.folder),
            upsert_pairs: pairs,
            complete_intents: ids,
            ..Commit::default()
        })
        .await
        .unwrap();
}

/// What the next start does: recover, then pull whatever is not paired.
async fn next_start(dir: &Path) -> Account {
    let acct = open_account(dir).await;
    let report = resolve_delivery_intents(&acct.store).await.unwrap();
    assert!(report.unresolved.is_empty(), "{report:?}");
    assert!(acct.store.open_intents().await.unwrap().is_empty());
    let paired: Vec<u32> = acct
        .store
        .pairs(acct.folder)
        .await
        .unwrap()
        .iter()
        .map(|p| p.uid.0)
        .collect();
    let missing: Vec<u32> = (1..=SERVER_MESSAGES)
        .filter(|u| !paired.contains(u))
        .collect();
    if !missing.is_empty() {
        pull(&acct, &missing).await;
    }
    acct
}

fn child(dir: PathBuf) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let acct = open_account(&dir).await;
        pull(
            &acct,
            &(ALREADY_SYNCED + 1..=SERVER_MESSAGES).collect::<Vec<_>>(),
        )
        .await;
    });
    // Reaching here means the fault point never fired; the parent treats exit 0 as a
    // test failure.
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn rule_01_crash_between_delivery_and_commit_recovers() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        child(PathBuf::from(dir));
        return;
    }
    // (fault point, how many of the crashing batch recovery should find delivered)
    let batch = (SERVER_MESSAGES - ALREADY_SYNCED) as usize;
    let cases = [
        ("after-intents", 0),
        ("before-durable", 0),
        ("deliver-mid-place", 1),
        ("after-deliver", batch),
    ];
    for (fault_point, expect_found) in cases {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        // An earlier, clean pass (in this process, before the fault is armed anywhere).
        rt.block_on(async {
            let acct = open_account(dir.path()).await;
            pull(&acct, &(1..=ALREADY_SYNCED).collect::<Vec<_>>()).await;
        });
        let status = test_in_child(module_path!(), TEST_NAME)
            .env(CHILD_DIR_ENV, dir.path())
            .env(fault::FAULT_ENV, fault_point)
            .status()
            .unwrap();
        assert!(!status.success(), "{fault_point}: child did not crash");

        rt.block_on(async {
            // The crash left open intents for the whole batch.
            {
                let store = Store::open(&dir.path().join("state/crash.sqlite3")).unwrap();
                assert_eq!(
                    store.open_intents().await.unwrap().len(),
                    batch,
                    "{fault_point}"
                );
                let f = store.folders().await.unwrap();
                assert_eq!(
                    store.pairs(f[0].id).await.unwrap().len(),
                    ALREADY_SYNCED as usize,
                    "{fault_point}"
                );
                let report = resolve_delivery_intents(&store).await.unwrap();
                assert_eq!(
                    report.completed.len(),
                    expect_found,
                    "{fault_point}: {report:?}"
                );
                assert_eq!(report.dropped.len(), batch - expect_found, "{fault_point}");
            }
            let acct = next_start(dir.path()).await;

            // Every server message is paired exactly once, to a file with its content.
            let pairs = acct.store.pairs(acct.folder).await.unwrap();
            assert_eq!(pairs.len(), SERVER_MESSAGES as usize, "{fault_point}");
            let scan = acct.md.scan().unwrap();
            assert!(scan.stable);
            assert!(scan.duplicates.is_empty(), "{fault_point}");
            assert!(scan.skipped.is_empty(), "{fault_point}");
            assert_eq!(
                scan.messages.len(),
                SERVER_MESSAGES as usize,
                "{fault_point}: no lost, no duplicated file"
            );
            let mut by_key = BTreeMap::new();
            for p in &pairs {
                let msg = &scan.messages[&p.key];
                assert_eq!(std::fs::read(&msg.path).unwrap(), server_message(p.uid.0));
                assert_eq!(msg.size, p.local_size);
                assert_eq!(p.local_flags, server_flags(p.uid.0));
                assert_eq!(msg.flags, server_flags(p.uid.0));
                by_key.insert(p.key.clone(), p.uid);
            }
            assert_eq!(by_key.len(), pairs.len());
            assert!(
                files_in(&acct.md.tmp_dir()).is_empty(),
                "{fault_point}: tmp/ leftovers"
            );
            assert!(acct.store.open_intents().await.unwrap().is_empty());
        });
    }
}
