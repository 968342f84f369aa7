//! What the planner reads: one observation of each side of a folder, and the base (what
//! both sides had when the folder last synced), as the observers and the store build them.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::model::EmailId;
pub use crate::model::MessageId;
use crate::model::{Flags, FolderName, MaildirKey, ModSeq, Uid, UidValidity};

/// One server message as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteMessage {
    pub flags: Flags,
    /// RFC822.SIZE. A server message never changes content, so this is fixed per UID.
    pub size: u64,
    /// Known when the observer fetched it (always for new UIDs and full listings).
    pub message_id: Option<MessageId>,
    /// The server's identity of the message (OBJECTID `EMAILID`, Gmail `X-GM-MSGID`),
    /// where the server has one: new UIDs and full listings carry it.
    pub email_id: Option<EmailId>,
}

/// How much of the folder the server listing covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteListing {
    /// `UID FETCH 1:* (FLAGS ...)`: every message of the folder. A base UID missing here
    /// is gone from the server.
    Complete(BTreeMap<Uid, RemoteMessage>),
    /// QRESYNC/CONDSTORE: only the UIDs changed since the base's HIGHESTMODSEQ, plus the
    /// UIDs the server reported VANISHED. A base UID mentioned in neither is unchanged.
    /// `changed` must also hold every UID above the base's `highest_uid_pulled` (new
    /// mail), with its Message-ID and size, as a full listing would.
    Changes {
        changed: BTreeMap<Uid, RemoteMessage>,
        vanished: BTreeSet<Uid>,
    },
}

/// What the server holds in one folder, as one pass observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSnapshot {
    pub uid_validity: UidValidity,
    /// From the tagged OK of SELECT (RFC 7162 §6), when the server has CONDSTORE.
    pub highest_modseq: Option<ModSeq>,
    pub uid_next: Uid,
    pub listing: RemoteListing,
}

/// What the server's side of a base pair looks like now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteState<'a> {
    /// Listed (complete listing or changed).
    Listed(&'a RemoteMessage),
    /// Not mentioned by an incremental listing: flags as in the base.
    Unchanged,
    /// Absent from a complete listing, or reported VANISHED.
    Gone,
}

impl RemoteSnapshot {
    /// The state of `uid`, which the base has paired or kept.
    pub fn state(&self, uid: Uid) -> RemoteState<'_> {
        match &self.listing {
            RemoteListing::Complete(all) => {
                all.get(&uid).map_or(RemoteState::Gone, RemoteState::Listed)
            }
            RemoteListing::Changes { changed, vanished } => match changed.get(&uid) {
                Some(m) => RemoteState::Listed(m),
                None if vanished.contains(&uid) => RemoteState::Gone,
                None => RemoteState::Unchanged,
            },
        }
    }

    /// The messages this listing shows (all of them, or the changed ones).
    pub fn listed(&self) -> &BTreeMap<Uid, RemoteMessage> {
        match &self.listing {
            RemoteListing::Complete(all) => all,
            RemoteListing::Changes { changed, .. } => changed,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.listing, RemoteListing::Complete(_))
    }
}

/// One Maildir message as the scan saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMessage {
    /// The `:2,` flags; keywords only when [`LocalSnapshot::carries_keywords`].
    pub flags: Flags,
    /// File size in bytes. Differs from the server's RFC822.SIZE (line endings), so it is
    /// compared only with the local size recorded in the base.
    pub size: u64,
}

/// What the Maildir folder holds, as one scan observed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalSnapshot {
    pub messages: BTreeMap<MaildirKey, LocalMessage>,
    /// The directory mtimes did not change across the read (rule 6). When false, a base
    /// key missing from `messages` is "not seen", never "deleted".
    pub stable: bool,
    /// Whether this Maildir stores keywords. Plain Maildir filenames hold only the six
    /// letters; then keywords live on the server and in the base only, and are never
    /// removed because the local side lacks them.
    pub carries_keywords: bool,
}

/// One paired message: a server UID and a Maildir key that hold the same message, with
/// what each side had when the pair last synced. Bases are kept per side: normally equal
/// (up to keywords the Maildir cannot hold), they differ when a direction setting left a
/// change on one side unsent, so that change is acknowledged and not re-detected forever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub uid: Uid,
    pub key: MaildirKey,
    pub remote_flags: Flags,
    pub local_flags: Flags,
    pub remote_size: u64,
    pub local_size: u64,
    pub message_id: Option<MessageId>,
    /// The server's identity of the message, where it has one: other folders' entries
    /// with the same id are links to the same file.
    pub email_id: Option<EmailId>,
}

impl Pair {
    /// A pair whose two copies are in step: the same flags and size on both sides, as
    /// right after a delivery or an APPEND.
    pub fn synced(
        uid: Uid,
        key: MaildirKey,
        flags: Flags,
        size: u64,
        message_id: Option<MessageId>,
    ) -> Pair {
        Pair {
            uid,
            key,
            remote_flags: flags.clone(),
            local_flags: flags,
            remote_size: size,
            local_size: size,
            message_id,
            email_id: None,
        }
    }
}

/// The folder's state at the end of the last committed pass (from the state DB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub folder: FolderName,
    /// None before the first pass of the folder.
    pub uid_validity: Option<UidValidity>,
    pub highest_modseq: Option<ModSeq>,
    /// The highest UID fetched so far (the engine's watermark; rule 4).
    pub highest_uid_pulled: Option<Uid>,
    pub pairs: BTreeMap<Uid, Pair>,
    /// Local messages deliberately not on the server (direction `pull`, expunge policy,
    /// a kept conflict copy): never appended, never reported again while present.
    pub local_only: BTreeSet<MaildirKey>,
    /// Server messages deliberately not in the Maildir (the mirror of `local_only`).
    pub remote_only: BTreeSet<Uid>,
}

impl Base {
    /// The base of a folder never synced.
    pub fn empty(folder: FolderName) -> Base {
        Base {
            folder,
            uid_validity: None,
            highest_modseq: None,
            highest_uid_pulled: None,
            pairs: BTreeMap::new(),
            local_only: BTreeSet::new(),
            remote_only: BTreeSet::new(),
        }
    }
}
