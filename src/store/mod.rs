//! Per-account SQLite state: folders and watermarks, pairs and base flags, the intents
//! journal, the change and conflict logs, POP3 UIDLs, and the account lock.

pub mod fault;
