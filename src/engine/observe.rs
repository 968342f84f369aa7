//! Read-only observation of both sides of one folder, turned into the planner's snapshots.
//! The server is asked as little as the extensions allow: QRESYNC makes an unchanged
//! folder one round trip; CONDSTORE a changed-since listing plus the UID list; otherwise
//! a full flag listing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::imap::{ImapError, ImapSession, Selected, uid_set};
use crate::maildir::{LocalScan, Maildir, NamesDigest, Stamp};
use crate::model::{EmailId, Flags, ModSeq, Uid, UidValidity};
use crate::store;
use crate::sync::{self, Base, LocalSnapshot, MessageId, RemoteListing, RemoteSnapshot};

use super::{EngineError, LocalError};

/// What the server side of a folder looks like, plus what a pass needs to apply a plan.
pub struct RemoteObservation {
    pub snapshot: RemoteSnapshot,
    /// UIDNEXT as SELECT reported it: the start of the range an APPEND's answer is
    /// searched in if it is lost (rule 2).
    pub uidnext: Uid,
    /// A first listing that stopped after its first [`window`] messages: where the rest
    /// starts (the run lists and fetches it window by window).
    pub rest: Option<Window>,
}

/// How many messages a folder's first listing holds at once. A first sync of a folder
/// of a million messages would otherwise hold a million listed messages before fetching
/// the first: it lists and fetches this many at a time instead (memory flat in mailbox
/// size). At 100,000 small messages the first sync peaked at 30 MiB with windows of
/// 20,000 and at 22 MiB with 5,000, in the same time (`scripts/bench-sync.sh`).
pub const WINDOW: u32 = 5_000;

/// [`WINDOW`], or `SYNCMAIL_LIST_WINDOW` where a test sets it (windows of a few
/// messages, so a test folder of ten crosses several).
pub fn window() -> u32 {
    static WINDOW_ENV: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *WINDOW_ENV.get_or_init(|| {
        std::env::var("SYNCMAIL_LIST_WINDOW")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|w| *w > 0)
            .unwrap_or(WINDOW)
    })
}

/// Where the next window of a first listing starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Every UID up to this one was listed.
    pub after: Uid,
    /// The sequence number the next window is counted from (a guess once messages were
    /// expunged meanwhile: it sizes the window, the UID range decides what is in it).
    pub next_seq: u32,
}

/// A listed message as the planner sees it (its Message-ID, if wanted, comes apart).
pub fn listed_message(m: crate::imap::RemoteMessage) -> sync::RemoteMessage {
    sync::RemoteMessage {
        flags: m.flags,
        size: m.size.unwrap_or(0),
        message_id: None,
        email_id: m.email_id,
    }
}

/// The next window of a first listing: `UID FETCH` of the UIDs after `from.after` up to
/// the one [`window`] messages on, or to the end, and where the one after starts
/// (`None`: this was the last).
pub async fn next_window(
    session: &mut ImapSession,
    from: Window,
) -> Result<(BTreeMap<Uid, sync::RemoteMessage>, Option<Window>), ImapError> {
    let last = from.next_seq.saturating_add(window() - 1);
    let upper = session.uid_at(last).await?.filter(|u| *u > from.after);
    let first = Uid(from.after.0.saturating_add(1));
    let set = match upper {
        Some(u) => format!("{}:{}", first.0, u.0),
        None => format!("{}:*", first.0),
    };
    // `N:*` always names the last message, even below N.
    let listed: BTreeMap<Uid, sync::RemoteMessage> = session
        .fetch_flags(&set, None)
        .await?
        .into_iter()
        .filter(|(uid, _)| *uid >= first)
        .map(|(uid, m)| (uid, listed_message(m)))
        .collect();
    let next = upper.map(|after| Window {
        after,
        next_seq: last.saturating_add(1),
    });
    Ok((listed, next))
}

/// A SELECT already made of the folder, and the state it was made against.
#[derive(Clone)]
pub struct Preselected {
    pub known: (UidValidity, ModSeq),
    pub selected: Selected,
}

/// Observe the server side. `wire_name` is the folder's name as the server spells it;
/// `pre` is a SELECT just made against the base's state, used instead of a second one.
/// `pairing`: the Maildir holds messages the base does not know (a first contact), so
/// every server message needs its identity, even on a folder's first pass.
pub async fn remote(
    session: &mut ImapSession,
    wire_name: &str,
    base: &Base,
    pre: Option<Preselected>,
    pairing: bool,
    windowed: bool,
) -> Result<RemoteObservation, ImapError> {
    let known = base.uid_validity.zip(base.highest_modseq);
    let selected = match pre {
        Some(p) if Some(p.known) == known => p.selected,
        _ => session.select(wire_name, known).await?,
    };
    let uid_validity = selected
        .uidvalidity
        .ok_or_else(|| ImapError::Protocol(format!("SELECT {wire_name} gave no UIDVALIDITY")))?;
    let same_uidvalidity = base.uid_validity == Some(uid_validity);
    let mut rest = None;
    let listing = if selected.resynced {
        let changed = selected
            .changed
            .into_iter()
            .map(|(uid, flags)| (uid, (flags, None, None)))
            .collect();
        changes(session, base, changed, selected.vanished).await?
    } else if selected.exists == 0 {
        RemoteListing::Complete(BTreeMap::new())
    } else if let (true, true, Some(modseq)) = (
        session.has_condstore(),
        same_uidvalidity,
        base.highest_modseq,
    ) {
        let changed = session
            .fetch_flags("1:*", Some(modseq))
            .await?
            .into_iter()
            .map(|(uid, m)| (uid, (m.flags, m.size, m.email_id)))
            .collect();
        let all = session.all_uids().await?;
        let vanished = base
            .pairs
            .keys()
            .chain(base.remote_only.iter())
            .filter(|uid| !all.contains(uid))
            .copied()
            .collect();
        changes(session, base, changed, vanished).await?
    } else {
        // After a UIDVALIDITY change every message needs its identity for re-pairing
        // (rule 13); otherwise only the ones the base does not know. A folder's first pass
        // asks for none: it downloads every message anyway and reads the Message-ID from
        // the body, instead of making the server parse every header twice; unless the
        // Maildir has mail of its own to pair with (rule 21).
        let first_pass = base.uid_validity.is_none() && base.pairs.is_empty() && !pairing;
        // A large folder's first pass lists its first window only; the run fetches the
        // rest window by window (nothing else in the folder needs the whole listing: no
        // pair to find gone, no file to pair).
        let mut set = "1:*".to_owned();
        if windowed
            && first_pass
            && selected.exists > window()
            && let Some(upper) = session.uid_at(window()).await?
        {
            set = format!("1:{}", upper.0);
            rest = Some(Window {
                after: upper,
                next_seq: window() + 1,
            });
        }
        let listed = session.fetch_flags(&set, None).await?;
        let unknown: Vec<Uid> = listed
            .keys()
            .filter(|uid| !first_pass && (!same_uidvalidity || !base.pairs.contains_key(uid)))
            .copied()
            .collect();
        let ids = identities(session, &unknown).await?;
        RemoteListing::Complete(
            listed
                .into_iter()
                .map(|(uid, m)| {
                    let size = m.size.unwrap_or(0);
                    let message_id = message_id(&ids, base, uid);
                    let email_id = m
                        .email_id
                        .or_else(|| base.pairs.get(&uid).and_then(|p| p.email_id.clone()));
                    (
                        uid,
                        sync::RemoteMessage {
                            flags: m.flags,
                            size,
                            message_id,
                            email_id,
                        },
                    )
                })
                .collect(),
        )
    };
    let listing = backfill_identities(session, base, listing).await?;
    let next_from_listing = match &listing {
        RemoteListing::Complete(all) => all.keys().next_back().map(|u| Uid(u.0.saturating_add(1))),
        RemoteListing::Changes { changed, .. } => changed
            .keys()
            .next_back()
            .map(|u| Uid(u.0.saturating_add(1))),
    };
    let uidnext = selected.uidnext.or(next_from_listing).unwrap_or(Uid(1));
    Ok(RemoteObservation {
        snapshot: RemoteSnapshot {
            uid_validity,
            highest_modseq: selected.highestmodseq,
            uid_next: uidnext,
            listing,
        },
        uidnext,
        rest,
    })
}

/// A message's Message-ID: as just fetched, else as the base remembers it.
fn message_id(
    fetched: &BTreeMap<Uid, (Option<MessageId>, u64)>,
    base: &Base,
    uid: Uid,
) -> Option<MessageId> {
    fetched
        .get(&uid)
        .and_then(|(id, _)| id.clone())
        .or_else(|| base.pairs.get(&uid).and_then(|p| p.message_id.clone()))
}

/// An incremental listing: sizes of known messages come from the base (a server message
/// never changes content); new ones are asked for their size and Message-ID, and for
/// the server's identity of the message where it has one and did not send it already.
async fn changes(
    session: &mut ImapSession,
    base: &Base,
    changed: BTreeMap<Uid, (Flags, Option<u64>, Option<EmailId>)>,
    vanished: BTreeSet<Uid>,
) -> Result<RemoteListing, ImapError> {
    let new: Vec<Uid> = changed
        .keys()
        .filter(|uid| !base.pairs.contains_key(uid))
        .copied()
        .collect();
    let ids = identities(session, &new).await?;
    let unknown: Vec<Uid> = new
        .iter()
        .filter(|uid| changed.get(uid).is_some_and(|(_, _, e)| e.is_none()))
        .copied()
        .collect();
    let email_ids: BTreeMap<Uid, EmailId> = if session.identity().is_some() && !unknown.is_empty() {
        session
            .fetch_flags(&uid_set(&unknown), None)
            .await?
            .into_iter()
            .filter_map(|(uid, m)| Some((uid, m.email_id?)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let changed = changed
        .into_iter()
        .map(|(uid, (flags, size, email_id))| {
            let email_id = email_id
                .or_else(|| email_ids.get(&uid).cloned())
                .or_else(|| base.pairs.get(&uid).and_then(|p| p.email_id.clone()));
            let size = size
                .or_else(|| base.pairs.get(&uid).map(|p| p.remote_size))
                .or_else(|| ids.get(&uid).map(|(_, size)| *size))
                .unwrap_or(0);
            let message_id = message_id(&ids, base, uid);
            (
                uid,
                sync::RemoteMessage {
                    flags,
                    size,
                    message_id,
                    email_id,
                },
            )
        })
        .collect();
    Ok(RemoteListing::Changes { changed, vanished })
}

/// Pairs recorded without the server's identity of their message (state from before
/// schema 5, an upload, a recovered delivery) get it from an incremental listing too: their
/// flags and identity are fetched once and listed as changed (a fresh observation, so
/// harmless to the planner), and the run records the identity; a full listing carries
/// it anyway. Without it such a message would be downloaded again into a folder it is
/// copied to, instead of linked.
async fn backfill_identities(
    session: &mut ImapSession,
    base: &Base,
    listing: RemoteListing,
) -> Result<RemoteListing, ImapError> {
    let RemoteListing::Changes {
        mut changed,
        vanished,
    } = listing
    else {
        return Ok(listing);
    };
    if session.identity().is_none() {
        return Ok(RemoteListing::Changes { changed, vanished });
    }
    let missing: Vec<Uid> = base
        .pairs
        .values()
        .filter(|p| p.email_id.is_none())
        .map(|p| p.uid)
        .filter(|uid| !changed.contains_key(uid) && !vanished.contains(uid))
        .collect();
    if !missing.is_empty() {
        for (uid, m) in session.fetch_flags(&uid_set(&missing), None).await? {
            let Some(pair) = base.pairs.get(&uid) else {
                continue;
            };
            changed.insert(
                uid,
                sync::RemoteMessage {
                    flags: m.flags,
                    size: pair.remote_size,
                    message_id: pair.message_id.clone(),
                    email_id: m.email_id,
                },
            );
        }
    }
    Ok(RemoteListing::Changes { changed, vanished })
}

/// Message-ID and RFC822.SIZE of these UIDs.
async fn identities(
    session: &mut ImapSession,
    uids: &[Uid],
) -> Result<BTreeMap<Uid, (Option<MessageId>, u64)>, ImapError> {
    if uids.is_empty() {
        return Ok(BTreeMap::new());
    }
    session.fetch_identities(&uid_set(uids)).await
}

/// Whether a folder can be skipped, and if not, the SELECT that found out.
pub enum Unchanged {
    Yes,
    No(Option<Preselected>),
}

/// Neither side changed since a pass that left them equal: the Maildir's stamp is the
/// one recorded then, and QRESYNC reports nothing. One round trip and two `stat`s;
/// the base is not even loaded.
pub async fn unchanged(
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
    if !session.has_qresync() || !Maildir::open(path).is_ok_and(|m| Stamp::parse(stamp).holds(&m)) {
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
        Ok(Unchanged::No(Some(Preselected {
            known: (uv, ms),
            selected,
        })))
    }
}

/// A stable scan of the folder's Maildir, and the folder's stamp (stored form) when it
/// held still around the scan (a later pass that finds the same stamp may skip the
/// folder, or read only the files of the messages the server changed).
pub fn scan(md: &Maildir, base: &Base) -> Result<(LocalScan, Option<String>), EngineError> {
    let before = md.stamp().ok();
    // A folder the base holds nothing of (a new one, on a first sync of many) need not
    // wait out the timestamp granularity when it is empty: 50 ms a folder otherwise.
    let opts = crate::maildir::ScanOptions {
        trust_empty: base.pairs.is_empty() && base.local_only.is_empty(),
        ..Default::default()
    };
    let scan = crate::maildir::scan::scan(md, &opts).map_err(LocalError::io(md.path()))?;
    let after = md.stamp().ok();
    // The stamp stands for the folder only once its mtimes are past the granularity.
    let settled = md.settling().is_zero();
    let stamp = (scan.stable && settled && scan.duplicates.is_empty() && before == after)
        .then_some(after)
        .flatten()
        .map(|mtimes| {
            let digest = NamesDigest::of(scan.messages.values().map(|m| (&m.key, &m.flags)));
            Stamp::new(mtimes, Some(digest)).to_stored()
        });
    Ok((scan, stamp))
}

/// The planner's view of a Maildir scan. A key held by several files is left out of the
/// messages and makes the scan count as unstable, so nothing is deleted because of it.
pub fn local(scan: &LocalScan) -> LocalSnapshot {
    LocalSnapshot {
        messages: scan
            .messages
            .iter()
            .map(|(key, m)| {
                (
                    key.clone(),
                    sync::LocalMessage {
                        flags: m.flags.clone(),
                        size: m.size,
                    },
                )
            })
            .collect(),
        stable: scan.stable && scan.duplicates.is_empty(),
        carries_keywords: false,
    }
}
