//! syncmail: keeps IMAP accounts mirrored two ways into local Maildirs, and POP3 accounts
//! one way, with every change journalled in SQLite so nothing is lost or duplicated.
//!
//! # Layout
//!
//! Modules are listed in layer order: each uses only those above it (`imap` and `pop3`,
//! `store` and `maildir`, `engine` and `unified` use neither the other), and
//! `tests/suite/architecture.rs` holds the tree to that.
//!
//! - `fault` (hidden): fault points for crash tests (`SYNCMAIL_FAULT`).
//! - [`model`]: domain vocabulary (accounts, folders, UIDs, Maildir keys, flags) and
//!   [`model::rfc5322`]: the one Message-ID parser, content hashes and dates. No IO.
//! - [`sync`]: the pure planner: snapshots of both sides plus the base in, a `Plan` of
//!   actions, changes and conflicts out; the fate of a folder one side deleted (rule 9);
//!   first contact's pairing (`sync::adopt`, rule 21). No tokio, no SQLite, no
//!   filesystem, no clock.
//! - [`store`]: the per-account SQLite state (pairs, watermarks, intents journal, change
//!   and conflict logs, POP3 UIDLs), one writer, migrations, the account lock.
//! - [`maildir`]: Maildir filenames and flags, stable scans, a folder's stamp (mtimes
//!   and a digest of its names: whether it changed, without reading it), batched
//!   durable delivery, renames, folder-name mapping (modified UTF-7, path safety), and
//!   the state mbsync and OfflineIMAP left (`maildir::peers`).
//! - [`config`]: raw TOML (serde, `deny_unknown_fields`) turned into a validated
//!   [`config::Config`] in one place; errors name file:line:col and the account;
//!   [`config::keys`] lists every key, for the example test, the man page and typos.
//! - [`secret`]: fetches passwords and tokens from the configured source, never logging them;
//!   [`secret::oauth2`]: syncmail's own OAuth2: `syncmail login` (authorization code with
//!   PKCE and a loopback redirect, or the device flow), the refresh token in the system
//!   keyring or a 0600 file, access tokens only in memory, refreshed ahead of expiry.
//! - [`net`]: the transport IMAP and POP3 share: TCP and the plaintext policy, TLS
//!   (verification, pinning, certificate errors in words), the plain-or-TLS stream, the
//!   protocol-neutral input bounds (pre-login lines, message size), and SASL: the
//!   mechanism choice and the responses that carry the credential.
//! - [`imap`]: greeting, strict STARTTLS and login over a `net` stream, COMPRESS, bounds
//!   on every line and literal a server sends (`imap::bound`, rule 18), and the session
//!   layer that wraps async-imap's gaps (timeouts, checked FETCH results, raw
//!   APPEND/QRESYNC), IDLE and NOTIFY (RFC 5465) over raw commands, and STATUS /
//!   LIST-STATUS for the sweep.
//! - [`pop3`]: the POP3 protocol state machine (sans-IO) and its tokio driver over a
//!   `net` stream.
//! - [`import`]: `syncmail import mbsync|offlineimap`: another tool's config file (never
//!   its sync state) turned into a syncmail config that adopts the same Maildir tree,
//!   with what has no equivalent kept as comments. Uses `config` and `maildir` only.
//! - [`engine`]: the only module that knows both sides: observe (QRESYNC, CONDSTORE or a
//!   full listing; a stable Maildir scan, or, while the Maildir's stamp holds, only the
//!   base rows and files of what QRESYNC reported changed), pair a first contact, plan every folder, turn
//!   cross-folder delete+add into moves, apply each action under the intent journal,
//!   commit; delete folders rule 9 allows; resolve intents a crash left open before
//!   anything else; and the POP3 poller (`engine::pop3`: deliver, record UIDL, DELE,
//!   QUIT). A message the server identifies across folders (OBJECTID's `EMAILID`,
//!   Gmail's `X-GM-MSGID`) is stored once and hard-linked into each (`engine::identity`).
//!   Each account's link to its server (`engine::link`) owns the pass connection,
//!   the folder listing (LIST once per change), the sweep's comparison of STATUS numbers
//!   with the state, and the connection budget (`engine::budget`) that push and passes
//!   share; failures come back typed per folder (transient, permanent, disk full,
//!   halted).
//! - [`unified`]: the unified inbox: one Maildir of hard links to several accounts' folders,
//!   reconciled two ways by a pure planner (flags per-flag merged, deletions only from
//!   stable scans) with its mapping in `unified.sqlite`; to the accounts a mail client.
//! - [`daemon`]: decides *when*: per-account supervisors, push (NOTIFY on one
//!   connection, else IDLE on one folder and a sweep of the rest), file-watch triggers,
//!   backoff by failure kind, signals, sd_notify, hooks, `syncmail status` (text and
//!   JSON, one report), and the per-account socket through which a `syncmail sync` asks
//!   the daemon for a pass (`daemon::request`).
//! - [`cli`]: subcommands and exit codes; `syncmail init`, `syncmail log` (text and
//!   JSON), and [`cli::manual`]: man pages and completions from the clap definitions and
//!   [`config::keys`]. `main.rs` only calls [`cli::main`].
//! - `fuzzing` (hidden): the fuzz target bodies and their invariants, shared by the
//!   libFuzzer targets in `tests/fuzz/` and the corpus replay in
//!   `tests/suite/fuzz_corpora.rs`.
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
