//! What an account's next pass must cover, gathered from every source (IDLE, the file
//! watcher, timers, signals). A set, not a queue: a burst of 500 events on one folder is
//! one folder in the set, so it costs one pass.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::model::FolderName;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Every folder (timer, start-up, after a reconnect).
    pub all: bool,
    /// Drop the connections first (clock jump).
    pub reconnect: bool,
    /// Ignore a running backoff (SIGUSR1).
    pub now: bool,
    /// The server named a folder: no debounce.
    pub urgent: bool,
    /// Server folders named by IDLE.
    pub folders: BTreeSet<FolderName>,
    /// Local folder directories (relative to the account's Maildir) the watcher saw change.
    pub dirs: BTreeSet<PathBuf>,
}

impl Work {
    pub fn is_empty(&self) -> bool {
        !self.all && !self.reconnect && self.folders.is_empty() && self.dirs.is_empty()
    }

    fn merge(&mut self, other: Work) {
        self.all |= other.all;
        self.reconnect |= other.reconnect;
        self.now |= other.now;
        self.urgent |= other.urgent;
        self.folders.extend(other.folders);
        self.dirs.extend(other.dirs);
    }
}

#[derive(Debug, Default)]
pub struct Triggers {
    work: Mutex<Work>,
    wake: Notify,
    /// The server named a folder: the pass need not wait out the debounce, which is for
    /// bursts of local renames. (Server events come one per pass at most anyway: they
    /// gather in the set while a pass runs.)
    urgent: Notify,
}

impl Triggers {
    fn lock(&self) -> MutexGuard<'_, Work> {
        // A panic while holding this lock leaves a plain set behind: still usable.
        self.work.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, work: Work) {
        self.lock().merge(work);
        self.wake.notify_one();
    }

    /// A folder the server (IDLE, NOTIFY) said changed: passed without the debounce.
    pub fn folder(&self, folder: FolderName) {
        {
            let mut work = self.lock();
            work.folders.insert(folder);
            work.urgent = true;
        }
        self.wake.notify_one();
        self.urgent.notify_one();
    }

    /// Folders a sweep found moved: passed without the debounce.
    pub fn folders(&self, folders: BTreeSet<FolderName>) {
        {
            let mut work = self.lock();
            work.folders.extend(folders);
            work.urgent = true;
        }
        self.wake.notify_one();
        self.urgent.notify_one();
    }

    pub fn dir(&self, dir: PathBuf) {
        self.lock().dirs.insert(dir);
        self.wake.notify_one();
    }

    pub fn all(&self) {
        self.lock().all = true;
        self.wake.notify_one();
    }

    /// Everything gathered so far; the set starts empty again.
    pub fn take(&self) -> Work {
        std::mem::take(&mut *self.lock())
    }

    /// Whether nothing is gathered.
    pub fn peek_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Whether the gathered work must ignore a running backoff (SIGUSR1).
    pub fn peek_now(&self) -> bool {
        self.lock().now
    }

    /// Put back work that could not run (the server was unreachable), without waking.
    pub fn restore(&self, work: Work) {
        self.lock().merge(work);
    }

    /// Resolves once the gathered work holds a folder the server named.
    pub async fn until_urgent(&self) {
        loop {
            if self.lock().urgent {
                return;
            }
            // A permit left from work already taken only makes us look again.
            self.urgent.notified().await;
        }
    }

    /// Resolves once something was added since the last wait (a permit is kept, so an
    /// addition between two waits is never missed).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_collapses_to_one_entry_per_folder() {
        let t = Triggers::default();
        for i in 0..500 {
            t.dir(PathBuf::from(if i % 2 == 0 { "INBOX" } else { "Sent" }));
            t.folder(FolderName("INBOX".into()));
        }
        t.changed().await;
        let work = t.take();
        assert_eq!(work.dirs.len(), 2);
        assert_eq!(work.folders.len(), 1);
        assert!(!work.all);
        assert!(t.take().is_empty());
    }

    #[tokio::test]
    async fn a_server_event_cuts_the_debounce_short_and_a_local_one_does_not() {
        let t = Triggers::default();
        t.dir(PathBuf::from("INBOX"));
        let short = std::time::Duration::from_millis(50);
        assert!(
            tokio::time::timeout(short, t.until_urgent()).await.is_err(),
            "a rename waits out the debounce"
        );
        t.folder(FolderName("Lists/rust".into()));
        tokio::time::timeout(short, t.until_urgent()).await.unwrap();
        assert!(t.take().urgent);
        assert!(tokio::time::timeout(short, t.until_urgent()).await.is_err());
    }

    #[tokio::test]
    async fn an_addition_before_the_wait_is_not_lost() {
        let t = Triggers::default();
        t.all();
        tokio::time::timeout(std::time::Duration::from_secs(1), t.changed())
            .await
            .unwrap();
        assert!(t.take().all);
    }
}
