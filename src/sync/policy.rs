//! What the user allows a pass to do: which way changes flow, where deletions may be
//! carried out, and how a deletion that meets a flag change is resolved.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::model::MessageId;

/// Which way changes travel. Config key `direction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Server and Maildir mirror each other.
    #[default]
    Both,
    /// Server -> Maildir only; local changes are never sent.
    Pull,
    /// Maildir -> server only; server changes are never fetched.
    Push,
}

/// On which side syncmail may remove messages to mirror a deletion on the other side.
/// Config key `expunge`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expunge {
    #[default]
    Both,
    /// Only on the server (a server deletion leaves the local copy, unpaired).
    Server,
    /// Only in the Maildir (a local deletion is not sent to the server).
    Local,
    /// Never remove anything anywhere; deletions are recorded and left alone.
    None,
}

/// A message deleted on one side whose flags changed on the other. Config key
/// `delete_vs_flag`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteVsFlag {
    /// Deletion wins, except when the surviving side has it `\Flagged`: then it is kept
    /// and copied back to the deleting side.
    #[default]
    DeleteWinsUnlessFlagged,
    /// Deletion always wins.
    DeleteWins,
    /// Any flag change on the surviving side keeps the message.
    KeepChanged,
}

/// The smallest folder deletion count that can trip the mass-delete guard: deleting 3 of
/// 4 messages is normal housekeeping, not a lost Maildir.
pub const MASS_DELETE_FLOOR: usize = 10;

/// The default share of a folder one pass may delete before it stops and asks.
pub const DEFAULT_MAX_DELETE_SHARE: f64 = 0.5;

impl Direction {
    /// Whether changes seen in the Maildir are carried to the server.
    pub fn sends(self) -> bool {
        matches!(self, Direction::Both | Direction::Push)
    }

    /// Whether changes seen on the server are carried to the Maildir.
    pub fn fetches(self) -> bool {
        matches!(self, Direction::Both | Direction::Pull)
    }
}

impl Expunge {
    /// Whether a local deletion may remove the server copy.
    pub fn on_server(self) -> bool {
        matches!(self, Expunge::Both | Expunge::Server)
    }

    /// Whether a server deletion may remove the Maildir copy.
    pub fn locally(self) -> bool {
        matches!(self, Expunge::Both | Expunge::Local)
    }
}

/// Everything the planner needs to know about the user's wishes for one folder pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Named in the confirmation command a halted pass prints.
    pub account: crate::model::AccountName,
    pub direction: Direction,
    pub expunge: Expunge,
    pub delete_vs_flag: DeleteVsFlag,
    /// When set (and not the folder being synced), server deletions are `UID MOVE`d here
    /// instead of expunged.
    pub trash: Option<crate::model::FolderName>,
    /// The share of a folder one pass may delete on either side before it halts
    /// (rule 7); only counts of at least [`MASS_DELETE_FLOOR`] can trip it.
    pub max_delete_share: f64,
    /// The user confirmed this pass's deletions (`--confirm-delete`): the mass-delete and
    /// emptied-folder guards stand aside.
    pub allow_mass_delete: bool,
    /// The user accepted a re-pairing after a UIDVALIDITY change (`--confirm-repair`):
    /// confirmed pairs are re-keyed however few they are; contradictions still halt.
    pub accept_repair: bool,
    /// Not the user's: what the pass saw in its other folders. The Message-ID and size of
    /// each message that arrived in exactly one other folder this pass. A re-pairing
    /// (rule 13) counts an unconfirmed pair with one of these as moved out, not as
    /// unconfirmed: the engine makes it a move (a folder renumbered while another device
    /// moved a message out of it).
    pub moved_out: BTreeSet<(MessageId, u64)>,
}

impl Policy {
    /// The defaults: both directions, expunge on both sides, deletion wins unless the
    /// surviving copy is flagged, no trash folder, the default mass-delete share.
    pub fn new(account: crate::model::AccountName) -> Policy {
        Policy {
            account,
            direction: Direction::default(),
            expunge: Expunge::default(),
            delete_vs_flag: DeleteVsFlag::default(),
            trash: None,
            max_delete_share: DEFAULT_MAX_DELETE_SHARE,
            allow_mass_delete: false,
            accept_repair: false,
            moved_out: BTreeSet::new(),
        }
    }
}
