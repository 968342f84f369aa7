//! The pure sync planner: given what the server has, what the Maildir has and what both
//! had at the last sync, decide what to do. No IO, no clock (time is an argument).
//!
//! - [`snapshot`]: the inputs ([`RemoteSnapshot`], [`LocalSnapshot`], [`Base`]).
//! - [`plan()`](plan::plan): one folder pass -> [`Plan`] of ordered [`Action`]s, every
//!   [`Change`], every [`Conflict`], and a [`Halt`] when the pass must stop and ask.
//! - [`merge`]: the per-flag three-way merge; [`repair`]: UIDVALIDITY re-pairing;
//!   [`moves`]: cross-folder moves, detected across several folders' plans.
//! - [`folders`]: rule 9, the fate of a folder one side no longer has.
//! - [`uidset`]: compressed IMAP UID sets; [`display`]: the `--dry-run` rendering.
//!
//! # Contract with the engine
//!
//! - Observe, then call [`plan()`] per folder, then [`detect_moves`] over the account's
//!   folder passes; run the moves, then each plan's `actions` in order. `held` deletions
//!   never run; a `halt` is shown to the user with its confirmation command, which
//!   re-runs the pass with [`Policy::allow_mass_delete`].
//! - Each [`Action`] documents the base change it implies; commit it with the action's
//!   outcome. [`Action::RecordFlags`] is committed only if every earlier step naming the
//!   same pair succeeded: the three-way merge then re-derives the same result next pass.
//! - Watermarks (the new UIDVALIDITY, HIGHESTMODSEQ, highest UID pulled) are not in the
//!   plan: take them from the snapshot and advance them only when every action of the
//!   pass committed (rule 4); an incremental listing relies on that to show again
//!   whatever a failed step left behind.
//! - A missing or unreadable Maildir folder must not be reported as an empty stable
//!   scan; the emptied-side guard is a second line of defence, not the first.
//! - Outside the planner: rule 8's "no UID EXPUNGE without UIDPLUS unless opted in",
//!   carrying out rule 9's folder decisions, rule 12 (`BODY.PEEK[]`).

pub mod actions;
pub mod adopt;
pub mod display;
pub mod folders;
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
pub use moves::{
    FolderPass, Move, Unseen, arrivals, defer_arrival, defer_download, detect_moves, gone_unseen,
    keep_pair, leaves_folder, leaving, moved_out_of_sight, moved_while_gone, new_downloads,
    unseen_keys,
};
pub use plan::{guard_deletions, plan};
pub use policy::{
    DEFAULT_MAX_DELETE_SHARE, DeleteVsFlag, Direction, Expunge, MASS_DELETE_FLOOR, Policy,
};
pub use repair::absent_from_listing;
pub use snapshot::{
    Base, EmailId, LocalMessage, LocalSnapshot, MessageId, Pair, RemoteListing, RemoteMessage,
    RemoteSnapshot,
};
pub use uidset::UidSet;
