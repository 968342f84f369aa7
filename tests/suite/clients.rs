//! The mail-client integrations in contrib/, used for real: a real neomutt in tmux, with
//! contrib's snippet, flags a message in the unified inbox and the daemon carries the flag
//! to the right server; the notmuch `after_sync` hook indexes two accounts and the unified
//! inbox without a duplicate; the notification hook says which account and how many.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, wait_until};
use crate::support::maildir as md;
use crate::support::unified_env::UnifiedEnv as Env;
use crate::support::{stderr, stdout, syncmail};

const CONTRIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib");

/// Two IMAP accounts, `work` (alice) and `home` (bob), under `~/Mail`, with the unified
/// inbox at `~/Mail/Unified/INBOX`: the layout contrib's snippets assume.
fn two_accounts() -> Env {
    Env::new(false, "timeout = \"4s\"\npoll_interval = \"1h\"\n")
}

/// A contrib snippet as a user installs it after "change the names to yours": they name
/// the example config's accounts (`work`, `old-isp`); here the second one is `home`.
fn as_edited(path: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let example = include_str!("../../config/syncmail.example.toml");
    assert!(
        text.contains("old-isp") && example.contains("name = \"old-isp\""),
        "{path} names the example config's accounts"
    );
    assert!(
        !text.contains("home/INBOX") && !text.contains("[home]"),
        "{path}"
    );
    text.replace("old-isp", "home")
}

/// A private tmux server (its own socket) with one session running `command`; killed on
/// drop, even when the test fails.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn start(home: &Path, command: &str) -> Tmux {
        let socket = home.join("tmux.sock");
        let tmux = Tmux { socket };
        let status = tmux
            .command()
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "160",
                "-y",
                "40",
                command,
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("TERM", "xterm-256color")
            .env("LANG", "C.UTF-8")
            .status()
            .expect("run tmux: install it with `apt-get install tmux`");
        assert!(status.success(), "tmux could not start `{command}`");
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command
            .arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .stdin(Stdio::null());
        command
    }

    /// What the terminal shows now (empty once the program exited).
    fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Type `text` literally.
    fn type_text(&self, text: &str) {
        let status = self
            .command()
            .args(["send-keys", "-t", "t", "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Press named keys (`Enter`, `Escape`, ...).
    fn press(&self, key: &str) {
        let status = self
            .command()
            .args(["send-keys", "-t", "t", key])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn session_alive(&self) -> bool {
        self.command()
            .args(["has-session", "-t", "t"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command()
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "this test drives a real {program}: install it with `apt-get install -y {package}` \
         (scripts/test.sh does)"
    );
}

#[test]
fn neomutt_flags_a_message_in_the_unified_inbox_and_the_daemon_pushes_it_to_its_server() {
    require("neomutt", "neomutt");
    require("tmux", "tmux");
    let env = two_accounts();
    env.seed("alice", "work-1");
    env.seed("alice", "work-2");
    env.seed("bob", "home-1");
    env.seed("bob", "home-target");
    // The snippet names these folders; neomutt complains about missing ones.
    env.dovecot.create_mailbox("alice", "Sent");
    env.dovecot.create_mailbox("alice", "Archive");
    env.sync_ok();
    assert_eq!(
        md::messages(&env.unified()).len(),
        4,
        "both accounts' INBOX"
    );

    let daemon = Daemon::launch(env.home.path(), &env.config, &[]);
    // The daemon is ready once it has taken the accounts' locks and run its first pass;
    // `status` names its pid then.
    wait_until(
        &daemon,
        Duration::from_secs(20),
        "the daemon to start",
        || {
            let out = syncmail(
                env.home.path(),
                &["status", "--config", env.config.to_str().unwrap()],
            );
            stdout(&out).contains(&daemon.pid().to_string())
        },
    );

    let home = env.home.path();
    std::fs::create_dir_all(home.join(".cache/neomutt")).unwrap();
    let rc = home.join("neomuttrc");
    let snippet = home.join("syncmail.muttrc");
    std::fs::write(
        &snippet,
        as_edited(&format!("{CONTRIB}/neomutt/syncmail.muttrc")),
    )
    .unwrap();
    std::fs::write(
        &rc,
        format!(
            "source {}\n\
             set sort = subject\nset wait_key = no\nset quit = yes\nset help = no\n",
            snippet.display()
        ),
    )
    .unwrap();
    let tmux = Tmux::start(home, &format!("neomutt -n -F {}", rc.display()));
    let screen = tmux.wait_for(
        "neomutt to list the unified inbox",
        Duration::from_secs(20),
        |s| s.contains("home-target") && s.contains("work-1"),
    );
    assert!(
        !screen.contains("Error in"),
        "contrib's snippet must load cleanly:\n{screen}"
    );

    // Limit the index to the one message, flag it, write the change, quit.
    tmux.type_text("l");
    tmux.wait_for("the limit prompt", Duration::from_secs(5), |s| {
        s.contains("Limit to messages matching")
    });
    tmux.type_text("~s home-target");
    tmux.press("Enter");
    tmux.wait_for("the limited index", Duration::from_secs(5), |s| {
        !s.contains("work-1") && s.contains("home-target")
    });
    tmux.type_text("F");
    tmux.type_text("$");
    tmux.type_text("q");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.session_alive() {
        assert!(
            Instant::now() < deadline,
            "neomutt did not quit: {}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // neomutt renamed the unified entry; the daemon carries it to bob's server.
    wait_until(
        &daemon,
        Duration::from_secs(15),
        "\\Flagged on bob's server",
        || {
            env.server_flags_if_there("bob", "home-target")
                .is_some_and(|f| f.contains("\\Flagged"))
        },
    );
    // Nothing else changed anywhere, and nothing is doubled.
    assert_eq!(
        env.server_flags_if_there("bob", "home-1").as_deref(),
        Some("")
    );
    assert_eq!(
        env.server_flags_if_there("alice", "work-1").as_deref(),
        Some("")
    );
    assert_eq!(
        env.server_flags_if_there("alice", "work-2").as_deref(),
        Some("")
    );
    assert_eq!(env.server_flags_if_there("alice", "home-target"), None);
    let bob_local = md::state(&env.inbox("home"));
    assert!(
        bob_local
            .iter()
            .any(|(id, flags)| id == "<home-target@test>" && flags.contains('F')),
        "the account's own copy carries the flag: {bob_local:?}"
    );
    assert_eq!(md::messages(&env.unified()).len(), 4);
    env.assert_no_duplicates();
    daemon.stop();
}

#[test]
fn notmuch_hook_indexes_both_accounts_and_the_unified_inbox_once_tagged_by_account() {
    require("notmuch", "notmuch");
    let env = two_accounts();
    env.seed("alice", "w1");
    env.seed("alice", "w2");
    env.seed("bob", "h1");
    env.sync_ok();

    let home = env.home.path();
    let notmuch_config = home.join("notmuch-config");
    std::fs::write(
        &notmuch_config,
        format!(
            "[database]\npath={}\n[new]\ntags=unread;inbox;\n[maildir]\nsynchronize_flags=true\n",
            env.home.path().join("Mail").display()
        ),
    )
    .unwrap();
    let hook = |account: &str| {
        let out = Command::new(format!("{CONTRIB}/hooks/notmuch-new"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("NOTMUCH_CONFIG", &notmuch_config)
            .env("SYNCMAIL_ACCOUNT", account)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "hook failed: {}", stderr(&out));
    };
    let count = |query: &str, output: &str| -> usize {
        let out = Command::new("notmuch")
            .args(["count", &format!("--output={output}"), query])
            .env("NOTMUCH_CONFIG", &notmuch_config)
            .env("HOME", home)
            .output()
            .unwrap();
        assert!(out.status.success(), "notmuch count: {}", stderr(&out));
        stdout(&out).trim().parse().unwrap()
    };
    // The database does not exist yet: the first `notmuch new` creates it.
    hook("work");
    hook("home");
    assert_eq!(count("*", "messages"), 3, "one message per Message-ID");
    // Each message has its account file plus its hard link in the unified inbox.
    assert_eq!(count("*", "files"), 6);
    assert_eq!(count("tag:work", "messages"), 2);
    assert_eq!(count("tag:home", "messages"), 1);

    // New mail in one account: indexed and tagged on the next pass's hook; idempotent.
    env.seed("bob", "h2");
    env.sync_ok();
    hook("home");
    hook("home");
    assert_eq!(count("*", "messages"), 4);
    assert_eq!(count("tag:home", "messages"), 2);
    assert_eq!(count("tag:work", "messages"), 2);
}

#[test]
fn notify_hook_names_the_account_folder_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let record = dir.path().join("notified");
    // A stand-in notify-send that records its arguments, one per line.
    let fake = bin.join("notify-send");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |path: &str, vars: &[(&str, &str)]| {
        Command::new(format!("{CONTRIB}/hooks/notify-new-mail"))
            .env_clear()
            .env("PATH", path)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let vars = [
        ("SYNCMAIL_ACCOUNT", "work"),
        ("SYNCMAIL_FOLDER", "INBOX"),
        ("SYNCMAIL_NEW_COUNT", "3"),
    ];
    let out = run(&path, &vars);
    assert!(out.status.success(), "{}", stderr(&out));
    let args = std::fs::read_to_string(&record).unwrap();
    assert!(args.contains("work: 3 new messages\nin INBOX\n"), "{args}");
    assert!(args.contains("--app-name=syncmail"), "{args}");

    // One message reads as one; no notifier at all is an error that says so.
    let out = run(
        &path,
        &[("SYNCMAIL_ACCOUNT", "home"), ("SYNCMAIL_NEW_COUNT", "1")],
    );
    assert!(out.status.success());
    let args = std::fs::read_to_string(&record).unwrap();
    assert!(args.contains("home: 1 new message\nin INBOX\n"), "{args}");
    // With nothing on PATH (the script's `#!/bin/sh` needs none), there is no notifier.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = run(empty.to_str().unwrap(), &vars);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("neither notify-send nor osascript"),
        "{}",
        stderr(&out)
    );
    // Run by hand, outside syncmail, it says what is missing.
    let out = run(&path, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SYNCMAIL_ACCOUNT"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn aerc_example_config_shows_every_account_and_the_unified_inbox() {
    require("aerc", "aerc");
    require("tmux", "tmux");
    let env = two_accounts();
    env.seed("alice", "work-mail");
    env.seed("bob", "home-mail");
    env.dovecot.create_mailbox("alice", "Sent");
    env.sync_ok();

    // contrib's accounts.conf as a user installs it: mode 0600 in ~/.config/aerc.
    let home = env.home.path();
    let conf = home.join(".config/aerc");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("accounts.conf"),
        as_edited(&format!("{CONTRIB}/aerc/accounts.conf")),
    )
    .unwrap();
    std::fs::set_permissions(
        conf.join("accounts.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let tmux = Tmux::start(home, "aerc");
    let screen = tmux.wait_for(
        "aerc to open the unified inbox",
        Duration::from_secs(20),
        |s| s.contains("work-mail") && s.contains("home-mail"),
    );
    // The first tab is the unified inbox, with both accounts' mail; the others follow.
    let tabs = screen.lines().next().unwrap_or_default();
    assert!(
        tabs.contains("Unified") && tabs.contains("work") && tabs.contains("home"),
        "{screen}"
    );
    assert!(!screen.to_lowercase().contains("error"), "{screen}");
}
