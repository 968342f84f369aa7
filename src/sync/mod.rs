//! The pure sync planner: given what the server has, what the Maildir has and what both
//! had at the last sync, decide what to do. No IO, no clock (time is an argument).

pub mod policy;

pub use policy::{DEFAULT_MAX_DELETE_SHARE, DeleteVsFlag, Direction, Expunge, MASS_DELETE_FLOOR};
