//! Rule 9 in the engine: folders known from an earlier pass that one side no longer has.
//! `sync::folder_fate` decides; this gathers the facts it asks for and carries out the
//! decision. A folder the server renamed is recognised first (`sync::rename_candidates`,
//! confirmed by its messages) and moved locally with its state, so nothing is fetched
//! again. Runs only in a pass over every folder, so a narrowed pass (one `--folder`,
//! a daemon pass of the folders that changed) never reads a folder it skipped as gone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use super::LocalError;
use super::report::change_record;
use super::{AccountReport, EngineError, FolderFailure, SyncOptions};
use crate::config::ImapSettings;
use crate::imap::{ImapSession, uid_set};
use crate::maildir::FolderMap;
use crate::model::{FolderName, UidValidity};
use crate::store::{FolderState, Store};
use crate::sync::folders::{
    FolderFacts, FolderFate, folder_fate, needs_counts, rename_candidates, rename_confirmed,
    rename_confirmed_by_expunges,
};
use crate::sync::{self, ChangeKind, Outcome, Side};

/// Delete what rule 9 allows, forget folders gone from both sides, and report folders
/// deleted on the server that still hold local mail. `server` (name, wire name) loses
/// the folders deleted here, so the pass does not recreate them. A folder whose check or
/// deletion fails is that folder's failure; the others go on (rule 24).
pub async fn reconcile(
    settings: &ImapSettings,
    store: &Store,
    session: &mut ImapSession,
    map: &FolderMap,
    server: &mut Vec<(FolderName, String)>,
    opts: &SyncOptions,
    report: &mut AccountReport,
) -> Result<(), EngineError> {
    // Only folders this map places: one outside the personal namespace is not synced.
    let known: Vec<_> = store
        .folders()
        .await?
        .into_iter()
        .filter(|f| settings.selects(map, &f.server_name.0) && map.to_local(&f.server_name).is_ok())
        .collect();
    let on_server: BTreeSet<FolderName> = server.iter().map(|(n, _)| n.clone()).collect();
    let mut on_local = BTreeSet::new();
    for f in &known {
        if map.to_local(&f.server_name)?.join("cur").is_dir() {
            on_local.insert(f.server_name.clone());
        }
    }
    // An existing root with none of the known folders in it is an unmounted disk or a
    // wiped directory until proven otherwise (rule 7).
    let local_root_trusted = map.root.is_dir() && !on_local.is_empty();
    // INBOX cannot be deleted in IMAP; a missing local one is simply made again.
    // Children before their parent, so an emptied parent directory can go too.
    let mut known: Vec<_> = known
        .into_iter()
        .filter(|f| !f.server_name.0.eq_ignore_ascii_case("INBOX"))
        .collect();
    known.sort_by(|a, b| b.server_name.cmp(&a.server_name));
    let renamed = renamed_on_server(
        store, session, map, server, &known, &on_server, &on_local, opts, report,
    )
    .await?;
    known.retain(|f| !renamed.contains(&f.server_name));
    for folder in known {
        let facts = FolderFacts {
            on_server: on_server.contains(&folder.server_name),
            on_local: on_local.contains(&folder.server_name),
            paired: 0,
            server_messages: None,
            local_messages: None,
            local_root_trusted,
            // Watermarks are set only when a whole folder pass committed.
            synced: folder.uidvalidity.is_some(),
        };
        if facts.on_server && facts.on_local {
            continue;
        }
        let name = folder.server_name.clone();
        match reconcile_one(
            settings, store, session, map, server, opts, report, folder, facts,
        )
        .await
        {
            Ok(()) => {}
            Err(EngineError::Imap(e)) if e.ends_session() => return Err(EngineError::Imap(e)),
            Err(e @ (EngineError::Store(_) | EngineError::Lock(_))) => return Err(e),
            Err(e) => {
                if !opts.dry_run {
                    store
                        .record_pass(Some(name.clone()), SystemTime::now(), Some(e.to_string()))
                        .await?;
                }
                report.errors.push(FolderFailure::of_folder(&name, &e));
            }
        }
    }
    Ok(())
}

/// Folders the server renamed: each synced folder gone from the server whose Maildir
/// folder is still here, matched by UIDVALIDITY with a server folder nobody knows yet,
/// and confirmed by the identities of its paired messages. Its Maildir folder moves to
/// the new name (directory first: a crash before the state follows leaves a folder the
/// next pass pairs as a first contact, never one uploaded as new) and its state follows
/// with pairs and watermarks, so the next pass finds nothing to fetch. Costs nothing
/// when no folder is gone; a STATUS per unknown server folder when one is. Returns the
/// old names it took care of.
#[allow(clippy::too_many_arguments)]
async fn renamed_on_server(
    store: &Store,
    session: &mut ImapSession,
    map: &FolderMap,
    server: &[(FolderName, String)],
    known: &[FolderState],
    on_server: &BTreeSet<FolderName>,
    on_local: &BTreeSet<FolderName>,
    opts: &SyncOptions,
    report: &mut AccountReport,
) -> Result<BTreeSet<FolderName>, EngineError> {
    let mut done = BTreeSet::new();
    let gone: Vec<(FolderName, UidValidity)> = known
        .iter()
        .filter(|f| !on_server.contains(&f.server_name) && on_local.contains(&f.server_name))
        .filter(|f| f.halt_reason.is_none())
        .filter_map(|f| f.uidvalidity.map(|uv| (f.server_name.clone(), uv)))
        .collect();
    if gone.is_empty() {
        return Ok(done);
    }
    let stored = super::link::known_folders(store).await?;
    let mut new = Vec::new();
    for (name, wire) in server {
        let unknown = !stored.contains_key(name)
            && !name.0.eq_ignore_ascii_case("INBOX")
            && map
                .to_local(name)
                .is_ok_and(|p| std::fs::symlink_metadata(p).is_err());
        if !unknown {
            continue;
        }
        match session.uidvalidity(wire).await {
            Ok(uv) => new.push((name.clone(), uv)),
            Err(e) if e.ends_session() => return Err(e.into()),
            // This one is not a candidate; its own pass reports what is wrong with it.
            Err(e) => tracing::debug!(folder = %name, "no UIDVALIDITY for a rename check: {e}"),
        }
    }
    // Each candidate checked first: a new folder takes the one gone folder whose messages
    // it holds, none if several (see `rename_candidates`).
    let mut confirmed: BTreeMap<FolderName, Vec<(FolderName, &FolderState, usize)>> =
        BTreeMap::new();
    for (old, to) in rename_candidates(&gone, &new) {
        let Some(folder) = known.iter().find(|f| f.server_name == old) else {
            continue;
        };
        let Some(wire) = server.iter().find(|(n, _)| *n == to).map(|(_, w)| w) else {
            continue;
        };
        let pairs = store.pairs(folder.id).await?;
        if pairs.is_empty() {
            // Nothing to keep: rule 9 removes the empty folder and the pass makes the
            // new one.
            continue;
        }
        let uids: Vec<_> = pairs.iter().map(|p| p.uid).collect();
        // With QRESYNC, the server also says which of them it expunged since.
        let known = folder.uidvalidity.zip(folder.highestmodseq);
        let found = match session.select(wire, known).await {
            Ok(selected) => session
                .fetch_identities(&uid_set(&uids))
                .await
                .map(|found| (selected, found)),
            Err(e) => Err(e),
        };
        let (selected, found) = match found {
            Ok(f) => f,
            Err(e) if e.ends_session() => return Err(e.into()),
            Err(e) => {
                tracing::debug!(folder = %to, "checking whether it is {old} renamed: {e}");
                continue;
            }
        };
        // Its history moved on from ours, and never back: a renamed folder keeps its
        // UIDNEXT.
        let moved_on = matches!(
            (selected.highestmodseq, folder.highestmodseq),
            (Some(now), Some(then)) if now > then
        ) && matches!(
            (selected.uidnext, folder.uidnext),
            (Some(now), Some(then)) if now >= then
        );
        let expunged = rename_confirmed_by_expunges(
            &pairs,
            &found,
            &selected.vanished,
            selected.resynced,
            moved_on,
        );
        if !rename_confirmed(&pairs, &found) && !expunged {
            tracing::debug!(folder = %to, "same UIDVALIDITY as the vanished {old}, but not its messages: not a rename");
            continue;
        }
        confirmed
            .entry(to)
            .or_default()
            .push((old, folder, pairs.len()));
    }
    let mut renames: Vec<(FolderName, FolderName, &FolderState, usize)> = Vec::new();
    for (to, olds) in confirmed {
        match &olds[..] {
            [(old, folder, n)] => renames.push((old.clone(), to, folder, *n)),
            _ => {
                tracing::debug!(folder = %to, "the messages of {} vanished folders: not one rename", olds.len())
            }
        }
    }
    // Parents first: moving a parent's directory may carry its children along.
    renames.sort_by(|a, b| a.0.cmp(&b.0));
    for (old, to, folder, paired) in renames {
        if opts.dry_run {
            report.plans.push(format!(
                "{old}: renamed on the server to {to}: would move the Maildir folder"
            ));
            done.insert(old);
            continue;
        }
        let moved = map.rename(&old, &to)?;
        store
            .rename_folder(folder.id, &to, &map.to_local(&to)?)
            .await?;
        tracing::info!(
            folder = %to,
            "renamed on the server from {old}: Maildir folder {}, with its {} messages and their state",
            if moved { "moved" } else { "moved with its parent" },
            paired
        );
        report.notes.push(format!(
            "{old}: renamed on the server to {to}; moved locally"
        ));
        done.insert(old);
    }
    Ok(done)
}

/// One known folder that one side no longer has: gather the facts rule 9 asks for and
/// carry out its decision.
#[allow(clippy::too_many_arguments)]
async fn reconcile_one(
    settings: &ImapSettings,
    store: &Store,
    session: &mut ImapSession,
    map: &FolderMap,
    server: &mut Vec<(FolderName, String)>,
    opts: &SyncOptions,
    report: &mut AccountReport,
    folder: FolderState,
    mut facts: FolderFacts,
) -> Result<(), EngineError> {
    let name = &folder.server_name;
    let path = map.to_local(name)?;
    let pairs = store.pairs(folder.id).await?;
    facts.paired = pairs.len();
    let wire = server
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, w)| w.clone());
    let (ask_server, ask_local) = needs_counts(&facts);
    if let (true, Some(wire)) = (ask_server, &wire) {
        facts.server_messages = Some(session.message_count(wire).await?);
    }
    if ask_local {
        facts.local_messages = Some(local_files(&path)?);
    }
    match folder_fate(&facts, settings.direction) {
        FolderFate::Sync => {}
        FolderFate::Forget => {
            if !opts.dry_run {
                store.delete_folder(folder.id).await?;
            }
        }
        FolderFate::DeleteOnServer => {
            let wire = wire.expect("a folder on the server has a wire name");
            if opts.dry_run {
                report.plans.push(format!(
                    "{name}: would delete the empty folder on the server (deleted locally)"
                ));
                return Ok(());
            }
            session.delete_folder(&wire).await?;
            store.delete_folder(folder.id).await?;
            server.retain(|(n, _)| n != name);
            tracing::info!(folder = %name, "deleted locally and empty on the server: deleted on the server (rule 9)");
        }
        FolderFate::DeleteLocally => {
            if opts.dry_run {
                report.plans.push(format!(
                    "{name}: would remove the empty Maildir folder {} (deleted on the server)",
                    path.display()
                ));
                return Ok(());
            }
            // Pairs whose files are gone: deleted (or moved away) here, and gone with the
            // folder there. Nothing to carry, but the log says what became of them,
            // first (a kill after it at worst logs them twice).
            let gone: Vec<_> = pairs
                .iter()
                .flat_map(|pair| {
                    [Side::Local, Side::Server].map(|side| {
                        change_record(
                            name,
                            &sync::Change {
                                side,
                                uid: Some(pair.uid),
                                key: Some(pair.key.clone()),
                                kind: ChangeKind::Deleted,
                                outcome: Outcome::AlreadyInSync,
                            },
                        )
                    })
                })
                .collect();
            store.log_changes(gone).await?;
            remove_empty_maildir(&path)?;
            store.delete_folder(folder.id).await?;
            tracing::info!(folder = %name, path = %path.display(), "deleted on the server and empty locally: Maildir folder removed (rule 9)");
        }
        FolderFate::KeepLocal => {
            let held = facts
                .local_messages
                .map_or_else(|| format!("{} paired", facts.paired), |n| n.to_string());
            report.halts.push(format!(
                "{name}: deleted on the server, but the Maildir folder {} still holds messages ({held}); it is left alone (rule 9). Move them to another folder, or remove the folder yourself",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Entries in the folder's `cur/`, `new/` and `tmp/`: any file at all counts, so a
/// half-delivered message keeps the folder.
fn local_files(path: &Path) -> Result<usize, EngineError> {
    let mut n = 0;
    for sub in ["cur", "new", "tmp"] {
        match std::fs::read_dir(path.join(sub)) {
            Ok(entries) => n += entries.count(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(EngineError::Local(LocalError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }));
            }
        }
    }
    Ok(n)
}

/// Remove an empty Maildir folder: its three directories (each must be empty: `rmdir`
/// refuses otherwise, so a message arriving meanwhile is never removed), then the folder
/// directory itself unless it holds subfolders.
fn remove_empty_maildir(path: &Path) -> Result<(), EngineError> {
    let local = |e: std::io::Error| {
        EngineError::Local(LocalError::Io {
            path: path.to_path_buf(),
            source: e,
        })
    };
    let mut removed = Vec::new();
    for sub in ["tmp", "new", "cur"] {
        match std::fs::remove_dir(path.join(sub)) {
            Ok(()) => removed.push(sub),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                // Something arrived: put the folder back as it was (private, rule 20),
                // and say so.
                for sub in removed {
                    use std::os::unix::fs::DirBuilderExt;
                    let _ = std::fs::DirBuilder::new()
                        .mode(0o700)
                        .create(path.join(sub));
                }
                return Err(local(e));
            }
        }
    }
    match std::fs::remove_dir(path) {
        Ok(()) => {}
        // Subfolders live inside (verbatim layout): the directory stays for them.
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
        Err(e) => return Err(local(e)),
    }
    crate::maildir::sync_dir(path.parent().unwrap_or(path)).map_err(local)
}
