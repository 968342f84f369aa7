//! What the user allows a pass to do: which way changes flow, where deletions may be
//! carried out, and how a deletion that meets a flag change is resolved.

use serde::Deserialize;

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
