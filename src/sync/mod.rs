//! The pure sync planner: given what the server has, what the Maildir has and what both
//! had at the last sync, decide what to do. No IO, no clock (time is an argument).
//!
//! - [`snapshot`]: the inputs ([`RemoteSnapshot`], [`LocalSnapshot`], [`Base`]).
//! - [`plan()`](plan::plan): one folder pass -> [`Plan`] of ordered [`Action`]s, every
//!   [`Change`], every [`Conflict`], and a [`Halt`] when the pass must stop and ask.
//! - [`merge`]: the per-flag three-way merge; [`repair`]: UIDVALIDITY re-pairing;
//!   [`moves`]: cross-folder moves, detected across several folders' plans.
//! - [`uidset`]: compressed IMAP UID sets; [`display`]: the `--dry-run` rendering.

pub mod actions;
pub mod display;
pub mod merge;
pub mod moves;
pub mod plan;
pub mod policy;
pub mod repair;
pub mod snapshot;
pub mod uidset;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

pub use actions::{
    Action, Change, ChangeKind, Conflict, ConflictKind, Halt, Outcome, Plan, Repair, Resolution,
    Side, Timestamp,
};
pub use moves::{FolderPass, Move, detect_moves};
pub use plan::{guard_deletions, plan};
pub use policy::{
    DEFAULT_MAX_DELETE_SHARE, DeleteVsFlag, Direction, Expunge, MASS_DELETE_FLOOR, Policy,
};
pub use snapshot::{
    Base, LocalMessage, LocalSnapshot, MessageId, Pair, RemoteListing, RemoteMessage,
    RemoteSnapshot,
};
pub use uidset::UidSet;
