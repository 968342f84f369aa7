//! What the planner returns: the ordered actions, every change it saw, every conflict and
//! how it was resolved, and whether the folder must halt instead.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Flags, FolderName, MaildirKey, ModSeq, Uid, UidValidity};

use super::uidset::UidSet;

/// Seconds since the Unix epoch, passed in by the caller (the planner reads no clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

/// One side of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Server,
    Local,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Server => Side::Local,
            Side::Local => Side::Server,
        }
    }
}

/// Re-pairing after a UIDVALIDITY change (rule 13): every confirmed pair gets its new UID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    pub old: UidValidity,
    pub new: UidValidity,
    /// Old UID -> new UID, for each pair confirmed by Message-ID and size.
    pub map: BTreeMap<Uid, Uid>,
    /// Local keys whose pair could not be confirmed (no Message-ID, or gone from the
    /// server): they become local-only rather than be deleted or uploaded again.
    pub unmatched: BTreeSet<MaildirKey>,
}

/// One step of a plan. The engine runs them in order; each step states the base change
/// it implies, which the engine commits together with the step's outcome. Steps that
/// create a pair (`Fetch`, `Append`) are idempotent: they skip a UID or key already
/// paired, so a replayed plan adds nothing twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Base only, and always first when present: rewrite every confirmed pair to its new
    /// UID, make `unmatched` keys local-only, forget `remote_only` (the old UIDs are void),
    /// and record the new UIDVALIDITY.
    RepairUids(Repair),
    /// Base only: drop the pair, because its two copies are about to go separate ways (a
    /// kept conflict copy is fetched or appended again below).
    Unpair { uid: Uid, key: MaildirKey },
    /// Base only: remember that this local message stays off the server.
    KeepLocalOnly { key: MaildirKey },
    /// Base only: remember that this server message stays out of the Maildir.
    KeepRemoteOnly { uid: Uid },
    /// Download each UID not yet paired with `BODY.PEEK[]` (rule 12), deliver it with its
    /// server flags (system flags only if the Maildir carries no keywords), and record the
    /// pair with the flags and sizes as delivered.
    Fetch { uids: UidSet },
    /// Upload the local message (if its key is not yet paired) with these flags, and
    /// record the pair under the UID the server assigned (APPENDUID) with these flags as
    /// both sides' base: not the file's current flags, so a change made since the scan
    /// is seen by the next pass.
    Append { key: MaildirKey, flags: Flags },
    /// `UID STORE uids [(UNCHANGEDSINCE m)] +FLAGS.SILENT (add)` then `-FLAGS.SILENT
    /// (remove)`: never a bare FLAGS replace (rule 10). UIDs the server reports MODIFIED
    /// are left for the next pass to re-merge. Base: see `RecordFlags`.
    StoreFlags {
        uids: UidSet,
        add: Flags,
        remove: Flags,
        unchanged_since: Option<ModSeq>,
    },
    /// Rename the Maildir file so its `:2,` suffix carries these flags (unknown letters
    /// preserved). Base: see `RecordFlags`.
    SetLocalFlags { key: MaildirKey, flags: Flags },
    /// Base only: the pair's merged flags on each side. Commit it only if every earlier
    /// step naming this pair succeeded; otherwise leave the base alone and the next pass
    /// re-derives the same merge from the same base.
    RecordFlags {
        uid: Uid,
        remote: Flags,
        local: Flags,
    },
    /// `UID MOVE uids trash` (rule 8's alternative): the folder loses them, the trash gets
    /// them. Base: forget the pairs of these UIDs.
    MoveToTrash { uids: UidSet, trash: FolderName },
    /// `UID STORE uids +FLAGS.SILENT (\Deleted)` then `UID EXPUNGE uids`: exactly our
    /// UIDs, never CLOSE or plain EXPUNGE (rule 8). Base: forget the pairs of these UIDs.
    DeleteOnServer { uids: UidSet },
    /// Unlink the Maildir file. Base: forget its pair.
    DeleteLocal { key: MaildirKey },
    /// Base only: both copies are gone; forget the pair.
    Forget { uid: Uid, key: MaildirKey },
    /// Base only: a local-only message is gone; stop remembering it.
    DropLocalOnly { key: MaildirKey },
    /// Base only: a remote-only message is gone; stop remembering it.
    DropRemoteOnly { uid: Uid },
}

impl Action {
    /// Whether the step removes a message from a side (what the mass-delete guard holds).
    pub fn is_deletion(&self) -> bool {
        matches!(
            self,
            Action::MoveToTrash { .. } | Action::DeleteOnServer { .. } | Action::DeleteLocal { .. }
        )
    }

    /// Whether the step touches the server.
    pub fn touches_server(&self) -> bool {
        matches!(
            self,
            Action::Append { .. }
                | Action::StoreFlags { .. }
                | Action::MoveToTrash { .. }
                | Action::DeleteOnServer { .. }
        )
    }

    /// Whether the step touches the Maildir.
    pub fn touches_local(&self) -> bool {
        matches!(
            self,
            Action::Fetch { .. } | Action::SetLocalFlags { .. } | Action::DeleteLocal { .. }
        )
    }
}

/// What changed on one side relative to the base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    New,
    Deleted,
    Flags { added: Flags, removed: Flags },
    Content { base_size: u64, size: u64 },
}

/// What the plan does with a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Carried to the other side.
    Propagated,
    /// Nothing to carry (the other side already agrees).
    AlreadyInSync,
    /// Left where it is, for the reason given (direction or expunge policy).
    NotPropagated(&'static str),
    /// Part of a conflict; see `Plan::conflicts`.
    Conflict,
    /// Part of a move between folders; see [`super::moves::Move`].
    Moved,
}

/// One change seen on one side (the change log's input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub side: Side,
    pub uid: Option<Uid>,
    pub key: Option<MaildirKey>,
    pub kind: ChangeKind,
    pub outcome: Outcome,
}

/// What kind of disagreement the planner had to settle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConflictKind {
    /// Deleted on `deleted_on`; the other side changed its flags (or content) meanwhile.
    DeleteVsChange {
        deleted_on: Side,
        added: Flags,
        removed: Flags,
        content_changed: bool,
    },
    /// A flag (usually a keyword) set on `set_on` and removed on the other side, each
    /// relative to its own base.
    SetVsRemoved { flag: Flags, set_on: Side },
    /// The Maildir file's size differs from the size recorded when it was paired.
    ContentChangedLocally { base_size: u64, size: u64 },
    /// The folder's UIDVALIDITY changed.
    UidValidityChanged { old: UidValidity, new: UidValidity },
}

/// How a conflict was settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The deletion was carried out on the other side too.
    DeletionWins,
    /// The surviving copy was kept and copied back to the side that deleted it.
    KeptAndRestored,
    /// The surviving copy was kept on its side only (direction forbids copying back).
    KeptOneSide,
    /// The flag is set on both sides (setting never loses information).
    SetWins,
    /// Both versions kept as separate messages on both sides (where direction allows).
    KeptBoth,
    /// Pairs re-keyed to the new UIDs.
    Repaired { confirmed: usize, unmatched: usize },
    /// The folder was not synced; see `Plan::halt`.
    Halted,
}

/// A conflict with both sides' changes and its resolution (the conflict log's input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub at: Timestamp,
    pub uid: Option<Uid>,
    pub key: Option<MaildirKey>,
    pub kind: ConflictKind,
    pub resolution: Resolution,
}

/// Why a folder pass stops instead of running its deletions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Halt {
    /// More than the allowed share of the folder would be deleted from `side` (rule 7).
    MassDelete {
        side: Side,
        count: usize,
        total: usize,
        confirm_command: String,
    },
    /// `side` shows no messages at all while the base still pairs `pairs` of them: an
    /// unmounted or emptied Maildir, or an emptied server folder (rule 7).
    Emptied {
        side: Side,
        pairs: usize,
        confirm_command: String,
    },
    /// The UIDVALIDITY changed and the pairs could not be safely re-keyed (rule 13).
    /// `confirm_command` accepts the re-pairing when a human may (too few pairs
    /// confirmed, no contradiction).
    UidValidity {
        old: UidValidity,
        new: UidValidity,
        reason: String,
        confirm_command: Option<String>,
    },
}

/// The planner's answer for one folder pass.
///
/// When `halt` is set for a mass deletion or an emptied side, `actions` holds no
/// deletion (the rest is safe to run) and `held` the deletions awaiting confirmation;
/// for a UIDVALIDITY halt both are empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub folder: FolderName,
    pub actions: Vec<Action>,
    /// Deletions withheld by `halt`. Never run; re-planned with the user's confirmation.
    pub held: Vec<Action>,
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
    pub halt: Option<Halt>,
}

impl Plan {
    pub fn new(folder: FolderName) -> Plan {
        Plan {
            folder,
            actions: Vec::new(),
            held: Vec::new(),
            changes: Vec::new(),
            conflicts: Vec::new(),
            halt: None,
        }
    }

    /// Nothing to do and nothing to report: the folder is in sync.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
            && self.changes.is_empty()
            && self.conflicts.is_empty()
            && self.halt.is_none()
    }
}
