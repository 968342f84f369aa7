//! syncmail: keeps IMAP accounts mirrored two ways into local Maildirs, and POP3 accounts
//! one way, with every change journalled in SQLite so nothing is lost or duplicated.
//!
//! # Layout
//!
//! - [`model`]: domain vocabulary (accounts, folders, UIDs, Maildir keys, flags). No IO.
//! - [`config`]: raw TOML (serde, `deny_unknown_fields`) turned into a validated
//!   [`config::Config`] in one place; errors name file:line:col and the account.
//! - [`import`]: `syncmail import mbsync|offlineimap`: another tool's config file (never
//!   its sync state) turned into a syncmail config that adopts the same Maildir tree,
//!   with what has no equivalent kept as comments. Uses `config` and `maildir` only.
//! - [`cli`]: subcommands and exit codes; `main.rs` only calls [`cli::main`].
//! - [`sync`]: the pure planner: snapshots of both sides plus the base in, a `Plan` of
//!   actions, changes and conflicts out; the fate of a folder one side deleted (rule 9).
//!   No tokio, no SQLite, no filesystem, no clock.
//! - [`store`]: the per-account SQLite state (pairs, watermarks, intents journal, change
//!   and conflict logs, POP3 UIDLs), one writer, migrations, the account lock.
//! - [`maildir`]: Maildir filenames and flags, stable scans, batched durable delivery,
//!   renames, folder-name mapping (modified UTF-7, path safety).
//! - [`net`]: the transport IMAP and POP3 share: TCP and the plaintext policy, TLS
//!   (verification, pinning, certificate errors in words), the plain-or-TLS stream, the
//!   protocol-neutral input bounds (pre-login lines, message size), and SASL: the
//!   mechanism choice and the responses that carry the credential.
//! - [`imap`]: greeting, strict STARTTLS and login over a `net` stream, COMPRESS, bounds
//!   on every line and literal a server sends (`imap::bound`, rule 18), and the session
//!   layer that wraps async-imap's gaps (timeouts, checked FETCH results, raw
//!   APPEND/QRESYNC), and IDLE.
//! - [`pop3`]: the POP3 protocol state machine (sans-IO), its tokio driver over a `net`
//!   stream, and the poller that delivers a maildrop into the INBOX (deliver, record
//!   UIDL, DELE, QUIT).
//! - [`engine`]: the only module that knows both sides: observe (QRESYNC, CONDSTORE or a
//!   full listing; a stable Maildir scan), plan every folder, turn cross-folder
//!   delete+add into moves, apply each action under the intent journal, commit; delete
//!   folders rule 9 allows; and resolve intents a crash left open before anything else.
//! - [`daemon`]: per-account supervisors, IDLE and file-watch triggers, backoff, signals,
//!   sd_notify, hooks, and `syncmail status`.
//! - [`secret`]: fetches passwords and tokens from the configured source, never logging them.
//! - [`unified`]: the unified inbox: one Maildir of hard links to several accounts' folders,
//!   reconciled two ways by a pure planner (flags per-flag merged, deletions only from
//!   stable scans) with its mapping in `unified.sqlite`; to the accounts a mail client.
//! - `fuzzing` (hidden): the fuzz target bodies and their invariants, shared by the
//!   libFuzzer targets in `tests/fuzz/` and the corpus replay in `tests/fuzz_corpora.rs`.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
#[doc(hidden)]
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod imap;
pub mod import;
pub mod maildir;
pub mod model;
pub mod net;
pub mod pop3;
pub mod secret;
pub mod store;
pub mod sync;
pub mod unified;
