//! `syncmail status`: each account's and folder's state, read from the state database
//! without the account lock, so it works whether or not a daemon runs. One [`Report`]
//! is built, then shown as text or as JSON (`--json`, schema in `doc/json-schema.md`).

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::config::{Account, AccountKind, Config};
use crate::model::{Flag, local_time, rfc3339};
use crate::store::{self, PassStatus, StatusSnapshot};

/// Bumped when a field changes meaning or goes away; new fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub accounts: Vec<AccountStatus>,
}

#[derive(Debug, Serialize)]
pub struct AccountStatus {
    pub name: String,
    pub kind: &'static str,
    /// `ok`, `failed` (the last pass failed), `folders-failed` (it ran but some folders
    /// failed or are halted), `never-synced`, `unreadable` (the state database).
    pub state: &'static str,
    /// A syncmail process (daemon or sync) holds the account's lock.
    pub running: bool,
    /// The pid in the lock file, alive or not.
    pub pid: Option<u32>,
    /// What the daemon last said it was doing for the account.
    pub daemon_state: Option<String>,
    pub last_attempt: Option<String>,
    pub last_ok: Option<String>,
    pub error: Option<String>,
    /// Journalled actions an interrupted pass left, resumed by the next pass.
    pub pending_actions: usize,
    /// Messages a first contact held (`syncmail adopt`).
    pub held: Vec<Held>,
    /// Sums over the folders below.
    pub unread: u64,
    pub total: u64,
    pub folders: Vec<FolderStatus>,
    /// For an `auth = "oauth2"` account: where the login is kept and whether it is
    /// usable (`keyring: logged in`, or what to run when it is not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<String>,
    /// The account's last pass, for the text rendering's "ago".
    #[serde(skip)]
    times: Times,
}

#[derive(Debug, Serialize)]
pub struct Held {
    pub folder: String,
    /// `server` (a UID) or `local` (a Maildir key).
    pub side: &'static str,
    pub item: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct FolderStatus {
    /// The server's name for the folder (`INBOX`, `Archive/2024`).
    pub name: String,
    /// `ok`, `failed`, `halted` or `never-synced`.
    pub state: &'static str,
    pub last_attempt: Option<String>,
    pub last_ok: Option<String>,
    pub error: Option<String>,
    /// Why the folder is halted (it is skipped until this is resolved).
    pub halt: Option<String>,
    /// The local Maildir folder, and its messages without the seen flag, and all.
    pub maildir: Option<String>,
    pub unread: u64,
    pub total: u64,
    /// Times as `SystemTime`, for the text rendering's "ago".
    #[serde(skip)]
    times: Times,
}

#[derive(Debug, Default)]
struct Times {
    attempt: Option<SystemTime>,
    ok: Option<SystemTime>,
}

/// The whole report as text.
pub fn render(config: &Config) -> String {
    let report = report(config);
    let mut out = String::new();
    for status in &report.accounts {
        render_account(&mut out, status);
    }
    if config.unified.is_some() {
        out.push_str(&crate::unified::render_status(config));
    }
    out
}

/// The whole report as JSON, one document.
pub fn render_json(config: &Config) -> String {
    let mut text = serde_json::to_string_pretty(&report(config))
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
    text.push('\n');
    text
}

pub fn report(config: &Config) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        accounts: config
            .accounts
            .iter()
            .map(|a| account_status(&config.general.state_dir, a))
            .collect(),
    }
}

/// The pid in the account's lock file, and whether that process is alive. The lock is
/// not taken: that would turn away a daemon starting at the same moment.
fn holder(state_dir: &Path, account: &Account) -> Option<(u32, bool)> {
    let path = store::lock_path(state_dir, &account.name).ok()?;
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    let alive = if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    };
    Some((pid, alive))
}

/// Read side: what a mail client would count. Messages in `new/` are unread too.
fn counts(path: &Path) -> (u64, u64) {
    let Ok(scan) = crate::maildir::Maildir::open(path).and_then(|m| m.scan()) else {
        return (0, 0);
    };
    let total = scan.messages.len() as u64;
    let unread = scan
        .messages
        .values()
        .filter(|m| !m.flags.contains(Flag::Seen))
        .count() as u64;
    (unread, total)
}

fn account_status(state_dir: &Path, account: &Account) -> AccountStatus {
    let (kind, pop3) = match account.kind {
        AccountKind::Imap(_) => ("imap", false),
        AccountKind::Pop3(_) => ("pop3", true),
    };
    let holder = holder(state_dir, account);
    let mut status = AccountStatus {
        name: account.name.0.clone(),
        kind,
        state: "never-synced",
        running: holder.is_some_and(|(_, alive)| alive),
        pid: holder.map(|(pid, _)| pid),
        daemon_state: None,
        last_attempt: None,
        last_ok: None,
        error: None,
        pending_actions: 0,
        held: Vec::new(),
        unread: 0,
        total: 0,
        folders: Vec::new(),
        oauth2: None,
        times: Times::default(),
    };
    if let crate::config::SecretSource::OAuth2(cfg) = &account.secret {
        status.oauth2 = Some(crate::secret::oauth2::store::describe_now(cfg));
    }
    let snapshot = match store::db_path(state_dir, &account.name) {
        Ok(path) if path.exists() => store::read_status(&path),
        Ok(_) => return status,
        Err(e) => Err(e),
    };
    let snapshot: StatusSnapshot = match snapshot {
        Ok(s) => s,
        Err(e) => {
            status.state = "unreadable";
            status.error = Some(format!("cannot read the state: {e}"));
            return status;
        }
    };
    let account_row = snapshot.passes.iter().find(|p| p.folder.is_none());
    for folder in &snapshot.folders {
        let row = snapshot
            .passes
            .iter()
            .find(|p| p.folder.as_ref() == Some(&folder.server_name))
            // A POP3 account has one folder, and its pass is the account's poll.
            .or(account_row.filter(|_| pop3));
        let (unread, total) = counts(&folder.local_path);
        status.folders.push(folder_status(
            folder.server_name.0.clone(),
            row,
            folder.halt_reason.clone(),
            Some(folder.local_path.display().to_string()),
            (unread, total),
        ));
    }
    // Folders that failed before they got any state of their own (a server name the
    // layout cannot map, a local folder the server refused to create) are still what
    // the account line counts as failed.
    for row in &snapshot.passes {
        let Some(name) = &row.folder else { continue };
        if row.last_error.is_some() && !snapshot.folders.iter().any(|f| &f.server_name == name) {
            status
                .folders
                .push(folder_status(name.0.clone(), Some(row), None, None, (0, 0)));
        }
    }
    status.unread = status.folders.iter().map(|f| f.unread).sum();
    status.total = status.folders.iter().map(|f| f.total).sum();
    status.pending_actions = snapshot.open_intents;
    status.held = snapshot
        .holds
        .iter()
        .map(|h| Held {
            folder: h.folder.0.clone(),
            side: match h.hold.side {
                store::Side::Server => "server",
                store::Side::Local => "local",
            },
            item: h.hold.item.clone(),
            reason: h.hold.reason.clone(),
        })
        .collect();
    if let Some(row) = account_row {
        status.daemon_state = row.daemon_state.clone();
        status.last_attempt = Some(rfc3339(row.last_attempt));
        status.last_ok = row.last_ok.map(rfc3339);
        status.error = row.last_error.clone();
        status.times = Times {
            attempt: Some(row.last_attempt),
            ok: row.last_ok,
        };
        let folders_bad = status
            .folders
            .iter()
            .any(|f| matches!(f.state, "failed" | "halted"));
        status.state = match (&row.last_error, folders_bad) {
            (Some(_), _) => "failed",
            (None, true) => "folders-failed",
            (None, false) => "ok",
        };
    } else if !status.folders.is_empty() {
        status.state = "ok";
    }
    status
}

fn folder_status(
    name: String,
    row: Option<&PassStatus>,
    halt: Option<String>,
    maildir: Option<String>,
    (unread, total): (u64, u64),
) -> FolderStatus {
    let state = match (row, &halt) {
        (_, Some(_)) => "halted",
        (None, None) => "never-synced",
        (Some(r), None) if r.last_error.is_some() => "failed",
        (Some(_), None) => "ok",
    };
    FolderStatus {
        name,
        state,
        last_attempt: row.map(|r| rfc3339(r.last_attempt)),
        last_ok: row.and_then(|r| r.last_ok).map(rfc3339),
        error: row.and_then(|r| r.last_error.clone()),
        halt,
        maildir,
        unread,
        total,
        times: Times {
            attempt: row.map(|r| r.last_attempt),
            ok: row.and_then(|r| r.last_ok),
        },
    }
}

fn when(t: SystemTime) -> String {
    let ago = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{} ({})", local_time(t), ago_text(ago))
}

fn ago_text(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs}s ago"),
        120..7200 => format!("{} min ago", secs / 60),
        7200..172_800 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn render_account(out: &mut String, s: &AccountStatus) {
    let _ = write!(out, "{} ({}): ", s.name, s.kind);
    match (s.pid, s.running) {
        (Some(pid), true) => {
            let _ = writeln!(out, "running, pid {pid} (daemon or sync)");
        }
        (Some(pid), false) => {
            let _ = writeln!(
                out,
                "no daemon running (pid {pid} in the lock file has exited)"
            );
        }
        (None, _) => {
            let _ = writeln!(out, "no daemon running");
        }
    }
    if let Some(oauth2) = &s.oauth2 {
        let _ = writeln!(out, "  oauth2: {oauth2}");
    }
    match s.state {
        "never-synced" if s.folders.is_empty() => {
            let _ = writeln!(out, "  never synced");
            return;
        }
        "unreadable" => {
            let _ = writeln!(out, "  {}", s.error.as_deref().unwrap_or_default());
            return;
        }
        _ => {}
    }
    if let Some(attempt) = s.times.attempt {
        if let Some(state) = &s.daemon_state {
            let _ = writeln!(out, "  daemon: {state}");
        }
        let failing = s.folders.iter().filter(|f| f.error.is_some()).count();
        if s.error.is_none() && failing > 0 {
            // The account's pass ran, but "ok" would hide the folders that failed in it.
            let _ = writeln!(
                out,
                "  account: last pass {} ran, but {} FAILED (below)",
                when(attempt),
                plural(failing, "folder", "folders")
            );
        } else {
            line(
                out,
                "  account",
                s.error.as_deref(),
                attempt,
                s.times.ok,
                "",
            );
        }
    }
    if s.pending_actions > 0 {
        let _ = writeln!(
            out,
            "  pending: {}, resumed by the next pass",
            plural(
                s.pending_actions,
                "interrupted action",
                "interrupted actions"
            )
        );
    }
    if !s.held.is_empty() {
        let _ = writeln!(
            out,
            "  held at first contact: {} not transferred until you decide (`syncmail adopt {} --transfer` copies them across, `--keep-apart` leaves them where they are):",
            plural(s.held.len(), "message", "messages"),
            s.name
        );
        for h in &s.held {
            let what = match h.side {
                "server" => format!("server UID {}", h.item),
                _ => format!("file {}", h.item),
            };
            let _ = writeln!(out, "    {}: {what}: {}", h.folder, h.reason);
        }
    }
    for f in &s.folders {
        let label = format!("  folder {}", f.name);
        if let Some(reason) = &f.halt {
            let _ = writeln!(out, "{label}: HALTED: {reason}");
        }
        let counts = if f.maildir.is_some() {
            format!(
                "; {} unread, {}",
                f.unread,
                plural(f.total as usize, "message", "messages")
            )
        } else {
            String::new()
        };
        match f.times.attempt {
            Some(attempt) => line(
                out,
                &label,
                f.error.as_deref(),
                attempt,
                f.times.ok,
                &counts,
            ),
            None => {
                let _ = writeln!(out, "{label}: no pass recorded yet{counts}");
            }
        }
    }
}

fn line(
    out: &mut String,
    label: &str,
    error: Option<&str>,
    attempt: SystemTime,
    ok: Option<SystemTime>,
    counts: &str,
) {
    let ok = ok.map_or_else(|| "never".to_owned(), when);
    match error {
        None => {
            let _ = writeln!(out, "{label}: last pass ok {ok}{counts}");
        }
        Some(e) => {
            let _ = writeln!(
                out,
                "{label}: last attempt {} FAILED: {e}; last success {ok}{counts}",
                when(attempt)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_unit_that_fits() {
        assert_eq!(ago_text(5), "5s ago");
        assert_eq!(ago_text(600), "10 min ago");
        assert_eq!(ago_text(3 * 3600), "3 h ago");
        assert_eq!(ago_text(3 * 86_400), "3 days ago");
    }

    #[test]
    fn one_folder_is_not_one_folders() {
        assert_eq!(plural(1, "folder", "folders"), "1 folder");
        assert_eq!(plural(2, "folder", "folders"), "2 folders");
    }
}
