//! Fault points for crash tests: `point("name")` aborts the process (no unwinding, no
//! destructors, like kill -9) when the environment variable `SYNCMAIL_FAULT` equals
//! `name`. Without the variable it is one cached comparison.
//!
//! Points inside the library: `deliver-mid-link` (in
//! [`crate::maildir::DeliveryBatch::commit_durable`], after the first file got its
//! visible name, before the directories are synced). Callers add their own around their
//! steps (the crash test uses `after-intents`, `before-durable`, `after-deliver`).

use std::sync::OnceLock;

/// The environment variable naming the fault point to crash at.
pub const FAULT_ENV: &str = "SYNCMAIL_FAULT";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(FAULT_ENV).ok().filter(|s| !s.is_empty()))
        .as_deref()
}

/// Abort here if this fault point is armed.
pub fn point(name: &str) {
    if armed() == Some(name) {
        eprintln!("syncmail: fault point {name:?} reached; aborting");
        std::process::abort();
    }
}
