//! Carrying out a unified plan on the two Maildirs: renames and deletions with the
//! Maildir helpers, hard links (or, across filesystems, durable copies) for new entries;
//! every change is made durable (directories fsynced) before the mapping records it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use super::plan::{Action, Entry, Plan, Source};
use super::store::MapStore;
use super::{Report, UnifiedError};
use crate::maildir::{
    self, DeliveryBatch, LocalMessage, LocalScan, Maildir, MessageError, Placement, build_cur_name,
};
use crate::model::{Flags, MaildirKey};

/// A Maildir folder and the scan the plan was made from.
pub struct Folder {
    pub md: Maildir,
    pub scan: LocalScan,
}

/// Both sides as observed.
pub struct Sides {
    pub unified: Folder,
    pub sources: BTreeMap<Source, Folder>,
}

/// Logged once per process: why entries are copies rather than links.
static COPY_EXPLAINED: AtomicBool = AtomicBool::new(false);

/// Run `plan`: renames and deletions first (durable, then committed), then links.
pub fn apply(
    plan: &Plan,
    sides: &Sides,
    store: &mut MapStore,
    report: &mut Report,
) -> Result<(), UnifiedError> {
    let entries: BTreeMap<MaildirKey, Entry> = store
        .entries()?
        .into_iter()
        .map(|(e, _)| (e.unified.clone(), e))
        .collect();
    let mut failed: BTreeSet<MaildirKey> = BTreeSet::new();
    let mut bases: Vec<(MaildirKey, Flags)> = Vec::new();
    let mut dropped: Vec<MaildirKey> = Vec::new();
    let mut touched: BTreeSet<Source> = BTreeSet::new();
    let mut touched_unified = false;
    let mut links = Vec::new();
    let mut claims = Vec::new();
    // A replacement is in its account, durably, before the message it replaces is
    // deleted there: a failure or a crash in between leaves both, never neither.
    let adopts: Vec<_> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Adopt {
                unified,
                source,
                flags,
                replaces,
            } => Some((unified, source, flags, replaces)),
            _ => None,
        })
        .collect();
    // The originals whose replacement did not make it stay for now.
    let unreplaced = adopt_all(&adopts, sides, store, report)?;
    for action in &plan.actions {
        match action {
            Action::SetSourceFlags {
                unified,
                source,
                local_key,
                flags,
            } => {
                let Some(f) = sides.sources.get(source) else {
                    failed.insert(unified.clone());
                    continue;
                };
                match touch(&f.md, f.scan.messages.get(local_key), |md, m| {
                    md.set_flags(m, flags).map(drop)
                }) {
                    Ok(()) => {
                        tracing::debug!(account = %source.account, folder = %source.folder, key = %local_key, "unified: flags {flags} set in the account (from {unified})");
                        report.to_accounts += 1;
                        touched.insert(source.clone());
                    }
                    Err(e) => {
                        note(report, &e, source);
                        failed.insert(unified.clone());
                    }
                }
            }
            Action::SetUnifiedFlags { unified, flags } => {
                let f = &sides.unified;
                match touch(&f.md, f.scan.messages.get(unified), |md, m| {
                    md.set_flags(m, flags).map(drop)
                }) {
                    Ok(()) => {
                        if let Some(e) = entries.get(unified) {
                            tracing::debug!(account = %e.source.account, folder = %e.source.folder, key = %e.local_key, "unified: flags {flags} shown in the unified folder ({unified})");
                        }
                        report.to_unified += 1;
                        touched_unified = true;
                    }
                    Err(e) => {
                        note_unified(report, &e);
                        failed.insert(unified.clone());
                    }
                }
            }
            Action::RecordBase { unified, flags } => {
                if !failed.contains(unified) {
                    bases.push((unified.clone(), flags.clone()));
                }
            }
            Action::DeleteSource {
                unified,
                source,
                local_key,
            } => {
                let Some(f) = sides.sources.get(source) else {
                    continue;
                };
                if unreplaced.contains(&(source, local_key)) {
                    continue;
                }
                match touch(&f.md, f.scan.messages.get(local_key), Maildir::delete) {
                    Ok(()) => {
                        tracing::info!(account = %source.account, folder = %source.folder, key = %local_key, "unified: deleted in the unified folder, so deleted in the account ({unified})");
                        report.deleted += 1;
                        touched.insert(source.clone());
                        dropped.push(unified.clone());
                    }
                    Err(e) => note(report, &e, source),
                }
            }
            Action::RemoveUnified {
                unified,
                source,
                local_key,
            } => {
                let f = &sides.unified;
                match touch(&f.md, f.scan.messages.get(unified), Maildir::delete) {
                    Ok(()) => {
                        tracing::debug!(account = %source.account, folder = %source.folder, key = %local_key, "unified: gone from the account, removed from the unified folder ({unified})");
                        report.removed += 1;
                        touched_unified = true;
                        dropped.push(unified.clone());
                    }
                    Err(e) => note_unified(report, &e),
                }
            }
            Action::Forget { unified } => {
                if let Some(e) = entries.get(unified) {
                    tracing::debug!(account = %e.source.account, folder = %e.source.folder, key = %e.local_key, "unified: entry {unified} forgotten (gone from both sides, or kept because flagged)");
                }
                dropped.push(unified.clone());
            }
            Action::Link {
                source,
                local_key,
                flags,
            } => links.push((source, local_key, flags)),
            Action::Adopt { .. } => {}
            Action::Rekey { unified, to } => {
                if let Some(e) = entries.get(unified) {
                    tracing::debug!(account = %e.source.account, folder = %e.source.folder, key = %e.local_key, "unified: {unified} renamed to {to} in the unified folder");
                }
                store.rekey(unified, to)?;
            }
            Action::Claim {
                unified,
                source,
                local_key,
                flags,
            } => {
                tracing::info!(account = %source.account, folder = %source.folder, key = %local_key, "unified: {unified} is the same file as the account's message; recorded (a crash kept it from being)");
                claims.push(Entry {
                    unified: unified.clone(),
                    source: source.clone(),
                    local_key: local_key.clone(),
                    base: flags.clone(),
                });
            }
        }
    }
    // Durable before the mapping says so.
    for source in &touched {
        if let Some(f) = sides.sources.get(source) {
            f.md.sync_dirs()
                .map_err(|e| UnifiedError::Local(format!("{}: {e}", f.md.path().display())))?;
        }
    }
    if touched_unified {
        sync_unified(&sides.unified.md)?;
    }
    store.commit(&[], &dropped, &bases)?;
    record(store, &claims)?;
    link_all(&links, sides, store, report)
}

/// Add entries whose files are already in place on both sides.
fn record(store: &mut MapStore, entries: &[Entry]) -> Result<(), UnifiedError> {
    if entries.is_empty() {
        return Ok(());
    }
    store.add_pending(entries)?;
    let keys: Vec<MaildirKey> = entries.iter().map(|e| e.unified.clone()).collect();
    store.commit(&keys, &[], &[])?;
    Ok(())
}

/// Replacements made in the unified folder (an in-place edit): each linked into its
/// account under a new unique part, made durable there, then recorded. A crash between
/// the two leaves the same file on both sides, which the next reconcile claims. Returns
/// the originals whose replacement failed: they must not be deleted yet.
fn adopt_all<'p>(
    adopts: &[(&MaildirKey, &'p Source, &Flags, &'p MaildirKey)],
    sides: &Sides,
    store: &mut MapStore,
    report: &mut Report,
) -> Result<BTreeSet<(&'p Source, &'p MaildirKey)>, UnifiedError> {
    let mut made = Vec::new();
    let mut unreplaced = BTreeSet::new();
    for &(unified, source, flags, replaces) in adopts {
        let (Some(msg), Some(f)) = (
            sides.unified.scan.messages.get(unified),
            sides.sources.get(source),
        ) else {
            unreplaced.insert((source, replaces));
            continue;
        };
        let local_key = maildir::new_key();
        let (target, placement) = destination(&f.md, &local_key, flags, msg.in_new);
        let linked = std::fs::hard_link(&msg.path, &target).or_else(|err| {
            if err.kind() != io::ErrorKind::CrossesDevices {
                return Err(err);
            }
            let bytes = std::fs::read(&msg.path)?;
            let mut batch = DeliveryBatch::new(&f.md);
            batch
                .deliver(local_key.clone(), &bytes, placement)
                .and_then(|()| batch.commit_durable().map(drop))
                .map_err(|e| io::Error::other(e.to_string()))
        });
        match linked {
            Ok(()) => {
                f.md.sync_dirs()
                    .map_err(|e| UnifiedError::Local(format!("{}: {e}", f.md.path().display())))?;
                tracing::info!(account = %source.account, folder = %source.folder, key = %local_key, "unified: {unified} replaces a message deleted in the unified folder (an edit): added to the account");
                report.to_accounts += 1;
                made.push(Entry {
                    unified: unified.clone(),
                    source: source.clone(),
                    local_key,
                    base: flags.clone(),
                });
            }
            Err(err) => {
                skip(report, source, &msg.path, &err);
                unreplaced.insert((source, replaces));
            }
        }
    }
    record(store, &made)?;
    Ok(unreplaced)
}

/// ENOENT anywhere (the file moved since the scan) is a "rescan", never a deletion.
fn touch(
    md: &Maildir,
    msg: Option<&LocalMessage>,
    act: impl FnOnce(&Maildir, &LocalMessage) -> Result<(), MessageError>,
) -> Result<(), MessageError> {
    match msg {
        Some(m) => act(md, m),
        None => Err(MessageError::Vanished {
            path: md.path().to_owned(),
        }),
    }
}

fn note(report: &mut Report, e: &MessageError, source: &Source) {
    match e {
        MessageError::Vanished { .. } => {
            tracing::debug!("{source}: {e}");
            report.rescan = true;
        }
        _ => report.errors.push(format!("{source}: {e}")),
    }
}

fn note_unified(report: &mut Report, e: &MessageError) {
    match e {
        MessageError::Vanished { .. } => {
            tracing::debug!("unified folder: {e}");
            report.rescan = true;
        }
        _ => report.errors.push(format!("unified folder: {e}")),
    }
}

fn sync_unified(md: &Maildir) -> Result<(), UnifiedError> {
    md.sync_dirs()
        .map_err(|e| UnifiedError::Local(format!("{}: {e}", md.path().display())))
}

/// Where a second name of a message goes in `md`: `new/` while the message is unseen
/// there and carries no flags (as its first name does), else `cur/` with the flags; and
/// the same place for a copy, when a link cannot be made.
fn destination(
    md: &Maildir,
    key: &MaildirKey,
    flags: &Flags,
    in_new: bool,
) -> (std::path::PathBuf, Placement) {
    if in_new && flags.is_empty() {
        (md.new_dir().join(&key.0), Placement::New)
    } else {
        (
            md.cur_dir().join(build_cur_name(key, flags, "")),
            Placement::Cur(flags.clone()),
        )
    }
}

/// New entries: recorded as pending, linked (or copied), made durable, then committed.
fn link_all(
    links: &[(&Source, &MaildirKey, &Flags)],
    sides: &Sides,
    store: &mut MapStore,
    report: &mut Report,
) -> Result<(), UnifiedError> {
    if links.is_empty() {
        return Ok(());
    }
    let planned: Vec<Entry> = links
        .iter()
        .map(|(source, local_key, flags)| Entry {
            unified: maildir::new_key(),
            source: (*source).clone(),
            local_key: (*local_key).clone(),
            base: (*flags).clone(),
        })
        .collect();
    store.add_pending(&planned)?;
    let md = &sides.unified.md;
    let mut done = Vec::new();
    let mut dropped = Vec::new();
    let mut copies = DeliveryBatch::new(md);
    let mut copied = Vec::new();
    for e in &planned {
        let Some(msg) = sides
            .sources
            .get(&e.source)
            .and_then(|f| f.scan.messages.get(&e.local_key))
        else {
            dropped.push(e.unified.clone());
            continue;
        };
        let (target, placement) = destination(md, &e.unified, &e.base, msg.in_new);
        match std::fs::hard_link(&msg.path, &target) {
            Ok(()) => {
                tracing::debug!(account = %e.source.account, folder = %e.source.folder, key = %e.local_key, "unified: linked as {}", e.unified);
                done.push(e.unified.clone());
            }
            Err(err) if err.kind() == io::ErrorKind::CrossesDevices => {
                if !COPY_EXPLAINED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "unified: {} is on another filesystem than {}, so its entries are copies (more disk; flags and deletions still travel both ways). Put it on the same filesystem to get hard links.",
                        md.path().display(),
                        msg.path.display()
                    );
                }
                let bytes = match std::fs::read(&msg.path) {
                    Ok(b) => b,
                    Err(err) => {
                        skip(report, &e.source, &msg.path, &err);
                        dropped.push(e.unified.clone());
                        continue;
                    }
                };
                copies
                    .deliver(e.unified.clone(), &bytes, placement)
                    .map_err(|err| UnifiedError::Local(err.to_string()))?;
                copied.push(e);
            }
            Err(err) => {
                skip(report, &e.source, &msg.path, &err);
                dropped.push(e.unified.clone());
            }
        }
    }
    let durable = copies
        .commit_durable()
        .map_err(|err| UnifiedError::Local(err.to_string()))?;
    for e in copied {
        tracing::debug!(account = %e.source.account, folder = %e.source.folder, key = %e.local_key, "unified: copied as {}", e.unified);
        done.push(e.unified.clone());
    }
    report.linked += done.len() - durable.len();
    report.copied += durable.len();
    sync_unified(md)?;
    store.commit(&done, &dropped, &[])?;
    Ok(())
}

fn skip(report: &mut Report, source: &Source, path: &std::path::Path, err: &io::Error) {
    if err.kind() == io::ErrorKind::NotFound {
        // Renamed or moved since the scan: the next reconcile finds it (rule 14).
        report.rescan = true;
    } else {
        report
            .errors
            .push(format!("{source}: cannot link {}: {err}", path.display()));
    }
}
