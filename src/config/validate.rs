//! Raw config -> validated `Config`, the one place where defaults are filled in and every
//! rule about the file is checked. Each error carries the span of the value at fault.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::{ConfigError, locate};
use super::oauth2::{self, OAuth2};
use super::raw::{
    AuthMech, Outline, Provider, RawAccount, RawFile, RawKind, RawOAuth2, RawUnified, Tls,
};
use super::{
    Account, AccountKind, Config, Dirs, FolderPattern, FolderPatterns, General, ImapSettings,
    Loaded, Pop3Settings, ProviderFrom, SecretSource, Server, Unified,
};
use crate::model::{AccountName, FolderName};
use crate::sync::DEFAULT_MAX_DELETE_SHARE;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_POLL: Duration = Duration::from_secs(300);
const DEFAULT_IDLE_REFRESH: Duration = Duration::from_secs(25 * 60);
const MAX_IDLE_REFRESH: Duration = Duration::from_secs(29 * 60);
const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECTIONS: usize = 3;
const DEFAULT_MAX_CONNECTIONS: usize = 3;
/// Gmail refuses more simultaneous IMAP connections per account than this.
pub const GMAIL_MAX_CONNECTIONS: usize = 15;
const DEFAULT_IDLE_CONNECTIONS: usize = 1;
const DEFAULT_SWEEP: Duration = Duration::from_secs(60);
const MAX_CONNECTIONS: i64 = 16;

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    /// (span, name) of every `[[account]]` table, for errors raised inside one.
    accounts: Vec<(Range<usize>, Option<String>)>,
}

impl Ctx<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ErrorBuilder {
        let account = self
            .accounts
            .iter()
            .filter(|(s, _)| s.start <= span.start && span.start < s.end)
            .find_map(|(_, name)| name.clone());
        ErrorBuilder(ConfigError {
            path: self.path.to_owned(),
            location: Some(Box::new(locate(self.text, span))),
            account,
            message: message.into(),
            help: None,
        })
    }
}

struct ErrorBuilder(ConfigError);

impl ErrorBuilder {
    fn help(mut self, help: impl Into<String>) -> ConfigError {
        self.0.help = Some(help.into());
        self.0
    }
}

impl From<ErrorBuilder> for ConfigError {
    fn from(b: ErrorBuilder) -> ConfigError {
        b.0
    }
}

pub(super) fn parse(
    path: &Path,
    text: &str,
    dirs: &Dirs,
    file_mode: Option<u32>,
) -> Result<Loaded, ConfigError> {
    let ctx = Ctx {
        path,
        text,
        accounts: account_extents(text),
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(&ctx, &e))?;
    // Relative paths are shown and used resolved: `--config config.toml` with
    // `maildir = "Mail"` is the Mail directory beside the file, wherever the daemon runs.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let base_dir = absolute.parent().unwrap_or(Path::new("/"));
    let mut warnings = Vec::new();

    let general = general(&ctx, &raw, dirs, base_dir)?;
    if raw.account.is_empty() {
        return Err(ConfigError::file(
            path,
            "no accounts are configured",
            Some("add an [[account]] table; config/syncmail.example.toml shows one of each kind"),
        ));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut accounts: Vec<Account> = Vec::new();
    for spanned in &raw.account {
        let a = spanned.get_ref();
        let name = a.name.get_ref();
        if let Some(first_line) = seen.get(name) {
            return Err(ctx
                .error(a.name.span(), format!("account name `{name}` is used twice"))
                .help(format!(
                    "the first account with this name is at line {first_line}; give each account its own name"
                )));
        }
        seen.insert(name.clone(), locate(text, a.name.span()).line);
        let account = account(&ctx, a, &general, dirs, file_mode, &mut warnings)?;
        if let Some(other) = accounts
            .iter()
            .find(|o| overlaps(&o.maildir, &account.maildir))
        {
            let span = a.maildir.as_ref().map_or(a.name.span(), Spanned::span);
            return Err(ctx
                .error(
                    span,
                    format!(
                        "its Maildir {} overlaps account `{}`'s Maildir {}",
                        account.maildir.display(),
                        other.name,
                        other.maildir.display()
                    ),
                )
                .help("give each account its own `maildir` directory, neither inside the other"));
        }
        accounts.push(account);
    }
    let unified = match &raw.unified {
        Some(u) => Some(unified(&ctx, u.get_ref(), &accounts, dirs, base_dir)?),
        None => None,
    };
    Ok(Loaded {
        config: Config {
            path: absolute.clone(),
            general,
            accounts,
            unified,
        },
        warnings,
    })
}

/// Each `[[account]]` table runs from its header to the next table header. toml's own
/// span for an array-of-tables entry covers only the header, so the extent is found here.
fn account_extents(text: &str) -> Vec<(Range<usize>, Option<String>)> {
    let Ok(outline) = toml::from_str::<Outline>(text) else {
        return Vec::new();
    };
    let mut headers = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('[') {
            headers.push(offset);
        }
        offset += line.len();
    }
    outline
        .account
        .into_iter()
        .map(|a| {
            let start = a.span().start;
            let end = headers
                .iter()
                .copied()
                .find(|h| *h > start)
                .unwrap_or(text.len());
            let name = a
                .into_inner()
                .name
                .and_then(|v| v.as_str().map(str::to_owned));
            (start..end, name)
        })
        .collect()
}

fn toml_error(ctx: &Ctx, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim_end().to_owned();
    let help = if message.starts_with("unknown field") {
        Some(unknown_key_help(&message))
    } else if message.starts_with("missing field") {
        Some("add the key to this table; config/syncmail.example.toml shows its form".to_owned())
    } else if message.starts_with("unknown variant") {
        Some("use one of the values listed above".to_owned())
    } else if message.starts_with("invalid type: string") && message.contains("sequence") {
        e.span()
            .and_then(|span| command_string_help(ctx.text, span))
    } else {
        None
    };
    match e.span() {
        Some(span) => {
            let b = ctx.error(span, message);
            match help {
                Some(h) => b.help(h),
                None => b.into(),
            }
        }
        None => ConfigError::file(ctx.path, message, help.as_deref()),
    }
}

/// "did you mean" when one key of the table is a likely typo of the unknown one; serde's
/// message lists the table's keys (`unknown field `x`, expected one of `a`, `b``).
fn unknown_key_help(message: &str) -> String {
    let mut ticks = message.split('`').skip(1).step_by(2);
    let unknown = ticks.next().unwrap_or_default();
    match super::keys::closest(unknown, ticks) {
        Some(key) => format!(
            "did you mean `{key}`? config/syncmail.example.toml lists every key (`man syncmail.toml`)"
        ),
        None => {
            "check the spelling; config/syncmail.example.toml lists every key (`man syncmail.toml`)"
                .to_owned()
        }
    }
}

/// A command written as one shell string (`password_command = "pass show mail/work"`,
/// how mbsync's PassCmd reads) where syncmail wants a program and its arguments: show
/// the list form of the very command, and the `sh -c` form for real shell syntax.
fn command_string_help(text: &str, span: Range<usize>) -> Option<String> {
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let key = text[line_start..span.start].split('=').next()?.trim();
    if !key.ends_with("_command") && key != "on_new_mail" && key != "after_sync" {
        return None;
    }
    let value: String = toml::from_str::<toml::Value>(&format!("v = {}", &text[span.clone()]))
        .ok()?
        .get("v")?
        .as_str()?
        .to_owned();
    let quoted = |words: &[&str]| {
        let words: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
        format!("[{}]", words.join(", "))
    };
    let words: Vec<&str> = value.split_whitespace().collect();
    Some(format!(
        "`{key}` is a program and its arguments, run without a shell: write {key} = {}, or {key} = {} if the command needs the shell (pipes, quotes, `~`, variables)",
        quoted(&words),
        quoted(&["sh", "-c", &value]),
    ))
}

fn general(ctx: &Ctx, raw: &RawFile, dirs: &Dirs, base_dir: &Path) -> Result<General, ConfigError> {
    let g = raw.general.as_ref();
    let maildir = match g.and_then(|g| g.maildir.as_ref()) {
        Some(m) => path_value(ctx, m, dirs, base_dir)?,
        None => dirs.home.as_ref().map(|h| h.join("Mail")).ok_or_else(|| {
            ConfigError::file(
                ctx.path,
                "HOME is not set, so there is no default Maildir root",
                Some("set `maildir` in [general]"),
            )
        })?,
    };
    let state_dir = match g.and_then(|g| g.state_dir.as_ref()) {
        Some(s) => path_value(ctx, s, dirs, base_dir)?,
        None => dirs.default_state_dir().ok_or_else(|| {
            ConfigError::file(
                ctx.path,
                "neither XDG_STATE_HOME nor HOME is set, so there is no default state directory",
                Some("set `state_dir` in [general]"),
            )
        })?,
    };
    let log_level = match g.and_then(|g| g.log_level.as_ref()) {
        Some(l) => {
            if tracing_subscriber::EnvFilter::try_new(l.get_ref()).is_err() {
                return Err(ctx
                    .error(l.span(), format!("`{}` is not a log level", l.get_ref()))
                    .help("use error, warn, info, debug or trace (or a tracing filter such as `syncmail::imap=debug`)"));
            }
            l.get_ref().clone()
        }
        None => "info".to_owned(),
    };
    let hook = |v: Option<&Spanned<Vec<String>>>,
                key: &str|
     -> Result<Option<Vec<String>>, ConfigError> {
        match v {
            None => Ok(None),
            Some(argv) if argv.get_ref().first().is_some_and(|p| !p.trim().is_empty()) => {
                Ok(Some(argv.get_ref().clone()))
            }
            Some(argv) => Err(ctx
                .error(argv.span(), format!("{key} is empty"))
                .help(format!(
                    "give the program and its arguments as a list, run without a shell, e.g. {key} = [\"notmuch\", \"new\"]"
                ))),
        }
    };
    let on_new_mail = hook(g.and_then(|g| g.on_new_mail.as_ref()), "on_new_mail")?;
    let after_sync = hook(g.and_then(|g| g.after_sync.as_ref()), "after_sync")?;
    let hook_timeout = match g.and_then(|g| g.hook_timeout.as_ref()) {
        Some(t) => duration(ctx, t, "hook_timeout")?,
        None => DEFAULT_HOOK_TIMEOUT,
    };
    Ok(General {
        maildir,
        state_dir,
        log_level,
        on_new_mail,
        after_sync,
        hook_timeout,
    })
}

/// `~` is the home directory; a relative path is relative to `base`.
fn path_value(
    ctx: &Ctx,
    value: &Spanned<String>,
    dirs: &Dirs,
    base: &Path,
) -> Result<PathBuf, ConfigError> {
    let text = value.get_ref();
    if text.is_empty() {
        return Err(ctx
            .error(value.span(), "the path is empty")
            .help("give a directory, e.g. \"~/Mail\""));
    }
    let expanded = if text == "~" || text.starts_with("~/") {
        let home = dirs.home.as_ref().ok_or_else(|| {
            ConfigError::from(ctx.error(value.span(), "`~` used but HOME is not set"))
        })?;
        home.join(text.trim_start_matches('~').trim_start_matches('/'))
    } else {
        PathBuf::from(text)
    };
    Ok(if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    })
}

/// `[unified]`: the path must be outside every account's Maildir (the engine would take it
/// for a folder of that account and upload it) and hold none; the names must be accounts.
fn unified(
    ctx: &Ctx,
    u: &RawUnified,
    accounts: &[Account],
    dirs: &Dirs,
    base_dir: &Path,
) -> Result<Unified, ConfigError> {
    let path = path_value(ctx, &u.path, dirs, base_dir)?;
    let folders = match &u.folders {
        Some(list) if list.get_ref().is_empty() => {
            return Err(ctx
                .error(
                    list.span(),
                    "`folders` is empty, so nothing would be merged",
                )
                .help(
                    "name the folders to merge, e.g. folders = [\"INBOX\"], or leave the key out",
                ));
        }
        Some(list) => folder_list(ctx, list)?,
        None => vec![FolderName("INBOX".into())],
    };
    let names = match &u.accounts {
        Some(list) if list.get_ref().is_empty() => {
            return Err(ctx
                .error(
                    list.span(),
                    "`accounts` is empty, so nothing would be merged",
                )
                .help("name the accounts to merge, or leave the key out to merge every account"));
        }
        Some(list) => {
            let mut names: Vec<AccountName> = Vec::new();
            for n in list.get_ref() {
                if !accounts.iter().any(|a| &a.name.0 == n.get_ref()) {
                    let known: Vec<&str> = accounts.iter().map(|a| a.name.0.as_str()).collect();
                    return Err(ctx
                        .error(
                            n.span(),
                            format!("there is no account named `{}`", n.get_ref()),
                        )
                        .help(format!(
                            "use the `name` of an [[account]]: {}",
                            known.join(", ")
                        )));
                }
                if names.iter().any(|m| &m.0 == n.get_ref()) {
                    return Err(ctx
                        .error(
                            n.span(),
                            format!("account `{}` is listed twice", n.get_ref()),
                        )
                        .help("name each account once"));
                }
                names.push(AccountName(n.get_ref().clone()));
            }
            names
        }
        None => accounts.iter().map(|a| a.name.clone()).collect(),
    };
    if let Some(a) = accounts.iter().find(|a| overlaps(&a.maildir, &path)) {
        return Err(ctx
            .error(
                u.path.span(),
                format!(
                    "the unified folder {} overlaps account `{}`'s Maildir {}",
                    path.display(),
                    a.name,
                    a.maildir.display()
                ),
            )
            .help(format!(
                "put it beside the accounts' Maildirs, not inside one (the account would sync it to its server as a folder), e.g. path = \"{}\"",
                a.maildir
                    .parent()
                    .unwrap_or(Path::new("~"))
                    .join("Unified/INBOX")
                    .display()
            )));
    }
    Ok(Unified {
        path,
        folders,
        accounts: names,
    })
}

fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn account(
    ctx: &Ctx,
    a: &RawAccount,
    general: &General,
    dirs: &Dirs,
    file_mode: Option<u32>,
    warnings: &mut Vec<String>,
) -> Result<Account, ConfigError> {
    let name = a.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.starts_with('.')
    {
        return Err(ctx
            .error(a.name.span(), format!("`{name}` is not a usable account name"))
            .help("use letters, digits, `-`, `_` and `.` (not first); it names the state file and the Maildir directory"));
    }
    let kind = *a.kind.get_ref();
    check_kind_keys(ctx, a, kind)?;
    let server = server(ctx, a, kind)?;
    let secret = secret(
        ctx,
        a,
        &server,
        kind,
        &general.state_dir,
        file_mode,
        warnings,
    )?;
    let maildir = match &a.maildir {
        Some(m) => path_value(ctx, m, dirs, &general.maildir)?,
        None => general.maildir.join(name),
    };
    let poll_interval = match &a.poll_interval {
        Some(p) => duration(ctx, p, "poll_interval")?,
        None => DEFAULT_POLL,
    };
    let kind = match kind {
        RawKind::Imap => AccountKind::Imap(imap_settings(ctx, a)?),
        RawKind::Pop3 => AccountKind::Pop3(pop3_settings(ctx, a)?),
    };
    Ok(Account {
        name: AccountName(name.clone()),
        server,
        secret,
        maildir,
        poll_interval,
        kind,
    })
}

/// Keys that belong to the other kind of account are an error, not silently ignored.
/// A key's name and, when it is set, where.
type KeyAt<'a> = (&'a str, Option<Range<usize>>);

fn check_kind_keys(ctx: &Ctx, a: &RawAccount, kind: RawKind) -> Result<(), ConfigError> {
    let imap_only: [KeyAt; 17] = [
        ("folders", a.folders.as_ref().map(Spanned::span)),
        ("provider", a.provider.as_ref().map(Spanned::span)),
        ("idle", a.idle.as_ref().map(Spanned::span)),
        ("idle_refresh", a.idle_refresh.as_ref().map(Spanned::span)),
        ("layout", a.layout.as_ref().map(Spanned::span)),
        ("folder_names", a.folder_names.as_ref().map(Spanned::span)),
        ("use_namespace", a.use_namespace.as_ref().map(Spanned::span)),
        ("direction", a.direction.as_ref().map(Spanned::span)),
        ("expunge", a.expunge.as_ref().map(Spanned::span)),
        ("trash", a.trash.as_ref().map(Spanned::span)),
        (
            "delete_vs_flag",
            a.delete_vs_flag.as_ref().map(Spanned::span),
        ),
        (
            "max_delete_share",
            a.max_delete_share.as_ref().map(Spanned::span),
        ),
        ("connections", a.connections.as_ref().map(Spanned::span)),
        (
            "max_connections",
            a.max_connections.as_ref().map(Spanned::span),
        ),
        (
            "idle_connections",
            a.idle_connections.as_ref().map(Spanned::span),
        ),
        (
            "sweep_interval",
            a.sweep_interval.as_ref().map(Spanned::span),
        ),
        ("compress", a.compress.as_ref().map(Spanned::span)),
    ];
    let pop3_only: [KeyAt; 2] = [
        (
            "keep_on_server",
            a.keep_on_server.as_ref().map(Spanned::span),
        ),
        (
            "delete_after_days",
            a.delete_after_days.as_ref().map(Spanned::span),
        ),
    ];
    let (wrong, this, other): (&[KeyAt], &str, &str) = match kind {
        RawKind::Imap => (&pop3_only, "imap", "POP3"),
        RawKind::Pop3 => (&imap_only, "pop3", "IMAP"),
    };
    for (key, span) in wrong {
        if let Some(span) = span {
            return Err(ctx
                .error(
                    span.clone(),
                    format!("`{key}` is an {other} setting, but this account is kind = \"{this}\""),
                )
                .help(format!("remove `{key}`, or change `kind`")));
        }
    }
    Ok(())
}

fn server(ctx: &Ctx, a: &RawAccount, kind: RawKind) -> Result<Server, ConfigError> {
    let host = a.host.get_ref();
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return Err(ctx
            .error(a.host.span(), format!("`{host}` is not a host name"))
            .help("give the server's host name or IP address, e.g. \"imap.example.com\""));
    }
    let tls = a.tls.as_ref().map_or(Tls::Implicit, |t| *t.get_ref());
    let allow_plaintext = a.allow_plaintext.unwrap_or(false);
    if tls == Tls::None && !allow_plaintext && !super::is_loopback(host) {
        let span = a.tls.as_ref().map_or(a.host.span(), Spanned::span);
        return Err(ctx
            .error(
                span,
                format!("tls = \"none\" would send your password in plaintext to {host}"),
            )
            .help("use tls = \"implicit\" (the default) or \"starttls\"; if the network path is private and you accept the risk, add allow_plaintext = true"));
    }
    let default_port = match (kind, tls) {
        (RawKind::Imap, Tls::Implicit) => 993,
        (RawKind::Imap, _) => 143,
        (RawKind::Pop3, Tls::Implicit) => 995,
        (RawKind::Pop3, _) => 110,
    };
    let port = match &a.port {
        Some(p) => u16::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                ctx.error(p.span(), format!("port {} is out of range", p.get_ref()))
                    .help(format!(
                        "use 1-65535; the usual port here is {default_port}"
                    ))
            })?,
        None => default_port,
    };
    let user = a.user.get_ref();
    if user.is_empty() {
        return Err(ctx
            .error(a.user.span(), "`user` is empty")
            .help("give the login name, often your full email address"));
    }
    let auth = a.auth.as_ref().map_or(AuthMech::Auto, |m| *m.get_ref());
    if auth == AuthMech::Apop && kind == RawKind::Imap {
        let span = a.auth.as_ref().map_or(a.name.span(), Spanned::span);
        return Err(ctx
            .error(span, "APOP is a POP3 mechanism")
            .help("use auto, login, plain, xoauth2 or oauthbearer for IMAP"));
    }
    let ca_file = match &a.ca_file {
        Some(f) => {
            let p = PathBuf::from(f.get_ref());
            if !p.is_file() {
                return Err(ctx
                    .error(
                        f.span(),
                        format!("ca_file {} is not a readable file", p.display()),
                    )
                    .help("give the path of a PEM file with the CA certificate(s) to trust"));
            }
            Some(p)
        }
        None => None,
    };
    let cert_fingerprint = match &a.cert_fingerprint {
        Some(f) => Some(fingerprint(f.get_ref()).ok_or_else(|| {
            ctx.error(f.span(), "cert_fingerprint is not a SHA-256 fingerprint")
                .help("write it as \"sha256:\" followed by 64 hex digits (colons allowed), as `openssl x509 -noout -fingerprint -sha256` prints it")
        })?),
        None => None,
    };
    let timeout = match &a.timeout {
        Some(t) => duration(ctx, t, "timeout")?,
        None => DEFAULT_TIMEOUT,
    };
    Ok(Server {
        host: host.clone(),
        port,
        tls,
        allow_plaintext,
        user: user.clone(),
        auth,
        ca_file,
        cert_fingerprint,
        timeout,
        compress: a.compress.as_ref().is_none_or(|c| *c.get_ref()),
    })
}

fn fingerprint(text: &str) -> Option<[u8; 32]> {
    let lower = text.trim().to_ascii_lowercase();
    let hex: String = lower
        .strip_prefix("sha256:")
        .unwrap_or(&lower)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[allow(clippy::too_many_arguments)]
fn secret(
    ctx: &Ctx,
    a: &RawAccount,
    server: &Server,
    kind: RawKind,
    state_dir: &Path,
    file_mode: Option<u32>,
    warnings: &mut Vec<String>,
) -> Result<SecretSource, ConfigError> {
    let given: Vec<Range<usize>> = [
        a.password_command.as_ref().map(Spanned::span),
        a.oauth2_token_command.as_ref().map(Spanned::span),
        a.password.as_ref().map(Spanned::span),
        a.oauth2.as_ref().map(Spanned::span),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(ctx
            .error(given[1].clone(), "more than one secret source is given")
            .help("keep exactly one of password_command, oauth2_token_command, password, [account.oauth2]"));
    }
    if let Some(table) = &a.oauth2 {
        if matches!(
            server.auth,
            AuthMech::Login | AuthMech::Plain | AuthMech::Apop
        ) {
            let span = a.auth.as_ref().map_or(table.span(), Spanned::span);
            return Err(ctx
                .error(
                    span,
                    "[account.oauth2] logs in with a token, not a password",
                )
                .help("use auth = \"oauth2\" (or \"xoauth2\" / \"oauthbearer\" to force one)"));
        }
        return Ok(SecretSource::OAuth2(Box::new(oauth2(
            ctx,
            a,
            table,
            kind == RawKind::Pop3,
            state_dir,
        )?)));
    }
    if server.auth == AuthMech::Oauth2 && a.oauth2_token_command.is_none() {
        let span = a.auth.as_ref().map_or(a.name.span(), Spanned::span);
        return Err(ctx
            .error(span, "auth = \"oauth2\" needs an [account.oauth2] table")
            .help("add [account.oauth2] with provider = \"google\" | \"microsoft\" | \"custom\" and your client_id, then run `syncmail login ACCOUNT`; or keep oauth2_token_command with auth = \"auto\""));
    }
    let argv = |v: &Spanned<Vec<String>>, key: &str| -> Result<Vec<String>, ConfigError> {
        match v.get_ref().first() {
            Some(program) if !program.trim().is_empty() => Ok(v.get_ref().clone()),
            _ => Err(ctx
                .error(v.span(), format!("{key} is empty"))
                .help(format!("give the program and its arguments as a list, run without a shell, e.g. {key} = [\"pass\", \"show\", \"mail/work\"]"))),
        }
    };
    let source = if let Some(cmd) = &a.password_command {
        SecretSource::PasswordCommand(argv(cmd, "password_command")?)
    } else if let Some(cmd) = &a.oauth2_token_command {
        SecretSource::OAuth2TokenCommand(argv(cmd, "oauth2_token_command")?)
    } else if let Some(pw) = &a.password {
        if let Some(mode) = file_mode.filter(|m| m & 0o077 != 0) {
            warnings.push(format!(
                "{}: account `{}`: the password is in a file other users can read (mode {:o}); run `chmod 600 {}` or use password_command",
                ctx.path.display(),
                a.name.get_ref(),
                mode & 0o777,
                ctx.path.display()
            ));
        }
        SecretSource::Password(pw.get_ref().clone())
    } else {
        return Err(ctx
            .error(a.name.span(), "no secret source is given")
            .help("add password_command = [\"pass\", \"show\", \"mail/work\"] (preferred), oauth2_token_command, or password"));
    };
    let oauth = matches!(source, SecretSource::OAuth2TokenCommand(_));
    let oauth_mech = matches!(
        server.auth,
        AuthMech::Xoauth2 | AuthMech::Oauthbearer | AuthMech::Oauth2
    );
    if server.auth != AuthMech::Auto
        && oauth != oauth_mech
        && let Some(mech) = &a.auth
    {
        return Err(ctx
            .error(
                mech.span(),
                if oauth {
                    "an OAuth2 token needs auth = \"xoauth2\" or \"oauthbearer\""
                } else {
                    "XOAUTH2/OAUTHBEARER need a token from oauth2_token_command"
                },
            )
            .help("make `auth` and the secret source agree, or use auth = \"auto\""));
    }
    Ok(source)
}

/// `[account.oauth2]`: the provider's preset, or every endpoint for `custom`; endpoints
/// are https, or http to loopback only (a test server, a local proxy).
fn oauth2(
    ctx: &Ctx,
    a: &RawAccount,
    table: &Spanned<RawOAuth2>,
    pop3: bool,
    state_dir: &Path,
) -> Result<OAuth2, ConfigError> {
    let t = table.get_ref();
    let provider = *t.provider.get_ref();
    let client_id = match &t.client_id {
        Some(id) if !id.get_ref().trim().is_empty() => id.get_ref().trim().to_owned(),
        Some(id) => {
            return Err(ctx
                .error(id.span(), "client_id is empty")
                .help("give the client id of your own app registration (README: \"OAuth2\")"));
        }
        None => {
            return Err(ctx
                .error(table.span(), "[account.oauth2] has no client_id")
                .help("register an app with the provider and give its client id (README: \"OAuth2\"); a client id borrowed from another program can be revoked under you"));
        }
    };
    if let (Some(tenant), false) = (&t.tenant, provider == oauth2::Provider::Microsoft) {
        return Err(ctx
            .error(
                tenant.span(),
                "`tenant` is for provider = \"microsoft\" only",
            )
            .help("remove it"));
    }
    let tenant = t.tenant.as_ref().map_or("common", |s| s.get_ref().as_str());
    if tenant.is_empty()
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    {
        let span = t.tenant.as_ref().map_or(table.span(), Spanned::span);
        return Err(ctx
            .error(span, format!("tenant {tenant:?} is not a tenant id or domain"))
            .help("use \"common\", \"organizations\", \"consumers\", your tenant's GUID or its domain"));
    }
    let preset = oauth2::preset(provider, tenant);
    let endpoint = |given: &Option<Spanned<String>>,
                    preset: Option<String>,
                    key: &str,
                    required: bool|
     -> Result<Option<String>, ConfigError> {
        match given {
            Some(url) => {
                let text = url.get_ref().trim();
                if !endpoint_ok(text) {
                    return Err(ctx
                        .error(url.span(), format!("{key} {text:?} is not an https URL"))
                        .help("use https://...; plain http only to 127.0.0.1 or localhost"));
                }
                Ok(Some(text.to_owned()))
            }
            None if preset.is_none() && required => Err(ctx
                .error(table.span(), format!("provider = \"custom\" needs {key}"))
                .help("give the authorization server's authorization_endpoint and token_endpoint (and device_authorization_endpoint for --device)")),
            None => Ok(preset),
        }
    };
    let authorization_endpoint = endpoint(
        &t.authorization_endpoint,
        preset.as_ref().map(|p| p.authorization.clone()),
        "authorization_endpoint",
        true,
    )?
    .unwrap_or_default();
    let token_endpoint = endpoint(
        &t.token_endpoint,
        preset.as_ref().map(|p| p.token.clone()),
        "token_endpoint",
        true,
    )?
    .unwrap_or_default();
    let device_endpoint = endpoint(
        &t.device_authorization_endpoint,
        preset.as_ref().and_then(|p| p.device.clone()),
        "device_authorization_endpoint",
        false,
    )?;
    let revocation_endpoint = endpoint(
        &t.revocation_endpoint,
        preset.as_ref().and_then(|p| p.revocation.clone()),
        "revocation_endpoint",
        false,
    )?;
    let scopes = match &t.scopes {
        Some(s)
            if s.get_ref()
                .iter()
                .any(|x| x.trim().is_empty() || x.contains(' ')) =>
        {
            return Err(ctx
                .error(s.span(), "a scope is empty or holds a space")
                .help("give each scope as its own string, e.g. [\"https://mail.google.com/\"]"));
        }
        Some(s) => s.get_ref().clone(),
        None => oauth2::default_scopes(provider, pop3),
    };
    if scopes.is_empty() {
        let span = t.scopes.as_ref().map_or(table.span(), Spanned::span);
        return Err(ctx
            .error(span, "no scopes to ask for")
            .help("provider = \"custom\" has no default scopes: give `scopes`"));
    }
    Ok(OAuth2 {
        account: a.name.get_ref().clone(),
        user: a.user.get_ref().clone(),
        provider,
        client_id,
        client_secret: t.client_secret.as_ref().map(|s| s.get_ref().clone()),
        scopes,
        authorization_endpoint,
        token_endpoint,
        device_endpoint,
        revocation_endpoint,
        token_store: t
            .token_store
            .as_ref()
            .map_or_else(Default::default, |s| *s.get_ref()),
        token_file: oauth2::token_file(state_dir, a.name.get_ref()),
    })
}

/// An https URL, or an http one to loopback.
fn endpoint_ok(url: &str) -> bool {
    let (scheme, rest) = match url.split_once("://") {
        Some(x) => x,
        None => return false,
    };
    let host_port = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match host_port.rsplit_once(':') {
        Some((h, port))
            if !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') =>
        {
            h
        }
        _ => host_port,
    };
    if host.is_empty() || host.contains('@') || url.contains(char::is_whitespace) {
        return false;
    }
    scheme.eq_ignore_ascii_case("https")
        || (scheme.eq_ignore_ascii_case("http") && super::is_loopback(host))
}

/// `90s`, `5m`, `1h30m`, `2d`.
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
        any = true;
    }
    (any && digits.is_empty()).then_some(Duration::from_secs(total))
}

fn duration(ctx: &Ctx, value: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
    match parse_duration(value.get_ref()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(ctx
            .error(
                value.span(),
                format!("`{}` is not a duration", value.get_ref()),
            )
            .help(format!(
                "write {key} with a unit, e.g. \"30s\", \"5m\", \"1h\""
            ))),
    }
}

fn folder_list(
    ctx: &Ctx,
    list: &Spanned<Vec<Spanned<String>>>,
) -> Result<Vec<FolderName>, ConfigError> {
    let mut out: Vec<FolderName> = Vec::new();
    for f in list.get_ref() {
        let name = f.get_ref();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(ctx.error(f.span(), "not a folder name").help(
                "give the folder as the server names it, e.g. \"INBOX\" or \"Archive/2024\"",
            ));
        }
        // INBOX is case-insensitive in IMAP: "inbox" and "INBOX" are one folder.
        let same = |a: &str, b: &str| {
            a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
        };
        if out.iter().any(|o| same(&o.0, name)) {
            return Err(ctx
                .error(f.span(), format!("folder {name:?} is listed twice"))
                .help("name each folder once (INBOX in any case is one folder)"));
        }
        out.push(FolderName(name.clone()));
    }
    Ok(out)
}

/// The provider preset: set in the config, or known from the host.
fn provider(a: &RawAccount) -> Option<(Provider, ProviderFrom)> {
    if let Some(p) = &a.provider {
        return Some((*p.get_ref(), ProviderFrom::Config));
    }
    let host = a.host.get_ref().trim_end_matches('.').to_ascii_lowercase();
    ["imap.gmail.com", "imap.googlemail.com"]
        .contains(&host.as_str())
        .then_some((Provider::Gmail, ProviderFrom::Host))
}

fn imap_settings(ctx: &Ctx, a: &RawAccount) -> Result<ImapSettings, ConfigError> {
    let provider = provider(a);
    let gmail = matches!(provider, Some((Provider::Gmail, _)));
    let folders = match &a.folders {
        Some(list) => {
            let mut patterns = Vec::new();
            for p in list.get_ref() {
                patterns.push(FolderPattern::parse(p.get_ref()).map_err(|why| {
                    ctx.error(p.span(), format!("invalid folder pattern {:?}: {why}", p.get_ref()))
                        .help("patterns are IMAP wildcards: `*` matches anything, `%` one level; `!` in front excludes, e.g. [\"*\", \"!Junk\"]")
                })?);
            }
            if !patterns.iter().any(|p| !p.exclude) {
                return Err(ctx
                    .error(
                        list.span(),
                        "`folders` only excludes, so no folder would be synced",
                    )
                    .help("start the list with what to include, e.g. [\"*\", \"!Junk\"]"));
            }
            FolderPatterns(patterns)
        }
        None if gmail => FolderPatterns(
            [
                "*",
                "![Gmail]/Spam",
                "![Gmail]/Trash",
                "![Google Mail]/Spam",
                "![Google Mail]/Trash",
            ]
            .iter()
            .map(|g| FolderPattern {
                exclude: g.starts_with('!'),
                glob: g.trim_start_matches('!').into(),
            })
            .collect(),
        ),
        None => FolderPatterns(vec![FolderPattern {
            exclude: false,
            glob: "*".into(),
        }]),
    };
    let idle = match &a.idle {
        Some(list) => folder_list(ctx, list)?,
        None => vec![FolderName("INBOX".into())],
    };
    let idle_refresh = match &a.idle_refresh {
        Some(r) => {
            let d = duration(ctx, r, "idle_refresh")?;
            if d > MAX_IDLE_REFRESH {
                return Err(ctx
                    .error(
                        r.span(),
                        format!("idle_refresh = \"{}\" is too long", r.get_ref()),
                    )
                    .help(
                        "servers may drop an IDLE after 30 minutes (RFC 2177); use at most \"29m\"",
                    ));
            }
            d
        }
        None => DEFAULT_IDLE_REFRESH,
    };
    let trash = match &a.trash {
        Some(t) => folder_list(ctx, &Spanned::new(t.span(), vec![t.clone()]))?.pop(),
        None => None,
    };
    let max_delete_share = match &a.max_delete_share {
        Some(s) => {
            let v = *s.get_ref();
            if !(v > 0.0 && v <= 1.0) {
                return Err(ctx
                    .error(s.span(), format!("max_delete_share = {v} is not a share"))
                    .help("give a fraction above 0 and at most 1, e.g. 0.5 for half a folder"));
            }
            v
        }
        None => DEFAULT_MAX_DELETE_SHARE,
    };
    let connections = match &a.connections {
        Some(c) => {
            let v = *c.get_ref();
            if !(1..=MAX_CONNECTIONS).contains(&v) {
                return Err(ctx
                    .error(c.span(), format!("connections = {v} is out of range"))
                    .help(format!(
                        "use 1 to {MAX_CONNECTIONS}; most servers limit a user to about 10"
                    )));
            }
            v as usize
        }
        None => DEFAULT_CONNECTIONS,
    };
    let max_connections = match &a.max_connections {
        Some(c) => {
            let v = *c.get_ref();
            if !(1..=MAX_CONNECTIONS).contains(&v) {
                return Err(ctx
                    .error(c.span(), format!("max_connections = {v} is out of range"))
                    .help(format!(
                        "use 1 to {MAX_CONNECTIONS}: the push connection counts, and the server's limit is shared with your other mail clients"
                    )));
            }
            v as usize
        }
        None => DEFAULT_MAX_CONNECTIONS,
    };
    if gmail
        && max_connections > GMAIL_MAX_CONNECTIONS
        && let Some(c) = &a.max_connections
    {
        return Err(ctx
            .error(
                c.span(),
                format!("max_connections = {max_connections} is above Gmail's limit"),
            )
            .help(format!(
                "Gmail allows {GMAIL_MAX_CONNECTIONS} connections per account, shared with your other mail clients; use fewer"
            )));
    }
    let idle_connections = match &a.idle_connections {
        Some(c) => {
            let v = *c.get_ref();
            if v < 0 || v as usize >= max_connections {
                return Err(ctx
                    .error(c.span(), format!("idle_connections = {v} leaves no connection for sync passes within max_connections = {max_connections}"))
                    .help("use fewer IDLE connections (folders without one are swept), or raise max_connections"));
            }
            v as usize
        }
        None => DEFAULT_IDLE_CONNECTIONS.min(max_connections - 1),
    };
    let sweep_interval = match &a.sweep_interval {
        Some(d) => duration(ctx, d, "sweep_interval")?,
        None => DEFAULT_SWEEP,
    };
    Ok(ImapSettings {
        provider,
        folders,
        idle,
        idle_refresh,
        layout: a.layout.as_ref().map(|l| *l.get_ref()).unwrap_or_default(),
        folder_names: a
            .folder_names
            .as_ref()
            .map(|n| *n.get_ref())
            .unwrap_or_default(),
        use_namespace: a.use_namespace.as_ref().is_none_or(|u| *u.get_ref()),
        direction: a
            .direction
            .as_ref()
            .map(|d| *d.get_ref())
            .unwrap_or_default(),
        expunge: a.expunge.as_ref().map(|e| *e.get_ref()).unwrap_or_default(),
        trash,
        delete_vs_flag: a
            .delete_vs_flag
            .as_ref()
            .map(|d| *d.get_ref())
            .unwrap_or_default(),
        max_delete_share,
        connections,
        max_connections,
        idle_connections,
        sweep_interval,
    })
}

fn pop3_settings(ctx: &Ctx, a: &RawAccount) -> Result<Pop3Settings, ConfigError> {
    let keep_on_server = a.keep_on_server.as_ref().is_none_or(|k| *k.get_ref());
    let delete_after_days = match &a.delete_after_days {
        Some(d) => {
            if !keep_on_server {
                return Err(ctx
                    .error(d.span(), "delete_after_days needs keep_on_server = true")
                    .help("with keep_on_server = false mail is deleted from the server right after delivery; drop one of the two"));
            }
            Some(
                u32::try_from(*d.get_ref())
                    .ok()
                    .filter(|d| *d > 0)
                    .ok_or_else(|| {
                        ctx.error(
                            d.span(),
                            format!("delete_after_days = {} is out of range", d.get_ref()),
                        )
                        .help("give a whole number of days, at least 1")
                    })?,
            )
        }
        None => None,
    };
    Ok(Pop3Settings {
        keep_on_server,
        delete_after_days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172800)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn fingerprints_accept_openssl_form() {
        let hex = "AB".repeat(32);
        let colons = (0..32).map(|_| "ab").collect::<Vec<_>>().join(":");
        assert_eq!(fingerprint(&format!("sha256:{hex}")), Some([0xab; 32]));
        assert_eq!(fingerprint(&colons), Some([0xab; 32]));
        assert_eq!(fingerprint("sha256:abcd"), None);
    }

    const TWO: &str = r#"[general]
maildir = "/m"
state_dir = "/s"

[[account]]
name = "work"
kind = "imap"
host = "imap.example.com"
user = "me"
password_command = ["pass", "work"]

[[account]]
name = "home"
kind = "pop3"
host = "pop.example.com"
user = "me"
password_command = ["pass", "home"]
"#;

    fn load(extra: &str) -> Result<Config, ConfigError> {
        let text = format!("{TWO}\n{extra}");
        parse(Path::new("/c/config.toml"), &text, &Dirs::default(), None).map(|l| l.config)
    }

    fn imap_with(keys: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[general]\nmaildir = \"/m\"\nstate_dir = \"/s\"\n[[account]]\nname = \"work\"\nkind = \"imap\"\n\
             host = \"imap.example.com\"\nuser = \"me\"\npassword_command = [\"pass\"]\n{keys}"
        );
        parse(Path::new("/c/config.toml"), &text, &Dirs::default(), None).map(|l| l.config)
    }

    #[test]
    fn push_and_budget_defaults_and_errors_name_the_line() {
        let c = imap_with("").unwrap();
        let AccountKind::Imap(s) = &c.accounts[0].kind else {
            panic!("imap");
        };
        assert_eq!(
            (s.max_connections, s.idle_connections, s.sweep_interval),
            (3, 1, Duration::from_secs(60))
        );
        let c = imap_with("max_connections = 1\n").unwrap();
        let AccountKind::Imap(s) = &c.accounts[0].kind else {
            panic!("imap");
        };
        assert_eq!(
            s.idle_connections, 0,
            "a budget of one leaves nothing for IDLE"
        );
        let e = imap_with("max_connections = 2\nidle_connections = 2\n").unwrap_err();
        assert!(
            e.message
                .contains("idle_connections = 2 leaves no connection"),
            "{e}"
        );
        assert_eq!(e.line_col(), Some((11, 20)));
        assert_eq!(e.account.as_deref(), Some("work"));
        let e = imap_with("max_connections = 0\n").unwrap_err();
        assert!(
            e.message.contains("max_connections = 0 is out of range"),
            "{e}"
        );
        let e = imap_with("sweep_interval = \"soon\"\n").unwrap_err();
        assert!(e.message.contains("`soon` is not a duration"), "{e}");
        assert_eq!(e.line_col(), Some((10, 18)));
    }

    #[test]
    fn unified_defaults_to_every_account_and_the_inbox() {
        let c = load("[unified]\npath = \"/m/Unified/INBOX\"\n").unwrap();
        let u = c.unified.unwrap();
        assert_eq!(u.path, PathBuf::from("/m/Unified/INBOX"));
        assert_eq!(u.folders, [FolderName("INBOX".into())]);
        assert_eq!(
            u.accounts,
            [AccountName("work".into()), AccountName("home".into())]
        );
        assert!(load("").unwrap().unified.is_none());
    }

    #[test]
    fn unified_errors_are_located() {
        let e = load("[unified]\npath = \"/m/U\"\naccounts = [\"work\", \"nope\"]\n").unwrap_err();
        assert!(e.message.contains("no account named `nope`"), "{e}");
        assert_eq!(e.line_col(), Some((21, 21)));
        assert!(e.account.is_none());
        let e = load("[unified]\npath = \"/m/work/Unified\"\n").unwrap_err();
        assert!(e.message.contains("overlaps account `work`"), "{e}");
        assert_eq!(e.line_col(), Some((20, 8)));
        let e = load("[unified]\npath = \"/m/U\"\nfolders = [\"INBOX\", \"inbox\"]\n").unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        let e = load("[unified]\npath = \"/m/U\"\nfolders = []\n").unwrap_err();
        assert!(e.message.contains("`folders` is empty"), "{e}");
        let e = load("[unified]\nfolders = [\"INBOX\"]\n").unwrap_err();
        assert!(e.message.contains("missing field `path`"), "{e}");
        let e = load("[unified]\npath = \"/m/U\"\nfolder = [\"INBOX\"]\n").unwrap_err();
        assert!(e.message.contains("unknown field `folder`"), "{e}");
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost.",
        ] {
            assert!(super::super::is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1", "localhost.example.com"] {
            assert!(!super::super::is_loopback(h), "{h}");
        }
    }
}

#[cfg(test)]
mod oauth2_tests {
    use std::path::Path;

    use crate::config::{Dirs, SecretSource, parse};

    fn parse_account(keys: &str) -> Result<SecretSource, String> {
        let text = format!(
            "[general]\nmaildir = \"/m\"\nstate_dir = \"/s\"\n[[account]]\nname = \"w\"\n\
             kind = \"imap\"\nhost = \"imap.example.com\"\nuser = \"u@example.com\"\n{keys}"
        );
        parse(Path::new("c.toml"), &text, &Dirs::default())
            .map(|mut l| l.config.accounts.remove(0).secret)
            .map_err(|e| format!("{e} {:?}", e.line_col()))
    }

    #[test]
    fn presets_fill_endpoints_and_scopes() {
        let SecretSource::OAuth2(o) = parse_account(
            "auth = \"oauth2\"\n[account.oauth2]\nprovider = \"microsoft\"\nclient_id = \"abc\"\n",
        )
        .unwrap() else {
            panic!("not OAuth2")
        };
        assert_eq!(
            o.token_endpoint,
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert!(o.scopes.contains(&"offline_access".to_owned()));
        assert_eq!(o.token_file, Path::new("/s/w.oauth2-token"));
        let SecretSource::OAuth2(g) =
            parse_account("[account.oauth2]\nprovider = \"google\"\nclient_id = \"abc\"\n")
                .unwrap()
        else {
            panic!("not OAuth2")
        };
        assert_eq!(g.scopes, ["https://mail.google.com/"]);
        assert!(
            g.device_endpoint.is_none(),
            "Google refuses mail in the device flow"
        );
        assert!(!format!("{g:?}").contains("secret\":"));
    }

    #[test]
    fn mistakes_name_the_key_and_the_line() {
        let e = parse_account("auth = \"oauth2\"\n").unwrap_err();
        assert!(e.contains("needs an [account.oauth2] table"), "{e}");
        let e = parse_account("[account.oauth2]\nprovider = \"google\"\n").unwrap_err();
        assert!(e.contains("no client_id"), "{e}");
        let e = parse_account(
            "[account.oauth2]\nprovider = \"custom\"\nclient_id = \"x\"\nscopes = [\"m\"]\n\
             authorization_endpoint = \"https://a/\"\n",
        )
        .unwrap_err();
        assert!(e.contains("needs token_endpoint"), "{e}");
        let e = parse_account(
            "[account.oauth2]\nprovider = \"custom\"\nclient_id = \"x\"\nscopes = [\"m\"]\n\
             authorization_endpoint = \"https://a/\"\ntoken_endpoint = \"http://example.com/t\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("is not an https URL") && e.contains("Some((14, 18))"),
            "{e}"
        );
        let e = parse_account(
            "password = \"p\"\n[account.oauth2]\nprovider = \"google\"\nclient_id = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("more than one secret source"), "{e}");
        let e = parse_account(
            "auth = \"plain\"\n[account.oauth2]\nprovider = \"google\"\nclient_id = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("logs in with a token"), "{e}");
        let e = parse_account(
            "[account.oauth2]\nprovider = \"google\"\nclient_id = \"x\"\ntenant = \"t\"\n",
        )
        .unwrap_err();
        assert!(e.contains("for provider = \"microsoft\" only"), "{e}");
    }
}
