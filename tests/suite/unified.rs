//! The unified inbox end to end: two IMAP accounts (alice as `work`, bob as `home`) and a
//! POP3 account (carol as `old`) on a private Dovecot, merged into one Maildir by the real
//! binary. Every test ends by checking that no Message-ID appears twice anywhere.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::sync_env::QUIET;
use crate::support::{Dovecot, stderr, stdout, syncmail};

/// What a reconcile that changed nothing prints.
const UNIFIED_QUIET: &str = "unified: linked 0, flags to accounts 0 to unified 0, deleted 0 in accounts, removed 0 from unified";

struct Env {
    dovecot: Dovecot,
    home: tempfile::TempDir,
    config: PathBuf,
}

impl Env {
    /// `work` (alice) and `home` (bob) over IMAPS; with `pop3`, also `old` (carol).
    fn new(pop3: bool, account_extra: &str) -> Env {
        let dovecot = Dovecot::start_with_users(&["alice", "bob", "carol"]);
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join("config.toml");
        let mut text = format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n",
            home.path().display()
        );
        for (name, user) in [("work", "alice"), ("home", "bob")] {
            text.push_str(&dovecot.imap_account(name, user, "implicit"));
            text.push_str(account_extra);
            text.push('\n');
        }
        if pop3 {
            text.push_str(&dovecot.pop3_account("old", "carol", "implicit"));
            text.push('\n');
        }
        text.push_str(&format!(
            "[unified]\npath = \"{}/Mail/Unified/INBOX\"\n",
            home.path().display()
        ));
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        Env {
            dovecot,
            home,
            config,
        }
    }

    fn seed(&self, user: &str, id: &str) {
        self.dovecot.seed(
            user,
            "INBOX",
            &message(id, &format!("{id}@test"), &format!("body of {id}")),
        );
    }

    fn unified(&self) -> PathBuf {
        self.home.path().join("Mail/Unified/INBOX")
    }

    fn inbox(&self, account: &str) -> PathBuf {
        self.home.path().join("Mail").join(account).join("INBOX")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec![args[0], "--config", self.config.to_str().unwrap()];
        all.extend_from_slice(&args[1..]);
        syncmail(self.home.path(), &all)
    }

    /// `syncmail sync`, required to succeed; its stdout.
    fn sync_ok(&self) -> String {
        let out = self.run(&["sync"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "sync failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// The unified key of the message `id`.
    fn key_of(&self, dir: &Path, id: &str) -> String {
        let needle = format!("body of {id}\r\n");
        md::messages(dir)
            .into_keys()
            .find(|k| md::read(dir, k).ends_with(needle.as_bytes()))
            .unwrap_or_else(|| panic!("no message {id} in {dir:?}"))
    }

    /// `(Message-ID, flag letters)` of the unified folder.
    fn unified_state(&self) -> Vec<(String, String)> {
        md::state(&self.unified())
    }

    fn server_ids(&self, user: &str) -> Vec<String> {
        self.dovecot
            .state(user, "INBOX")
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    fn server_flags(&self, user: &str, id: &str) -> String {
        let want = format!("<{id}@test>");
        self.dovecot
            .state(user, "INBOX")
            .into_iter()
            .find(|(i, _)| *i == want)
            .map(|(_, f)| f)
            .unwrap_or_else(|| panic!("{id} not on {user}'s server"))
    }

    /// The mapping's rows, as stored.
    fn mapping(&self) -> Vec<(String, String, String, String, String)> {
        let db = self.home.path().join("state/unified.sqlite");
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut stmt = conn
            .prepare("SELECT unified_key, account, folder, local_key, base_flags FROM entries ORDER BY unified_key")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// No Message-ID twice: in the unified folder, on each server, in each account.
    fn assert_no_duplicates(&self) {
        let once = |what: &str, ids: Vec<String>| {
            let mut seen = BTreeMap::new();
            for id in ids {
                *seen.entry(id).or_insert(0) += 1;
            }
            let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
            assert!(twice.is_empty(), "{what} holds duplicates: {twice:?}");
        };
        once(
            "the unified folder",
            self.unified_state().into_iter().map(|(i, _)| i).collect(),
        );
        for user in ["alice", "bob"] {
            once(user, self.server_ids(user));
        }
        for account in ["work", "home"] {
            if self.inbox(account).is_dir() {
                once(
                    account,
                    md::state(&self.inbox(account))
                        .into_iter()
                        .map(|(i, _)| i)
                        .collect(),
                );
            }
        }
    }
}

fn ids(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|i| format!("<{i}@test>")).collect();
    v.sort();
    v
}

fn inode(dir: &Path, key: &str) -> u64 {
    std::fs::metadata(md::path_of(dir, key)).unwrap().ino()
}

/// Alice has a1 and a2, bob b1; one sync shows them all.
fn synced(pop3: bool) -> Env {
    let env = Env::new(pop3, "");
    env.seed("alice", "a1");
    env.seed("alice", "a2");
    env.seed("bob", "b1");
    if pop3 {
        env.seed("carol", "c1");
    }
    env.sync_ok();
    env
}

#[test]
fn messages_of_every_account_appear_once_as_hard_links_and_stay_put() {
    let env = synced(true);
    let u = env.unified();
    let state = env.unified_state();
    let got: Vec<String> = state.iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(got, ids(&["a1", "a2", "b1", "c1"]));
    for (account, id) in [
        ("work", "a1"),
        ("work", "a2"),
        ("home", "b1"),
        ("old", "c1"),
    ] {
        let inbox = env.inbox(account);
        let (uk, ak) = (env.key_of(&u, id), env.key_of(&inbox, id));
        assert_eq!(md::read(&u, &uk), md::read(&inbox, &ak), "{id}");
        assert_eq!(inode(&u, &uk), inode(&inbox, &ak), "{id} is a hard link");
        assert_ne!(uk, ak, "unified files get their own unique part");
    }
    let mode = std::fs::metadata(&u).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let db = env.home.path().join("state/unified.sqlite");
    assert_eq!(std::fs::metadata(&db).unwrap().mode() & 0o777, 0o600);

    let out = env.run(&["check-config"]);
    assert!(
        stdout(&out).contains("unified folder")
            && stdout(&out).contains("INBOX of work, home, old"),
        "{}",
        stdout(&out)
    );

    // A file saved into the unified folder by hand is left alone and named once.
    md::add(
        &u,
        "1700000000.M1P1.mine",
        "S",
        &message("mine", "mine@test", "body of mine"),
    );
    let names = md::messages(&u);
    let rows = env.mapping();
    assert_eq!(rows.len(), 4);
    for round in 0..2 {
        let out = env.run(&["sync"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(UNIFIED_QUIET), "round {round}: {text}");
        assert_eq!(text.matches(QUIET).count(), 2, "round {round}: {text}");
        let warned = stderr(&out).contains("1700000000.M1P1.mine");
        assert_eq!(warned, round == 0, "warned once: {}", stderr(&out));
        assert_eq!(md::messages(&u), names, "no new links, no renames");
        assert_eq!(env.mapping(), rows, "the mapping is kept as it was");
    }
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2"]));
    let status = stdout(&env.run(&["unified", "status"]));
    assert!(status.contains("4 entries"), "{status}");
    assert!(
        status.contains("1 from account `home` folder INBOX"),
        "{status}"
    );
    assert!(status.contains("last good reconcile"), "{status}");
    assert!(stdout(&env.run(&["status"])).contains("4 entries"));
    env.assert_no_duplicates();
}

#[test]
fn a_flag_set_in_unified_reaches_only_its_server_in_one_sync() {
    let env = synced(false);
    let u = env.unified();
    md::set_flags(&u, &env.key_of(&u, "a1"), "S");
    let text = env.sync_ok();
    assert!(text.contains("flags to accounts 1"), "{text}");
    assert_eq!(env.server_flags("alice", "a1"), "\\Seen");
    assert_eq!(env.server_flags("alice", "a2"), "");
    assert_eq!(env.server_flags("bob", "b1"), "");
    // The account copy carries it too, and a rerun is quiet.
    let inbox = env.inbox("work");
    assert_eq!(md::messages(&inbox)[&env.key_of(&inbox, "a1")], "S");
    let text = env.sync_ok();
    assert!(
        text.contains(UNIFIED_QUIET) && text.matches(QUIET).count() == 2,
        "{text}"
    );
    env.assert_no_duplicates();
}

#[test]
fn a_deletion_in_unified_expunges_only_on_its_server_in_one_sync() {
    // Bob keeps one message: the account's own guard holds back emptying a folder.
    let env = Env::new(false, "");
    env.seed("alice", "a1");
    env.seed("alice", "a2");
    env.seed("bob", "b1");
    env.seed("bob", "b2");
    env.sync_ok();
    let u = env.unified();
    md::delete(&u, &env.key_of(&u, "b1"));
    let text = env.sync_ok();
    assert!(text.contains("deleted 1 in accounts"), "{text}");
    assert_eq!(
        env.server_ids("bob"),
        ids(&["b2"]),
        "b1 expunged on bob's server"
    );
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2"]));
    assert_eq!(md::messages(&env.inbox("home")).len(), 1);
    let got: Vec<String> = env.unified_state().into_iter().map(|(i, _)| i).collect();
    assert_eq!(got, ids(&["a1", "a2", "b2"]));
    let text = env.sync_ok();
    assert!(text.contains(UNIFIED_QUIET), "{text}");
    env.assert_no_duplicates();
}

#[test]
fn server_flag_changes_and_expunges_show_in_unified_after_a_sync() {
    let env = synced(false);
    env.dovecot
        .add_flags("alice", "INBOX", 1, "\\Flagged \\Seen");
    env.dovecot.add_flags("bob", "INBOX", 1, "\\Answered");
    let text = env.sync_ok();
    assert!(text.contains("to unified 2,"), "{text}");
    let state: BTreeMap<String, String> = env.unified_state().into_iter().collect();
    assert_eq!(state["<a1@test>"], "FS");
    assert_eq!(state["<b1@test>"], "R");
    assert_eq!(state["<a2@test>"], "");
    env.dovecot.remove_flags("alice", "INBOX", 1, "\\Flagged");
    env.dovecot.expunge("alice", "INBOX", 2);
    let text = env.sync_ok();
    assert!(text.contains("removed 1 from unified"), "{text}");
    let state: BTreeMap<String, String> = env.unified_state().into_iter().collect();
    assert_eq!(state.len(), 2, "{state:?}");
    assert_eq!(state["<a1@test>"], "S");
    assert!(!state.contains_key("<a2@test>"));
    env.assert_no_duplicates();
}

#[test]
fn rule_7_a_missing_unified_folder_deletes_nothing_and_rebuild_restores_it() {
    let env = synced(true);
    let before = env.unified_state();
    std::fs::remove_dir_all(env.unified()).unwrap();
    for _ in 0..2 {
        let out = env.run(&["sync"]);
        assert_ne!(out.status.code(), Some(0), "a halt is not a success");
        assert!(
            stderr(&out).contains("unified folder is missing")
                && stderr(&out).contains("syncmail unified rebuild"),
            "{}",
            stderr(&out)
        );
        assert!(!env.unified().exists(), "not silently recreated empty");
    }
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2"]));
    assert_eq!(env.server_ids("bob"), ids(&["b1"]));
    assert_eq!(md::messages(&env.inbox("old")).len(), 1);
    let status = stdout(&env.run(&["unified", "status"]));
    assert!(
        status.contains("the folder is missing") && status.contains("halted:"),
        "{status}"
    );

    let out = env.run(&["unified", "rebuild"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.unified_state(), before);
    let text = env.sync_ok();
    assert!(text.contains(UNIFIED_QUIET), "{text}");
    env.assert_no_duplicates();
}

#[test]
fn unified_rebuild_recreates_the_same_view_and_deletes_nothing_in_accounts() {
    let env = synced(false);
    let u = env.unified();
    md::set_flags(&u, &env.key_of(&u, "a2"), "F");
    env.sync_ok();
    let before = env.unified_state();
    let keys_before = md::messages(&u);
    let out = env.run(&["unified", "rebuild"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("linked 3"), "{}", stdout(&out));
    assert_eq!(env.unified_state(), before);
    assert_ne!(md::messages(&u), keys_before, "entries made afresh");
    assert_eq!(env.server_ids("alice"), ids(&["a1", "a2"]));
    assert_eq!(env.server_flags("alice", "a2"), "\\Flagged");
    let text = env.sync_ok();
    assert!(
        text.contains(UNIFIED_QUIET) && text.matches(QUIET).count() == 2,
        "{text}"
    );
    env.assert_no_duplicates();
}

// ---- the daemon ---------------------------------------------------------------------

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(env: &Env) -> Daemon {
        let log = env.home.path().join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_syncmail"))
            .args(["daemon", "--config", env.config.to_str().unwrap()])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", env.home.path())
            .env("SYNCMAIL_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start syncmail daemon");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until(&self, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "timed out after {limit:?} waiting for {what}; daemon log:\n{}",
            self.log()
        );
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "log:\n{}", self.log());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the daemon did not stop; log:\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn daemon_shows_new_mail_in_unified_and_carries_a_unified_flag_to_the_server() {
    let env = Env::new(
        false,
        "timeout = \"4s\"\npoll_interval = \"1h\"\nidle_refresh = \"3s\"\n",
    );
    env.seed("alice", "a1");
    env.seed("bob", "b1");
    let daemon = Daemon::start(&env);
    let u = env.unified();
    let count = |dir: &Path| {
        if dir.join("cur").is_dir() {
            md::messages(dir).len()
        } else {
            0
        }
    };
    daemon.wait_until(Duration::from_secs(20), "the first view", || count(&u) == 2);

    // Server -> account (IDLE) -> unified.
    env.seed("bob", "b2");
    daemon.wait_until(Duration::from_secs(10), "b2 in the unified folder", || {
        count(&u) == 3
    });

    // Unified -> account (reconcile) -> server (the account's watcher).
    md::set_flags(&u, &env.key_of(&u, "a1"), "FS");
    daemon.wait_until(
        Duration::from_secs(10),
        "a1's flags on alice's server",
        || env.server_flags("alice", "a1") == "\\Flagged \\Seen",
    );
    assert_eq!(env.server_flags("bob", "b2"), "");
    let log = daemon.log();
    assert!(log.contains("unified: linked as"), "{log}");
    daemon.stop();
    let got: Vec<String> = env.unified_state().into_iter().map(|(i, _)| i).collect();
    assert_eq!(got, ids(&["a1", "b1", "b2"]));
    let text = env.sync_ok();
    assert!(text.contains(UNIFIED_QUIET), "{text}");
    env.assert_no_duplicates();
}

#[test]
fn rule_7_deleting_most_of_an_account_in_unified_stops_and_asks() {
    let env = Env::new(false, "");
    let n = 12;
    for i in 0..n {
        env.seed("alice", &format!("m{i}"));
    }
    env.seed("bob", "b1");
    env.seed("bob", "b2");
    env.sync_ok();
    let u = env.unified();
    for i in 1..n {
        md::delete(&u, &env.key_of(&u, &format!("m{i}")));
    }
    let out = env.run(&["sync"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("held back deleting 11 of 12")
            && err.contains("syncmail unified reconcile --confirm-delete"),
        "{err}"
    );
    assert_eq!(
        env.server_ids("alice").len(),
        n,
        "nothing deleted on the server"
    );
    assert_eq!(md::messages(&env.inbox("work")).len(), n);
    // Bob's folder is not affected by work's halt.
    md::delete(&u, &env.key_of(&u, "b1"));
    let out = env.run(&["sync"]);
    assert!(
        stdout(&out).contains("deleted 1 in accounts"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.server_ids("bob"), ids(&["b2"]));
    let status = stdout(&env.run(&["unified", "status"]));
    assert!(status.contains("halted:"), "{status}");

    // Confirmed: the account copies go; the account's own guard then asks for the server.
    let out = env.run(&["unified", "reconcile", "--confirm-delete"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("deleted 11 in accounts"),
        "{}",
        stdout(&out)
    );
    let out = env.run(&["sync", "--confirm-delete"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.server_ids("alice"), ids(&["m0"]));
    let status = stdout(&env.run(&["unified", "status"]));
    assert!(!status.contains("halted:"), "{status}");
    env.assert_no_duplicates();
}
