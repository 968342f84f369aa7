//! The server matrix (issue 15): real IMAP servers other than Dovecot, each started
//! privately for one test on loopback, like support/dovecot.rs.
//!
//! - Cyrus IMAP 3.6 in its standard namespace (personal folders under `INBOX.`, `.`
//!   separator) and with `altnamespace` + `unixhierarchysep` (top level, `/`).
//! - Courier-IMAP 5.0 (Maildir++: personal folders under `INBOX.`, `.` separator).
//! - GNU Mailutils imap4d 3.15 (Maildir storage, no prefix, `/`; no UIDPLUS).
//!
//! Debian's packages of these conflict with dovecot-imapd, so they are never installed:
//! `scripts/ensure-servers.sh` unpacks them into a cache (`$SYNCMAIL_TEST_SERVERS`, default
//! `/var/cache/syncmail-test-servers`), and a test runs the binaries from there. Every
//! server runs inside `unshare --mount --pid`: a private mount namespace in which, where a
//! server reads fixed paths, the unpacked `/usr` and a private `/etc` (its users, its
//! config) are overlaid read-only on the real ones, `/run` is a private tmpfs, and
//! Cyrus's `/dev/log` is a socket the test reads (Cyrus logs nowhere else); the system is
//! left untouched. The private PID namespace makes stopping exact: killing its
//! first process ends every process the server started (Courier's `couriertcpd` puts
//! itself in a new session, so a process group would not do).
//!
//! Users come from private files only: Cyrus's own sasldb, Courier's userdb, and for
//! imap4d a private `/etc/passwd` in the namespace. Mail is stored under the test's temp
//! dir and owned by the `mail` user. These servers need root (CI runs as root).
//!
//! Seeding and listing go through a small independent IMAP client (support/imap_client.rs)
//! on the plain port: there is no `doveadm` here. Folder arguments are the folder as the
//! user sees it, `/`-separated and without the personal prefix (`Archive/2024`);
//! [`MatrixServer::server_name`] maps it to the server's name (`INBOX.Archive.2024`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::DEFAULT_PASSWORD;
use super::certs::TestCa;
use super::dovecot::{LOCAL_NAMES, free_port};
use super::imap_client::{Fetched, ImapClient, Reply};

/// One kind of server in the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// Cyrus IMAP, standard namespace: `INBOX.` prefix, `.` separator.
    Cyrus,
    /// Cyrus IMAP with `altnamespace: yes` and `unixhierarchysep: yes`: no prefix, `/`.
    CyrusAltNamespace,
    /// Courier-IMAP: `INBOX.` prefix, `.` separator.
    Courier,
    /// GNU Mailutils imap4d: no prefix, `/` separator, no UIDPLUS.
    Imap4d,
}

impl ServerKind {
    pub const ALL: [ServerKind; 4] = [
        ServerKind::Cyrus,
        ServerKind::CyrusAltNamespace,
        ServerKind::Courier,
        ServerKind::Imap4d,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Cyrus => "cyrus",
            ServerKind::CyrusAltNamespace => "cyrus-altnamespace",
            ServerKind::Courier => "courier",
            ServerKind::Imap4d => "imap4d",
        }
    }

    /// The personal namespace's prefix, as NAMESPACE reports it.
    pub fn personal_prefix(self) -> &'static str {
        match self {
            ServerKind::Cyrus | ServerKind::Courier => "INBOX.",
            ServerKind::CyrusAltNamespace | ServerKind::Imap4d => "",
        }
    }

    /// The hierarchy separator.
    pub fn delimiter(self) -> char {
        match self {
            ServerKind::Cyrus | ServerKind::Courier => '.',
            ServerKind::CyrusAltNamespace | ServerKind::Imap4d => '/',
        }
    }

    /// The unpacked package tree it runs from.
    fn tree(self) -> &'static str {
        match self {
            ServerKind::Cyrus | ServerKind::CyrusAltNamespace => "cyrus",
            ServerKind::Courier => "courier",
            ServerKind::Imap4d => "imap4d",
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running server of the matrix. Dropping it ends every process it started.
pub struct MatrixServer {
    pub kind: ServerKind,
    dir: tempfile::TempDir,
    /// `unshare`, whose only child is the namespace's first process.
    child: Child,
    /// Plain IMAP, where STARTTLS is offered.
    pub imap_port: u16,
    /// IMAP over implicit TLS.
    pub imaps_port: u16,
    /// The test CA's certificate (PEM), to use as an account's `ca_file`.
    pub ca_file: PathBuf,
    users: Vec<String>,
    /// Cyrus logs only through syslog(3): what it sends to /dev/log in its namespace.
    syslog: Option<SyslogSink>,
}

/// A datagram socket that the namespace mounts over `/dev/log`, and a thread that appends
/// what arrives to `syslog.log` beside it.
struct SyslogSink {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SyslogSink {
    fn start(root: &Path) -> Result<SyslogSink, String> {
        let path = root.join("log.sock");
        let socket = UnixDatagram::bind(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The server writes as `mail`.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let mut out = std::fs::File::create(root.join("syslog.log")).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            while !stopping.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.write_all(b"\n");
                }
            }
        });
        Ok(SyslogSink {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The directory the packages are unpacked into.
pub fn servers_dir() -> PathBuf {
    std::env::var_os("SYNCMAIL_TEST_SERVERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/syncmail-test-servers"))
}

/// Run scripts/ensure-servers.sh once per test process: it is idempotent and quick when
/// everything is there, and fetches what is missing on a fresh machine.
fn ensure_trees() -> Result<PathBuf, String> {
    static ONCE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ONCE.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(
                "the server matrix (Cyrus, Courier, imap4d) runs each server in a \
                 private mount namespace, which needs root; run the tests as root \
                 (CI does)"
                    .into(),
            );
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-servers.sh");
        let out = Command::new("bash")
            .arg(&script)
            .env("SYNCMAIL_TEST_SERVERS", servers_dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(servers_dir())
    })
    .clone()
}

fn mail_ids() -> (u32, u32) {
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, "mail"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
    };
    (id("-u").unwrap_or(8), id("-g").unwrap_or(8))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).map_err(|e| e.to_string())? {
            chown_tree(&entry.map_err(|e| e.to_string())?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn write(path: &Path, text: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn mkdirs(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A SHA-512 crypt(3) hash, as Courier's userdb and a passwd file hold it.
fn crypt_hash(password: &str) -> Result<String, String> {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("openssl passwd: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "openssl passwd: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The directory under `tree` that holds `lib` (the multiarch library directory).
fn lib_dir_of(tree: &Path, lib: &str) -> Result<PathBuf, String> {
    let usr_lib = tree.join("usr/lib");
    std::fs::read_dir(&usr_lib)
        .map_err(|e| format!("{}: {e}", usr_lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|d| d.join(lib).exists())
        .ok_or_else(|| format!("no {lib} under {}", usr_lib.display()))
}

/// The parent PIDs of every process: to find the namespace's first process.
fn children_of(pid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let child: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 2..];
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

impl MatrixServer {
    /// Start a server of this kind with one user, `alice`, password [`DEFAULT_PASSWORD`].
    /// Panics, with the reason and the server's log, when it cannot: a test that needs a
    /// server never skips.
    pub fn start(kind: ServerKind) -> MatrixServer {
        MatrixServer::start_with_users(kind, &["alice"])
    }

    pub fn start_with_users(kind: ServerKind, users: &[&str]) -> MatrixServer {
        let cache = ensure_trees().unwrap_or_else(|e| {
            panic!("the {kind} test server cannot be set up:\n{e}");
        });
        let tree = cache.join(kind.tree());
        // Ports are picked free then handed to the server; on the rare race, try again.
        let mut last_error = String::new();
        for _ in 0..3 {
            match MatrixServer::try_start(kind, &tree, users) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("the {kind} test server did not start:\n{last_error}");
    }

    fn try_start(kind: ServerKind, tree: &Path, users: &[&str]) -> Result<MatrixServer, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("syncmail-{}-", kind.name()))
            .tempdir()
            .map_err(|e| e.to_string())?;
        let root = dir.path().to_owned();
        // The mail user must be able to reach its files below the temp dir.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let ca = TestCa::new("syncmail matrix test CA");
        let leaf = ca.leaf(LOCAL_NAMES);
        write(&root.join("tls/server.pem"), &leaf.cert_pem)?;
        write(&root.join("tls/server.key"), &leaf.key_pem)?;
        write(&root.join("tls/ca.pem"), &ca.cert_pem)?;
        std::fs::set_permissions(
            root.join("tls/server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| e.to_string())?;
        let (imap_port, imaps_port) = (free_port(), free_port());
        let setup = Layout {
            root: &root,
            tree,
            users,
            imap_port,
            imaps_port,
            ids: mail_ids(),
        };
        let script = match kind {
            ServerKind::Cyrus => setup.cyrus(false)?,
            ServerKind::CyrusAltNamespace => setup.cyrus(true)?,
            ServerKind::Courier => setup.courier()?,
            ServerKind::Imap4d => setup.imap4d()?,
        };
        write(&root.join("run.sh"), script)?;
        let syslog = match kind {
            ServerKind::Cyrus | ServerKind::CyrusAltNamespace => Some(SyslogSink::start(&root)?),
            ServerKind::Courier | ServerKind::Imap4d => None,
        };
        let log = std::fs::File::create(root.join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--pid",
                "--fork",
                "--kill-child=SIGKILL",
                "--propagation",
                "private",
                "/bin/sh",
            ])
            .arg(root.join("run.sh"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let mut server = MatrixServer {
            kind,
            ca_file: root.join("tls/ca.pem"),
            dir,
            child,
            imap_port,
            imaps_port,
            users: users.iter().map(|u| u.to_string()).collect(),
            syslog,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Ready means both ports accept and the first user can log in (Cyrus creates the
    /// INBOX at that first login).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::from("no port open yet");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status}\n{}",
                    self.kind,
                    self.logs()
                ));
            }
            let open = [self.imap_port, self.imaps_port]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if open {
                match ImapClient::login(self.imap_port, &self.users[0], DEFAULT_PASSWORD) {
                    Ok(client) => {
                        client.logout();
                        return Ok(());
                    }
                    Err(e) => last = e,
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} was not ready within 30 s: {last}\n{}",
                    self.kind,
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        // The namespace's first process is unshare's only child: killing it ends every
        // process in the namespace, then unshare exits and is reaped here.
        for pid in children_of(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the PID is our child's child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// What the server printed (Courier and imap4d log to stderr) and, for Cyrus, what it
    /// sent to syslog.
    pub fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.root().join(name)).unwrap_or_default();
        let mut logs = format!("--- {} server.log ---\n{}", self.kind, read("server.log"));
        if self.syslog.is_some() {
            logs.push_str(&format!(
                "--- {} syslog ---\n{}",
                self.kind,
                read("syslog.log")
            ));
        }
        logs
    }

    /// The server's name for a folder as the user sees it: `Archive/2024` is
    /// `INBOX.Archive.2024` on Cyrus (standard namespace) and Courier.
    pub fn server_name(&self, folder: &str) -> String {
        if folder.eq_ignore_ascii_case("INBOX") {
            return "INBOX".into();
        }
        let delimiter = self.kind.delimiter().to_string();
        format!(
            "{}{}",
            self.kind.personal_prefix(),
            folder.replace('/', &delimiter)
        )
    }

    /// A logged-in session of `user` on the plain port, for what the helpers below do not
    /// cover (names are server names there, see [`MatrixServer::server_name`]).
    pub fn client(&self, user: &str) -> ImapClient {
        ImapClient::login(self.imap_port, user, DEFAULT_PASSWORD)
            .unwrap_or_else(|e| panic!("{} login as {user}: {e}\n{}", self.kind, self.logs()))
    }

    /// Deliver a message into a folder as another client would (IMAP APPEND, exactly
    /// these bytes).
    pub fn seed(&self, user: &str, folder: &str, message: &[u8]) {
        self.seed_with_flags(user, folder, "", message);
    }

    pub fn seed_with_flags(&self, user: &str, folder: &str, flags: &str, message: &[u8]) {
        let name = self.server_name(folder);
        let mut client = self.client(user);
        let reply = client
            .append(&name, flags, message)
            .unwrap_or_else(|e| panic!("{} APPEND to {name}: {e}", self.kind));
        assert!(
            reply.is_ok(),
            "{} APPEND to {name}: {}",
            self.kind,
            reply.transcript()
        );
        client.logout();
    }

    pub fn create_mailbox(&self, user: &str, folder: &str) {
        let name = self.server_name(folder);
        let mut client = self.client(user);
        client.command_ok(&format!(
            "CREATE {}",
            super::imap_client::mailbox_arg(&name)
        ));
        client.logout();
    }

    /// Run `command` (e.g. `UID STORE 1 +FLAGS (\Seen)`) with `folder` selected.
    pub fn in_folder(&self, user: &str, folder: &str, command: &str) -> Reply {
        let name = self.server_name(folder);
        let mut client = self.client(user);
        client
            .select(&name, false)
            .unwrap_or_else(|e| panic!("{}: {e}", self.kind));
        let reply = client.command_ok(command);
        client.logout();
        reply
    }

    /// Add flags to one message by UID, as another client would.
    pub fn add_flags(&self, user: &str, folder: &str, uid: u32, flags: &str) {
        self.in_folder(user, folder, &format!("UID STORE {uid} +FLAGS ({flags})"));
    }

    pub fn remove_flags(&self, user: &str, folder: &str, uid: u32, flags: &str) {
        self.in_folder(user, folder, &format!("UID STORE {uid} -FLAGS ({flags})"));
    }

    /// Mark one message `\Deleted` and EXPUNGE (plain EXPUNGE: imap4d has no UIDPLUS).
    pub fn expunge(&self, user: &str, folder: &str, uid: u32) {
        let name = self.server_name(folder);
        let mut client = self.client(user);
        client
            .select(&name, false)
            .unwrap_or_else(|e| panic!("{}: {e}", self.kind));
        client.command_ok(&format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"));
        client.command_ok("EXPUNGE");
        client.logout();
    }

    /// Every message in a folder: UID, flags, Message-ID, size.
    pub fn fetch_all(&self, user: &str, folder: &str) -> Vec<Fetched> {
        let name = self.server_name(folder);
        let mut client = self.client(user);
        let rows = client
            .fetch_all(&name)
            .unwrap_or_else(|e| panic!("{}: {e}", self.kind));
        client.logout();
        rows
    }

    /// `(uid, flags)` of every message in a folder, sorted by UID.
    pub fn list(&self, user: &str, folder: &str) -> Vec<(u32, String)> {
        self.fetch_all(user, folder)
            .into_iter()
            .map(|f| (f.uid, f.flags))
            .collect()
    }

    /// `(Message-ID, flags)` of every message in a folder, sorted: comparable with
    /// `support::maildir::state` and `Dovecot::state`.
    pub fn state(&self, user: &str, folder: &str) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = self
            .fetch_all(user, folder)
            .into_iter()
            .map(|f| (f.message_id, f.flags))
            .collect();
        rows.sort();
        rows
    }

    /// The full message with this UID.
    pub fn body(&self, user: &str, folder: &str, uid: u32) -> Vec<u8> {
        let name = self.server_name(folder);
        let mut client = self.client(user);
        let body = client
            .fetch_body(&name, uid)
            .unwrap_or_else(|e| panic!("{}: {e}", self.kind));
        client.logout();
        body
    }

    /// Every selectable folder of `user`, as the server names them (decoded from modified
    /// UTF-7), sorted.
    pub fn folders(&self, user: &str) -> Vec<String> {
        let mut client = self.client(user);
        let folders = client
            .list_folders()
            .unwrap_or_else(|e| panic!("{}: {e}", self.kind));
        client.logout();
        folders
    }

    /// Server folder -> Message-ID -> how many messages carry it, over every folder: the
    /// count a scenario ends with (nothing duplicated, nothing lost).
    pub fn message_ids(&self, user: &str) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut client = self.client(user);
        let folders = client
            .list_folders()
            .unwrap_or_else(|e| panic!("{}: {e}", self.kind));
        let mut all = BTreeMap::new();
        for folder in folders {
            let rows = client
                .fetch_all(&folder)
                .unwrap_or_else(|e| panic!("{}: {e}", self.kind));
            let mut counts = BTreeMap::new();
            for row in rows {
                *counts.entry(row.message_id).or_insert(0) += 1;
            }
            all.insert(folder, counts);
        }
        client.logout();
        all
    }

    /// Config TOML for an IMAP account of `user`: `implicit` uses the IMAPS port,
    /// `starttls` and `none` (plaintext, allowed to loopback) the plain port.
    pub fn imap_account(&self, name: &str, user: &str, tls: &str) -> String {
        let port = if tls == "implicit" {
            self.imaps_port
        } else {
            self.imap_port
        };
        format!(
            "[[account]]\nname = \"{name}\"\nkind = \"imap\"\nhost = \"localhost\"\nport = {port}\n\
             tls = \"{tls}\"\nuser = \"{user}\"\npassword = \"{DEFAULT_PASSWORD}\"\nca_file = \"{}\"\n",
            self.ca_file.display()
        )
    }
}

impl Drop for MatrixServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What every server's set-up shares.
struct Layout<'a> {
    root: &'a Path,
    tree: &'a Path,
    users: &'a [&'a str],
    imap_port: u16,
    imaps_port: u16,
    /// uid and gid of `mail`, who owns the mail.
    ids: (u32, u32),
}

impl Layout<'_> {
    fn r(&self) -> String {
        self.root.display().to_string()
    }

    fn t(&self) -> String {
        self.tree.display().to_string()
    }

    /// A private `/etc/passwd` and `/etc/group` for the namespace: root, mail, and `extra`.
    fn private_passwd(&self, extra: &str) -> Result<(), String> {
        let (uid, gid) = self.ids;
        write(
            &self.root.join("etc/passwd"),
            format!(
                "root:x:0:0:root:/root:/bin/sh\nmail:x:{uid}:{gid}:mail:/var/mail:/usr/sbin/nologin\n{extra}"
            ),
        )?;
        write(
            &self.root.join("etc/group"),
            format!("root:x:0:\nmail:x:{gid}:\n"),
        )
    }

    /// Cyrus: its own config files, users in a private sasldb; the libraries come from
    /// LD_LIBRARY_PATH, and only `/dev/log` is mounted (see [`SyslogSink`]).
    fn cyrus(&self, alt: bool) -> Result<String, String> {
        let (r, t) = (self.r(), self.t());
        let bin = format!("{t}/usr/lib/cyrus/bin");
        // What Debian's mkimap makes under the config directory.
        for sub in [
            "conf/db",
            "conf/socket",
            "conf/proc",
            "conf/log",
            "conf/msg",
            "conf/ptclient",
            "conf/user",
            "conf/quota",
            "conf/lock",
            "spool",
            "sieve",
        ] {
            mkdirs(&self.root.join(sub))?;
        }
        let yes_no = if alt { "yes" } else { "no" };
        write(
            &self.root.join("imapd.conf"),
            format!(
                "configdirectory: {r}/conf\npartition-default: {r}/spool\nsievedir: {r}/sieve\n\
                 servername: localhost\ncyrus_user: mail\ncyrus_group: mail\nadmins: cyrusadmin\n\
                 sasl_pwcheck_method: auxprop\nsasl_auxprop_plugin: sasldb\n\
                 sasl_sasldb_path: {r}/sasldb2\nsasl_mech_list: PLAIN LOGIN\nallowplaintext: yes\n\
                 autocreate_quota: 0\naltnamespace: {yes_no}\nunixhierarchysep: {yes_no}\n\
                 tls_server_cert: {r}/tls/server.pem\ntls_server_key: {r}/tls/server.key\n"
            ),
        )?;
        write(
            &self.root.join("cyrus.conf"),
            format!(
                "START {{\n  recover cmd=\"{bin}/ctl_cyrusdb -C {r}/imapd.conf -r\"\n}}\n\
                 SERVICES {{\n  imap cmd=\"{bin}/imapd -C {r}/imapd.conf\" listen=\"127.0.0.1:{}\" prefork=0 maxchild=50\n\
                 \x20 imaps cmd=\"{bin}/imapd -s -C {r}/imapd.conf\" listen=\"127.0.0.1:{}\" prefork=0 maxchild=50\n}}\n\
                 EVENTS {{\n}}\n\
                 DAEMON {{\n  idled cmd=\"{bin}/idled -C {r}/imapd.conf\"\n}}\n",
                self.imap_port, self.imaps_port
            ),
        )?;
        for user in self.users {
            let mut child = Command::new(format!("{t}/usr/sbin/saslpasswd2"))
                .args(["-f", &format!("{r}/sasldb2"), "-p", "-c", "-u", "localhost"])
                .arg(user)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("saslpasswd2: {e}"))?;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(DEFAULT_PASSWORD.as_bytes())
                .map_err(|e| e.to_string())?;
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "saslpasswd2 {user}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let (uid, gid) = self.ids;
        for sub in ["conf", "spool", "sieve", "tls", "sasldb2"] {
            chown_tree(&self.root.join(sub), uid, gid)?;
        }
        let libs = lib_dir_of(self.tree, "libcyrus.so.0")?;
        mkdirs(&self.root.join("dev/upper"))?;
        mkdirs(&self.root.join("dev/work"))?;
        // Cyrus logs only to syslog: its /dev/log is our socket. Where the system has no
        // /dev/log to mount over, a private writable overlay of /dev makes one.
        Ok(format!(
            "set -e\n\
             if [ ! -e /dev/log ]; then\n\
             \x20 mount -t overlay overlay -o lowerdir=/dev,upperdir={r}/dev/upper,workdir={r}/dev/work /dev\n\
             \x20 : > /dev/log\n\
             fi\n\
             mount --bind {r}/log.sock /dev/log\n\
             export LD_LIBRARY_PATH={}\n\
             exec {bin}/master -C {r}/imapd.conf -M {r}/cyrus.conf -p {r}/master.pid -D\n",
            libs.display()
        ))
    }

    /// Courier: `/etc/courier` (config, userdb) and `/usr` (the unpacked tree) overlaid,
    /// a private `/run` for authdaemond's socket; authdaemond, one couriertcpd for IMAPS
    /// in the background, the plain one in the foreground.
    fn courier(&self) -> Result<String, String> {
        let (r, t) = (self.r(), self.t());
        let (uid, gid) = self.ids;
        // imaplogin looks up `courier` for STARTTLS; it runs as mail here.
        self.private_passwd(&format!(
            "courier:x:{uid}:{gid}:courier:/nonexistent:/usr/sbin/nologin\n"
        ))?;
        let etc = self.root.join("etc/courier");
        write(
            &etc.join("authdaemonrc"),
            "authmodulelist=\"authuserdb\"\ndaemons=2\nauthdaemonvar=/run/courier/authdaemon\n\
             DEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n",
        )?;
        write(
            &etc.join("imapd"),
            "IMAP_CAPABILITY=\"IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE\"\n\
             IMAP_KEYWORDS=1\nIMAP_ACL=1\nIMAP_CAPABILITY_TLS=\"$IMAP_CAPABILITY AUTH=PLAIN\"\n\
             IMAP_PROXY=0\nIMAP_IDLE_TIMEOUT=60\nIMAP_MAILBOX_SANITY_CHECK=1\nIMAP_USELOCKS=1\n\
             IMAP_ENHANCEDIDLE=0\nIMAP_TRASHFOLDERNAME=Trash\nIMAP_EMPTYTRASH=\n\
             IMAP_MOVE_EXPUNGE_TO_TRASH=0\nIMAP_UMASK=077\nHEADERFROM=X-IMAP-Sender\n\
             SENDMAIL=/bin/false\n",
        )?;
        write(
            &etc.join("imapd-ssl"),
            "IMAPDSTARTTLS=YES\nIMAP_TLS_REQUIRED=0\nCOURIERTLS=/usr/bin/couriertls\n\
             TLS_CERTFILE=/etc/courier/imapd.pem\nTLS_VERIFYPEER=NONE\nTLS_CACHEFILE=\n",
        )?;
        let key = std::fs::read_to_string(self.root.join("tls/server.key")).unwrap();
        let cert = std::fs::read_to_string(self.root.join("tls/server.pem")).unwrap();
        write(&etc.join("imapd.pem"), format!("{key}{cert}"))?;
        std::fs::set_permissions(
            etc.join("imapd.pem"),
            std::fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| e.to_string())?;
        std::os::unix::fs::chown(etc.join("imapd.pem"), Some(uid), Some(gid))
            .map_err(|e| e.to_string())?;
        let hash = crypt_hash(DEFAULT_PASSWORD)?;
        let mut userdb = String::new();
        for user in self.users {
            let home = self.root.join("mail").join(user);
            for sub in ["cur", "new", "tmp"] {
                mkdirs(&home.join("Maildir").join(sub))?;
            }
            chown_tree(&home, uid, gid)?;
            userdb.push_str(&format!(
                "{user}\tuid={uid}|gid={gid}|home={h}|mail={h}/Maildir|systempw={hash}\n",
                h = home.display()
            ));
        }
        write(&etc.join("userdb"), userdb)?;
        std::fs::set_permissions(etc.join("userdb"), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let tcpd = |port: u16, tls: &str| {
            format!(
                "env -i /bin/sh -c 'set -a; . /etc/courier/imapd; . /etc/courier/imapd-ssl; {tls} \
                 exec /usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup \
                 -maxprocs=40 {port} {cmd}/usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir'",
                cmd = if tls.starts_with("IMAP_TLS=1") {
                    "/usr/bin/couriertls -server -tcpd "
                } else {
                    ""
                }
            )
        };
        Ok(format!(
            "set -e\n\
             mount -t overlay overlay -o lowerdir={r}/etc:/etc /etc\n\
             mount -t overlay overlay -o lowerdir={t}/usr:/usr /usr\n\
             mount -t tmpfs -o mode=755 tmpfs /run\n\
             mkdir -p /run/courier/authdaemon\n\
             /usr/sbin/makeuserdb -f {r}/etc/courier/userdb\n\
             env -i /bin/sh -c 'set -a; . /etc/courier/authdaemonrc; exec /usr/lib/courier/courier-authlib/authdaemond' &\n\
             {} &\n\
             exec {}\n",
            tcpd(self.imaps_port, "IMAP_TLS=1;"),
            tcpd(self.imap_port, "IMAP_STARTTLS=$IMAPDSTARTTLS;"),
        ))
    }

    /// imap4d: Maildir storage (INBOX in `~/Maildir`, folders in `~/Mail`), users in a
    /// private `/etc/passwd` overlaid in the namespace, STARTTLS on the plain port.
    fn imap4d(&self) -> Result<String, String> {
        let (r, t) = (self.r(), self.t());
        let (uid, gid) = self.ids;
        let hash = crypt_hash(DEFAULT_PASSWORD)?;
        let mut passwd = String::new();
        for user in self.users {
            let home = self.root.join("mail").join(user);
            for sub in ["cur", "new", "tmp"] {
                mkdirs(&home.join("Maildir").join(sub))?;
            }
            mkdirs(&home.join("Mail"))?;
            chown_tree(&home, uid, gid)?;
            passwd.push_str(&format!(
                "{user}:{hash}:{uid}:{gid}:{user}:{}:/bin/sh\n",
                home.display()
            ));
        }
        self.private_passwd(&passwd)?;
        write(
            &self.root.join("imap4d.conf"),
            format!(
                "logging {{ syslog false; }};\n\
                 auth {{ authorization system; authentication generic; }};\n\
                 mailbox {{ mailbox-pattern \"maildir://{r}/mail/${{user}}/Maildir\"; mailbox-type maildir; }};\n\
                 namespace personal {{ prefix \"\" {{ directory \"$home/Mail\"; mailbox-type maildir; }}; }};\n\
                 pidfile {r}/imap4d.pid;\n\
                 tls {{ ssl-certificate-file \"{r}/tls/server.pem\"; ssl-key-file \"{r}/tls/server.key\"; }};\n\
                 server 127.0.0.1:{} {{ tls-mode ondemand; }};\n\
                 server 127.0.0.1:{} {{ tls-mode connection; }};\n",
                self.imap_port, self.imaps_port
            ),
        )?;
        let libs = lib_dir_of(self.tree, "libmailutils.so.9")?;
        Ok(format!(
            "set -e\n\
             mount -t overlay overlay -o lowerdir={r}/etc:/etc /etc\n\
             export LD_LIBRARY_PATH={}\n\
             exec {t}/usr/sbin/imap4d --config-file={r}/imap4d.conf --daemon --foreground\n",
            libs.display()
        ))
    }
}

/// A syncmail home for one account `t` on a matrix server: a config file (0600) with the
/// account and any `extra` keys, the Maildir under `Mail/t`, the state beside it.
pub struct MatrixHome {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub kind: ServerKind,
}

impl MatrixHome {
    pub fn new(server: &MatrixServer, user: &str, tls: &str, extra: &str) -> MatrixHome {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n{1}{extra}",
                dir.path().display(),
                server.imap_account("t", user, tls)
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        MatrixHome {
            dir,
            config,
            kind: server.kind,
        }
    }

    /// `syncmail COMMAND --config CONFIG ARGS...`.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.run_with(args, &[])
    }

    /// The same with extra environment variables (a fault point).
    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
        let mut all = vec![args[0], "--config", self.config.to_str().unwrap()];
        all.extend_from_slice(&args[1..]);
        super::syncmail_with_env(self.dir.path(), &all, vars)
    }

    /// A pass that must succeed: its summary and its log.
    pub fn sync(&self, server: &MatrixServer, what: &str) -> (String, String) {
        let out = self.run(&["sync"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {what} failed:\n{}\n{}\n{}",
            self.kind,
            super::stdout(&out),
            super::stderr(&out),
            server.logs()
        );
        (super::stdout(&out), super::stderr(&out))
    }

    /// A rerun must do nothing.
    pub fn assert_quiet(&self, server: &MatrixServer, what: &str) {
        let (summary, _) = self.sync(server, what);
        assert!(
            summary.contains(super::sync_env::QUIET),
            "{}: {what} must do nothing: {summary}",
            self.kind
        );
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("Mail/t")
    }

    pub fn folder(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    pub fn inbox(&self) -> PathBuf {
        self.folder("INBOX")
    }

    /// Local folder (path relative to the account's root) -> Message-ID -> files.
    pub fn message_ids(&self) -> super::peers::IdCounts {
        super::peers::maildir_ids(&self.root())
    }

    /// The local key of the message with this Message-ID (`<{id}@test>`).
    pub fn key_of(&self, folder: &str, id: &str) -> String {
        let dir = self.folder(folder);
        let wanted = format!("<{id}@test>");
        super::maildir::messages(&dir)
            .into_keys()
            .find(|k| String::from_utf8_lossy(&super::maildir::read(&dir, k)).contains(&wanted))
            .unwrap_or_else(|| panic!("{}: {wanted} is not in local {folder}", self.kind))
    }
}
