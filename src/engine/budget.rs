//! An account's connection budget: at most `max_connections` connections to its server
//! at once, counted across every process that uses the state directory (the daemon's
//! push connection, its passes, a one-shot `syncmail sync`). Servers count a user's
//! connections, not a syncmail account's, so the slots are the server user's: two
//! accounts (or two configs sharing a state directory) for one mailbox share them. A
//! server is its host and port: two servers on one host (tunnels, bridges) count apart.
//! Each connection holds one slot, a lock on one of N files in the state directory; a
//! server that answers "too many connections" lowers N for the rest of the run. Push
//! never takes the last slot: passes always have one.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How long a limit lowered by a refusal holds for the other processes.
const LOWERED_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Shared by the account's link, its passes and its push connection.
#[derive(Clone, Debug)]
pub struct Budget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// `<state_dir>/slots-<digest of user@host:port>.<i>`; `None` counts in this process
    /// only.
    prefix: Option<PathBuf>,
    limit: AtomicUsize,
    /// Slots held in this process, for a budget without files.
    held: AtomicUsize,
}

/// One connection's place in the budget; released when dropped.
#[derive(Debug)]
pub struct Slot {
    _file: Option<File>,
    budget: Budget,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.budget.0.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Budget {
    /// The budget of `user` on the server at `host` and `port`, `limit` connections at
    /// most.
    pub fn new(
        state_dir: Option<&std::path::Path>,
        user: &str,
        (host, port): (&str, u16),
        limit: usize,
    ) -> Budget {
        let who = format!("{user}@{}:{port}", host.to_ascii_lowercase());
        let digest = ring::digest::digest(&ring::digest::SHA256, who.as_bytes());
        let name = format!("slots-{}.", &hex::encode(digest)[..16]);
        Budget(Arc::new(Inner {
            prefix: state_dir.map(|d| d.join(name)),
            limit: AtomicUsize::new(limit.max(1)),
            held: AtomicUsize::new(0),
        }))
    }

    /// The most connections allowed now: ours, or what a refusal another process met
    /// left in the state directory within the last hour, whichever is lower.
    pub fn limit(&self) -> usize {
        let own = self.0.limit.load(Ordering::Relaxed);
        let Some(path) = self.limit_file() else {
            return own;
        };
        let fresh = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < LOWERED_FOR);
        let shared = fresh
            .then(|| std::fs::read_to_string(&path).ok())
            .flatten()
            .and_then(|t| t.trim().parse::<usize>().ok())
            .filter(|n| *n >= 1);
        shared.map_or(own, |n| own.min(n))
    }

    fn limit_file(&self) -> Option<PathBuf> {
        let mut path = self.0.prefix.clone()?.into_os_string();
        path.push("limit");
        Some(PathBuf::from(path))
    }

    /// Connections held in this process.
    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::Relaxed)
    }

    /// A free slot, or `None` when the budget is spent (here or in another process).
    pub fn take(&self) -> Option<Slot> {
        self.take_within(self.limit())
    }

    /// A slot for a push connection: never the last one, so a pass can always run.
    /// `None` with a budget of one: push then costs nothing and the folders are swept.
    pub fn take_for_push(&self) -> Option<Slot> {
        self.take_within(self.limit().saturating_sub(1))
    }

    fn take_within(&self, limit: usize) -> Option<Slot> {
        let Some(prefix) = &self.0.prefix else {
            let mut held = self.held();
            loop {
                if held >= limit {
                    return None;
                }
                match self.0.held.compare_exchange(
                    held,
                    held + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        return Some(Slot {
                            _file: None,
                            budget: self.clone(),
                        });
                    }
                    Err(now) => held = now,
                }
            }
        };
        for i in 0..limit {
            let mut path = prefix.clone().into_os_string();
            path.push(i.to_string());
            let file = match OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!("connection slot {}: {e}", PathBuf::from(&path).display());
                    continue;
                }
            };
            match file.try_lock() {
                Ok(()) => {
                    self.0.held.fetch_add(1, Ordering::Relaxed);
                    return Some(Slot {
                        _file: Some(file),
                        budget: self.clone(),
                    });
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    tracing::debug!("connection slot {}: {e}", PathBuf::from(&path).display());
                }
            }
        }
        None
    }

    /// The server refused a connection as one too many: allow one fewer than were open
    /// when it refused (never fewer than one). Returns the new limit.
    pub fn lower(&self, open_when_refused: usize) -> usize {
        let new = open_when_refused.max(1).min(self.limit());
        self.0.limit.fetch_min(new, Ordering::Relaxed);
        if let Some(path) = self.limit_file()
            && let Err(e) = std::fs::write(&path, format!("{new}\n"))
        {
            tracing::debug!("{}: {e}", path.display());
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_across_budgets_on_one_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Budget::new(Some(dir.path()), "me", ("imap.example.com", 993), 3);
        let oneshot = Budget::new(Some(dir.path()), "me", ("IMAP.example.com", 993), 3);
        let other = Budget::new(Some(dir.path()), "you", ("imap.example.com", 993), 1);
        let tunnel = Budget::new(Some(dir.path()), "me", ("imap.example.com", 1993), 1);
        let _tunnelled = tunnel.take().unwrap();
        let _theirs = other.take().unwrap();
        assert!(other.take().is_none());
        let a = daemon.take().unwrap();
        let b = oneshot.take().unwrap();
        let c = daemon.take().unwrap();
        assert!(oneshot.take().is_none() && daemon.take().is_none());
        assert_eq!(daemon.held(), 2);
        drop(b);
        let d = daemon.take().unwrap();
        drop((a, c, d));
        assert_eq!(daemon.held(), 0);
    }

    #[test]
    fn a_refusal_lowers_the_limit_but_never_below_one() {
        let budget = Budget::new(None, "me", ("imap.example.com", 993), 3);
        let a = budget.take().unwrap();
        let _b = budget.take().unwrap();
        assert_eq!(budget.lower(2), 2);
        assert!(budget.take().is_none());
        drop(a);
        assert!(budget.take().is_some());
        assert_eq!(budget.lower(0), 1);
        assert_eq!(budget.lower(5), 1, "a limit is only ever lowered");
    }

    #[test]
    fn a_lowered_limit_holds_for_every_process_on_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Budget::new(Some(dir.path()), "me", ("imap.example.com", 993), 3);
        let oneshot = Budget::new(Some(dir.path()), "me", ("imap.example.com", 993), 3);
        assert_eq!(daemon.lower(2), 2);
        assert_eq!(oneshot.limit(), 2);
        let _a = daemon.take().unwrap();
        let _b = daemon.take().unwrap();
        assert!(oneshot.take().is_none());
    }

    #[test]
    fn push_never_takes_the_last_slot() {
        let budget = Budget::new(None, "me", ("imap.example.com", 993), 2);
        let push = budget.take_for_push().unwrap();
        assert!(budget.take_for_push().is_none());
        let pass = budget.take().unwrap();
        drop((push, pass));
        budget.lower(1);
        assert!(
            budget.take_for_push().is_none(),
            "a budget of one is the pass's"
        );
        assert!(budget.take().is_some());
    }
}
