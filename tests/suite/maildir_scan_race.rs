//! A scan racing a mail client that renames files (flag changes, new/ -> cur/) must never
//! report a stable result with a message missing or doubled (rule 6): a spurious "missing"
//! would become a deletion on the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use syncmail::maildir::{FolderMap, Layout, Maildir, ScanOptions, scan::scan};
use syncmail::model::{FolderName, MaildirKey};

use crate::support::rng::Rng;

const MESSAGES: usize = 1000;
const RENAMES: usize = 10_000;
/// The renamer pauses now and then so stable scans also happen mid-test, between bursts.
const BURST: usize = 2_000;
const PAUSE: Duration = Duration::from_millis(150);

#[test]
fn scan_during_10000_renames_has_no_spurious_missing_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let map = FolderMap::new(dir.path(), Layout::Verbatim, Some('/'));
    let md = Maildir::open(map.create(&FolderName("INBOX".into())).unwrap()).unwrap();
    let keys: Vec<String> = (0..MESSAGES)
        .map(|i| format!("17000{i:05}.M1P1Q{i}.host"))
        .collect();
    // Where each message is now: None = new/, Some(letters) = cur/ with those letters.
    let mut state: Vec<Option<&str>> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i % 2 == 0 {
            std::fs::write(md.new_dir().join(k), b"x").unwrap();
            state.push(None);
        } else {
            std::fs::write(md.cur_dir().join(format!("{k}:2,S")), b"x").unwrap();
            state.push(Some("S"));
        }
    }

    let done = Arc::new(AtomicBool::new(false));
    let renamer = {
        let md = md.clone();
        let keys = keys.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let letters = ["", "S", "FS", "RS", "F", "DS", "Sa", "FSab"];
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            for n in 0..RENAMES {
                let i = (rng.next() % MESSAGES as u64) as usize;
                let to = letters[(rng.next() % letters.len() as u64) as usize];
                let from = match state[i] {
                    None => md.new_dir().join(&keys[i]),
                    Some(l) => md.cur_dir().join(format!("{}:2,{l}", keys[i])),
                };
                let target = md.cur_dir().join(format!("{}:2,{to}", keys[i]));
                if from != target {
                    std::fs::rename(&from, &target).unwrap();
                }
                state[i] = Some(to);
                if (n + 1).is_multiple_of(BURST) && n + 1 < RENAMES {
                    std::thread::sleep(PAUSE);
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    // Alternate the default scan (retries until stable) with single reads, which are
    // mostly unstable during a burst: both must be exact whenever they claim stability.
    let single = ScanOptions {
        max_attempts: 1,
        ..ScanOptions::default()
    };
    let started = Instant::now();
    let (mut stable, mut unstable, mut anomalies_caught, mut retries) = (0, 0, 0, 0);
    let mut round = 0u64;
    while !done.load(Ordering::SeqCst) {
        round += 1;
        let opts = if round.is_multiple_of(2) {
            ScanOptions::default()
        } else {
            single.clone()
        };
        let scan = scan(&md, &opts).unwrap();
        retries += scan.attempts - 1;
        let exact = scan.messages.len() == MESSAGES
            && scan.duplicates.is_empty()
            && keys
                .iter()
                .all(|k| scan.messages.contains_key(&MaildirKey(k.clone())));
        if scan.stable {
            stable += 1;
            assert!(
                exact,
                "stable scan #{stable} is wrong: {} messages, {} duplicates",
                scan.messages.len(),
                scan.duplicates.len()
            );
        } else {
            unstable += 1;
            if !exact {
                anomalies_caught += 1;
            }
        }
    }
    renamer.join().unwrap();
    let elapsed = started.elapsed();

    let last = md.scan().unwrap();
    assert!(last.stable);
    assert_eq!(last.messages.len(), MESSAGES);
    assert!(last.duplicates.is_empty());
    eprintln!(
        "{RENAMES} renames in {elapsed:?}: {stable} stable scans (all exact), {unstable} \
         unstable ({anomalies_caught} of which had a missing or doubled message), \
         {retries} retries inside scans"
    );
    assert!(stable >= 1, "no scan was stable during the pauses");
    assert!(
        unstable >= 1,
        "no scan overlapped a burst: the test proved nothing"
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}
