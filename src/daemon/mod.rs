//! The long-running service: one supervisor task per account (a failure in one never
//! stops another), IDLE and file-watch triggers, signals, sd_notify, config reload.
//!
//! [`run`] takes its controls (shutdown, reload, sync-now) from the caller, so `main`
//! feeds it from signals ([`serve`]) and tests can drive it directly.

mod account;
mod backoff;
mod clock;
mod hooks;
mod push;
pub mod request;
mod sdnotify;
pub mod status;
mod triggers;
mod unified;
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, mpsc, watch as tokio_watch};

pub use sdnotify::Notifier;

use crate::config::Config;
use crate::engine::EngineError;
use crate::store::LockError;

/// What the daemon can be told while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Finish the batch in flight, commit, log out, return (SIGTERM, SIGINT).
    Shutdown,
    /// Re-read the config: start added accounts, stop removed ones, restart changed
    /// ones, leave the rest running (SIGHUP).
    Reload,
    /// A pass of every folder of every account now, backoff or not (SIGUSR1).
    SyncNow,
}

/// The daemon's timings. Defaults suit a laptop; tests shorten them.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// How long a trigger waits for more of its burst before the pass starts.
    pub debounce: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The shortest retry after a failure a human must fix (password, certificate).
    pub auth_retry: Duration,
    /// How often the wall and monotonic clocks are compared.
    pub clock_tick: Duration,
    /// A disagreement beyond this is a suspend/resume or a clock step.
    pub clock_jump: Duration,
    /// How long a shutdown waits for a pass to reach a batch boundary.
    pub shutdown_grace: Duration,
    /// How often an account that needs `syncmail login` looks for a new stored login
    /// (a file read or a keyring lookup; the provider is not asked until it changed).
    pub login_poll: Duration,
    /// How long an account the provider paused (`[ALERT] Account exceeded command or
    /// bandwidth limits`) waits before it tries again.
    pub over_limit_pause: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            debounce: Duration::from_millis(200),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            auth_retry: Duration::from_secs(900),
            clock_tick: Duration::from_secs(10),
            clock_jump: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            login_poll: Duration::from_secs(5),
            over_limit_pause: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("no account could start: {0}")]
    NoAccount(String),
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
}

/// What each account is doing, for the one-line `STATUS=`.
#[derive(Debug, Default)]
pub struct Board {
    states: Mutex<BTreeMap<String, String>>,
    notifier: Notifier,
}

impl Board {
    fn new(notifier: Notifier) -> Board {
        Board {
            states: Mutex::default(),
            notifier,
        }
    }

    fn set(&self, account: &str, state: String) {
        let line = {
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            if states.get(account) == Some(&state) {
                return;
            }
            states.insert(account.to_owned(), state);
            summary(&states)
        };
        self.notifier.status(&line);
    }

    fn get(&self, account: &str) -> Option<String> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.get(account).cloned()
    }

    fn remove(&self, account: &str) {
        let line = {
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            states.remove(account);
            summary(&states)
        };
        self.notifier.status(&line);
    }
}

/// `3 accounts: 2 idle, 1 syncing; work: error: login failed; retrying in 900s`
fn summary(states: &BTreeMap<String, String>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (account, state) in states {
        let short = match state.as_str() {
            "idle" | "syncing" | "connecting" | "starting" => state.as_str(),
            s if s.starts_with("skipped") => "skipped",
            _ => {
                problems.push(format!("{account}: {state}"));
                "failing"
            }
        };
        *counts.entry(short).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let mut line = format!(
        "{} account{}: {}",
        states.len(),
        if states.len() == 1 { "" } else { "s" },
        parts.join(", ")
    );
    for p in problems {
        line.push_str("; ");
        line.push_str(&p);
    }
    line
}

/// What every account task shares.
#[derive(Clone)]
pub struct Shared {
    tuning: Tuning,
    board: Arc<Board>,
    /// Bumped on each clock jump: every connection is dropped and every folder resynced.
    epoch: tokio_watch::Receiver<u64>,
    /// Notified after an account pass that changed something: the unified folder is
    /// reconciled (a no-op without `[unified]`).
    unified_kick: Arc<Notify>,
}

/// The running unified-folder task.
struct UnifiedTask {
    stop: tokio_watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
}

fn start_unified(config: &Config, kick: &Arc<Notify>, debounce: Duration) -> Option<UnifiedTask> {
    let (stop, stop_rx) = tokio_watch::channel(false);
    unified::start(Arc::new(config.clone()), kick.clone(), debounce, stop_rx)
        .map(|handle| UnifiedTask { stop, handle })
}

/// Stop the unified task: it finishes the reconcile in flight (they are short).
async fn stop_unified(task: Option<UnifiedTask>, grace: Duration) {
    if let Some(t) = task {
        let _ = t.stop.send(true);
        let abort = t.handle.abort_handle();
        if tokio::time::timeout(grace + Duration::from_secs(3), t.handle)
            .await
            .is_err()
        {
            tracing::warn!("the unified folder task did not stop in time; aborted");
            abort.abort();
        }
    }
}

/// Re-reads the config file for a reload.
pub type Reloader = Box<dyn FnMut() -> Result<Config, String> + Send>;

/// Run until told to shut down (or the control channel closes). Returns once every
/// account has stopped, or after the shutdown deadline.
pub async fn run(
    config: Config,
    tuning: Tuning,
    mut controls: mpsc::Receiver<Control>,
    mut reload: Reloader,
    notifier: Notifier,
) -> Result<(), DaemonError> {
    let (epoch_tx, epoch) = tokio_watch::channel(0u64);
    let clock = tokio::spawn(clock::watch_clock(
        tuning.clock_tick,
        tuning.clock_jump,
        epoch_tx,
    ));
    let board = Arc::new(Board::new(notifier.clone()));
    let unified_kick = Arc::new(Notify::new());
    let shared = Shared {
        tuning: tuning.clone(),
        board: board.clone(),
        epoch,
        unified_kick: unified_kick.clone(),
    };
    let mut general = Arc::new(config.general.clone());
    let mut running: BTreeMap<String, account::Running> = BTreeMap::new();
    let mut refused = Vec::new();
    let mut busy = Vec::new();
    for a in &config.accounts {
        match account::start(a.clone(), general.clone(), shared.clone()) {
            Ok(r) => {
                running.insert(a.name.0.clone(), r);
            }
            Err(e @ EngineError::Lock(LockError::Held { .. })) => {
                refused.push(e.to_string());
                busy.push((a.clone(), e));
            }
            Err(e) => {
                tracing::error!(account = %a.name, "{e}");
                refused.push(e.to_string());
            }
        }
    }
    if running.is_empty() {
        // Another daemon most likely: refuse rather than wait beside it.
        clock.abort();
        return Err(DaemonError::NoAccount(refused.join("; ")));
    }
    for (a, e) in busy {
        // A one-shot sync holds it: take the account over when that finishes.
        tracing::warn!(account = %a.name, "{e}; waiting for it");
        running.insert(
            a.name.0.clone(),
            account::start_when_free(a, general.clone(), shared.clone()),
        );
    }
    tracing::info!(
        "daemon started with {} account(s), pid {}",
        running.len(),
        std::process::id()
    );
    let mut unified_task = start_unified(&config, &unified_kick, tuning.debounce);
    notifier.ready();
    let watchdog = sdnotify::watchdog_interval().map(|every| {
        let n = notifier.clone();
        tokio::spawn(async move {
            loop {
                n.watchdog();
                tokio::time::sleep(every).await;
            }
        })
    });
    let mut current = config;
    while let Some(control) = controls.recv().await {
        match control {
            Control::Shutdown => break,
            Control::SyncNow => {
                tracing::info!("syncing everything now (SIGUSR1)");
                unified_kick.notify_one();
                for r in running.values() {
                    r.triggers.add(triggers::Work {
                        all: true,
                        now: true,
                        ..triggers::Work::default()
                    });
                }
            }
            Control::Reload => {
                notifier.reloading();
                match reload() {
                    Ok(next) => {
                        let restart_all =
                            format!("{:?}", next.general) != format!("{:?}", current.general);
                        general = Arc::new(next.general.clone());
                        let mut keep = BTreeMap::new();
                        for a in &next.accounts {
                            let name = a.name.0.clone();
                            match running.remove(&name) {
                                Some(r)
                                    if !restart_all && r.fingerprint == account::fingerprint(a) =>
                                {
                                    keep.insert(name, r);
                                }
                                old => {
                                    if let Some(old) = old {
                                        tracing::info!(account = %name, "config changed: restarting");
                                        stop_all(vec![old], tuning.shutdown_grace).await;
                                    } else {
                                        tracing::info!(account = %name, "added");
                                    }
                                    match account::start(a.clone(), general.clone(), shared.clone())
                                    {
                                        Ok(r) => {
                                            keep.insert(name, r);
                                        }
                                        Err(e @ EngineError::Lock(LockError::Held { .. })) => {
                                            tracing::warn!(account = %name, "{e}; waiting for it");
                                            keep.insert(
                                                name,
                                                account::start_when_free(
                                                    a.clone(),
                                                    general.clone(),
                                                    shared.clone(),
                                                ),
                                            );
                                        }
                                        Err(e) => tracing::error!(account = %name, "{e}"),
                                    }
                                }
                            }
                        }
                        let removed: Vec<account::Running> =
                            std::mem::take(&mut running).into_values().collect();
                        if !removed.is_empty() {
                            tracing::info!("{} account(s) removed from the config", removed.len());
                        }
                        stop_all(removed, tuning.shutdown_grace).await;
                        running = keep;
                        if format!("{:?}", next.unified) != format!("{:?}", current.unified)
                            || format!("{:?}", next.accounts) != format!("{:?}", current.accounts)
                            || restart_all
                        {
                            stop_unified(unified_task.take(), tuning.shutdown_grace).await;
                            unified_task = start_unified(&next, &unified_kick, tuning.debounce);
                        }
                        current = next;
                        tracing::info!("config reloaded: {} account(s) running", running.len());
                    }
                    Err(e) => {
                        tracing::error!("config not reloaded, the running one stays: {e}");
                    }
                }
                notifier.ready();
            }
        }
    }
    tracing::info!("shutting down");
    notifier.stopping();
    stop_unified(unified_task, tuning.shutdown_grace).await;
    stop_all(running.into_values().collect(), tuning.shutdown_grace).await;
    if let Some(w) = watchdog {
        w.abort();
    }
    clock.abort();
    Ok(())
}

/// Stop accounts together: each finishes its batch, commits and logs out; past the
/// deadline the rest are aborted (everything committed is safe, rule 1).
async fn stop_all(accounts: Vec<account::Running>, grace: Duration) {
    for a in &accounts {
        let _ = a.stop.send(true);
    }
    let deadline = grace + Duration::from_secs(3);
    for a in accounts {
        let abort = a.handle.abort_handle();
        if tokio::time::timeout(deadline, a.handle).await.is_err() {
            tracing::warn!("an account did not stop within {deadline:?}; aborted");
            abort.abort();
        }
    }
}

/// The daemon under signals: SIGTERM/SIGINT shut down, SIGHUP reloads, SIGUSR1 syncs
/// everything now. `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` are honoured.
pub async fn serve(config: Config, reload: Reloader) -> Result<(), DaemonError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .map_err(DaemonError::Signals)?;
    let handle = signals.handle();
    let (tx, rx) = mpsc::channel(16);
    let forward = tokio::spawn(async move {
        let mut signals = signals;
        while let Some(signal) = signals.next().await {
            let control = match signal {
                SIGHUP => Control::Reload,
                SIGUSR1 => Control::SyncNow,
                _ => Control::Shutdown,
            };
            if tx.send(control).await.is_err() {
                break;
            }
        }
    });
    let result = run(config, Tuning::default(), rx, reload, Notifier::from_env()).await;
    handle.close();
    forward.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_counts_states_and_names_problems() {
        let mut s = BTreeMap::new();
        s.insert("a".to_owned(), "idle".to_owned());
        s.insert("b".to_owned(), "idle".to_owned());
        s.insert(
            "c".to_owned(),
            "error: login failed; retrying in 900s".to_owned(),
        );
        assert_eq!(
            summary(&s),
            "3 accounts: 1 failing, 2 idle; c: error: login failed; retrying in 900s"
        );
    }
}
