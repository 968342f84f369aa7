//! One folder within a pass: observe both sides and plan, run the moves that touch it,
//! apply its plan under the intent journal, and move its watermarks only once the whole
//! plan committed (rule 4).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::ImapSettings;
use crate::imap::ImapSession;
use crate::maildir::{self, FolderMap, Maildir, NamesDigest, Stamp, utf7};
use crate::model::{Flags, FolderName, MaildirKey, Uid};
use crate::store::{self, Commit, Store, Watermarks};
use crate::sync::{self, ChangeKind, Halt, Policy, Side};

use super::account::now;
use super::adopt;
use super::apply;
use super::error::{EngineError, FolderFailure, LocalError};
use super::moves;
use super::observe::{self, Unchanged};
use super::report::{AccountReport, PassScope, SyncOptions, change_record, conflict_record};

/// What every folder of one account pass shares.
pub(super) struct Ctx<'a> {
    pub(super) store: &'a Store,
    pub(super) map: &'a FolderMap,
    pub(super) settings: &'a ImapSettings,
    pub(super) policy: &'a Policy,
    pub(super) opts: &'a SyncOptions,
    pub(super) scope: &'a PassScope,
    /// The server identities the pass's folder runs are downloading.
    pub(super) claims: &'a super::identity::Claims,
    /// The folders the pass found unchanged, which it reads nothing of: their pairs are
    /// in the state alone (see `defer_raced_downloads`).
    pub(super) unchanged: &'a std::sync::Mutex<Vec<(store::FolderId, String)>>,
    /// The folders' stamps still to be recorded (see [`Ctx::stamp`]).
    pub(super) stamps: &'a std::sync::Mutex<Vec<tokio::task::JoinHandle<Result<(), EngineError>>>>,
}

pub(super) fn end(p: &Prepared) -> moves::End<'_> {
    moves::End {
        folder: p.folder.id,
        wire: &p.wire,
        md: &p.md,
    }
}

/// One folder observed and planned, waiting for the moves to run.
pub(super) struct Prepared {
    pub(super) name: FolderName,
    pub(super) wire: String,
    pub(super) folder: store::FolderState,
    pub(super) base: sync::Base,
    pub(super) md: Maildir,
    pub(super) scan: maildir::LocalScan,
    pub(super) local: sync::LocalSnapshot,
    pub(super) remote: observe::RemoteObservation,
    pub(super) plan: sync::Plan,
    /// The Maildir stamp around a stable scan, if it held still (stored form).
    pub(super) stamp: Option<String>,
    /// The account's policy as it applies to this folder ([`Ctx::policy_for`]).
    pub(super) policy: Policy,
    /// Planned from the changed pairs alone, trusting the stamp (see [`Ctx::narrow`]).
    pub(super) narrowed: Option<Narrowed>,
    /// Files whose upload waits for the next pass: they left another folder after this
    /// pass observed it (see `pass::defer_raced_arrivals`). The folder is not in sync.
    pub(super) deferred: BTreeSet<MaildirKey>,
    /// Server messages whose download waits for the next pass: they left another folder
    /// after this pass observed it (see `pass::defer_raced_downloads`). The watermarks
    /// stay below them, so the next listing reports them again.
    pub(super) deferred_uids: BTreeSet<Uid>,
    /// Pairs gone from both sides that stay for the next pass: their move is still
    /// unseen (see `pass::wait_for_unseen_moves` and `pass::wait_for_gone_pairs`).
    /// HIGHESTMODSEQ stays, so the next listing reports their server side again.
    pub(super) kept: BTreeSet<Uid>,
}

impl Prepared {
    /// Plan the folder again from what was observed, with its policy as it is now.
    pub(super) fn replan(&mut self) {
        self.plan = sync::plan(
            &self.remote.snapshot,
            &self.local,
            &self.base,
            &self.policy,
            now(),
        );
    }
}

/// `[Gmail]/` for `[Gmail]/All Mail` (`[Google Mail]/` where Gmail is Google Mail):
/// where the Trash beside it is.
pub(super) fn gmail_all_mail_root(folder: &str) -> Option<&str> {
    ["[Gmail]/All Mail", "[Google Mail]/All Mail"]
        .contains(&folder)
        .then(|| folder.trim_end_matches("All Mail"))
}

/// A folder planned from only the pairs the server reported changed, their files found
/// by name, because the Maildir's stamp said nothing changed locally.
pub(super) struct Narrowed {
    /// The digest of the folder's names without those pairs' files (`None`: the stored
    /// stamp had no digest), from which the digest after the pass is worked out.
    rest: Option<NamesDigest>,
}

impl Ctx<'_> {
    /// Record a folder's outcome for `syncmail status` (not for a dry run).
    pub(super) async fn record(
        &self,
        folder: &FolderName,
        error: Option<&str>,
    ) -> Result<(), EngineError> {
        if !self.opts.dry_run {
            self.store
                .record_pass(
                    Some(folder.clone()),
                    SystemTime::now(),
                    error.map(str::to_owned),
                )
                .await?;
        }
        Ok(())
    }

    /// Observe both sides of a folder and plan it. `None`: nothing to run (halted,
    /// missing Maildir, or a dry run of a folder not made yet); the report says why.
    pub(super) async fn prepare(
        &self,
        session: &mut ImapSession,
        name: &FolderName,
        wire: &str,
        report: &mut AccountReport,
    ) -> Result<Option<Prepared>, EngineError> {
        let local_path = self.map.to_local(name)?;
        let mut folder = self.store.ensure_folder(name, &local_path).await?;
        if self.named(name) && self.opts.restore && !self.opts.dry_run && !local_path.is_dir() {
            // The user asked for the folder back: forget its state, so this pass is its
            // first (the Maildir folder is made and every message fetched).
            tracing::info!(folder = %name, "restoring the missing Maildir folder from the server");
            self.store.delete_folder(folder.id).await?;
            folder = self.store.ensure_folder(name, &local_path).await?;
        }
        if let Some(reason) = &folder.halt_reason {
            if !(self.named(name) && self.opts.confirm_repair) {
                report.halts.push(format!("{name}: halted: {reason}"));
                return Ok(None);
            }
            // The user looked and lifts the halt: this pass plans the folder again, and a
            // re-pairing it still refuses halts it again with its reason.
            if !self.opts.dry_run {
                tracing::info!(folder = %name, "halt lifted by --confirm-repair (was: {reason})");
                self.store.set_halt(folder.id, None).await?;
            }
            folder.halt_reason = None;
        }
        let mut selected = None;
        if !self.opts.dry_run {
            match observe::unchanged(session, &folder, &local_path, wire).await? {
                Unchanged::Yes => {
                    report.counts.folders += 1;
                    self.unchanged
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((folder.id, wire.to_owned()));
                    return Ok(None);
                }
                Unchanged::No(s) => selected = s,
            }
        }
        if let Some(pre) = &selected
            && let Some(p) = self
                .narrow(session, name, wire, &folder, &local_path, pre)
                .await?
        {
            return Ok(Some(p));
        }
        let base = self.store.base(&folder).await?;
        if self.opts.dry_run && !local_path.join("cur").is_dir() {
            let empty = sync::LocalSnapshot {
                stable: true,
                ..Default::default()
            };
            let remote = observe::remote(session, wire, &base, None, false, false).await?;
            let plan = sync::plan(
                &remote.snapshot,
                &empty,
                &base,
                &self.policy_for(name),
                now(),
            );
            report.plans.push(format!(
                "{name}: would create {}\n{plan}",
                local_path.display()
            ));
            return Ok(None);
        }
        let Some(md) = self.maildir(name, &local_path, &base)? else {
            let account = &self.policy.account;
            report.halts.push(format!(
                "{name}: the Maildir folder {} is missing while {} messages are paired with it (unmounted disk?); nothing synced, nothing deleted. If you deleted it on purpose, `syncmail sync {account} --folder {:?} --confirm-delete` deletes its messages on the server too; `syncmail sync {account} --folder {:?} --restore` fetches them again instead",
                local_path.display(),
                base.pairs.len(),
                name.0,
                name.0
            ));
            return Ok(None);
        };
        let (scan, stamp) = observe::scan(&md, &base)?;
        for dup in &scan.duplicates {
            report.errors.push(FolderFailure::in_folder(name, format!(
                "{name}: {} files share the key {}; that message is left alone until one is removed",
                dup.copies.len(),
                dup.key
            )));
        }
        let local = observe::local(&scan);
        let started = std::time::Instant::now();
        let pairing = adopt::may_pair(&base, &scan);
        // A first listing in windows is fetched window by window: only where this pass
        // fetches at all.
        let windowed = !self.opts.dry_run && self.policy_for(name).direction.fetches();
        let remote = observe::remote(session, wire, &base, selected, pairing, windowed).await?;
        let observed = started.elapsed();
        let base = if pairing && adopt::is_first_contact(&base, &remote.snapshot, &scan) {
            let local_name = local_path
                .strip_prefix(&self.map.root)
                .unwrap_or(&local_path)
                .to_string_lossy()
                .into_owned();
            let names = maildir::peers::FolderNames {
                local: &local_name,
                server: &name.0,
            };
            let adoption =
                adopt::first_contact(session, &md, &scan, &remote.snapshot, &base, &names).await?;
            self.adopted(name, &folder, &adoption, report).await?;
            sync::adopt::apply_adoption(&base, &adoption)
        } else {
            base
        };
        let policy = self.policy_for(name);
        let plan = sync::plan(&remote.snapshot, &local, &base, &policy, now());
        tracing::debug!(folder = %name, ?observed, planned = ?started.elapsed() - observed, actions = plan.actions.len(), "observed and planned");
        Ok(Some(Prepared {
            name: name.clone(),
            wire: wire.to_owned(),
            folder,
            base,
            md,
            scan,
            local,
            remote,
            plan,
            stamp,
            policy,
            narrowed: None,
            deferred: BTreeSet::new(),
            deferred_uids: BTreeSet::new(),
            kept: BTreeSet::new(),
        }))
    }

    /// Plan a folder from the pairs QRESYNC reported changed or vanished alone, when the
    /// Maildir's stamp (mtimes recorded past the timestamp granularity, after a pass that
    /// left the folder equal to the base) says nothing changed locally: a primary-key
    /// read and a `stat` per changed message instead of the whole base and a scan, so a
    /// pass costs what changed, not what the folder holds. `None` at any doubt (the stamp
    /// moved, a file is not under the name the base implies, deletions a guard would
    /// weigh against the whole folder, a plan that halts): the caller does a full pass.
    async fn narrow(
        &self,
        session: &mut ImapSession,
        name: &FolderName,
        wire: &str,
        folder: &store::FolderState,
        local_path: &Path,
        pre: &observe::Preselected,
    ) -> Result<Option<Prepared>, EngineError> {
        let s = &pre.selected;
        let Some(stored) = folder.local_stamp.as_deref().map(Stamp::parse) else {
            return Ok(None);
        };
        if !s.resynced
            || s.uidvalidity.is_none()
            || s.uidvalidity != folder.uidvalidity
            || s.vanished.len() >= sync::MASS_DELETE_FLOOR
        {
            return Ok(None);
        }
        let Ok(md) = Maildir::open(local_path) else {
            return Ok(None);
        };
        if !stored.holds(&md) {
            return Ok(None);
        }
        let uids: BTreeSet<Uid> = s.changed.keys().chain(&s.vanished).copied().collect();
        let base = self
            .store
            .base_of(folder, uids.into_iter().collect())
            .await?;
        let mut messages = BTreeMap::new();
        for pair in base.pairs.values() {
            match md
                .find(&pair.key, &pair.local_flags)
                .map_err(LocalError::io(md.path()))?
            {
                Some(m) => messages.insert(pair.key.clone(), m),
                None => {
                    tracing::debug!(folder = %name, key = %pair.key.0, "not under the name its pair implies; scanning");
                    return Ok(None);
                }
            };
        }
        // The files were found while the folder held still: they are as the base says.
        if !stored.holds(&md) {
            return Ok(None);
        }
        let scan = maildir::LocalScan {
            messages,
            stable: true,
            ..maildir::LocalScan::default()
        };
        let local = observe::local(&scan);
        let remote = observe::remote(session, wire, &base, Some(pre.clone()), false, false).await?;
        let policy = self.policy_for(name);
        let plan = sync::plan(&remote.snapshot, &local, &base, &policy, now());
        if plan.halt.is_some() || !plan.held.is_empty() {
            return Ok(None);
        }
        let rest = stored.digest.map(|mut d| {
            for p in base.pairs.values() {
                d.remove(&p.key, &p.local_flags);
            }
            d
        });
        tracing::debug!(folder = %name, pairs = base.pairs.len(), actions = plan.actions.len(), "planned from the changed pairs alone");
        Ok(Some(Prepared {
            name: name.clone(),
            wire: wire.to_owned(),
            folder: folder.clone(),
            base,
            md,
            scan,
            local,
            remote,
            plan,
            stamp: Some(stored.to_stored()),
            policy,
            narrowed: Some(Narrowed { rest }),
            deferred: BTreeSet::new(),
            deferred_uids: BTreeSet::new(),
            kept: BTreeSet::new(),
        }))
    }

    /// The account's policy as it applies to one folder. On Gmail (`provider = "gmail"`)
    /// a folder is a label, and a deletion there removes the label (an expunge in that
    /// folder); All Mail is every message, and a deletion there moves the message to
    /// the Trash, unless the user chose a `trash` for every folder.
    pub(super) fn policy_for(&self, name: &FolderName) -> Policy {
        let mut policy = self.policy.clone();
        if matches!(
            self.settings.provider,
            Some((crate::config::Provider::Gmail, _))
        ) && policy.trash.is_none()
            && let Some(root) = gmail_all_mail_root(&name.0)
        {
            policy.trash = Some(FolderName(format!("{root}Trash")));
        }
        policy
    }

    /// Make a first contact's pairs and holds the folder's base (not in a dry run), and
    /// tell the user what was found.
    async fn adopted(
        &self,
        name: &FolderName,
        folder: &store::FolderState,
        adoption: &sync::adopt::Adoption,
        report: &mut AccountReport,
    ) -> Result<(), EngineError> {
        if adoption.is_empty() {
            return Ok(());
        }
        let line = format!("{name}: first contact: {adoption}");
        tracing::debug!(folder = %name, "first contact: {adoption}");
        if self.opts.dry_run {
            report.plans.push(line);
            return Ok(());
        }
        self.store
            .commit(adopt::commit(folder.id, name, adoption))
            .await?;
        report.notes.push(line);
        let held = adoption.held_remote.len() + adoption.held_local.len();
        if held > 0 {
            report.notes.push(format!(
                "{name}: {held} messages held at first contact are not transferred until you decide: `syncmail status` lists them, `syncmail adopt ACCOUNT --transfer` copies them across, `--keep-apart` leaves them where they are"
            ));
        }
        Ok(())
    }

    pub(super) async fn run_move(
        &self,
        session: &mut ImapSession,
        prepared: &[Prepared],
        m: &sync::Move,
    ) -> Result<(), EngineError> {
        let find = |name: &FolderName| {
            prepared.iter().find(|p| &p.name == name).ok_or_else(|| {
                LocalError::Unexpected(format!("move names an unplanned folder {name}"))
            })
        };
        match m {
            sync::Move::OnServer { from, to, pair } => {
                let (f, t) = (find(from)?, find(to)?);
                moves::on_server(session, self.store, &end(f), &end(t), pair).await
            }
            sync::Move::Local {
                from,
                to,
                pair,
                uid,
            } => {
                let (f, t) = (find(from)?, find(to)?);
                let file = f.scan.messages.get(&pair.key);
                moves::locally(self.store, &end(f), &end(t), pair, *uid, file).await
            }
            sync::Move::Both {
                from,
                to,
                pair,
                uid,
            } => {
                let (f, t) = (find(from)?, find(to)?);
                moves::repair_moved(self.store, f.folder.id, t.folder.id, pair, *uid, None).await
            }
            sync::Move::Diverged {
                from,
                local_to,
                to,
                pair,
                uid,
            } => {
                let (f, t) = (find(from)?, find(to)?);
                tracing::info!(
                    message_id = ?pair.message_id,
                    "moved to {local_to} locally and to {to} on the server: the file follows the server"
                );
                // A folder no pass looks at (one the server deleted, kept by rule 9) has
                // no observation: its Maildir is opened here, and scanned for the file.
                let held;
                let (via, file) = match find(local_to) {
                    Ok(via) => (&via.md, via.scan.messages.get(&pair.key)),
                    Err(e) => {
                        let path = match self.store.folder(local_to).await? {
                            Some(folder) => folder.local_path,
                            None => return Err(e.into()),
                        };
                        held = Maildir::open(&path).map_err(LocalError::io(&path))?;
                        (&held, None)
                    }
                };
                // No journal: a crash after the rename leaves the file and the server
                // copy both new in `to`, which the next pass re-pairs (`Move::Both`).
                if !moves::rename_into(via, &t.md, &pair.key, file)? {
                    return Err(moves::neither(&pair.key));
                }
                moves::repair_moved(self.store, f.folder.id, t.folder.id, pair, *uid, None).await
            }
        }
    }

    /// Run one folder's plan and commit its watermarks (rule 4).
    pub(super) async fn apply(
        &self,
        session: &mut ImapSession,
        p: Prepared,
        moved: bool,
        report: &mut AccountReport,
    ) -> Result<(), EngineError> {
        let Prepared {
            name,
            wire,
            folder,
            base,
            md,
            scan,
            remote,
            plan,
            stamp,
            policy,
            narrowed,
            deferred,
            deferred_uids,
            kept,
            ..
        } = p;
        // (A kept pair's folder is not in sync this pass.)
        let kept_keys: Vec<MaildirKey> = kept
            .iter()
            .filter_map(|u| base.pairs.get(u).map(|p| p.key.clone()))
            .collect();
        let touches_local = moved || plan.actions.iter().any(|a| a.touches_local());
        if let Some(halt) = &plan.halt {
            if let Halt::UidValidity { .. } = halt {
                self.store
                    .set_halt(folder.id, Some(halt.to_string()))
                    .await?;
            }
            report.halts.push(format!("{name}: {halt}"));
        }
        report.counts.conflicts += plan.conflicts.len();
        // Each conflict names its message by Message-ID too, from the base (before the
        // run takes the pairs over).
        let conflicts: Vec<store::ConflictRecord> = plan
            .conflicts
            .iter()
            .map(|c| {
                let pair = c.uid.and_then(|u| base.pairs.get(&u)).or_else(|| {
                    c.key
                        .as_ref()
                        .and_then(|k| base.pairs.values().find(|p| &p.key == k))
                });
                conflict_record(&name, c, pair.and_then(|p| p.message_id.as_ref()))
            })
            .collect();
        let mut uidnext = remote.uidnext;
        if plan
            .actions
            .iter()
            .any(|a| a.touches_server() || matches!(a, sync::Action::Fetch { .. }))
        {
            // Moves and other folders' passes selected other folders meanwhile.
            let selected = session.select(&wire, None).await?;
            uidnext = uidnext.max(selected.uidnext.unwrap_or(uidnext));
        }
        let trash_wire = policy.trash.as_ref().map(|t| utf7::encode(&t.0));
        let mut counts = report.counts;
        let mut run = apply::FolderRun::new(
            session,
            self.store,
            &md,
            &folder,
            &wire,
            trash_wire,
            &remote.snapshot,
            uidnext,
            &mut counts,
            self.opts.progress.clone(),
            // Pairs a move just rewrote are read back, not taken from the stale base.
            if moved {
                self.store
                    .pairs(folder.id)
                    .await?
                    .into_iter()
                    .map(|p| (p.uid, p))
                    .collect()
            } else {
                base.pairs
            },
            scan.messages,
        );
        run.stop = self.scope.stop.clone();
        run.claims = Some(self.claims.clone());
        run.failed_keys.extend(deferred);
        run.failed_keys.extend(kept_keys);
        // A server deletion carried to the Maildir is logged in the same commit that
        // removes its pair: a kill between that commit and the pass's last one must not
        // leave a deletion syncmail made without its record (the CI soak, seed 20261205).
        run.deletions = plan
            .changes
            .iter()
            .filter(|c| c.side == Side::Server && c.kind == ChangeKind::Deleted)
            .filter_map(|c| Some((c.key.clone()?, c.clone())))
            .collect();
        run.local_deletions = plan
            .changes
            .iter()
            .filter(|c| c.side == Side::Local && c.kind == ChangeKind::Deleted)
            .filter_map(|c| Some((c.uid?, c.clone())))
            .collect();
        let started = std::time::Instant::now();
        let mut failed = None;
        for action in &plan.actions {
            if self.scope.stopped() {
                failed = Some(EngineError::Stopped);
                break;
            }
            if let Err(e) = run.run(action).await {
                failed = Some(e);
                break;
            }
        }
        if failed.is_none()
            && plan.halt.is_none()
            && let Some(rest) = remote.rest
            && let Err(e) = run.fetch_rest(rest).await
        {
            failed = Some(e);
        }
        if let Some(e) = failed {
            // What ran before the failure is committed: the summary counts it.
            drop(run);
            report.counts = counts;
            return Err(e);
        }
        tracing::debug!(folder = %name, applied = ?started.elapsed(), "applied");
        // Watermarks move only now that the whole pass committed (rule 4). While a guard
        // holds deletions back, HIGHESTMODSEQ stays, so QRESYNC reports them again. So it
        // does after a move into or out of the folder: a moved pair carries its source's
        // base flags, and a flag changed on the server before the move (soak, issue 20)
        // is merged only if the next listing reports the moved message again.
        let holding = plan.halt.is_some()
            || moved
            || !deferred_uids.is_empty()
            || !kept.is_empty()
            || run.moved_away;
        let below_deferred = |u: Uid| deferred_uids.first().is_none_or(|d| u < *d);
        let last = Commit {
            watermarks: (!matches!(plan.halt, Some(Halt::UidValidity { .. }))).then(|| {
                Watermarks {
                    uidvalidity: Some(remote.snapshot.uid_validity),
                    highestmodseq: remote.snapshot.highest_modseq.filter(|_| !holding),
                    uidnext: Some(remote.uidnext).filter(|_| deferred_uids.is_empty()),
                    highest_uid_pulled: run
                        .highest_pulled
                        .filter(|u| *u > folder.highest_uid_pulled && below_deferred(*u)),
                    // Untouched by this pass and equal to the base: the scan's stamp
                    // stands for the folder. Otherwise forget it; verified below.
                    local_stamp: Some(stamp.filter(|_| {
                        !touches_local && plan.halt.is_none() && plan.held.is_empty() && run.clean()
                    })),
                }
            }),
            changes: plan
                .changes
                .iter()
                // (A deletion the run logged with its unlink, or with its expunge, is no
                // longer in `deletions`, or `local_deletions`.)
                .filter(|c| {
                    !(c.side == Side::Server
                        && c.kind == ChangeKind::Deleted
                        && c.key
                            .as_ref()
                            .is_some_and(|k| !run.deletions.contains_key(k)))
                })
                .filter(|c| {
                    !(c.side == Side::Local
                        && c.kind == ChangeKind::Deleted
                        && c.uid.is_some_and(|u| !run.local_deletions.contains_key(&u)))
                })
                .map(|c| change_record(&name, c))
                .collect(),
            conflicts,
            ..Commit::default()
        };
        let keeps_one_sided = plan.actions.iter().any(|a| {
            matches!(
                a,
                sync::Action::KeepLocalOnly { .. } | sync::Action::DropLocalOnly { .. }
            )
        });
        let clean = run.clean() && plan.halt.is_none() && plan.held.is_empty() && !keeps_one_sided;
        let finished = run.finish(last).await;
        let final_pairs = std::mem::take(&mut run.pairs);
        let delivered = run.delivered;
        drop(run);
        report.counts = counts;
        finished?;
        if touches_local && clean {
            let check = match narrowed {
                Some(n) if !moved => StampCheck::Narrowed(n),
                _ => StampCheck::Full(base.local_only),
            };
            self.stamp(StampJob {
                store: self.store.clone(),
                folder,
                md,
                pairs: final_pairs,
                delivered,
                check,
            })
            .await?;
        }
        Ok(())
    }

    /// Record a folder's stamp after a pass changed it, once its last write is older
    /// than the timestamp granularity: now if it is, else in the background, which the
    /// pass waits for at its end. A first sync of many folders no longer waits the
    /// granularity out for each in turn (100 folders: 5 s of sleep).
    async fn stamp(&self, job: StampJob) -> Result<(), EngineError> {
        let wait = job.md.settling();
        if wait.is_zero() {
            return job.run().await;
        }
        let task = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            job.run().await
        });
        self.stamps.lock().expect("stamp tasks").push(task);
        Ok(())
    }

    /// The user named this folder with `--folder`.
    fn named(&self, name: &FolderName) -> bool {
        self.opts.folder.as_deref() == Some(name.0.as_str())
    }

    /// The folder's Maildir, created if new. `None` when it is missing but the base pairs
    /// messages with it: an unmounted disk must never read as "all deleted" (rule 7).
    pub(super) fn maildir(
        &self,
        name: &FolderName,
        path: &Path,
        base: &sync::Base,
    ) -> Result<Option<Maildir>, EngineError> {
        if path.join("cur").is_dir() {
            return Maildir::open(path).map(Some).map_err(|e| {
                EngineError::Local(LocalError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            });
        }
        // Missing but paired: an unmounted disk must never read as "all deleted" (rule 7),
        // unless the user named this folder and confirmed the deletion, under an account
        // root that is there.
        let confirmed = self.named(name) && self.opts.confirm_delete && self.map.root.is_dir();
        if !base.pairs.is_empty() && !confirmed {
            return Ok(None);
        }
        let created: PathBuf = self.map.create(name)?;
        Maildir::open(&created).map(Some).map_err(|e| {
            EngineError::Local(LocalError::Io {
                path: created.to_path_buf(),
                source: e,
            })
        })
    }
}

/// The stamp of a Maildir folder a pass changed, to be recorded once the folder's last
/// write is older than the timestamp granularity ([`Maildir::settling`]).
pub(super) struct StampJob {
    store: Store,
    folder: store::FolderState,
    md: Maildir,
    /// The folder's pairs as the pass committed them.
    pairs: BTreeMap<Uid, sync::Pair>,
    /// The files the run delivered, by their sum.
    delivered: (NamesDigest, usize),
    check: StampCheck,
}

/// How the folder's names are checked against what the pass committed.
enum StampCheck {
    /// After a narrowed pass: the rest of the folder, by its sum, plus the changed pairs.
    Narrowed(Narrowed),
    /// After a pass that scanned: every pair and these local-only messages.
    Full(BTreeSet<MaildirKey>),
}

impl StampJob {
    pub(super) async fn run(self) -> Result<(), EngineError> {
        let stamp = match &self.check {
            StampCheck::Narrowed(n) => self.rearmed(n),
            StampCheck::Full(local_only) => self.recorded(local_only),
        };
        let Some(stamp) = stamp else {
            tracing::debug!(folder = %self.folder.server_name, "the Maildir is not what the pass left; the next pass scans it");
            return Ok(());
        };
        self.store
            .commit(Commit {
                folder: Some(self.folder.id),
                watermarks: Some(Watermarks {
                    local_stamp: Some(Some(stamp.to_stored())),
                    ..Watermarks::default()
                }),
                ..Commit::default()
            })
            .await?;
        Ok(())
    }

    /// After a narrowed pass: the names now must be the rest of the folder plus the
    /// changed pairs as committed. One read of the names (no `stat`, no base) checks the
    /// sum; equal, the new stamp stands for the folder, and the next pass trusts it
    /// again. Otherwise (a client changed something meanwhile, or the stamp had no
    /// digest) no stamp: the next pass scans.
    fn rearmed(&self, narrowed: &Narrowed) -> Option<Stamp> {
        let mut expected = narrowed.rest?;
        for p in self.pairs.values() {
            expected.add(&p.key, &p.local_flags);
        }
        expected.0 = expected.0.wrapping_add(self.delivered.0.0);
        match self.md.digest_with_stamp() {
            Ok(Some(now)) if now.digest == Some(expected) => Some(now),
            _ => None,
        }
    }

    /// After a pass that scanned: if the folder's names now show exactly the committed
    /// pairs (and local-only messages) plus the files the run delivered (known by their
    /// sum, not kept), its stamp stands for the folder, and the next pass can skip it
    /// while it stays untouched. The names are read one at a time, never all held.
    fn recorded(&self, local_only: &BTreeSet<MaildirKey>) -> Option<Stamp> {
        let expected: BTreeMap<&MaildirKey, Option<Flags>> = self
            .pairs
            .values()
            .map(|p| (&p.key, Some(p.local_flags.system_only())))
            .chain(local_only.iter().map(|k| (k, None)))
            .collect();
        let (mut seen, mut differs) = (0usize, false);
        let mut others = (NamesDigest::default(), 0usize);
        let mut digest = NamesDigest::default();
        let visited = self.md.visit_names(|key, flags| {
            digest.add(&key, &flags);
            match expected.get(&key) {
                Some(Some(f)) => {
                    seen += 1;
                    differs |= *f != flags.system_only();
                }
                Some(None) => seen += 1,
                None => {
                    others.0.add(&key, &flags);
                    others.1 += 1;
                }
            }
        });
        let stamp = visited.ok()??;
        (!differs && seen == expected.len() && others == self.delivered)
            .then(|| Stamp::new(stamp, Some(digest)))
    }
}
