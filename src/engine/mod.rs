//! The only module that knows both sides: for each folder of an account, observe the
//! server and the Maildir, load the base, plan, then apply each action under the intent
//! journal and commit. A pass is the same code whether `syncmail sync` or the daemon
//! runs it.

mod apply;
mod observe;
mod recover;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Account, AccountKind, General, ImapSettings};
use crate::imap::{self, ImapError, ImapSession};
use crate::maildir::{self, FolderError, FolderMap, Maildir, utf7};
use crate::model::{AccountName, FolderName};
use crate::secret::{self, SecretError};
use crate::store::{
    self, AccountLock, ChangeRecord, Commit, ConflictRecord, LockError, Store, StoreError,
    Watermarks,
};
use crate::sync::{self, Conflict, ConflictKind, Halt, Policy, Side, Timestamp};

pub use apply::{AppendSizes, header_message_id, imap_date};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// The Maildir: a full disk, permissions, a vanished root.
    #[error("local: {0}")]
    Local(String),
    /// The server did something a sync cannot accept.
    #[error("server: {0}")]
    Server(String),
    #[error("{0}")]
    Unsupported(String),
    /// The caller asked the pass to stop (shutdown); what was done is committed.
    #[error("stopped before the pass finished (shutting down)")]
    Stopped,
}

impl EngineError {
    /// Worth retrying later without a human (network trouble).
    pub fn is_transient(&self) -> bool {
        matches!(self, EngineError::Imap(e) if e.is_transient())
    }
}

/// What the user asked of this pass.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Only this server folder.
    pub folder: Option<String>,
    /// Plan and print; change nothing.
    pub dry_run: bool,
    /// The user confirmed deletions a guard held back (rule 7).
    pub confirm_delete: bool,
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
}

/// The outcome of one account pass: totals, and what needs a human.
#[derive(Clone, Debug, Default)]
pub struct AccountReport {
    pub counts: Counts,
    /// Folders that stopped and why, with the command to confirm where there is one.
    pub halts: Vec<String>,
    /// Folders that failed; the rest of the account still ran.
    pub errors: Vec<String>,
    /// `--dry-run`: each folder's plan as text.
    pub plans: Vec<String>,
    /// Folders whose pass completed.
    pub synced: Vec<FolderName>,
    /// Messages pulled from the server into each folder (for `on_new_mail`).
    pub new_mail: BTreeMap<FolderName, usize>,
}

/// What a caller that holds the store and session (the daemon) narrows a pass to.
#[derive(Clone, Debug, Default)]
pub struct PassScope {
    /// Only these folders; `None` is every selected folder.
    pub folders: Option<BTreeSet<FolderName>>,
    /// Checked between batches: once set, the pass stops at the next boundary with
    /// [`EngineError::Stopped`], everything before it committed, no watermark moved for
    /// the unfinished folder.
    pub stop: Option<Arc<AtomicBool>>,
}

impl PassScope {
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} folders: fetched {} ({} KiB), appended {}, flags pushed {} pulled {}, deleted {} on server {} locally, {} conflicts",
            self.folders,
            self.fetched,
            self.fetched_bytes / 1024,
            self.appended,
            self.flags_pushed,
            self.flags_pulled,
            self.deleted_server,
            self.deleted_local,
            self.conflicts
        )
    }
}

fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

fn maildir_layout(layout: crate::config::Layout) -> maildir::Layout {
    match layout {
        crate::config::Layout::Verbatim => maildir::Layout::Verbatim,
        crate::config::Layout::MaildirPlusPlus => maildir::Layout::MaildirPlusPlus,
    }
}

/// Open the account's state with its lock held: a daemon and a one-shot sync on the same
/// account exclude each other, and the loser is told who holds it.
pub fn open_state(
    general: &General,
    name: &AccountName,
) -> Result<(AccountLock, Store), EngineError> {
    create_private_dir(&general.state_dir)?;
    let lock = AccountLock::acquire(&general.state_dir, name)?;
    let store = Store::open(&store::db_path(&general.state_dir, name)?)?;
    Ok((lock, store))
}

fn create_private_dir(dir: &Path) -> Result<(), EngineError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| EngineError::Local(format!("cannot create {}: {e}", dir.display())))
}

/// One pass over every selected folder of an IMAP account.
pub async fn sync_account(
    account: &Account,
    general: &General,
    opts: &SyncOptions,
) -> Result<AccountReport, EngineError> {
    if !matches!(account.kind, AccountKind::Imap(_)) {
        return Err(EngineError::Unsupported(
            "POP3 accounts are polled by the daemon; `syncmail sync` does not fetch them yet"
                .into(),
        ));
    }
    let (_lock, store) = open_state(general, &account.name)?;
    let mut report = AccountReport::default();
    let result = async {
        prepare(account, &store, opts.dry_run, &mut report).await?;
        let mut session = connect_session(account).await?;
        pass(
            account,
            &store,
            &mut session,
            opts,
            &PassScope::default(),
            &mut report,
        )
        .await?;
        session.logout().await;
        Ok(())
    }
    .await;
    if !opts.dry_run {
        let error = result.as_ref().err().map(ToString::to_string);
        let _ = store.record_pass(None, SystemTime::now(), error).await;
    }
    result.map(|()| report)
}

/// Before the first pass on a freshly opened store: the account's Maildir exists and
/// deliveries a crash interrupted are resolved (rule 1).
pub async fn prepare(
    account: &Account,
    store: &Store,
    dry_run: bool,
    report: &mut AccountReport,
) -> Result<(), EngineError> {
    if !dry_run {
        create_private_dir(&account.maildir)?;
    }
    let recovered = maildir::resolve_delivery_intents(store)
        .await
        .map_err(|e| EngineError::Local(e.to_string()))?;
    for (key, why) in recovered.unresolved {
        report.errors.push(format!(
            "an interrupted delivery of {key} could not be resolved: {why}"
        ));
    }
    Ok(())
}

/// Fetch the secret, connect, log in and enable QRESYNC/CONDSTORE.
pub async fn connect_session(account: &Account) -> Result<ImapSession, EngineError> {
    let (secret, kind) = secret::fetch(&account.secret, secret::COMMAND_TIMEOUT).await?;
    let connected = imap::connect(&account.server, &secret, kind).await?;
    Ok(ImapSession::new(connected, account.server.timeout).await?)
}

/// The account's folder mapping for a server hierarchy delimiter.
pub fn folder_map(account: &Account, delimiter: Option<char>) -> Option<FolderMap> {
    let AccountKind::Imap(settings) = &account.kind else {
        return None;
    };
    Some(FolderMap::new(
        &account.maildir,
        maildir_layout(settings.layout),
        delimiter,
    ))
}

/// One pass over the selected folders (narrowed by `scope`) on a store and a session the
/// caller holds: `syncmail sync` opens both for one pass, the daemon keeps them.
/// Each folder's outcome is recorded for `syncmail status`.
pub async fn pass(
    account: &Account,
    store: &Store,
    session: &mut ImapSession,
    opts: &SyncOptions,
    scope: &PassScope,
    report: &mut AccountReport,
) -> Result<(), EngineError> {
    let AccountKind::Imap(settings) = &account.kind else {
        return Err(EngineError::Unsupported("not an IMAP account".into()));
    };
    let listed = imap::list_folders(session.connected(), account.server.timeout).await?;
    let delimiter = listed.iter().find_map(|f| f.delimiter);
    let map = FolderMap::new(&account.maildir, maildir_layout(settings.layout), delimiter);
    recover::server_intents(store, session, &map, report).await?;

    let mut server: Vec<(FolderName, String)> = Vec::new();
    for f in listed.iter().filter(|f| f.selectable) {
        match maildir::decode_server_name(&f.raw_name) {
            Ok(name) => server.push((name, f.raw_name.clone())),
            // A hostile or broken name is reported and skipped; the rest still syncs.
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    let on_server: BTreeSet<FolderName> = server.iter().map(|(n, _)| n.clone()).collect();
    for name in local_folders(&map)? {
        if on_server.contains(&name) || store.folder(&name).await?.is_some() {
            continue;
        }
        if !settings.folders.includes(&name.0, delimiter) {
            continue;
        }
        // A folder made locally: create it on the server (folders travel both ways).
        let wire = utf7::encode(&name.0);
        if opts.dry_run {
            report
                .plans
                .push(format!("{name}: would create on the server"));
            continue;
        }
        if settings.direction.sends() {
            session.create(&wire).await?;
            server.push((name, wire));
        }
    }
    server.sort();
    let policy = Policy {
        account: account.name.clone(),
        direction: settings.direction,
        expunge: settings.expunge,
        delete_vs_flag: settings.delete_vs_flag,
        trash: settings.trash.clone(),
        max_delete_share: settings.max_delete_share,
        allow_mass_delete: opts.confirm_delete,
    };
    for (name, wire) in &server {
        if !settings.folders.includes(&name.0, delimiter) {
            continue;
        }
        if opts.folder.as_deref().is_some_and(|f| f != name.0) {
            continue;
        }
        if scope.folders.as_ref().is_some_and(|s| !s.contains(name)) {
            continue;
        }
        if scope.stopped() {
            return Err(EngineError::Stopped);
        }
        let pass = FolderPass {
            session: &mut *session,
            store,
            map: &map,
            settings,
            policy: &policy,
            opts,
            scope,
        };
        let fetched_before = report.counts.fetched;
        let halts_before = report.halts.len();
        let outcome = pass.run(name, wire, report).await;
        if !opts.dry_run {
            // A halt (a deletion guard, a UIDVALIDITY change) is shown like an error:
            // the folder is not in sync until a human acts.
            let error = match &outcome {
                Ok(()) => report
                    .halts
                    .get(halts_before..)
                    .and_then(|h| h.first())
                    .cloned(),
                Err(EngineError::Stopped) => None,
                Err(e) => Some(e.to_string()),
            };
            if !matches!(outcome, Err(EngineError::Stopped)) {
                store
                    .record_pass(Some(name.clone()), SystemTime::now(), error)
                    .await?;
            }
        }
        match outcome {
            Ok(()) => {
                report.counts.folders += 1;
                report.synced.push(name.clone());
                let new = report.counts.fetched - fetched_before;
                if new > 0 {
                    *report.new_mail.entry(name.clone()).or_default() += new;
                }
            }
            Err(EngineError::Stopped) => return Err(EngineError::Stopped),
            // The connection is gone: the remaining folders cannot run either.
            Err(EngineError::Imap(e)) if e.is_transient() => return Err(EngineError::Imap(e)),
            Err(e) => report.errors.push(format!("{name}: {e}")),
        }
    }
    Ok(())
}

/// Every Maildir folder under the account root, by the server name it maps to.
fn local_folders(map: &FolderMap) -> Result<Vec<FolderName>, EngineError> {
    let mut out = Vec::new();
    let mut stack = vec![map.root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let name = entry.file_name();
            if !is_dir || ["cur", "new", "tmp"].iter().any(|s| name == *s) {
                continue;
            }
            let is_maildir = ["cur", "new", "tmp"].iter().all(|s| path.join(s).is_dir());
            if is_maildir
                && let Ok(rel) = path.strip_prefix(&map.root)
                && let Ok(folder) = map.to_server(rel)
            {
                out.push(folder);
            }
            if map.layout == maildir::Layout::Verbatim {
                stack.push(path);
            }
        }
    }
    if map.layout == maildir::Layout::MaildirPlusPlus && map.root.join("cur").is_dir() {
        out.push(FolderName("INBOX".into()));
    }
    out.sort();
    Ok(out)
}

struct FolderPass<'a> {
    session: &'a mut ImapSession,
    store: &'a Store,
    map: &'a FolderMap,
    settings: &'a ImapSettings,
    policy: &'a Policy,
    opts: &'a SyncOptions,
    scope: &'a PassScope,
}

impl FolderPass<'_> {
    async fn run(
        self,
        name: &FolderName,
        wire: &str,
        report: &mut AccountReport,
    ) -> Result<(), EngineError> {
        let local_path = self.map.to_local(name)?;
        let folder = self.store.ensure_folder(name, &local_path).await?;
        if let Some(reason) = &folder.halt_reason {
            report.halts.push(format!("{name}: halted: {reason}"));
            return Ok(());
        }
        let base = self.store.base(&folder).await?;
        if self.opts.dry_run && !local_path.join("cur").is_dir() {
            let empty = sync::LocalSnapshot {
                stable: true,
                ..Default::default()
            };
            let remote = observe::remote(self.session, wire, &base).await?;
            let plan = sync::plan(&remote.snapshot, &empty, &base, self.policy, now());
            report.plans.push(format!(
                "{name}: would create {}\n{plan}",
                local_path.display()
            ));
            return Ok(());
        }
        let Some(md) = self.maildir(name, &local_path, &base)? else {
            report.halts.push(format!(
                "{name}: the Maildir folder {} is missing while {} messages are paired with it (unmounted disk?); nothing synced, nothing deleted",
                local_path.display(),
                base.pairs.len()
            ));
            return Ok(());
        };
        let scan = md
            .scan()
            .map_err(|e| EngineError::Local(format!("{}: {e}", local_path.display())))?;
        for dup in &scan.duplicates {
            report.errors.push(format!(
                "{name}: {} files share the key {}; that message is left alone until one is removed",
                dup.copies.len(),
                dup.key
            ));
        }
        let local = observe::local(&scan);
        let remote = observe::remote(self.session, wire, &base).await?;
        let at = now();
        let plan = sync::plan(&remote.snapshot, &local, &base, self.policy, at);
        if self.opts.dry_run {
            if !plan.is_empty() {
                report.plans.push(plan.to_string());
            }
            return Ok(());
        }
        if let Some(halt) = &plan.halt {
            if let Halt::UidValidity { .. } = halt {
                self.store
                    .set_halt(folder.id, Some(halt.to_string()))
                    .await?;
            }
            report.halts.push(format!("{name}: {halt}"));
        }
        report.counts.conflicts += plan.conflicts.len();
        let trash_wire = self.settings.trash.as_ref().map(|t| utf7::encode(&t.0));
        let mut counts = report.counts;
        let mut run = apply::FolderRun::new(
            self.session,
            self.store,
            &md,
            &folder,
            wire,
            trash_wire,
            &remote.snapshot,
            remote.uidnext,
            &mut counts,
            base.pairs.clone(),
            scan.messages.clone(),
        );
        run.stop = self.scope.stop.clone();
        for action in &plan.actions {
            if self.scope.stopped() {
                return Err(EngineError::Stopped);
            }
            run.run(action).await?;
        }
        // Watermarks move only now that the whole pass committed (rule 4). While a guard
        // holds deletions back, HIGHESTMODSEQ stays, so QRESYNC reports them again.
        let holding = plan.halt.is_some();
        let last = Commit {
            watermarks: (!matches!(plan.halt, Some(Halt::UidValidity { .. }))).then(|| {
                Watermarks {
                    uidvalidity: Some(remote.snapshot.uid_validity),
                    highestmodseq: remote.snapshot.highest_modseq.filter(|_| !holding),
                    uidnext: Some(remote.uidnext),
                    highest_uid_pulled: run
                        .highest_pulled
                        .filter(|u| *u > folder.highest_uid_pulled),
                }
            }),
            changes: plan
                .changes
                .iter()
                .map(|c| change_record(name, c))
                .collect(),
            conflicts: plan
                .conflicts
                .iter()
                .map(|c| conflict_record(name, c))
                .collect(),
            ..Commit::default()
        };
        run.finish(last).await?;
        report.counts = counts;
        Ok(())
    }

    /// The folder's Maildir, created if new. `None` when it is missing but the base pairs
    /// messages with it: an unmounted disk must never read as "all deleted" (rule 7).
    fn maildir(
        &self,
        name: &FolderName,
        path: &Path,
        base: &sync::Base,
    ) -> Result<Option<Maildir>, EngineError> {
        if path.join("cur").is_dir() {
            return Maildir::open(path)
                .map(Some)
                .map_err(|e| EngineError::Local(format!("{}: {e}", path.display())));
        }
        if !base.pairs.is_empty() {
            return Ok(None);
        }
        let created: PathBuf = self.map.create(name)?;
        Maildir::open(&created)
            .map(Some)
            .map_err(|e| EngineError::Local(format!("{}: {e}", created.display())))
    }
}

fn change_record(folder: &FolderName, c: &sync::Change) -> ChangeRecord {
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

fn conflict_record(folder: &FolderName, c: &Conflict) -> ConflictRecord {
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
        local_change,
        remote_change,
        resolution: resolution.to_owned(),
    }
}
