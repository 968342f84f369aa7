//! OfflineIMAP (offlineimap3 8.0) config: `~/.offlineimaprc` read the way Python's
//! configparser reads it (sections, `key = value` or `key: value`, indented
//! continuation lines, `%(name)s` interpolation with `[DEFAULT]`), then each account in
//! `[general] accounts` made a syncmail account over the same Maildir tree.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use super::{AccountDraft, Draft, Key, Note, Tool, Value, python};
use crate::config::{ConfigError, Dirs};

#[derive(Clone, Debug)]
struct Opt {
    /// Lower-cased, as configparser stores it.
    key: String,
    /// As written, continuation lines joined with `\n`; not yet interpolated.
    value: String,
    line: usize,
}

#[derive(Clone, Debug)]
struct Section {
    name: String,
    line: usize,
    opts: Vec<Opt>,
}

impl Section {
    /// The last value given for `key` (a repeated key overrides, as a repeated section
    /// does in OfflineIMAP).
    fn raw(&self, key: &str) -> Option<&Opt> {
        self.opts.iter().rev().find(|o| o.key == key)
    }
}

struct Ini<'a> {
    path: &'a Path,
    text: &'a str,
    sections: Vec<Section>,
    defaults: Section,
    /// `[DEFAULT]` keys read through a section or an interpolation.
    used_defaults: RefCell<BTreeSet<String>>,
}

impl Ini<'_> {
    fn error(&self, line: usize, message: impl Into<String>, help: &str) -> ConfigError {
        super::error_at(self.path, self.text, line, message, Some(help))
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

fn parse<'a>(path: &'a Path, text: &'a str) -> Result<Ini<'a>, ConfigError> {
    let mut ini = Ini {
        path,
        text,
        sections: Vec::new(),
        defaults: Section {
            name: "DEFAULT".into(),
            line: 0,
            opts: Vec::new(),
        },
        used_defaults: RefCell::new(BTreeSet::new()),
    };
    // The section being read (None: before the first header; usize::MAX: DEFAULT) and
    // the indentation of the option that continuation lines extend.
    let mut current: Option<usize> = None;
    let mut open_opt: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim_end_matches('\r');
        let trimmed = raw.trim();
        let indent = raw.len() - raw.trim_start().len();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.is_empty() {
            open_opt = None;
            continue;
        }
        if let (Some(level), Some(idx)) = (open_opt, current)
            && indent > level
        {
            if let Some(o) = section_mut(&mut ini, idx).opts.last_mut() {
                o.value.push('\n');
                o.value.push_str(trimmed);
            }
            continue;
        }
        if trimmed.starts_with('[') && trimmed.ends_with(']') && trimmed.len() > 2 {
            let name = trimmed[1..trimmed.len() - 1].trim().to_owned();
            open_opt = None;
            if name == "DEFAULT" {
                current = Some(usize::MAX);
            } else if let Some(idx) = ini.sections.iter().position(|s| s.name == name) {
                // A section given twice: OfflineIMAP reads the later one's values.
                current = Some(idx);
            } else {
                ini.sections.push(Section {
                    name,
                    line,
                    opts: Vec::new(),
                });
                current = Some(ini.sections.len() - 1);
            }
            continue;
        }
        let Some(idx) = current else {
            return Err(ini.error(
                line,
                "this line comes before any [section] header",
                "start the file with [general]",
            ));
        };
        let Some(at) = trimmed.find(['=', ':']) else {
            return Err(ini.error(
                line,
                "not a `key = value` line",
                "write options as key = value; indent a line to continue the value above",
            ));
        };
        let key = trimmed[..at].trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(ini.error(
                line,
                "the line has a value but no key",
                "write options as key = value",
            ));
        }
        let value = trimmed[at + 1..].trim().to_owned();
        section_mut(&mut ini, idx)
            .opts
            .push(Opt { key, value, line });
        open_opt = Some(indent);
    }
    Ok(ini)
}

/// The section at `idx` (`usize::MAX` is `[DEFAULT]`).
fn section_mut<'s>(ini: &'s mut Ini<'_>, idx: usize) -> &'s mut Section {
    if idx == usize::MAX {
        &mut ini.defaults
    } else {
        &mut ini.sections[idx]
    }
}

/// One section being converted: values read through it are marked taken, so what is
/// left can be reported.
struct View<'i, 'a> {
    ini: &'i Ini<'a>,
    section: &'i Section,
    taken: BTreeSet<String>,
}

impl<'i, 'a> View<'i, 'a> {
    fn new(ini: &'i Ini<'a>, section: &'i Section) -> View<'i, 'a> {
        View {
            ini,
            section,
            taken: BTreeSet::new(),
        }
    }

    /// The option as written, from this section or `[DEFAULT]`.
    fn raw(&self, key: &str) -> Option<&'i Opt> {
        self.section.raw(key).or_else(|| self.ini.defaults.raw(key))
    }

    fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// The value, interpolated, and its line; marks it taken.
    fn get(&mut self, key: &str) -> Result<Option<(String, usize)>, ConfigError> {
        let Some(opt) = self.raw(key) else {
            return Ok(None);
        };
        self.take(key);
        let value = self.interpolate(&opt.value, opt.line, 0)?;
        Ok(Some((value, opt.line)))
    }

    fn take(&mut self, key: &str) {
        self.taken.insert(key.to_owned());
        if self.section.raw(key).is_none() {
            self.ini.used_defaults.borrow_mut().insert(key.to_owned());
        }
    }

    /// A configparser boolean.
    fn flag(&mut self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some((v, line)) = self.get(key)? else {
            return Ok(None);
        };
        match v.to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" | "on" => Ok(Some(true)),
            "0" | "no" | "false" | "off" => Ok(Some(false)),
            _ => Err(self.ini.error(
                line,
                format!("`{v}` is not a boolean for {key}"),
                "use yes or no (true/false, on/off, 1/0)",
            )),
        }
    }

    /// `%(name)s` from this section or `[DEFAULT]`, `%%` as `%`, as configparser's
    /// BasicInterpolation does.
    fn interpolate(&self, value: &str, line: usize, depth: usize) -> Result<String, ConfigError> {
        const HELP: &str = "write %% for a literal %, or %(name)s for another option's value";
        if depth > 10 {
            return Err(self.ini.error(
                line,
                "interpolation nests too deeply (a loop of %(name)s references?)",
                HELP,
            ));
        }
        let mut out = String::new();
        let mut rest = value;
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            let tail = &rest[at + 1..];
            if let Some(after) = tail.strip_prefix('%') {
                out.push('%');
                rest = after;
            } else if let Some(inner) = tail.strip_prefix('(')
                && let Some(close) = inner.find(")s")
            {
                let name = inner[..close].to_ascii_lowercase();
                let opt = match self.section.raw(&name) {
                    Some(o) => o,
                    None => {
                        let o = self.ini.defaults.raw(&name).ok_or_else(|| {
                            self.ini.error(
                                line,
                                format!("%({name})s names no option of this section or [DEFAULT]"),
                                HELP,
                            )
                        })?;
                        self.ini.used_defaults.borrow_mut().insert(name.clone());
                        o
                    }
                };
                out.push_str(&self.interpolate(&opt.value, line, depth + 1)?);
                rest = &inner[close + 2..];
            } else {
                return Err(self.ini.error(line, "a lone `%` in a value", HELP));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Options of this section not taken, as `not converted` notes.
    fn leftovers(&self, why: impl Fn(&str) -> &'static str) -> Vec<Note> {
        let mut seen = BTreeSet::new();
        self.section
            .opts
            .iter()
            .rev()
            .filter(|o| !self.taken.contains(&o.key) && seen.insert(o.key.clone()))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|o| Note::not_converted(shown(o), why(&o.key)))
            .collect()
    }
}

/// An option as a comment shows it; secrets are not repeated.
fn shown(o: &Opt) -> String {
    const SECRET: [&str; 4] = [
        "remotepass",
        "oauth2_client_secret",
        "oauth2_refresh_token",
        "oauth2_access_token",
    ];
    if SECRET.contains(&o.key.as_str()) {
        format!("{} = <redacted>", o.key)
    } else {
        format!("{} = {}", o.key, o.value)
    }
}

/// Why an OfflineIMAP option has no syncmail equivalent.
fn why(key: &str) -> &'static str {
    if key.starts_with("customflag_") {
        return "syncmail keeps keywords on the server and flags in file names only";
    }
    if key.starts_with("oauth2_") {
        return "syncmail runs oauth2_token_command for a fresh token instead";
    }
    match key {
        "metadata" => {
            "syncmail keeps its own state database; on first contact it pairs the mail already on both sides"
        }
        "pythonfile" => "syncmail evaluates no Python; what it computed is marked below",
        "maxsyncaccounts" => "syncmail syncs every account concurrently",
        "ui" => "syncmail logs to stderr (see general.log_level)",
        "ignore-readonly" => "syncmail reports a read-only server folder once and goes on",
        "fsync" => "syncmail always makes each delivery durable before recording it",
        "quick" => "syncmail's passes are incremental already",
        "presynchook" => "syncmail has no hook before a pass",
        "postsynchook" => "use general.after_sync (a program and its arguments, no shell)",
        "newmail_hook" => "use general.on_new_mail (a program and its arguments, no shell)",
        "maxsize" => "syncmail always transfers whole messages",
        "maxage" | "startdate" => "syncmail syncs every message of a folder, whatever its age",
        "synclabels" | "labelsheader" | "ignorelabels" => {
            "syncmail syncs Gmail labels as the folders Gmail shows them in"
        }
        "filterheaders" => "syncmail never changes a message",
        "proxy" | "authproxy" => "syncmail connects directly",
        "maildir-windows-compatible" => "syncmail writes standard Maildir names (`:2,`)",
        "utf8foldernames" | "decodefoldernames" => "syncmail always stores folder names as UTF-8",
        "sslclientcert" | "sslclientkey" => "syncmail does not log in with client certificates",
        "ssl_version" | "tls_level" => "syncmail always uses TLS 1.2 or 1.3",
        "remote_identity" => "syncmail logs in as `user` only",
        "preauthtunnel" | "transporttunnel" | "tunnel" => {
            "syncmail connects over TCP itself; a tunnel command has no equivalent"
        }
        "reference" => "syncmail syncs folders under their full server names",
        "holdconnectionopen" | "keepalive" => {
            "syncmail keeps its IDLE connection open and checks it by itself"
        }
        "singlethreadperfolder" => "syncmail chooses how to spread folders over its connections",
        "subscribedonly" => "syncmail syncs what `folders` selects, subscribed or not",
        "createfolders" => {
            "syncmail creates a folder on the other side whenever one side has it and `folders` selects it"
        }
        "foldersort" => "syncmail syncs folders in name order",
        "retrycount" => "syncmail retries a failed pass with backoff",
        "copy_ignore_eval" => "syncmail evaluates no Python",
        "ipv6" => "syncmail uses whichever address family connects",
        "trashfolder" | "spamfolder" | "realdelete" => {
            "syncmail syncs Gmail's Trash and Spam like other folders"
        }
        "restoreatime" => "syncmail does not change access times it does not need",
        "utime_from_header" | "filename_use_mail_timestamp" => {
            "syncmail names and dates files itself"
        }
        "dynamic_folderfilter" => "syncmail applies `folders` on every pass",
        "autorefresh" => "converted to poll_interval",
        "account" | "accounts" => "not an option OfflineIMAP reads here",
        _ => "no syncmail equivalent",
    }
}

/// `$NAME` and `${NAME}` from the environment (OfflineIMAP expands them in paths);
/// `$HOME` at the start becomes `~`. Unset variables are left and reported.
fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut unset = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let (name, after) = if let Some(inner) = tail.strip_prefix('{') {
            match inner.find('}') {
                Some(close) => (&inner[..close], &inner[close + 1..]),
                None => ("", tail),
            }
        } else {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            (&tail[..end], &tail[end..])
        };
        if name.is_empty() {
            out.push('$');
            rest = tail;
            continue;
        }
        if name == "HOME" && out.is_empty() {
            out.push('~');
        } else {
            match env(name) {
                Some(v) => out.push_str(&v),
                None => {
                    unset.push(name.to_owned());
                    out.push('$');
                    out.push_str(name);
                }
            }
        }
        rest = after;
    }
    out.push_str(rest);
    (out, unset)
}

fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A path option as OfflineIMAP reads it: `~` kept (syncmail expands it too),
/// environment variables expanded now with a note.
fn path_option(
    view: &mut View,
    key: &str,
    account: &mut AccountDraft,
    on: Key,
) -> Result<Option<String>, ConfigError> {
    let Some((value, _)) = view.get(key)? else {
        return Ok(None);
    };
    let (expanded, unset) = expand_env(&value, &environment);
    if !unset.is_empty() {
        account.note_on(
            on,
            Note::Fix(format!(
                "{key} = {value} names environment variables that are not set here ({}); write the path out",
                unset.join(", ")
            )),
        );
    } else if expanded != value && !(value.starts_with("$HOME") || value.starts_with("${HOME}")) {
        account.note_on(
            on,
            Note::Info(format!(
                "{key} = {value}: environment variables expanded now; syncmail does not expand them"
            )),
        );
    }
    Ok(Some(expanded))
}

/// Convert an OfflineIMAP config.
pub(crate) fn convert(path: &Path, text: &str, dirs: &Dirs) -> Result<Draft, ConfigError> {
    let ini = parse(path, text)?;
    let mut draft = Draft::new(Tool::OfflineImap, path);
    let Some(general) = ini.section("general") else {
        return Err(ConfigError::file(
            path,
            "there is no [general] section",
            Some("OfflineIMAP needs [general] with `accounts = NAME, ...`"),
        ));
    };
    let mut g = View::new(&ini, general);
    let Some((accounts, accounts_line)) = g.get("accounts")? else {
        return Err(ini.error(
            general.line,
            "[general] has no `accounts` option",
            "list the accounts to convert: accounts = Personal, Work",
        ));
    };
    let names: Vec<String> = accounts
        .split(',')
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    let timeout = match g.get("socktimeout")? {
        Some((t, line)) => Some(
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|t| *t >= 0.0)
                .ok_or_else(|| {
                    ini.error(
                        line,
                        format!("`{t}` is not a number of seconds"),
                        "write socktimeout in seconds, e.g. 60",
                    )
                })?,
        ),
        None => None,
    };
    draft.notes.extend(g.leftovers(why));

    if let Some(missing) = names
        .iter()
        .find(|n| ini.section(&format!("Account {n}")).is_none())
    {
        return Err(ini.error(
            accounts_line,
            format!("account `{missing}` has no [Account {missing}] section"),
            "add the section, or remove the name from `accounts`",
        ));
    }
    let mut used_repos: BTreeSet<String> = BTreeSet::new();
    for name in &names {
        let Some(section) = ini.section(&format!("Account {name}")) else {
            continue;
        };
        let mut view = View::new(&ini, section);
        let repo = |view: &mut View, key: &str| -> Result<&Section, ConfigError> {
            let Some((r, line)) = view.get(key)? else {
                return Err(ini.error(
                    section.line,
                    format!("[Account {name}] has no `{key}`"),
                    "name the [Repository ...] section to use",
                ));
            };
            ini.section(&format!("Repository {r}")).ok_or_else(|| {
                ini.error(
                    line,
                    format!("there is no [Repository {r}] section"),
                    "define the repository, or fix the name",
                )
            })
        };
        let local = repo(&mut view, "localrepository")?;
        let remote = repo(&mut view, "remoterepository")?;
        used_repos.insert(local.name.clone());
        used_repos.insert(remote.name.clone());

        let converted = account(&ini, &mut draft, name, view, local, remote, timeout, dirs)?;
        if let Some(a) = converted {
            draft.accounts.push(a);
        }
    }
    for s in &ini.sections {
        let listed = s
            .name
            .strip_prefix("Account ")
            .is_some_and(|n| names.iter().any(|m| m == n));
        let note = if s.name == "general" || listed {
            continue;
        } else if s.name.starts_with("Account ") {
            Note::not_converted(format!("[{}]", s.name), "not listed in [general] accounts")
        } else if s.name.starts_with("Repository ") {
            if used_repos.contains(&s.name) {
                continue;
            }
            Note::not_converted(format!("[{}]", s.name), "no converted account uses it")
        } else if s.name == "mbnames" {
            Note::not_converted(
                "[mbnames]",
                "syncmail writes no mailbox list for mail clients",
            )
        } else {
            Note::not_converted(format!("[{}]", s.name), "OfflineIMAP has no such section")
        };
        draft.notes.push(note);
    }
    let used = ini.used_defaults.borrow();
    for o in &ini.defaults.opts {
        if !used.contains(&o.key) {
            draft.notes.push(Note::not_converted(
                format!("[DEFAULT] {}", shown(o)),
                "no converted option uses it",
            ));
        }
    }
    if draft.accounts.is_empty() {
        draft.notes.push(Note::Fix(
            "no account between an IMAP repository and a Maildir repository could be converted, so there is no account yet"
                .into(),
        ));
    }
    Ok(draft)
}

fn repo_type(ini: &Ini, view: &mut View) -> Result<String, ConfigError> {
    match view.get("type")? {
        Some((t, _)) => Ok(t.to_ascii_lowercase()),
        None => Err(ini.error(
            view.section.line,
            format!("[{}] has no `type`", view.section.name),
            "OfflineIMAP needs type = IMAP, Gmail, Maildir or GmailMaildir",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn account(
    ini: &Ini,
    draft: &mut Draft,
    name: &str,
    mut acc: View,
    local: &Section,
    remote: &Section,
    timeout: Option<f64>,
    dirs: &Dirs,
) -> Result<Option<AccountDraft>, ConfigError> {
    let mut r = View::new(ini, remote);
    let mut l = View::new(ini, local);
    let remote_type = repo_type(ini, &mut r)?;
    let local_type = repo_type(ini, &mut l)?;
    if !matches!(remote_type.as_str(), "imap" | "gmail")
        || !matches!(local_type.as_str(), "maildir" | "gmailmaildir")
    {
        draft.notes.push(Note::not_converted(
            format!("[Account {name}]"),
            format!(
                "it syncs a {remote_type} repository with a {local_type} one; syncmail syncs an IMAP server with a Maildir"
            ),
        ));
        return Ok(None);
    }
    let gmail = remote_type == "gmail";
    let account_name = draft.account_name(name);
    let mut a = AccountDraft::new(
        &account_name,
        format!(
            "From [Account {name}] (remote [{}], local [{}]), line {}.",
            remote.name, local.name, acc.section.line
        ),
    );

    // The server.
    match (r.get("remotehost")?, r.has("remotehosteval")) {
        (Some((h, _)), _) => a.set(Key::Host, Value::str(h)),
        (None, _) if gmail => a.set(Key::Host, Value::str("imap.gmail.com")),
        (None, eval) => {
            a.set(Key::Host, Value::str(super::PLACEHOLDER_HOST));
            let how = if eval {
                r.take("remotehosteval");
                let expr = r.raw("remotehosteval").map_or("", |o| o.value.as_str());
                format!("remotehosteval = {expr} computed the host in Python")
            } else {
                "the repository names no remotehost".to_owned()
            };
            a.note_on(
                Key::Host,
                Note::Fix(format!("{how}; write the IMAP server's host name here")),
            );
        }
    }
    // Gmail repositories default to the same; OfflineIMAP lets both be overridden.
    let ssl = r.flag("ssl")?.unwrap_or(true);
    let starttls_set = r.has("starttls");
    let starttls = r.flag("starttls")?.unwrap_or(true);
    let tls = match (ssl, starttls) {
        (true, _) => {
            if starttls_set {
                a.note(Note::not_converted(
                    "starttls",
                    "OfflineIMAP ignores it with ssl = yes, as syncmail does with tls = \"implicit\"",
                ));
            }
            "implicit"
        }
        (false, true) => {
            a.note_on(
                Key::Tls,
                Note::Warning(
                    "ssl = no with starttls: OfflineIMAP upgraded with STARTTLS when the server offered it and went on in plaintext otherwise; syncmail requires it"
                        .into(),
                ),
            );
            "starttls"
        }
        (false, false) => "none",
    };
    a.set(Key::Tls, Value::str(tls));
    if let Some((p, line)) = r.get("remoteport")? {
        let port = p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                ini.error(
                    line,
                    format!("`{p}` is not a port number"),
                    "use 1-65535, e.g. 993",
                )
            })?;
        if port != if tls == "implicit" { 993 } else { 143 } {
            a.set(Key::Port, Value::Int(i64::from(port)));
        }
    } else if r.has("remoteporteval") {
        r.take("remoteporteval");
        a.note_on(
            Key::Port,
            Note::Fix("remoteporteval computed the port in Python; the default port is used: set port if it differs".into()),
        );
    }
    if tls == "none" {
        let host = match a.get(Key::Host) {
            Some(Value::Str(h)) => h.clone(),
            _ => String::new(),
        };
        if !crate::config::is_loopback(&host) {
            a.set(Key::AllowPlaintext, Value::Bool(true));
            a.note_on(
                Key::Tls,
                Note::Warning(
                    "OfflineIMAP connected without TLS (ssl = no, starttls = no); syncmail sends a password in plaintext to a remote host only with allow_plaintext = true, set below. Prefer tls = \"starttls\" or \"implicit\""
                        .into(),
                ),
            );
        }
    }
    match r.get("remoteuser")? {
        Some((u, _)) => a.set(Key::User, Value::str(u)),
        None => {
            a.set(Key::User, Value::str(super::PLACEHOLDER_USER));
            let how = if r.has("remoteusereval") {
                r.take("remoteusereval");
                "remoteusereval computed the login name in Python".to_owned()
            } else {
                "the repository names no remoteuser (OfflineIMAP looked in ~/.netrc)".to_owned()
            };
            a.note_on(Key::User, Note::Fix(format!("{how}; write it here")));
        }
    }

    // The secret.
    let mechs: Vec<String> = match r.get("auth_mechanisms")? {
        Some((m, _)) => m
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect(),
        None => Vec::new(),
    };
    let oauth_keys: Vec<&Opt> = remote
        .opts
        .iter()
        .filter(|o| o.key.starts_with("oauth2_"))
        .collect();
    let oauth = oauth_keys.iter().any(|o| {
        matches!(
            o.key.as_str(),
            "oauth2_access_token"
                | "oauth2_refresh_token"
                | "oauth2_access_token_eval"
                | "oauth2_refresh_token_eval"
        )
    }) || mechs == ["XOAUTH2"];
    match mechs.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => {}
        ["PLAIN"] => a.set(Key::Auth, Value::str("plain")),
        ["LOGIN"] => a.set(Key::Auth, Value::str("login")),
        ["XOAUTH2"] => {}
        _ => a.note_on(
            Key::Auth,
            Note::Info(format!(
                "auth_mechanisms = {}: syncmail picks PLAIN or LOGIN for a password, XOAUTH2 or OAUTHBEARER for a token, from what the server offers",
                mechs.join(", ")
            )),
        ),
    }
    if oauth {
        a.set(Key::Auth, Value::str("xoauth2"));
        a.set(
            Key::Oauth2TokenCommand,
            super::placeholder_command(&account_name, "oauth2_token_command"),
        );
        a.note_on(
            Key::Oauth2TokenCommand,
            Note::Fix(
                "OfflineIMAP fetched OAuth2 access tokens itself from oauth2_* settings; syncmail runs a command that prints a fresh access token (e.g. oama, or mutt_oauth2.py with the same client id and refresh token): replace this placeholder"
                    .into(),
            ),
        );
        a.note_on(
            Key::Oauth2TokenCommand,
            Note::Line(format!(
                "oauth2_token_command = [\"oama\", \"access\", {}]",
                super::toml_string(match a.get(Key::User) {
                    Some(Value::Str(u)) => u,
                    _ => "",
                })
            )),
        );
        for o in oauth_keys {
            r.take(&o.key);
            a.note(Note::not_converted(shown(o), why(&o.key)));
        }
        for key in ["remotepass", "remotepassfile", "remotepasseval"] {
            if r.has(key) {
                r.take(key);
                a.note(Note::not_converted(key, "the OAuth2 token is used"));
            }
        }
    } else if let Some((p, _)) = r.get("remotepass")? {
        a.set(Key::Password, Value::str(p));
        a.note_on(
            Key::Password,
            Note::Warning(
                "the password is written in this file, as it was in the OfflineIMAP config; password_command keeps it in a keyring instead (e.g. [\"pass\", \"show\", \"mail/work\"])"
                    .into(),
            ),
        );
    } else if let Some(file) = path_option(&mut r, "remotepassfile", &mut a, Key::PasswordCommand)?
    {
        let expanded =
            super::expand_home(&file, dirs).map_or(file.clone(), |p| p.display().to_string());
        a.set(
            Key::PasswordCommand,
            Value::List(vec!["cat".into(), expanded]),
        );
        a.note_on(
            Key::PasswordCommand,
            Note::Info(
                "remotepassfile: the password file, printed by cat (syncmail reads the first line)"
                    .into(),
            ),
        );
    } else {
        let how = match r.get("remotepasseval")? {
            Some((expr, _)) => {
                a.note(Note::not_converted(
                    format!("remotepasseval = {expr}"),
                    "syncmail evaluates no Python",
                ));
                "remotepasseval ran Python to get the password".to_owned()
            }
            None => {
                "OfflineIMAP took the password from ~/.netrc or asked on the terminal".to_owned()
            }
        };
        a.set(
            Key::PasswordCommand,
            super::placeholder_command(&account_name, "password_command"),
        );
        a.note_on(
            Key::PasswordCommand,
            Note::Fix(format!(
                "{how}; syncmail runs a command that prints the password: replace this placeholder"
            )),
        );
        a.note_on(
            Key::PasswordCommand,
            Note::Line(format!(
                "password_command = [\"pass\", \"show\", \"mail/{account_name}\"]"
            )),
        );
    }
    if gmail && !oauth {
        a.note_on(
            Key::User,
            Note::Info("Gmail accepts a password login only with an app password; OAuth2 (oauth2_token_command) works with any account".into()),
        );
    }

    // Trust.
    if let Some(ca) = path_option(&mut r, "sslcacertfile", &mut a, Key::CaFile)? {
        if ca == "OS-DEFAULT" {
            a.note(Note::Info(
                "sslcacertfile = OS-DEFAULT: syncmail trusts the system's CAs anyway".into(),
            ));
        } else {
            super::ca_file(&mut a, "sslcacertfile", &ca, dirs);
        }
    }
    if let Some((fp, _)) = r.get("cert_fingerprint")? {
        let prints: Vec<&str> = fp
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        match (&prints[..], prints.first().and_then(|p| super::sha256_pin(p))) {
            ([_], Some(pin)) => {
                a.set(Key::CertFingerprint, Value::str(pin));
                a.note_on(
                    Key::CertFingerprint,
                    Note::Info("syncmail checks this pin in addition to the certificate chain: a self-signed server certificate also needs ca_file".into()),
                );
            }
            _ => a.note(Note::not_converted(
                format!("cert_fingerprint = {fp}"),
                "syncmail pins one SHA-256 fingerprint; get it with: openssl s_client -connect HOST:993 </dev/null | openssl x509 -noout -fingerprint -sha256",
            )),
        }
    }

    // Connection details.
    if let Some(t) = timeout {
        let secs = t.round() as u64;
        if secs > 0 {
            a.set(Key::Timeout, Value::str(super::duration(secs)));
            a.note_on(
                Key::Timeout,
                Note::Info("from [general] socktimeout".into()),
            );
        }
    }
    if let Some(c) = r.flag("usecompression")? {
        a.set(Key::Compress, Value::Bool(c));
    }
    if let Some((n, line)) = r.get("maxconnections")? {
        let n: i64 = n.trim().parse().map_err(|_| {
            ini.error(
                line,
                format!("`{n}` is not a number of connections"),
                "write a whole number, e.g. 2",
            )
        })?;
        let clamped = n.clamp(1, 16);
        a.set(Key::Connections, Value::Int(clamped));
        if clamped != n {
            a.note_on(
                Key::Connections,
                Note::Info(format!("maxconnections = {n} is outside syncmail's 1-16")),
            );
        }
    }

    // The Maildir.
    let maildir = path_option(&mut l, "localfolders", &mut a, Key::Maildir)?;
    match maildir {
        Some(m) => {
            a.set(Key::Maildir, Value::str(super::dir_value(&m)));
            if !(m.starts_with('/') || m.starts_with('~')) {
                a.note_on(
                    Key::Maildir,
                    Note::Fix("OfflineIMAP read localfolders relative to the directory it ran in; syncmail reads it relative to general.maildir: write the full path".into()),
                );
            }
        }
        None => {
            return Err(ini.error(
                local.line,
                format!("[Repository {}] has no localfolders", local.name),
                "a Maildir repository needs localfolders = ~/Mail/NAME",
            ));
        }
    }
    let sep = l.get("sep")?.map_or_else(|| ".".to_owned(), |(s, _)| s);
    a.set(Key::Layout, Value::str("verbatim"));
    if sep != "/" {
        a.note_on(
            Key::Layout,
            Note::Warning(format!(
                "sep = {sep}: OfflineIMAP stored server folder Parent/Child as the directory Parent{sep}Child; syncmail stores it as Parent/Child (INBOX and top-level folders are the same). Before the first sync, move each such directory (mv Parent{sep}Child Parent/Child), or syncmail fetches it again and uploads the old directory as a new folder"
            )),
        );
    } else {
        a.note_on(
            Key::Layout,
            Note::Info(
                "sep = /: OfflineIMAP's nested directories are syncmail's verbatim layout".into(),
            ),
        );
    }
    // Either option made OfflineIMAP store UTF-8 names, as syncmail does.
    let utf8 = acc.flag("utf8foldernames")?.unwrap_or(false)
        | r.flag("decodefoldernames")?.unwrap_or(false);
    if !utf8 {
        a.set(Key::FolderNames, Value::str("modified-utf-7"));
        a.note_on(
            Key::FolderNames,
            Note::Info(
                "OfflineIMAP stored non-ASCII folder names in modified UTF-7 (Entw&APw-rfe); syncmail keeps that spelling so it adopts those directories".into(),
            ),
        );
    }
    for repo in [&mut r, &mut l] {
        if let Some((expr, _)) = repo.get("nametrans")? {
            a.note_on(
                Key::Folders,
                Note::Warning(format!(
                    "[{}] nametrans = {expr}: syncmail names each local folder after its server folder, so directories this renamed are not adopted: rename them back before the first sync, or they are fetched again and the renamed ones uploaded as new folders",
                    repo.section.name
                )),
            );
        }
    }

    // Which folders.
    let mut folders = vec!["*".to_owned()];
    if let Some((filter, _)) = r.get("folderfilter")? {
        match python::folder_filter(&filter) {
            Ok(patterns) => {
                folders = patterns
                    .iter()
                    .map(|p| {
                        if utf8 {
                            p.clone()
                        } else {
                            super::decoded_folder(p)
                        }
                    })
                    .collect();
                a.note_on(
                    Key::Folders,
                    Note::Info(format!("from folderfilter = {filter}")),
                );
            }
            Err(why) => {
                a.note_on(
                    Key::Folders,
                    Note::Fix(format!(
                        "folderfilter = {filter} could not be converted ({why}); every folder is selected: write `folders` patterns that select the same folders"
                    )),
                );
            }
        }
    }
    if let Some((includes, _)) = r.get("folderincludes")? {
        match python::string_list(&includes) {
            Some(list) => {
                for f in list {
                    let f = if utf8 { f } else { super::decoded_folder(&f) };
                    if !folders.contains(&f) {
                        folders.push(f);
                    }
                }
                a.note_on(
                    Key::Folders,
                    Note::Info(format!("with folderincludes = {includes}")),
                );
            }
            None => a.note(Note::not_converted(
                format!("folderincludes = {includes}"),
                "only a list of folder names converts",
            )),
        }
    }
    if l.has("folderfilter") {
        let (f, _) = l.get("folderfilter")?.unwrap_or_default();
        a.note(Note::not_converted(
            format!("[{}] folderfilter = {f}", local.name),
            "syncmail selects folders by their server names only (`folders`)",
        ));
    }
    a.set(Key::Folders, Value::List(folders));
    if let Some((idle, _)) = r.get("idlefolders")? {
        match python::string_list(&idle) {
            Some(list) => {
                let list: Vec<String> = list
                    .into_iter()
                    .map(|f| if utf8 { f } else { super::decoded_folder(&f) })
                    .collect();
                a.set(Key::Idle, Value::List(list));
            }
            None => a.note(Note::not_converted(
                format!("idlefolders = {idle}"),
                "only a list of folder names converts",
            )),
        }
    }
    if let Some((minutes, line)) = acc.get("autorefresh")? {
        let m: f64 = minutes
            .trim()
            .parse()
            .ok()
            .filter(|m: &f64| *m > 0.0)
            .ok_or_else(|| {
                ini.error(
                    line,
                    format!("`{minutes}` is not a number of minutes"),
                    "write autorefresh in minutes, e.g. 5",
                )
            })?;
        let secs = (m * 60.0).round().max(1.0) as u64;
        a.set(Key::PollInterval, Value::str(super::duration(secs)));
    }

    // Which way, and what may be removed.
    let ro_remote = r.flag("readonly")?.unwrap_or(false);
    let ro_local = l.flag("readonly")?.unwrap_or(false);
    let direction = match (ro_remote, ro_local) {
        (false, false) => "both",
        (true, false) => "pull",
        (false, true) => "push",
        (true, true) => {
            a.note_on(
                Key::Direction,
                Note::Fix("both repositories are readonly, so OfflineIMAP changed nothing; syncmail has no such mode: direction is \"pull\"".into()),
            );
            "pull"
        }
    };
    a.set(Key::Direction, Value::str(direction));
    let remote_deletes = r.flag("sync_deletes")?.unwrap_or(true);
    let local_deletes = l.flag("sync_deletes")?.unwrap_or(true);
    let remote_expunge = r.flag("expunge")?.unwrap_or(true);
    let local_removal = remote_deletes && direction != "push";
    let server_removal = local_deletes && remote_expunge && direction != "pull";
    let expunge = match (local_removal, server_removal) {
        (true, true) => "both",
        (true, false) => "local",
        (false, true) => "server",
        (false, false) => "none",
    };
    a.set(Key::Expunge, Value::str(expunge));
    if local_deletes && !remote_expunge && direction != "pull" {
        a.note_on(
            Key::Expunge,
            Note::Info("expunge = no: OfflineIMAP marked messages deleted locally as \\Deleted on the server without expunging them; syncmail leaves them on the server untouched".into()),
        );
    }

    a.notes.extend(acc.leftovers(why));
    a.notes.extend(r.leftovers(why));
    a.notes.extend(l.leftovers(why));
    Ok(Some(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMech, Layout, SecretSource, Tls};
    use crate::import::tests::{Out, dirs};
    use crate::sync::{Direction, Expunge};

    const RC: &str = "/home/me/.offlineimaprc";

    fn convert_ok(rc: &str) -> Out {
        crate::import::tests::convert_ok(Tool::OfflineImap, RC, rc)
    }

    fn convert_err(rc: &str) -> ConfigError {
        crate::import::tests::convert_err(Tool::OfflineImap, RC, rc)
    }

    const TWO_ACCOUNTS: &str = r#"[general]
accounts = Personal, Work
pythonfile = ~/.offlineimap.py
metadata = ~/.offlineimap
socktimeout = 60

[DEFAULT]
mailroot = ~/Mail

[Account Personal]
localrepository = personal-local
remoterepository = personal-remote
autorefresh = 5
postsynchook = notmuch new

[Repository personal-local]
type = Maildir
localfolders = %(mailroot)s/personal
sep = /

[Repository personal-remote]
type = IMAP
remotehost = imap.fastmail.com
remoteuser: me@fastmail.com
remotepasseval = get_pass("fastmail")
sslcacertfile = OS-DEFAULT
; the folders I read
folderfilter = lambda folder: folder not in ['Trash', 'Spam',
    'Junk Mail']
idlefolders = ['INBOX', 'Lists/rust']
maxconnections = 2

[Account Work]
localrepository = work-local
remoterepository = work-remote

[Repository work-local]
type = GmailMaildir
localfolders = ~/Mail/work

[Repository work-remote]
type = Gmail
remoteuser = me@company.com
oauth2_client_id = 123.apps.googleusercontent.com
oauth2_client_secret = s3cr3t
oauth2_refresh_token = r3fr3sh
folderfilter = lambda f: f in ['INBOX', '[Gmail]/Sent Mail', 'Entw&APw-rfe']
nametrans = lambda f: f.replace('[Gmail]/', '')
readonly = yes
trashfolder = [Gmail]/Trash

[mbnames]
enabled = yes
"#;

    #[test]
    fn two_accounts_with_folderfilter_and_remotepasseval() {
        let out = convert_ok(TWO_ACCOUNTS);
        assert!(out.text.starts_with(&format!(
            "# converted from {RC} by syncmail import offlineimap\n"
        )));
        assert_eq!(out.config.accounts.len(), 2);

        let p = out.account("Personal");
        assert_eq!(
            (p.server.host.as_str(), p.server.port, p.server.tls),
            ("imap.fastmail.com", 993, Tls::Implicit)
        );
        assert_eq!(p.server.user, "me@fastmail.com");
        assert_eq!(p.server.timeout, std::time::Duration::from_secs(60));
        assert_eq!(
            p.maildir,
            out.home("Mail/personal"),
            "%(mailroot)s from [DEFAULT]"
        );
        assert_eq!(p.poll_interval, std::time::Duration::from_secs(300));
        assert_eq!(
            out.folders("Personal"),
            ["*", "!Trash", "!Spam", "!Junk Mail"]
        );
        let s = out.imap("Personal");
        assert_eq!(
            s.idle.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
            ["INBOX", "Lists/rust"]
        );
        assert_eq!(s.connections, 2);
        assert_eq!(
            (s.layout, s.direction, s.expunge),
            (Layout::Verbatim, Direction::Both, Expunge::Both)
        );
        // remotepasseval: a comment, a commented-out suggestion, and a placeholder that
        // loads but fails with a message naming the account.
        assert!(out.has("# not converted: remotepasseval = get_pass(\"fastmail\") (syncmail evaluates no Python)"));
        assert!(out.has("# password_command = [\"pass\", \"show\", \"mail/Personal\"]"));
        assert!(out.has("# fix: remotepasseval ran Python to get the password"));
        assert!(
            matches!(&p.secret, SecretSource::PasswordCommand(argv) if argv[2].contains("account Personal has no secret source yet"))
        );
        assert!(out.has("# not converted: postsynchook = notmuch new (use general.after_sync"));
        assert!(out.has("# not converted: metadata = ~/.offlineimap"));
        assert!(out.has("# not converted: [mbnames]"));

        let w = out.account("Work");
        assert_eq!(w.server.host, "imap.gmail.com");
        assert_eq!(w.server.auth, AuthMech::Xoauth2);
        assert!(matches!(&w.secret, SecretSource::OAuth2TokenCommand(_)));
        assert!(out.has("# oauth2_token_command = [\"oama\", \"access\", \"me@company.com\"]"));
        assert_eq!(
            out.folders("Work"),
            ["INBOX", "[Gmail]/Sent Mail", "Entwürfe"]
        );
        let s = out.imap("Work");
        assert_eq!(
            (s.direction, s.expunge),
            (Direction::Pull, Expunge::Local),
            "readonly remote"
        );
        assert!(out.has(
            "# warning: [Repository work-remote] nametrans = lambda f: f.replace('[Gmail]/', '')"
        ));
        assert!(out.has("# warning: sep = .: OfflineIMAP stored server folder Parent/Child as the directory Parent.Child"));
        assert!(out.has("# not converted: oauth2_client_secret = <redacted>"));
        assert!(
            !out.text.contains("s3cr3t") && !out.text.contains("r3fr3sh"),
            "{}",
            out.text
        );
        assert!(!out.has("[DEFAULT] mailroot"), "used by an interpolation");
    }

    #[test]
    fn tls_settings_map_to_tls() {
        let rc = |remote: &str| {
            format!(
                "[general]\naccounts = a\n\n[Account a]\nlocalrepository = l\nremoterepository = r\n\n[Repository l]\ntype = Maildir\nlocalfolders = ~/Mail/a\n\n[Repository r]\ntype = IMAP\nremotehost = mail.example.org\nremoteuser = me\nremotepass = pw%%1\n{remote}"
            )
        };
        let out = convert_ok(&rc("ssl = no\n"));
        let a = out.account("a");
        assert_eq!((a.server.tls, a.server.port), (Tls::Starttls, 143));
        assert!(out.has("# warning: ssl = no with starttls"));
        assert!(
            matches!(&a.secret, SecretSource::Password(p) if p == "pw%1"),
            "%% is %"
        );

        let out = convert_ok(&rc("ssl = no\nstarttls = no\nremoteport = 1143\n"));
        let a = out.account("a");
        assert_eq!(
            (a.server.tls, a.server.port, a.server.allow_plaintext),
            (Tls::None, 1143, true)
        );

        let hex = "ab".repeat(32);
        let out = convert_ok(&rc(&format!(
            "cert_fingerprint = {hex}\nsslcacertfile = /nonexistent/ca.pem\n"
        )));
        let a = out.account("a");
        assert_eq!(a.server.cert_fingerprint, Some([0xab; 32]));
        assert!(a.server.ca_file.is_none());
        assert!(out.has("# fix: sslcacertfile /nonexistent/ca.pem does not exist here"));
        assert!(out.has("# ca_file = \"/nonexistent/ca.pem\""));

        let out = convert_ok(&rc(&format!("cert_fingerprint = {}\n", "cd".repeat(20))));
        assert!(out.account("a").server.cert_fingerprint.is_none());
        assert!(
            out.has("# not converted: cert_fingerprint = cdcd"),
            "SHA-1 is not converted"
        );
    }

    #[test]
    fn readonly_and_sync_deletes_choose_direction_and_expunge() {
        let rc = |remote: &str, local: &str| {
            format!(
                "[general]\naccounts = a\n\n[Account a]\nlocalrepository = l\nremoterepository = r\n\n[Repository l]\ntype = Maildir\nlocalfolders = ~/Mail/a\n{local}\n[Repository r]\ntype = IMAP\nremotehost = h.example\nremoteuser = me\nremotepassfile = ~/.pw\n{remote}"
            )
        };
        let cases = [
            ("", "", Direction::Both, Expunge::Both),
            ("readonly = true\n", "", Direction::Pull, Expunge::Local),
            ("", "readonly = true\n", Direction::Push, Expunge::Server),
            ("sync_deletes = no\n", "", Direction::Both, Expunge::Server),
            ("", "sync_deletes = no\n", Direction::Both, Expunge::Local),
            ("expunge = no\n", "", Direction::Both, Expunge::Local),
        ];
        for (remote, local, direction, expunge) in cases {
            let out = convert_ok(&rc(remote, local));
            let s = out.imap("a");
            assert_eq!(
                (s.direction, s.expunge),
                (direction, expunge),
                "{remote:?} {local:?}"
            );
            let a = out.account("a");
            assert!(
                matches!(&a.secret, SecretSource::PasswordCommand(argv) if argv[0] == "cat" && argv[1] == out.home(".pw").to_str().unwrap()),
                "{:?}",
                a.secret
            );
        }
    }

    #[test]
    fn configparser_syntax() {
        let ini = parse(
            Path::new(RC),
            "; comment\n[s]\nk = v\n  more\n\n# c\nK2: a: b\n[DEFAULT]\nd = %(k)s!\n[s]\nk = later\n",
        )
        .unwrap();
        let s = ini.section("s").unwrap();
        assert_eq!(
            s.raw("k").unwrap().value,
            "later",
            "a repeated section: later wins"
        );
        assert_eq!(s.opts[0].value, "v\nmore", "continuation line");
        assert_eq!(
            s.raw("k2").unwrap().value,
            "a: b",
            "keys are lower-cased, first delimiter splits"
        );
        let mut v = View::new(&ini, s);
        assert_eq!(
            v.get("d").unwrap().unwrap().0,
            "later!",
            "DEFAULT interpolates from the section"
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = convert_err("accounts = a\n");
        assert_eq!(e.line_col(), Some((1, 1)));
        assert!(e.message.contains("before any [section]"), "{e}");

        let e = convert_err("[general]\nthis is not an option\n");
        assert_eq!(e.line_col(), Some((2, 1)));

        let e = convert_err(
            "[general]\naccounts = a, b\n\n[Account a]\nlocalrepository = l\nremoterepository = r\n",
        );
        assert_eq!(e.line_col(), Some((2, 1)));
        assert!(e.message.contains("no [Account b] section"), "{e}");

        let e = convert_err(
            "[general]\naccounts = a\n\n[Account a]\nlocalrepository = l\nremoterepository = r\n\n[Repository l]\ntype = Maildir\nlocalfolders = ~/M\n",
        );
        assert_eq!(e.line_col(), Some((6, 1)));
        assert!(e.message.contains("no [Repository r] section"), "{e}");
        assert!(
            e.to_string().starts_with("/home/me/.offlineimaprc:6:1: "),
            "{e}"
        );

        let e = convert_err(
            "[general]\naccounts = a\n\n[Account a]\nlocalrepository = l\nremoterepository = r\n\n[Repository l]\ntype = Maildir\nlocalfolders = ~/M/100%\n\n[Repository r]\ntype = IMAP\nremotehost = h\nremoteuser = u\n",
        );
        assert_eq!(e.line_col(), Some((10, 1)));
        assert!(e.message.contains("lone `%`"), "{e}");

        let e = convert_err(
            "[general]\naccounts = a\n\n[Account a]\nlocalrepository = l\nremoterepository = r\n\n[Repository l]\ntype = Maildir\nlocalfolders = ~/M\n\n[Repository r]\ntype = IMAP\nremotehost = h\nssl = maybe\n",
        );
        assert_eq!(e.line_col(), Some((15, 1)));
    }

    #[test]
    fn folderfilter_that_does_not_convert_selects_everything_and_says_so() {
        let out = convert_ok(
            "[general]\naccounts = a\n[Account a]\nlocalrepository = l\nremoterepository = r\n[Repository l]\ntype = Maildir\nlocalfolders = ~/Mail/a\n[Repository r]\ntype = IMAP\nremotehost = h.example\nremoteuser = u\nremotepass = p\nfolderfilter = lambda f: not re.search('(^Trash$|Del)', f)\nfolderincludes = ['debian.user']\n",
        );
        assert_eq!(out.folders("a"), ["*", "debian.user"]);
        assert!(out.has("# fix: folderfilter = lambda f: not re.search('(^Trash$|Del)', f) could not be converted"));
    }

    #[test]
    fn environment_variables_in_paths() {
        let env = |n: &str| (n == "MAILDIR").then(|| "/srv/mail".to_owned());
        assert_eq!(expand_env("$HOME/Mail", &env), ("~/Mail".into(), vec![]));
        assert_eq!(
            expand_env("${MAILDIR}/a", &env),
            ("/srv/mail/a".into(), vec![])
        );
        assert_eq!(
            expand_env("$NOPE/a", &env),
            ("$NOPE/a".into(), vec!["NOPE".to_owned()])
        );
        assert_eq!(expand_env("a$", &env), ("a$".into(), vec![]));
    }

    #[test]
    fn an_imap_to_imap_account_is_listed_not_converted() {
        let home = tempfile::tempdir().unwrap();
        let d = dirs(home.path());
        let c = super::super::convert(
            Tool::OfflineImap,
            Path::new(RC),
            "[general]\naccounts = a\n[Account a]\nlocalrepository = l\nremoterepository = r\n[Repository l]\ntype = IMAP\n[Repository r]\ntype = IMAP\n",
            &d,
        )
        .unwrap();
        assert_eq!(c.accounts, 0);
        assert!(
            c.text.contains(
                "# not converted: [Account a] (it syncs a imap repository with a imap one"
            ),
            "{}",
            c.text
        );
    }
}
