//! IMAP connection and session layer.
