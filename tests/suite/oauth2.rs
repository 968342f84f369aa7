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
use crate::support::dovecot::{DEFAULT_PASSWORD, Setup, ServerCert, LOCAL_NAMES, message};
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
        let child = self.login_command(account, args).spawn().expect("run syncmail login");
        play_login(&self.server, child, user)
    }

    pub fn login_command(&self, account: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_syncmail"));
        c.args(["--config", self.config.to_str().unwrap(), "login", account, "--no-browser"])
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
                let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                todo.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
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
        assert!(Instant::now() < deadline, "syncmail login did not finish:\n{output}");
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
    assert_eq!(mode & 0o777, 0o600, "{} has mode {:o}", path.display(), mode & 0o777);
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
    assert!(login.output.contains("Logged in as alice@example.com"), "{}", login.output);
    assert!(login.output.contains("code_challenge_method=S256"), "{}", login.output);
    assert_mode_0600(&env.token_file("t"));

    env.dovecot.seed("alice", "INBOX", &message("one", "one@test", "hello"));
    let summary = env.run_ok(&["sync", "t"]);
    assert!(summary.contains("fetched 1"), "{summary}");
    assert_eq!(md::messages(&env.folder("t", "INBOX")).len(), 1);

    let login = env.login("p", "bob", &["--device"]);
    assert!(login.success, "device login failed:\n{}", login.output);
    assert!(login.output.contains("Logged in as bob@example.com"), "{}", login.output);
    env.dovecot.seed("bob", "INBOX", &message("two", "two@test", "hello"));
    env.run_ok(&["sync", "p"]);
    assert_eq!(md::messages(&env.folder("p", "INBOX")).len(), 1);

    // Dovecot itself asked the server about each token, and said yes.
    assert!(env.server.count("introspect-active") >= 2, "Dovecot did not introspect");
    assert_eq!(env.server.count("introspect-inactive"), 0);
    let check = env.run_ok(&["check-config"]);
    assert!(check.contains("token_store = \"file\"") && check.contains("a login is stored in the file"), "{check}");
    let status = env.run_ok(&["status"]);
    assert!(status.contains("oauth2: token_store = \"file\""), "{status}");
    let _ = SystemTime::now();
}
