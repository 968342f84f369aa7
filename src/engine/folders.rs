//! Rule 9 in the engine: folders known from an earlier pass that one side no longer has.
//! `sync::folder_fate` decides; this gathers the facts it asks for and carries out the
//! decision. Runs only in a pass over every folder, so a narrowed pass (one `--folder`,
//! a daemon pass of the folders that changed) never reads a folder it skipped as gone.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::SystemTime;

use super::LocalError;
use super::{AccountReport, EngineError, FolderFailure, SyncOptions};
use crate::config::ImapSettings;
use crate::imap::ImapSession;
use crate::maildir::FolderMap;
use crate::model::FolderName;
use crate::store::{FolderState, Store};
use crate::sync::folders::{FolderFacts, FolderFate, folder_fate, needs_counts};

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
    facts.paired = store.pairs(folder.id).await?.len();
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
