//! Fault points for crash tests, a crate-wide test facility: `point("name")` aborts the
//! process (no unwinding, no destructors, like kill -9) when the environment variable
//! `SYNCMAIL_FAULT` equals `name`, or is `#N` and this is the N-th fault point the
//! process reaches, whatever its name (so a test can crash a pass at every step in turn).
//! Without the variable it is one cached comparison.
//!
//! Pause points, the same facility for races: `pause("name")` sleeps for N ms when
//! `SYNCMAIL_PAUSE` is `name=N` (or names it among others: `a=N;b=M`), so a test can
//! change the Maildir or the server at an exact step of a pass (`checked`: after a pass
//! over every folder asked all their numbers, before it observes the ones that moved;
//! `observed:FOLDER`: after that folder was observed and planned, each time; `window`:
//! before a large folder's first pass lists its next window of messages).
//!
//! Points inside the library: `deliver-mid-place` (in
//! [`crate::maildir::DeliveryBatch::commit_durable`], after the first file got its
//! visible name, before the directories are synced), and the engine's and the POP3
//! poller's steps (`after-intent`, `before-durable`, `after-deliver`, `before-append`,
//! `pop3-dele-pending`, ...). Tests add their own around their steps.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the fault point to crash at.
pub const FAULT_ENV: &str = "SYNCMAIL_FAULT";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(FAULT_ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

static REACHED: AtomicU64 = AtomicU64::new(0);

/// Abort here if this fault point is armed.
pub fn point(name: &str) {
    let Some(armed) = armed() else {
        return;
    };
    let nth = REACHED.fetch_add(1, Ordering::Relaxed) + 1;
    let hit = match armed.strip_prefix('#') {
        Some(n) => n.parse::<u64>().ok() == Some(nth),
        None => armed == name,
    };
    if hit {
        eprintln!("syncmail: fault point {name:?} (#{nth}) reached; aborting");
        std::process::abort();
    }
}

/// The environment variable naming the pause point and its length: `name=millis`.
pub const PAUSE_ENV: &str = "SYNCMAIL_PAUSE";

/// Several points may be armed at once: `a=N;b=M`.
fn pause_armed() -> &'static [(String, u64)] {
    static ARMED: OnceLock<Vec<(String, u64)>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let value = std::env::var(PAUSE_ENV).unwrap_or_default();
        value
            .split(';')
            .filter_map(|one| {
                let (name, ms) = one.rsplit_once('=')?;
                Some((name.to_owned(), ms.parse().ok()?))
            })
            .collect()
    })
}

/// Sleep here (blocking the thread) if this pause point is armed.
pub fn pause(name: &str) {
    if let Some((_, ms)) = pause_armed().iter().find(|(armed, _)| armed == name) {
        eprintln!("syncmail: pause point {name:?}: {ms} ms");
        std::thread::sleep(std::time::Duration::from_millis(*ms));
    }
}
