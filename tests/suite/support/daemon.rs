//! Running `syncmail daemon` in a test: start it on a SyncEnv, signal it, wait for what
//! it should bring about with a deadline (never a fixed sleep), read its log on failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::flags::maildir_to_imap;
use crate::support::maildir as md;
use crate::support::sync_env::SyncEnv;

/// Account keys that make push, not polling, do the work, and notice a dead link fast.
pub const FAST: &str = "timeout = \"4s\"\npoll_interval = \"1h\"\nidle_refresh = \"3s\"\n";

pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn start(env: &SyncEnv) -> Daemon {
        Daemon::start_with(env, &[])
    }

    /// Start it and wait (15 s at most) until its initial pass has brought `count`
    /// messages into the local `folder`.
    pub fn start_synced(env: &SyncEnv, folder: &str, count: usize) -> Daemon {
        let daemon = Daemon::start(env);
        wait_until(&daemon, Duration::from_secs(15), "the initial pass", || {
            local_count(env, folder) == count
        });
        daemon
    }

    pub fn start_with(env: &SyncEnv, vars: &[(&str, &str)]) -> Daemon {
        Daemon::launch(env.home.path(), &env.config, vars)
    }

    /// Start on any config, with `home` as HOME and the place for the log.
    pub fn launch(home: &Path, config: &Path, vars: &[(&str, &str)]) -> Daemon {
        Daemon::launch_wrapped(home, config, vars, &[])
    }

    /// The same, run by `wrapper` (a program and its arguments, e.g. a sandbox) that
    /// execs `syncmail daemon --config CONFIG`, appended to it.
    pub fn launch_wrapped(
        home: &Path,
        config: &Path,
        vars: &[(&str, &str)],
        wrapper: &[String],
    ) -> Daemon {
        let log = home.join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let daemon = [
            env!("CARGO_BIN_EXE_syncmail"),
            "daemon",
            "--config",
            config.to_str().unwrap(),
        ];
        let mut argv: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        argv.extend(daemon);
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(vars.iter().copied())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("SYNCMAIL_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start syncmail daemon");
        Daemon { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM and require a clean exit (0) within a few seconds.
    pub fn stop(mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(10));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "the daemon must exit 0 soon after SIGTERM; log:\n{}",
            self.log()
        );
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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

/// Poll `done` until it holds or `limit` passes; on timeout fail with `what` and the log.
pub fn wait_until(daemon: &Daemon, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!(
        "timed out after {limit:?} waiting for {what}; daemon log:\n{}",
        daemon.log()
    );
}

/// The number of messages in a local folder.
pub fn local_count(env: &SyncEnv, folder: &str) -> usize {
    md::messages(&env.folder(folder)).len()
}

/// Both sides hold the same messages with the same flags, and no Message-ID twice.
pub fn converged(env: &SyncEnv) -> bool {
    let (server, local) = env.state();
    let mut ids: Vec<&String> = local.iter().map(|(id, _)| id).collect();
    ids.dedup();
    ids.len() == local.len()
        && server
            == local
                .iter()
                .map(|(i, f)| (i.clone(), maildir_to_imap(f)))
                .collect::<Vec<_>>()
}

/// Put `n` messages straight into the server's Maildir for `mailbox` INBOX of alice (a
/// bulk delivery, much faster than one `doveadm save` each). Dovecot indexes them on its
/// next look.
pub fn seed_many(env: &SyncEnv, prefix: &str, n: usize) {
    use std::os::unix::fs::MetadataExt;
    // Make sure the Maildir exists, the way a first delivery makes it.
    env.seed("INBOX", &format!("{prefix}-first"));
    let home = env.dovecot.root().join("mail/alice");
    let meta = std::fs::metadata(&home).unwrap();
    let new = home.join("Maildir/new");
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let body = crate::support::dovecot::message(
            &id,
            &format!("{id}@test"),
            &format!("body of {id} {}", "x".repeat(2000)),
        );
        let path = new.join(format!("1700000000.M{i}P1.{prefix}"));
        std::fs::write(&path, body).unwrap();
        std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid())).unwrap();
    }
}

/// Insert lines into the config's [general] table (hooks).
pub fn add_general(env: &SyncEnv, lines: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replacen("[general]\n", &format!("[general]\n{lines}"), 1);
    std::fs::write(&env.config, text).unwrap();
}
