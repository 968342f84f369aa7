//! The POP3 poller: one session per poll delivers every message not yet seen into the
//! account's INBOX and deletes per policy, in rule 15's order (deliver durably -> record
//! the UIDL -> DELE -> QUIT), journalled so a crash or a cut link never loses or
//! duplicates a message.
//!
//! One poll:
//!
//! 1. Resolve open delivery intents left by a crash (file found: UIDL recorded; not
//!    found: intent dropped and the message fetched again).
//! 2. Log in and list the maildrop (UIDL; without UIDL, a content hash of `TOP n 0` and
//!    the size, with a warning). Records of messages the server no longer lists are
//!    forgotten, so the table does not grow forever.
//! 3. For every listed message not yet recorded, in batches of [`BATCH`]: journal an
//!    intent with the planned key, RETR streamed into `tmp/`, moved into `new/`, make
//!    the batch durable (one round of fsyncs), then record the UIDLs and complete the
//!    intents in one transaction.
//! 4. DELE what the policy says (and what an earlier session marked but never QUIT),
//!    marked `Pending` *before* the DELE goes out; only after a successful QUIT do they
//!    become `Done`. A session that drops before QUIT leaves them `Pending`, and the next
//!    one sends DELE again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::config::{Account, General, Pop3Settings};
use crate::fault;
use crate::maildir::{self, DeliveryBatch, FolderError, FolderMap, Maildir, Placement};
use crate::model::{AccountName, FolderName, MaildirKey};
use crate::pop3::{MsgNo, Pop3Client, Pop3Error};
use crate::secret::{self, SecretError};
use crate::store::{
    self, AccountLock, ChangeRecord, Commit, DeleState, FolderId, IntentId, IntentSpec, LockError,
    Side, Store, StoreError, UidlRecord,
};

/// Messages per durable batch: one round of fsyncs and one transaction for this many.
/// Large enough that fsyncs stop dominating, small enough that a cut link costs little.
pub const BATCH: usize = 100;

/// RETR commands in flight at once when the server offers PIPELINING: enough to cover
/// a round trip and a file creation, a few hundred bytes of commands.
const RETR_WINDOW: usize = 16;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Messages delivered into the INBOX by this poll.
    pub downloaded: usize,
    pub downloaded_bytes: u64,
    /// Messages removed from the server by this poll's QUIT.
    pub deleted: usize,
    /// Messages the server still holds after this poll.
    pub kept: usize,
    /// Deliveries an earlier, interrupted run completed and this poll recorded.
    pub recovered: usize,
    /// Things the user should know that did not stop the poll (no UIDL support, a
    /// message the server refused to send).
    pub warnings: Vec<String>,
}

impl std::fmt::Display for PollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pop3: downloaded {} ({} KiB), deleted {} on the server, {} kept there",
            self.downloaded,
            self.downloaded_bytes / 1024,
            self.deleted,
            self.kept
        )?;
        if self.recovered > 0 {
            write!(f, ", {} recovered after a crash", self.recovered)?;
        }
        Ok(())
    }
}

/// A poll that failed, naming the account and the fault.
#[derive(Debug, thiserror::Error)]
#[error("POP3 account `{account}`: {fault}")]
pub struct PollError {
    pub account: AccountName,
    #[source]
    pub fault: PollFault,
}

impl PollError {
    /// Worth retrying later without a human: the network, a timeout, a locked maildrop.
    /// A wrong password, a bad certificate or a broken Maildir are not (the daemon must
    /// not retry-storm a server that refuses the login).
    pub fn is_transient(&self) -> bool {
        match &self.fault {
            PollFault::Pop3(e) => e.is_transient(),
            PollFault::Secret(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl PollFault {
    /// Only a new `syncmail login` can help.
    pub fn needs_login(&self) -> bool {
        matches!(self, PollFault::Secret(e) if e.needs_login())
    }
}

/// Fetch the secret, connect and log in; an OAuth2 access token the server refuses is
/// refreshed and the login tried once more.
pub async fn login(account: &Account) -> Result<Pop3Client, PollFault> {
    let mut login = secret::Login::new(&account.secret);
    loop {
        let (secret, kind) = login.credential().await?;
        match Pop3Client::connect(&account.server, &secret, kind).await {
            Err(e @ Pop3Error::Auth(_)) if login.rejected(&e).await => {}
            other => return Ok(other?),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PollFault {
    #[error(transparent)]
    Pop3(#[from] Pop3Error),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    /// The Maildir: a full disk, permissions, an interrupted delivery that cannot be
    /// resolved yet.
    #[error("local: {0}")]
    Local(String),
    /// Stopped before touching anything, for a reason a human must look at.
    #[error("{0}")]
    Halted(String),
}

/// Poll once with the account's lock held for the duration: for `syncmail sync`, and for
/// a caller that does not hold the lock itself.
pub async fn poll_account(
    account: &Account,
    pop3: &Pop3Settings,
    general: &General,
    now: SystemTime,
) -> Result<PollReport, PollError> {
    let fail = |fault: PollFault| PollError {
        account: account.name.clone(),
        fault,
    };
    create_private_dir(&general.state_dir).map_err(fail)?;
    let lock =
        AccountLock::acquire(&general.state_dir, &account.name).map_err(|e| fail(e.into()))?;
    let path = store::db_path(&general.state_dir, &account.name).map_err(|e| fail(e.into()))?;
    let store = Store::open(&path).map_err(|e| fail(e.into()))?;
    let result = poll_with_store(account, pop3, &store, now).await;
    // For `syncmail status`, as an IMAP pass records it (the daemon records its own).
    let error = result.as_ref().err().map(ToString::to_string);
    let _ = store.record_pass(None, SystemTime::now(), error).await;
    // The database closes before the lock goes, so the next holder sees every write.
    drop(store);
    drop(lock);
    result
}

/// Poll once on a state database the caller opened and whose account lock it holds (the
/// daemon keeps both for its lifetime). `now` is the clock for `first_seen` and for
/// `delete_after_days`.
pub async fn poll_with_store(
    account: &Account,
    pop3: &Pop3Settings,
    store: &Store,
    now: SystemTime,
) -> Result<PollReport, PollError> {
    run(account, pop3, store, now)
        .await
        .map_err(|fault| PollError {
            account: account.name.clone(),
            fault,
        })
}

async fn run(
    account: &Account,
    pop3: &Pop3Settings,
    store: &Store,
    now: SystemTime,
) -> Result<PollReport, PollFault> {
    let mut report = PollReport::default();

    // Rule 1: open intents are resolved before anything else.
    let recovery = super::recover::resolve_delivery_intents(store)
        .await
        .map_err(|e| PollFault::Local(e.to_string()))?;
    if let Some((key, why)) = recovery.unresolved.first() {
        return Err(PollFault::Local(format!(
            "{} interrupted deliveries cannot be resolved yet (e.g. {key}: {why}); nothing fetched, nothing deleted",
            recovery.unresolved.len()
        )));
    }
    report.recovered = recovery.completed.len();

    let mut records: BTreeMap<String, UidlRecord> = store
        .uidls()
        .await?
        .into_iter()
        .map(|r| (r.uidl.clone(), r))
        .collect();
    let inbox_name = FolderName("INBOX".into());
    let delivered_before = !records.is_empty() || store.folder(&inbox_name).await?.is_some();
    let md = inbox(account, &inbox_name, delivered_before)?;
    let folder = store.ensure_folder(&inbox_name, md.path()).await?.id;

    let mut client = login(account).await?;
    let listing = list_maildrop(&mut client, &mut report).await?;
    let listed: BTreeSet<&str> = listing.iter().map(|(_, id)| id.as_str()).collect();

    // The listing is complete, so a record it lacks is a message the server no longer
    // has: forget it. Never one the server still lists (that would fetch it again). An
    // empty maildrop looks too much like a server hiccup: then only messages whose
    // deletion a QUIT confirmed are forgotten, the rest wait for a listing with mail.
    let forget: Vec<String> = records
        .values()
        .filter(|r| !listed.contains(r.uidl.as_str()))
        .filter(|r| !listing.is_empty() || r.dele == DeleState::Done)
        .map(|r| r.uidl.clone())
        .collect();
    if !forget.is_empty() {
        tracing::debug!(account = %account.name, count = forget.len(), "forgetting UIDLs the server no longer lists");
        for uidl in &forget {
            records.remove(uidl);
        }
        store.forget_uidls(forget).await?;
    }

    let new: Vec<(MsgNo, String)> = listing
        .iter()
        .filter(|(_, id)| !records.contains_key(id))
        .cloned()
        .collect();
    if !new.is_empty() {
        tracing::info!(account = %account.name, count = new.len(), "downloading new POP3 messages");
    }
    for chunk in new.chunks(BATCH) {
        let fetched = fetch_batch(&mut client, store, &md, folder, chunk, now, &mut report).await?;
        for r in fetched {
            records.insert(r.uidl.clone(), r);
        }
    }

    // Deletions: what the policy says now, plus DELEs an earlier session sent but never
    // saw through a QUIT (rule 15).
    let doomed: Vec<(MsgNo, &UidlRecord)> = listing
        .iter()
        .filter_map(|(msg, id)| records.get(id).map(|r| (*msg, r)))
        .filter(|(_, r)| r.dele == DeleState::Pending || due(pop3, r.first_seen, now))
        .collect();
    report.kept = listing.len() - doomed.len();
    if doomed.is_empty() {
        if let Err(e) = client.quit().await {
            // Nothing was marked for deletion, so a failed QUIT changes nothing.
            tracing::debug!(account = %account.name, "QUIT failed: {e}");
        }
        return Ok(report);
    }
    let uidls: Vec<String> = doomed.iter().map(|(_, r)| r.uidl.clone()).collect();
    // Journalled before the first DELE goes out: a crash from here on re-sends them.
    store.set_dele(uidls.clone(), DeleState::Pending).await?;
    fault::point("pop3-dele-pending");
    let msgs: Vec<MsgNo> = doomed.iter().map(|(m, _)| *m).collect();
    let refused = match client.dele_many(&msgs).await {
        Ok(()) => None,
        Err(e @ Pop3Error::Refused { .. }) => Some(e),
        Err(e) => return Err(e.into()),
    };
    fault::point("pop3-after-dele-before-quit");
    let refused = match client.quit().await {
        Ok(()) => refused,
        // `-ERR` to QUIT: the server could not remove some (RFC 1939 §6).
        Err(e @ Pop3Error::Refused { .. }) => Some(e),
        Err(e) => return Err(e.into()),
    };
    fault::point("pop3-after-quit");
    if let Some(e) = refused {
        // Some were marked and are now gone, some not: all stay Pending. The next poll
        // forgets the gone ones and sends DELE again for the rest.
        report.kept += doomed.len();
        report.warnings.push(format!(
            "the server did not confirm every deletion ({e}); those left are deleted next poll"
        ));
        return Ok(report);
    }
    let changes = doomed
        .iter()
        .map(|(_, r)| ChangeRecord {
            at: now,
            folder: inbox_name.clone(),
            side: Side::Local,
            uid: None,
            local_key: r.local_key.clone(),
            change: "delivered".into(),
            action: format!("deleted on the server (DELE {})", r.uidl),
        })
        .collect();
    let done = doomed
        .iter()
        .map(|(_, r)| UidlRecord {
            dele: DeleState::Done,
            ..(*r).clone()
        })
        .collect();
    store
        .commit(Commit {
            uidls: done,
            changes,
            ..Commit::default()
        })
        .await?;
    report.deleted = doomed.len();
    Ok(report)
}

/// Whether the policy deletes a message first seen at `first_seen` from the server now.
pub fn due(pop3: &Pop3Settings, first_seen: SystemTime, now: SystemTime) -> bool {
    if !pop3.keep_on_server {
        return true;
    }
    pop3.delete_after_days.is_some_and(|days| {
        now.duration_since(first_seen)
            .is_ok_and(|age| age >= DAY * days)
    })
}

/// The account's INBOX Maildir, created on the first poll. Missing after mail was
/// delivered there (an unmounted disk, a moved directory) is a halt: delivering into a
/// fresh empty directory and then deleting from the server would hide mail from the user.
fn inbox(
    account: &Account,
    name: &FolderName,
    delivered_before: bool,
) -> Result<Maildir, PollFault> {
    // POP3 accounts have no folder layout setting: the INBOX is `<maildir>/INBOX`.
    let map = FolderMap::new(&account.maildir, maildir::Layout::Verbatim, None);
    let path = map.to_local(name)?;
    let local = |p: &Path, e: std::io::Error| PollFault::Local(format!("{}: {e}", p.display()));
    if path.join("cur").is_dir() {
        return Maildir::open(&path).map_err(|e| local(&path, e));
    }
    if delivered_before {
        return Err(PollFault::Halted(format!(
            "the Maildir folder {0} is missing, but mail was delivered there before (unmounted disk?); nothing fetched, nothing deleted. If it was removed on purpose, create it again: mkdir -p {0}/cur {0}/new {0}/tmp",
            path.display()
        )));
    }
    create_private_dir(&account.maildir)?;
    let created = map.create(name)?;
    Maildir::open(&created).map_err(|e| local(&created, e))
}

fn create_private_dir(dir: &Path) -> Result<(), PollFault> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PollFault::Local(format!("cannot create {}: {e}", dir.display())))
}

/// Every message of the maildrop with its identity, in message-number order, each
/// identity once.
async fn list_maildrop(
    client: &mut Pop3Client,
    report: &mut PollReport,
) -> Result<Vec<(MsgNo, String)>, PollFault> {
    let listing = match client.uidl().await {
        Ok(listing) => listing,
        Err(Pop3Error::NoUidl { server, text }) => {
            let warning = format!(
                "{server} does not support UIDL (-ERR {text}); messages are told apart by a hash of their headers and size, so two identical copies of one message count as one-and-a-copy, and a server that rewrites headers would have its mail fetched again"
            );
            tracing::warn!("{warning}");
            report.warnings.push(warning);
            hashed_identities(client).await?
        }
        Err(e) => return Err(e.into()),
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(listing.len());
    for (msg, id) in listing {
        if seen.insert(id.clone()) {
            out.push((msg, id));
        } else {
            // RFC 1939 forbids this; acting on the second copy could fetch it twice or
            // delete the wrong one, so it is left alone.
            report.warnings.push(format!(
                "{} lists UIDL {id:?} twice; message {msg} is left on the server untouched",
                client.server()
            ));
        }
    }
    Ok(out)
}

/// The no-UIDL fallback: `sha256:<hash of TOP n 0>:<size>`, with `#2`, `#3`... for
/// identical copies in maildrop order.
async fn hashed_identities(client: &mut Pop3Client) -> Result<Vec<(MsgNo, String)>, PollFault> {
    let sizes = client.list().await?;
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(sizes.len());
    for (msg, size) in sizes {
        let mut hasher = Hasher(ring::digest::Context::new(&ring::digest::SHA256));
        client.top(msg, 0, &mut hasher).await.map_err(|e| match e {
            Pop3Error::Refused { .. } => PollFault::Halted(format!(
                "the server has neither UIDL nor TOP ({e}); its messages cannot be told apart safely, so nothing is fetched"
            )),
            other => other.into(),
        })?;
        let hex = hex::encode(hasher.0.finish());
        let base = format!("sha256:{hex}:{size}");
        let n = copies.entry(base.clone()).or_insert(0);
        *n += 1;
        out.push((msg, if *n == 1 { base } else { format!("{base}#{n}") }));
    }
    Ok(out)
}

struct Hasher(ring::digest::Context);

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fetch one batch: intents, streamed RETRs into `tmp/`, one durable commit of the files,
/// one transaction recording the UIDLs and closing the intents. Returns the new records.
/// After an error, what was completely downloaded before it is still delivered and
/// recorded, then the error is returned.
async fn fetch_batch(
    client: &mut Pop3Client,
    store: &Store,
    md: &Maildir,
    folder: FolderId,
    chunk: &[(MsgNo, String)],
    now: SystemTime,
    report: &mut PollReport,
) -> Result<Vec<UidlRecord>, PollFault> {
    let planned: Vec<(MsgNo, &str, MaildirKey)> = chunk
        .iter()
        .map(|(msg, id)| (*msg, id.as_str(), maildir::new_key()))
        .collect();
    let specs = planned
        .iter()
        .map(|(_, id, key)| IntentSpec::pop3_deliver(folder, id, key.clone()))
        .collect();
    let intents: Vec<IntentId> = store.begin_intents(specs, now).await?;

    let mut batch = DeliveryBatch::new(md);
    let mut staged: Vec<(&str, MaildirKey, u64)> = Vec::with_capacity(planned.len());
    let mut failure: Option<PollFault> = None;
    // RETRs in flight: the server sends the next message while this one is written.
    let window = if client.has_capability("PIPELINING") {
        RETR_WINDOW
    } else {
        1
    };
    let msgs: Vec<MsgNo> = planned.iter().map(|(msg, _, _)| *msg).collect();
    let mut sent = msgs.len().min(window);
    client.retr_ahead(&msgs[..sent]).await?;
    for (msg, id, key) in &planned {
        if sent < msgs.len() {
            if let Err(e) = client.retr_ahead(&msgs[sent..sent + 1]).await {
                failure = Some(e.into());
                break;
            }
            sent += 1;
        }
        // Errors from here on leave RETR answers unread: the session is given up.
        let mut tmp = match batch.begin(key.clone()) {
            Ok(w) => w,
            Err(e) => {
                failure = Some(PollFault::Local(e.to_string()));
                break;
            }
        };
        match client.retr_next(&mut tmp).await {
            Ok(size) => match tmp.finish(Placement::New) {
                Ok(()) => staged.push((id, key.clone(), size)),
                Err(e) => {
                    failure = Some(PollFault::Local(e.to_string()));
                    break;
                }
            },
            Err(e @ Pop3Error::Refused { .. }) => {
                // Gone since the listing (another client), or unreadable on the server:
                // nothing delivered, nothing recorded; the next poll tries again.
                drop(tmp);
                report
                    .warnings
                    .push(format!("message {msg} (UIDL {id}) not downloaded: {e}"));
            }
            Err(e) => {
                // A cut link or a full disk: the unfinished tmp/ file goes with `tmp`.
                drop(tmp);
                failure = Some(e.into());
                break;
            }
        }
    }
    fault::point("pop3-before-durable");
    if !staged.is_empty() {
        // On failure the intents stay open: start-up recovery finds whichever files did
        // get their name, records those, and drops the rest.
        batch
            .commit_durable()
            .map_err(|e| PollFault::Local(e.to_string()))?;
    }
    fault::point("pop3-before-uidl-commit");
    let records: Vec<UidlRecord> = staged
        .iter()
        .map(|(id, key, _)| UidlRecord {
            uidl: (*id).to_owned(),
            local_key: Some(key.clone()),
            first_seen: now,
            dele: DeleState::None,
        })
        .collect();
    let changes = staged
        .iter()
        .map(|(id, key, _)| ChangeRecord {
            at: now,
            folder: FolderName("INBOX".into()),
            side: Side::Server,
            uid: None,
            local_key: Some(key.clone()),
            change: "new".into(),
            action: format!("downloaded (POP3 UIDL {id})"),
        })
        .collect();
    // Every intent of the batch closes here: delivered ones with their record, the rest
    // (refused, or never started) because their file does not exist.
    store
        .commit(Commit {
            folder: Some(folder),
            uidls: records.clone(),
            changes,
            complete_intents: intents,
            ..Commit::default()
        })
        .await?;
    report.downloaded += staged.len();
    report.downloaded_bytes += staged.iter().map(|(_, _, size)| size).sum::<u64>();
    match failure {
        Some(f) => Err(f),
        None => Ok(records),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(keep: bool, days: Option<u32>) -> Pop3Settings {
        Pop3Settings {
            keep_on_server: keep,
            delete_after_days: days,
        }
    }

    /// The daemon spawns polls on a multi-threaded runtime.
    #[allow(dead_code)]
    fn polls_can_be_spawned(
        account: &Account,
        pop3: &Pop3Settings,
        general: &General,
        store: &Store,
    ) {
        fn send<T: Send>(_: T) {}
        send(poll_with_store(account, pop3, store, SystemTime::now()));
        send(poll_account(account, pop3, general, SystemTime::now()));
    }

    #[test]
    fn deletion_policy_counts_days_from_first_sight() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(due(&settings(false, None), t0, t0));
        assert!(!due(&settings(true, None), t0, t0 + DAY * 1000));
        let three = settings(true, Some(3));
        assert!(!due(&three, t0, t0));
        assert!(!due(&three, t0, t0 + DAY * 3 - Duration::from_secs(1)));
        assert!(due(&three, t0, t0 + DAY * 3));
        // A clock that went backwards deletes nothing.
        assert!(!due(&three, t0, t0 - DAY));
        assert!(due(&settings(true, Some(0)), t0, t0));
    }

    #[test]
    fn transient_errors_are_network_trouble_only() {
        let e = |fault| PollError {
            account: AccountName("p".into()),
            fault,
        };
        assert!(e(PollFault::Pop3(Pop3Error::Connect("refused".into()))).is_transient());
        assert!(e(PollFault::Pop3(Pop3Error::Busy("[IN-USE]".into()))).is_transient());
        let auth = e(PollFault::Pop3(Pop3Error::Auth("rejected".into())));
        assert!(!auth.is_transient());
        assert!(
            auth.to_string()
                .starts_with("POP3 account `p`: login failed")
        );
        assert!(!e(PollFault::Local("disk full".into())).is_transient());
    }
}
