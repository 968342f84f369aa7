//! The pure reconcile planner of the unified folder: the mapping (with each entry's base
//! flags) plus what a scan of each side showed in, ordered [`Action`]s and halts out.
//! No IO, like `crate::sync::plan`; `apply` carries the actions out.
//!
//! Deletions follow rules 6 and 7: a copy missing from a side counts as deleted only when
//! that side's scan was stable, never from a missing folder, and a source folder whose
//! reconcile would delete more than its share (or from an emptied side) is held back.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::{AccountName, Flag, Flags, FolderName, MaildirKey, MessageId};
use crate::sync::merge::{SideFlags, merge_flags};
use crate::sync::{Direction, MASS_DELETE_FLOOR};

/// Where a unified entry comes from: one folder of one account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub account: AccountName,
    pub folder: FolderName,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "account `{}` folder {}", self.account, self.folder)
    }
}

/// One mapping row: a file in the unified folder and the account file it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The unique part of the unified folder's file.
    pub unified: MaildirKey,
    pub source: Source,
    /// The unique part of the account's file.
    pub local_key: MaildirKey,
    /// The flags both copies had after the last reconcile: the three-way merge base.
    pub base: Flags,
}

/// What a scan of one Maildir folder showed, by unique part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub messages: BTreeMap<MaildirKey, Flags>,
    /// Keys found more than once: present, but not ours to touch until a human resolves
    /// them.
    pub ambiguous: BTreeSet<MaildirKey>,
    /// The scan was stable: a key it lacks is really gone (rule 6).
    pub complete: bool,
}

impl Snapshot {
    fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.ambiguous.is_empty()
    }
}

/// A file's identity: (device, inode). Two names with the same one are one file.
pub type FileId = (u64, u64);

/// One source folder as observed. `snapshot` is `None` when the folder is missing.
#[derive(Clone, Debug, Default)]
pub struct SourceView {
    pub snapshot: Option<Snapshot>,
    /// The account's `max_delete_share` (rule 7).
    pub max_delete_share: f64,
    /// Message-IDs of the account copies whose unified copy is gone: a stranger in the
    /// unified folder with the same Message-ID replaces the deleted one (an edit).
    pub message_ids: BTreeMap<MaildirKey, MessageId>,
    /// When there are strangers, the files (device, inode) of the account messages a
    /// stranger could be the unified copy of: those no entry maps (linked before a
    /// crash kept it from being recorded) and those whose unified copy is gone
    /// (renamed there).
    pub inodes: BTreeMap<MaildirKey, FileId>,
}

/// Everything the planner looks at besides the mapping.
#[derive(Clone, Debug)]
pub struct Observed {
    /// `None` when the unified folder is missing.
    pub unified: Option<Snapshot>,
    pub sources: BTreeMap<Source, SourceView>,
    /// The user confirmed deletions a guard held back (`--confirm-delete`).
    pub allow_mass_delete: bool,
    /// Message-IDs of the unified folder's strangers (files no entry maps).
    pub stranger_ids: BTreeMap<MaildirKey, MessageId>,
    /// The files (device, inode) of the unified folder's strangers.
    pub stranger_inodes: BTreeMap<MaildirKey, FileId>,
    /// Strangers whose file has other names too (a link count above one): some
    /// account's message, never a new file of the user's.
    pub stranger_shared: BTreeSet<MaildirKey>,
}

/// One step of a reconcile. Each names the mapping change it implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Rename the account's copy to carry `flags` (what a mail client does; the account's
    /// own pass carries it to the server).
    SetSourceFlags {
        unified: MaildirKey,
        source: Source,
        local_key: MaildirKey,
        flags: Flags,
    },
    /// Rename the unified copy to carry `flags`.
    SetUnifiedFlags { unified: MaildirKey, flags: Flags },
    /// Both copies carry `flags` now: it becomes the base. Committed only if every
    /// rename of this entry before it succeeded.
    RecordBase { unified: MaildirKey, flags: Flags },
    /// The user deleted the unified copy: delete the account's copy, then the entry.
    DeleteSource {
        unified: MaildirKey,
        source: Source,
        local_key: MaildirKey,
    },
    /// The account's copy is gone (expunged, moved): remove the unified copy, then the
    /// entry.
    RemoveUnified {
        unified: MaildirKey,
        source: Source,
        local_key: MaildirKey,
    },
    /// Both copies are gone: drop the entry.
    Forget { unified: MaildirKey },
    /// An account message with no entry: put it into the unified folder (a new unique
    /// part, these flags; in `new/` if the account copy is there) and add an entry.
    Link {
        source: Source,
        local_key: MaildirKey,
        flags: Flags,
    },
    /// The entry's unified copy was renamed to a new unique part (the same file): the
    /// entry takes the new name. Nothing changes on either side.
    Rekey { unified: MaildirKey, to: MaildirKey },
    /// A stranger in the unified folder replaces an account message deleted there in the
    /// same reconcile, by Message-ID: a mail client's in-place edit (a new file, the old
    /// one removed). Link it into the account (a new unique part, these flags) and add
    /// an entry; the account's pass uploads it, as after an edit in the account itself.
    Adopt {
        unified: MaildirKey,
        source: Source,
        flags: Flags,
        /// The account key of the message it replaces: that deletion waits for this.
        replaces: MaildirKey,
    },
    /// A stranger that is the same file (inode) as an unmapped account message: its
    /// entry, which a crash kept from being recorded. Record it; nothing to link.
    Claim {
        unified: MaildirKey,
        source: Source,
        local_key: MaildirKey,
        flags: Flags,
    },
}

impl Action {
    fn is_deletion(&self) -> bool {
        matches!(
            self,
            Action::DeleteSource { .. } | Action::RemoveUnified { .. }
        )
    }
}

/// Which copy a guard is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    Account,
    Unified,
}

/// Why (part of) a reconcile stopped instead of deleting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Halt {
    /// The unified folder is missing but has entries (unmounted? removed?).
    UnifiedMissing { entries: usize },
    /// A source folder is missing but has entries.
    SourceMissing { source: Source, entries: usize },
    /// Deletions of `copy` copies of `source` held back: the other side is empty.
    Emptied {
        source: Source,
        copy: Copy,
        count: usize,
    },
    /// More than the account's share of `source` would be deleted at once.
    MassDelete {
        source: Source,
        copy: Copy,
        count: usize,
        total: usize,
    },
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = |c: Copy| match c {
            Copy::Account => "messages in the account (and so on its server)",
            Copy::Unified => "entries of the unified folder",
        };
        const CONFIRM: &str =
            "if that is what you want, run `syncmail unified reconcile --confirm-delete`";
        match self {
            Halt::UnifiedMissing { entries } => write!(
                f,
                "the unified folder is missing but had {entries} entries (unmounted disk? removed?); nothing was deleted anywhere. To build it again run `syncmail unified rebuild`"
            ),
            Halt::SourceMissing { source, entries } => write!(
                f,
                "{source}: the Maildir folder is missing but {entries} unified entries come from it; nothing was deleted. They stay until it is back (or run `syncmail unified rebuild`)"
            ),
            Halt::Emptied {
                source,
                copy,
                count,
            } => write!(
                f,
                "{source}: held back deleting {count} {} because the other side is empty; {CONFIRM}",
                what(*copy)
            ),
            Halt::MassDelete {
                source,
                copy,
                count,
                total,
            } => write!(
                f,
                "{source}: held back deleting {count} of {total} {}, more than the account's max_delete_share; {CONFIRM}",
                what(*copy)
            ),
        }
    }
}

/// A reconcile's plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// In order: per source, flag renames and base updates, deletions, then links.
    pub actions: Vec<Action>,
    pub halts: Vec<Halt>,
    /// Deletions the halts held back.
    pub held: Vec<Action>,
    /// Files in the unified folder no entry maps (the user saved something there): left
    /// alone.
    pub strangers: Vec<MaildirKey>,
    /// Entries of sources no longer configured: left alone.
    pub orphans: usize,
    /// Account messages kept and shown again although deleted in the unified folder,
    /// because they were flagged in the account meanwhile (rule 11's default).
    pub kept: Vec<(Source, MaildirKey)>,
}

/// Plan one reconcile. Pure: the same inputs give the same plan.
pub fn plan(entries: &[Entry], observed: &Observed) -> Plan {
    let mut out = Plan::default();
    let Some(unified) = &observed.unified else {
        if !entries.is_empty() {
            out.halts.push(Halt::UnifiedMissing {
                entries: entries.len(),
            });
        }
        return out;
    };
    let mapped: BTreeSet<&MaildirKey> = entries.iter().map(|e| &e.unified).collect();
    let mut strangers: BTreeSet<MaildirKey> = unified
        .messages
        .keys()
        .chain(&unified.ambiguous)
        .filter(|k| !mapped.contains(k))
        .cloned()
        .collect();
    let mut by_source: BTreeMap<&Source, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_source.entry(&e.source).or_default().push(e);
    }
    out.orphans = by_source
        .iter()
        .filter(|(s, _)| !observed.sources.contains_key(**s))
        .map(|(_, es)| es.len())
        .sum();
    for (source, view) in &observed.sources {
        let mine = by_source.get(source).map_or(&[][..], Vec::as_slice);
        plan_source(
            source,
            view,
            mine,
            unified,
            observed,
            &mut strangers,
            &mut out,
        );
    }
    out.strangers = strangers.into_iter().collect();
    out
}

fn plan_source(
    source: &Source,
    view: &SourceView,
    entries: &[&Entry],
    unified: &Snapshot,
    observed: &Observed,
    strangers: &mut BTreeSet<MaildirKey>,
    out: &mut Plan,
) {
    let Some(account) = &view.snapshot else {
        if !entries.is_empty() {
            out.halts.push(Halt::SourceMissing {
                source: source.clone(),
                entries: entries.len(),
            });
        }
        return;
    };
    // A stranger that is the same file as one of this account's messages is that
    // message's unified copy, never something new: first of all, claim it.
    let same_file = |key: &MaildirKey, strangers: &BTreeSet<MaildirKey>| {
        let file = view.inodes.get(key)?;
        strangers
            .iter()
            .find(|s| observed.stranger_inodes.get(*s) == Some(file))
            .cloned()
    };
    let mut deletions = Vec::new();
    let mut relink: BTreeSet<&MaildirKey> = BTreeSet::new();
    for e in entries {
        if account.ambiguous.contains(&e.local_key) || unified.ambiguous.contains(&e.unified) {
            continue;
        }
        let mut ukey = &e.unified;
        let rekeyed;
        if !unified.messages.contains_key(&e.unified)
            && account.messages.contains_key(&e.local_key)
            && let Some(stranger) = same_file(&e.local_key, strangers)
        {
            // Renamed to a new unique part in the unified folder: the same file, so the
            // same entry under its new name; the account is not touched.
            strangers.remove(&stranger);
            out.actions.push(Action::Rekey {
                unified: e.unified.clone(),
                to: stranger.clone(),
            });
            rekeyed = stranger;
            ukey = &rekeyed;
        }
        match (
            account.messages.get(&e.local_key),
            unified.messages.get(ukey),
        ) {
            (Some(a), Some(u)) => {
                let merged = merge_flags(
                    SideFlags {
                        base: &e.base,
                        now: a,
                    },
                    SideFlags {
                        base: &e.base,
                        now: u,
                    },
                    false,
                    Direction::Both,
                );
                if &merged.remote != a {
                    out.actions.push(Action::SetSourceFlags {
                        unified: ukey.clone(),
                        source: source.clone(),
                        local_key: e.local_key.clone(),
                        flags: merged.remote.clone(),
                    });
                }
                if &merged.local != u {
                    out.actions.push(Action::SetUnifiedFlags {
                        unified: ukey.clone(),
                        flags: merged.local.clone(),
                    });
                }
                if merged.remote != e.base {
                    out.actions.push(Action::RecordBase {
                        unified: ukey.clone(),
                        flags: merged.remote,
                    });
                }
            }
            (Some(a), None) if unified.complete => {
                if a.contains(Flag::Flagged) && !e.base.contains(Flag::Flagged) {
                    // Flagged in the account since: keep it, show it again.
                    out.actions.push(Action::Forget {
                        unified: e.unified.clone(),
                    });
                    relink.insert(&e.local_key);
                    out.kept.push((source.clone(), e.local_key.clone()));
                } else {
                    deletions.push(Action::DeleteSource {
                        unified: e.unified.clone(),
                        source: source.clone(),
                        local_key: e.local_key.clone(),
                    });
                }
            }
            (None, Some(_)) if account.complete => deletions.push(Action::RemoveUnified {
                unified: e.unified.clone(),
                source: source.clone(),
                local_key: e.local_key.clone(),
            }),
            (None, None) if account.complete && unified.complete => {
                out.actions.push(Action::Forget {
                    unified: e.unified.clone(),
                })
            }
            // A side that was not seen completely: wait for a stable scan (rule 6).
            _ => {}
        }
    }
    let mapped: BTreeSet<&MaildirKey> = entries
        .iter()
        .map(|e| &e.local_key)
        .filter(|k| !relink.contains(k))
        .collect();
    let mut links = Vec::new();
    for (key, flags) in &account.messages {
        if mapped.contains(key) {
            continue;
        }
        match same_file(key, strangers) {
            Some(stranger) => {
                strangers.remove(&stranger);
                out.actions.push(Action::Claim {
                    unified: stranger,
                    source: source.clone(),
                    local_key: key.clone(),
                    flags: flags.clone(),
                });
            }
            None => links.push(Action::Link {
                source: source.clone(),
                local_key: key.clone(),
                flags: flags.clone(),
            }),
        }
    }
    let deleted: Vec<MaildirKey> = deletions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteSource { local_key, .. } => Some(local_key.clone()),
            _ => None,
        })
        .collect();
    let held = guard(
        source,
        view,
        entries.len(),
        account,
        unified,
        observed.allow_mass_delete,
        deletions,
        out,
    );
    // An edit in the unified folder: the old file deleted, a new one with the same
    // Message-ID beside it. It goes to the same account (only if the deletion does),
    // and only if it is a file of its own: a link (a crash left one for some account's
    // message) is that message's, claimed by its own source.
    if !held {
        for key in deleted {
            let Some(id) = view.message_ids.get(&key) else {
                continue;
            };
            let replacement = strangers
                .iter()
                .find(|s| {
                    observed.stranger_ids.get(*s) == Some(id)
                        && !observed.stranger_shared.contains(*s)
                })
                .cloned();
            if let Some(stranger) = replacement
                && let Some(flags) = unified.messages.get(&stranger)
            {
                strangers.remove(&stranger);
                out.actions.push(Action::Adopt {
                    unified: stranger,
                    source: source.clone(),
                    flags: flags.clone(),
                    replaces: key,
                });
            }
        }
    }
    out.actions.extend(links);
}

/// Rule 7: deletions from an emptied side, or more than the share, are held back.
/// Returns whether they were.
#[allow(clippy::too_many_arguments)]
fn guard(
    source: &Source,
    view: &SourceView,
    total: usize,
    account: &Snapshot,
    unified: &Snapshot,
    allow_mass_delete: bool,
    deletions: Vec<Action>,
    out: &mut Plan,
) -> bool {
    debug_assert!(deletions.iter().all(Action::is_deletion));
    let of_account = deletions
        .iter()
        .filter(|a| matches!(a, Action::DeleteSource { .. }))
        .count();
    let of_unified = deletions.len() - of_account;
    let too_many = |count: usize| {
        count >= MASS_DELETE_FLOOR && count as f64 > view.max_delete_share * total as f64
    };
    let source = source.clone();
    let halt = if allow_mass_delete {
        None
    } else if of_account > 0 && unified.is_empty() {
        Some(Halt::Emptied {
            source,
            copy: Copy::Account,
            count: of_account,
        })
    } else if of_unified > 0 && account.is_empty() {
        Some(Halt::Emptied {
            source,
            copy: Copy::Unified,
            count: of_unified,
        })
    } else if too_many(of_account) {
        Some(Halt::MassDelete {
            source,
            copy: Copy::Account,
            count: of_account,
            total,
        })
    } else if too_many(of_unified) {
        Some(Halt::MassDelete {
            source,
            copy: Copy::Unified,
            count: of_unified,
            total,
        })
    } else {
        None
    };
    match halt {
        Some(h) => {
            out.halts.push(h);
            out.held.extend(deletions);
            true
        }
        None => {
            out.actions.extend(deletions);
            false
        }
    }
}
