//! An account's life cycle around its passes: the state directory and lock, start-up
//! recovery of interrupted deliveries, the connection, and the one-shot `syncmail sync`.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Account, AccountKind, General};
use crate::imap::{self, ImapSession};
use crate::maildir::FolderMap;
use crate::model::AccountName;
use crate::secret;
use crate::store::{self, AccountLock, Store};
use crate::sync::Timestamp;

use super::error::{EngineError, FolderFailure, LocalError};
use super::link::AccountLink;
use super::recover;
use super::report::{AccountReport, PassScope, SyncOptions};

pub(super) fn now() -> Timestamp {
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

pub(super) fn create_private_dir(dir: &Path) -> Result<(), EngineError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(LocalError::io(dir))?;
    Ok(())
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
    let mut link = AccountLink::new(Arc::new(account.clone()), Some(&general.state_dir));
    let result = async {
        prepare(account, &store, opts.dry_run, &mut report).await?;
        link.pass(&store, opts, &PassScope::default(), &mut report)
            .await
    }
    .await;
    link.close().await;
    report.base_rows_read = store.base_rows_read();
    tracing::debug!(account = %account.name, rows = report.base_rows_read, "base rows read");
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
    let recovered = recover::resolve_delivery_intents(store)
        .await
        .map_err(LocalError::from)?;
    for (key, why) in recovered.unresolved {
        report.errors.push(FolderFailure::account(format!(
            "an interrupted delivery of {key} could not be resolved: {why}"
        )));
    }
    Ok(())
}

/// Fetch the secret, connect, log in and enable QRESYNC/CONDSTORE.
pub async fn connect_session(account: &Account) -> Result<ImapSession, EngineError> {
    let connected = login(account).await?;
    Ok(ImapSession::new(connected, account.server.timeout).await?)
}

/// Fetch the secret, connect and log in; an OAuth2 access token the server refuses is
/// refreshed and the login tried once more (`secret::Login`).
pub async fn login(account: &Account) -> Result<imap::Connected, EngineError> {
    let mut login = secret::Login::new(&account.secret);
    loop {
        let (secret, kind) = login.credential().await?;
        match imap::connect(&account.server, &secret, kind).await {
            Err(e @ imap::ImapError::Auth(_)) if login.rejected(&e).await => {}
            other => return Ok(other?),
        }
    }
}

/// The account's folder mapping on a connection's server, from its LIST answer and the
/// personal namespace it reported at login.
pub fn folder_map(
    account: &Account,
    connected: &imap::Connected,
    listed: &[imap::ListedFolder],
) -> Option<FolderMap> {
    let AccountKind::Imap(settings) = &account.kind else {
        return None;
    };
    Some(super::pass::server_folder_map(
        settings,
        &account.maildir,
        connected,
        listed,
    ))
}

pub(super) async fn logout_all(sessions: Vec<ImapSession>) {
    futures::future::join_all(sessions.into_iter().map(ImapSession::logout)).await;
}
