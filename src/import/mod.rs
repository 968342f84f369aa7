//! `syncmail import`: an mbsync or OfflineIMAP config turned into a syncmail config that
//! adopts the same Maildir tree. What has no equivalent stays in the output as a comment.
//!
//! Each tool's parser (`mbsync`, `offlineimap`) reads only the tool's config file, never
//! its sync state, and fills a [`Draft`]: accounts as syncmail keys, each with the notes
//! that explain it. This module renders the draft as TOML and checks that it loads.

pub mod mbsync;
pub mod offlineimap;
mod python;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{self, ConfigError, Dirs, Location};

/// The tool whose config is converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Mbsync,
    OfflineImap,
}

impl Tool {
    /// The subcommand name, as in `syncmail import mbsync`.
    pub fn command(self) -> &'static str {
        match self {
            Tool::Mbsync => "mbsync",
            Tool::OfflineImap => "offlineimap",
        }
    }

    /// Where the tool reads its config when given none: `~/.mbsyncrc`; `~/.offlineimaprc`,
    /// else `$XDG_CONFIG_HOME/offlineimap/config` when only that one exists.
    pub fn default_rc(self, dirs: &Dirs) -> Option<PathBuf> {
        let home = dirs.home.as_ref();
        match self {
            Tool::Mbsync => home.map(|h| h.join(".mbsyncrc")),
            Tool::OfflineImap => {
                let classic = home.map(|h| h.join(".offlineimaprc"));
                let xdg = dirs
                    .xdg_config_home
                    .clone()
                    .or_else(|| home.map(|h| h.join(".config")))
                    .map(|d| d.join("offlineimap").join("config"));
                match (&classic, &xdg) {
                    (Some(c), Some(x)) if !c.exists() && x.exists() => xdg,
                    _ => classic,
                }
            }
        }
    }
}

/// One conversion's output and what it needs from the user.
#[derive(Debug)]
pub struct Converted {
    /// The syncmail config, as TOML with comments.
    pub text: String,
    pub accounts: usize,
    /// `# not converted:` lines: settings syncmail has no equivalent for.
    pub not_converted: usize,
    /// `# fix:` lines: places the user must edit before the account works.
    pub fixes: usize,
}

/// Convert the tool's config `text` (read from `path`, named in errors and the header).
/// A syntax error or a dangling reference in the file is an error naming its line.
pub fn convert(tool: Tool, path: &Path, text: &str, dirs: &Dirs) -> Result<Converted, ConfigError> {
    let draft = match tool {
        Tool::Mbsync => mbsync::convert(path, text, dirs)?,
        Tool::OfflineImap => offlineimap::convert(path, text, dirs)?,
    };
    Ok(Converted {
        text: draft.render(),
        accounts: draft.accounts.len(),
        not_converted: draft.count(|n| matches!(n, Note::NotConverted { .. })),
        fixes: draft.count(|n| matches!(n, Note::Fix(_))),
    })
}

/// Whether converted text loads as a syncmail config; `as_path` names it in the error.
pub fn check(text: &str, as_path: &Path, dirs: &Dirs) -> Result<(), ConfigError> {
    config::parse(as_path, text, dirs).map(drop)
}

/// Write a new config file: created with mode 0600 (it may hold a password) and never
/// over an existing file; missing parent directories are created with mode 0700.
pub fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A config error at a line of the converted file (1-based), underlining its text.
pub(crate) fn error_at(
    path: &Path,
    source: &str,
    line: usize,
    message: impl Into<String>,
    help: Option<&str>,
) -> ConfigError {
    let text = source
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim_end_matches('\r');
    let indent = text.chars().take_while(|c| c.is_whitespace()).count();
    ConfigError {
        path: path.to_owned(),
        location: Some(Box::new(Location {
            line,
            column: indent + 1,
            source_line: text.to_owned(),
            width: text.trim().chars().count().max(1),
        })),
        account: None,
        message: message.into(),
        help: help.map(str::to_owned),
    }
}

/// What a comment in the output says about the line below it (or the account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// `# note:` how something was converted.
    Info(String),
    /// `# warning:` converted, but behaves differently in a way that matters.
    Warning(String),
    /// `# fix:` a placeholder or gap the user must edit before the account works.
    Fix(String),
    /// `# not converted: <what> (<why>)`: no syncmail equivalent.
    NotConverted { what: String, why: String },
    /// `# <text>`: a commented-out suggestion, such as a key to fill in.
    Line(String),
}

impl Note {
    pub(crate) fn not_converted(what: impl Into<String>, why: impl Into<String>) -> Note {
        Note::NotConverted {
            what: what.into(),
            why: why.into(),
        }
    }

    fn render(&self, out: &mut String) {
        let (prefix, text) = match self {
            Note::Info(t) => ("note: ", t.clone()),
            Note::Warning(t) => ("warning: ", t.clone()),
            Note::Fix(t) => ("fix: ", t.clone()),
            Note::NotConverted { what, why } => ("not converted: ", format!("{what} ({why})")),
            Note::Line(t) => {
                let _ = writeln!(out, "# {}", one_line(t));
                return;
            }
        };
        wrap_comment(out, prefix, &one_line(&text));
    }
}

/// Text for a comment: no line breaks or control characters, which could end the
/// comment and put the rest of a value from the other tool's file into the TOML.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

const WRAP: usize = 90;

/// `# prefix text`, broken at spaces so lines stay under [`WRAP`] columns; continuation
/// lines are indented under the text.
fn wrap_comment(out: &mut String, prefix: &str, text: &str) {
    let mut line = format!("# {prefix}");
    let mut fresh = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !fresh && line.chars().count() + 1 + word.chars().count() > WRAP {
            out.push_str(line.trim_end());
            out.push('\n');
            line = "#   ".to_owned();
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The keys the importer sets, in the order the example config lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Name,
    Kind,
    Host,
    Port,
    Tls,
    AllowPlaintext,
    User,
    Auth,
    PasswordCommand,
    Oauth2TokenCommand,
    Password,
    CaFile,
    CertFingerprint,
    Compress,
    Timeout,
    Maildir,
    PollInterval,
    Folders,
    Idle,
    Layout,
    FolderNames,
    Direction,
    Expunge,
    Trash,
    Connections,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::Kind => "kind",
            Key::Host => "host",
            Key::Port => "port",
            Key::Tls => "tls",
            Key::AllowPlaintext => "allow_plaintext",
            Key::User => "user",
            Key::Auth => "auth",
            Key::PasswordCommand => "password_command",
            Key::Oauth2TokenCommand => "oauth2_token_command",
            Key::Password => "password",
            Key::CaFile => "ca_file",
            Key::CertFingerprint => "cert_fingerprint",
            Key::Compress => "compress",
            Key::Timeout => "timeout",
            Key::Maildir => "maildir",
            Key::PollInterval => "poll_interval",
            Key::Folders => "folders",
            Key::Idle => "idle",
            Key::Layout => "layout",
            Key::FolderNames => "folder_names",
            Key::Direction => "direction",
            Key::Expunge => "expunge",
            Key::Trash => "trash",
            Key::Connections => "connections",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

impl Value {
    pub(crate) fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    fn render(&self) -> String {
        match self {
            Value::Str(s) => toml_string(s),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::List(items) => {
                let items: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `[[account]]` of the output.
#[derive(Debug, Default)]
pub(crate) struct AccountDraft {
    /// Where it came from in the other tool's file, for the comment above the table.
    pub origin: String,
    settings: Vec<(Key, Value)>,
    /// Comments printed above a key, in the order they were added.
    key_notes: Vec<(Key, Note)>,
    /// Comments printed at the end of the table: what was not converted.
    pub notes: Vec<Note>,
}

impl AccountDraft {
    pub(crate) fn new(name: &str, origin: impl Into<String>) -> AccountDraft {
        let mut draft = AccountDraft {
            origin: origin.into(),
            ..AccountDraft::default()
        };
        draft.set(Key::Name, Value::str(name));
        draft.set(Key::Kind, Value::str("imap"));
        draft
    }

    pub(crate) fn set(&mut self, key: Key, value: Value) {
        self.settings.retain(|(k, _)| *k != key);
        self.settings.push((key, value));
    }

    pub(crate) fn get(&self, key: Key) -> Option<&Value> {
        self.settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// A comment above `key`'s line.
    pub(crate) fn note_on(&mut self, key: Key, note: Note) {
        self.key_notes.push((key, note));
    }

    pub(crate) fn note(&mut self, note: Note) {
        self.notes.push(note);
    }

    pub(crate) fn name(&self) -> &str {
        match self.get(Key::Name) {
            Some(Value::Str(s)) => s,
            _ => "",
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str(
            "\n# ---------------------------------------------------------------------------------\n",
        );
        wrap_comment(out, "", &one_line(&self.origin));
        out.push_str("[[account]]\n");
        let mut keys: Vec<Key> = self.settings.iter().map(|(k, _)| *k).collect();
        keys.extend(self.key_notes.iter().map(|(k, _)| *k));
        keys.sort();
        keys.dedup();
        for key in keys {
            for (_, note) in self.key_notes.iter().filter(|(k, _)| *k == key) {
                note.render(out);
            }
            if let Some(value) = self.get(key) {
                let _ = writeln!(out, "{} = {}", key.name(), value.render());
            }
        }
        for note in &self.notes {
            note.render(out);
        }
    }
}

/// The whole output: a header, file-level notes, the accounts.
#[derive(Debug)]
pub(crate) struct Draft {
    pub tool: Tool,
    pub source: PathBuf,
    /// Comments about the file as a whole (global options, groups, skipped sections).
    pub notes: Vec<Note>,
    pub accounts: Vec<AccountDraft>,
}

impl Draft {
    pub(crate) fn new(tool: Tool, source: &Path) -> Draft {
        Draft {
            tool,
            source: source.to_owned(),
            notes: Vec::new(),
            accounts: Vec::new(),
        }
    }

    fn count(&self, which: impl Fn(&Note) -> bool) -> usize {
        let file = self.notes.iter().filter(|n| which(n)).count();
        let accounts: usize = self
            .accounts
            .iter()
            .map(|a| {
                a.notes.iter().filter(|n| which(n)).count()
                    + a.key_notes.iter().filter(|(_, n)| which(n)).count()
            })
            .sum();
        file + accounts
    }

    /// An account name that is valid in syncmail and not yet taken, from `wanted`.
    pub(crate) fn account_name(&self, wanted: &str) -> String {
        let base = account_name(wanted);
        let mut name = base.clone();
        let mut n = 2;
        while self.accounts.iter().any(|a| a.name() == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let source = one_line(&self.source.display().to_string());
        let _ = writeln!(
            out,
            "# converted from {source} by syncmail import {}",
            self.tool.command()
        );
        out.push_str(
            "# Read every `# fix:` (edit needed) and `# warning:` line, then run `syncmail check-config`.\n",
        );
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                note.render(&mut out);
            }
        }
        for account in &self.accounts {
            account.render(&mut out);
        }
        out
    }
}

/// A syncmail account name from another tool's name: letters, digits, `-`, `_`, `.`
/// (not first); anything else becomes `-`.
fn account_name(wanted: &str) -> String {
    let mut name = String::new();
    for c in wanted.chars() {
        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_start_matches('.').trim_matches('-');
    if name.is_empty() {
        "account".to_owned()
    } else {
        name.to_owned()
    }
}

/// A shell command line from the other tool as syncmail's argv, which runs without a
/// shell: split on spaces when that is all the shell would have done, else `sh -c`.
pub(crate) fn shell_argv(command: &str, key: &str) -> (Vec<String>, Option<Note>) {
    let command = command.trim();
    let plain = |word: &str| {
        !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./@:+,%=".contains(c))
    };
    let words: Vec<&str> = command.split_whitespace().collect();
    // `NAME=value cmd` is an environment assignment to the shell, not a program.
    if !words.is_empty() && words.iter().all(|w| plain(w)) && !words[0].contains('=') {
        return (words.iter().map(|w| (*w).to_owned()).collect(), None);
    }
    let note = Note::Info(format!(
        "{key} was a shell command line; syncmail runs commands without a shell, so it runs through `sh -c`"
    ));
    (
        vec!["sh".to_owned(), "-c".to_owned(), command.to_owned()],
        Some(note),
    )
}

/// A password command that cannot work yet: it fails with a message naming the account,
/// so the converted file loads (every account needs a secret source) and a sync says
/// exactly what to edit.
pub(crate) fn placeholder_command(account: &str, key: &str) -> Value {
    Value::List(vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!(
            "echo 'syncmail: account {account} has no secret source yet: replace {key} in the config (see its # fix: note)' >&2; exit 1"
        ),
    ])
}

/// Hosts that can never resolve, for a host the other tool computed at run time.
pub(crate) const PLACEHOLDER_HOST: &str = "replace-me.invalid";
pub(crate) const PLACEHOLDER_USER: &str = "replace-me";

/// The operating system's CA bundle under a name some tools want spelled out; syncmail
/// trusts the system's roots anyway, so naming it again converts to nothing.
pub(crate) fn is_system_ca_bundle(path: &str) -> bool {
    const BUNDLES: [&str; 7] = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/usr/local/etc/openssl/cert.pem",
        "/usr/local/share/certs/ca-root-nss.crt",
    ];
    BUNDLES.contains(&path.trim_end_matches('/'))
}

/// `~` and `~/…` expanded with the home directory; other paths unchanged.
pub(crate) fn expand_home(path: &str, dirs: &Dirs) -> Option<PathBuf> {
    if path == "~" || path.starts_with("~/") {
        let home = dirs.home.as_ref()?;
        Some(home.join(path.trim_start_matches('~').trim_start_matches('/')))
    } else {
        Some(PathBuf::from(path))
    }
}

/// A path as syncmail's `maildir` key wants it: `~/…` kept, trailing `/` dropped.
pub(crate) fn dir_value(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Two directory paths are one directory once `~` is expanded and trailing `/` dropped.
pub(crate) fn same_dir(a: &str, b: &str, dirs: &Dirs) -> bool {
    let norm = |p: &str| expand_home(&dir_value(p), dirs);
    norm(a).is_some() && norm(a) == norm(b)
}

/// `ca_file` from a CA file setting: the system bundle converts to nothing; a file that
/// does not exist is left commented out (the loader would refuse it).
pub(crate) fn ca_file(account: &mut AccountDraft, key: &str, path: &str, dirs: &Dirs) {
    if is_system_ca_bundle(path) {
        account.note(Note::Info(format!(
            "{key} {path} is the system's CA bundle, which syncmail trusts anyway"
        )));
        return;
    }
    let expanded = expand_home(path, dirs).unwrap_or_else(|| PathBuf::from(path));
    let shown = expanded.display().to_string();
    if expanded.is_file() {
        account.set(Key::CaFile, Value::str(shown));
    } else {
        account.note_on(
            Key::CaFile,
            Note::Fix(format!(
                "{key} {path} does not exist here; uncomment ca_file once it does"
            )),
        );
        account.note_on(
            Key::CaFile,
            Note::Line(format!("ca_file = {}", toml_string(&shown))),
        );
    }
}

/// `sha256:AB:CD:…` from a SHA-256 fingerprint written with or without colons or the
/// `sha256:` prefix; `None` for anything else (SHA-1, several, malformed).
pub(crate) fn sha256_pin(text: &str) -> Option<String> {
    let lower = text.trim().to_ascii_lowercase();
    let hex: String = lower
        .strip_prefix("sha256:")
        .unwrap_or(&lower)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let pairs: Vec<String> = hex
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).to_ascii_uppercase())
        .collect();
    Some(format!("sha256:{}", pairs.join(":")))
}

/// A folder name as the other tool wrote it (modified UTF-7, as both mbsync 1.4 and
/// OfflineIMAP see server names by default) in the UTF-8 form syncmail's patterns match.
pub(crate) fn decoded_folder(name: &str) -> String {
    if name.contains('&') {
        crate::maildir::utf7::decode(name).unwrap_or_else(|_| name.to_owned())
    } else {
        name.to_owned()
    }
}

/// A duration in seconds as syncmail writes it: whole minutes as `Nm`, else `Ns`.
pub(crate) fn duration(seconds: u64) -> String {
    if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A home directory for loading converted configs (`~` must expand).
    pub(crate) fn dirs(home: &Path) -> Dirs {
        Dirs {
            home: Some(home.to_owned()),
            xdg_config_home: None,
            xdg_state_home: None,
        }
    }

    /// A converted config: its text, what syncmail's loader made of it, and the home
    /// directory it was converted under.
    pub(crate) struct Out {
        pub(crate) text: String,
        pub(crate) config: config::Config,
        pub(crate) home: tempfile::TempDir,
    }

    impl Out {
        pub(crate) fn account(&self, name: &str) -> &config::Account {
            self.config
                .account(name)
                .unwrap_or_else(|| panic!("no account {name} in\n{}", self.text))
        }

        pub(crate) fn imap(&self, name: &str) -> &config::ImapSettings {
            match &self.account(name).kind {
                config::AccountKind::Imap(s) => s,
                config::AccountKind::Pop3(_) => panic!("pop3"),
            }
        }

        pub(crate) fn home(&self, rel: &str) -> std::path::PathBuf {
            self.home.path().join(rel)
        }

        pub(crate) fn folders(&self, name: &str) -> Vec<String> {
            self.imap(name)
                .folders
                .0
                .iter()
                .map(|p| format!("{}{}", if p.exclude { "!" } else { "" }, p.glob))
                .collect()
        }

        /// Whether the output says `needle`, comments read unwrapped.
        pub(crate) fn has(&self, needle: &str) -> bool {
            self.text.replace("\n#   ", " ").contains(needle)
        }

        /// Whether any `# fix:` note was written (the header names the prefix too).
        pub(crate) fn has_fix(&self) -> bool {
            self.text.contains("\n# fix:")
        }
    }

    /// Convert `rc` (with `$HOME` standing for a fresh home directory), then load the
    /// output with syncmail's own loader.
    pub(crate) fn convert_ok(tool: Tool, path: &str, rc: &str) -> Out {
        let home = tempfile::tempdir().unwrap();
        let rc = rc.replace("$HOME", home.path().to_str().unwrap());
        let d = dirs(home.path());
        let converted =
            super::convert(tool, Path::new(path), &rc, &d).unwrap_or_else(|e| panic!("{e}"));
        Out {
            config: load(&converted.text, &d),
            text: converted.text,
            home,
        }
    }

    /// Convert `rc`, which must fail.
    pub(crate) fn convert_err(tool: Tool, path: &str, rc: &str) -> ConfigError {
        match super::convert(tool, Path::new(path), rc, &Dirs::default()) {
            Ok(c) => panic!("converted:\n{}", c.text),
            Err(e) => e,
        }
    }

    /// Load converted text with syncmail's own loader, panicking with the text on error.
    pub(crate) fn load(text: &str, dirs: &Dirs) -> config::Config {
        match config::parse(Path::new("converted.toml"), text, dirs) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("converted config does not load: {e}\n---\n{text}"),
        }
    }

    #[test]
    fn toml_strings_escape_what_would_end_them() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny\u{7}"), r#""x\ny\u0007""#);
        let parsed: toml::Value = toml::from_str(&format!(
            "k = {}",
            toml_string("pass \"show\" \\ it\t\u{1b}")
        ))
        .unwrap();
        assert_eq!(parsed["k"].as_str(), Some("pass \"show\" \\ it\t\u{1b}"));
    }

    #[test]
    fn comments_cannot_be_broken_out_of() {
        let mut out = String::new();
        Note::not_converted("nametrans lambda f:\n[[account]]\nname = \"x\"", "Python")
            .render(&mut out);
        assert!(out.lines().all(|l| l.starts_with('#')), "{out}");
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert!(parsed.as_table().unwrap().is_empty());
    }

    #[test]
    fn long_comments_wrap_under_the_limit() {
        let mut out = String::new();
        Note::Warning("word ".repeat(60)).render(&mut out);
        assert!(out.lines().count() > 1);
        assert!(
            out.lines()
                .all(|l| l.chars().count() <= WRAP && l.starts_with('#'))
        );
        assert!(out.lines().skip(1).all(|l| l.starts_with("#   ")));
    }

    #[test]
    fn shell_commands_split_only_when_the_shell_would_just_split() {
        let (argv, note) = shell_argv("pass show mail/gmail", "PassCmd");
        assert_eq!(argv, ["pass", "show", "mail/gmail"]);
        assert!(note.is_none());
        for shell in [
            "gpg -q -d ~/.pw.gpg",
            "pass show x | head -n1",
            "cat $HOME/pw",
            "security find-generic-password -s 'my mail' -w",
            "FOO=1 pass show x",
            "echo pw # comment",
        ] {
            let (argv, note) = shell_argv(shell, "PassCmd");
            assert_eq!(argv, ["sh", "-c", shell], "{shell}");
            assert!(matches!(note, Some(Note::Info(t)) if t.contains("sh -c")));
        }
    }

    #[test]
    fn account_names_become_valid_and_unique() {
        assert_eq!(account_name("gmail-inbox"), "gmail-inbox");
        assert_eq!(account_name("My Work (old)"), "My-Work-old");
        assert_eq!(account_name(".hidden"), "hidden");
        assert_eq!(account_name("ü"), "account");
        let mut draft = Draft::new(Tool::Mbsync, Path::new("rc"));
        draft.accounts.push(AccountDraft::new("work", "x"));
        assert_eq!(draft.account_name("work"), "work-2");
    }

    #[test]
    fn fingerprints_become_sha256_pins() {
        let hex = "ab".repeat(32);
        let pin = sha256_pin(&hex).unwrap();
        assert!(pin.starts_with("sha256:AB:AB:"), "{pin}");
        assert_eq!(sha256_pin(&pin), Some(pin.clone()));
        assert_eq!(
            sha256_pin(&"ab".repeat(20)),
            None,
            "SHA-1 is not a SHA-256 pin"
        );
        assert_eq!(sha256_pin("zz"), None);
    }

    #[test]
    fn modified_utf7_names_are_decoded_for_patterns() {
        assert_eq!(decoded_folder("Entw&APw-rfe"), "Entwürfe");
        assert_eq!(decoded_folder("A & B"), "A & B", "invalid UTF-7 is kept");
        assert_eq!(decoded_folder("Sent"), "Sent");
    }

    #[test]
    fn write_new_is_private_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/config.toml");
        write_new(&path, "x = 1\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let parent = std::fs::metadata(path.parent().unwrap()).unwrap();
        assert_eq!(parent.permissions().mode() & 0o777, 0o700);
        let e = write_new(&path, "y = 2\n").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x = 1\n");
    }

    #[test]
    fn offlineimap_default_rc_falls_back_to_xdg() {
        let home = tempfile::tempdir().unwrap();
        let d = dirs(home.path());
        assert_eq!(
            Tool::OfflineImap.default_rc(&d).unwrap(),
            home.path().join(".offlineimaprc")
        );
        let xdg = home.path().join(".config/offlineimap/config");
        std::fs::create_dir_all(xdg.parent().unwrap()).unwrap();
        std::fs::write(&xdg, "").unwrap();
        assert_eq!(Tool::OfflineImap.default_rc(&d).unwrap(), xdg);
        assert_eq!(
            Tool::Mbsync.default_rc(&d).unwrap(),
            home.path().join(".mbsyncrc")
        );
    }
}
