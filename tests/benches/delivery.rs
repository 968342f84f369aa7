//! Durable delivery throughput: 10,000 messages of realistic sizes, delivered in batches
//! with one round of syncs per batch, against one fsync (file + directory) per message,
//! in the same run. Also the whole pull protocol (intents journaled, batch delivered and
//! made durable, pairs committed) to show what the engine can expect.
//!
//! `cargo bench --bench delivery` (env `SYNCMAIL_BENCH_MESSAGES` to change the count,
//! `SYNCMAIL_BENCH_BATCH` the batch size, `SYNCMAIL_BENCH_DIR` the directory). Writes under
//! the crate's target directory by default; it prints the filesystem type and warns on
//! tmpfs, where fsync costs nothing and the comparison means nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use syncmail::maildir::{DeliveryBatch, FolderMap, Layout, Maildir, Placement, new_key};
use syncmail::model::{Flag, Flags, FolderName, Uid};
use syncmail::store::{Commit, IntentSpec, Pair, Store};

/// Deterministic sizes: the suite's xorshift, shared rather than copied.
#[path = "../suite/support/rng.rs"]
mod rng;
use rng::Rng;

/// Most mail is 2-8 KiB; about 5% carries an attachment of 100-300 KiB; one in a
/// thousand is around 1 MiB.
fn sizes(n: usize) -> Vec<usize> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    (0..n)
        .map(|_| match rng.next() % 1000 {
            0 => rng.range(900 << 10, 1100 << 10),
            1..=50 => rng.range(100 << 10, 300 << 10),
            _ => rng.range(2 << 10, 8 << 10),
        })
        .collect()
}

fn message(i: usize, size: usize) -> Vec<u8> {
    let mut m =
        format!("Message-ID: <{i}@bench.example>\r\nSubject: bench {i}\r\n\r\n").into_bytes();
    let line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    while m.len() < size {
        m.extend_from_slice(&line[..line.len().min(size - m.len())]);
    }
    m
}

fn placement(i: usize) -> Placement {
    if i.is_multiple_of(2) {
        Placement::New
    } else {
        Placement::Cur(Flags::new().with(Flag::Seen))
    }
}

fn fresh_folder(base: &Path, name: &str) -> Maildir {
    let root = base.join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let map = FolderMap::new(&root, Layout::MaildirPlusPlus, Some('/'));
    Maildir::open(map.create(&FolderName("INBOX".into())).unwrap()).unwrap()
}

fn count_files(md: &Maildir) -> usize {
    let scan = md.scan().unwrap();
    assert!(scan.duplicates.is_empty() && scan.skipped.is_empty());
    scan.messages.len()
}

/// Returns the total time and the part spent in `commit_durable`.
fn batched(md: &Maildir, msgs: &[Vec<u8>], batch_size: usize) -> (Duration, Duration) {
    let start = Instant::now();
    let mut in_commit = Duration::ZERO;
    for (c, chunk) in msgs.chunks(batch_size).enumerate() {
        let mut batch = DeliveryBatch::new(md);
        for (j, m) in chunk.iter().enumerate() {
            batch
                .deliver(new_key(), m, placement(c * batch_size + j))
                .unwrap();
        }
        let t = Instant::now();
        batch.commit_durable().unwrap();
        in_commit += t.elapsed();
    }
    (start.elapsed(), in_commit)
}

fn per_message(md: &Maildir, msgs: &[Vec<u8>]) -> Duration {
    let start = Instant::now();
    let mut batch = DeliveryBatch::new(md).sync_each(true);
    for (i, m) in msgs.iter().enumerate() {
        batch.deliver(new_key(), m, placement(i)).unwrap();
    }
    batch.commit_durable().unwrap();
    start.elapsed()
}

fn open_store(base: &Path) -> Store {
    let _ = std::fs::remove_dir_all(base.join("state"));
    Store::open(&base.join("state/bench.sqlite3")).unwrap()
}

fn journaled(
    store: &Store,
    md: &Maildir,
    msgs: &[Vec<u8>],
    batch_size: usize,
    first_uid: u32,
) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let folder = store
            .ensure_folder(&FolderName("INBOX".into()), md.path())
            .await
            .unwrap();
        let start = Instant::now();
        let mut uid = first_uid;
        for (c, chunk) in msgs.chunks(batch_size).enumerate() {
            let planned: Vec<_> = chunk
                .iter()
                .map(|_| {
                    uid += 1;
                    (Uid(uid), new_key())
                })
                .collect();
            let specs = planned
                .iter()
                .map(|(u, k)| IntentSpec::deliver(folder.id, *u, k.clone(), &Flags::new()))
                .collect();
            let ids = store.begin_intents(specs, SystemTime::now()).await.unwrap();
            let mut batch = DeliveryBatch::new(md);
            for (j, (m, (_, k))) in chunk.iter().zip(&planned).enumerate() {
                batch
                    .deliver(k.clone(), m, placement(c * batch_size + j))
                    .unwrap();
            }
            let delivered = batch.commit_durable().unwrap();
            let pairs = planned
                .iter()
                .zip(&delivered)
                .map(|((u, k), d)| Pair::synced(*u, k.clone(), d.flags.clone(), d.size, None))
                .collect();
            store
                .commit(Commit {
                    folder: Some(folder.id),
                    upsert_pairs: pairs,
                    complete_intents: ids,
                    ..Commit::default()
                })
                .await
                .unwrap();
        }
        start.elapsed()
    })
}

/// The type of the filesystem holding `path`, from the longest matching mount point.
fn fs_type(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && path.starts_with(f[1])).then(|| (f[1].len(), f[2].to_owned()))
        })
        .max()
        .map(|(_, t)| t)
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing useful.
    let n: usize = std::env::var("SYNCMAIL_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let batch_size: usize = std::env::var("SYNCMAIL_BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let base = std::env::var_os("SYNCMAIL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
        .join("bench-delivery");
    std::fs::create_dir_all(&base).unwrap();
    let fs = fs_type(&base);
    if fs == "tmpfs" {
        println!(
            "WARNING: {} is on tmpfs; fsync is free there",
            base.display()
        );
    }
    let sizes = sizes(n);
    let total: usize = sizes.iter().sum();
    let msgs: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| message(i, s))
        .collect();
    println!(
        "delivering {n} messages ({:.1} MiB, {} over 100 KiB, {} over 900 KiB) into {} ({fs})",
        total as f64 / (1 << 20) as f64,
        sizes.iter().filter(|&&s| s >= 100 << 10).count(),
        sizes.iter().filter(|&&s| s >= 900 << 10).count(),
        base.display()
    );

    // The modes take turns, one batch-sized slice of the messages at a time, so load
    // from other processes on a shared machine falls on all of them alike.
    let slice = batch_size;
    let mut ratios = Vec::new();
    let md_batched = fresh_folder(&base, "batched");
    let md_journaled = fresh_folder(&base, "journaled");
    let md_each = fresh_folder(&base, "per-message");
    let store = open_store(&base);
    let (mut t_batched, mut t_journaled, mut t_each) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut t_commit = Duration::ZERO;
    for (r, part) in msgs.chunks(slice).enumerate() {
        let (b, c) = batched(&md_batched, part, batch_size);
        t_batched += b;
        t_commit += c;
        t_journaled += journaled(&store, &md_journaled, part, batch_size, (r * slice) as u32);
        let e = per_message(&md_each, part);
        t_each += e;
        ratios.push(e.as_secs_f64() / b.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    assert_eq!(count_files(&md_batched), n);
    assert_eq!(count_files(&md_journaled), n);
    assert_eq!(count_files(&md_each), n);

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "batched ({batch_size}/batch):        {:>9.0} msg/s  ({:.2?}, of which {:.2?} waiting in commit_durable)",
        rate(t_batched),
        t_batched,
        t_commit
    );
    println!(
        "batched + intents + commit: {:>9.0} msg/s  ({:.2?})",
        rate(t_journaled),
        t_journaled
    );
    println!(
        "one fsync per message:      {:>9.0} msg/s  ({:.2?})",
        rate(t_each),
        t_each
    );
    println!(
        "batched is {:.1}x faster than per-message fsync (target: 5x); per-round ratios: \
         min {:.1}x, median {:.1}x, max {:.1}x over {} rounds",
        t_each.as_secs_f64() / t_batched.as_secs_f64(),
        ratios.first().copied().unwrap_or(0.0),
        ratios.get(ratios.len() / 2).copied().unwrap_or(0.0),
        ratios.last().copied().unwrap_or(0.0),
        ratios.len()
    );
    let _ = std::fs::remove_dir_all(&base);
}
