//! One IMAP account against a private Dovecot, with a config file and a home directory:
//! the set-up every end-to-end sync test starts from.

use std::path::PathBuf;
use std::process::Output;

use super::dovecot::message;
use super::maildir as md;
use super::{Dovecot, stderr, stdout, syncmail_with_env};

/// What a pass that changed nothing prints.
pub const QUIET: &str = "fetched 0 (0 KiB), appended 0, flags pushed 0 pulled 0, deleted 0 on server 0 locally, 0 conflicts, moved 0";

/// The server side and the local side as `(Message-ID, flags)` lists.
pub type State = (Vec<(String, String)>, Vec<(String, String)>);

pub struct SyncEnv {
    pub dovecot: Dovecot,
    pub home: tempfile::TempDir,
    pub config: PathBuf,
    extra: String,
    /// `t` for the IMAP account, `p` for the POP3 one.
    account: &'static str,
}

/// A step of [`SyncEnv::sync_paused_steps`]: at the `n`-th pause at this point, do this.
pub type PauseStep<'a> = (&'a str, usize, Box<dyn FnOnce() + 'a>);

impl SyncEnv {
    /// Account `t` for user `alice` over implicit TLS, plus `extra` account keys.
    pub fn new(extra: &str) -> SyncEnv {
        SyncEnv::with_dovecot(Dovecot::start(), extra)
    }

    /// The same against a Dovecot started some other way (it must have user `alice`).
    pub fn with_dovecot(dovecot: Dovecot, extra: &str) -> SyncEnv {
        SyncEnv::make(dovecot, extra, "t")
    }

    /// POP3 account `p` for user `alice` over implicit TLS, plus `extra` account keys.
    pub fn pop3(extra: &str) -> SyncEnv {
        SyncEnv::make(Dovecot::start(), extra, "p")
    }

    fn make(dovecot: Dovecot, extra: &str, account: &'static str) -> SyncEnv {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join("config.toml");
        let mut env = SyncEnv {
            dovecot,
            home,
            config,
            extra: extra.to_owned(),
            account,
        };
        let port = env.dovecot.imaps_port;
        env.write_config(port);
        env
    }

    /// Write the config; `port` points the IMAP account at another port (a proxy in
    /// front of Dovecot).
    pub fn write_config(&mut self, port: u16) {
        let account = if self.account == "p" {
            self.dovecot.pop3_account("p", "alice", "implicit")
        } else {
            self.dovecot.imap_account("t", "alice", "implicit").replace(
                &format!("port = {}", self.dovecot.imaps_port),
                &format!("port = {port}"),
            )
        };
        self.write(&account);
    }

    /// The config file (0600): the general table, `account`, then the extra keys.
    fn write(&self, account: &str) {
        std::fs::write(
            &self.config,
            format!(
                "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n{account}{1}",
                self.home.path().display(),
                self.extra
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &self.config,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }

    /// Add keys to the account, at the end of the config as written.
    pub fn set_extra(&mut self, extra: &str) {
        self.extra.push_str(extra);
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push_str(extra);
        std::fs::write(&self.config, text).unwrap();
    }

    /// Write the config for plaintext IMAP on loopback to `port` (Dovecot's plain port,
    /// or a proxy that must read the protocol in front of it).
    pub fn write_plain_config(&mut self, port: u16) {
        let account = self.dovecot.imap_account("t", "alice", "none").replace(
            &format!("port = {}", self.dovecot.imap_port),
            &format!("port = {port}"),
        );
        self.write(&account);
    }

    pub fn folder(&self, name: &str) -> PathBuf {
        self.home.path().join("Mail").join(self.account).join(name)
    }

    pub fn inbox(&self) -> PathBuf {
        self.folder("INBOX")
    }

    pub fn run(&self, command: &str, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut all = vec![command, "--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        syncmail_with_env(self.home.path(), &all, vars)
    }

    /// Run `syncmail sync` with the pause point `pause` (`name=millis`, see `fault.rs`)
    /// and the environment `vars`, do `meanwhile` during its `times`-th pause, and let it
    /// finish; it must succeed. Returns its summary.
    pub fn sync_paused(
        &self,
        pause: &str,
        times: usize,
        vars: &[(&str, &str)],
        meanwhile: impl FnOnce(),
    ) -> String {
        let name = pause.rsplit_once('=').map_or(pause, |(n, _)| n);
        self.sync_paused_steps(pause, vars, vec![(name, times, Box::new(meanwhile))])
    }

    /// [`Self::sync_paused`] with several pause points armed (`a=N;b=M`) and several
    /// steps, in order: each `(point, n, step)` runs during the `n`-th pause at `point`.
    pub fn sync_paused_steps(
        &self,
        pauses: &str,
        vars: &[(&str, &str)],
        steps: Vec<PauseStep<'_>>,
    ) -> String {
        let mut pass = std::process::Command::new(env!("CARGO_BIN_EXE_syncmail"))
            .args(["sync", "--config", self.config.to_str().unwrap()])
            .env("HOME", self.home.path())
            .env("SYNCMAIL_PAUSE", pauses)
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(pass.stderr.take().unwrap());
        let mut said = String::new();
        for (point, times, step) in steps {
            let line_of = format!("pause point {point:?}");
            while said.matches(&line_of).count() < times {
                let mut line = String::new();
                let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
                assert!(
                    n > 0,
                    "the pass did not pause {times} time(s) at {point}: {said}"
                );
                said.push_str(&line);
            }
            step();
        }
        std::io::Read::read_to_string(&mut stderr, &mut said).unwrap();
        let out = pass.wait_with_output().unwrap();
        let summary = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{summary}{said}");
        summary
    }

    /// The config as `syncmail` loads it for this home (for a pass run in this process).
    pub fn loaded(&self) -> syncmail::config::Loaded {
        let dirs = syncmail::config::Dirs {
            home: Some(self.home.path().to_owned()),
            xdg_config_home: None,
            xdg_state_home: None,
        };
        syncmail::config::load(&self.config, &dirs).expect("config")
    }

    pub fn sync(&self, args: &[&str]) -> Output {
        self.run("sync", args, &[])
    }

    /// Sync, require success, return the summary.
    pub fn sync_ok(&self) -> String {
        let out = self.sync(&[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "sync failed:\n{}\n{}\n{}",
            stdout(&out),
            stderr(&out),
            self.dovecot.logs()
        );
        stdout(&out)
    }

    /// A rerun must do nothing.
    pub fn assert_quiet(&self) {
        let summary = self.sync_ok();
        assert!(
            summary.contains(QUIET),
            "a rerun must do nothing: {summary}"
        );
    }

    pub fn seed(&self, mailbox: &str, id: &str) {
        self.dovecot.seed(
            "alice",
            mailbox,
            &message(id, &format!("{id}@test"), &format!("body of {id}")),
        );
    }

    pub fn server(&self, mailbox: &str) -> Vec<(u32, String)> {
        self.dovecot.list("alice", mailbox)
    }

    pub fn state(&self) -> State {
        (
            self.dovecot.state("alice", "INBOX"),
            md::state(&self.inbox()),
        )
    }

    /// How many pairs the account's state holds in this server folder (read-only).
    pub fn pairs_in(&self, folder: &str) -> usize {
        let path = syncmail::store::db_path(
            &self.home.path().join("state"),
            &syncmail::model::AccountName(self.account.into()),
        )
        .unwrap();
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        db.query_row(
            "SELECT count(*) FROM pairs JOIN folders ON folders.id = pairs.folder_id
             WHERE folders.server_name = ?1",
            [folder],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize
    }

    pub fn log(&self, args: &[&str]) -> String {
        let out = self.run("log", args, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    }

    /// The local key of the message whose body is `body of <id>`.
    pub fn key_of(&self, folder: &str, id: &str) -> String {
        let dir = self.folder(folder);
        md::messages(&dir)
            .into_keys()
            .find(|k| md::read(&dir, k).ends_with(format!("body of {id}\r\n").as_bytes()))
            .unwrap_or_else(|| panic!("no local message {id} in {folder}"))
    }
}
