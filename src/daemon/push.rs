//! An account's push: where the server offers NOTIFY (RFC 5465), one connection watches
//! every folder (with the first folder of `idle` selected on it, whose events a server
//! may report sooner); otherwise IDLE on the first `idle_connections` folders of `idle`, and
//! the supervisor sweeps the rest. Every event only names what to pass (rule 16); every
//! (re)connect asks for a pass of what it watches, since anything may have happened
//! while nobody listened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Shared;
use super::backoff::Backoff;
use super::triggers::Triggers;
use crate::config::{Account, AccountKind};
use crate::engine::{self, Budget, EngineError};
use crate::imap::{IdleSession, IdleWake, ImapError, Notice};
use crate::maildir::{decode_server_name, utf7};
use crate::model::FolderName;

/// What the supervisor needs to know of its push.
#[derive(Debug, Default)]
pub struct PushState {
    /// NOTIFY watches every folder now: no sweep is needed.
    pub notify: AtomicBool,
}

impl PushState {
    pub fn notify(&self) -> bool {
        self.notify.load(Ordering::Relaxed)
    }
}

/// Everything a push task needs.
#[derive(Clone)]
pub struct Push {
    pub account: Arc<Account>,
    pub budget: Budget,
    pub triggers: Arc<Triggers>,
    pub stop: watch::Receiver<bool>,
    pub shared: Shared,
    pub state: Arc<PushState>,
}

/// Start the account's push: one task, plus one per extra IDLE folder the user paid
/// connections for (`idle_connections`), used only when the server has no NOTIFY.
pub fn start(push: Push) -> Vec<JoinHandle<()>> {
    let AccountKind::Imap(settings) = &push.account.kind else {
        return Vec::new();
    };
    if settings.idle_connections == 0 {
        return Vec::new();
    }
    let idle: Vec<FolderName> = settings
        .idle
        .iter()
        .take(settings.idle_connections)
        .cloned()
        .collect();
    let mut tasks = vec![tokio::spawn(watch(
        push.clone(),
        idle.first().cloned(),
        true,
    ))];
    for folder in idle.into_iter().skip(1) {
        tasks.push(tokio::spawn(watch(push.clone(), Some(folder), false)));
    }
    tasks
}

/// One push connection for as long as the account runs: reconnects with backoff.
/// `primary`: this one tries NOTIFY first; the others only IDLE.
async fn watch(mut push: Push, folder: Option<FolderName>, primary: bool) {
    let tuning = push.shared.tuning.clone();
    let mut backoff = Backoff::new(tuning.backoff_min, tuning.backoff_max);
    let mut epoch = push.shared.epoch.clone();
    // Once refused, NOTIFY is not asked for again in this run.
    let mut notify_refused = !primary;
    let mut first = true;
    loop {
        if *push.stop.borrow() {
            return;
        }
        epoch.borrow_and_update();
        let end = once(
            &mut push,
            folder.as_ref(),
            &mut notify_refused,
            &mut epoch,
            &mut backoff,
            &mut first,
        )
        .await;
        let what = if push.state.notify() {
            "NOTIFY".to_owned()
        } else {
            folder
                .as_ref()
                .map_or("push".to_owned(), |f| format!("IDLE on {f}"))
        };
        push.state.notify.store(false, Ordering::Relaxed);
        let name = &push.account.name;
        match end {
            Ok(End::Stopped) => return,
            Ok(End::Unsupported) => {
                tracing::info!(
                    account = %name,
                    "the server has neither NOTIFY nor IDLE; every folder is swept every {}s and passed in full every {}s",
                    sweep_secs(&push.account),
                    push.account.poll_interval.as_secs()
                );
                return;
            }
            Ok(End::Reconnect) => continue,
            Err(e) => {
                let mut delay = backoff.next_delay();
                if e.needs_login() {
                    // The supervisor says so; this connection just waits for the login.
                    delay = tuning.login_poll;
                    tracing::debug!(account = %name, "{what} waits for a login");
                } else {
                    if super::account::needs_human(&e) {
                        delay = delay.max(tuning.auth_retry);
                    }
                    tracing::warn!(
                        account = %name,
                        "{what}: {e}; reconnecting in {}s",
                        delay.as_secs().max(1)
                    );
                }
                tokio::select! {
                    () = super::account::stopped(&mut push.stop) => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

fn sweep_secs(account: &Account) -> u64 {
    match &account.kind {
        AccountKind::Imap(s) => s.sweep_interval.as_secs(),
        AccountKind::Pop3(_) => account.poll_interval.as_secs(),
    }
}

/// How soon push looks for a free connection again when passes hold the budget.
const NO_SLOT_RETRY: Duration = Duration::from_secs(2);

enum End {
    Stopped,
    Unsupported,
    Reconnect,
}

async fn once(
    push: &mut Push,
    folder: Option<&FolderName>,
    notify_refused: &mut bool,
    epoch: &mut watch::Receiver<u64>,
    backoff: &mut Backoff,
    first: &mut bool,
) -> Result<End, EngineError> {
    let AccountKind::Imap(settings) = &push.account.kind else {
        return Ok(End::Unsupported);
    };
    let Some((connected, _slot)) = engine::open_push(&push.account, &push.budget).await? else {
        // Passes hold the budget now (or it is one connection): try again after them.
        tracing::debug!(account = %push.account.name, "no connection free for push yet");
        *first = false;
        tokio::select! {
            () = super::account::stopped(&mut push.stop) => return Ok(End::Stopped),
            () = tokio::time::sleep(NO_SLOT_RETRY) => return Ok(End::Reconnect),
        }
    };
    let timeout = push.account.server.timeout;
    let name = push.account.name.clone();
    let mut session = if !*notify_refused && IdleSession::supports_notify(&connected) {
        let selected = folder.map(|f| utf7::encode(&f.0));
        match IdleSession::start_notify(connected, selected.as_deref(), timeout).await {
            Ok(s) => {
                tracing::info!(account = %name, "NOTIFY: one connection watches every folder");
                push.state.notify.store(true, Ordering::Relaxed);
                s
            }
            Err(ImapError::Protocol(why)) => {
                tracing::info!(account = %name, "the server refused NOTIFY ({why}); IDLE and a sweep instead");
                *notify_refused = true;
                *first = false;
                return Ok(End::Reconnect);
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        if !IdleSession::supported(&connected) {
            let _ = tokio::time::timeout(Duration::from_secs(2), async move {
                let mut c = connected;
                c.session.logout().await
            })
            .await;
            return Ok(End::Unsupported);
        }
        let Some(folder) = folder else {
            return Ok(End::Unsupported);
        };
        let s = IdleSession::start(connected, &utf7::encode(&folder.0), timeout).await?;
        tracing::debug!(account = %name, "idling on {folder}");
        s
    };
    backoff.reset();
    let notify = push.state.notify();
    // Whatever happened while nobody listened is found by a pass (rule 16); at start the
    // supervisor's first pass covers it.
    if !std::mem::take(first) {
        match (notify, folder) {
            (false, Some(f)) => push.triggers.folder(f.clone()),
            _ => push.triggers.all(),
        }
    }
    let triggers = push.triggers.clone();
    let pass = |notice: Notice| match notice {
        Notice::Selected => {
            if let Some(f) = folder {
                tracing::debug!(account = %name, "{}: {f} changed", if notify { "NOTIFY" } else { "IDLE" });
                triggers.folder(f.clone());
            }
        }
        Notice::Folder(raw) => match decode_server_name(&raw) {
            Ok(f) => {
                tracing::debug!(account = %name, "NOTIFY: {f} changed");
                triggers.folder(f);
            }
            // A name that cannot be a path: the full pass reports it.
            Err(_) => triggers.all(),
        },
        Notice::Folders => {
            tracing::debug!(account = %name, "NOTIFY: the folder list changed");
            triggers.all();
        }
    };
    loop {
        let stop = &mut push.stop;
        let interrupt = async {
            tokio::select! {
                () = super::account::stopped(stop) => {}
                Ok(()) = epoch.changed() => {}
            }
        };
        // The event that wakes the wait is passed on at once, before IDLE's DONE.
        match session.wait(settings.idle_refresh, interrupt, pass).await? {
            IdleWake::Changed => session.take_notices().into_iter().for_each(pass),
            IdleWake::Refreshed => {}
            IdleWake::Interrupted => {
                session.logout().await;
                return Ok(if *push.stop.borrow() {
                    End::Stopped
                } else {
                    End::Reconnect
                });
            }
        }
    }
}
