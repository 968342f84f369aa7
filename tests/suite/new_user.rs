//! What a new user meets first (issue 21): `syncmail init`, `status` and `log` as text
//! and as JSON, against a real Dovecot, a real Maildir and the real state database.

use std::os::unix::fs::PermissionsExt;

use crate::support::sync_env::SyncEnv;
use crate::support::{maildir as md, stderr, stdout, syncmail_with_env};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn init_writes_a_config_that_loads_and_never_overwrites_it() {
    let home = tempfile::tempdir().unwrap();
    let xdg = home.path().join("cfg");
    let vars = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
    let out = syncmail_with_env(home.path(), &["init"], &vars);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let path = xdg.join("syncmail/config.toml");
    assert!(
        stdout(&out).contains(path.to_str().unwrap()),
        "{}",
        stdout(&out)
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "it may hold a password");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written.starts_with("# Written by `syncmail init`"),
        "{written}"
    );

    // It loads as it is, from the default path.
    let check = syncmail_with_env(home.path(), &["check-config"], &vars);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));

    // A second init leaves the user's file alone and says why.
    std::fs::write(&path, "# mine\n").unwrap();
    let again = syncmail_with_env(home.path(), &["init"], &vars);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
}

#[test]
fn status_json_has_unread_and_total_counts_per_folder() {
    let env = SyncEnv::new("");
    for id in ["a", "b", "c"] {
        env.seed("INBOX", id);
    }
    env.dovecot.add_flags("alice", "INBOX", 1, "\\Seen");
    env.sync_ok();
    let out = env.run("status", &["--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = json(&stdout(&out));
    assert_eq!(doc["schema_version"], 1);
    let account = &doc["accounts"][0];
    assert_eq!(account["name"], "t");
    assert_eq!(account["kind"], "imap");
    assert_eq!(account["state"], "ok");
    assert_eq!(account["running"], false);
    assert_eq!(account["unread"], 2);
    assert_eq!(account["total"], 3);
    let inbox = account["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "INBOX")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(inbox["state"], "ok");
    assert_eq!(
        (inbox["unread"].as_u64(), inbox["total"].as_u64()),
        (Some(2), Some(3))
    );
    let last_ok = inbox["last_ok"].as_str().unwrap();
    assert!(
        jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%:z", last_ok).is_ok(),
        "RFC 3339 with an offset: {last_ok}"
    );
    // The text says the same.
    let text = stdout(&env.run("status", &[], &[]));
    assert!(text.contains("t (imap): no daemon running"), "{text}");
    assert!(text.contains("; 2 unread, 3 messages"), "{text}");
}

#[test]
fn a_pop3_account_shows_its_inbox_pass_in_status() {
    let env = SyncEnv::pop3("");
    env.seed("INBOX", "one");
    for _ in 0..3 {
        env.sync_ok();
    }
    let text = stdout(&env.run("status", &[], &[]));
    let line = text
        .lines()
        .find(|l| l.contains("folder INBOX"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("last pass ok"), "{text}");
    assert!(!text.contains("no pass recorded"), "{text}");
    let doc = json(&stdout(&env.run("status", &["--json"], &[])));
    assert_eq!(doc["accounts"][0]["folders"][0]["state"], "ok", "{doc:#}");
    assert_eq!(doc["accounts"][0]["folders"][0]["total"], 1, "{doc:#}");
}

#[test]
fn status_times_are_in_the_local_zone_tz_names() {
    let env = SyncEnv::new("");
    env.seed("INBOX", "a");
    env.sync_ok();
    for (tz, offset) in [("Asia/Kolkata", "+05:30"), ("UTC", "+00:00")] {
        let text = stdout(&env.run("status", &[], &[("TZ", tz)]));
        let line = text.lines().find(|l| l.contains("folder INBOX")).unwrap();
        assert!(line.contains(&format!("{offset} (")), "TZ={tz}: {line}");
        let log = stdout(&env.run("log", &[], &[("TZ", tz)]));
        assert!(
            log.lines().next().unwrap().contains(offset),
            "TZ={tz}: {log}"
        );
        // Log lines on stderr too (tracing's own clock is UTC).
        env.seed("INBOX", &format!("more-{tz}"));
        let err = stderr(&env.run("sync", &[], &[("TZ", tz)]));
        let line = err
            .lines()
            .find(|l| l.contains(" INFO "))
            .unwrap_or_else(|| panic!("no log line:\n{err}"));
        assert!(line.contains(&format!("{offset} ")), "TZ={tz}: {line}");
    }
}

/// A download is logged when the batch that brought it commits (the plan holds no
/// change per download, so a first sync's memory does not grow with the folder, issue
/// 19): each message once, with its UID and the file it became.
#[test]
fn the_log_lists_each_downloaded_message_once_with_its_file() {
    let env = SyncEnv::new("");
    for m in ["a", "b", "c"] {
        env.seed("INBOX", m);
    }
    env.sync_ok();
    env.sync_ok();
    let log = env.log(&[]);
    let rows: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": new (propagated)"))
        .collect();
    assert_eq!(rows.len(), 3, "{log}");
    for m in ["a", "b", "c"] {
        let key = env.key_of("INBOX", m);
        assert_eq!(
            rows.iter().filter(|r| r.contains(&key)).count(),
            1,
            "{m}: {log}"
        );
    }
}

#[test]
fn log_conflicts_says_so_when_there_are_none() {
    let env = SyncEnv::new("");
    env.seed("INBOX", "a");
    env.sync_ok();
    assert_eq!(env.log(&["--conflicts"]).trim(), "t: no conflicts recorded");
}

#[test]
fn log_json_names_each_change_and_conflict() {
    let env = SyncEnv::new("");
    env.seed("INBOX", "keep-me");
    env.sync_ok();
    let key = env.key_of("INBOX", "keep-me");
    md::delete(&env.inbox(), &key);
    env.dovecot.add_flags("alice", "INBOX", 1, "\\Flagged");
    env.sync_ok();
    let doc = json(&env.log(&["--json"]));
    assert_eq!(doc["schema_version"], 1);
    let entries = doc["accounts"][0]["entries"].as_array().unwrap();
    let conflict = entries
        .iter()
        .find(|e| e["kind"] == "conflict")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(conflict["account"], "t");
    assert_eq!(conflict["folder"], "INBOX");
    assert_eq!(conflict["uid"], 1);
    assert_eq!(conflict["file"], key.as_str());
    assert!(
        conflict["message_id"].as_str().unwrap().contains("keep-me"),
        "{conflict}"
    );
    assert_eq!(conflict["side"], "both");
    assert_eq!(conflict["resolution"], "kept and copied back");
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "change" && e["side"] == "maildir" && e["change"] == "deleted"),
        "{doc:#}"
    );
    // Only conflicts, and still JSON, with --conflicts.
    let only = json(&env.log(&["--conflicts", "--json"]));
    let kinds: Vec<&str> = only["accounts"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["conflict"]);
}

/// `syncmail sync` (from a mutt macro, say) while the daemon holds the account: the
/// daemon runs a pass of every folder that starts after the request, and `sync` prints
/// its outcome and exits as if it had run it. The new message sits in a folder that
/// only a full pass sees here (no NOTIFY, the sweep an hour away), so it can only have
/// come by the pass `sync` asked for. Options a daemon pass cannot honour are refused,
/// named, once.
#[test]
fn sync_while_the_daemon_runs_has_the_daemon_run_the_pass() {
    use crate::support::daemon::{Daemon, FAST, local_count, wait_until};
    use crate::support::dovecot::{Dovecot, WITHOUT_NOTIFY};
    let keys = format!("{FAST}sweep_interval = \"1h\"\n");
    let env = SyncEnv::with_dovecot(Dovecot::start_extra(WITHOUT_NOTIFY), &keys);
    env.seed("INBOX", "a");
    env.dovecot.create_mailbox("alice", "Other");
    env.seed("Other", "o1");
    let daemon = Daemon::start(&env);
    wait_until(
        &daemon,
        std::time::Duration::from_secs(20),
        "the first pass",
        || local_count(&env, "Other") == 1 && daemon.log().contains("idling on INBOX"),
    );
    env.seed("Other", "o2");
    let started = std::time::Instant::now();
    let out = env.sync(&[]);
    let took = started.elapsed();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}{err}\n{}", daemon.log());
    assert_eq!(local_count(&env, "Other"), 2, "{text}{err}");
    assert!(text.contains("t: 2 folders: fetched 1"), "{text}");
    let pid = daemon.pid().to_string();
    assert!(
        err.contains(&format!(
            "account `t`: the daemon (pid {pid}) holds this account; it runs the pass (waiting up to 120s)"
        )),
        "{err}"
    );
    assert!(
        daemon
            .log()
            .contains("`syncmail sync` asked for a pass of every folder"),
        "{}",
        daemon.log()
    );
    eprintln!("handed over and answered in {took:?}");

    // Nothing new: the pass still runs, and says so.
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("t: 2 folders: fetched 0"),
        "{}",
        stdout(&out)
    );

    for (args, option) in [
        (&["--folder", "Other"][..], "--folder"),
        (&["--dry-run"][..], "--dry-run"),
    ] {
        let out = env.sync(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(75), "EX_TEMPFAIL: {err}");
        assert_eq!(err.matches(&pid).count(), 1, "said once:\n{err}");
        assert!(
            err.contains(&format!(
                "account `t`: the daemon (pid {pid}) holds this account, and {option} cannot be handed to it; nothing done here"
            )),
            "{err}"
        );
    }
    daemon.stop();
}

#[test]
fn relative_paths_are_printed_resolved() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        "[general]\nmaildir = \"Mail\"\nstate_dir = \"state\"\n\n[[account]]\nname = \"w\"\nkind = \"imap\"\nhost = \"imap.example.com\"\nuser = \"me\"\npassword_command = [\"true\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncmail"))
        .args(["check-config", "--config", "config.toml"])
        .current_dir(home.path())
        .env_clear()
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    // The process sees its working directory as getcwd(3) reports it.
    let root = home.path().canonicalize().unwrap();
    for line in [
        format!("{}/config.toml: ok", root.display()),
        format!("  maildir root: {}/Mail", root.display()),
        format!("  state: {}/state", root.display()),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert!(
        text.contains(&format!("into {}/Mail/w", root.display())),
        "{text}"
    );
}

#[test]
fn a_folder_pattern_that_matches_nothing_is_warned_about() {
    let env = SyncEnv::new("folders = [\"INBOX\", \"Archiv\"]\n");
    env.dovecot.create_mailbox("alice", "Archive");
    env.seed("INBOX", "a");
    let text = env.sync_ok();
    assert!(
        text.contains("t: warning: folder pattern `Archiv` matches no folder on the server"),
        "{text}"
    );
    let out = env.run("check-config", &["--connect"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("warning: folder pattern `Archiv` matches no folder on the server"),
        "{text}"
    );
    assert!(!text.contains("pattern `INBOX`"), "{text}");
}

#[test]
fn the_status_bar_example_shows_the_unread_count() {
    if std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("jq is not installed: skipped");
        return;
    }
    let env = SyncEnv::new("");
    for id in ["a", "b", "c"] {
        env.seed("INBOX", id);
    }
    env.dovecot.add_flags("alice", "INBOX", 1, "\\Seen");
    env.sync_ok();
    // Installed as a user has it: the config at the default path, syncmail on PATH.
    let home = env.home.path();
    std::fs::create_dir_all(home.join(".config/syncmail")).unwrap();
    std::fs::copy(&env.config, home.join(".config/syncmail/config.toml")).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_syncmail"))
        .parent()
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/status-bar/syncmail-unread"
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new(script)
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(run(&[]), "✉ 2\n");
    let waybar = json(&run(&["--waybar"]));
    assert_eq!(waybar["text"], "✉ 2");
    assert_eq!(waybar["class"], "unread");
    assert_eq!(waybar["tooltip"], "t: 2 unread");
}
