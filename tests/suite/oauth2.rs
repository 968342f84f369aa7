//! Issue 17, syncmail's own OAuth2, end to end: a scripted authorization server on
//! loopback (support::oauth2_server) and a real Dovecot whose `passdb oauth2` checks
//! every XOAUTH2/OAUTHBEARER login by introspection against it, so each login the
//! tests count was judged by Dovecot itself.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::support::daemon::{Daemon, wait_until};
use crate::support::dovecot::{DEFAULT_PASSWORD, LOCAL_NAMES, ServerCert, Setup, message};
use crate::support::maildir as md;
use crate::support::oauth2_server::OAuth2Server;
use crate::support::{Dovecot, stderr, stdout, syncmail};

/// A Dovecot with users alice, bob and carol, whose token logins are checked by
/// introspection against `server`.
pub fn oauth2_dovecot(server: &OAuth2Server) -> Dovecot {
    let users = [
        ("alice", DEFAULT_PASSWORD),
        ("bob", DEFAULT_PASSWORD),
        ("carol", DEFAULT_PASSWORD),
    ];
    let extra = server.dovecot_passdb();
    Dovecot::start_setup(Setup {
        users: &users,
        cert: ServerCert::For(LOCAL_NAMES),
        extra_config: &extra,
    })
}

/// An account (`kind` imap or pop3) of `user` that logs in with syncmail's own OAuth2.
pub fn oauth2_account(
    dovecot: &Dovecot,
    server: &OAuth2Server,
    kind: &str,
    name: &str,
    user: &str,
    extra: &str,
) -> String {
    let base = match kind {
        "imap" => dovecot.imap_account(name, user, "implicit"),
        _ => dovecot.pop3_account(name, user, "implicit"),
    };
    let base: String = base
        .lines()
        .filter(|l| !l.starts_with("password ="))
        .map(|l| format!("{l}\n"))
        .collect();
    format!("{base}{extra}{}", server.account_table("file"))
}

pub struct Env {
    pub server: OAuth2Server,
    pub dovecot: Dovecot,
    pub home: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// Access tokens that last `lifetime`; `accounts` is the account TOML, given the
    /// Dovecot and the server.
    pub fn new(lifetime: Duration, accounts: impl Fn(&Dovecot, &OAuth2Server) -> String) -> Env {
        let server = OAuth2Server::start(lifetime);
        let dovecot = oauth2_dovecot(&server);
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join("config.toml");
        let text = format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n{1}",
            home.path().display(),
            accounts(&dovecot, &server)
        );
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        Env {
            server,
            dovecot,
            home,
            config,
        }
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        syncmail(self.home.path(), &all)
    }

    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "syncmail {args:?} failed:\n{}\n{}\n{}",
            stdout(&out),
            stderr(&out),
            self.dovecot.logs()
        );
        format!("{}{}", stdout(&out), stderr(&out))
    }

    pub fn folder(&self, account: &str, folder: &str) -> PathBuf {
        self.home.path().join("Mail").join(account).join(folder)
    }

    pub fn token_file(&self, account: &str) -> PathBuf {
        self.home
            .path()
            .join("state")
            .join(format!("{account}.oauth2-token"))
    }

    /// Start `syncmail login ACCOUNT` (with `args`) and play its user: the browser for
    /// the loopback redirect, or the other device for `--device` (signing in as
    /// `user`). Returns everything it printed and the pids of it and its children seen
    /// meanwhile, with their argv.
    pub fn login(&self, account: &str, user: &str, args: &[&str]) -> Login {
        let child = self
            .login_command(account, args)
            .spawn()
            .expect("run syncmail login");
        play_login(&self.server, child, user)
    }

    pub fn login_command(&self, account: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_syncmail"));
        c.args([
            "--config",
            self.config.to_str().unwrap(),
            "login",
            account,
            "--no-browser",
        ])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", self.home.path())
        .env("SYNCMAIL_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c
    }
}

/// What a `syncmail login` run printed, and the argv of every process of it seen.
pub struct Login {
    pub output: String,
    pub success: bool,
    pub argvs: Vec<String>,
}

/// The argv of `pid` and of its descendants, as /proc shows them.
pub fn argvs_of(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Ok(cmd) = std::fs::read(format!("/proc/{p}/cmdline")) {
            out.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
        }
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                todo.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

/// Read a login's output line by line and act on the line that asks for the user.
pub fn play_login(server: &OAuth2Server, mut child: Child, user: &str) -> Login {
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let errs = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
        }
        drop(tx2);
        all
    });
    let mut output = String::new();
    let mut argvs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let authorize = server.url("/authorize");
    loop {
        argvs.extend(argvs_of(pid));
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                output.push_str(&line);
                output.push('\n');
                if line.starts_with(&authorize) {
                    let page = server.play_browser(&line);
                    assert!(page.contains("200"), "the loopback page said {page}");
                } else if let Some(code) = line.split("enter the code ").nth(1) {
                    server.approve_device(code.trim(), user);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        assert!(
            Instant::now() < deadline,
            "syncmail login did not finish:\n{output}"
        );
    }
    let status = child.wait().unwrap();
    output.push_str(&errs.join().unwrap());
    Login {
        output,
        success: status.success(),
        argvs,
    }
}

fn assert_mode_0600(path: &Path) {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "{} has mode {:o}",
        path.display(),
        mode & 0o777
    );
}

#[test]
fn login_through_the_loopback_redirect_and_the_device_flow_then_imap_and_pop3_sync() {
    let env = Env::new(Duration::from_secs(600), |d, s| {
        format!(
            "{}\n{}",
            oauth2_account(d, s, "imap", "t", "alice", ""),
            oauth2_account(d, s, "pop3", "p", "bob", "keep_on_server = true\n")
        )
    });
    // Before a login: the account says what to do, and names the command.
    let out = env.run(&["sync", "t"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("run `syncmail login t`"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let login = env.login("t", "alice", &[]);
    assert!(login.success, "login failed:\n{}", login.output);
    assert!(
        login.output.contains("Logged in as alice@example.com"),
        "{}",
        login.output
    );
    assert!(
        login.output.contains("code_challenge_method=S256"),
        "{}",
        login.output
    );
    assert_mode_0600(&env.token_file("t"));

    env.dovecot
        .seed("alice", "INBOX", &message("one", "one@test", "hello"));
    let summary = env.run_ok(&["sync", "t"]);
    assert!(summary.contains("fetched 1"), "{summary}");
    assert_eq!(md::messages(&env.folder("t", "INBOX")).len(), 1);

    let login = env.login("p", "bob", &["--device"]);
    assert!(login.success, "device login failed:\n{}", login.output);
    assert!(
        login.output.contains("Logged in as bob@example.com"),
        "{}",
        login.output
    );
    env.dovecot
        .seed("bob", "INBOX", &message("two", "two@test", "hello"));
    env.run_ok(&["sync", "p"]);
    assert_eq!(md::messages(&env.folder("p", "INBOX")).len(), 1);

    // Dovecot itself asked the server about each token, and said yes.
    assert!(
        env.server.count("introspect-active") >= 2,
        "Dovecot did not introspect"
    );
    assert_eq!(env.server.count("introspect-inactive"), 0);
    let check = env.run_ok(&["check-config"]);
    assert!(
        check.contains("token_store = \"file\"") && check.contains("a login is stored in the file"),
        "{check}"
    );
    let status = env.run_ok(&["status"]);
    assert!(
        status.contains("oauth2: token_store = \"file\""),
        "{status}"
    );
    let _ = SystemTime::now();
}

/// Put `n` messages straight into `user`'s server INBOX (faster than a save each).
fn seed_many(dovecot: &Dovecot, user: &str, prefix: &str, n: usize) {
    use std::os::unix::fs::MetadataExt;
    dovecot.seed(
        user,
        "INBOX",
        &message("first", &format!("{prefix}-first@test"), "x"),
    );
    let home = dovecot.root().join("mail").join(user);
    let meta = std::fs::metadata(&home).unwrap();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let body = message(&id, &format!("{id}@test"), &"y".repeat(1500));
        let path = home.join(format!("Maildir/new/1700000000.M{i}P1.{prefix}"));
        std::fs::write(&path, body).unwrap();
        std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid())).unwrap();
    }
}

fn count(env: &Env, account: &str) -> usize {
    md::messages(&env.folder(account, "INBOX")).len()
}

/// Log lines that would tell the user a login failed.
fn login_failures(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            (l.contains("warn") || l.contains("error"))
                && (l.contains("login")
                    || l.contains("auth")
                    || l.contains("oauth2")
                    || l.contains("token"))
        })
        .collect()
}

#[test]
fn tokens_that_expire_every_three_seconds_never_fail_a_login_in_a_long_sync_or_the_daemon() {
    let env = Env::new(Duration::from_secs(3), |d, s| {
        format!(
            "{}\n{}",
            oauth2_account(
                d,
                s,
                "imap",
                "t",
                "alice",
                "timeout = \"4s\"\npoll_interval = \"2s\"\nidle_refresh = \"3s\"\nconnections = 3\n"
            ),
            oauth2_account(
                d,
                s,
                "pop3",
                "p",
                "bob",
                "keep_on_server = true\npoll_interval = \"1s\"\n"
            )
        )
    });
    assert!(env.login("t", "alice", &[]).success);
    assert!(env.login("p", "bob", &[]).success);
    // A long initial sync: several access-token lifetimes.
    seed_many(&env.dovecot, "alice", "bulk", 1500);
    let started = Instant::now();
    let out = env.run(&["sync", "t"]);
    let took = started.elapsed();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", env.dovecot.logs());
    assert_eq!(count(&env, "t"), 1501);
    assert!(login_failures(&text).is_empty(), "{text}");
    let refreshes_in_sync = env.server.count("refresh");
    eprintln!(
        "measured: initial sync of 1501 messages took {took:?} with {refreshes_in_sync} refreshes"
    );

    // Daemon time: POP3 logs in every second while every access token lasts three
    // seconds; IMAP keeps its IDLE and pass connections (a login lasts the session).
    let before = env.server.count("refresh");
    let mut daemon = Daemon::launch(env.home.path(), &env.config, &[]);
    let run_for = Duration::from_secs(14);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < run_for {
        n += 1;
        env.dovecot
            .seed("bob", "INBOX", &message("p", &format!("pop-{n}@test"), "x"));
        env.dovecot.seed(
            "alice",
            "INBOX",
            &message("i", &format!("imap-{n}@test"), "x"),
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(count(&env, "p") == n && count(&env, "t") == 1501 + n) {
        assert!(
            Instant::now() < deadline,
            "p has {} of {n}, t {} of {}:\n{}",
            count(&env, "p"),
            count(&env, "t"),
            1501 + n,
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(20));
    let log = daemon.log();
    let refreshes = env.server.count("refresh") - before;
    let logged = log.matches("refreshed the OAuth2 access token").count();
    eprintln!(
        "measured: {run_for:?} of daemon time: {refreshes} refreshes ({logged} logged), {} introspections by Dovecot, {} of an inactive token",
        env.server.count("introspect-active"),
        env.server.count("introspect-inactive")
    );
    assert!(login_failures(&log).is_empty(), "{log}");
    assert!(
        refreshes >= 4,
        "only {refreshes} refreshes in {run_for:?}:\n{log}"
    );
    assert_eq!(logged as u64, refreshes, "every refresh is logged:\n{log}");
    for secret in env.server.secrets() {
        assert!(
            !log.contains(&secret) && !text.contains(&secret),
            "a token reached the log"
        );
    }
}

#[test]
fn an_hour_of_simulated_time_with_five_minute_tokens_refreshes_ahead_and_every_login_passes() {
    let env = Env::new(Duration::from_secs(300), |d, s| {
        oauth2_account(d, s, "imap", "t", "alice", "")
    });
    assert!(env.login("t", "alice", &[]).success);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let config = syncmail::config::parse(&env.config, &text, &syncmail::config::Dirs::default())
        .unwrap()
        .config;
    let account = config.account("t").unwrap().clone();
    let syncmail::config::SecretSource::OAuth2(cfg) = &account.secret else {
        panic!("not an OAuth2 account");
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t0 = SystemTime::now();
    let step = Duration::from_secs(60);
    let before = env.server.count("refresh");
    for i in 0..=60u32 {
        if i > 0 {
            env.server.advance(step);
        }
        let now = t0 + step * i;
        rt.block_on(async {
            let token = syncmail::secret::oauth2::access_token(cfg, now)
                .await
                .unwrap_or_else(|e| panic!("minute {i}: {e}"));
            let mut c = syncmail::imap::connect(
                &account.server,
                &token,
                syncmail::secret::CredentialKind::OAuth2Token,
            )
            .await
            .unwrap_or_else(|e| panic!("minute {i}: Dovecot refused the login: {e}"));
            let _ = c.session.logout().await;
        });
    }
    let refreshes = env.server.count("refresh") - before;
    eprintln!("measured: one simulated hour, 61 logins, {refreshes} refreshes");
    // Refreshed a minute ahead of each 5-minute expiry: every 4 minutes, 15 in an hour
    // plus the first.
    assert_eq!(refreshes, 16);
    assert_eq!(env.server.count("introspect-inactive"), 0);
}

#[test]
fn a_revoked_login_stops_only_that_account_and_a_new_login_resumes_it_without_a_restart() {
    let env = Env::new(Duration::from_secs(600), |d, s| {
        format!(
            "{}\n{}",
            oauth2_account(
                d,
                s,
                "imap",
                "t",
                "alice",
                "timeout = \"4s\"\npoll_interval = \"1s\"\nidle_refresh = \"3s\"\n"
            ),
            oauth2_account(
                d,
                s,
                "pop3",
                "p",
                "bob",
                "keep_on_server = true\npoll_interval = \"1s\"\n"
            )
        )
    });
    assert!(env.login("t", "alice", &[]).success);
    assert!(env.login("p", "bob", &[]).success);
    let daemon = Daemon::launch(env.home.path(), &env.config, &[]);
    env.dovecot
        .seed("alice", "INBOX", &message("a", "a1@test", "x"));
    env.dovecot
        .seed("bob", "INBOX", &message("b", "b1@test", "x"));
    wait_until(&daemon, Duration::from_secs(30), "first mail", || {
        count(&env, "t") == 1 && count(&env, "p") == 1
    });

    // The provider ends the sessions: the cached token is refused once, refreshed, and
    // the login goes through; the user sees nothing.
    env.server.end_access_tokens();
    env.dovecot
        .seed("bob", "INBOX", &message("b", "b2@test", "x"));
    wait_until(
        &daemon,
        Duration::from_secs(30),
        "mail after a refused token",
        || count(&env, "p") == 2,
    );
    assert!(
        daemon
            .log()
            .contains("refreshing it and logging in once more"),
        "{}",
        daemon.log()
    );

    // The refresh token is revoked: p stops and says what to do; t goes on.
    env.server.revoke_user("bob");
    wait_until(&daemon, Duration::from_secs(30), "p to stop", || {
        daemon.log().contains("run `syncmail login p`")
    });
    let status = env.run_ok(&["status"]);
    assert!(
        status.contains("stopped, needs login") && status.contains("run `syncmail login p`"),
        "{status}"
    );
    env.dovecot
        .seed("alice", "INBOX", &message("a", "a2@test", "x"));
    env.dovecot
        .seed("bob", "INBOX", &message("b", "b3@test", "x"));
    wait_until(
        &daemon,
        Duration::from_secs(30),
        "t to keep syncing",
        || count(&env, "t") == 2,
    );
    let refused = env.server.count("refresh-refused");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        env.server.count("refresh-refused"),
        refused,
        "the refused token was sent again"
    );
    assert_eq!(count(&env, "p"), 2);

    // A new login while the daemon runs: p resumes by itself.
    let login = env.login("p", "bob", &["--device"]);
    assert!(login.success, "{}", login.output);
    wait_until(&daemon, Duration::from_secs(30), "p to resume", || {
        count(&env, "p") == 3
    });
    // The poll delivers the mail before it records the pass that clears the state.
    wait_until(&daemon, Duration::from_secs(10), "status to say so", || {
        !env.run_ok(&["status"]).contains("needs login")
    });
}

#[test]
fn the_refresh_token_in_a_real_secret_service_and_in_a_0600_file_when_none_answers() {
    for tool in ["dbus-run-session", "gnome-keyring-daemon", "secret-tool"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success(),
            "{tool} is missing: run scripts/ensure-deps.sh (apt-get install dbus gnome-keyring libsecret-tools)"
        );
    }
    let env = Env::new(Duration::from_secs(600), |d, s| {
        let keyring = oauth2_account(d, s, "imap", "k", "alice", "")
            .replace("token_store = \"file\"", "token_store = \"keyring\"");
        let auto = oauth2_account(d, s, "imap", "f", "bob", "")
            .replace("token_store = \"file\"", "token_store = \"auto\"");
        format!("{keyring}\n{auto}")
    });
    // A session bus of our own with a keyring unlocked by a test password, then login,
    // sync and check-config inside it.
    let script = env.home.path().join("in-session.sh");
    std::fs::write(
        &script,
        "set -e\nprintf test-keyring-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1\n\
         \"$SYNCMAIL\" --config \"$CONFIG\" login k --no-browser\n\
         \"$SYNCMAIL\" --config \"$CONFIG\" sync k\n\
         \"$SYNCMAIL\" --config \"$CONFIG\" check-config\n\
         echo KEYRING-ENTRIES $(secret-tool search --all service syncmail 2>/dev/null | grep -c '^label' || true)\n",
    )
    .unwrap();
    env.dovecot
        .seed("alice", "INBOX", &message("k", "k1@test", "x"));
    let child = Command::new("dbus-run-session")
        .args(["--", "sh"])
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home.path())
        .env("SYNCMAIL", env!("CARGO_BIN_EXE_syncmail"))
        .env("CONFIG", &env.config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dbus-run-session");
    let run = play_login(&env.server, child, "alice");
    assert!(run.success, "{}", run.output);
    assert!(
        run.output
            .contains("stored in the system keyring (Secret Service)"),
        "{}",
        run.output
    );
    assert!(run.output.contains("fetched 1"), "{}", run.output);
    assert!(
        run.output.contains("account k: OAuth2")
            && run
                .output
                .contains("a login is stored in the system keyring"),
        "{}",
        run.output
    );
    assert!(run.output.contains("KEYRING-ENTRIES 1"), "{}", run.output);
    assert!(
        !env.token_file("k").exists(),
        "the keyring account wrote a token file"
    );

    // No session bus: `auto` falls back to a 0600 file and says why.
    let login = env.login("f", "bob", &[]);
    assert!(login.success, "{}", login.output);
    assert!(
        login.output.contains("stored in the file"),
        "{}",
        login.output
    );
    assert_mode_0600(&env.token_file("f"));
    env.dovecot
        .seed("bob", "INBOX", &message("f", "f1@test", "x"));
    assert!(env.run_ok(&["sync", "f"]).contains("fetched 1"));
    let check = env.run_ok(&["check-config"]);
    assert!(
        check.contains(
            "token_store = \"auto\"; the system keyring (Secret Service) is not reachable"
        ),
        "{check}"
    );
    for secret in env.server.secrets() {
        assert!(!run.output.contains(&secret) && !check.contains(&secret));
    }
}
