//! One pass over an account's folders as the account's link last listed them: folders
//! one side made or deleted, the extra connections (within the budget), and the folders
//! dealt over them: every folder observed and planned first (a move shows only across
//! two folders' plans), then the moves, then each plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use crate::config::{Account, AccountKind, ImapSettings};
use crate::imap::{self, ImapSession};
use crate::maildir::{self, FolderMap, utf7};
use crate::model::{FolderName, MaildirKey};
use crate::store::{self, Store};
use crate::sync::{self, Policy};

use super::account::logout_all;
use super::budget::{Budget, Slot};
use super::error::{EngineError, FolderFailure, LocalError};
use super::folder::{Ctx, Prepared};
use super::folders;
use super::link::{Listing, open, still_folders};
use super::recover;
use super::report::{AccountReport, Counts, PassScope, SyncOptions, summed};

/// One pass over the selected folders (narrowed by `scope`) on a store, a session and a
/// listing the caller's link holds. Up to `connections - 1` more sessions are opened for
/// the pass, as far as the budget allows, and closed after it. Each folder's outcome is
/// recorded for `syncmail status`; a folder made or deleted marks the listing stale.
#[allow(clippy::too_many_arguments)]
pub(super) async fn pass(
    account: &Account,
    store: &Store,
    session: &mut ImapSession,
    listing: &mut Listing,
    budget: &Budget,
    opts: &SyncOptions,
    scope: &PassScope,
    relisted: bool,
    report: &mut AccountReport,
) -> Result<Passed, EngineError> {
    let AccountKind::Imap(settings) = &account.kind else {
        return Err(EngineError::Unsupported("not an IMAP account".into()));
    };
    let listed = listing.listed.clone();
    let map = listing.map.clone();
    recover::server_intents(store, session, &map, report).await?;
    // A pass over every folder first asks for all their numbers at once, and selects
    // only the folders that moved or whose Maildir changed (a no-change pass over many
    // folders costs a round trip, not one per folder).
    let still = if opts.dry_run || scope.folders.is_some() || opts.folder.is_some() {
        BTreeSet::new()
    } else {
        let selected: Vec<(FolderName, String)> = listing
            .personal()
            .into_iter()
            .filter(|(n, _)| settings.selects(&map, &n.0))
            .collect();
        if selected.len() > 1 {
            still_folders(store, session, &map, &selected).await?
        } else {
            BTreeSet::new()
        }
    };
    crate::fault::pause("checked");
    // The extra connections a pass over several folders uses, opened while this one
    // lists and plans (a TLS handshake and a login cost as much as a small pass): as
    // many as the folders known from the last pass, less the still ones, can use.
    let known = match &scope.folders {
        Some(only) => only.len(),
        None => store.folders().await?.len().saturating_sub(still.len()),
    };
    let early = settings.connections.min(known).saturating_sub(1);
    let opening = (early > 0).then(|| {
        let account = account.clone();
        let budget = budget.clone();
        tokio::spawn(async move {
            futures::future::join_all((0..early).map(|_| open(&account, &budget))).await
        })
    });

    let mut server: Vec<(FolderName, String)> = Vec::new();
    for f in listed.iter().filter(|f| f.selectable) {
        match maildir::decode_server_name(&f.raw_name) {
            // Other users' and shared folders are not the user's own (rule 24).
            Ok(name) if map.personal_name(&name.0).is_none() => {
                tracing::debug!(folder = %name, "outside the personal namespace; not synced");
            }
            Ok(name) => server.push((name, f.raw_name.clone())),
            // A hostile or broken name is reported and skipped; the rest still syncs.
            Err(e) => report.errors.push(FolderFailure::account(e)),
        }
    }
    let on_server: BTreeSet<FolderName> = server.iter().map(|(n, _)| n.clone()).collect();
    if opts.folder.is_none() && scope.folders.is_none() {
        let names: Vec<&str> = on_server.iter().map(|n| n.0.as_str()).collect();
        for p in settings.unmatched_patterns(&map, &names) {
            report.notes.push(format!(
                "warning: folder pattern `{}` matches no folder on the server; check its spelling (`syncmail check-config --connect` lists the server's folders)",
                p.glob
            ));
        }
    }
    // Folders one side deleted (rule 9); only a pass over every folder can tell.
    if opts.folder.is_none() && scope.folders.is_none() {
        let before = server.len();
        folders::reconcile(settings, store, session, &map, &mut server, opts, report).await?;
        listing.stale |= server.len() != before;
    }
    // A dry run does not create the account root; a missing root holds no folders.
    let local = if map.root.is_dir() {
        map.list_local().map_err(LocalError::io(&map.root))?
    } else {
        maildir::LocalFolders::default()
    };
    for (path, e) in &local.skipped {
        report
            .errors
            .push(FolderFailure::account(format!("{}: {e}", path.display())));
    }
    for (name, _) in local.folders {
        if on_server.contains(&name) || store.folder(&name).await?.is_some() {
            continue;
        }
        if !settings.selects(&map, &name.0) {
            continue;
        }
        // A folder made locally: create it on the server (folders travel both ways).
        let wire = utf7::encode(&name.0);
        if opts.dry_run {
            report
                .plans
                .push(format!("{name}: would create on the server"));
            continue;
        }
        if settings.direction.sends() {
            // A refused CREATE is this folder's failure, named; the others sync (rule 24).
            match session.create(&wire).await {
                Ok(()) => {
                    listing.stale = true;
                    server.push((name, wire));
                }
                Err(e) if e.ends_session() => return Err(e.into()),
                Err(e) => {
                    let failure = FolderFailure::in_folder(
                        &name,
                        format!(
                            "{}: made locally, but the server refused to create it: {e}",
                            maildir::shown_prefix(&name.0)
                        ),
                    );
                    store
                        .record_pass(
                            Some(name.clone()),
                            SystemTime::now(),
                            Some(failure.text.clone()),
                        )
                        .await?;
                    report.errors.push(failure);
                }
            }
        }
    }
    server.sort();
    let policy = Policy {
        account: account.name.clone(),
        direction: settings.direction,
        expunge: settings.expunge,
        delete_vs_flag: settings.delete_vs_flag,
        trash: settings.trash.clone(),
        max_delete_share: settings.max_delete_share,
        allow_mass_delete: opts.confirm_delete,
        accept_repair: opts.confirm_repair,
        moved_out: BTreeSet::new(),
    };
    let wanted: Vec<&(FolderName, String)> = server
        .iter()
        .filter(|(name, _)| {
            settings.selects(&map, &name.0)
                && opts.folder.as_deref().is_none_or(|f| f == name.0)
                && scope.folders.as_ref().is_none_or(|s| s.contains(name))
        })
        .collect();
    // What a pass that must look at every folder again starts from (see below).
    let before = report.clone();
    // The still folders are done: in sync, as a pass that found nothing would leave them.
    let (skipped, wanted): (Vec<_>, Vec<_>) = wanted
        .into_iter()
        .partition(|(name, _)| still.contains(name));
    for (name, _) in skipped {
        store
            .record_pass(Some(name.clone()), SystemTime::now(), None)
            .await?;
        report.counts.folders += 1;
        report.synced.push(name.clone());
    }
    // Up to `connections` sessions, each observing and applying its share of the folders,
    // so the server is never idle while one folder's batch is being committed. A server
    // that refuses more connections just gets fewer.
    let extra = settings.connections.min(wanted.len()).saturating_sub(1);
    let mut opened = match opening {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    // A first pass, or new folders: more than the last pass knew.
    let missing = extra.saturating_sub(opened.len());
    opened.extend(futures::future::join_all((0..missing).map(|_| open(account, budget))).await);
    let mut more: Vec<ImapSession> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut surplus: Vec<ImapSession> = Vec::new();
    for result in opened {
        match result {
            Ok((s, slot)) if more.len() < extra => {
                more.push(s);
                slots.push(slot);
            }
            Ok((s, _slot)) => surplus.push(s),
            Err(e) => tracing::debug!(account = %account.name, "one connection fewer: {e}"),
        }
    }
    logout_all(surplus).await;
    let result = match pass_folders(
        settings, store, session, &mut more, &server, &wanted, &map, &policy, opts, scope, true,
        relisted, report,
    )
    .await
    {
        Ok(Covered::NeedsEveryFolder) => {
            // A message left one of the scoped folders, or a file arrived that another
            // folder still pairs: where it went or came from, only a fresh look at every
            // folder can see (a move, not a deletion and a download or an upload).
            tracing::debug!(account = %account.name, "a message moves between folders; this pass observes every folder");
            *report = before.clone();
            let every: Vec<&(FolderName, String)> = server
                .iter()
                .filter(|(name, _)| {
                    settings.selects(&map, &name.0)
                        && opts.folder.as_deref().is_none_or(|f| f == name.0)
                })
                .collect();
            // A folder new to the state among them may be a known one's new name, which
            // only the folder step of a pass over every folder recognises (the soak's
            // renamed folders fetched again, seed 20261209 on 8911664).
            if scope.folders.is_some() && any_new(store, every.iter().map(|(n, _)| n)).await? {
                tracing::debug!(account = %account.name, "a folder new to the state among them; the pass lists the folders again");
                Ok(Covered::Relist)
            } else {
                let wide = PassScope {
                    folders: None,
                    stop: scope.stop.clone(),
                };
                pass_folders(
                    settings, store, session, &mut more, &server, &every, &map, &policy, opts,
                    &wide, false, relisted, report,
                )
                .await
            }
        }
        other => other,
    };
    logout_all(more).await;
    drop(slots);
    listing.stale |= !report.vanished.is_empty();
    match result? {
        // Nothing was applied; the caller passes again over a fresh listing, and reports
        // that pass.
        Covered::Relist => {
            listing.stale = true;
            Ok(Passed::Relist)
        }
        Covered::Done | Covered::NeedsEveryFolder => Ok(Passed::Done),
    }
}

/// Whether one of these folders is new to the state (one query, however many folders).
pub(super) async fn any_new(
    store: &Store,
    names: impl IntoIterator<Item = &FolderName>,
) -> Result<bool, EngineError> {
    let known = super::link::known_folders(store).await?;
    Ok(names.into_iter().any(|n| !known.contains_key(n)))
}

/// What a pass asks of its caller.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Passed {
    Done,
    /// List the folders again and pass over every one, once (see
    /// [`sync::moved_while_gone`], and a scoped pass that must look at every folder
    /// while one is new to the state); nothing was applied, and the report holds what
    /// this attempt noted: the caller reports the pass again from where it was.
    Relist,
}

/// A first listing in windows (`observe::window`) shows the first window's arrivals
/// only; when messages leave another folder this pass, the rest may be where they went
/// (a webmail's new folder holding 10,000 moved messages): such folders are listed whole
/// and planned again, so every move is seen as one.
async fn whole_listings(
    session: &mut ImapSession,
    prepared: &mut [Prepared],
) -> Result<(), EngineError> {
    if !prepared.iter().any(|p| p.remote.rest.is_some())
        || !prepared.iter().any(|p| sync::leaves_folder(&p.plan))
    {
        return Ok(());
    }
    for p in prepared.iter_mut().filter(|p| p.remote.rest.is_some()) {
        tracing::debug!(folder = %p.name, "messages leave another folder: its first listing is made whole");
        p.remote = super::observe::remote(session, &p.wire, &p.base, None, false, false).await?;
        p.replan();
    }
    Ok(())
}

/// A folder's first pass lists its messages without their Message-IDs (it downloads
/// them all anyway, and reads the ID from the body). A message that left another folder
/// in this pass may be among them: a move into a folder one side just made. Ask the
/// server for the Message-IDs of the arrivals whose size matches a leaving message (or
/// one a renumbered folder no longer lists), so move detection can see the move (rule 21
/// pairs the rest on first contact).
async fn identify_arrivals(
    session: &mut ImapSession,
    prepared: &mut [Prepared],
) -> Result<(), EngineError> {
    let leaving: BTreeSet<u64> = prepared
        .iter()
        .flat_map(|p| {
            // (none absent unless the folder was renumbered)
            let absent = sync::absent_from_listing(&p.remote.snapshot, &p.local, &p.base);
            sync::leaving(&p.plan, &p.base).into_iter().chain(absent)
        })
        .filter(|pair| pair.message_id.is_some())
        .map(|pair| pair.remote_size)
        .collect();
    if leaving.is_empty() {
        return Ok(());
    }
    for p in prepared.iter_mut() {
        let wanted: Vec<crate::model::Uid> = p
            .plan
            .actions
            .iter()
            .filter_map(|a| match a {
                sync::Action::Fetch { uids } => Some(uids.iter()),
                _ => None,
            })
            .flatten()
            .filter(|uid| {
                p.remote
                    .snapshot
                    .listed()
                    .get(uid)
                    .is_some_and(|m| m.message_id.is_none() && leaving.contains(&m.size))
            })
            .collect();
        if wanted.is_empty() {
            continue;
        }
        session.select(&p.wire, None).await?;
        let ids = session.fetch_identities(&imap::uid_set(&wanted)).await?;
        let (sync::RemoteListing::Complete(all)
        | sync::RemoteListing::Changes { changed: all, .. }) = &mut p.remote.snapshot.listing;
        for (uid, (id, _)) in ids {
            if let Some(m) = all.get_mut(&uid) {
                m.message_id = id;
            }
        }
    }
    Ok(())
}

/// What a pass over some folders found it must do.
enum Covered {
    Done,
    /// Widen the pass to every folder (see [`sync::leaves_folder`]).
    NeedsEveryFolder,
    /// List the folders again first (see [`Passed::Relist`]).
    Relist,
}

/// The folder map on this server: the hierarchy delimiter LIST reported (else the
/// personal namespace's), and the personal namespace prefix NAMESPACE reported at login,
/// left out of local names unless `use_namespace = false` (rule 24).
pub fn server_folder_map(
    settings: &ImapSettings,
    root: &Path,
    connected: &imap::Connected,
    listed: &[imap::ListedFolder],
) -> FolderMap {
    let namespace = connected.namespace.as_ref();
    let delimiter = listed
        .iter()
        .find_map(|f| f.delimiter)
        .or(namespace.and_then(|n| n.delimiter));
    let prefix = namespace.and_then(|n| match utf7::decode(&n.prefix) {
        Ok(prefix) => Some(prefix),
        Err(e) => {
            tracing::warn!(
                "the server's personal namespace prefix {:?} is not modified UTF-7 ({e}); folder names are used as they are",
                n.prefix
            );
            None
        }
    });
    settings.server_folder_map(root, delimiter, prefix.as_deref())
}

/// Observe and plan every wanted folder, run the moves, apply each plan: the folders dealt
/// over the caller's session and the extra ones.
#[allow(clippy::too_many_arguments)]
async fn pass_folders(
    settings: &ImapSettings,
    store: &Store,
    session: &mut ImapSession,
    more: &mut [ImapSession],
    server: &[(FolderName, String)],
    wanted: &[&(FolderName, String)],
    map: &FolderMap,
    policy: &Policy,
    opts: &SyncOptions,
    scope: &PassScope,
    again: bool,
    relisted: bool,
    report: &mut AccountReport,
) -> Result<Covered, EngineError> {
    let mut sessions: Vec<&mut ImapSession> =
        std::iter::once(session).chain(more.iter_mut()).collect();
    let n = sessions.len();
    let totals = std::sync::Arc::new(std::sync::Mutex::new(vec![Counts::default(); n]));
    let task_opts: Vec<SyncOptions> = (0..n)
        .map(|i| SyncOptions {
            progress: opts.progress.clone().map(|p| summed(p, totals.clone(), i)),
            ..opts.clone()
        })
        .collect();
    let claims = super::identity::Claims::default();
    let stamps = std::sync::Mutex::new(Vec::new());
    let unchanged = std::sync::Mutex::new(Vec::new());
    let ctxs: Vec<Ctx<'_>> = task_opts
        .iter()
        .map(|o| Ctx {
            store,
            map,
            settings,
            policy,
            opts: o,
            scope,
            claims: &claims,
            unchanged: &unchanged,
            stamps: &stamps,
        })
        .collect();

    // Observe and plan every folder first: a move shows only across two folders' plans.
    let observed = futures::future::join_all(sessions.iter_mut().zip(&ctxs).enumerate().map(
        |(i, (session, ctx))| {
            let mine: Vec<(usize, &(FolderName, String))> = wanted
                .iter()
                .enumerate()
                .filter(|(j, _)| j % n == i)
                .map(|(j, f)| (j, *f))
                .collect();
            async move {
                let mut part = AccountReport::default();
                let mut out = Vec::new();
                for (j, (name, wire)) in mine {
                    if scope.stopped() {
                        out.push((j, name.clone(), Err(EngineError::Stopped)));
                        break;
                    }
                    let halts_before = part.halts.len();
                    let result = ctx.prepare(session, name, wire, &mut part).await;
                    crate::fault::pause(&format!("observed:{name}"));
                    // Nothing left to apply: the folder's outcome is known now.
                    if let Ok(None) = result {
                        let halt = part.halts.get(halts_before).cloned();
                        if let Err(e) = ctx.record(name, halt.as_deref()).await {
                            out.push((j, name.clone(), Err(e)));
                            break;
                        }
                        match halt {
                            Some(text) => part.halted.push(FolderFailure::halted(name, text)),
                            None => part.synced.push(name.clone()),
                        }
                    }
                    let lost = matches!(&result, Err(EngineError::Imap(e)) if e.ends_session());
                    out.push((j, name.clone(), result));
                    // The connection is gone: its remaining folders cannot run either.
                    if lost {
                        break;
                    }
                }
                (out, part)
            }
        },
    ))
    .await;
    let mut prepared: Vec<(usize, Prepared)> = Vec::new();
    for (out, part) in observed {
        report.merge(part);
        for (j, name, result) in out {
            match result {
                Ok(Some(p)) => prepared.push((j, p)),
                Ok(None) => {}
                Err(EngineError::Stopped) => return Err(EngineError::Stopped),
                Err(EngineError::Imap(e)) if e.ends_session() => return Err(EngineError::Imap(e)),
                Err(EngineError::Imap(imap::ImapError::NoSuchFolder(why))) => {
                    gone(&name, &why, report)
                }
                Err(e) => {
                    ctxs[0].record(&name, Some(&e.to_string())).await?;
                    report.errors.push(FolderFailure::of_folder(&name, &e));
                }
            }
        }
    }
    prepared.sort_by_key(|(j, _)| *j);
    let mut prepared: Vec<Prepared> = prepared.into_iter().map(|(_, p)| p).collect();
    if scope.folders.is_some() && prepared.iter().any(|p| sync::leaves_folder(&p.plan)) {
        return Ok(Covered::NeedsEveryFolder);
    }
    // A file that arrived here while another folder still pairs its key was renamed
    // across folders after that folder was observed (or outside this pass's scope):
    // uploading it would leave the server copy behind. Observe every folder again.
    if again {
        let arrivals = arrivals(&prepared);
        if !arrivals.is_empty() && !store.pairing_folders(arrivals).await?.is_empty() {
            return Ok(Covered::NeedsEveryFolder);
        }
    }
    if !opts.dry_run {
        whole_listings(sessions[0], &mut prepared).await?;
        identify_arrivals(sessions[0], &mut prepared).await?;
        replan_renumbered_with_moves_out(&mut prepared);
        settle_doubled_arrivals(&mut prepared);
    }
    let held = if opts.dry_run {
        BTreeMap::new()
    } else {
        held_files(store, settings, map, server, &prepared).await?
    };
    let moves = {
        // A folder being renumbered (rule 13) is re-paired from the base read before any
        // move ran, which would forget a pair a move just made in it: moves into or out of
        // it wait for the next pass, where its pairs are right (soak, seed 20261205).
        let mut passes: Vec<sync::FolderPass<'_>> = prepared
            .iter_mut()
            .filter(|p| !renumbered(&p.plan))
            .map(|p| sync::FolderPass {
                remote: &p.remote.snapshot,
                local: &p.local,
                base: &p.base,
                policy: &p.policy,
                plan: std::mem::replace(&mut p.plan, sync::Plan::new(p.name.clone())),
            })
            .collect();
        let moves = sync::detect_moves(&mut passes, sessions[0].has_move(), &held);
        let plans: Vec<sync::Plan> = passes.into_iter().map(|p| p.plan).collect();
        for (p, plan) in prepared
            .iter_mut()
            // (the others' plans were taken, leaving empty ones in their place)
            .filter(|p| !renumbered(&p.plan))
            .zip(plans)
        {
            p.plan = plan;
        }
        let mut moves = moves;
        moves.extend(moves_out_of_renumbered(&mut prepared));
        halt_unmoved_repairs(&mut prepared);
        moves
    };
    // A file the mail client moved out of a folder whose server copy left it too, with no
    // server arrival to match: another device moved it where this pass did not see it
    // arrive (a folder made after the listing, or one observed before the message got
    // there), or deleted it. Uploaded now, a move would leave two copies (the soak's
    // duplicate, seed 20261205 on commit f1ac544): list and look at every folder again,
    // once. Still unmatched then, see `wait_for_unseen_moves`.
    let mut waits = Vec::new();
    let mut gone_waits = Vec::new();
    if !opts.dry_run {
        let mut unseen = sync::moved_while_gone(prepared.iter().map(|p| &p.plan));
        // The same seen from the server's side: its move arrived, the file went where this
        // pass did not look (a folder the mail client made after the listing).
        unseen.extend(sync::moved_out_of_sight(
            prepared
                .iter()
                .map(|p| (&p.plan, &p.base, &p.remote.snapshot)),
        ));
        if !unseen.is_empty() {
            if !relisted {
                tracing::debug!(
                    files = unseen.len(),
                    "a file moved here while its server copy left; this pass lists the folders again"
                );
                return Ok(Covered::Relist);
            }
            waits = wait_for_unseen_moves(store, &mut prepared, &unseen).await?;
        }
        // What is left gone from both sides, with no arrival seen anywhere, waits one pass.
        gone_waits = wait_for_gone_pairs(store, &mut prepared, &unseen).await?;
    } else {
        // A dry run shows those pairs kept, as the pass would, and records no wait.
        wait_for_gone_pairs(store, &mut prepared, &[]).await?;
    }
    if !opts.dry_run {
        // The next pass must look at both ends: the folders a deferred message left too
        // (a daemon passes only the folders in `again` at once: the soak's duplicate,
        // seed 20261209 on 9786e9e, downloaded in a pass without its source).
        let sources = defer_raced_arrivals(store, wanted, &mut prepared).await?;
        report.again.extend(sources);
        let unchanged = std::mem::take(&mut *unchanged.lock().unwrap_or_else(|e| e.into_inner()));
        let outside = scope.folders.is_some().then_some(server);
        let sources =
            defer_raced_downloads(store, sessions[0], &mut prepared, &unchanged, outside).await?;
        // (A source may be outside this pass's folders: every listed folder is named.)
        report.again.extend(
            server
                .iter()
                .filter(|(_, wire)| sources.contains(wire))
                .map(|(name, _)| name.clone()),
        );
        for p in prepared
            .iter()
            .filter(|p| !p.deferred.is_empty() || !p.deferred_uids.is_empty() || !p.kept.is_empty())
        {
            report.again.insert(p.name.clone());
        }
    }
    // A message gone from one side of a folder whose other side changed is a conflict
    // (rule 11): kept and copied back, or deleted with the change. If it was moved, not
    // deleted, the copy would be a second one, or the change lost: look again first,
    // where the move shows. Into a folder made after the listing (the soak's duplicate,
    // seed 20261209 on 8ed40ea), only a fresh listing shows it: list the folders again
    // (once); after that, into a folder already observed, only a second look at every
    // folder does (once). A real conflict stands then.
    // (A folder that halts applies nothing: its conflicts wait with it.)
    if prepared.iter().any(|p| {
        p.plan.halt.is_none()
            && p.plan
                .conflicts
                .iter()
                .any(|c| matches!(c.kind, sync::ConflictKind::DeleteVsChange { .. }))
    }) {
        if !relisted && !opts.dry_run {
            tracing::debug!("a deletion beside a change; this pass lists the folders again");
            return Ok(Covered::Relist);
        }
        if again {
            return Ok(Covered::NeedsEveryFolder);
        }
    }
    // The pass applies now: the waits it started count from here (a look at every
    // folder again, above, must not find them spent already).
    store.wait(store::Wait::Move, waits).await?;
    store.wait(store::Wait::Gone, gone_waits).await?;
    if opts.dry_run {
        for m in &moves {
            report.plans.push(format!("move: {m:?}"));
        }
        for p in &prepared {
            if !p.plan.is_empty() {
                report.plans.push(p.plan.to_string());
            }
        }
        return Ok(Covered::Done);
    }
    for m in &moves {
        match ctxs[0].run_move(sessions[0], &prepared, m).await {
            Ok(()) => report.counts.moved += 1,
            Err(EngineError::Imap(e)) if e.ends_session() => return Err(EngineError::Imap(e)),
            Err(e) => report
                .errors
                .push(FolderFailure::account(format!("move: {e}"))),
        }
    }
    let moved: BTreeSet<FolderName> = moves
        .iter()
        .flat_map(|m| match m {
            sync::Move::OnServer { from, to, .. }
            | sync::Move::Local { from, to, .. }
            | sync::Move::Both { from, to, .. } => vec![from.clone(), to.clone()],
            sync::Move::Diverged {
                from, local_to, to, ..
            } => vec![from.clone(), local_to.clone(), to.clone()],
        })
        .collect();
    let mut shares: Vec<Vec<Prepared>> = (0..n).map(|_| Vec::new()).collect();
    for (j, p) in prepared.into_iter().enumerate() {
        shares[j % n].push(p);
    }
    let applied = futures::future::join_all(sessions.iter_mut().zip(&ctxs).zip(shares).map(
        |((session, ctx), share)| {
            let moved = &moved;
            async move {
                let mut part = AccountReport::default();
                let mut lost = None;
                for p in share {
                    if scope.stopped() {
                        lost = Some(EngineError::Stopped);
                        break;
                    }
                    let name = p.name.clone();
                    let touched = moved.contains(&p.name);
                    let fetched_before = part.counts.fetched;
                    let halts_before = part.halts.len();
                    let outcome = ctx.apply(session, p, touched, &mut part).await;
                    // A halt (a deletion guard, a UIDVALIDITY change) is shown like an
                    // error: the folder is not in sync until a human acts.
                    let error = match &outcome {
                        Ok(()) => part.halts.get(halts_before).cloned(),
                        Err(e) => Some(e.to_string()),
                    };
                    if !matches!(outcome, Err(EngineError::Stopped))
                        && let Err(e) = ctx.record(&name, error.as_deref()).await
                    {
                        lost = Some(e);
                        break;
                    }
                    if let (Ok(()), Some(text)) = (&outcome, &error) {
                        part.halted.push(FolderFailure::halted(&name, text.clone()));
                    }
                    match outcome {
                        Ok(()) => {
                            part.counts.folders += 1;
                            part.synced.push(name.clone());
                            let new = part.counts.fetched - fetched_before;
                            if new > 0 {
                                *part.new_mail.entry(name).or_default() += new;
                            }
                        }
                        Err(e @ EngineError::Stopped) => {
                            lost = Some(e);
                            break;
                        }
                        Err(EngineError::Imap(e)) if e.ends_session() => {
                            lost = Some(EngineError::Imap(e));
                            break;
                        }
                        Err(EngineError::Imap(imap::ImapError::NoSuchFolder(why))) => {
                            gone(&name, &why, &mut part)
                        }
                        Err(e) => part.errors.push(FolderFailure::of_folder(&name, &e)),
                    }
                }
                (part, lost)
            }
        },
    ))
    .await;
    let mut lost = None;
    for (part, l) in applied {
        report.merge(part);
        lost = lost.or(l);
    }
    // A stamp not recorded costs the folder's next pass a scan, nothing else.
    let stamps = std::mem::take(&mut *stamps.lock().expect("stamp tasks"));
    for task in stamps {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("a folder's stamp was not recorded: {e}"),
            Err(e) => tracing::warn!("a folder's stamp was not recorded: {e}"),
        }
    }
    match lost {
        Some(e) => Err(e),
        None => Ok(Covered::Done),
    }
}

/// A folder another client deleted (or renamed) on the server after the listing this
/// pass started from: not its failure, and nothing of it is decided now. The next
/// listing sees it gone, and the folder step (rule 9) decides what that means.
fn gone(name: &FolderName, why: &str, report: &mut AccountReport) {
    tracing::info!(folder = %name, "{why}; the next pass looks at the folder list again");
    report.notes.push(format!(
        "{}: deleted or renamed on the server during this pass; the next pass takes it up",
        maildir::shown_prefix(&name.0)
    ));
    report.vanished.push(name.clone());
}

/// A file the mail client moved again while the pass observed: one folder read it, then
/// it was renamed into another that the pass read after. Both would upload it (the
/// second try fails, the file is gone) and no move matches an arrival seen in two
/// folders, so a move made meanwhile on the server left two messages, the file's and the
/// server's (the soak's duplicate, seed 20261209 on commit 2aff00c). The arrival stays
/// only where the file still is; the others, and both if it is in neither any more,
/// wait for the next pass. (A file in both, a copy under the same name, stays as it is.)
fn settle_doubled_arrivals(prepared: &mut [Prepared]) {
    let mut seen: BTreeMap<MaildirKey, Vec<usize>> = BTreeMap::new();
    for (i, p) in prepared.iter().enumerate() {
        for key in sync::arrivals(&p.plan) {
            seen.entry(key.clone()).or_default().push(i);
        }
    }
    for (key, folders) in seen.into_iter().filter(|(_, f)| f.len() > 1) {
        for i in folders {
            let p = &mut prepared[i];
            if p.scan.messages.get(&key).is_some_and(|m| m.path.exists()) {
                continue;
            }
            tracing::debug!(
                folder = %p.name,
                "{key} left this folder after it was read, for another the pass read too; the next pass takes it up"
            );
            sync::defer_arrival(&mut p.plan, &key);
            p.deferred.insert(key.clone());
        }
    }
}

/// A file that arrived in one folder while another folder this pass observed still pairs
/// it, and whose Maildir no longer holds it, left that folder after it was observed: a
/// move in the middle of the pass, which neither folder's plan shows. Uploading it now
/// would put a second copy on the server (and any change another device makes to the
/// first meanwhile is a conflict that keeps both: the soak's duplicate, seed 20261206).
/// Its upload waits for the next pass, which sees both ends and moves it. A file still in
/// the other folder is a copy the user made, and is uploaded.
async fn defer_raced_arrivals(
    store: &Store,
    observed: &[&(FolderName, String)],
    prepared: &mut [Prepared],
) -> Result<BTreeSet<FolderName>, EngineError> {
    let arrivals = arrivals(prepared);
    if arrivals.is_empty() {
        return Ok(BTreeSet::new());
    }
    let pairing = store.pairing_folders(arrivals).await?;
    if pairing.is_empty() {
        return Ok(BTreeSet::new());
    }
    // A folder being renumbered takes no part in moves this pass (see `renumbered`):
    // waiting for it would wait for a human where it halts, and pass again and again.
    let observed: BTreeSet<&FolderName> = observed
        .iter()
        .map(|(n, _)| n)
        .filter(|n| {
            !prepared
                .iter()
                .any(|p| &p.name == *n && renumbered(&p.plan))
        })
        .collect();
    let folders = store.folders().await?;
    let mut raced: BTreeMap<MaildirKey, FolderName> = BTreeMap::new();
    for (key, id) in pairing {
        let Some(f) = folders.iter().find(|f| f.id == id) else {
            continue;
        };
        if !observed.contains(&f.server_name) {
            continue;
        }
        // Gone from both of its sides there: the folders were listed and looked at again
        // for where the server copy went (see `sync::moved_while_gone`), and it is nowhere.
        let forgets = prepared.iter().any(|p| {
            p.name == f.server_name
                && p.plan
                    .actions
                    .iter()
                    .any(|a| matches!(a, sync::Action::Forget { key: k, .. } if *k == key))
        });
        if forgets {
            continue;
        }
        // Unreadable: no way to tell, so it is treated as a copy (uploaded, as before).
        let still = maildir::Maildir::open(&f.local_path)
            .and_then(|md| md.scan())
            .map_or(true, |scan| scan.messages.contains_key(&key));
        if !still {
            raced.insert(key, f.server_name.clone());
        }
    }
    for p in prepared.iter_mut() {
        let keys: Vec<MaildirKey> = sync::arrivals(&p.plan)
            .into_iter()
            .filter(|k| raced.contains_key(*k))
            .cloned()
            .collect();
        for key in keys {
            tracing::debug!(
                folder = %p.name,
                "{key} arrived while {} still pairs it and no longer holds it: moved mid-pass; the next pass moves it",
                raced[&key]
            );
            sync::defer_arrival(&mut p.plan, &key);
            p.deferred.insert(key);
        }
    }
    Ok(raced.into_values().collect())
}

/// A server message that arrived in one folder with the Message-ID and size of a pair
/// another folder's observation saw on the server, whose server copy is gone now, left
/// that folder after it was observed: another device moved it in the middle of the pass,
/// which neither folder's plan shows. Downloading it now would put a second file beside the pair's,
/// and a move the mail client made of that file meanwhile would then be uploaded as a new
/// message (the soak's duplicate, seed 20261205 on commit 367ed90). Its download waits
/// for the next pass, which sees both ends. One `UID SEARCH` per such arrival, only when
/// a pair seen elsewhere has its Message-ID and size.
async fn defer_raced_downloads(
    store: &Store,
    session: &mut ImapSession,
    prepared: &mut [Prepared],
    unchanged: &[(store::FolderId, String)],
    outside: Option<&[(FolderName, String)]>,
) -> Result<BTreeSet<String>, EngineError> {
    type Identity = (crate::sync::MessageId, u64);
    let arrivals: Vec<(usize, crate::model::Uid, Identity)> = prepared
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            sync::new_downloads(&p.plan, &p.base, &p.remote.snapshot)
                .into_iter()
                .map(move |(uid, identity)| (i, uid, identity))
        })
        .collect();
    if arrivals.is_empty() {
        return Ok(BTreeSet::new());
    }
    let wanted: BTreeSet<&Identity> = arrivals.iter().map(|(_, _, id)| id).collect();
    // Where each was on the server when observed: its folder, that folder's wire name,
    // and its UID there.
    let mut kept: BTreeMap<Identity, Vec<(store::FolderId, &str, crate::model::Uid)>> =
        BTreeMap::new();
    for p in prepared.iter() {
        // A renumbered folder's base UIDs name nothing on the server now.
        if renumbered(&p.plan) {
            continue;
        }
        for pair in p.base.pairs.values() {
            if let Some(id) = &pair.message_id {
                let identity = (id.clone(), pair.remote_size);
                // Seen on the server by this pass (however its plan resolves it: a local
                // move of the file is a server move that will find nothing to move).
                let seen = !matches!(
                    p.remote.snapshot.state(pair.uid),
                    crate::sync::snapshot::RemoteState::Gone
                );
                if wanted.contains(&identity) && seen {
                    kept.entry(identity)
                        .or_default()
                        .push((p.folder.id, &p.wire, pair.uid));
                }
            }
        }
    }
    // A folder found unchanged, or planned from its changed pairs alone, has (the rest
    // of) its pairs in the state only: a pair there that the pass did not read was on
    // the server when the folder was observed (the soak's duplicates, seed 20261209 on
    // 85f10ea and on b4cbcad: the phone moved it after its folder was looked at so). One
    // scan of each such folder's rows, only for messages arriving in another folder.
    let unread: BTreeSet<&Identity> = wanted
        .iter()
        .filter(|identity| !kept.contains_key(**identity))
        .copied()
        .collect();
    if !unread.is_empty() {
        let mut partly: Vec<(store::FolderId, &str, Option<&Prepared>)> = prepared
            .iter()
            .filter(|p| p.narrowed.is_some() && !renumbered(&p.plan))
            .map(|p| (p.folder.id, p.wire.as_str(), Some(p)))
            .collect();
        partly.extend(
            unchanged
                .iter()
                .map(|(id, wire)| (*id, wire.as_str(), None)),
        );
        for (folder, wire, p) in partly {
            let ids: BTreeSet<&crate::sync::MessageId> = arrivals
                .iter()
                .filter(|(i, _, identity)| {
                    prepared[*i].folder.id != folder && unread.contains(identity)
                })
                .map(|(_, _, (id, _))| id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let ids: Vec<crate::sync::MessageId> = ids.into_iter().cloned().collect();
            for pair in store.pairs_with_message_ids(folder, ids).await? {
                let Some(id) = pair.message_id.clone() else {
                    continue;
                };
                let identity = (id, pair.remote_size);
                let read = p.is_some_and(|p| p.base.pairs.contains_key(&pair.uid));
                if !read && unread.contains(&identity) {
                    kept.entry(identity)
                        .or_default()
                        .push((folder, wire, pair.uid));
                }
            }
        }
    }
    // A pass over some folders only (a daemon's, for the folders that changed) does not
    // look at the others at all: the folder a message arriving here left may be one of
    // them, its change not reported yet (the soak's duplicate, seed 20261205 in CI on
    // d13caf0: NOTIFY named the destination first, and the pass over it downloaded the
    // message beside the file still paired in its source, which the client then moved).
    // Where the state pairs it elsewhere (`pairs_by_message_id`), that folder is asked.
    let mut wires: BTreeMap<store::FolderId, String> = BTreeMap::new();
    if let Some(server) = outside {
        let unread: Vec<crate::sync::MessageId> = wanted
            .iter()
            .filter(|identity| !kept.contains_key(**identity))
            .map(|(id, _)| id.clone())
            .collect();
        let seen: BTreeSet<store::FolderId> = prepared
            .iter()
            .map(|p| p.folder.id)
            .chain(unchanged.iter().map(|(id, _)| *id))
            .collect();
        let found: Vec<(store::FolderId, sync::Pair)> = store
            .pairs_with_message_ids_anywhere(unread)
            .await?
            .into_iter()
            .filter(|(folder, _)| !seen.contains(folder))
            .collect();
        if !found.is_empty() {
            let listed: BTreeMap<&FolderName, &String> =
                server.iter().map(|(name, wire)| (name, wire)).collect();
            for f in store.folders().await? {
                if let Some(wire) = listed.get(&f.server_name) {
                    wires.insert(f.id, (*wire).clone());
                }
            }
        }
        let inside: BTreeSet<Identity> = kept.keys().cloned().collect();
        for (folder, pair) in found {
            let (Some(id), Some(wire)) = (pair.message_id.clone(), wires.get(&folder)) else {
                continue;
            };
            let identity = (id, pair.remote_size);
            if wanted.contains(&identity) && !inside.contains(&identity) {
                kept.entry(identity)
                    .or_default()
                    .push((folder, wire.as_str(), pair.uid));
            }
        }
    }
    let mut deferred: Vec<(usize, crate::model::Uid)> = Vec::new();
    let mut sources = BTreeSet::new();
    for (i, uid, identity) in &arrivals {
        let Some(&[(folder, wire, kept_uid)]) = kept.get(identity).map(Vec::as_slice) else {
            continue;
        };
        if prepared[*i].folder.id == folder {
            continue;
        }
        session.select(wire, None).await?;
        if !session.present(&[kept_uid]).await?.is_empty() {
            continue;
        }
        tracing::debug!(
            folder = %prepared[*i].name,
            "UID {uid} arrived while UID {kept_uid} of {wire}, the same message, left it: moved mid-pass; the next pass moves it",
        );
        deferred.push((*i, *uid));
        sources.insert(wire.to_owned());
    }
    for (i, uid) in deferred {
        sync::defer_download(&mut prepared[i].plan, uid);
        prepared[i].deferred_uids.insert(uid);
    }
    Ok(sources)
}

/// Moves whose other end the relisted pass still does not see: the other device moved
/// the message (or the mail client the file) again, into a folder made after the relist
/// (the soak's duplicates, seed 20261209 on b4cbcad and 27a2a15). Taking the pair as
/// deleted on one side and moved on the other would copy the message back: one too many
/// if it was a move. So the first time, nothing is done with it: the pair stays (its
/// folder's HIGHESTMODSEQ with it, so the server's side is reported again), the upload or
/// download waits, and the next pass, over a fresh listing, sees both ends. A pair that
/// waited once already was deleted there and moved here, and is taken as such (the
/// state remembers the wait until its pair changes, so a one-shot sync that runs again
/// gets there too). Returns the waits to record once the pass applies.
async fn wait_for_unseen_moves(
    store: &Store,
    prepared: &mut [Prepared],
    unseen: &[sync::Unseen],
) -> Result<Vec<(store::FolderId, crate::model::Uid)>, EngineError> {
    let pairs: Vec<(store::FolderId, crate::model::Uid)> = unseen
        .iter()
        .map(|u| (prepared[u.from].folder.id, u.uid))
        .collect();
    let waited = store.waited(store::Wait::Move, pairs.clone()).await?;
    let mut waits = Vec::new();
    for (u, pair) in unseen.iter().zip(pairs) {
        if waited.contains(&pair) {
            tracing::debug!(
                folder = %prepared[u.from].name,
                "{}: gone there, moved here, and still where no pass looked after waiting once: taken as deleted there and moved here",
                u.key
            );
            continue;
        }
        tracing::debug!(
            folder = %prepared[u.from].name,
            "{}: moved where the pass did not look, after the relist too; the next pass looks again",
            u.key
        );
        sync::keep_pair(&mut prepared[u.from].plan, u.uid, &u.key);
        prepared[u.from].kept.insert(u.uid);
        let to = &mut prepared[u.to];
        match u.download {
            None => {
                sync::defer_arrival(&mut to.plan, &u.key);
                to.deferred.insert(u.key.clone());
            }
            Some(uid) => {
                sync::defer_download(&mut to.plan, uid);
                to.deferred_uids.insert(uid);
            }
        }
        waits.push(pair);
    }
    Ok(waits)
}

/// Pairs gone from both sides of their folder whose message this pass saw arrive nowhere
/// ([`sync::gone_unseen`]): deleted on both sides, or moved on both while the pass was
/// between the folders they went to (observed before) and theirs (observed after): the
/// soak's duplicate, seed 20261209 on d13caf0, where forgetting the pair left the next
/// pass an upload and a download. The first time, such a pair stays (its folder is
/// passed again, which a daemon widens to every folder: something leaves it), and that
/// pass sees the moves, if any. A pair that waited once already is forgotten. (A pair
/// with one end seen, `unseen`, is `wait_for_unseen_moves`'s.) Returns the waits to
/// record once the pass applies.
async fn wait_for_gone_pairs(
    store: &Store,
    prepared: &mut [Prepared],
    unseen: &[sync::Unseen],
) -> Result<Vec<(store::FolderId, crate::model::Uid)>, EngineError> {
    let half_seen: BTreeSet<(usize, crate::model::Uid)> =
        unseen.iter().map(|u| (u.from, u.uid)).collect();
    let mut gone = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        // (One being renumbered re-pairs. One held by rule 7 still applies its other
        // actions, a Forget among them, and its HIGHESTMODSEQ is held anyway.)
        if renumbered(&p.plan) {
            continue;
        }
        gone.extend(
            sync::gone_unseen(&p.plan, &p.base)
                .into_iter()
                .filter(|(uid, _)| !half_seen.contains(&(i, *uid)))
                .map(|(uid, key)| (i, uid, key)),
        );
    }
    let pairs: Vec<(store::FolderId, crate::model::Uid)> = gone
        .iter()
        .map(|(i, uid, _)| (prepared[*i].folder.id, *uid))
        .collect();
    let waited = store.waited(store::Wait::Gone, pairs.clone()).await?;
    let mut waits = Vec::new();
    for ((i, uid, key), pair) in gone.into_iter().zip(pairs) {
        if waited.contains(&pair) {
            continue;
        }
        let p = &mut prepared[i];
        tracing::debug!(
            folder = %p.name,
            "{key}: gone from both sides, arrived nowhere this pass saw; the next pass looks again",
        );
        sync::keep_pair(&mut p.plan, uid, &key);
        p.kept.insert(uid);
        waits.push(pair);
    }
    Ok(waits)
}

/// Files of pairs that left both sides of their folder while their message arrives on the
/// server in another, found in a folder no pass looks at: one the server no longer has
/// that the state still knows, which rule 9 keeps locally while it holds mail. The mail
/// client moved the file there while another device moved the server copy (the soak's
/// duplicate, seed 20261209 on 71c9f28): the file follows the server
/// ([`sync::Move::Diverged`]). Looks only when such pairs exist.
async fn held_files(
    store: &Store,
    settings: &ImapSettings,
    map: &FolderMap,
    server: &[(FolderName, String)],
    prepared: &[Prepared],
) -> Result<BTreeMap<MaildirKey, FolderName>, EngineError> {
    let wanted = sync::unseen_keys(&sync::moved_out_of_sight(
        prepared
            .iter()
            .map(|p| (&p.plan, &p.base, &p.remote.snapshot)),
    ));
    let mut found = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let on_server: BTreeSet<&FolderName> = server.iter().map(|(n, _)| n).collect();
    let mut twice = BTreeSet::new();
    for folder in store.folders().await? {
        // Not a folder the user excluded from syncing: only one the server deleted.
        if on_server.contains(&folder.server_name)
            || !settings.selects(map, &folder.server_name.0)
            || !folder.local_path.is_dir()
        {
            continue;
        }
        let md = maildir::Maildir::open(&folder.local_path)
            .map_err(LocalError::io(&folder.local_path))?;
        let scan = md.scan().map_err(LocalError::io(&folder.local_path))?;
        for key in wanted.iter().filter(|k| scan.messages.contains_key(*k)) {
            if found
                .insert(key.clone(), folder.server_name.clone())
                .is_some()
            {
                twice.insert(key.clone());
            }
        }
    }
    // In two of them: not one move to follow.
    found.retain(|k, _| !twice.contains(k));
    Ok(found)
}

/// The plan re-pairs its folder after a UIDVALIDITY change, or halts for one (rule 13).
fn renumbered(plan: &sync::Plan) -> bool {
    matches!(plan.halt, Some(sync::Halt::UidValidity { .. }))
        || plan
            .actions
            .iter()
            .any(|a| matches!(a, sync::Action::RepairUids(_)))
}

/// The files each folder's plan uploads as new messages, with their folder.
fn arrivals(prepared: &[Prepared]) -> Vec<(store::FolderId, MaildirKey)> {
    prepared
        .iter()
        .flat_map(|p| {
            sync::arrivals(&p.plan)
                .into_iter()
                .map(|k| (p.folder.id, k.clone()))
        })
        .collect()
}

/// A folder renumbered (rule 13) while another device moved a message out of it halts
/// when that unconfirmed pair is too large a share (one of two, in the soak's small
/// folders: seed 20261205 on 71c9f28), and `--confirm-repair` then kept the file
/// local-only beside the moved copy downloaded into its new folder: two copies. A pair
/// whose message arrives in exactly one other folder this pass, and in no other pair's
/// place, is moved out, not unconfirmed: the folder is planned again knowing that
/// (`Policy::moved_out`), and [`moves_out_of_renumbered`] makes the moves.
fn replan_renumbered_with_moves_out(prepared: &mut [Prepared]) {
    type Identity = (crate::sync::MessageId, u64);
    let halted = |p: &Prepared| {
        matches!(
            p.plan.halt,
            Some(sync::Halt::UidValidity {
                confirm_command: Some(_),
                ..
            })
        )
    };
    let mut absent: BTreeMap<Identity, usize> = BTreeMap::new();
    for p in prepared.iter().filter(|p| renumbered(&p.plan)) {
        for pair in sync::absent_from_listing(&p.remote.snapshot, &p.local, &p.base) {
            if let Some(id) = &pair.message_id {
                *absent.entry((id.clone(), pair.remote_size)).or_default() += 1;
            }
        }
    }
    if !prepared.iter().any(halted) || absent.is_empty() {
        return;
    }
    let mut arrived: BTreeMap<Identity, usize> = BTreeMap::new();
    for p in prepared.iter().filter(|p| !renumbered(&p.plan)) {
        for (_, identity) in sync::new_downloads(&p.plan, &p.base, &p.remote.snapshot) {
            if absent.contains_key(&identity) {
                *arrived.entry(identity).or_default() += 1;
            }
        }
        // The same message leaving another folder could be the one that arrived: two
        // candidates for one arrival, no evidence for either.
        for pair in sync::leaving(&p.plan, &p.base) {
            if let Some(id) = &pair.message_id
                && let Some(n) = absent.get_mut(&(id.clone(), pair.remote_size))
            {
                *n += 1;
            }
        }
    }
    let moved: BTreeSet<Identity> = arrived
        .into_iter()
        .filter(|(identity, n)| *n == 1 && absent.get(identity) == Some(&1))
        .map(|(identity, _)| identity)
        .collect();
    if moved.is_empty() {
        return;
    }
    for p in prepared.iter_mut().filter(|p| halted(p)) {
        p.policy.moved_out = moved.clone();
        p.replan();
        tracing::debug!(
            folder = %p.name,
            halted = p.plan.halt.is_some(),
            "renumbered while messages moved out of it: planned again"
        );
    }
}

/// A re-pairing accepted on the evidence of messages moved out
/// ([`replan_renumbered_with_moves_out`]) whose moves were not all made (another move of
/// the pass took the arrival): without the move, that evidence is gone, and the file
/// would be kept local-only beside the moved copy without a word. The folder is planned
/// as before and halts (rule 13), naming the command that accepts the re-pairing.
fn halt_unmoved_repairs(prepared: &mut [Prepared]) {
    for p in prepared.iter_mut() {
        if p.policy.moved_out.is_empty() {
            continue;
        }
        let unmoved = p.plan.actions.iter().any(|a| match a {
            sync::Action::RepairUids(repair) => p.base.pairs.values().any(|pair| {
                repair.unmatched.contains(&pair.key)
                    && p.local.messages.contains_key(&pair.key)
                    && pair.message_id.as_ref().is_some_and(|id| {
                        p.policy.moved_out.contains(&(id.clone(), pair.remote_size))
                    })
            }),
            _ => false,
        });
        if unmoved {
            p.policy.moved_out.clear();
            p.replan();
            tracing::debug!(folder = %p.name, "a message counted as moved out was not moved: the re-pairing waits for a human");
        }
    }
}

/// A message another device moved out of a folder that is being renumbered: the
/// re-pairing cannot confirm its pair (it is gone from the folder's new listing) and
/// would keep the file there, local-only, while the moved copy is downloaded into its new
/// folder: two copies (soak, seed 20261207). An unconfirmed pair whose Message-ID and
/// size arrive in exactly one other folder this pass is a move: the file follows it.
fn moves_out_of_renumbered(prepared: &mut [Prepared]) -> Vec<sync::Move> {
    type Identity = (crate::sync::MessageId, u64);
    let mut unconfirmed: BTreeMap<Identity, Vec<(usize, crate::sync::Pair)>> = BTreeMap::new();
    for (i, p) in prepared.iter().enumerate() {
        for a in &p.plan.actions {
            let sync::Action::RepairUids(repair) = a else {
                continue;
            };
            for pair in p.base.pairs.values() {
                if let Some(id) = &pair.message_id
                    && repair.unmatched.contains(&pair.key)
                    && p.local.messages.contains_key(&pair.key)
                {
                    unconfirmed
                        .entry((id.clone(), pair.remote_size))
                        .or_default()
                        .push((i, pair.clone()));
                }
            }
        }
    }
    if unconfirmed.is_empty() {
        return Vec::new();
    }
    let mut arrived: BTreeMap<Identity, Vec<(usize, crate::model::Uid)>> = BTreeMap::new();
    for (j, p) in prepared.iter().enumerate() {
        if renumbered(&p.plan) {
            continue;
        }
        for (uid, identity) in sync::new_downloads(&p.plan, &p.base, &p.remote.snapshot) {
            if unconfirmed.contains_key(&identity) {
                arrived.entry(identity).or_default().push((j, uid));
            }
        }
    }
    let mut moves = Vec::new();
    for (identity, to) in arrived {
        let (Some([(i, pair)]), [(j, uid)]) =
            (unconfirmed.get(&identity).map(Vec::as_slice), to.as_slice())
        else {
            continue;
        };
        let (i, j, uid) = (*i, *j, *uid);
        sync::defer_download(&mut prepared[j].plan, uid);
        for a in prepared[i].plan.actions.iter_mut() {
            if let sync::Action::RepairUids(repair) = a {
                repair.unmatched.remove(&pair.key);
            }
        }
        moves.push(sync::Move::Local {
            from: prepared[i].name.clone(),
            to: prepared[j].name.clone(),
            pair: pair.clone(),
            uid,
        });
    }
    moves
}
