//! The only module that knows both sides: for each folder of an account, observe the
//! server and the Maildir, load the base, plan, then apply each action under the intent
//! journal and commit. A pass is the same code whether `syncmail sync` or the daemon
//! runs it.
//!
//! - `account`: an account's life cycle: its state and lock, start-up recovery, the
//!   connection, and a one-shot `syncmail sync`.
//! - `link`: an account's link to its server, shared by passes, the sweep and the push
//!   connection: the pass connection, the folder listing (LIST once per change), the
//!   sweep that finds which folders moved; `budget`: the connections it may hold.
//! - `pass`: one pass: folders made on one side, the extra connections, and the
//!   folders dealt over them (observe and plan all, detect moves, apply each).
//! - `folder`: one folder within a pass: observe and plan it, run its moves, apply its
//!   plan under the journal, move its watermarks.
//! - `observe`: read-only observation of both sides, turned into the planner's snapshots.
//! - `apply`, `moves`, `folders`: the actions, cross-folder moves, and folders one
//!   side deleted (rule 9).
//! - `identity`: one file per message wherever the server's identity (OBJECTID,
//!   X-GM-MSGID) says two folders hold one message: links instead of downloads.
//! - `adopt`: a first contact pairs what both sides hold before it plans (rule 21).
//! - `recover`: the intents a crash left open, resolved before anything else (rule 1).
//! - [`pop3`]: the POP3 poller, the same journal discipline for a maildrop.
//! - `report`, `error`: what a pass tells its caller and the change log.

mod account;
mod adopt;
mod apply;
mod budget;
mod error;
mod folder;
mod folders;
mod identity;
mod link;
mod moves;
mod observe;
mod pass;
pub mod pop3;
mod recover;
mod report;

pub use account::{connect_session, folder_map, login, open_state, prepare, sync_account};
pub use apply::AppendSizes;
pub use budget::{Budget, Slot};
pub use error::{EngineError, FailureKind, FolderFailure, LocalError};
pub use link::{AccountLink, Listing, Swept, open_push};
pub use recover::{Recovery, RecoveryError, resolve_delivery_intents};
pub use report::{AccountReport, Counts, PassScope, Progress, ProgressFn, SyncOptions};
