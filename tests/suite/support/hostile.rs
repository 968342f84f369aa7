//! Running the real `syncmail sync` against a scripted hostile server: a home directory
//! with a one-account config, the run's exit code, output and peak memory, and the check
//! that nothing was written outside the account's Maildir root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "hostile";
pub const PASSWORD: &str = "pw-9a-never-on-the-wire";
/// The account's `timeout`: short, so the silent-server tests finish quickly.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Peak resident memory a pass may reach against a hostile server. A 100 MB line or a
/// 4 GiB literal that were buffered would blow far past it.
pub const MAX_RSS_KIB: i64 = 64 * 1024;
pub const GNU_TIME: &str = "/usr/bin/time";

/// One `syncmail` run: exit code, output, and the child's peak resident set.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub max_rss_kib: i64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}, peak RSS {} KiB\nstdout:\n{}\nstderr:\n{}",
            self.code, self.elapsed, self.max_rss_kib, self.stdout, self.stderr
        )
    }
}

/// A home directory with a config for one plaintext loopback account on `port`.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Home {
    /// Account `hostile` of `kind` (`imap`, `pop3`) at 127.0.0.1:`port`.
    pub fn new(kind: &str, port: u16, tls: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n\
                 [[account]]\nname = \"{ACCOUNT}\"\nkind = \"{kind}\"\nhost = \"127.0.0.1\"\n\
                 port = {port}\ntls = \"{tls}\"\nuser = \"alice\"\npassword = \"{PASSWORD}\"\n\
                 timeout = \"{1}s\"\n{2}",
                dir.path().display(),
                TIMEOUT.as_secs(),
                if kind == "imap" {
                    "connections = 1\n"
                } else {
                    ""
                },
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        Home { dir, config }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("Mail").join(ACCOUNT)
    }

    /// `syncmail sync` under GNU time, for its peak RSS. Measuring from this process
    /// (`wait4`) would not do: a child spawned from the big test process inherits the
    /// test's own high-water mark through the exec.
    pub fn sync(&self) -> Run {
        let started = Instant::now();
        let rss = tempfile::NamedTempFile::new().unwrap();
        let out = Command::new(GNU_TIME)
            .args(["-f", "%M", "-o"])
            .arg(rss.path())
            .arg(env!("CARGO_BIN_EXE_syncmail"))
            .args(["sync", "--config", self.config.to_str().unwrap()])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{GNU_TIME} (GNU time) is needed to measure memory: {e}"));
        let report = std::fs::read_to_string(rss.path()).unwrap();
        let max_rss_kib = report
            .lines()
            .filter_map(|l| l.trim().parse::<i64>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no peak RSS from {GNU_TIME}: {report:?}"));
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            max_rss_kib,
            elapsed: started.elapsed(),
        }
    }

    /// Every path under the home directory must be the config, the state directory or
    /// inside the account's Maildir root (rule 17).
    pub fn assert_nothing_outside_the_root(&self) {
        let home = self.dir.path();
        for path in walk(home) {
            let rel = path.strip_prefix(home).unwrap();
            let allowed = rel == Path::new("config.toml")
                || rel.starts_with("state")
                || rel == Path::new("Mail")
                || rel.starts_with(Path::new("Mail").join(ACCOUNT));
            assert!(
                allowed,
                "written outside the Maildir root: {}",
                path.display()
            );
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(
                !meta.file_type().is_symlink(),
                "a symlink: {}",
                path.display()
            );
        }
    }

    /// The folder directories directly under the account root.
    pub fn folders(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root())
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The contents of every message file of a folder, sorted.
    pub fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
        let dir = self.root().join(folder);
        let mut out: Vec<Vec<u8>> = ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(dir.join(sub)).into_iter().flatten())
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        out.sort();
        out
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}
