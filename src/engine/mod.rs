//! The only module that knows both sides: for each folder of an account, observe the
//! server and the Maildir, load the base, plan, then apply each action under the intent
//! journal and commit. A pass is the same code whether `syncmail sync` or the daemon
//! runs it.

mod apply;
mod folders;
mod moves;
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

pub use apply::AppendSizes;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(StoreError),
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

/// A held account lock stays a lock error, whichever layer found it, so a caller can
/// wait for the holder instead of failing.
impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> EngineError {
        match e {
            StoreError::Locked(lock) => EngineError::Lock(lock),
            other => EngineError::Store(other),
        }
    }
}

/// A folder's failure as one report line. A folder error names the folder itself; any
/// other gets the name in front, made safe to print (rule 17: names come from the server).
fn folder_failure(name: &FolderName, e: &EngineError) -> String {
    match e {
        EngineError::Folder(_) => e.to_string(),
        _ => format!("{}: {e}", maildir::shown_prefix(&name.0)),
    }
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
            "{} folders: fetched {} ({} KiB), appended {}, flags pushed {} pulled {}, deleted {} on server {} locally, {} conflicts, moved {}",
            self.folders,
            self.fetched,
            self.fetched_bytes / 1024,
            self.appended,
            self.flags_pushed,
            self.flags_pulled,
            self.deleted_server,
            self.deleted_local,
            self.conflicts,
            self.moved
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

/// Open the account's state with its lock held: a daemon and a one-shot sync on the same
/// account exclude each other, and the loser is told who holds it.
pub fn open_state(
    general: &General,
    name: &AccountName,
) -> Result<(AccountLock, Store), EngineError> {
    create_private_dir(&general.state_dir)?;
    Ok(store::open_account(&general.state_dir, name)?)
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
    open_session(account, &secret, kind).await
}

/// The account's folder mapping for a server hierarchy delimiter.
pub fn folder_map(account: &Account, delimiter: Option<char>) -> Option<FolderMap> {
    let AccountKind::Imap(settings) = &account.kind else {
        return None;
    };
    Some(FolderMap::new(&account.maildir, settings.layout, delimiter))
}

/// One pass over the selected folders (narrowed by `scope`) on a store and a session the
/// caller holds: `syncmail sync` opens both for one pass, the daemon keeps them. Up to
/// `connections - 1` more sessions are opened for the pass and closed after it. Each
/// folder's outcome is recorded for `syncmail status`.
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
    // The extra connections a pass over several folders uses, opened while this one
    // lists and plans (a TLS handshake and a login cost as much as a small pass): as
    // many as the folders known from the last pass can use.
    let known = match &scope.folders {
        Some(only) => only.len(),
        None => store.folders().await?.len(),
    };
    let early = settings.connections.min(known).saturating_sub(1);
    let opening = (early > 0).then(|| {
        let account = account.clone();
        tokio::spawn(async move {
            futures::future::join_all((0..early).map(|_| connect_session(&account))).await
        })
    });
    let listed = imap::list_folders(session.connected(), account.server.timeout).await?;
    let delimiter = listed.iter().find_map(|f| f.delimiter);
    let map = FolderMap::new(&account.maildir, settings.layout, delimiter);
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
    // Folders one side deleted (rule 9); only a pass over every folder can tell.
    if opts.folder.is_none() && scope.folders.is_none() {
        folders::reconcile(
            settings,
            store,
            session,
            &map,
            delimiter,
            &mut server,
            opts,
            report,
        )
        .await?;
    }
    // A dry run does not create the account root; a missing root holds no folders.
    let local = if map.root.is_dir() {
        map.list_local()
            .map_err(|e| EngineError::Local(format!("{}: {e}", map.root.display())))?
    } else {
        maildir::LocalFolders::default()
    };
    for (path, e) in &local.skipped {
        report.errors.push(format!("{}: {e}", path.display()));
    }
    for (name, _) in local.folders {
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
    let wanted: Vec<&(FolderName, String)> = server
        .iter()
        .filter(|(name, _)| {
            settings.folders.includes(&name.0, delimiter)
                && opts.folder.as_deref().is_none_or(|f| f == name.0)
                && scope.folders.as_ref().is_none_or(|s| s.contains(name))
        })
        .collect();
    // Up to `connections` sessions, each observing and applying its share of the folders,
    // so the server is never idle while one folder's batch is being committed. A server
    // that refuses more connections just gets fewer.
    let extra = settings.connections.min(wanted.len()).saturating_sub(1);
    let mut opened = match opening {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    // A first pass, or new folders: more than the last pass knew.
    let missing = extra.saturating_sub(opened.len());
    opened.extend(futures::future::join_all((0..missing).map(|_| connect_session(account))).await);
    let mut more: Vec<ImapSession> = Vec::new();
    let mut surplus: Vec<ImapSession> = Vec::new();
    for result in opened {
        match result {
            Ok(s) if more.len() < extra => more.push(s),
            Ok(s) => surplus.push(s),
            Err(e) => tracing::debug!(account = %account.name, "one connection fewer: {e}"),
        }
    }
    logout_all(surplus).await;
    let result = pass_folders(
        settings, store, session, &mut more, &wanted, &map, &policy, opts, scope, report,
    )
    .await;
    logout_all(more).await;
    result
}

/// Observe and plan every wanted folder, run the moves, apply each plan: the folders dealt
/// over the caller's session and the extra ones.
#[allow(clippy::too_many_arguments)]
async fn pass_folders(
    settings: &ImapSettings,
    store: &Store,
    session: &mut ImapSession,
    more: &mut [ImapSession],
    wanted: &[&(FolderName, String)],
    map: &FolderMap,
    policy: &Policy,
    opts: &SyncOptions,
    scope: &PassScope,
    report: &mut AccountReport,
) -> Result<(), EngineError> {
    let mut sessions: Vec<&mut ImapSession> =
        std::iter::once(session).chain(more.iter_mut()).collect();
    let n = sessions.len();
    let totals = std::sync::Arc::new(std::sync::Mutex::new(vec![Counts::default(); n]));
    let task_opts: Vec<SyncOptions> = (0..n)
        .map(|i| SyncOptions {
            progress: opts.progress.clone().map(|p| summed(p, totals.clone(), i)),
            ..opts.clone()
        })
        .collect();
    let ctxs: Vec<Ctx<'_>> = task_opts
        .iter()
        .map(|o| Ctx {
            store,
            map,
            settings,
            policy,
            opts: o,
            scope,
        })
        .collect();

    // Observe and plan every folder first: a move shows only across two folders' plans.
    let observed = futures::future::join_all(sessions.iter_mut().zip(&ctxs).enumerate().map(
        |(i, (session, ctx))| {
            let mine: Vec<(usize, &(FolderName, String))> = wanted
                .iter()
                .enumerate()
                .filter(|(j, _)| j % n == i)
                .map(|(j, f)| (j, *f))
                .collect();
            async move {
                let mut part = AccountReport::default();
                let mut out = Vec::new();
                for (j, (name, wire)) in mine {
                    if scope.stopped() {
                        out.push((j, name.clone(), Err(EngineError::Stopped)));
                        break;
                    }
                    let halts_before = part.halts.len();
                    let result = ctx.prepare(session, name, wire, &mut part).await;
                    // Nothing left to apply: the folder's outcome is known now.
                    if let Ok(None) = result {
                        let halt = part.halts.get(halts_before).cloned();
                        if let Err(e) = ctx.record(name, halt.as_deref()).await {
                            out.push((j, name.clone(), Err(e)));
                            break;
                        }
                        if halt.is_none() {
                            part.synced.push(name.clone());
                        }
                    }
                    let lost = matches!(&result, Err(EngineError::Imap(e)) if e.ends_session());
                    out.push((j, name.clone(), result));
                    // The connection is gone: its remaining folders cannot run either.
                    if lost {
                        break;
                    }
                }
                (out, part)
            }
        },
    ))
    .await;
    let mut prepared: Vec<(usize, Prepared)> = Vec::new();
    for (out, part) in observed {
        report.merge(part);
        for (j, name, result) in out {
            match result {
                Ok(Some(p)) => prepared.push((j, p)),
                Ok(None) => {}
                Err(EngineError::Stopped) => return Err(EngineError::Stopped),
                Err(EngineError::Imap(e)) if e.ends_session() => return Err(EngineError::Imap(e)),
                Err(e) => {
                    ctxs[0].record(&name, Some(&e.to_string())).await?;
                    report.errors.push(folder_failure(&name, &e));
                }
            }
        }
    }
    prepared.sort_by_key(|(j, _)| *j);
    let mut prepared: Vec<Prepared> = prepared.into_iter().map(|(_, p)| p).collect();
    let moves = {
        let mut passes: Vec<sync::FolderPass<'_>> = prepared
            .iter_mut()
            .map(|p| sync::FolderPass {
                remote: &p.remote.snapshot,
                local: &p.local,
                base: &p.base,
                policy,
                plan: std::mem::replace(&mut p.plan, sync::Plan::new(p.name.clone())),
            })
            .collect();
        let moves = sync::detect_moves(&mut passes, sessions[0].has_move());
        let plans: Vec<sync::Plan> = passes.into_iter().map(|p| p.plan).collect();
        for (p, plan) in prepared.iter_mut().zip(plans) {
            p.plan = plan;
        }
        moves
    };
    if opts.dry_run {
        for m in &moves {
            report.plans.push(format!("move: {m:?}"));
        }
        for p in &prepared {
            if !p.plan.is_empty() {
                report.plans.push(p.plan.to_string());
            }
        }
        return Ok(());
    }
    for m in &moves {
        match ctxs[0].run_move(sessions[0], &prepared, m).await {
            Ok(()) => report.counts.moved += 1,
            Err(EngineError::Imap(e)) if e.ends_session() => return Err(EngineError::Imap(e)),
            Err(e) => report.errors.push(format!("move: {e}")),
        }
    }
    let moved: BTreeSet<FolderName> = moves
        .iter()
        .flat_map(|m| match m {
            sync::Move::OnServer { from, to, .. }
            | sync::Move::Local { from, to, .. }
            | sync::Move::Both { from, to, .. } => [from.clone(), to.clone()],
        })
        .collect();
    let mut shares: Vec<Vec<Prepared>> = (0..n).map(|_| Vec::new()).collect();
    for (j, p) in prepared.into_iter().enumerate() {
        shares[j % n].push(p);
    }
    let applied = futures::future::join_all(sessions.iter_mut().zip(&ctxs).zip(shares).map(
        |((session, ctx), share)| {
            let moved = &moved;
            async move {
                let mut part = AccountReport::default();
                let mut lost = None;
                for p in share {
                    if scope.stopped() {
                        lost = Some(EngineError::Stopped);
                        break;
                    }
                    let name = p.name.clone();
                    let touched = moved.contains(&p.name);
                    let fetched_before = part.counts.fetched;
                    let halts_before = part.halts.len();
                    let outcome = ctx.apply(session, p, touched, &mut part).await;
                    // A halt (a deletion guard, a UIDVALIDITY change) is shown like an
                    // error: the folder is not in sync until a human acts.
                    let error = match &outcome {
                        Ok(()) => part.halts.get(halts_before).cloned(),
                        Err(e) => Some(e.to_string()),
                    };
                    if !matches!(outcome, Err(EngineError::Stopped))
                        && let Err(e) = ctx.record(&name, error.as_deref()).await
                    {
                        lost = Some(e);
                        break;
                    }
                    match outcome {
                        Ok(()) => {
                            part.counts.folders += 1;
                            part.synced.push(name.clone());
                            let new = part.counts.fetched - fetched_before;
                            if new > 0 {
                                *part.new_mail.entry(name).or_default() += new;
                            }
                        }
                        Err(e @ EngineError::Stopped) => {
                            lost = Some(e);
                            break;
                        }
                        Err(EngineError::Imap(e)) if e.ends_session() => {
                            lost = Some(EngineError::Imap(e));
                            break;
                        }
                        Err(e) => part.errors.push(folder_failure(&name, &e)),
                    }
                }
                (part, lost)
            }
        },
    ))
    .await;
    let mut lost = None;
    for (part, l) in applied {
        report.merge(part);
        lost = lost.or(l);
    }
    match lost {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn open_session(
    account: &Account,
    secret: &secret::Secret,
    kind: secret::CredentialKind,
) -> Result<ImapSession, EngineError> {
    let connected = imap::connect(&account.server, secret, kind).await?;
    Ok(ImapSession::new(connected, account.server.timeout).await?)
}

async fn logout_all(sessions: Vec<ImapSession>) {
    futures::future::join_all(sessions.into_iter().map(ImapSession::logout)).await;
}

/// A progress listener for one of several concurrent sessions that reports the account's
/// totals, not the session's share.
fn summed(
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
    }
}

impl AccountReport {
    fn merge(&mut self, part: AccountReport) {
        self.counts += part.counts;
        self.halts.extend(part.halts);
        self.errors.extend(part.errors);
        self.plans.extend(part.plans);
        self.synced.extend(part.synced);
        for (folder, n) in part.new_mail {
            *self.new_mail.entry(folder).or_default() += n;
        }
    }
}

/// What every folder of one account pass shares.
struct Ctx<'a> {
    store: &'a Store,
    map: &'a FolderMap,
    settings: &'a ImapSettings,
    policy: &'a Policy,
    opts: &'a SyncOptions,
    scope: &'a PassScope,
}

fn end(p: &Prepared) -> moves::End<'_> {
    moves::End {
        folder: p.folder.id,
        wire: &p.wire,
        md: &p.md,
    }
}

/// One folder observed and planned, waiting for the moves to run.
struct Prepared {
    name: FolderName,
    wire: String,
    folder: store::FolderState,
    base: sync::Base,
    md: Maildir,
    scan: maildir::LocalScan,
    local: sync::LocalSnapshot,
    remote: observe::RemoteObservation,
    plan: sync::Plan,
    /// The Maildir stamp around a stable scan, if it held still.
    stamp: Option<String>,
}

impl Ctx<'_> {
    /// Record a folder's outcome for `syncmail status` (not for a dry run).
    async fn record(&self, folder: &FolderName, error: Option<&str>) -> Result<(), EngineError> {
        if !self.opts.dry_run {
            self.store
                .record_pass(
                    Some(folder.clone()),
                    SystemTime::now(),
                    error.map(str::to_owned),
                )
                .await?;
        }
        Ok(())
    }

    /// Observe both sides of a folder and plan it. `None`: nothing to run (halted,
    /// missing Maildir, or a dry run of a folder not made yet); the report says why.
    async fn prepare(
        &self,
        session: &mut ImapSession,
        name: &FolderName,
        wire: &str,
        report: &mut AccountReport,
    ) -> Result<Option<Prepared>, EngineError> {
        let local_path = self.map.to_local(name)?;
        let folder = self.store.ensure_folder(name, &local_path).await?;
        if let Some(reason) = &folder.halt_reason {
            report.halts.push(format!("{name}: halted: {reason}"));
            return Ok(None);
        }
        let mut selected = None;
        if !self.opts.dry_run {
            match self.unchanged(session, &folder, &local_path, wire).await? {
                Unchanged::Yes => {
                    report.counts.folders += 1;
                    return Ok(None);
                }
                Unchanged::No(s) => selected = s,
            }
        }
        let base = self.store.base(&folder).await?;
        if self.opts.dry_run && !local_path.join("cur").is_dir() {
            let empty = sync::LocalSnapshot {
                stable: true,
                ..Default::default()
            };
            let remote = observe::remote(session, wire, &base, None).await?;
            let plan = sync::plan(&remote.snapshot, &empty, &base, self.policy, now());
            report.plans.push(format!(
                "{name}: would create {}\n{plan}",
                local_path.display()
            ));
            return Ok(None);
        }
        let Some(md) = self.maildir(name, &local_path, &base)? else {
            report.halts.push(format!(
                "{name}: the Maildir folder {} is missing while {} messages are paired with it (unmounted disk?); nothing synced, nothing deleted",
                local_path.display(),
                base.pairs.len()
            ));
            return Ok(None);
        };
        let before = md.stamp().ok();
        let scan = md
            .scan()
            .map_err(|e| EngineError::Local(format!("{}: {e}", local_path.display())))?;
        let after = md.stamp().ok();
        let stamp = (scan.stable && scan.duplicates.is_empty() && before == after)
            .then_some(after)
            .flatten();
        for dup in &scan.duplicates {
            report.errors.push(format!(
                "{name}: {} files share the key {}; that message is left alone until one is removed",
                dup.copies.len(),
                dup.key
            ));
        }
        let local = observe::local(&scan);
        let started = std::time::Instant::now();
        let remote = observe::remote(session, wire, &base, selected).await?;
        let observed = started.elapsed();
        let plan = sync::plan(&remote.snapshot, &local, &base, self.policy, now());
        tracing::debug!(folder = %name, ?observed, planned = ?started.elapsed() - observed, actions = plan.actions.len(), "observed and planned");
        Ok(Some(Prepared {
            name: name.clone(),
            wire: wire.to_owned(),
            folder,
            base,
            md,
            scan,
            local,
            remote,
            plan,
            stamp,
        }))
    }

    /// Neither side changed since a pass that left them equal: the Maildir's stamp is the
    /// one recorded then, and QRESYNC reports nothing. One round trip and two `stat`s;
    /// the base is not even loaded.
    async fn unchanged(
        &self,
        session: &mut ImapSession,
        folder: &store::FolderState,
        path: &Path,
        wire: &str,
    ) -> Result<Unchanged, EngineError> {
        let (Some(stamp), Some(uv), Some(ms)) = (
            &folder.local_stamp,
            folder.uidvalidity,
            folder.highestmodseq,
        ) else {
            return Ok(Unchanged::No(None));
        };
        if !session.has_qresync()
            || Maildir::open(path).and_then(|m| m.stamp()).ok().as_ref() != Some(stamp)
        {
            return Ok(Unchanged::No(None));
        }
        let selected = session.select(wire, Some((uv, ms))).await?;
        if selected.resynced
            && selected.changed.is_empty()
            && selected.vanished.is_empty()
            && selected.highestmodseq == Some(ms)
        {
            Ok(Unchanged::Yes)
        } else {
            // What changed is in this answer already: observing reuses it rather than
            // selecting again (a SELECT can cost a server a rescan of the folder).
            Ok(Unchanged::No(Some(observe::Preselected {
                known: (uv, ms),
                selected,
            })))
        }
    }

    async fn run_move(
        &self,
        session: &mut ImapSession,
        prepared: &[Prepared],
        m: &sync::Move,
    ) -> Result<(), EngineError> {
        let find = |name: &FolderName| {
            prepared
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| EngineError::Local(format!("move names an unplanned folder {name}")))
        };
        match m {
            sync::Move::OnServer { from, to, pair } => {
                let (f, t) = (find(from)?, find(to)?);
                moves::on_server(session, self.store, &end(f), &end(t), pair).await
            }
            sync::Move::Local {
                from,
                to,
                pair,
                uid,
            } => {
                let (f, t) = (find(from)?, find(to)?);
                let file = f.scan.messages.get(&pair.key);
                moves::locally(self.store, &end(f), &end(t), pair, *uid, file).await
            }
            sync::Move::Both {
                from,
                to,
                pair,
                uid,
            } => {
                let (f, t) = (find(from)?, find(to)?);
                moves::repair_moved(self.store, f.folder.id, t.folder.id, pair, *uid, None).await
            }
        }
    }

    /// Run one folder's plan and commit its watermarks (rule 4).
    async fn apply(
        &self,
        session: &mut ImapSession,
        p: Prepared,
        moved: bool,
        report: &mut AccountReport,
    ) -> Result<(), EngineError> {
        let Prepared {
            name,
            wire,
            folder,
            base,
            md,
            scan,
            remote,
            plan,
            stamp,
            ..
        } = p;
        let touches_local = moved || plan.actions.iter().any(|a| a.touches_local());
        if let Some(halt) = &plan.halt {
            if let Halt::UidValidity { .. } = halt {
                self.store
                    .set_halt(folder.id, Some(halt.to_string()))
                    .await?;
            }
            report.halts.push(format!("{name}: {halt}"));
        }
        report.counts.conflicts += plan.conflicts.len();
        let mut uidnext = remote.uidnext;
        if plan
            .actions
            .iter()
            .any(|a| a.touches_server() || matches!(a, sync::Action::Fetch { .. }))
        {
            // Moves and other folders' passes selected other folders meanwhile.
            let selected = session.select(&wire, None).await?;
            uidnext = uidnext.max(selected.uidnext.unwrap_or(uidnext));
        }
        let trash_wire = self.settings.trash.as_ref().map(|t| utf7::encode(&t.0));
        let mut counts = report.counts;
        let mut run = apply::FolderRun::new(
            session,
            self.store,
            &md,
            &folder,
            &wire,
            trash_wire,
            &remote.snapshot,
            uidnext,
            &mut counts,
            self.opts.progress.clone(),
            // Pairs a move just rewrote are read back, not taken from the stale base.
            if moved {
                self.store
                    .pairs(folder.id)
                    .await?
                    .into_iter()
                    .map(|p| (p.uid, p))
                    .collect()
            } else {
                base.pairs
            },
            scan.messages,
        );
        run.stop = self.scope.stop.clone();
        let started = std::time::Instant::now();
        let mut failed = None;
        for action in &plan.actions {
            if self.scope.stopped() {
                failed = Some(EngineError::Stopped);
                break;
            }
            if let Err(e) = run.run(action).await {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            // What ran before the failure is committed: the summary counts it.
            drop(run);
            report.counts = counts;
            return Err(e);
        }
        tracing::debug!(folder = %name, applied = ?started.elapsed(), "applied");
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
                    // Untouched by this pass and equal to the base: the scan's stamp
                    // stands for the folder. Otherwise forget it; verified below.
                    local_stamp: Some(stamp.filter(|_| {
                        !touches_local && plan.halt.is_none() && plan.held.is_empty() && run.clean()
                    })),
                }
            }),
            changes: plan
                .changes
                .iter()
                .map(|c| change_record(&name, c))
                .collect(),
            conflicts: plan
                .conflicts
                .iter()
                .map(|c| conflict_record(&name, c))
                .collect(),
            ..Commit::default()
        };
        let keeps_one_sided = plan.actions.iter().any(|a| {
            matches!(
                a,
                sync::Action::KeepLocalOnly { .. } | sync::Action::DropLocalOnly { .. }
            )
        });
        let clean = run.clean() && plan.halt.is_none() && plan.held.is_empty() && !keeps_one_sided;
        let finished = run.finish(last).await;
        let final_pairs = std::mem::take(&mut run.pairs);
        drop(run);
        report.counts = counts;
        finished?;
        if touches_local && clean {
            self.record_stamp(&folder, &md, &final_pairs, &base.local_only)
                .await?;
        }
        Ok(())
    }

    /// After a pass that changed the Maildir folder: if its names now show exactly the
    /// committed pairs (and local-only messages), remember the folder's stamp, so the
    /// next pass can skip it while it stays untouched.
    async fn record_stamp(
        &self,
        folder: &store::FolderState,
        md: &Maildir,
        pairs: &std::collections::BTreeMap<crate::model::Uid, sync::Pair>,
        local_only: &BTreeSet<crate::model::MaildirKey>,
    ) -> Result<(), EngineError> {
        let Ok(Some((names, stamp))) = md.names_with_stamp() else {
            return Ok(());
        };
        let expected: std::collections::BTreeMap<
            &crate::model::MaildirKey,
            Option<crate::model::Flags>,
        > = pairs
            .values()
            .map(|p| (&p.key, Some(p.local_flags.system_only())))
            .chain(local_only.iter().map(|k| (k, None)))
            .collect();
        let equal = names.len() == expected.len()
            && names.iter().all(|(key, flags)| match expected.get(key) {
                Some(Some(f)) => *f == flags.system_only(),
                Some(None) => true,
                None => false,
            });
        if equal {
            self.store
                .commit(Commit {
                    folder: Some(folder.id),
                    watermarks: Some(Watermarks {
                        local_stamp: Some(Some(stamp)),
                        ..Watermarks::default()
                    }),
                    ..Commit::default()
                })
                .await?;
        }
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

/// Whether a folder can be skipped, and if not, the SELECT that found out.
enum Unchanged {
    Yes,
    No(Option<observe::Preselected>),
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
