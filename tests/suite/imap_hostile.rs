//! The real `syncmail sync` against a scripted hostile IMAP server: STARTTLS stripping
//! and injection (rule 19), folder names that try to leave the Maildir root (rule 17),
//! huge literals and endless lines (rule 18), lying APPENDUIDs, unrequested FETCH data,
//! messages without a header, and servers that stop answering. Each run checks the
//! error names the account and the fault, that nothing was written outside the Maildir
//! root, and (where it matters) the child's peak memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::imap_script::{Misbehaviour, ScriptedImap};

const ACCOUNT: &str = "hostile";
const PASSWORD: &str = "pw-9a-never-on-the-wire";
/// The account's `timeout`: short, so the silent-server tests finish quickly.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Peak resident memory a pass may reach against a hostile server. A 100 MB line or a
/// 4 GiB literal that were buffered would blow far past it.
const MAX_RSS_KIB: i64 = 64 * 1024;
const GNU_TIME: &str = "/usr/bin/time";

/// One `syncmail` run: exit code, output, and the child's peak resident set.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    max_rss_kib: i64,
    elapsed: Duration,
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
struct Home {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Home {
    fn new(port: u16, tls: &str) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n\
                 [[account]]\nname = \"{ACCOUNT}\"\nkind = \"imap\"\nhost = \"127.0.0.1\"\n\
                 port = {port}\ntls = \"{tls}\"\nuser = \"alice\"\npassword = \"{PASSWORD}\"\n\
                 timeout = \"{1}s\"\nconnections = 1\n",
                dir.path().display(),
                TIMEOUT.as_secs()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        Home { dir, config }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("Mail").join(ACCOUNT)
    }

    /// `syncmail sync` under GNU time, for its peak RSS. Measuring from this process
    /// (`wait4`) would not do: a child spawned from the big test process inherits the
    /// test's own high-water mark through the exec.
    fn sync(&self) -> Run {
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
    fn assert_nothing_outside_the_root(&self) {
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
    fn folders(&self) -> Vec<String> {
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
    fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
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

fn message(id: &str) -> Vec<u8> {
    format!(
        "From: a@example.com\r\nSubject: {id}\r\nMessage-ID: <{id}@test>\r\n\r\nbody of {id}\r\n"
    )
    .into_bytes()
}

/// No credential in any form: neither the password nor a LOGIN or AUTHENTICATE command
/// (which would carry it, perhaps base64-encoded) reached the server.
fn assert_no_password(server: &ScriptedImap) {
    let wire = server.transcript();
    assert!(
        !wire.contains(PASSWORD),
        "the password went over the wire: {wire:?}"
    );
    let upper = wire.to_ascii_uppercase();
    assert!(
        !upper.contains(" LOGIN ") && !upper.contains(" AUTHENTICATE "),
        "a login was attempted: {wire:?}"
    );
}

/// A STARTTLS misbehaviour: the pass fails at once as a TLS (not transient) error that
/// names the account and the reason, before any credential is sent.
fn starttls_refused_with(m: Misbehaviour, reason: &str) {
    let server = ScriptedImap::start(m);
    server.add("INBOX", &[], &message("m1"));
    let home = Home::new(server.port, "starttls");
    let run = home.sync();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`")) && run.stderr.contains(reason),
        "{run}"
    );
    assert_no_password(&server);
    assert!(home.messages("INBOX").is_empty(), "{run}");
    home.assert_nothing_outside_the_root();
}

#[test]
fn rule_19_starttls_not_offered_aborts_before_login() {
    starttls_refused_with(Misbehaviour::StarttlsNotOffered, "does not offer STARTTLS");
}

#[test]
fn rule_19_starttls_refused_aborts_before_login() {
    starttls_refused_with(
        Misbehaviour::StarttlsRefused,
        "refused STARTTLS: s1 NO not today",
    );
}

#[test]
fn rule_19_a_preauth_greeting_aborts() {
    starttls_refused_with(Misbehaviour::Preauth, "PREAUTH");
}

#[test]
fn rule_19_bytes_injected_after_the_starttls_ok_abort() {
    starttls_refused_with(Misbehaviour::StarttlsInjection, "injection");
}

#[test]
fn rule_17_hostile_folder_names_are_refused_and_the_rest_syncs() {
    let long = "x".repeat(5000);
    // As sent (modified UTF-7), and how the warning shows it: decoded, quoted, escaped,
    // cut after 100 characters.
    let hostile = [
        ("../x", "\"../x\""),
        ("a/../../b", "\"a/../../b\""),
        ("&AC4ALg-", "\"&AC4ALg-\""),
        ("&AAA-", "\"\\0\""),
        ("cur", "\"cur\""),
        ("Archive/new", "\"Archive/new\""),
        (long.as_str(), "\"xxxxxxxxxx"),
        // The delimiter smuggled into a component through modified UTF-7.
        ("a&AC8-b", "\"a&AC8-b\""),
    ];
    let server = ScriptedImap::start(Misbehaviour::ListNames(
        hostile.iter().map(|(wire, _)| wire.to_string()).collect(),
    ));
    server.add("INBOX", &[], &message("in"));
    server.add("Archive", &["\\Seen"], &message("arch"));
    let home = Home::new(server.port, "none");
    let run = home.sync();
    // The sane folders synced; each hostile one is reported, naming it and the account.
    assert_eq!(home.messages("INBOX"), [message("in")], "{run}");
    assert_eq!(home.messages("Archive"), [message("arch")], "{run}");
    assert_eq!(home.folders(), ["Archive", "INBOX"], "{run}");
    assert_eq!(run.code, Some(1), "the refusals need attention: {run}");
    for (wire, shown) in hostile {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(&format!("server folder {shown}")))
            .unwrap_or_else(|| panic!("no warning names {wire:?}: {run}"));
        assert!(
            line.starts_with(&format!("syncmail: account `{ACCOUNT}`: ")),
            "{line}"
        );
        // Printable, and short even for the 5 kB name.
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.len() < 400, "{line}");
    }
    assert!(
        !server.transcript().contains("\"../x\""),
        "a hostile folder was selected: {}",
        server.transcript()
    );
    home.assert_nothing_outside_the_root();
}

/// A pass that a bound stops: exit 1 at once, the account and the server named, peak
/// memory far below what was offered, nothing written.
fn bounded_failure(m: Misbehaviour, what: &str) {
    let server = ScriptedImap::start(m);
    server.add("INBOX", &[], &message("m1"));
    let home = Home::new(server.port, "none");
    let run = home.sync();
    // Shown with --nocapture: how far below the bound the pass stayed.
    eprintln!("{run}");
    assert_eq!(run.code, Some(1), "{run}");
    let server_name = format!("127.0.0.1:{}", server.port);
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`"))
            && run.stderr.contains(&server_name)
            && run.stderr.contains(what),
        "{run}"
    );
    assert!(run.max_rss_kib < MAX_RSS_KIB, "peak memory too high: {run}");
    assert!(home.messages("INBOX").is_empty(), "{run}");
    home.assert_nothing_outside_the_root();
}

#[test]
fn rule_18_a_4_gib_literal_is_refused_with_bounded_memory() {
    bounded_failure(
        Misbehaviour::HugeLiteral,
        "sent a literal of 4294967295 bytes; the limit is 268435456 bytes",
    );
}

#[test]
fn rule_18_a_100_mb_line_is_refused_with_bounded_memory() {
    bounded_failure(
        Misbehaviour::EndlessLine,
        "sent a line longer than 8388608 bytes without an end",
    );
}

#[test]
fn rule_2_an_appenduid_for_another_uidvalidity_pairs_nothing_and_duplicates_nothing() {
    let server = ScriptedImap::start(Misbehaviour::None);
    let home = Home::new(server.port, "none");
    let first = home.sync();
    assert_eq!(first.code, Some(0), "{first}");
    let local = message("local");
    std::fs::write(home.root().join("INBOX/new/1700000000.local.host"), &local).unwrap();

    server.set_misbehaviour(Misbehaviour::AppendUidValidity(99));
    let run = home.sync();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`: INBOX:"))
            && run.stderr.contains("APPENDUID names UIDVALIDITY 99"),
        "{run}"
    );

    // A sane server next: the interrupted APPEND is found again, not repeated.
    server.set_misbehaviour(Misbehaviour::None);
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    let inbox = server.folder("INBOX").unwrap();
    assert_eq!(inbox.messages.len(), 1, "a duplicate on the server: {run}");
    assert_eq!(home.messages("INBOX"), [local], "{run}");
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stdout.contains("appended 0") && run.stdout.contains("fetched 0"),
        "{run}"
    );
    assert_eq!(server.folder("INBOX").unwrap().messages.len(), 1);
    home.assert_nothing_outside_the_root();
}

#[test]
fn a_fetch_for_a_uid_nobody_asked_for_is_never_written() {
    let server = ScriptedImap::start(Misbehaviour::UnaskedFetch(999));
    server.add("INBOX", &[], &message("asked"));
    let home = Home::new(server.port, "none");
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(home.messages("INBOX"), [message("asked")], "{run}");
    assert!(
        run.stderr.contains("a message we did not ask for; ignored"),
        "{run}"
    );
    home.assert_nothing_outside_the_root();
}

#[test]
fn messages_without_a_header_are_stored_byte_exact() {
    let bodies: [&[u8]; 3] = [
        b"just a body line, no header at all\r\n",
        b"no line end either",
        b"",
    ];
    let server = ScriptedImap::start(Misbehaviour::None);
    for body in bodies {
        server.add("INBOX", &[], body);
    }
    let home = Home::new(server.port, "none");
    let run = home.sync();
    assert_eq!(run.code, Some(0), "{run}");
    let mut want: Vec<Vec<u8>> = bodies.iter().map(|b| b.to_vec()).collect();
    want.sort();
    assert_eq!(home.messages("INBOX"), want, "{run}");
    // A rerun sees them as already paired: nothing fetched or appended again.
    let again = home.sync();
    assert_eq!(again.code, Some(0), "{again}");
    assert!(
        again.stdout.contains("fetched 0") && again.stdout.contains("appended 0"),
        "{again}"
    );
    assert_eq!(server.folder("INBOX").unwrap().messages.len(), 3);
    home.assert_nothing_outside_the_root();
}

/// A server that stops answering: a timeout naming the account, exit 75 (try again
/// later), within a few of the account's timeouts.
fn times_out(m: Misbehaviour, what: &str) {
    let server = ScriptedImap::start(m);
    server.add("INBOX", &[], &message("m1"));
    let home = Home::new(server.port, "none");
    let run = home.sync();
    assert_eq!(run.code, Some(75), "{run}");
    assert!(
        run.stderr.contains(&format!("account `{ACCOUNT}`"))
            && run.stderr.contains(&format!("no answer while {what}")),
        "{run}"
    );
    assert!(run.elapsed < TIMEOUT * 4, "{run}");
    assert!(home.messages("INBOX").is_empty(), "{run}");
    home.assert_nothing_outside_the_root();
}

#[test]
fn rule_16_a_server_silent_after_the_greeting_times_out() {
    times_out(Misbehaviour::SilentAfterGreeting, "logging in");
}

#[test]
fn rule_16_a_server_silent_mid_command_times_out() {
    times_out(
        Misbehaviour::SilentAt("UID FETCH"),
        "waiting for the server",
    );
}
