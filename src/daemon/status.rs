//! `syncmail status`: each account's and folder's state, read from the state database
//! without the account lock, so it works whether or not a daemon runs.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use crate::config::{Account, Config};
use crate::model::local_time;
use crate::store::{self, PassStatus, StatusSnapshot};

/// The whole report as text.
pub fn render(config: &Config) -> String {
    let mut out = String::new();
    for account in &config.accounts {
        render_account(&mut out, &config.general.state_dir, account);
    }
    if config.unified.is_some() {
        out.push_str(&crate::unified::render_status(config));
    }
    out
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

fn when(t: SystemTime) -> String {
    let ago = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{} ({ago}s ago)", local_time(t))
}

fn render_account(out: &mut String, state_dir: &Path, account: &Account) {
    let kind = match account.kind {
        crate::config::AccountKind::Imap(_) => "imap",
        crate::config::AccountKind::Pop3(_) => "pop3",
    };
    let _ = write!(out, "{} ({kind}): ", account.name);
    match holder(state_dir, account) {
        Some((pid, true)) => {
            let _ = writeln!(out, "running, pid {pid} (daemon or sync)");
        }
        Some((pid, false)) => {
            let _ = writeln!(out, "not running (pid {pid} in the lock file has exited)");
        }
        None => {
            let _ = writeln!(out, "not running");
        }
    }
    if let crate::config::SecretSource::OAuth2(cfg) = &account.secret {
        let _ = writeln!(
            out,
            "  oauth2: {}",
            crate::secret::oauth2::store::describe_now(cfg)
        );
    }
    let snapshot = match store::db_path(state_dir, &account.name) {
        Ok(path) if path.exists() => store::read_status(&path),
        Ok(_) => {
            let _ = writeln!(out, "  never synced");
            return;
        }
        Err(e) => Err(e),
    };
    let snapshot: StatusSnapshot = match snapshot {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(out, "  cannot read the state: {e}");
            return;
        }
    };
    let account_row = snapshot.passes.iter().find(|p| p.folder.is_none());
    if let Some(row) = account_row {
        if let Some(state) = &row.daemon_state {
            let _ = writeln!(out, "  daemon: {state}");
        }
        let failing = snapshot
            .passes
            .iter()
            .filter(|p| p.folder.is_some() && p.last_error.is_some())
            .count();
        if row.last_error.is_none() && failing > 0 {
            // The account's pass ran, but "ok" would hide the folders that failed in it.
            let _ = writeln!(
                out,
                "  account: last pass {} ran, but {failing} folder(s) FAILED (below)",
                when(row.last_attempt)
            );
        } else {
            line(out, "  account", row);
        }
    }
    if snapshot.open_intents > 0 {
        let _ = writeln!(
            out,
            "  pending: {} interrupted action(s), resumed by the next pass",
            snapshot.open_intents
        );
    }
    if !snapshot.holds.is_empty() {
        let _ = writeln!(
            out,
            "  held at first contact: {} message(s) not transferred until you decide (`syncmail adopt {} --transfer` copies them across, `--keep-apart` leaves them where they are):",
            snapshot.holds.len(),
            account.name
        );
        for h in &snapshot.holds {
            let what = match h.hold.side {
                store::Side::Server => format!("server UID {}", h.hold.item),
                store::Side::Local => format!("file {}", h.hold.item),
            };
            let _ = writeln!(out, "    {}: {what}: {}", h.folder, h.hold.reason);
        }
    }
    for folder in &snapshot.folders {
        let row = snapshot
            .passes
            .iter()
            .find(|p| p.folder.as_ref() == Some(&folder.server_name));
        let label = format!("  folder {}", folder.server_name);
        if let Some(reason) = &folder.halt_reason {
            let _ = writeln!(out, "{label}: HALTED: {reason}");
        }
        match row {
            Some(row) => line(out, &label, row),
            None => {
                let _ = writeln!(out, "{label}: no pass recorded");
            }
        }
    }
    // Folders that failed before they got any state of their own (a server name the
    // layout cannot map, a local folder the server refused to create) are still what
    // the account line counts as FAILED.
    for row in &snapshot.passes {
        let Some(name) = &row.folder else { continue };
        if row.last_error.is_some() && !snapshot.folders.iter().any(|f| &f.server_name == name) {
            line(out, &format!("  folder {name}"), row);
        }
    }
}

fn line(out: &mut String, label: &str, row: &PassStatus) {
    let ok = row.last_ok.map_or_else(|| "never".to_owned(), when);
    match &row.last_error {
        None => {
            let _ = writeln!(out, "{label}: last pass ok {ok}");
        }
        Some(e) => {
            let _ = writeln!(
                out,
                "{label}: last attempt {} FAILED: {e}; last success {ok}",
                when(row.last_attempt)
            );
        }
    }
}
