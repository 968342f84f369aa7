//! What a pass tells its caller: the options it ran with, its running totals, the
//! account report (halts, failures, plans), and its changes and conflicts as log records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::FolderName;
use crate::store::{ChangeRecord, ConflictRecord};
use crate::sync::{self, Conflict, ConflictKind, Side};

use super::error::FolderFailure;

/// What the user asked of this pass.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Only this server folder.
    pub folder: Option<String>,
    /// Plan and print; change nothing.
    pub dry_run: bool,
    /// The user confirmed deletions a guard held back (rule 7); with `folder`, also that
    /// a missing Maildir folder was deleted on purpose.
    pub confirm_delete: bool,
    /// With `folder`: a missing Maildir folder is made again and its mail fetched again.
    pub restore: bool,
    /// With `folder`: lift the folder's halt; after a UIDVALIDITY change, accept the
    /// re-pairing of the messages confirmed by Message-ID and size (rule 13).
    pub confirm_repair: bool,
    /// Told after every batch a folder fetches or message it appends.
    pub progress: Option<Progress>,
}

/// A progress listener: the folder and the account's running totals.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<ProgressFn>);

pub type ProgressFn = dyn Fn(&FolderName, &Counts) + Send + Sync;

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Totals of one account pass, for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub folders: usize,
    pub fetched: usize,
    pub fetched_bytes: u64,
    pub appended: usize,
    pub flags_pushed: usize,
    pub flags_pulled: usize,
    pub deleted_server: usize,
    pub deleted_local: usize,
    pub conflicts: usize,
    /// Messages moved between folders (no download or upload).
    pub moved: usize,
    /// Messages the account already stored in another folder (the same server
    /// identity): linked there, not downloaded.
    pub linked: usize,
}

/// The outcome of one account pass: totals, and what needs a human.
#[derive(Clone, Debug, Default)]
pub struct AccountReport {
    pub counts: Counts,
    /// Folders that stopped and why, with the command to confirm where there is one.
    pub halts: Vec<String>,
    /// Folders that failed; the rest of the account still ran.
    pub errors: Vec<FolderFailure>,
    /// Folders that stopped for a human this pass (each also in `halts`, as printed).
    pub halted: Vec<FolderFailure>,
    /// `--dry-run`: each folder's plan as text.
    pub plans: Vec<String>,
    /// Folders whose pass completed.
    pub synced: Vec<FolderName>,
    /// What a person should know that is not a failure (a first contact's pairing).
    pub notes: Vec<String>,
    /// Folders another client deleted or renamed on the server after the pass listed
    /// them: skipped, for the next listing to see.
    pub vanished: Vec<FolderName>,
    /// Folders whose pass left a message for the next one (it moved halfway through the
    /// pass): a daemon passes them again at once.
    pub again: BTreeSet<FolderName>,
    /// Messages pulled from the server into each folder (for `on_new_mail`).
    pub new_mail: BTreeMap<FolderName, usize>,
    /// Base rows (pairs, one-sided marks) the pass read from the state: its cost should
    /// follow what changed, not the size of the folders (`syncmail sync` fills it in).
    pub base_rows_read: u64,
}

/// What a caller that holds the store and session (the daemon) narrows a pass to.
#[derive(Clone, Debug, Default)]
pub struct PassScope {
    /// Only these folders; `None` is every selected folder.
    pub folders: Option<BTreeSet<FolderName>>,
    /// Checked between batches: once set, the pass stops at the next boundary with
    /// [`EngineError::Stopped`](super::EngineError::Stopped), everything before it committed, no watermark moved for
    /// the unfinished folder.
    pub stop: Option<Arc<AtomicBool>>,
}

impl PassScope {
    pub(super) fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: fetched {} ({} KiB), appended {}, flags pushed {} pulled {}, deleted {} on server {} locally, {} {}, moved {}, linked {}",
            self.folders,
            if self.folders == 1 {
                "folder"
            } else {
                "folders"
            },
            self.fetched,
            self.fetched_bytes / 1024,
            self.appended,
            self.flags_pushed,
            self.flags_pulled,
            self.deleted_server,
            self.deleted_local,
            self.conflicts,
            if self.conflicts == 1 {
                "conflict"
            } else {
                "conflicts"
            },
            self.moved,
            self.linked
        )
    }
}

/// A progress listener for one of several concurrent sessions that reports the account's
/// totals, not the session's share.
pub(super) fn summed(
    inner: Progress,
    totals: std::sync::Arc<std::sync::Mutex<Vec<Counts>>>,
    i: usize,
) -> Progress {
    Progress(std::sync::Arc::new(move |folder, c| {
        let sum = {
            let Ok(mut all) = totals.lock() else {
                return;
            };
            all[i] = *c;
            all.iter().fold(Counts::default(), |mut acc, c| {
                acc += *c;
                acc
            })
        };
        (inner.0)(folder, &sum);
    }))
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.folders += o.folders;
        self.fetched += o.fetched;
        self.fetched_bytes += o.fetched_bytes;
        self.appended += o.appended;
        self.flags_pushed += o.flags_pushed;
        self.flags_pulled += o.flags_pulled;
        self.deleted_server += o.deleted_server;
        self.deleted_local += o.deleted_local;
        self.conflicts += o.conflicts;
        self.moved += o.moved;
        self.linked += o.linked;
    }
}

impl AccountReport {
    pub(super) fn merge(&mut self, part: AccountReport) {
        self.counts += part.counts;
        self.halts.extend(part.halts);
        self.errors.extend(part.errors);
        self.halted.extend(part.halted);
        self.plans.extend(part.plans);
        self.notes.extend(part.notes);
        self.vanished.extend(part.vanished);
        self.again.extend(part.again);
        self.synced.extend(part.synced);
        for (folder, n) in part.new_mail {
            *self.new_mail.entry(folder).or_default() += n;
        }
    }
}

pub(super) fn change_record(folder: &FolderName, c: &sync::Change) -> ChangeRecord {
    let text = c.to_string();
    // "local UID 3 / key: flags +S, propagated" -> change "flags +S", action "propagated".
    let body = text.split_once(": ").map_or(text.as_str(), |(_, b)| b);
    let (change, action) = body.rsplit_once(", ").unwrap_or((body, ""));
    ChangeRecord {
        at: SystemTime::now(),
        folder: folder.clone(),
        side: c.side,
        uid: c.uid,
        local_key: c.key.clone(),
        change: change.to_owned(),
        action: action.to_owned(),
    }
}

pub(super) fn conflict_record(
    folder: &FolderName,
    c: &Conflict,
    message_id: Option<&crate::model::MessageId>,
) -> ConflictRecord {
    let text = c.to_string();
    let body = text.split_once(": ").map_or(text.as_str(), |(_, b)| b);
    let (what, resolution) = body.split_once(" => ").unwrap_or((body, ""));
    let (local_change, remote_change) = match &c.kind {
        ConflictKind::DeleteVsChange { deleted_on, .. } => match deleted_on {
            Side::Local => ("deleted".to_owned(), what.to_owned()),
            Side::Server => (what.to_owned(), "deleted".to_owned()),
        },
        ConflictKind::SetVsRemoved { set_on, .. } => match set_on {
            Side::Local => (what.to_owned(), "removed".to_owned()),
            Side::Server => ("removed".to_owned(), what.to_owned()),
        },
        ConflictKind::ContentChangedLocally { .. } => (what.to_owned(), "unchanged".to_owned()),
        ConflictKind::UidValidityChanged { .. } => ("unchanged".to_owned(), what.to_owned()),
    };
    ConflictRecord {
        at: UNIX_EPOCH + std::time::Duration::from_secs(c.at.0),
        folder: folder.clone(),
        uid: c.uid,
        local_key: c.key.clone(),
        message_id: message_id.cloned(),
        local_change,
        remote_change,
        resolution: resolution.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn one_folder_is_not_one_folders() {
        let one = Counts {
            folders: 1,
            ..Counts::default()
        };
        assert!(one.to_string().starts_with("1 folder: fetched 0"), "{one}");
        let conflict = Counts {
            conflicts: 1,
            ..Counts::default()
        };
        assert!(conflict.to_string().contains(" 1 conflict, "), "{conflict}");
        let two = Counts {
            folders: 2,
            ..Counts::default()
        };
        assert!(two.to_string().starts_with("2 folders: fetched 0"), "{two}");
    }
}
