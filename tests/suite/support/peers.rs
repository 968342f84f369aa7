//! The tools syncmail adopts from: a real mbsync (isync 1.4) or OfflineIMAP (offlineimap3)
//! run against a test Dovecot fills a Maildir and leaves its state, exactly as on a user's
//! machine. Tests seed the server, fill with a tool, then let syncmail meet the result.
//!
//! What the tools leave (isync 1.4.4, offlineimap3 8.0.0):
//! - mbsync: `,U=<n>` is mbsync's own near-side (Maildir) UID, not the server's; the pair
//!   lives in `.mbsyncstate` (`far near flags`). Files are LF and carry an added
//!   `X-TUID:` header. A message already `\Deleted` on the server is not fetched and,
//!   with `Expunge Both`, expunged there.
//! - OfflineIMAP: `,U=<n>` is the server UID and `,FMD5=` the MD5 of the local folder
//!   name; status in `metadata/Account-*/LocalStatus-sqlite/`. Files are LF, byte for
//!   byte what Dovecot stores. `\Deleted` becomes `T`; nothing is expunged.
//!
//! Both tools run with HOME set to the test's home, no stdin, a deadline, and their
//! output in the panic message when they fail.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::dovecot::message;
use super::maildir as md;
use super::{DEFAULT_PASSWORD, Dovecot};

/// How long one run of either tool may take before the test fails.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// Folder -> Message-ID (`""` for a message without one) -> how many messages carry it.
pub type IdCounts = BTreeMap<String, BTreeMap<String, usize>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Mbsync,
    Offlineimap,
}

/// Where mbsync puts folders and its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MbsyncLayout {
    /// `Path maildir/`, `Inbox maildir/INBOX`, `SubFolders Verbatim`, `SyncState *`:
    /// `Archive/2024` is `maildir/Archive/2024`, each folder holds its `.mbsyncstate`.
    Verbatim,
    /// `Inbox maildir`, `SubFolders Maildir++`, `SyncState home/mbsync-state/`:
    /// INBOX is `maildir` itself, `Archive/2024` is `maildir/.Archive.2024`, and the
    /// state is `home/mbsync-state/Archive!2024`.
    MaildirPlusPlus,
}

/// OfflineIMAP's local naming: `sep` of the Maildir repository and the account's
/// `utf8foldernames`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfflineimapLayout {
    /// `/` nests folders as directories; `.` (OfflineIMAP's default) makes
    /// `maildir/Archive.2024`.
    pub sep: char,
    /// Local names in UTF-8 (`Entwürfe`) rather than modified UTF-7 (`Entw&APw-rfe`).
    pub utf8_names: bool,
}

impl Default for OfflineimapLayout {
    fn default() -> Self {
        OfflineimapLayout {
            sep: '/',
            utf8_names: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Mbsync(MbsyncLayout),
    Offlineimap(OfflineimapLayout),
}

/// A Maildir a tool filled, and how to run that tool on it again.
#[derive(Debug)]
pub struct PeerRun {
    pub tool: Tool,
    /// The `.mbsyncrc` / `.offlineimaprc` written (what `syncmail import` reads).
    pub config: PathBuf,
    pub home: PathBuf,
    pub maildir: PathBuf,
    /// The tool's state outside the Maildir: mbsync's `SyncState` directory (None when
    /// it is `*`, beside the mail), OfflineIMAP's `metadata` directory.
    pub metadata: Option<PathBuf>,
    /// stdout and stderr of the first run.
    pub output: String,
    layout: Layout,
    server_log: PathBuf,
}

impl PeerRun {
    /// Where the tool keeps the server folder `imap_name` (UTF-8, `/`-separated).
    pub fn folder(&self, imap_name: &str) -> PathBuf {
        let wire = syncmail::maildir::utf7::encode(imap_name);
        match self.layout {
            Layout::Mbsync(MbsyncLayout::Verbatim) => self.maildir.join(wire),
            Layout::Mbsync(MbsyncLayout::MaildirPlusPlus) if imap_name == "INBOX" => {
                self.maildir.clone()
            }
            Layout::Mbsync(MbsyncLayout::MaildirPlusPlus) => {
                self.maildir.join(format!(".{}", wire.replace('/', ".")))
            }
            Layout::Offlineimap(o) => {
                let name = if o.utf8_names {
                    imap_name.to_owned()
                } else {
                    wire
                };
                self.maildir.join(name.replace('/', &o.sep.to_string()))
            }
        }
    }

    /// Message-ID counts of these server folders as found where the tool keeps them.
    pub fn local_ids<'a>(&self, folders: impl IntoIterator<Item = &'a str>) -> IdCounts {
        folders
            .into_iter()
            .map(|f| (f.to_owned(), id_counts(md::state(&self.folder(f)))))
            .collect()
    }

    /// The Maildir mirrors the server: every server folder is where the tool keeps it,
    /// with the same Message-IDs the same number of times (nothing lost, nothing
    /// doubled), and the Maildir holds no other folder.
    pub fn assert_mirrors(&self, dovecot: &Dovecot, user: &str) {
        let server = server_ids(dovecot, user);
        for folder in server.keys() {
            assert!(
                self.folder(folder).join("cur").is_dir(),
                "{:?} did not make folder {folder} at {:?}\n{}",
                self.tool,
                self.folder(folder),
                self.output
            );
        }
        let local = self.local_ids(server.keys().map(String::as_str));
        assert_eq!(local, server, "{:?}: Maildir vs server", self.tool);
        let mut expected: Vec<PathBuf> = server.keys().map(|f| self.folder(f)).collect();
        expected.sort();
        let mut on_disk: Vec<PathBuf> = maildir_ids(&self.maildir)
            .into_keys()
            .map(|rel| self.maildir.join(rel))
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, expected, "{:?}: folders on disk", self.tool);
    }

    /// Run the same tool with the same config again (after a change on either side);
    /// its output.
    pub fn again(&self) -> String {
        let (program, args) = self.command();
        run_tool(program, &args, &self.home, &self.server_log)
    }

    fn command(&self) -> (&'static str, Vec<String>) {
        let config = self.config.display().to_string();
        match self.tool {
            Tool::Mbsync => ("mbsync", vec!["-c".into(), config, "-a".into()]),
            Tool::Offlineimap => (
                "offlineimap",
                vec![
                    "-c".into(),
                    config,
                    "-o".into(),
                    "-u".into(),
                    "basic".into(),
                ],
            ),
        }
    }
}

/// mbsync with `SubFolders Verbatim` and `SyncState *` fills `maildir` from `user`'s
/// mailboxes (password [`DEFAULT_PASSWORD`]) over implicit TLS with the test CA.
pub fn mbsync_fill(dovecot: &Dovecot, user: &str, maildir: &Path, home: &Path) -> PeerRun {
    mbsync_fill_with(dovecot, user, maildir, home, MbsyncLayout::Verbatim)
}

/// The same with another layout.
pub fn mbsync_fill_with(
    dovecot: &Dovecot,
    user: &str,
    maildir: &Path,
    home: &Path,
    layout: MbsyncLayout,
) -> PeerRun {
    std::fs::create_dir_all(maildir).expect("create the Maildir root");
    let root = maildir.display();
    let (store, sync_state, metadata) = match layout {
        MbsyncLayout::Verbatim => (
            format!("Path {root}/\nInbox {root}/INBOX\nSubFolders Verbatim\n"),
            "*".to_owned(),
            None,
        ),
        MbsyncLayout::MaildirPlusPlus => {
            let state = home.join("mbsync-state");
            (
                format!("Inbox {root}\nSubFolders Maildir++\n"),
                format!("{}/", state.display()),
                Some(state),
            )
        }
    };
    // mbsync 1.4 checks DNS names only, not IP SANs: connect by name.
    let rc = format!(
        "IMAPAccount {user}\nHost localhost\nPort {port}\nUser {user}\nPass {DEFAULT_PASSWORD}\n\
         SSLType IMAPS\nCertificateFile {ca}\n\n\
         IMAPStore {user}-far\nAccount {user}\n\n\
         MaildirStore {user}-near\n{store}\n\
         Channel {user}\nFar :{user}-far:\nNear :{user}-near:\nPatterns *\nCreate Both\n\
         Expunge Both\nSyncState {sync_state}\n",
        port = dovecot.imaps_port,
        ca = dovecot.ca_file.display(),
    );
    let config = write_private(&home.join(".mbsyncrc"), &rc);
    first_run(
        dovecot,
        Tool::Mbsync,
        Layout::Mbsync(layout),
        config,
        home,
        maildir,
        metadata,
    )
}

/// Run mbsync again with the config of `run`; its output.
pub fn mbsync_run_again(run: &PeerRun) -> String {
    assert_eq!(run.tool, Tool::Mbsync, "not an mbsync run");
    run.again()
}

/// OfflineIMAP (`sep = /`, modified UTF-7 names) fills `maildir` from `user`'s mailboxes
/// (password [`DEFAULT_PASSWORD`]) over implicit TLS with the test CA; its metadata goes
/// to `home/.offlineimap`.
pub fn offlineimap_fill(dovecot: &Dovecot, user: &str, maildir: &Path, home: &Path) -> PeerRun {
    offlineimap_fill_with(dovecot, user, maildir, home, OfflineimapLayout::default())
}

/// The same with another local naming.
pub fn offlineimap_fill_with(
    dovecot: &Dovecot,
    user: &str,
    maildir: &Path,
    home: &Path,
    layout: OfflineimapLayout,
) -> PeerRun {
    std::fs::create_dir_all(maildir).expect("create the Maildir root");
    let metadata = home.join(".offlineimap");
    let rc = format!(
        "[general]\naccounts = {user}\nmetadata = {meta}\nui = basic\n\n\
         [Account {user}]\nlocalrepository = {user}-local\nremoterepository = {user}-remote\n\
         utf8foldernames = {utf8}\n\n\
         [Repository {user}-local]\ntype = Maildir\nlocalfolders = {root}\nsep = {sep}\n\n\
         [Repository {user}-remote]\ntype = IMAP\nremotehost = localhost\nremoteport = {port}\n\
         ssl = yes\nsslcacertfile = {ca}\nremoteuser = {user}\nremotepass = {DEFAULT_PASSWORD}\n",
        meta = metadata.display(),
        utf8 = if layout.utf8_names { "yes" } else { "no" },
        root = maildir.display(),
        sep = layout.sep,
        port = dovecot.imaps_port,
        ca = dovecot.ca_file.display(),
    );
    let config = write_private(&home.join(".offlineimaprc"), &rc);
    first_run(
        dovecot,
        Tool::Offlineimap,
        Layout::Offlineimap(layout),
        config,
        home,
        maildir,
        Some(metadata),
    )
}

/// Run OfflineIMAP again with the config of `run`; its output.
pub fn offlineimap_run_again(run: &PeerRun) -> String {
    assert_eq!(run.tool, Tool::Offlineimap, "not an OfflineIMAP run");
    run.again()
}

fn first_run(
    dovecot: &Dovecot,
    tool: Tool,
    layout: Layout,
    config: PathBuf,
    home: &Path,
    maildir: &Path,
    metadata: Option<PathBuf>,
) -> PeerRun {
    let mut run = PeerRun {
        tool,
        config,
        home: home.to_owned(),
        maildir: maildir.to_owned(),
        metadata,
        output: String::new(),
        layout,
        server_log: dovecot.root().join("dovecot.log"),
    };
    run.output = run.again();
    run
}

fn write_private(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).expect("write the tool's config");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod the tool's config");
    path.to_owned()
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Run a tool with HOME = `home`, no stdin, stdout and stderr in one log, within
/// [`TOOL_TIMEOUT`]; panic with its output (and the server's log) unless it succeeds.
fn run_tool(program: &str, args: &[String], home: &Path, server_log: &Path) -> String {
    let package = if program == "mbsync" {
        "isync"
    } else {
        "offlineimap3"
    };
    assert!(
        installed(program),
        "{program} is not installed, and the adoption tests need the real one.\n\
         Install it with: apt-get install -y {package}\n\
         (or run scripts/test.sh, which installs it when missing)"
    );
    let log_path = home.join(format!("{program}.log"));
    let log = std::fs::File::create(&log_path).expect("create the tool's log");
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LANG", "C.UTF-8")
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        // Its own process group, so a timeout kills whatever it started too.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the tool") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    std::fs::File::open(&log_path)
        .and_then(|mut f| f.read_to_string(&mut output))
        .expect("read the tool's log");
    let server = || std::fs::read_to_string(server_log).unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "{program} {args:?} did not finish within {TOOL_TIMEOUT:?}; killed.\n\
             --- {program} output ---\n{output}--- dovecot.log ---\n{}",
            server()
        );
    };
    // OfflineIMAP reports some folder failures only in its output.
    let failed = !status.success() || (program == "offlineimap" && output.contains("ERROR"));
    assert!(
        !failed,
        "{program} {args:?} failed ({status}).\n--- {program} output ---\n{output}\
         --- dovecot.log ---\n{}",
        server()
    );
    output
}

/// The folders and message counts [`seed_adoption_mail`] put on the server.
pub struct AdoptionMail {
    /// `(IMAP folder name, messages)`, INBOX first.
    pub folders: Vec<(&'static str, usize)>,
}

/// The Message-ID two different messages in INBOX share.
pub const SHARED_ID: &str = "<shared@adoption.test>";

/// Put the adoption scenario on `user`'s server (which must be new): INBOX with 11
/// messages (three `\Seen`, one `\Flagged`, one `\Answered \Seen`, one without a
/// Message-ID, two different ones sharing [`SHARED_ID`]), `Archive` (1), nested
/// `Archive/2024` (3, `\Seen`) and non-ASCII `Entwürfe` (2, one `\Draft`).
pub fn seed_adoption_mail(dovecot: &Dovecot, user: &str) -> AdoptionMail {
    let folders = ["Archive", "Archive/2024", "Entwürfe"];
    for folder in folders {
        dovecot.create_mailbox(user, folder);
    }
    let put = |folder: &str, mail: Vec<u8>, flags: &str| {
        dovecot.seed(user, folder, &mail);
        if !flags.is_empty() {
            let uid = dovecot
                .list(user, folder)
                .last()
                .map(|(uid, _)| *uid)
                .expect("the message just saved");
            dovecot.add_flags(user, folder, uid, flags);
        }
    };
    let inbox_flags = [
        "\\Seen",
        "\\Seen",
        "\\Seen",
        "\\Flagged",
        "\\Answered \\Seen",
        "",
        "",
        "",
    ];
    for (i, flags) in inbox_flags.iter().enumerate() {
        let id = format!("inbox-{i}@adoption.test");
        put(
            "INBOX",
            message(&format!("inbox {i}"), &id, &format!("body of inbox {i}")),
            flags,
        );
    }
    put(
        "INBOX",
        b"From: Sender <sender@example.com>\r\nTo: Alice <alice@example.com>\r\n\
          Subject: no message-id\r\nDate: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n\
          a message without a Message-ID\r\n"
            .to_vec(),
        "\\Seen",
    );
    let shared = SHARED_ID.trim_matches(['<', '>']);
    put(
        "INBOX",
        message("shared one", shared, "the first message with this id"),
        "",
    );
    put(
        "INBOX",
        message(
            "shared two",
            shared,
            "the second, different message with the same id, and a longer body so that \
             its size differs from the first",
        ),
        "",
    );
    put(
        "Archive",
        message("archive", "archive-0@adoption.test", "archived"),
        "\\Seen",
    );
    for i in 0..3 {
        put(
            "Archive/2024",
            message(
                &format!("archive 2024 {i}"),
                &format!("archive-2024-{i}@adoption.test"),
                &format!("archived in 2024, {i}"),
            ),
            "\\Seen",
        );
    }
    put(
        "Entwürfe",
        message("Entwurf", "draft-0@adoption.test", "ein Entwurf"),
        "\\Draft",
    );
    put(
        "Entwürfe",
        message("Notiz", "draft-1@adoption.test", "eine Notiz"),
        "",
    );
    AdoptionMail {
        folders: vec![
            ("INBOX", 11),
            ("Archive", 1),
            ("Archive/2024", 3),
            ("Entwürfe", 2),
        ],
    }
}

/// Count each Message-ID in `(Message-ID, flags)` rows (from `Dovecot::state` or
/// `maildir::state`).
pub fn id_counts(rows: Vec<(String, String)>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (id, _) in rows {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Every folder on `user`'s server (UTF-8 names) with its Message-ID counts.
pub fn server_ids(dovecot: &Dovecot, user: &str) -> IdCounts {
    let out = dovecot.doveadm(&["mailbox", "list", "-u", user], None);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|folder| (folder.to_owned(), id_counts(dovecot.state(user, folder))))
        .collect()
}

/// Every Maildir folder (a directory with `cur/`) under `root`, keyed by its path
/// relative to `root` as on disk (`""` for `root` itself), with its Message-ID counts.
pub fn maildir_ids(root: &Path) -> IdCounts {
    fn walk(root: &Path, dir: &Path, out: &mut IdCounts) {
        if dir.join("cur").is_dir() {
            let rel = dir.strip_prefix(root).expect("below the root");
            out.insert(
                rel.to_string_lossy().into_owned(),
                id_counts(md::state(dir)),
            );
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if matches!(name.to_str(), Some("cur" | "new" | "tmp")) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &entry.path(), out);
            }
        }
    }
    let mut out = IdCounts::new();
    walk(root, root, &mut out);
    out
}
