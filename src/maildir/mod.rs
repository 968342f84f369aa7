//! The local side: Maildir filenames and flags, stable scans, batched durable delivery,
//! renames, and mapping server folder names to safe local paths.
