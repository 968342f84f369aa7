//! The unified inbox: one real Maildir folder holding every message of the configured
//! folders of the configured accounts, as hard links, kept two-way in step with them.
//!
//! To an account the unified folder's reconcile is just another mail client: a flag set
//! in the unified folder becomes a rename of the account's file, a deletion there an
//! unlink of the account's file, and the account's own pass (or file watcher) carries
//! that to its server; mail the account pass delivers, renames or removes shows up in the
//! unified folder at the next reconcile. So a reconcile needs no account lock.
//!
//! - [`plan`]: pure: mapping + both sides' snapshots -> actions, halts (rules 6, 7).
//! - [`apply`]: renames, deletions, links (or copies across filesystems), durably.
//! - [`store`]: the mapping in `<state_dir>/unified.sqlite`.
//!
//! [`reconcile`] runs one observe -> plan -> apply under a file lock, so two reconciles
//! (a daemon's and `syncmail unified rebuild`, say) never run at once.

pub mod apply;
pub mod plan;
#[cfg(test)]
mod plan_tests;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{Account, AccountKind, Config, Unified};
use crate::maildir::{FolderMap, Layout, LocalScan, Maildir};
use crate::model::{FolderName, MaildirKey, MessageId};
use crate::store::StoreError;
use crate::sync::DEFAULT_MAX_DELETE_SHARE;

use apply::{Folder, Sides};
use plan::{Observed, Snapshot, Source, SourceView};
use store::MapStore;

#[derive(Debug, thiserror::Error)]
pub enum UnifiedError {
    #[error("unified mapping: {0}")]
    Store(#[from] StoreError),
    #[error("unified folder: {0}")]
    Local(String),
    #[error("unified folder: lock {path:?}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one reconcile did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// New entries as hard links.
    pub linked: usize,
    /// New entries as copies (the unified folder is on another filesystem).
    pub copied: usize,
    /// Flag renames made in account folders.
    pub to_accounts: usize,
    /// Flag renames made in the unified folder.
    pub to_unified: usize,
    /// Account messages deleted because they were deleted in the unified folder.
    pub deleted: usize,
    /// Unified entries removed because their account message is gone.
    pub removed: usize,
    /// Why deletions were held back, with the command that confirms them.
    pub halts: Vec<String>,
    /// Failures of single messages; the rest went ahead.
    pub errors: Vec<String>,
    /// A file moved while we worked: the next reconcile picks it up (rule 14).
    pub rescan: bool,
}

/// How many times one reconcile looks again after a file moved under it.
const RESCANS: usize = 2;

impl Report {
    /// This report followed by `next`: counts add up, halts and errors are the latest.
    fn then(self, next: Report) -> Report {
        Report {
            linked: self.linked + next.linked,
            copied: self.copied + next.copied,
            to_accounts: self.to_accounts + next.to_accounts,
            to_unified: self.to_unified + next.to_unified,
            deleted: self.deleted + next.deleted,
            removed: self.removed + next.removed,
            halts: next.halts,
            errors: next.errors,
            rescan: next.rescan,
        }
    }

    /// Whether anything changed on either side.
    pub fn changed(&self) -> bool {
        self.linked + self.copied + self.to_accounts + self.to_unified + self.deleted + self.removed
            > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "linked {}{}, flags to accounts {} to unified {}, deleted {} in accounts, removed {} from unified",
            self.linked,
            if self.copied > 0 {
                format!(" (+{} copied)", self.copied)
            } else {
                String::new()
            },
            self.to_accounts,
            self.to_unified,
            self.deleted,
            self.removed
        )
    }
}

/// Options of one reconcile.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Carry out deletions a rule 7 guard held back.
    pub confirm_delete: bool,
}

/// Held while a reconcile runs: `<state_dir>/.unified.lock` (no account name starts with
/// a dot, so none can collide). Waits for a reconcile of another process to finish.
struct ReconcileLock {
    _file: File,
}

impl ReconcileLock {
    fn acquire(state_dir: &Path) -> Result<ReconcileLock, UnifiedError> {
        let path = state_dir.join(".unified.lock");
        let err = |source| UnifiedError::Lock {
            path: path.clone(),
            source,
        };
        let file = crate::store::files::private_file(&path).map_err(err)?;
        file.lock().map_err(err)?;
        Ok(ReconcileLock { _file: file })
    }
}

/// The source folders of the unified view: each configured account's configured folders
/// that it can have (a POP3 account has only its INBOX), with their Maildir paths.
pub fn sources(config: &Config, unified: &Unified) -> Vec<(Source, PathBuf, f64)> {
    let mut out = Vec::new();
    for name in &unified.accounts {
        let Some(account) = config.account(&name.0) else {
            continue;
        };
        for folder in &unified.folders {
            if let Some((path, share)) = source_path(config, account, folder) {
                out.push((
                    Source {
                        account: name.clone(),
                        folder: folder.clone(),
                    },
                    path,
                    share,
                ));
            }
        }
    }
    out
}

fn source_path(config: &Config, account: &Account, folder: &FolderName) -> Option<(PathBuf, f64)> {
    match &account.kind {
        AccountKind::Pop3(_) => {
            // The poller delivers into `<maildir>/INBOX` (crate::pop3::poller).
            if !folder.0.eq_ignore_ascii_case("INBOX") {
                return None;
            }
            let map = FolderMap::new(&account.maildir, Layout::Verbatim, None);
            Some((map.to_local(folder).ok()?, DEFAULT_MAX_DELETE_SHARE))
        }
        AccountKind::Imap(settings) => {
            // Where the account's own passes put it (the server's delimiter is known
            // there); before the first pass, the usual `/`.
            let path = recorded_path(config, account, folder).or_else(|| {
                settings
                    .folder_map(&account.maildir, Some('/'))
                    .to_local(folder)
                    .ok()
            })?;
            Some((path, settings.max_delete_share))
        }
    }
}

/// The local path the account's state records for a server folder.
fn recorded_path(config: &Config, account: &Account, folder: &FolderName) -> Option<PathBuf> {
    let db = crate::store::db_path(&config.general.state_dir, &account.name).ok()?;
    if !db.exists() {
        return None;
    }
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row(
        "SELECT local_path FROM folders WHERE server_name = ?1",
        [&folder.0],
        |r| r.get::<_, String>(0),
    )
    .ok()
    .map(PathBuf::from)
}

fn snapshot(scan: &LocalScan) -> Snapshot {
    Snapshot {
        messages: scan
            .messages
            .iter()
            .map(|(k, m)| (k.clone(), m.flags.clone()))
            .collect(),
        ambiguous: scan.duplicates.iter().map(|d| d.key.clone()).collect(),
        complete: scan.stable,
    }
}

/// The Message-ID of a message file (read from its header only).
fn file_message_id(path: &Path) -> Option<MessageId> {
    use std::io::Read;
    let mut head = Vec::new();
    File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_end(&mut head))
        .ok()?;
    MessageId::from_header(&head)
}

/// The file behind a name: device and inode, so that names on two filesystems never
/// match by accident.
fn file_id(path: &Path) -> Option<plan::FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// What the planner knows of the unified folder's strangers (files no entry maps), to
/// tell an edit, a rename, or a link a crash left unrecorded from a file saved by hand.
#[derive(Default)]
struct Strangers {
    ids: BTreeMap<MaildirKey, MessageId>,
    files: BTreeMap<MaildirKey, plan::FileId>,
    shared: BTreeSet<MaildirKey>,
}

fn strangers(entries: &[plan::Entry], scan: &LocalScan) -> Strangers {
    use std::os::unix::fs::MetadataExt;
    let mapped: BTreeSet<&MaildirKey> = entries.iter().map(|e| &e.unified).collect();
    let mut out = Strangers::default();
    for (key, m) in scan.messages.iter().filter(|(k, _)| !mapped.contains(k)) {
        if let Some(id) = file_message_id(&m.path) {
            out.ids.insert(key.clone(), id);
        }
        if let Ok(meta) = std::fs::metadata(&m.path) {
            out.files.insert(key.clone(), (meta.dev(), meta.ino()));
            if meta.nlink() > 1 {
                out.shared.insert(key.clone());
            }
        }
    }
    out
}

/// With strangers about, for each source: the Message-IDs and files of the account
/// copies whose unified copy is gone, and the files of the messages no entry maps. Only
/// these: every other account message has its unified copy in place, so statting it
/// would only cost a reconcile time while a stranger stays.
fn identify(
    entries: &[plan::Entry],
    scan: &LocalScan,
    folders: &BTreeMap<Source, Folder>,
    views: &mut BTreeMap<Source, SourceView>,
) {
    for (source, folder) in folders {
        let Some(view) = views.get_mut(source) else {
            continue;
        };
        let mine: Vec<&plan::Entry> = entries.iter().filter(|e| &e.source == source).collect();
        for e in &mine {
            if !scan.messages.contains_key(&e.unified)
                && let Some(m) = folder.scan.messages.get(&e.local_key)
            {
                if let Some(id) = file_message_id(&m.path) {
                    view.message_ids.insert(e.local_key.clone(), id);
                }
                if let Some(file) = file_id(&m.path) {
                    view.inodes.insert(e.local_key.clone(), file);
                }
            }
        }
        let mapped: BTreeSet<&MaildirKey> = mine.iter().map(|e| &e.local_key).collect();
        for (key, m) in folder
            .scan
            .messages
            .iter()
            .filter(|(k, _)| !mapped.contains(k))
        {
            if let Some(file) = file_id(&m.path) {
                view.inodes.insert(key.clone(), file);
            }
        }
    }
}

fn local_err(path: &Path, e: impl fmt::Display) -> UnifiedError {
    UnifiedError::Local(format!("{}: {e}", path.display()))
}

/// Open the unified Maildir, creating it (0700) when it is missing and nothing was ever
/// mapped into it; `None` when it is missing although entries point into it.
fn unified_folder(path: &Path, has_entries: bool) -> Result<Option<Maildir>, UnifiedError> {
    if path.join("cur").is_dir() {
        return Maildir::open(path)
            .map(Some)
            .map_err(|e| local_err(path, e));
    }
    if has_entries {
        return Ok(None);
    }
    create_maildir(path)?;
    tracing::info!("unified: created {}", path.display());
    Maildir::open(path)
        .map(Some)
        .map_err(|e| local_err(path, e))
}

fn create_maildir(path: &Path) -> Result<(), UnifiedError> {
    use std::os::unix::fs::DirBuilderExt;
    for sub in ["cur", "new", "tmp"] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path.join(sub))
            .map_err(|e| local_err(path, e))?;
    }
    Ok(())
}

/// One reconcile of the configured unified folder (nothing when none is configured).
/// Blocking: call it from a blocking thread in async code.
pub fn reconcile(config: &Config, opts: Options) -> Result<Report, UnifiedError> {
    let Some(unified) = &config.unified else {
        return Ok(Report::default());
    };
    let state_dir = &config.general.state_dir;
    let _lock = ReconcileLock::acquire(state_dir)?;
    let mut store = MapStore::open(state_dir)?;
    // A file a client moved while we worked is picked up by looking again (rule 14).
    let mut result = reconcile_locked(config, unified, opts, &mut store);
    for _ in 0..RESCANS {
        match &mut result {
            Ok(so_far) if so_far.rescan => {
                let next = reconcile_locked(config, unified, opts, &mut store);
                result = next.map(|r| so_far.clone().then(r));
            }
            _ => break,
        }
    }
    let (error, halts) = match &result {
        Ok(r) => (None, r.halts.clone()),
        Err(e) => (Some(e.to_string()), Vec::new()),
    };
    store.record_run(SystemTime::now(), error.as_deref(), &halts)?;
    result
}

fn reconcile_locked(
    config: &Config,
    unified: &Unified,
    opts: Options,
    store: &mut MapStore,
) -> Result<Report, UnifiedError> {
    let mut report = Report::default();
    let all = store.entries()?;
    let Some(md) = unified_folder(&unified.path, !all.is_empty())? else {
        let halt = plan::Halt::UnifiedMissing { entries: all.len() };
        tracing::warn!("unified: {}: {halt}", unified.path.display());
        report.halts.push(halt.to_string());
        return Ok(report);
    };
    remove_doomed(&md, store)?;
    let scan = md.scan().map_err(|e| local_err(md.path(), e))?;
    // Links a crash interrupted (rule 1): kept if the file is there, else forgotten.
    let pending: Vec<_> = all.iter().filter(|(_, p)| *p).map(|(e, _)| e).collect();
    if !pending.is_empty() {
        if !scan.stable {
            report.rescan = true;
            return Ok(report);
        }
        let (done, gone): (Vec<_>, Vec<_>) = pending
            .iter()
            .map(|e| e.unified.clone())
            .partition(|k| scan.contains(k));
        md.sync_dirs().map_err(|e| local_err(md.path(), e))?;
        store.commit(&done, &gone, &[])?;
        tracing::info!(
            "unified: resolved {} interrupted link(s): {} made, {} not",
            pending.len(),
            done.len(),
            gone.len()
        );
    }
    let entries: Vec<plan::Entry> = store.entries()?.into_iter().map(|(e, _)| e).collect();
    let mut views = BTreeMap::new();
    let mut folders = BTreeMap::new();
    for (source, path, share) in sources(config, unified) {
        let snapshot = if path.join("cur").is_dir() {
            let sm = Maildir::open(&path).map_err(|e| local_err(&path, e))?;
            let scan = sm.scan().map_err(|e| local_err(&path, e))?;
            let snap = snapshot(&scan);
            folders.insert(source.clone(), Folder { md: sm, scan });
            Some(snap)
        } else {
            None
        };
        views.insert(
            source,
            SourceView {
                snapshot,
                max_delete_share: share,
                ..SourceView::default()
            },
        );
    }
    let strangers = strangers(&entries, &scan);
    if !strangers.files.is_empty() {
        identify(&entries, &scan, &folders, &mut views);
    }
    let observed = Observed {
        unified: Some(snapshot(&scan)),
        sources: views,
        allow_mass_delete: opts.confirm_delete,
        stranger_ids: strangers.ids,
        stranger_inodes: strangers.files,
        stranger_shared: strangers.shared,
    };
    let plan = plan::plan(&entries, &observed);
    for halt in &plan.halts {
        tracing::warn!("unified: {halt}");
        report.halts.push(halt.to_string());
    }
    for (source, key) in &plan.kept {
        tracing::info!(account = %source.account, folder = %source.folder, key = %key, "unified: deleted in the unified folder but flagged in the account meanwhile: kept and shown again");
    }
    for key in store.note_strangers(&plan.strangers)? {
        tracing::warn!(
            "unified: {} holds {key}, which no account has (saved there by hand?); it is left alone and never synced. Move it into an account's folder to sync it.",
            md.path().display()
        );
    }
    if plan.orphans > 0 {
        tracing::debug!(
            "unified: {} entries come from accounts or folders no longer configured; `syncmail unified rebuild` removes them",
            plan.orphans
        );
    }
    let sides = Sides {
        unified: Folder { md, scan },
        sources: folders,
    };
    apply::apply(&plan, &sides, store, &mut report)?;
    Ok(report)
}

/// `syncmail unified rebuild`: first a normal reconcile (so flag changes made in the
/// unified folder still travel), then drop the mapping and the unified folder's mapped
/// entries and link everything again from the accounts. Nothing is deleted on the
/// account side, and a unified file whose account copy cannot be found is kept.
pub fn rebuild(config: &Config) -> Result<Report, UnifiedError> {
    let Some(unified) = &config.unified else {
        return Ok(Report::default());
    };
    if let Err(e) = reconcile(config, Options::default()) {
        tracing::warn!("unified: the reconcile before the rebuild failed: {e}");
    }
    let state_dir = &config.general.state_dir;
    {
        let _lock = ReconcileLock::acquire(state_dir)?;
        let mut store = MapStore::open(state_dir)?;
        let entries = store.entries()?;
        if unified.path.join("cur").is_dir() {
            let md = Maildir::open(&unified.path).map_err(|e| local_err(&unified.path, e))?;
            let scan = md.scan().map_err(|e| local_err(md.path(), e))?;
            // One scan per source folder; a folder that cannot be read has no copies.
            let accounts: BTreeMap<Source, LocalScan> = sources(config, unified)
                .into_iter()
                .filter_map(|(s, p, _)| Some((s, Maildir::open(&p).ok()?.scan().ok()?)))
                .collect();
            let mut doomed = Vec::new();
            for (e, _) in &entries {
                let Some(msg) = scan.messages.get(&e.unified) else {
                    continue;
                };
                let in_account = accounts
                    .get(&e.source)
                    .is_some_and(|s| s.contains(&e.local_key));
                if in_account {
                    doomed.push(e.unified.clone());
                } else {
                    tracing::warn!(
                        "unified: rebuild keeps {} ({}): its account copy was not found, so it may be the only one; it is no longer synced",
                        msg.path.display(),
                        e.source
                    );
                }
            }
            store.begin_rebuild(&doomed)?;
            remove_doomed(&md, &mut store)?;
        } else {
            create_maildir(&unified.path)?;
            store.begin_rebuild(&[])?;
        }
        tracing::info!(
            "unified: mapping of {} entries dropped; building the view again",
            entries.len()
        );
    }
    reconcile(config, Options::default())
}

/// Remove the unified files a rebuild recorded, durably, then forget the list. Run by
/// the rebuild, and by the next reconcile if a crash interrupted it.
fn remove_doomed(md: &Maildir, store: &mut MapStore) -> Result<(), UnifiedError> {
    let doomed = store.doomed()?;
    if doomed.is_empty() {
        return Ok(());
    }
    let scan = md.scan().map_err(|e| local_err(md.path(), e))?;
    for key in &doomed {
        if let Some(msg) = scan.messages.get(key) {
            match md.delete(msg) {
                Ok(()) | Err(crate::maildir::MessageError::Vanished { .. }) => {}
                Err(e) => return Err(local_err(&msg.path, e)),
            }
        }
    }
    md.sync_dirs().map_err(|e| local_err(md.path(), e))?;
    store.clear_doomed()?;
    Ok(())
}

/// `syncmail unified status`: the folder, entries per source, the last reconcile.
pub fn render_status(config: &Config) -> String {
    use std::fmt::Write;
    let Some(unified) = &config.unified else {
        return "no [unified] table in the config: there is no unified folder\n".into();
    };
    let mut out = String::new();
    let _ = writeln!(out, "unified folder {}", unified.path.display());
    if !unified.path.join("cur").is_dir() {
        let _ = writeln!(out, "  the folder is missing");
    }
    let store = match MapStore::open_read_only(&config.general.state_dir) {
        Ok(Some(s)) => s,
        Ok(None) => {
            let _ = writeln!(out, "  never reconciled");
            return out;
        }
        Err(e) => {
            let _ = writeln!(out, "  cannot read the mapping: {e}");
            return out;
        }
    };
    match store.counts() {
        Ok(counts) => {
            let total: usize = counts.iter().map(|(_, n)| n).sum();
            let _ = writeln!(out, "  {total} entries");
            for (source, n) in counts {
                let _ = writeln!(out, "    {n} from {source}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  cannot read the mapping: {e}");
        }
    }
    if let Ok(run) = store.last_run() {
        let when =
            |t: Option<SystemTime>| t.map_or_else(|| "never".to_owned(), crate::model::local_time);
        let _ = writeln!(out, "  last good reconcile: {}", when(run.last_ok));
        let _ = writeln!(out, "  last attempt: {}", when(run.last_attempt));
        if let Some(e) = run.last_error {
            let _ = writeln!(out, "  last error: {e}");
        }
        for halt in run.halts.lines() {
            let _ = writeln!(out, "  halted: {halt}");
        }
    }
    out
}
