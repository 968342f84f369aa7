//! The long-running service: per-account supervisors, IDLE and file-watch triggers,
//! signals and sd_notify. Not built yet (issue 6); `syncmail daemon` says so.
