//! Planning cost for a large, unchanged folder: 100,000 pairs, complete listing (the
//! worst case; QRESYNC passes list nothing) and a stable scan. Run with
//! `cargo bench --bench plan`; prints the median of several runs.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use syncmail::model::{AccountName, Flag, Flags, FolderName, MaildirKey, Uid, UidValidity};
use syncmail::sync::{
    Base, LocalMessage, LocalSnapshot, MessageId, Pair, Policy, RemoteListing, RemoteMessage,
    RemoteSnapshot, Timestamp, plan,
};

const PAIRS: u32 = 100_000;
const RUNS: usize = 15;

fn flags(i: u32) -> Flags {
    let mut f = Flags::new();
    if !i.is_multiple_of(3) {
        f.insert(Flag::Seen);
    }
    if i.is_multiple_of(17) {
        f.insert(Flag::Flagged);
    }
    if i.is_multiple_of(29) {
        f.insert(Flag::Replied);
    }
    f
}

fn main() {
    // Keys in delivery order, like UIDs (what syncmail's own deliveries produce), then
    // keys in an order unrelated to UIDs (a Maildir filled by another tool).
    bench("keys in delivery order", |i| i);
    bench("keys in random order", |i| {
        i.wrapping_mul(2_654_435_761) % 1_000_003
    });
}

fn bench(label: &str, key_order: impl Fn(u32) -> u32) {
    let mut base = Base::empty(FolderName("INBOX".into()));
    base.uid_validity = Some(UidValidity(1));
    let mut remote = BTreeMap::new();
    let mut local = BTreeMap::new();
    for i in 1..=PAIRS {
        let uid = Uid(i);
        // Realistic Maildir unique parts: a shared time prefix, then per-delivery parts.
        let key = MaildirKey(format!(
            "{}.M{}P{}Q{}.mail.example.org",
            1_700_000_000 + key_order(i) / 50,
            key_order(i) * 7919 % 1_000_003,
            4000 + i % 300,
            i
        ));
        let size = 2_000 + u64::from(i % 50_000);
        let message_id = Some(MessageId(format!("<{i}.{}@example.org>", i * 31)));
        remote.insert(
            uid,
            RemoteMessage {
                flags: flags(i),
                size,
                message_id: message_id.clone(),
                email_id: None,
            },
        );
        local.insert(
            key.clone(),
            LocalMessage {
                flags: flags(i),
                size: size + 40,
            },
        );
        base.pairs.insert(
            uid,
            Pair {
                uid,
                key,
                remote_flags: flags(i),
                local_flags: flags(i),
                remote_size: size,
                local_size: size + 40,
                message_id,
                email_id: None,
            },
        );
    }
    let remote = RemoteSnapshot {
        uid_validity: UidValidity(1),
        highest_modseq: None,
        uid_next: Uid(PAIRS + 1),
        listing: RemoteListing::Complete(remote),
    };
    let local = LocalSnapshot {
        messages: local,
        stable: true,
        carries_keywords: false,
    };
    let policy = Policy::new(AccountName("bench".into()));

    let cpu_before = thread_cpu_ticks();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let p = plan(
                black_box(&remote),
                black_box(&local),
                black_box(&base),
                &policy,
                Timestamp(0),
            );
            let elapsed = start.elapsed();
            assert!(p.is_empty(), "an unchanged folder must plan nothing");
            elapsed
        })
        .collect();
    let cpu = thread_cpu_ticks()
        .zip(cpu_before)
        .map(|(after, before)| {
            format!(
                ", CPU {:.1} ms/run",
                (after - before) as f64 * 10.0 / RUNS as f64
            )
        })
        .unwrap_or_default();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "plan(): {PAIRS} unchanged pairs, complete listing, {label}: median {:.1} ms \
         (min {:.1}, max {:.1}, {RUNS} runs{cpu})",
        ms(times[RUNS / 2]),
        ms(times[0]),
        ms(times[RUNS - 1])
    );
}

/// This thread's user + system CPU time in clock ticks (Linux, 100 Hz), so a run on a
/// busy machine can tell waiting for a core from working. None elsewhere.
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
