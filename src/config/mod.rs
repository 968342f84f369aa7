//! Configuration: the TOML file is read into raw serde structs (`raw`), then checked and
//! resolved in one place (`validate`) into a `Config` the rest of the program trusts.

mod error;
pub mod keys;
pub mod oauth2;
mod pattern;
mod raw;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, Location};
pub use pattern::{FolderPattern, FolderPatterns};
pub use raw::{AuthMech, Layout, Provider, Tls};
pub use validate::GMAIL_MAX_CONNECTIONS;

/// How an account's provider preset was known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderFrom {
    /// `provider = ...` in the config.
    Config,
    /// The account's host is the provider's.
    Host,
}

use crate::model::{AccountName, FolderName};
use crate::sync::{DeleteVsFlag, Direction, Expunge};

#[derive(Clone, Debug)]
pub struct Config {
    /// The file this was read from, for messages.
    pub path: PathBuf,
    pub general: General,
    /// In file order.
    pub accounts: Vec<Account>,
    /// The unified inbox, when `[unified]` is configured.
    pub unified: Option<Unified>,
}

/// `[unified]`: a Maildir of its own holding (as hard links) every message of the chosen
/// folders of the chosen accounts, kept two-way in step with them by `crate::unified`.
#[derive(Clone, Debug, PartialEq)]
pub struct Unified {
    /// The unified Maildir folder (`cur/`, `new/`, `tmp/`).
    pub path: PathBuf,
    /// Which folder of each account is merged (server names, e.g. `INBOX`).
    pub folders: Vec<FolderName>,
    /// The accounts merged, in config order.
    pub accounts: Vec<AccountName>,
}

#[derive(Clone, Debug)]
pub struct General {
    /// Root of the Maildir tree; each account gets a directory below it by default.
    pub maildir: PathBuf,
    /// Where the per-account state databases and locks live.
    pub state_dir: PathBuf,
    /// A tracing filter directive such as `info` or `syncmail::imap=debug`.
    pub log_level: String,
    /// Run (no shell) after a daemon pass delivered new mail into a folder, with
    /// SYNCMAIL_ACCOUNT, SYNCMAIL_FOLDER and SYNCMAIL_NEW_COUNT set.
    pub on_new_mail: Option<Vec<String>>,
    /// Run (no shell) after a daemon pass changed anything, e.g. `notmuch new`.
    pub after_sync: Option<Vec<String>>,
    /// A hook still running after this long is killed.
    pub hook_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub name: AccountName,
    pub server: Server,
    pub secret: SecretSource,
    /// This account's Maildir root.
    pub maildir: PathBuf,
    pub poll_interval: Duration,
    pub kind: AccountKind,
}

#[derive(Clone, Debug)]
pub enum AccountKind {
    Imap(ImapSettings),
    Pop3(Pop3Settings),
}

#[derive(Clone, Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// The user explicitly allowed a plaintext connection to a non-loopback host.
    pub allow_plaintext: bool,
    pub user: String,
    pub auth: AuthMech,
    /// Extra trust anchors (PEM) beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server's leaf certificate (DER), checked in addition to the chain.
    pub cert_fingerprint: Option<[u8; 32]>,
    /// Limit for any single network read or write.
    pub timeout: Duration,
    /// Use COMPRESS=DEFLATE (RFC 4978) when the IMAP server offers it.
    pub compress: bool,
}

/// Where the secret comes from. Never printed: `Debug` shows only the source kind.
#[derive(Clone)]
pub enum SecretSource {
    /// Run without a shell; the first line of stdout is the password.
    PasswordCommand(Vec<String>),
    /// Run without a shell; the first line of stdout is an OAuth2 access token.
    OAuth2TokenCommand(Vec<String>),
    /// Written in the config file itself.
    Password(String),
    /// syncmail's own OAuth2: a refresh token from `syncmail login` in the token store.
    OAuth2(Box<oauth2::OAuth2>),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::PasswordCommand(argv) => write!(f, "PasswordCommand({argv:?})"),
            SecretSource::OAuth2TokenCommand(argv) => write!(f, "OAuth2TokenCommand({argv:?})"),
            SecretSource::Password(_) => f.write_str("Password(<redacted>)"),
            SecretSource::OAuth2(o) => write!(f, "OAuth2({o:?})"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ImapSettings {
    /// The provider preset that chose some of these defaults, and how it was known.
    pub provider: Option<(Provider, ProviderFrom)>,
    pub folders: FolderPatterns,
    pub idle: Vec<FolderName>,
    /// How long one IDLE command lasts before it is re-issued (RFC 2177: under 29 min);
    /// the answer to the re-issue doubles as a check of a half-open link.
    pub idle_refresh: Duration,
    pub layout: Layout,
    pub folder_names: crate::maildir::FolderNames,
    /// Leave the server's personal namespace prefix (`INBOX.`) out of local folder names
    /// and pattern matches. Config key `use_namespace`.
    pub use_namespace: bool,
    pub direction: Direction,
    pub expunge: Expunge,
    pub trash: Option<FolderName>,
    pub delete_vs_flag: DeleteVsFlag,
    /// The share of a folder (0, 1] one pass may delete before it stops and asks.
    pub max_delete_share: f64,
    /// Connections a pass may use at once; fewer when the budget is spent.
    pub connections: usize,
    /// The most connections to the server at once, push included, across the daemon
    /// and a one-shot sync (`max_connections`).
    pub max_connections: usize,
    /// Without NOTIFY: how many folders of `idle` get an IDLE connection of their own;
    /// the rest are swept.
    pub idle_connections: usize,
    /// Without NOTIFY: how often the folders without IDLE are swept with STATUS.
    pub sweep_interval: Duration,
}

impl ImapSettings {
    /// How this account's server folders map to directories under `root`.
    pub fn folder_map(
        &self,
        root: &std::path::Path,
        delimiter: Option<char>,
    ) -> crate::maildir::FolderMap {
        crate::maildir::FolderMap::new(root, self.layout, delimiter)
            .with_utf7_names(self.folder_names == crate::maildir::FolderNames::ModifiedUtf7)
    }

    /// The folder map on a server with this personal namespace prefix (decoded): the
    /// prefix is left out locally unless `use_namespace = false`.
    pub fn server_folder_map(
        &self,
        root: &std::path::Path,
        delimiter: Option<char>,
        personal_prefix: Option<&str>,
    ) -> crate::maildir::FolderMap {
        self.folder_map(root, delimiter)
            .with_prefix(personal_prefix.filter(|_| self.use_namespace))
    }

    /// Whether `folders` selects a server folder: a pattern matches its full server name
    /// (`INBOX.Archive`) or its name in the personal namespace (`Archive`), so patterns
    /// read the same with and without `use_namespace`.
    pub fn selects(&self, map: &crate::maildir::FolderMap, name: &str) -> bool {
        let personal = map.personal_name(name).filter(|p| *p != name);
        self.folders.includes_either(name, personal, map.delimiter)
    }

    /// The `folders` patterns that select something but match none of the server's
    /// folders `names`, by full or personal name: a typo, or a folder that is gone.
    /// Exclusions are left out: `!Spam` on a server without Spam is no mistake.
    pub fn unmatched_patterns<'a>(
        &'a self,
        map: &crate::maildir::FolderMap,
        names: &[&str],
    ) -> Vec<&'a FolderPattern> {
        self.folders
            .0
            .iter()
            .filter(|p| !p.exclude)
            .filter(|p| {
                !names.iter().any(|name| {
                    p.matches(name, map.delimiter)
                        || map
                            .personal_name(name)
                            .is_some_and(|n| p.matches(n, map.delimiter))
                })
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct Pop3Settings {
    pub keep_on_server: bool,
    /// With `keep_on_server`, delete a message this many days after first seeing it.
    pub delete_after_days: Option<u32>,
}

/// The environment the defaults come from; a parameter so tests need not touch `HOME`.
#[derive(Clone, Debug, Default)]
pub struct Dirs {
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
}

impl Dirs {
    pub fn from_env() -> Dirs {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Dirs {
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            xdg_state_home: var("XDG_STATE_HOME"),
        }
    }

    /// `$XDG_CONFIG_HOME/syncmail/config.toml`, else `~/.config/syncmail/config.toml`.
    pub fn default_config_path(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("syncmail").join("config.toml"))
    }

    /// `$XDG_STATE_HOME/syncmail`, else `~/.local/state/syncmail`.
    pub fn default_state_dir(&self) -> Option<PathBuf> {
        self.xdg_state_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".local").join("state")))
            .map(|d| d.join("syncmail"))
    }
}

/// A loaded config and the warnings it deserves (e.g. a world-readable password).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Read and validate the config file at `path`.
pub fn load(path: &Path, dirs: &Dirs) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let help = (e.kind() == std::io::ErrorKind::NotFound).then_some(
            "run `syncmail init` to write a commented one from the annotated example (syncmail.example.toml), or point --config at your file",
        );
        ConfigError::file(path, format!("cannot read the config file: {e}"), help)
    })?;
    let mode = file_mode(path);
    validate::parse(path, &text, dirs, mode)
}

/// Validate config text that did not come from disk (tests, `--config -`).
pub fn parse(path: &Path, text: &str, dirs: &Dirs) -> Result<Loaded, ConfigError> {
    validate::parse(path, text, dirs, None)
}

fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

/// Whether `host` names this machine (`localhost`, 127.0.0.0/8, `::1`): the only place a
/// plaintext login is allowed without `allow_plaintext`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Server {
    /// A plaintext connection is allowed: to loopback, or explicitly opted in.
    pub fn plaintext_allowed(&self) -> bool {
        self.allow_plaintext || is_loopback(&self.host)
    }
}

impl Config {
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name.0 == name)
    }
}
