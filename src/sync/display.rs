//! The human rendering of a plan, as `syncmail sync --dry-run` prints it: one line per
//! step, then changes, conflicts and any halt, in the plan's deterministic order.

use std::fmt;

use crate::model::Flags;

use super::actions::{
    Action, Change, ChangeKind, Conflict, ConflictKind, Halt, Outcome, Plan, Resolution, Side,
};
use super::moves::Move;

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Server => "server",
            Side::Local => "maildir",
        })
    }
}

/// IMAP flag list: `(\Seen \Flagged work)`.
struct ImapList<'a>(&'a Flags);

impl fmt::Display for ImapList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({})", self.0.imap_names().join(" "))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::RepairUids(r) => write!(
                f,
                "re-pair {} message(s) from UIDVALIDITY {} to {}; {} kept local-only",
                r.map.len(),
                r.old,
                r.new,
                r.unmatched.len()
            ),
            Action::Unpair { uid, key } => write!(f, "unpair UID {uid} / {key}"),
            Action::KeepLocalOnly { key } => write!(f, "keep {key} in the maildir only"),
            Action::KeepRemoteOnly { uid } => write!(f, "keep UID {uid} on the server only"),
            Action::Fetch { uids } => write!(f, "fetch UID {uids} ({} message(s))", uids.len()),
            Action::Append { key, flags } => write!(f, "append {key} {}", ImapList(flags)),
            Action::StoreFlags {
                uids,
                add,
                remove,
                unchanged_since,
            } => {
                write!(f, "store UID {uids}")?;
                if let Some(m) = unchanged_since {
                    write!(f, " (UNCHANGEDSINCE {m})")?;
                }
                if !add.is_empty() {
                    write!(f, " +FLAGS.SILENT {}", ImapList(add))?;
                }
                if !remove.is_empty() {
                    write!(f, " -FLAGS.SILENT {}", ImapList(remove))?;
                }
                Ok(())
            }
            Action::SetLocalFlags { key, flags } => {
                write!(f, "rename {key} to :2,{}", flags.maildir_letters())
            }
            Action::RecordFlags { uid, remote, local } => {
                write!(f, "record UID {uid} flags server {remote} maildir {local}")
            }
            Action::MoveToTrash { uids, trash } => write!(f, "move UID {uids} to {trash}"),
            Action::DeleteOnServer { uids } => {
                write!(
                    f,
                    "delete UID {uids} on the server (\\Deleted + UID EXPUNGE)"
                )
            }
            Action::DeleteLocal { key } => write!(f, "delete {key} from the maildir"),
            Action::Forget { uid, key } => write!(f, "forget UID {uid} / {key} (gone on both)"),
            Action::DropLocalOnly { key } => write!(f, "forget local-only {key} (gone)"),
            Action::DropRemoteOnly { uid } => write!(f, "forget server-only UID {uid} (gone)"),
        }
    }
}

/// ` +FS -R`: only the non-empty halves.
struct Delta<'a>(&'a Flags, &'a Flags);

impl fmt::Display for Delta<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.is_empty() {
            write!(f, " +{}", self.0)?;
        }
        if !self.1.is_empty() {
            write!(f, " -{}", self.1)?;
        }
        Ok(())
    }
}

/// `UID 7 / key`, `UID 7`, or `key`, whichever identities are known.
struct Who<'a>(
    Option<crate::model::Uid>,
    Option<&'a crate::model::MaildirKey>,
);

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(uid), Some(key)) => write!(f, "UID {uid} / {key}"),
            (Some(uid), None) => write!(f, "UID {uid}"),
            (None, Some(key)) => write!(f, "{key}"),
            (None, None) => f.write_str("folder"),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.side, Who(self.uid, self.key.as_ref()))?;
        match &self.kind {
            ChangeKind::New => f.write_str("new")?,
            ChangeKind::Deleted => f.write_str("deleted")?,
            ChangeKind::Flags { added, removed } => write!(f, "flags{}", Delta(added, removed))?,
            ChangeKind::Content { base_size, size } => {
                write!(f, "content changed ({base_size} -> {size} bytes)")?
            }
        }
        match self.outcome {
            Outcome::Propagated => f.write_str(", propagated"),
            Outcome::AlreadyInSync => f.write_str(", already in sync"),
            Outcome::NotPropagated(why) => write!(f, ", not propagated: {why}"),
            Outcome::Conflict => f.write_str(", conflict"),
            Outcome::Moved => f.write_str(", moved between folders"),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", Who(self.uid, self.key.as_ref()))?;
        match &self.kind {
            ConflictKind::DeleteVsChange {
                deleted_on,
                added,
                removed,
                content_changed,
            } => {
                write!(
                    f,
                    "deleted on {deleted_on}, changed on {} (flags{}",
                    deleted_on.other(),
                    Delta(added, removed)
                )?;
                if *content_changed {
                    f.write_str(", content")?;
                }
                f.write_str(")")?;
            }
            ConflictKind::SetVsRemoved { flag, set_on } => {
                write!(f, "{flag} set on {set_on}, removed on {}", set_on.other())?
            }
            ConflictKind::ContentChangedLocally { base_size, size } => {
                write!(f, "maildir file changed ({base_size} -> {size} bytes)")?
            }
            ConflictKind::UidValidityChanged { old, new } => {
                write!(f, "UIDVALIDITY changed {old} -> {new}")?
            }
        }
        f.write_str(" => ")?;
        match &self.resolution {
            Resolution::DeletionWins => f.write_str("deletion wins"),
            Resolution::KeptAndRestored => f.write_str("kept and copied back"),
            Resolution::KeptOneSide => f.write_str("kept on the surviving side only"),
            Resolution::SetWins => f.write_str("set on both sides"),
            Resolution::KeptBoth => f.write_str("both versions kept"),
            Resolution::Repaired {
                confirmed,
                unmatched,
            } => write!(f, "re-paired {confirmed}, {unmatched} kept local-only"),
            Resolution::Halted => f.write_str("folder halted"),
        }
    }
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::MassDelete {
                side,
                count,
                total,
                confirm_command,
            } => write!(
                f,
                "would delete {count} of {total} messages on the {side}; deletions held. \
                 To confirm: {confirm_command}"
            ),
            Halt::Emptied {
                side,
                pairs,
                confirm_command,
            } => write!(
                f,
                "the {side} folder shows no messages while {pairs} are paired (unmounted or \
                 emptied?); deletions held. To confirm: {confirm_command}"
            ),
            Halt::UidValidity {
                old,
                new,
                reason,
                confirm_command,
            } => {
                write!(
                    f,
                    "UIDVALIDITY changed {old} -> {new} and the folder was not re-paired: {reason}"
                )?;
                match confirm_command {
                    Some(command) => write!(
                        f,
                        ". To accept the pairs that were confirmed (the others are kept \
                         locally as they are; nothing is deleted): {command}"
                    ),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Move::OnServer { from, to, pair } => write!(
                f,
                "move UID {} from {from} to {to} on the server (maildir moved {})",
                pair.uid, pair.key
            ),
            Move::Local {
                from,
                to,
                pair,
                uid,
            } => write!(
                f,
                "move {} from {from} to {to} in the maildir (server moved it, now UID {uid})",
                pair.key
            ),
            Move::Both {
                from,
                to,
                pair,
                uid,
            } => write!(
                f,
                "re-pair {} as UID {uid}: moved from {from} to {to} on both sides",
                pair.key
            ),
            Move::Diverged {
                from,
                local_to,
                to,
                pair,
                uid,
            } => write!(
                f,
                "move {} from {local_to} to {to} in the maildir: moved from {from} to {local_to} \
                 locally and to {to} on the server (now UID {uid}); the server's folder wins",
                pair.key
            ),
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "folder {}: ", self.folder)?;
        if self.is_empty() {
            return writeln!(f, "in sync");
        }
        writeln!(
            f,
            "{} action(s), {} change(s), {} conflict(s)",
            self.actions.len(),
            self.changes.len(),
            self.conflicts.len()
        )?;
        if let Some(halt) = &self.halt {
            writeln!(f, "  HALT: {halt}")?;
        }
        for a in &self.actions {
            writeln!(f, "  do: {a}")?;
        }
        for a in &self.held {
            writeln!(f, "  held: {a}")?;
        }
        for c in &self.changes {
            writeln!(f, "  change: {c}")?;
        }
        for c in &self.conflicts {
            writeln!(f, "  conflict: {c}")?;
        }
        Ok(())
    }
}
