//! POP3 for legacy accounts: a sans-IO protocol state machine and a thin tokio driver.
//! Not built yet (issue 7); nothing here pretends to work.
