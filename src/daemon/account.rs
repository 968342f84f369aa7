//! One account's supervisor: holds the account lock and state for its lifetime, and
//! decides when a pass runs: it gathers triggers from the push connection, the file
//! watcher, the sweep and timers, and runs passes one at a time through the engine's
//! account link (so passes of a folder never overlap). Failures are retried with
//! backoff here, by their kind, and never leave this task.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Shared;
use super::backoff::Backoff;
use super::hooks;
use super::push::{self, Push, PushState};
use super::request::{self, Answer, Outcome, Waiting};
use super::triggers::{Triggers, Work};
use crate::config::{Account, AccountKind, General};
use crate::engine::{
    self, AccountLink, AccountReport, EngineError, FailureKind, FolderFailure, PassScope,
    SyncOptions,
};
use crate::imap::ImapError;
use crate::maildir::FolderMap;
use crate::model::FolderName;
use crate::store::{AccountLock, Store};

/// A running account, as the daemon keeps it.
pub struct Running {
    pub stop: watch::Sender<bool>,
    pub triggers: Arc<Triggers>,
    pub handle: JoinHandle<()>,
    /// The account's config as text, to tell on reload whether it changed.
    pub fingerprint: String,
}

pub fn fingerprint(account: &Account) -> String {
    // `Debug` redacts a password written in the config, so a change of that password
    // alone would go unnoticed on SIGHUP; a digest of it shows the change without
    // keeping a second copy of the password.
    let secret = match &account.secret {
        crate::config::SecretSource::Password(p) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, p.as_bytes());
            hex::encode(digest)
        }
        _ => String::new(),
    };
    format!("{account:?} {secret}")
}

/// Take the account's lock and state, then supervise it in a task of its own.
pub fn start(
    account: Account,
    general: Arc<General>,
    shared: Shared,
) -> Result<Running, EngineError> {
    let state = engine::open_state(&general, &account.name)?;
    Ok(spawn(account, general, shared, Some(state)))
}

/// Like [`start`], for an account whose lock another process holds (a one-shot
/// `syncmail sync`): the task waits for the lock, then supervises as usual.
pub fn start_when_free(account: Account, general: Arc<General>, shared: Shared) -> Running {
    spawn(account, general, shared, None)
}

fn spawn(
    account: Account,
    general: Arc<General>,
    shared: Shared,
    state: Option<(AccountLock, Store)>,
) -> Running {
    let (stop, mut stop_rx) = watch::channel(false);
    let triggers = Arc::new(Triggers::default());
    let fingerprint = fingerprint(&account);
    let task_triggers = triggers.clone();
    let handle = tokio::spawn(async move {
        let (lock, store) = match state {
            Some(state) => state,
            None => loop {
                shared
                    .board
                    .set(&account.name.0, "waiting for the account lock".into());
                tokio::select! {
                    () = stopped(&mut stop_rx) => {
                        shared.board.remove(&account.name.0);
                        return;
                    }
                    () = tokio::time::sleep(LOCK_RETRY) => {}
                }
                match engine::open_state(&general, &account.name) {
                    Ok(state) => break state,
                    Err(e) => tracing::debug!(account = %account.name, "{e}"),
                }
            },
        };
        let supervisor = Supervisor {
            account: Arc::new(account),
            general,
            store,
            _lock: lock,
            triggers: task_triggers,
            stop: stop_rx,
            shared,
        };
        supervisor.run().await;
    });
    Running {
        stop,
        triggers,
        handle,
        fingerprint,
    }
}

/// What `syncmail sync` prints for a pass the daemon ran for it: the same lines and
/// outcome as if it had run the pass itself.
fn report_answer(account: &str, report: &AccountReport) -> Answer {
    let mut stdout: Vec<String> = report.plans.clone();
    stdout.extend(report.notes.iter().map(|n| format!("{account}: {n}")));
    let stderr: Vec<String> = report
        .halts
        .iter()
        .chain(report.errors.iter().map(|e| &e.text))
        .map(|m| format!("syncmail: account `{account}`: {m}"))
        .collect();
    stdout.push(format!("{account}: {}", report.counts));
    Answer {
        outcome: if stderr.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Failed
        },
        stdout,
        stderr,
    }
}

fn failure_answer(account: &str, e: &EngineError) -> Answer {
    Answer {
        outcome: if e.is_transient() {
            Outcome::TempFail
        } else {
            Outcome::Failed
        },
        stdout: Vec::new(),
        stderr: vec![format!("syncmail: account `{account}`: {e}")],
    }
}

/// How often an account whose lock is held elsewhere tries again.
const LOCK_RETRY: Duration = Duration::from_secs(10);

struct Supervisor {
    account: Arc<Account>,
    general: Arc<General>,
    store: Store,
    /// Held for the daemon's lifetime: a one-shot `syncmail sync` is refused meanwhile.
    _lock: AccountLock,
    triggers: Arc<Triggers>,
    stop: watch::Receiver<bool>,
    shared: Shared,
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.account.name.0
    }

    fn state(&self, state: impl Into<String>) {
        self.shared.board.set(self.name(), state.into());
    }

    async fn run(mut self) {
        let settings = match &self.account.kind {
            AccountKind::Imap(settings) => settings.clone(),
            AccountKind::Pop3(pop3) => {
                let pop3 = pop3.clone();
                self.run_pop3(&pop3).await;
                self.shared.board.remove(self.name());
                return;
            }
        };
        let tuning = self.shared.tuning.clone();
        self.state("starting");
        let mut watcher: Option<super::watch::LocalWatch> = None;
        let mut link = AccountLink::new(self.account.clone(), Some(&self.general.state_dir));
        let push_state = Arc::new(PushState::default());
        let pushers = push::start(Push {
            account: self.account.clone(),
            budget: link.budget().clone(),
            triggers: self.triggers.clone(),
            stop: self.stop.clone(),
            shared: self.shared.clone(),
            state: push_state.clone(),
        });
        let mut backoff = Backoff::new(tuning.backoff_min, tuning.backoff_max);
        let mut retry_at: Option<Instant> = None;
        let mut next_poll = Instant::now() + self.account.poll_interval;
        let mut next_sweep = Instant::now() + settings.sweep_interval;
        let mut epoch = self.shared.epoch.clone();
        epoch.borrow_and_update();
        let mut stop = self.stop.clone();
        let mut echo: Option<EchoWindow> = None;
        // The folders the last pass left a message for (a move seen halfway), so the
        // same ones are not passed again and again if the next pass leaves them too.
        let mut last_again: BTreeSet<FolderName> = BTreeSet::new();
        let mut last_vanished: Vec<FolderName> = Vec::new();
        // `syncmail sync` on this account asks here for a pass instead of being refused.
        let waiting = Arc::new(Waiting::default());
        let requests = request::listen(
            &self.general.state_dir,
            &self.account.name,
            waiting.clone(),
            self.triggers.clone(),
            self.stop.clone(),
        );
        self.triggers.all();
        'main: loop {
            let far = Instant::now() + Duration::from_secs(365 * 86400);
            let mut sweep = false;
            let mut look = false;
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break 'main,
                Ok(()) = epoch.changed() => self.triggers.add(Work { reconnect: true, all: true, ..Work::default() }),
                () = self.triggers.changed() => {}
                () = tokio::time::sleep_until(next_poll) => {
                    next_poll = Instant::now() + self.account.poll_interval;
                    self.triggers.all();
                }
                () = tokio::time::sleep_until(next_sweep) => {
                    next_sweep = Instant::now() + settings.sweep_interval;
                    // NOTIFY watches every folder: nothing to sweep.
                    sweep = !push_state.notify();
                }
                () = tokio::time::sleep_until(echo.as_ref().map_or(far, |e| e.next)), if echo.is_some() => {
                    look = true;
                }
                () = tokio::time::sleep_until(retry_at.unwrap_or(far)), if retry_at.is_some() => {
                    retry_at = None;
                }
            }
            if look {
                self.look(&mut link, &mut echo).await;
            }
            if !sweep && self.triggers.peek_empty() {
                // A wake-up left from work a pass already took: nothing to gather.
                continue;
            }
            if !sweep {
                // Gather the rest of a burst of local renames before looking (our own
                // fetch's file writes among them); a folder the server named is passed
                // at once (its events gather in the set while a pass runs, so they cost
                // one pass per pass at most), and so is one the echo window finds.
                let debounced = Instant::now() + tuning.debounce;
                loop {
                    let far = Instant::now() + Duration::from_secs(365 * 86400);
                    tokio::select! {
                        () = stopped(&mut stop) => break 'main,
                        () = tokio::time::sleep_until(debounced) => break,
                        () = self.triggers.until_urgent() => break,
                        () = tokio::time::sleep_until(echo.as_ref().map_or(far, |e| e.next)), if echo.is_some() => {
                            self.look(&mut link, &mut echo).await;
                        }
                    }
                }
            }
            if let Some(at) = retry_at {
                if Instant::now() < at && !self.triggers.peek_now() {
                    // Backing off: the work waits for the retry timer.
                    continue;
                }
                retry_at = None;
            }
            if sweep && link.is_up() {
                match self.sweep(&mut link).await {
                    Ok(()) => {
                        if link.budget().limit() <= 2 && self.triggers.peek_empty() {
                            link.release().await;
                        }
                    }
                    Err(e) => {
                        link.drop_connection();
                        let delay = self.failed(&e, &mut backoff).await;
                        retry_at = Some(Instant::now() + delay);
                        self.triggers.restore(Work {
                            all: true,
                            ..Work::default()
                        });
                        continue;
                    }
                }
            }
            let mut work = self.triggers.take();
            if work.is_empty() {
                continue;
            }
            // The clients that asked before this attempt began; answered by it if it
            // passes every folder, else put back for the next.
            let asked = waiting.take();
            if work.reconnect {
                link.disconnect().await;
            }
            if !link.is_up() {
                self.state("connecting");
                match link.connect().await {
                    // After every (re)connect the whole account is resynced (rule 16).
                    Ok(()) => work.all = true,
                    Err(e) => {
                        request::answer(asked, &failure_answer(self.name(), &e));
                        let delay = self.failed(&e, &mut backoff).await;
                        retry_at = Some(Instant::now() + delay);
                        self.triggers.restore(Work {
                            all: true,
                            ..Work::default()
                        });
                        continue;
                    }
                }
            }
            // Deliveries a failed batch left open are resolved before anything else
            // (rule 1); with none open this is one query.
            let mut prepared = AccountReport::default();
            if let Err(e) = engine::prepare(&self.account, &self.store, false, &mut prepared).await
            {
                request::answer(asked, &failure_answer(self.name(), &e));
                let delay = self.failed(&e, &mut backoff).await;
                retry_at = Some(Instant::now() + delay);
                self.triggers.restore(work);
                continue;
            }
            // The Maildir root exists now (prepare made it): watch it for local changes,
            // and the folders made since, before the pass reads them.
            if let Some(w) = &mut watcher {
                w.refresh();
            } else {
                watcher = match super::watch::watch(&self.account.maildir, self.triggers.clone()) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::warn!(
                            account = self.name(),
                            "cannot watch {} for local changes ({e}); they wait for the next poll",
                            self.account.maildir.display()
                        );
                        None
                    }
                };
            }
            let scope = link.map().and_then(|map| scope_of(&work, map));
            let asked = if scope.is_none() {
                asked
            } else {
                waiting.restore(asked);
                Vec::new()
            };
            if scope.as_ref().is_some_and(BTreeSet::is_empty) {
                continue;
            }
            match &scope {
                None => tracing::debug!(account = self.name(), "pass: every folder"),
                Some(only) => tracing::debug!(
                    account = self.name(),
                    "pass: {}",
                    only.iter()
                        .map(|f| f.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
            self.state("syncing");
            let stop_flag = Arc::new(AtomicBool::new(false));
            let pass_scope = PassScope {
                folders: scope,
                stop: Some(stop_flag.clone()),
            };
            let mut report = AccountReport {
                errors: prepared.errors,
                ..AccountReport::default()
            };
            let opts = SyncOptions::default();
            let result = {
                let fut = link.pass(&self.store, &opts, &pass_scope, &mut report);
                tokio::pin!(fut);
                tokio::select! {
                    r = &mut fut => r,
                    () = stopped(&mut stop) => {
                        // Shutdown: finish the batch in flight, then stop at its boundary.
                        stop_flag.store(true, Ordering::Relaxed);
                        tokio::time::timeout(tuning.shutdown_grace, &mut fut)
                            .await
                            .unwrap_or(Err(EngineError::Stopped))
                    }
                }
            };
            // Watch the folders the pass made; a file put in one before its watch began
            // made no event, so the next pass looks at them.
            if let Some(w) = &mut watcher {
                for dir in w.refresh() {
                    self.triggers.dir(dir);
                }
            }
            match result {
                Ok(()) => {
                    backoff.reset();
                    if work.all {
                        next_poll = Instant::now() + self.account.poll_interval;
                    }
                    if link.budget().limit() <= 2 {
                        // Push and this connection would be the whole budget: free it
                        // between passes, so a one-shot sync can run meanwhile.
                        link.release().await;
                    }
                    self.passed(&report).await;
                    // A message moved halfway through the pass: pass its folders again
                    // (once: if that pass leaves the same, the next event or poll does).
                    if !report.again.is_empty() && report.again != last_again {
                        self.triggers.add(Work {
                            folders: report.again.clone(),
                            ..Work::default()
                        });
                    }
                    last_again = std::mem::take(&mut report.again);
                    // A listed folder was gone when selected: another client renamed or
                    // deleted it. Only the folder step of a pass over every folder tells
                    // which (a rename moves the Maildir folder), and only on a listing
                    // that no longer shows it: a Dovecot session kept listing renamed
                    // folders for a minute while a new one did not (the soak, seed
                    // 20261209 on 2aff00c), and rule 9 then kept the old folder with its
                    // mail. So: a new pass connection, every folder, at once (once per set
                    // of such folders; a server that keeps listing one waits for the poll).
                    if !report.vanished.is_empty() && report.vanished != last_vanished {
                        self.triggers.add(Work {
                            all: true,
                            reconnect: true,
                            ..Work::default()
                        });
                    }
                    last_vanished = std::mem::take(&mut report.vanished);
                    request::answer(asked, &report_answer(self.name(), &report));
                    self.retry_failed_folders(&report, &mut backoff, &mut retry_at)
                        .await;
                    echo = EchoWindow::after(&pass_scope, &report, link.is_connected());
                }
                Err(EngineError::Stopped) => {
                    tracing::info!(
                        account = self.name(),
                        "stopped between batches; the rest resumes at the next start"
                    );
                    break 'main;
                }
                Err(e) => {
                    request::answer(asked, &failure_answer(self.name(), &e));
                    let _ = self
                        .store
                        .record_pass(None, SystemTime::now(), Some(e.to_string()))
                        .await;
                    // The connection may be in any state: start afresh.
                    link.drop_connection();
                    let delay = self.failed(&e, &mut backoff).await;
                    retry_at = Some(Instant::now() + delay);
                    self.triggers.restore(Work {
                        all: true,
                        ..Work::default()
                    });
                }
            }
        }
        drop(watcher);
        waiting.close();
        if let Some((path, task)) = requests {
            task.abort();
            let _ = std::fs::remove_file(path);
        }
        // The push tasks see the same stop; give them a moment to LOGOUT.
        for task in pushers {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        link.close().await;
        let _ = self.store.set_daemon_state(None).await;
        self.shared.board.remove(self.name());
        tracing::info!(account = self.name(), "stopped");
    }

    /// One look of the echo window: mail arrived in its folders? Then pass them now.
    async fn look(&self, link: &mut AccountLink, echo: &mut Option<EchoWindow>) {
        let Some(window) = echo.take() else {
            return;
        };
        match link.arrivals(&self.store, &window.folders).await {
            Ok(moved) if !moved.is_empty() => {
                tracing::debug!(account = self.name(), "arrived in the echo window");
                self.triggers.folders(moved);
            }
            Ok(_) => *echo = window.step(),
            Err(e) => tracing::debug!(account = self.name(), "echo window: {e}"),
        }
    }

    /// Ask the server which folders moved and queue a pass of just those.
    async fn sweep(&self, link: &mut AccountLink) -> Result<(), EngineError> {
        let started = std::time::Instant::now();
        let swept = link.sweep(&self.store).await?;
        tracing::debug!(
            account = self.name(),
            "sweep: {} folders in {} ms, moved: {}",
            swept.looked,
            started.elapsed().as_millis(),
            swept
                .changed
                .iter()
                .map(|f| f.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if swept.folders_changed {
            self.triggers.all();
        } else if !swept.changed.is_empty() {
            self.triggers.folders(swept.changed);
        }
        Ok(())
    }

    /// Folders that failed in a pass that otherwise ran: what may clear by itself (the
    /// network, a full disk) is tried again after a backoff; a permanent failure waits
    /// for the next full pass; a halted folder for a human.
    async fn retry_failed_folders(
        &self,
        report: &AccountReport,
        backoff: &mut Backoff,
        retry_at: &mut Option<Instant>,
    ) {
        let soon: Vec<&FolderFailure> = report.errors.iter().filter(|e| e.retry_soon()).collect();
        let Some(first) = soon.first() else {
            return;
        };
        let delay = backoff.next_delay();
        *retry_at = Some(Instant::now() + delay);
        let folders: BTreeSet<FolderName> = soon.iter().filter_map(|e| e.folder.clone()).collect();
        self.triggers.restore(Work {
            all: folders.is_empty(),
            folders,
            ..Work::default()
        });
        let paused = match first.kind {
            FailureKind::DiskFull => "paused: the disk is full",
            _ => "folder errors",
        };
        let state = format!(
            "{paused} ({first}); retrying in {}s",
            delay.as_secs().max(1)
        );
        self.announce(state).await;
    }

    /// Show a trouble in `status` (the board, the store), then say it in the log: a user
    /// who reads the line and runs `syncmail status` finds it there.
    async fn announce(&self, state: String) {
        self.state(state.clone());
        let _ = self.store.set_daemon_state(Some(state.clone())).await;
        tracing::warn!(account = self.name(), "{state}");
    }

    /// Record a failed connect or pass; returns how long to wait before the next try.
    async fn failed(&self, e: &EngineError, backoff: &mut Backoff) -> Duration {
        if e.needs_login() {
            return self.needs_login(e).await;
        }
        let (delay, what) = retry_after(e, backoff, &self.shared.tuning);
        self.announce(format!(
            "{what}: {e}; retrying in {}s",
            delay.as_secs().max(1)
        ))
        .await;
        delay
    }

    /// The account waits for `syncmail login`: say so once in the log, mark it in
    /// `status`, and look again for a new stored login every `login_poll` (cheap: a
    /// refused token is not sent to the provider again).
    async fn needs_login(&self, e: &impl std::fmt::Display) -> Duration {
        let state = format!("stopped, needs login: {e}");
        let board = self.shared.board.get(self.name());
        // `status` shows it by the time the log says it.
        self.state(state.clone());
        let _ = self.store.set_daemon_state(Some(state.clone())).await;
        if board.as_deref() != Some(state.as_str()) {
            tracing::error!(account = self.name(), "{state}; the other accounts go on");
        }
        self.shared.tuning.login_poll
    }

    /// A pass completed: record it, report, run hooks.
    /// A POP3 account: poll every `poll_interval`, on SIGUSR1 and at start; a network
    /// failure is retried with backoff, a permanent one (a wrong password) slowly.
    async fn run_pop3(&mut self, pop3: &crate::config::Pop3Settings) {
        let tuning = self.shared.tuning.clone();
        let mut backoff = Backoff::new(tuning.backoff_min, tuning.backoff_max);
        let mut stop = self.stop.clone();
        let mut next = Instant::now();
        loop {
            let far = Instant::now() + Duration::from_secs(365 * 86400);
            tokio::select! {
                biased;
                () = stopped(&mut stop) => return,
                () = self.triggers.changed() => {}
                () = tokio::time::sleep_until(next.min(far)) => {}
            }
            self.triggers.take();
            self.state("polling");
            let poll = crate::engine::pop3::poll_with_store(
                &self.account,
                pop3,
                &self.store,
                SystemTime::now(),
            );
            // A poll stops only at its own safe points; shutdown waits for it briefly.
            let result = tokio::select! {
                r = poll => Some(r),
                () = stopped(&mut stop) => None,
            };
            let Some(result) = result else {
                return;
            };
            match result {
                Ok(report) => {
                    backoff.reset();
                    next = Instant::now() + self.account.poll_interval;
                    for warning in &report.warnings {
                        tracing::warn!(account = self.name(), "{warning}");
                    }
                    let inbox = FolderName("INBOX".into());
                    let mut done = AccountReport {
                        synced: vec![inbox.clone()],
                        ..AccountReport::default()
                    };
                    done.counts.fetched = report.downloaded;
                    done.counts.fetched_bytes = report.downloaded_bytes;
                    done.counts.deleted_server = report.deleted;
                    if report.downloaded > 0 {
                        done.new_mail.insert(inbox, report.downloaded);
                    }
                    self.passed(&done).await;
                }
                Err(e) if e.fault.needs_login() => {
                    next = Instant::now() + self.needs_login(&e).await;
                }
                Err(e) => {
                    let mut delay = backoff.next_delay();
                    if !e.is_transient() {
                        delay = delay.max(tuning.auth_retry);
                    }
                    let _ = self
                        .store
                        .record_pass(None, SystemTime::now(), Some(e.to_string()))
                        .await;
                    self.announce(format!("{e}; retrying in {}s", delay.as_secs().max(1)))
                        .await;
                    next = Instant::now() + delay;
                }
            }
        }
    }

    async fn passed(&self, report: &AccountReport) {
        let _ = self.store.record_pass(None, SystemTime::now(), None).await;
        let _ = self.store.set_daemon_state(None).await;
        let c = &report.counts;
        let changed = c.fetched
            + c.appended
            + c.flags_pushed
            + c.flags_pulled
            + c.deleted_server
            + c.deleted_local
            > 0;
        if changed {
            tracing::info!(account = self.name(), "{c}");
            // What the pass brought (or carried away) shows in the unified folder.
            self.shared.unified_kick.notify_one();
        } else {
            tracing::debug!(account = self.name(), "{c}");
        }
        for halt in &report.halts {
            tracing::warn!(account = self.name(), "{halt}");
        }
        for error in &report.errors {
            tracing::warn!(account = self.name(), "{error}");
        }
        for note in &report.notes {
            tracing::info!(account = self.name(), "{note}");
        }
        self.state("idle");
        let limit = self.general.hook_timeout;
        if let Some(argv) = &self.general.on_new_mail {
            for (folder, n) in &report.new_mail {
                hooks::spawn(
                    "on_new_mail",
                    argv,
                    vec![
                        ("SYNCMAIL_ACCOUNT", self.name().to_owned()),
                        ("SYNCMAIL_FOLDER", folder.0.clone()),
                        ("SYNCMAIL_NEW_COUNT", n.to_string()),
                    ],
                    limit,
                );
            }
        }
        if changed && let Some(argv) = &self.general.after_sync {
            hooks::spawn(
                "after_sync",
                argv,
                vec![("SYNCMAIL_ACCOUNT", self.name().to_owned())],
                limit,
            );
        }
    }
}

/// Servers hold back push for a while after a change to a folder: Dovecot reports
/// nothing for half a second after any change, our own STORE included, and after each
/// report it sends, so mail that arrives right after a pass of ours pushed a flag, or
/// right after the mail that pass fetched, would wait for that. For a short window
/// after such a pass the supervisor asks itself (NOOP + STATUS UIDNEXT on the pass
/// connection) and passes the folder as soon as mail arrived.
struct EchoWindow {
    folders: BTreeSet<FolderName>,
    next: Instant,
    until: Instant,
}

/// How long after our own change the server's push may lag, and how often we look.
const ECHO_WINDOW: Duration = Duration::from_millis(600);
const ECHO_STEP: Duration = Duration::from_millis(100);
/// A pass over more folders than this is not followed by a window (a full pass).
const ECHO_FOLDERS: usize = 4;

impl EchoWindow {
    fn after(scope: &PassScope, report: &AccountReport, connected: bool) -> Option<EchoWindow> {
        let c = &report.counts;
        // Our own change to the server, or mail the server just reported (after a
        // report Dovecot holds the next one back for the same half second).
        let held_back = c.flags_pushed + c.appended + c.deleted_server + c.moved + c.fetched > 0;
        let folders = scope.folders.clone()?;
        (connected && held_back && !folders.is_empty() && folders.len() <= ECHO_FOLDERS).then(
            || {
                let now = Instant::now();
                EchoWindow {
                    folders,
                    next: now + ECHO_STEP,
                    until: now + ECHO_WINDOW,
                }
            },
        )
    }

    fn step(self) -> Option<EchoWindow> {
        let next = Instant::now() + ECHO_STEP;
        (next <= self.until).then_some(EchoWindow { next, ..self })
    }
}

/// The folders a pass covers: `None` for all, else those IDLE named and those whose
/// local directory changed.
fn scope_of(work: &Work, map: &FolderMap) -> Option<BTreeSet<FolderName>> {
    if work.all {
        return None;
    }
    let mut folders = work.folders.clone();
    for dir in &work.dirs {
        if dir.as_os_str().is_empty() {
            folders.insert(FolderName("INBOX".into()));
        } else if let Ok(name) = map.to_server(dir) {
            folders.insert(name);
        } else {
            // A directory we cannot name: let a full pass sort it out.
            return None;
        }
    }
    Some(folders)
}

/// Resolves once the account is told to stop (or its daemon is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// How long to wait after a failed connect or pass, and the word for the state: the
/// backoff by the failure's kind. Every connection of the budget in use is not the
/// server's fault and frees within a pass, so it is looked at again soon and never
/// escalates the backoff (in the soak an account whose slots another account's passes
/// held waited 145 s, its client's changes with it).
fn retry_after(
    e: &EngineError,
    backoff: &mut Backoff,
    tuning: &super::Tuning,
) -> (Duration, &'static str) {
    if matches!(e, EngineError::Busy(_)) {
        return (BUSY_RETRY, "waiting for a connection");
    }
    let mut delay = backoff.next_delay();
    if needs_human(e) {
        // Wrong password or certificate: retrying soon cannot help; retry slowly.
        delay = delay.max(tuning.auth_retry);
    }
    if e.is_over_limit() {
        // Gmail's daily limits: every try until they reset would be refused, and
        // counts against the account; wait, and say so.
        delay = delay.max(tuning.over_limit_pause);
    }
    let what = if e.is_disk_full() {
        "paused: the disk is full"
    } else if e.is_over_limit() {
        "paused"
    } else {
        "error"
    };
    (delay, what)
}

/// How soon an account looks for a free connection again when the budget is spent.
const BUSY_RETRY: Duration = Duration::from_secs(2);

pub(super) fn needs_human(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Imap(ImapError::Auth(_) | ImapError::Tls(_)) | EngineError::Secret(_)
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::fingerprint;
    use crate::config::{Account, Dirs, parse};

    fn account(password: &str) -> Account {
        let text = format!(
            "[general]\nmaildir = \"/m\"\nstate_dir = \"/s\"\n[[account]]\nname = \"a\"\n\
             kind = \"imap\"\nhost = \"localhost\"\ntls = \"none\"\nuser = \"u\"\n\
             password = \"{password}\"\n"
        );
        parse(Path::new("t.toml"), &text, &Dirs::default())
            .unwrap()
            .config
            .accounts
            .remove(0)
    }

    #[test]
    fn a_spent_connection_budget_is_looked_at_again_soon_and_never_escalates() {
        use super::{Backoff, EngineError, retry_after};
        use crate::daemon::Tuning;
        let tuning = Tuning::default();
        let mut backoff = Backoff::new(tuning.backoff_min, tuning.backoff_max);
        for _ in 0..20 {
            let (delay, what) = retry_after(&EngineError::Busy(3), &mut backoff, &tuning);
            assert_eq!(delay, super::BUSY_RETRY);
            assert_eq!(what, "waiting for a connection");
        }
        // The backoff was left where it was: the next real failure starts from the bottom.
        let (first, what) = retry_after(
            &EngineError::Imap(crate::imap::ImapError::Connect("refused".into())),
            &mut backoff,
            &tuning,
        );
        assert_eq!(what, "error");
        assert!(first <= tuning.backoff_min * 2, "{first:?}");
    }

    #[test]
    fn a_changed_password_alone_changes_the_fingerprint_without_showing_it() {
        let old = fingerprint(&account("old-secret"));
        let new = fingerprint(&account("new-secret"));
        assert_ne!(old, new, "SIGHUP must restart the account");
        assert_eq!(old, fingerprint(&account("old-secret")));
        assert!(!old.contains("old-secret") && !new.contains("new-secret"));
    }
}
