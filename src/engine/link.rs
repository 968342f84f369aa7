//! An account's link to its server, shared by its passes, its sweep and its push
//! connection: the connection budget, the pass connection, and the folder list learned
//! with LIST, listed again only when the folders may have changed (a full pass, a
//! folder a pass made or deleted, a NOTIFY or sweep saying so), not once per pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::config::{Account, AccountKind};
use crate::imap::{self, FolderStatus, ImapError, ImapSession, ListedFolder};
use crate::maildir::{self, FolderMap, Maildir, Stamp};
use crate::model::FolderName;
use crate::store::Store;

use super::account::connect_session;
use super::budget::{Budget, Slot};
use super::error::EngineError;
use super::pass::{Passed, any_new, pass, server_folder_map};
use super::report::{AccountReport, PassScope, SyncOptions};

/// The folders as the server listed them, and the map to Maildir paths made from them.
#[derive(Clone, Debug)]
pub struct Listing {
    pub listed: Vec<ListedFolder>,
    pub map: FolderMap,
    /// A pass made or deleted a folder since: list again before the next pass.
    pub stale: bool,
}

impl Listing {
    /// The server folders of the account's own namespace, with their wire names.
    pub fn personal(&self) -> Vec<(FolderName, String)> {
        self.listed
            .iter()
            .filter(|f| f.selectable)
            .filter_map(|f| {
                let name = maildir::decode_server_name(&f.raw_name).ok()?;
                self.map
                    .personal_name(&name.0)
                    .is_some()
                    .then(|| (name, f.raw_name.clone()))
            })
            .collect()
    }
}

/// What a sweep found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Folders whose numbers moved since the state (or the last sweep) saw them.
    pub changed: BTreeSet<FolderName>,
    /// The folder list differs from the one the link knew: a full pass is due.
    pub folders_changed: bool,
    /// Folders looked at.
    pub looked: usize,
}

pub struct AccountLink {
    account: Arc<Account>,
    budget: Budget,
    main: Option<(ImapSession, Slot)>,
    /// The pass connection was closed on purpose to free its slot: the link is still
    /// up (nothing was missed), the next pass logs in again.
    released: bool,
    listing: Option<Listing>,
    /// MESSAGES as the last sweep saw it: without CONDSTORE the state keeps no count.
    messages: BTreeMap<FolderName, u32>,
}

impl AccountLink {
    /// A link for `account` whose connections count against the budget kept in
    /// `state_dir` (none: this process only, for a dry run).
    pub fn new(account: Arc<Account>, state_dir: Option<&Path>) -> AccountLink {
        let limit = match &account.kind {
            AccountKind::Imap(s) => s.max_connections,
            AccountKind::Pop3(_) => 1,
        };
        let budget = Budget::new(
            state_dir,
            &account.server.user,
            (&account.server.host, account.server.port),
            limit,
        );
        AccountLink {
            account,
            budget,
            main: None,
            released: false,
            listing: None,
            messages: BTreeMap::new(),
        }
    }

    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// The budget, for the push connection.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The pass connection is open now.
    pub fn is_connected(&self) -> bool {
        self.main.is_some()
    }

    /// Connected, or released on purpose since the last successful connect.
    pub fn is_up(&self) -> bool {
        self.main.is_some() || self.released
    }

    /// The folder map of the last listing.
    pub fn map(&self) -> Option<&FolderMap> {
        self.listing.as_ref().map(|l| &l.map)
    }

    /// Whether the server watches every folder for us on one connection (RFC 5465).
    pub fn has_notify(&mut self) -> bool {
        self.main
            .as_mut()
            .is_some_and(|(s, _)| s.connected().has("NOTIFY"))
    }

    /// The folder list may have changed (NOTIFY said so): list again before the next pass.
    pub fn folders_changed(&mut self) {
        if let Some(l) = &mut self.listing {
            l.stale = true;
        }
    }

    /// Log in within the budget, waiting up to the account's timeout for a free slot
    /// (another process or a pass of ours may hold them all for a moment).
    pub async fn connect(&mut self) -> Result<(), EngineError> {
        if self.main.is_some() {
            return Ok(());
        }
        let (session, slot) =
            open_waiting(&self.account, &self.budget, self.account.server.timeout).await?;
        self.main = Some((session, slot));
        if !std::mem::take(&mut self.released) {
            tracing::info!(account = %self.account.name, "connected");
        }
        Ok(())
    }

    /// Close the pass connection to free its slot; the link stays up and the next pass
    /// logs in again (used when the budget leaves nothing beside push and passes).
    pub async fn release(&mut self) {
        if let Some((session, _slot)) = self.main.take() {
            session.logout().await;
            self.released = true;
        }
    }

    /// Log out and forget what the link knew; the next pass starts afresh.
    pub async fn disconnect(&mut self) {
        if let Some((session, _slot)) = self.main.take() {
            session.logout().await;
        }
        self.drop_connection();
    }

    /// Forget a connection that failed (it may be in any state) without a LOGOUT.
    pub fn drop_connection(&mut self) {
        self.main = None;
        self.released = false;
        self.listing = None;
    }

    async fn list(&mut self) -> Result<(), EngineError> {
        let AccountKind::Imap(settings) = &self.account.kind else {
            return Err(EngineError::Unsupported("not an IMAP account".into()));
        };
        let Some((session, _)) = self.main.as_mut() else {
            return Err(EngineError::Imap(ImapError::Connect(
                "not connected".into(),
            )));
        };
        let listed = imap::list_folders(session.connected(), self.account.server.timeout).await?;
        let map = server_folder_map(
            settings,
            &self.account.maildir,
            session.connected(),
            &listed,
        );
        self.listing = Some(Listing {
            listed,
            map,
            stale: false,
        });
        Ok(())
    }

    /// One pass over the folders in `scope` (all: `scope.folders == None`). A pass over
    /// every folder lists them afresh (it is the one that notices folders made or
    /// deleted); a narrower one uses the last listing unless it names a folder the
    /// listing lacks.
    pub async fn pass(
        &mut self,
        store: &Store,
        opts: &SyncOptions,
        scope: &PassScope,
        report: &mut AccountReport,
    ) -> Result<(), EngineError> {
        self.connect().await?;
        let relist = match (&self.listing, &scope.folders) {
            (None, _) | (_, None) => true,
            (Some(l), Some(only)) => {
                l.stale || {
                    let known: BTreeSet<FolderName> =
                        l.personal().into_iter().map(|(n, _)| n).collect();
                    !only.is_subset(&known)
                }
            }
        };
        if relist {
            self.list().await?;
        }
        // A synced folder the state does not know may be a known one's new name, and
        // only a pass over every folder recognises a rename (the folder step): passed
        // alone, as new, it would be fetched again beside the old one, which rule 9 then
        // keeps (the soak's deletions that came back, seed 20261209).
        let every = PassScope {
            folders: None,
            stop: scope.stop.clone(),
        };
        let scope = match &scope.folders {
            Some(only) if self.unknown_folder(store, only).await? => {
                tracing::debug!(account = %self.account.name, "a folder new to the state; the pass covers every folder");
                self.list().await?;
                &every
            }
            _ => scope,
        };
        let before = report.clone();
        if self.pass_listed(store, opts, scope, false, report).await? == Passed::Relist {
            // A message may have moved into a folder made since the listing: every folder,
            // listed afresh (once), reported as one pass.
            tracing::debug!(account = %self.account.name, "the pass lists the folders again");
            *report = before;
            self.list().await?;
            self.pass_listed(store, opts, &every, true, report).await?;
        }
        Ok(())
    }

    /// Whether one of these folders is one this account syncs and the state does not
    /// know yet (a folder the patterns leave out is never the state's).
    async fn unknown_folder(
        &self,
        store: &Store,
        folders: &BTreeSet<FolderName>,
    ) -> Result<bool, EngineError> {
        let (AccountKind::Imap(settings), Some(listing)) = (&self.account.kind, &self.listing)
        else {
            return Ok(false);
        };
        any_new(
            store,
            folders
                .iter()
                .filter(|n| settings.selects(&listing.map, &n.0)),
        )
        .await
    }

    /// One pass on the listing as it stands.
    async fn pass_listed(
        &mut self,
        store: &Store,
        opts: &SyncOptions,
        scope: &PassScope,
        relisted: bool,
        report: &mut AccountReport,
    ) -> Result<Passed, EngineError> {
        let (Some((session, _)), Some(listing)) = (self.main.as_mut(), self.listing.as_mut())
        else {
            return Err(EngineError::Imap(ImapError::Connect(
                "not connected".into(),
            )));
        };
        pass(
            &self.account,
            store,
            session,
            listing,
            &self.budget,
            opts,
            scope,
            relisted,
            report,
        )
        .await
    }

    /// Ask the server for every synced folder's numbers (one round trip with
    /// LIST-STATUS, else a STATUS each) and compare them with the state: the folders
    /// whose numbers moved are worth a pass, the rest are not.
    pub async fn sweep(&mut self, store: &Store) -> Result<Swept, EngineError> {
        self.connect().await?;
        if self.listing.is_none() {
            self.list().await?;
        }
        let account = self.account.clone();
        let AccountKind::Imap(settings) = &account.kind else {
            return Err(EngineError::Unsupported("not an IMAP account".into()));
        };
        let (Some((session, _)), Some(listing)) = (self.main.as_mut(), self.listing.as_mut())
        else {
            return Err(EngineError::Imap(ImapError::Connect(
                "not connected".into(),
            )));
        };
        let wanted: Vec<(FolderName, String)> = listing
            .personal()
            .into_iter()
            .filter(|(n, _)| settings.selects(&listing.map, &n.0))
            .collect();
        let wires: Vec<String> = wanted.iter().map(|(_, w)| w.clone()).collect();
        let statuses = session.statuses(&wires).await?;
        let mut swept = Swept {
            looked: wanted.len(),
            ..Swept::default()
        };
        if let Some(listed) = statuses.listed {
            let names = |l: &[ListedFolder]| -> BTreeSet<String> {
                l.iter()
                    .filter(|f| f.selectable)
                    .map(|f| f.raw_name.clone())
                    .collect()
            };
            if names(&listed) != names(&listing.listed) {
                swept.folders_changed = true;
                listing.stale = true;
            }
        }
        let known = known_folders(store).await?;
        for (name, wire) in &wanted {
            let Some(now) = statuses.folders.get(wire) else {
                continue;
            };
            let moved = match known.get(name) {
                // Never synced: its first pass is due.
                None => true,
                Some(state) => {
                    moved(state, now)
                        || self
                            .messages
                            .get(name)
                            .zip(now.messages)
                            .is_some_and(|(a, b)| *a != b)
                }
            };
            if let Some(m) = now.messages {
                self.messages.insert(name.clone(), m);
            }
            if moved {
                swept.changed.insert(name.clone());
            }
        }
        Ok(swept)
    }

    /// Whether mail arrived in `folders` since their last pass (UIDNEXT or UIDVALIDITY
    /// moved), a STATUS each on the pass connection; only while it is open. Flag changes
    /// are not asked for: our own pass just made some.
    pub async fn arrivals(
        &mut self,
        store: &Store,
        folders: &BTreeSet<FolderName>,
    ) -> Result<BTreeSet<FolderName>, EngineError> {
        let (Some((session, _)), Some(listing)) = (self.main.as_mut(), self.listing.as_ref())
        else {
            return Ok(BTreeSet::new());
        };
        let wanted: Vec<(FolderName, String)> = listing
            .personal()
            .into_iter()
            .filter(|(n, _)| folders.contains(n))
            .collect();
        let wires: Vec<String> = wanted.iter().map(|(_, w)| w.clone()).collect();
        let statuses = session.arrivals(&wires).await?;
        let mut moved = BTreeSet::new();
        for (name, wire) in wanted {
            let (Some(now), Some(state)) =
                (statuses.folders.get(&wire), store.folder(&name).await?)
            else {
                continue;
            };
            let arrived = now
                .uidnext
                .zip(state.uidnext)
                .is_some_and(|(a, b)| a != b.0)
                || now
                    .uidvalidity
                    .zip(state.uidvalidity)
                    .is_some_and(|(a, b)| a != b.0);
            if arrived {
                moved.insert(name);
            }
        }
        Ok(moved)
    }

    pub async fn close(mut self) {
        self.disconnect().await;
    }
}

/// Whether a folder's numbers differ from what its last pass recorded: another
/// UIDVALIDITY, mail past the recorded UIDNEXT, or (with CONDSTORE) another
/// HIGHESTMODSEQ.
fn moved(state: &crate::store::FolderState, now: &FolderStatus) -> bool {
    let differs = |stored: Option<u64>, seen: Option<u64>| match (stored, seen) {
        (Some(a), Some(b)) => a != b,
        (None, Some(_)) => true,
        _ => false,
    };
    differs(
        state.uidvalidity.map(|v| u64::from(v.0)),
        now.uidvalidity.map(u64::from),
    ) || differs(
        state.uidnext.map(|v| u64::from(v.0)),
        now.uidnext.map(u64::from),
    ) || differs(state.highestmodseq.map(|m| m.0), now.highestmodseq)
}

/// The folders of `wanted` that neither side changed since their last pass, found
/// without selecting any: one LIST-STATUS (else pipelined STATUS) for all of them, the
/// same numbers the sweep compares, and two `stat`s of each Maildir. A folder counts as
/// still only when every number is known and equal (UIDVALIDITY, UIDNEXT and, with
/// QRESYNC, HIGHESTMODSEQ, which any flag change or expunge moves), its Maildir's stamp
/// holds, and the session does not have it selected (STATUS may then answer from the
/// session's stale view).
pub(super) async fn still_folders(
    store: &Store,
    session: &mut ImapSession,
    map: &FolderMap,
    wanted: &[(FolderName, String)],
) -> Result<BTreeSet<FolderName>, EngineError> {
    let mut still = BTreeSet::new();
    if !session.has_qresync() || wanted.is_empty() {
        return Ok(still);
    }
    let known = known_folders(store).await?;
    // Only folders that could be skipped are worth asking about.
    let candidates: Vec<&(FolderName, String)> = wanted
        .iter()
        .filter(|(name, wire)| {
            session.selected_folder() != Some(wire.as_str())
                && known.get(name).is_some_and(|f| {
                    f.halt_reason.is_none()
                        && f.local_stamp.is_some()
                        && f.highestmodseq.is_some()
                        && f.uidvalidity.is_some()
                        && f.uidnext.is_some()
                })
        })
        .collect();
    if candidates.is_empty() {
        return Ok(still);
    }
    let wires: Vec<String> = candidates.iter().map(|(_, w)| w.clone()).collect();
    let statuses = session.statuses(&wires).await?;
    for (name, wire) in candidates {
        let (Some(state), Some(now)) = (known.get(name), statuses.folders.get(wire)) else {
            continue;
        };
        let numbers_equal = now.uidvalidity.is_some()
            && now.uidnext.is_some()
            && now.highestmodseq.is_some()
            && !moved(state, now);
        if !numbers_equal {
            continue;
        }
        let holds = map.to_local(name).ok().is_some_and(|path| {
            let stamp = state.local_stamp.as_deref().map(Stamp::parse);
            Maildir::open(path).is_ok_and(|md| stamp.is_some_and(|s| s.holds(&md)))
        });
        if holds {
            still.insert(name.clone());
        }
    }
    Ok(still)
}

/// Open one session within the budget, or fail at once when it is spent (a pass's
/// extra connections: the pass runs with fewer). A server that says "too many
/// connections" lowers the budget to what was open then.
pub async fn open(account: &Account, budget: &Budget) -> Result<(ImapSession, Slot), EngineError> {
    let slot = budget.take().ok_or_else(|| spent(budget))?;
    open_in(account, budget, slot).await
}

/// The same, waiting up to `wait` for a slot to come free.
async fn open_waiting(
    account: &Account,
    budget: &Budget,
    wait: std::time::Duration,
) -> Result<(ImapSession, Slot), EngineError> {
    let deadline = tokio::time::Instant::now() + wait;
    let slot = loop {
        if let Some(slot) = budget.take() {
            break slot;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(spent(budget));
        }
        tokio::time::sleep(SLOT_POLL).await;
    };
    open_in(account, budget, slot).await
}

/// How often a connection waiting for a free slot looks again.
const SLOT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

fn spent(budget: &Budget) -> EngineError {
    EngineError::Busy(budget.limit())
}

async fn open_in(
    account: &Account,
    budget: &Budget,
    slot: Slot,
) -> Result<(ImapSession, Slot), EngineError> {
    match connect_session(account).await {
        Ok(session) => Ok((session, slot)),
        Err(EngineError::Imap(ImapError::TooManyConnections(text))) => {
            let open = budget.held().saturating_sub(1);
            drop(slot);
            let limit = budget.lower(open);
            tracing::warn!(
                account = %account.name,
                "the server refused one connection too many ({text}); using at most {limit} from now on"
            );
            Err(EngineError::Imap(ImapError::TooManyConnections(text)))
        }
        Err(e) => Err(e),
    }
}

/// Open the push connection within the budget (never its last slot): logged in,
/// nothing selected. `None`: the budget leaves no connection for push.
pub async fn open_push(
    account: &Account,
    budget: &Budget,
) -> Result<Option<(imap::Connected, Slot)>, EngineError> {
    let Some(slot) = budget.take_for_push() else {
        return Ok(None);
    };
    let (secret, kind) =
        crate::secret::fetch(&account.secret, crate::secret::COMMAND_TIMEOUT).await?;
    match imap::connect(&account.server, &secret, kind).await {
        Ok(c) => Ok(Some((c, slot))),
        Err(ImapError::TooManyConnections(text)) => {
            let open = budget.held().saturating_sub(1);
            drop(slot);
            let limit = budget.lower(open);
            tracing::warn!(
                account = %account.name,
                "the server refused one connection too many ({text}); using at most {limit} from now on"
            );
            Err(EngineError::Imap(ImapError::TooManyConnections(text)))
        }
        Err(e) => Err(e.into()),
    }
}

/// The folders the state knows, by server name.
pub(super) async fn known_folders(
    store: &Store,
) -> Result<BTreeMap<FolderName, crate::store::FolderState>, EngineError> {
    Ok(store
        .folders()
        .await?
        .into_iter()
        .map(|f| (f.server_name.clone(), f))
        .collect())
}
