//! A private Dovecot for one test: free loopback ports for IMAP (plain+STARTTLS and
//! implicit TLS) and POP3, a test CA and leaf certificate made at start, passwd-file
//! users and Maildir storage in a temp dir. Dropping it stops the server, even on panic.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::certs::{Leaf, TestCa};

const TEMPLATE: &str = include_str!("../../dovecot/dovecot.conf.in");
pub const DEFAULT_PASSWORD: &str = "test-password-1";

static INSTANCE: AtomicUsize = AtomicUsize::new(0);

/// The names the default server certificate is for.
pub const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The certificate a test server presents.
#[derive(Clone, Copy)]
pub enum ServerCert<'a> {
    /// Issued by the test CA for these DNS names / IP addresses.
    For(&'a [&'a str]),
    /// Issued by the test CA for [`LOCAL_NAMES`], but expired in 2021.
    Expired,
    /// For [`LOCAL_NAMES`], signed by its own key: no CA issued it.
    SelfSigned,
}

/// What a test server starts with: its users, each with a password, its certificate,
/// and config lines appended to the template (e.g. to hide a capability).
#[derive(Clone, Copy)]
pub struct Setup<'a> {
    pub users: &'a [(&'a str, &'a str)],
    pub cert: ServerCert<'a>,
    pub extra_config: &'a str,
}

pub struct Dovecot {
    dir: tempfile::TempDir,
    master: Child,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub pop3_port: u16,
    pub pop3s_port: u16,
    /// The test CA's certificate (PEM), to use as an account's `ca_file`.
    pub ca_file: PathBuf,
}

/// Who runs the mail processes: as root (CI), the Debian `mail` user, since Dovecot will
/// not serve mail as root; otherwise whoever runs the test.
struct Identity {
    internal_user: String,
    internal_group: String,
    login_user: String,
    mail_uid: u32,
    mail_gid: u32,
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn identity(probe: &Path) -> Identity {
    let meta = std::fs::metadata(probe).expect("stat temp dir");
    if meta.uid() == 0 {
        let uid = command_output("id", &["-u", "mail"]).and_then(|s| s.parse().ok());
        let gid = command_output("id", &["-g", "mail"]).and_then(|s| s.parse().ok());
        Identity {
            internal_user: "dovecot".into(),
            internal_group: "dovecot".into(),
            login_user: "dovenull".into(),
            mail_uid: uid.unwrap_or(8),
            mail_gid: gid.unwrap_or(8),
        }
    } else {
        let user = command_output("id", &["-un"]).expect("id -un");
        let group = command_output("id", &["-gn"]).expect("id -gn");
        Identity {
            internal_user: user.clone(),
            internal_group: group,
            login_user: user,
            mail_uid: meta.uid(),
            mail_gid: meta.gid(),
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

pub fn dovecot_binary() -> Option<PathBuf> {
    ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| command_output("sh", &["-c", "command -v dovecot"]).map(PathBuf::from))
}

impl Dovecot {
    /// Start with one user, `alice`.
    pub fn start() -> Dovecot {
        Dovecot::start_with_users(&["alice"])
    }

    pub fn start_with_users(users: &[&str]) -> Dovecot {
        Dovecot::start_with(users, LOCAL_NAMES)
    }

    /// A server whose certificate names only `cert_names` (for wrong-host tests).
    pub fn start_with(users: &[&str], cert_names: &[&str]) -> Dovecot {
        let users: Vec<(&str, &str)> = users.iter().map(|u| (*u, DEFAULT_PASSWORD)).collect();
        Dovecot::start_setup(Setup {
            users: &users,
            cert: ServerCert::For(cert_names),
            extra_config: "",
        })
    }

    /// User `alice` and `extra_config` appended to the template (one of the push
    /// variants below, or `mail_max_userip_connections`).
    pub fn start_extra(extra_config: &str) -> Dovecot {
        Dovecot::start_setup(Setup {
            users: &[("alice", DEFAULT_PASSWORD)],
            cert: ServerCert::For(LOCAL_NAMES),
            extra_config,
        })
    }

    /// How many IMAP connections `user` has open now (`doveadm who -1`).
    pub fn connections(&self, user: &str) -> usize {
        let out = self.doveadm(&["who", "-1", user], None);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("imap"))
            .count()
    }

    /// A server with these users, passwords and certificate.
    pub fn start_setup(setup: Setup<'_>) -> Dovecot {
        let binary = dovecot_binary().unwrap_or_else(|| {
            panic!(
                "Dovecot is not installed, and these tests need a real one.\n\
                 Install it with: apt-get install -y dovecot-imapd dovecot-pop3d\n\
                 (or run scripts/test.sh, which installs it when missing)"
            )
        });
        // Ports are picked free then handed to Dovecot; on the rare race, try again.
        let mut last_error = String::new();
        for _ in 0..3 {
            match Dovecot::try_start(&binary, setup) {
                Ok(d) => return d,
                Err(e) => last_error = e,
            }
        }
        panic!("Dovecot did not start:\n{last_error}");
    }

    fn try_start(binary: &Path, setup: Setup<'_>) -> Result<Dovecot, String> {
        let dir = tempfile::Builder::new()
            .prefix("syncmail-dovecot-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let root = dir.path();
        // The mail user must be able to reach its Maildir below the temp dir.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let id = identity(root);
        for sub in ["run", "state", "mail", "tls"] {
            std::fs::create_dir_all(root.join(sub)).map_err(|e| e.to_string())?;
        }
        let ca = TestCa::new("syncmail test CA");
        let leaf = match setup.cert {
            ServerCert::For(names) => ca.leaf(names),
            ServerCert::Expired => ca.expired_leaf(LOCAL_NAMES),
            ServerCert::SelfSigned => Leaf::self_signed(LOCAL_NAMES),
        };
        std::fs::write(root.join("tls/server.pem"), &leaf.cert_pem).map_err(|e| e.to_string())?;
        std::fs::write(root.join("tls/server.key"), &leaf.key_pem).map_err(|e| e.to_string())?;
        std::fs::write(root.join("tls/ca.pem"), &ca.cert_pem).map_err(|e| e.to_string())?;

        let mut passwd = String::new();
        for (user, password) in setup.users {
            assert!(
                !password.contains([':', '\n']),
                "a passwd-file password cannot hold `:` or a line break"
            );
            let home = root.join("mail").join(user);
            std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
            std::os::unix::fs::chown(&home, Some(id.mail_uid), Some(id.mail_gid))
                .map_err(|e| e.to_string())?;
            passwd.push_str(&format!(
                "{user}:{{PLAIN}}{password}:{}:{}::{}\n",
                id.mail_uid,
                id.mail_gid,
                home.display()
            ));
        }
        std::fs::write(root.join("users"), passwd).map_err(|e| e.to_string())?;

        let (imap_port, imaps_port, pop3_port, pop3s_port) =
            (free_port(), free_port(), free_port(), free_port());
        let instance = format!(
            "{}-{}",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        );
        let conf = render(
            TEMPLATE,
            &[
                ("ROOT", &root.display().to_string()),
                ("INSTANCE", &instance),
                ("INTERNAL_USER", &id.internal_user),
                ("INTERNAL_GROUP", &id.internal_group),
                ("LOGIN_USER", &id.login_user),
                ("IMAP_PORT", &imap_port.to_string()),
                ("IMAPS_PORT", &imaps_port.to_string()),
                ("POP3_PORT", &pop3_port.to_string()),
                ("POP3S_PORT", &pop3s_port.to_string()),
            ],
        );
        let conf = format!("{conf}\n{}\n", setup.extra_config);
        let conf_path = root.join("dovecot.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;

        let master = Command::new(binary)
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("master.stderr")).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut dovecot = Dovecot {
            ca_file: root.join("tls/ca.pem"),
            dir,
            master,
            imap_port,
            imaps_port,
            pop3_port,
            pop3s_port,
        };
        dovecot.wait_ready()?;
        Ok(dovecot)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ports = [
            self.imap_port,
            self.imaps_port,
            self.pop3_port,
            self.pop3s_port,
        ];
        loop {
            if let Ok(Some(status)) = self.master.try_wait() {
                return Err(format!("dovecot exited with {status}\n{}", self.logs()));
            }
            if ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "dovecot did not listen within 20 s\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the server and start it again on the same ports, config and mail: what a
    /// server restart looks like to a client that stays connected.
    pub fn restart(&mut self) {
        self.stop_master();
        let binary = dovecot_binary().expect("dovecot binary");
        let conf_path = self.root().join("dovecot.conf");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.master = Command::new(&binary)
                .arg("-F")
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(
                    std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(self.root().join("master.stderr"))
                        .expect("master.stderr"),
                )
                .spawn()
                .expect("restart dovecot");
            match self.wait_ready() {
                Ok(()) => return,
                // The old listeners may linger a moment.
                Err(e) if Instant::now() > deadline => panic!("dovecot did not restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn stop_master(&mut self) {
        let pid = self.master.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.master.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }

    /// The `cert_fingerprint` of the certificate this server presents.
    pub fn cert_pin(&self) -> String {
        let pem = std::fs::read_to_string(self.root().join("tls/server.pem")).expect("server.pem");
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|c: rustls::pki_types::CertificateDer| c.to_vec())
            .expect("server.pem holds a certificate");
        syncmail::net::tls::fingerprint_hex(&syncmail::net::tls::fingerprint(&der))
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Dovecot's own logs, for failure messages.
    pub fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.root().join(name)).unwrap_or_default();
        format!(
            "--- master stderr ---\n{}--- dovecot.log ---\n{}",
            read("master.stderr"),
            read("dovecot.log")
        )
    }

    /// Run `doveadm` against this instance; panics with its output on failure.
    pub fn doveadm(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new("doveadm")
            .arg("-c")
            .arg(self.root().join("dovecot.conf"))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run doveadm");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("doveadm stdin")
                .write_all(input)
                .expect("write to doveadm");
        }
        let out = child.wait_with_output().expect("wait for doveadm");
        assert!(
            out.status.success(),
            "doveadm {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Deliver a message into a mailbox as another client would (`doveadm save`).
    pub fn seed(&self, user: &str, mailbox: &str, message: &[u8]) {
        self.doveadm(&["save", "-u", user, "-m", mailbox], Some(message));
    }

    pub fn create_mailbox(&self, user: &str, mailbox: &str) {
        self.doveadm(&["mailbox", "create", "-u", user, mailbox], None);
    }

    /// Move one message to another mailbox, as another device does (`UID MOVE`).
    pub fn move_uid(&self, user: &str, from: &str, uid: u32, to: &str) -> Output {
        self.doveadm(
            &[
                "move",
                "-u",
                user,
                to,
                "mailbox",
                from,
                "uid",
                &uid.to_string(),
            ],
            None,
        )
    }

    /// Give a mailbox a new UIDVALIDITY, as a server that rebuilt its index does.
    pub fn set_uidvalidity(&self, user: &str, mailbox: &str, validity: u64) -> Output {
        self.doveadm(
            &[
                "mailbox",
                "update",
                "-u",
                user,
                "--uid-validity",
                &validity.to_string(),
                mailbox,
            ],
            None,
        )
    }

    /// Add flags to one message by UID, as another client would.
    pub fn add_flags(&self, user: &str, mailbox: &str, uid: u32, flags: &str) {
        let uid = uid.to_string();
        self.doveadm(
            &[
                "flags", "add", "-u", user, flags, "mailbox", mailbox, "uid", &uid,
            ],
            None,
        );
    }

    pub fn remove_flags(&self, user: &str, mailbox: &str, uid: u32, flags: &str) {
        let uid = uid.to_string();
        self.doveadm(
            &[
                "flags", "remove", "-u", user, flags, "mailbox", mailbox, "uid", &uid,
            ],
            None,
        );
    }

    pub fn expunge(&self, user: &str, mailbox: &str, uid: u32) {
        let uid = uid.to_string();
        self.doveadm(
            &["expunge", "-u", user, "mailbox", mailbox, "uid", &uid],
            None,
        );
    }

    /// `(uid, flags)` of every message in a mailbox, sorted by UID.
    pub fn list(&self, user: &str, mailbox: &str) -> Vec<(u32, String)> {
        let out = self.doveadm(
            &[
                "-f",
                "tab",
                "fetch",
                "-u",
                user,
                "uid flags",
                "mailbox",
                mailbox,
            ],
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rows: Vec<(u32, String)> = text
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (uid, flags) = l.split_once('\t')?;
                let flags = flags
                    .split_whitespace()
                    .filter(|f| *f != "\\Recent")
                    .collect::<Vec<_>>()
                    .join(" ");
                Some((uid.parse().ok()?, flags))
            })
            .collect();
        rows.sort();
        rows
    }

    /// The UID of the one message in `mailbox` whose Message-ID is `<id>`.
    pub fn uid_of(&self, user: &str, mailbox: &str, id: &str) -> u32 {
        let out = self.doveadm(
            &[
                "-f",
                "tab",
                "fetch",
                "-u",
                user,
                "uid hdr.message-id",
                "mailbox",
                mailbox,
            ],
            None,
        );
        let want = format!("<{id}>");
        let found: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (uid, message_id) = l.split_once('\t')?;
                (message_id.trim() == want).then(|| uid.parse().ok())?
            })
            .collect();
        match found.as_slice() {
            [uid] => *uid,
            _ => panic!("{mailbox}: {} messages with Message-ID {want}", found.len()),
        }
    }

    /// `(Message-ID, flags)` of every message in a mailbox, sorted: the content and state
    /// of a folder independent of UIDs, for comparing runs.
    pub fn state(&self, user: &str, mailbox: &str) -> Vec<(String, String)> {
        let out = self.doveadm(
            &[
                "-f",
                "tab",
                "fetch",
                "-u",
                user,
                "hdr.message-id flags",
                "mailbox",
                mailbox,
            ],
            None,
        );
        let mut rows: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (id, flags) = l.split_once('\t')?;
                let mut flags: Vec<&str> = flags
                    .split_whitespace()
                    .filter(|f| *f != "\\Recent")
                    .collect();
                flags.sort();
                Some((id.trim().to_owned(), flags.join(" ")))
            })
            .collect();
        rows.sort();
        rows
    }

    /// Config TOML for an IMAP account of `user`: `implicit` uses the IMAPS port,
    /// anything else the plain port (where STARTTLS is offered).
    pub fn imap_account(&self, name: &str, user: &str, tls: &str) -> String {
        let port = if tls == "implicit" {
            self.imaps_port
        } else {
            self.imap_port
        };
        self.account("imap", port, name, user, tls)
    }

    /// Config TOML for a POP3 account of `user`: `implicit` uses the POP3S port, anything
    /// else the plain port (where STLS is offered).
    pub fn pop3_account(&self, name: &str, user: &str, tls: &str) -> String {
        let port = if tls == "implicit" {
            self.pop3s_port
        } else {
            self.pop3_port
        };
        self.account("pop3", port, name, user, tls)
    }

    fn account(&self, kind: &str, port: u16, name: &str, user: &str, tls: &str) -> String {
        format!(
            "[[account]]\nname = \"{name}\"\nkind = \"{kind}\"\nhost = \"localhost\"\nport = {port}\n\
             tls = \"{tls}\"\nuser = \"{user}\"\npassword = \"{DEFAULT_PASSWORD}\"\nca_file = \"{}\"\n",
            self.ca_file.display()
        )
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children; SIGKILL if it lingers.
        self.stop_master();
    }
}

fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in vars {
        out = out.replace(&format!("@{key}@"), value);
    }
    assert!(!out.contains("@ROOT@"), "unfilled template placeholder");
    out
}

/// NOTIFY (RFC 5465): Dovecot offers it with the mailbox list index.
pub const WITH_NOTIFY: &str = "mailbox_list_index = yes\n";

/// Dovecot's capabilities without NOTIFY: IDLE and the sweep instead.
pub const WITHOUT_NOTIFY: &str = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE \
     UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED CONDSTORE QRESYNC ESEARCH SEARCHRES \
     LIST-STATUS MOVE LITERAL+ SPECIAL-USE\n";

/// Without NOTIFY, CONDSTORE/QRESYNC or LIST-STATUS: the sweep asks STATUS for UIDNEXT,
/// MESSAGES and UIDVALIDITY, folder by folder.
pub const WITHOUT_NOTIFY_OR_CONDSTORE: &str = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID \
     ENABLE IDLE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED ESEARCH SEARCHRES MOVE \
     LITERAL+ SPECIAL-USE\n";

/// A small RFC 5322 message.
pub fn message(subject: &str, message_id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@example.com>\r\nTo: Alice <alice@example.com>\r\n\
         Subject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Lines that POP3 dot-stuffing must carry byte-exact: a lone dot, dots at the start,
/// inside and after a blank line.
pub const DOT_LINES_MESSAGE: &[u8] =
    b"From: a@example.com\r\nTo: alice@example.com\r\nSubject: dots\r\n\
    Message-ID: <dots@test>\r\n\r\n.\r\n..\r\n...\r\n.leading\r\n..two leading\r\n\
    mid.dle\r\n. space\r\n\r\n.\r\nlast line\r\n";

/// A 5 MiB message in which every seventh line is a lone dot, a double dot or starts with
/// one: big enough to stream in many chunks, dotted enough to catch a stuffing slip.
pub fn dotted_5_mib_message() -> Vec<u8> {
    let mut big = b"From: a@example.com\r\nSubject: big\r\nMessage-ID: <big@test>\r\n\r\n".to_vec();
    let mut i = 0u64;
    while big.len() < 5 * 1024 * 1024 {
        let line = match i % 7 {
            0 => format!(".{i} a line that starts with a dot\r\n"),
            1 => "..\r\n".to_owned(),
            2 => ".\r\n".to_owned(),
            _ => format!("{i:08} {}\r\n", "x".repeat(60)),
        };
        big.extend_from_slice(line.as_bytes());
        i += 1;
    }
    big
}
