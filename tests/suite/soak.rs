//! A day in the life, compressed (issue 20): a running `syncmail daemon` over two
//! accounts on real Dovecots, hammered by a seeded random schedule of a mail client on
//! the Maildir, a second device on the server, and faults (cut, stalled and slowed
//! links, kill -9 and restart, a suspend, a server restart, a UIDVALIDITY change, a full
//! disk). At the end the actors stop, the daemon settles and stops, one `syncmail sync`
//! runs, and the invariants are checked against the actors' own journal:
//!
//! - every message no actor deleted exists exactly once in the account on each side, in
//!   the same folder, with the same body and the same flags on both sides;
//! - a message an actor deleted has not come back, unless the conflict log names it
//!   (rule 11) or the other side moved it (the move is the other side's intent);
//! - every deletion an actor made on one side was carried to the other and recorded in
//!   the change log;
//! - no file is left in any `tmp/`.
//!
//! `soak::soak` runs 3 minutes with a fixed seed in CI; `scripts/soak.sh [DURATION] [SEED]`
//! runs it for as long as asked (`SOAK_SECS`, `SOAK_SEED`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::daemon::Daemon;
use crate::support::dovecot::{LOCAL_NAMES, ServerCert, Setup};
use crate::support::flags::maildir_to_imap;
use crate::support::imap_client::{ImapClient, mailbox_arg};
use crate::support::proxy::LinkProxy;
use crate::support::rng::Rng;
use crate::support::tmpfs::Tmpfs;
use crate::support::{DEFAULT_PASSWORD, Dovecot, stderr, stdout, syncmail, write_private};

/// The folders each account starts with, on the server, as the user sees them.
const START_FOLDERS: [&str; 4] = ["INBOX", "Work", "Lists/rust", "Archive/2024"];
/// Flags the actors set and clear, as Maildir letters and IMAP names.
const FLAGS: [(char, &str); 3] = [('S', "\\Seen"), ('F', "\\Flagged"), ('R', "\\Answered")];

struct Account {
    name: &'static str,
    dovecot: Dovecot,
    proxy: LinkProxy,
}

impl Account {
    fn start(name: &'static str, extra_config: &str) -> Account {
        let dovecot = Dovecot::start_setup(Setup {
            users: &[("alice", DEFAULT_PASSWORD)],
            cert: ServerCert::For(LOCAL_NAMES),
            extra_config,
        });
        let proxy = LinkProxy::start(dovecot.imaps_port);
        Account {
            name,
            dovecot,
            proxy,
        }
    }

    fn client(&self) -> ImapClient {
        ImapClient::login(self.dovecot.imap_port, "alice", DEFAULT_PASSWORD)
            .unwrap_or_else(|e| panic!("{}: the second device cannot log in: {e}", self.name))
    }
}

/// What the actors did, and what they expect because of it.
#[derive(Default)]
struct Journal {
    /// Every Message-ID an actor created, with its account.
    created: BTreeMap<String, &'static str>,
    /// Message-IDs an actor deleted, with the side it deleted on.
    deleted: BTreeMap<String, &'static str>,
    /// Message-IDs an actor moved, by side: a deletion on the other side may lose to it.
    moved: BTreeMap<String, BTreeSet<&'static str>>,
    /// Message-IDs an actor edited: each edit makes a new version (another body) beside
    /// the old one wherever the old one lives on.
    edited: BTreeSet<String>,
    /// Deletions made by an actor: (account, side, folder, UID or key, whether the other
    /// side held the message then, so that syncmail had a deletion to carry).
    deletions: Vec<(&'static str, &'static str, String, String, bool)>,
    /// Folders the second device renamed: (account, from, to, how many deletions the
    /// journal held then). A deletion made before a rename may be carried, and logged,
    /// under the new name.
    renames: Vec<(&'static str, String, String, usize)>,
    ops: BTreeMap<&'static str, usize>,
    faults: BTreeMap<&'static str, usize>,
    next_id: u64,
    /// Every act with its time, written beside the run for a failure's post-mortem.
    trace: Vec<String>,
    started: Option<Instant>,
}

impl Journal {
    fn op(&mut self, kind: &'static str, what: String) {
        *self.ops.entry(kind).or_default() += 1;
        self.note(kind, what);
    }

    fn fault(&mut self, kind: &'static str, what: String) {
        *self.faults.entry(kind).or_default() += 1;
        self.note(kind, what);
    }

    fn note(&mut self, kind: &str, what: String) {
        let at = self.started.get_or_insert_with(Instant::now).elapsed();
        self.trace
            .push(format!("{:9.3} {kind} {what}", at.as_secs_f64()));
    }

    fn new_message(
        &mut self,
        rng: &mut Rng,
        side: &str,
        account: &'static str,
    ) -> (String, Vec<u8>) {
        self.next_id += 1;
        let id = format!("<soak-{}-{side}@test>", self.next_id);
        self.created.insert(id.clone(), account);
        let size = rng.range(100, 6000);
        let mut body = String::new();
        while body.len() < size {
            let _ = writeln!(body, "line {} of {id}", body.len());
        }
        let text = format!(
            "From: Soak <soak@test>\nTo: alice@test\nSubject: soak {}\nMessage-ID: {id}\n\
             Date: Mon, 1 Jan 2024 10:00:00 +0000\n\n{body}",
            self.next_id
        );
        (id, text.into_bytes())
    }
}

/// The Message-ID header of a message, as written.
fn message_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        if line.trim().is_empty() {
            return None;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("message-id")
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

/// A body compared across sides: line endings aside (rule 23 uploads CRLF).
fn body_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let text: Vec<u8> = bytes.iter().copied().filter(|b| *b != b'\r').collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Every Maildir folder under `root`, as the user sees its name (`Lists/rust`).
fn local_folders(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            if !path.is_dir() || ["cur", "new", "tmp"].contains(&name.to_str().unwrap_or("")) {
                continue;
            }
            if path.join("cur").is_dir() {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            walk(root, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The files of a Maildir folder: (path, unique part, flag letters, in `new/`).
fn local_files(folder: &Path) -> Vec<(PathBuf, String, String, bool)> {
    crate::support::maildir::files(folder)
        .into_iter()
        .map(|f| (f.path, f.key, f.flags, f.in_new))
        .collect()
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.range(0, items.len() as u64)])
}

fn unique_name(rng: &mut Rng) -> String {
    format!("1700000000.soak{:016x}.host", rng.next())
}

/// The mail client: one change to the Maildir of `account`.
fn local_op(
    rng: &mut Rng,
    journal: &mut Journal,
    name: &'static str,
    root: &Path,
    on_server: &dyn Fn(&str, &str, u64) -> bool,
) {
    let folders = local_folders(root);
    let Some(folder) = pick(rng, &folders).cloned() else {
        return;
    };
    let dir = root.join(&folder);
    let files = local_files(&dir);
    let roll = rng.range(0, 100);
    if roll < 20 || files.is_empty() {
        // New mail written the Maildir way: tmp/, then a rename into new/ or cur/.
        let (id, bytes) = journal.new_message(rng, "local", name);
        let name_ = unique_name(rng);
        let tmp = dir.join("tmp").join(&name_);
        if std::fs::write(&tmp, &bytes).is_err() {
            return;
        }
        let dest = if rng.range(0, 2) == 0 {
            dir.join("new").join(&name_)
        } else {
            dir.join("cur").join(format!("{name_}:2,S"))
        };
        let _ = std::fs::rename(&tmp, dest);
        journal.op("local-new", format!("{name} {folder} {id}"));
        return;
    }
    let (path, key, flags, in_new) = pick(rng, &files).cloned().unwrap();
    let Ok(bytes) = std::fs::read(&path) else {
        return;
    };
    let Some(id) = message_id(&bytes) else {
        return;
    };
    match roll {
        20..=49 => {
            // A flag toggled by a rename in cur/, as mutt does; new/ is read into cur/.
            let (letter, _) = FLAGS[rng.range(0, FLAGS.len() as u64)];
            let mut letters: BTreeSet<char> = flags.chars().collect();
            if in_new {
                letters.insert('S');
            } else if !letters.remove(&letter) {
                letters.insert(letter);
            }
            let letters: String = letters.into_iter().collect();
            if std::fs::rename(&path, dir.join("cur").join(format!("{key}:2,{letters}"))).is_ok() {
                journal.op(
                    if in_new { "local-read" } else { "local-flag" },
                    format!("{name} {folder} {id} {flags} -> {letters}"),
                );
            }
        }
        50..=61 => {
            // The same version (an edit keeps the Message-ID, not the size).
            let both = on_server(&folder, &id, crlf_size(&bytes));
            if std::fs::remove_file(&path).is_ok() {
                journal.deleted.insert(id.clone(), "local");
                journal
                    .deletions
                    .push((name, "local", folder.clone(), key.clone(), both));
                journal.op("local-delete", format!("{name} {folder} {key} {id}"));
            }
        }
        62..=79 => {
            // A move between folders: a rename across them, the name kept.
            let others: Vec<&String> = folders.iter().filter(|f| **f != folder).collect();
            let Some(to) = pick(rng, &others) else {
                return;
            };
            let file = path.file_name().unwrap().to_owned();
            let sub = if in_new { "new" } else { "cur" };
            if std::fs::rename(&path, root.join(to).join(sub).join(file)).is_ok() {
                journal.moved.entry(id.clone()).or_default().insert("local");
                journal.op("local-move", format!("{name} {folder} -> {to} {id}"));
            }
        }
        80..=89 => {
            // An edit in place: a new file with the changed text, the old one removed.
            let mut edited = bytes.clone();
            let _ = writeln!(text_sink(&mut edited), "edited {}", rng.next() % 1000);
            let name_ = unique_name(rng);
            let tmp = dir.join("tmp").join(&name_);
            if std::fs::write(&tmp, &edited).is_err() {
                return;
            }
            if std::fs::rename(&tmp, dir.join("cur").join(format!("{name_}:2,{flags}"))).is_ok()
                && std::fs::remove_file(&path).is_ok()
            {
                journal.edited.insert(id.clone());
                journal.op(
                    "local-edit",
                    format!("{name} {folder} {id} {key} -> {name_}"),
                );
            }
        }
        _ => {
            // A folder made by the client, with one message moved into it.
            let new = format!("Local/{}", journal.next_id);
            journal.next_id += 1;
            let to = root.join(&new);
            for sub in ["cur", "new", "tmp"] {
                let _ = std::fs::create_dir_all(to.join(sub));
            }
            let sub = if in_new { "new" } else { "cur" };
            if std::fs::rename(&path, to.join(sub).join(path.file_name().unwrap())).is_ok() {
                journal.moved.entry(id.clone()).or_default().insert("local");
                journal.op("local-mkdir", format!("{name} {folder} -> {new} {id}"));
            }
        }
    }
}

/// Appending text to a byte buffer through `fmt::Write`.
fn text_sink(bytes: &mut Vec<u8>) -> impl std::fmt::Write + '_ {
    struct W<'a>(&'a mut Vec<u8>);
    impl std::fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    W(bytes)
}

/// The second device: one change on the server of `account`.
/// Whether the Maildir folder `folder` under `root` holds a message with `id`.
fn in_maildir(root: &Path, folder: &str, id: &str, size: u64) -> bool {
    local_files(&root.join(folder)).iter().any(|(path, ..)| {
        std::fs::read(path).ok().is_some_and(|bytes| {
            message_id(&bytes).is_some_and(|found| found == id) && crlf_size(&bytes) == size
        })
    })
}

/// A file's size as the server counts it: every bare line feed becomes CRLF.
fn crlf_size(bytes: &[u8]) -> u64 {
    let bare_lf = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
        .count();
    (bytes.len() + bare_lf) as u64
}

/// Whether the server folder `folder` of `account` holds a message with `id` and `size`
/// (the size of the file, in the CRLF form the server keeps).
fn on_server(account: &Account, folder: &str, id: &str, size: u64) -> bool {
    ImapClient::login(account.dovecot.imap_port, "alice", DEFAULT_PASSWORD)
        .ok()
        .and_then(|mut client| client.fetch_all(folder).ok())
        .is_some_and(|messages| {
            messages
                .iter()
                .any(|m| m.message_id == id && m.size == size)
        })
}

fn server_op(rng: &mut Rng, journal: &mut Journal, account: &Account, root: &Path) {
    let Ok(mut client) = ImapClient::login(account.dovecot.imap_port, "alice", DEFAULT_PASSWORD)
    else {
        // The server is restarting: the phone tries again later.
        return;
    };
    let Ok(folders) = client.list_folders() else {
        return;
    };
    let Some(folder) = pick(rng, &folders).cloned() else {
        return;
    };
    let roll = rng.range(0, 100);
    let Ok(messages) = client.fetch_all(&folder) else {
        return;
    };
    if roll >= 97 && !START_FOLDERS.contains(&folder.as_str()) {
        // The other device reorganises: renames a folder, or deletes one with its mail.
        client.logout();
        let Ok(mut client) =
            ImapClient::login(account.dovecot.imap_port, "alice", DEFAULT_PASSWORD)
        else {
            return;
        };
        if roll < 99 {
            let to = format!("Renamed/{}", journal.next_id);
            journal.next_id += 1;
            if client
                .command(&format!(
                    "RENAME {} {}",
                    mailbox_arg(&folder),
                    mailbox_arg(&to)
                ))
                .is_ok_and(|r| r.is_ok())
            {
                let before = journal.deletions.len();
                journal
                    .renames
                    .push((account.name, folder.clone(), to.clone(), before));
                journal.op(
                    "server-rename-folder",
                    format!(
                        "{} {folder} -> {to} ({} messages)",
                        account.name,
                        messages.len()
                    ),
                );
            }
        } else if client
            .command(&format!("DELETE {}", mailbox_arg(&folder)))
            .is_ok_and(|r| r.is_ok())
        {
            // Its mail goes with it on the server; rule 9 keeps the Maildir folder if it
            // holds mail, and says so: no deletion for syncmail to carry.
            for m in &messages {
                journal.deleted.insert(m.message_id.clone(), "server");
                journal.deletions.push((
                    account.name,
                    "server",
                    folder.clone(),
                    m.uid.to_string(),
                    false,
                ));
            }
            journal.op(
                "server-delete-folder",
                format!("{} {folder} ({} messages)", account.name, messages.len()),
            );
        }
        client.logout();
        return;
    }
    if roll < 20 || messages.is_empty() {
        let (id, bytes) = journal.new_message(rng, "server", account.name);
        let crlf = String::from_utf8(bytes).unwrap().replace('\n', "\r\n");
        let flags = if rng.range(0, 2) == 0 { "\\Seen" } else { "" };
        if client
            .append(&folder, flags, crlf.as_bytes())
            .is_ok_and(|r| r.is_ok())
        {
            journal.op("server-append", format!("{} {folder} {id}", account.name));
        }
        client.logout();
        return;
    }
    let m = pick(rng, &messages).cloned().unwrap();
    if client.select(&folder, false).is_err() {
        return;
    }
    match roll {
        20..=54 => {
            let (_, flag) = FLAGS[rng.range(0, FLAGS.len() as u64)];
            let sign = if m.flags.contains(flag) { '-' } else { '+' };
            if client
                .command(&format!("UID STORE {} {sign}FLAGS ({flag})", m.uid))
                .is_ok_and(|r| r.is_ok())
            {
                journal.op(
                    "server-flag",
                    format!("{} {folder} {} {sign}{flag}", account.name, m.message_id),
                );
            }
        }
        55..=66 => {
            // The same version (an edit keeps the Message-ID, not the size).
            let both = in_maildir(root, &folder, &m.message_id, m.size);
            let stored = client
                .command(&format!("UID STORE {} +FLAGS (\\Deleted)", m.uid))
                .is_ok_and(|r| r.is_ok());
            if stored
                && client
                    .command(&format!("UID EXPUNGE {}", m.uid))
                    .is_ok_and(|r| r.is_ok())
            {
                journal.deleted.insert(m.message_id.clone(), "server");
                journal.deletions.push((
                    account.name,
                    "server",
                    folder.clone(),
                    m.uid.to_string(),
                    both,
                ));
                journal.op(
                    "server-expunge",
                    format!("{} {folder} {} {}", account.name, m.uid, m.message_id),
                );
            }
        }
        _ => {
            // A move to another folder; now and then to one made just for it (a filter's
            // new target).
            let kind = if roll < 85 {
                "server-move"
            } else {
                "server-create-folder"
            };
            let to = if kind == "server-move" {
                let others: Vec<&String> = folders.iter().filter(|f| **f != folder).collect();
                let Some(to) = pick(rng, &others) else {
                    return;
                };
                (*to).clone()
            } else {
                let new = format!("Server/{}", journal.next_id);
                journal.next_id += 1;
                let made = client
                    .command(&format!("CREATE {}", mailbox_arg(&new)))
                    .is_ok_and(|r| r.is_ok());
                if !made || client.select(&folder, false).is_err() {
                    return;
                }
                new
            };
            if client
                .command(&format!("UID MOVE {} {}", m.uid, mailbox_arg(&to)))
                .is_ok_and(|r| r.is_ok())
            {
                journal
                    .moved
                    .entry(m.message_id.clone())
                    .or_default()
                    .insert("server");
                journal.op(
                    kind,
                    format!("{} {folder} -> {to} {}", account.name, m.message_id),
                );
            }
        }
    }
    client.logout();
}

/// The world the actors and faults act on.
struct World {
    home: tempfile::TempDir,
    config: PathBuf,
    accounts: Vec<Account>,
    daemon: Option<Daemon>,
    disk: Option<Tmpfs>,
}

impl World {
    fn maildir(&self) -> PathBuf {
        self.home.path().join("Mail")
    }

    fn root(&self, account: &str) -> PathBuf {
        self.maildir().join(account)
    }

    fn launch(&mut self) {
        self.daemon = Some(Daemon::launch(self.home.path(), &self.config, &[]));
    }

    fn daemon_log(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.home.path()) {
            let mut logs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("daemon-"))
                })
                .collect();
            logs.sort();
            for log in logs {
                all.push_str(&std::fs::read_to_string(log).unwrap_or_default());
            }
        }
        all
    }
}

/// One fault, healed before it returns (a suspend, a stall and a full disk last a few
/// seconds; a cut and a kill are instant).
fn fault(rng: &mut Rng, journal: &mut Journal, world: &mut World, long: Duration) {
    let account = rng.range(0, world.accounts.len() as u64);
    match rng.range(0, 9) {
        0 => {
            world.accounts[account].proxy.cut_all();
            journal.fault("cut", format!("account {}", world.accounts[account].name));
        }
        1 => {
            let proxy = &world.accounts[account].proxy;
            proxy.set_paused(true);
            std::thread::sleep(Duration::from_millis(rng.range(1000, 6000) as u64));
            proxy.set_paused(false);
            journal.fault("stall", format!("account {}", world.accounts[account].name));
        }
        2 => {
            let proxy = &world.accounts[account].proxy;
            proxy.set_delay(Duration::from_millis(20));
            std::thread::sleep(Duration::from_millis(rng.range(2000, 6000) as u64));
            proxy.set_delay(Duration::ZERO);
            journal.fault("slow", format!("account {}", world.accounts[account].name));
        }
        3 => {
            if let Some(daemon) = world.daemon.take() {
                daemon.kill9();
            }
            world.launch();
            journal.fault(
                "kill-9",
                format!("account {}", world.accounts[account].name),
            );
        }
        4 => {
            let daemon = world.daemon.as_ref().unwrap();
            daemon.signal("STOP");
            std::thread::sleep(long);
            daemon.signal("CONT");
            journal.fault(
                "suspend",
                format!("account {}", world.accounts[account].name),
            );
        }
        5 => {
            world.accounts[account].dovecot.restart();
            journal.fault(
                "server-restart",
                format!("account {}", world.accounts[account].name),
            );
        }
        6 => {
            // A new UIDVALIDITY for one folder, as a server that rebuilt its index says.
            let folder = START_FOLDERS[rng.range(0, START_FOLDERS.len() as u64)];
            let validity = 1_800_000_000 + rng.range(0, 1_000_000) as u64;
            let out = world.accounts[account]
                .dovecot
                .set_uidvalidity("alice", folder, validity);
            if out.status.success() {
                journal.fault(
                    "uidvalidity",
                    format!("account {}", world.accounts[account].name),
                );
            }
        }
        7 => {
            if let Some(disk) = &world.disk {
                // Fill the Maildir's disk to the last byte for a few seconds.
                let balloon = disk.path().join("balloon");
                let _ = std::process::Command::new("dd")
                    .args(["if=/dev/zero", "bs=1M"])
                    .arg(format!("of={}", balloon.display()))
                    .stderr(std::process::Stdio::null())
                    .status();
                std::thread::sleep(Duration::from_millis(rng.range(2000, 5000) as u64));
                let _ = std::fs::remove_file(balloon);
                journal.fault(
                    "disk-full",
                    format!("account {}", world.accounts[account].name),
                );
            }
        }
        _ => {
            // The whole link drops while a pass may be mid-FETCH: both accounts.
            for a in &world.accounts {
                a.proxy.cut_all();
            }
            journal.fault(
                "cut-all",
                format!("account {}", world.accounts[account].name),
            );
        }
    }
}

/// A side's view of one account: Message-ID -> (folder, flags as IMAP names, body hash).
type View = BTreeMap<String, Vec<(String, String, u64)>>;

fn server_view(account: &Account) -> View {
    let mut client = account.client();
    let mut view = View::new();
    for folder in client.list_folders().unwrap() {
        for m in client.fetch_all(&folder).unwrap() {
            let body = client.fetch_body(&folder, m.uid).unwrap();
            view.entry(m.message_id.clone()).or_default().push((
                folder.clone(),
                m.flags.clone(),
                body_hash(&body),
            ));
        }
    }
    client.logout();
    view
}

fn local_view(root: &Path) -> View {
    let mut view = View::new();
    for folder in local_folders(root) {
        for (path, _, flags, _) in local_files(&root.join(&folder)) {
            let bytes = std::fs::read(&path).unwrap();
            let id = message_id(&bytes).unwrap_or_default();
            view.entry(id).or_default().push((
                folder.clone(),
                maildir_to_imap(&flags),
                body_hash(&bytes),
            ));
        }
    }
    view
}

/// The names a folder had from the `at`th deletion in the journal on: its own, then each
/// one the second device renamed it to (a deletion not yet carried when its folder was
/// renamed is carried, and logged, under the new name).
fn names_after(
    renames: &[(&'static str, String, String, usize)],
    account: &str,
    folder: &str,
    at: usize,
) -> Vec<String> {
    let mut names = vec![folder.to_owned()];
    for (a, from, to, before) in renames {
        if *a == account && *before > at && from == names.last().unwrap() {
            names.push(to.clone());
        }
    }
    names
}

/// Message-IDs the conflict log names, and the deletions the change log records:
/// (side, folder, UID or key).
/// What a hold the final passes reported tells the user to do.
#[derive(Clone)]
enum Told {
    /// Run this command.
    Run(String),
    /// Move the mail elsewhere or remove the Maildir folder (rule 9).
    RemoveFolder,
    /// Nothing the soak can do (a halt without a command).
    Nothing,
}

/// What the state database of one account says happened.
struct Logs {
    /// Message-IDs of conflicts.
    conflicts: BTreeSet<String>,
    /// Deletions in the change log, as (side, folder, UID or key).
    deletions: BTreeSet<(String, String, String)>,
    /// Folders whose re-pairing after a UIDVALIDITY change kept some unconfirmed
    /// messages local-only (rule 13).
    kept_local_only: BTreeSet<String>,
}

fn logs(state_dir: &Path, account: &str) -> Logs {
    let path =
        syncmail::store::db_path(state_dir, &syncmail::model::AccountName(account.into())).unwrap();
    let db =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("{account}: the state database: {e}"));
    let mut conflicts = BTreeSet::new();
    let mut stmt = db
        .prepare("SELECT message_id FROM conflict_log WHERE message_id IS NOT NULL")
        .unwrap();
    for id in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        conflicts.insert(id.unwrap());
    }
    let mut kept_local_only = BTreeSet::new();
    let mut stmt = db
        .prepare("SELECT folder, resolution FROM conflict_log WHERE resolution LIKE 're-paired %'")
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (folder, resolution) = row.unwrap();
        if !resolution.ends_with(" 0 kept local-only") {
            kept_local_only.insert(folder);
        }
    }
    let mut deletions = BTreeSet::new();
    let mut stmt = db
        .prepare("SELECT side, folder, uid, local_key, change FROM change_log")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (side, folder, uid, key, change) = row.unwrap();
        // Carried, not only held by rule 7 until confirmed.
        if !change.contains("deleted") || change.contains("not propagated") {
            continue;
        }
        if let Some(uid) = uid {
            deletions.insert((side.clone(), folder.clone(), uid.to_string()));
        }
        if let Some(key) = key {
            deletions.insert((side, folder, key));
        }
    }
    Logs {
        conflicts,
        deletions,
        kept_local_only,
    }
}

/// What the run came to.
struct Outcome {
    summary: String,
    problems: Vec<String>,
    lost: usize,
    duplicated: usize,
    unexplained: usize,
}

fn run(duration: Duration, seed: u64) -> Outcome {
    let started = Instant::now();
    let home = tempfile::tempdir().unwrap();
    // The Maildirs on a tmpfs of their own, so a full disk can be made on cue (root).
    let disk = Tmpfs::mount(&home.path().join("Mail"), "1g");
    // One account whose server offers NOTIFY (Dovecot does with the list index), one
    // without.
    let accounts = vec![
        Account::start("a", "mailbox_list_index = yes\n"),
        Account::start("b", ""),
    ];
    for account in &accounts {
        let mut client = account.client();
        for folder in &START_FOLDERS[1..] {
            client.command_ok(&format!("CREATE {}", mailbox_arg(folder)));
        }
        client.logout();
    }
    let mut config = format!(
        "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n",
        home.path().display()
    );
    for account in &accounts {
        let text = account
            .dovecot
            .imap_account(account.name, "alice", "implicit")
            .replace(
                &format!("port = {}", account.dovecot.imaps_port),
                &format!("port = {}", account.proxy.port),
            );
        config.push_str(&text);
        config.push_str("timeout = \"10s\"\npoll_interval = \"15s\"\nidle = [\"INBOX\"]\n\n");
    }
    let config_path = home.path().join("config.toml");
    write_private(&config_path, &config);
    let mut world = World {
        home,
        config: config_path,
        accounts,
        daemon: None,
        disk,
    };
    let mut rng = Rng(seed.max(1));
    let mut journal = Journal::default();
    // Some mail on both servers before the first start.
    for account in &world.accounts {
        let mut client = account.client();
        for folder in START_FOLDERS {
            for _ in 0..5 {
                let (_, bytes) = journal.new_message(&mut rng, "server", account.name);
                let crlf = String::from_utf8(bytes).unwrap().replace('\n', "\r\n");
                client.append(folder, "", crlf.as_bytes()).unwrap();
            }
        }
        client.logout();
    }
    world.launch();
    let long = (duration / 12).clamp(Duration::from_secs(3), Duration::from_secs(30));
    let fault_every = (duration / 40).clamp(Duration::from_secs(4), Duration::from_secs(60));
    let mut next_fault = Instant::now() + fault_every;
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let account = rng.range(0, world.accounts.len() as u64);
        let name = world.accounts[account].name;
        if rng.range(0, 2) == 0 {
            let root = world.root(name);
            let account = &world.accounts[account];
            local_op(&mut rng, &mut journal, name, &root, &|folder, id, size| {
                on_server(account, folder, id, size)
            });
        } else {
            let root = world.root(name);
            server_op(&mut rng, &mut journal, &world.accounts[account], &root);
        }
        if Instant::now() >= next_fault {
            fault(&mut rng, &mut journal, &mut world, long);
            next_fault = Instant::now() + fault_every;
        }
        std::thread::sleep(Duration::from_millis(rng.range(20, 200) as u64));
    }

    // Settle: the daemon catches up with the last changes, then stops; one pass after.
    std::thread::sleep(Duration::from_secs(20));
    if let Some(daemon) = world.daemon.take() {
        daemon.stop();
    }
    let mut problems = Vec::new();
    // Folders a guard holds for a human, from what the final passes say: rule 7 (a folder
    // emptied on one side: `... deletions held. To confirm: COMMAND`) and rule 13 (a
    // UIDVALIDITY change not re-paired: `...: halted: UIDVALIDITY changed ...`, with the
    // command that accepts the confirmed pairs when a human may). The soak then does what
    // the user is told, runs each printed command, and checks the end state after that.
    // Rule 9 (a folder deleted on the server that still holds mail here) tells the user to
    // move the mail or remove the folder: the soak removes it.
    let uidvalidity_changed = journal.faults.contains_key("uidvalidity");
    let final_passes = |problems: &mut Vec<String>, when: &str| {
        let mut held: BTreeMap<(String, String), Told> = BTreeMap::new();
        for pass in ["the pass", "the pass after that"] {
            let out = syncmail(
                world.home.path(),
                &["sync", "--config", world.config.to_str().unwrap()],
            );
            let err = stderr(&out);
            let mut other = Vec::new();
            for line in err.lines() {
                let hold = line
                    .strip_prefix("syncmail: account `")
                    .and_then(|rest| rest.split_once("`: "))
                    .filter(|(_, rest)| {
                        rest.contains("deletions held")
                            || rest.contains("it is left alone (rule 9)")
                            || (rest.contains("UIDVALIDITY changed") && uidvalidity_changed)
                    })
                    .and_then(|(account, rest)| {
                        let told = match rest.find("syncmail sync ") {
                            Some(at) => Told::Run(rest[at..].trim().to_owned()),
                            None if rest.contains("(rule 9)") => Told::RemoveFolder,
                            None => Told::Nothing,
                        };
                        Some((
                            (account.to_owned(), rest.split_once(": ")?.0.to_owned()),
                            told,
                        ))
                    });
                match hold {
                    Some((at, command)) => {
                        held.insert(at, command);
                    }
                    None if line.contains("need attention") => {}
                    // The pass's own progress ("connected", "fetched so far"), not a finding.
                    None if line.split_whitespace().nth(1) == Some("INFO") => {}
                    None => other.push(line),
                }
            }
            let code = out.status.code();
            if code != Some(0) && !(code == Some(1) && other.is_empty() && !held.is_empty()) {
                problems.push(format!(
                    "{pass} {when} exited {code:?}:\n{}\n{err}",
                    stdout(&out)
                ));
            }
        }
        held
    };
    let first = final_passes(&mut problems, "after the soak");
    let mut resolved = 0;
    for ((account, folder), told) in &first {
        let command = match told {
            Told::Run(command) => command,
            Told::RemoveFolder => {
                // The user removes the folder (its mail with it, a deletion of theirs).
                let dir = world.root(account).join(folder);
                for (path, ..) in local_files(&dir) {
                    if let Some(id) = std::fs::read(&path).ok().and_then(|b| message_id(&b)) {
                        journal.deleted.insert(id, "local");
                    }
                }
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => resolved += 1,
                    Err(e) => problems.push(format!("{account}: removing {}: {e}", dir.display())),
                }
                continue;
            }
            Told::Nothing => continue,
        };
        let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
        args.insert(1, "--config");
        args.insert(2, world.config.to_str().unwrap());
        let out = syncmail(world.home.path(), &args);
        if out.status.code() == Some(0) {
            resolved += 1;
        } else {
            problems.push(format!(
                "{account}: {folder}: `{command}` exited {:?}:\n{}",
                out.status.code(),
                stderr(&out)
            ));
        }
    }
    // What is still held after the human acted: only halts that tell them nothing to do.
    let held: BTreeSet<(String, String)> = if resolved > 0 {
        final_passes(&mut problems, "after the printed commands")
    } else {
        first.clone()
    }
    .into_iter()
    .filter(|(_, told)| matches!(told, Told::Nothing))
    .map(|(at, _)| at)
    .collect();

    let mut lost = 0;
    let mut duplicated = 0;
    let mut unexplained = 0;
    let mut came_back = 0;
    let mut versions = 0;
    let mut held_count = 0;
    let mut kept_by_repair = 0;
    let mut logged = 0;
    let mut unlogged: Vec<String> = Vec::new();
    for account in &world.accounts {
        let name = account.name;
        let server = server_view(account);
        let local = local_view(&world.root(name));
        let Logs {
            conflicts,
            deletions,
            kept_local_only,
        } = logs(&world.home.path().join("state"), name);
        let ids: BTreeSet<&String> = server.keys().chain(local.keys()).collect();
        for id in ids {
            let s = server.get(id).map(Vec::as_slice).unwrap_or_default();
            let l = local.get(id).map(Vec::as_slice).unwrap_or_default();
            // One message is one version (a body); an edit makes another.
            let bodies: BTreeSet<u64> = s.iter().chain(l).map(|c| c.2).collect();
            if bodies.len() > 1 {
                if journal.edited.contains(id) {
                    versions += bodies.len() - 1;
                } else {
                    unexplained += 1;
                    problems.push(format!("{name}: {id} has different bodies and was never edited: server {s:?}, local {l:?}"));
                }
            }
            let mut this_lost = false;
            let mut kept_by_this_repair = false;
            for body in bodies {
                let sv: Vec<_> = s.iter().filter(|c| c.2 == body).collect();
                let lv: Vec<_> = l.iter().filter(|c| c.2 == body).collect();
                if sv.len() > 1 || lv.len() > 1 {
                    duplicated += 1;
                    problems.push(format!(
                        "{name}: {id} duplicated: server {sv:?}, local {lv:?}"
                    ));
                    continue;
                }
                match (sv.first(), lv.first()) {
                    (Some(sc), Some(lc)) if sc.0 != lc.0 => {
                        unexplained += 1;
                        problems.push(format!(
                            "{name}: {id} in {} on the server, {} locally",
                            sc.0, lc.0
                        ));
                    }
                    (Some(sc), Some(lc))
                        if sc.1 != lc.1 && held.contains(&(name.to_owned(), sc.0.clone())) =>
                    {
                        held_count += 1;
                    }
                    (Some(sc), Some(lc)) if sc.1 != lc.1 => {
                        unexplained += 1;
                        problems.push(format!(
                            "{name}: {id} in {}: flags {:?} on the server, {:?} locally",
                            sc.0, sc.1, lc.1
                        ));
                    }
                    (Some(_), Some(_)) | (None, None) => {}
                    (Some(only), None) | (None, Some(only)) => {
                        let side = if sv.is_empty() {
                            "locally"
                        } else {
                            "on the server"
                        };
                        if held.contains(&(name.to_owned(), only.0.clone())) {
                            // In a folder rule 7 or rule 13 holds for a human, and says so.
                            held_count += 1;
                        } else if sv.is_empty()
                            && journal.deleted.get(id) == Some(&"server")
                            && kept_local_only.contains(&only.0)
                        {
                            // Deleted on the server while the folder was renumbered: the
                            // re-pairing could not confirm it and kept the file, and the
                            // conflict log says so (rule 13 never deletes on a guess).
                            kept_by_repair += 1;
                            kept_by_this_repair = true;
                        } else {
                            this_lost = true;
                            problems.push(format!("{name}: {id} only {side}, in {}", only.0));
                        }
                    }
                }
            }
            if this_lost {
                lost += 1;
                continue;
            }
            // Explained above: its deletion did not reach a folder being renumbered.
            if kept_by_this_repair {
                continue;
            }
            if let Some(side) = journal.deleted.get(id) {
                let other = if *side == "local" { "server" } else { "local" };
                let moved_there = journal.moved.get(id).is_some_and(|m| m.contains(other));
                let edited = journal.edited.contains(id);
                let is_held = s
                    .iter()
                    .chain(l)
                    .any(|c| held.contains(&(name.to_owned(), c.0.clone())));
                if conflicts.contains(id.as_str()) || moved_there || edited {
                    came_back += 1;
                } else if !is_held {
                    unexplained += 1;
                    problems.push(format!(
                        "{name}: {id}, deleted {side}, is back without a conflict, a move or an edit"
                    ));
                }
            }
        }
        // Nothing an actor created and never deleted is missing from both sides.
        for (id, _) in journal.created.iter().filter(|(_, a)| **a == name) {
            if !journal.deleted.contains_key(id)
                && !server.contains_key(id)
                && !local.contains_key(id)
            {
                lost += 1;
                problems.push(format!(
                    "{name}: {id} is gone from both sides, and no actor deleted it"
                ));
            }
        }
        // Every deletion an actor made is in the change log, seen from its own side,
        // unless syncmail never paired the message (made and deleted between passes).
        for (at, (account, side, folder, what, both)) in journal.deletions.iter().enumerate() {
            if *account != name || !both {
                continue;
            }
            let side = if *side == "local" { "local" } else { "remote" };
            if names_after(&journal.renames, name, folder, at)
                .into_iter()
                .any(|folder| deletions.contains(&(side.to_owned(), folder, what.clone())))
            {
                logged += 1;
            } else if !(side == "remote" && kept_local_only.contains(folder)) {
                // (Unless a re-pairing could not confirm it, kept it, and said so.)
                unexplained += 1;
                unlogged.push(format!("{name} {side} {folder} {what}"));
            }
        }
        // No file left in tmp/.
        for folder in local_folders(&world.root(name)) {
            let tmp = world.root(name).join(&folder).join("tmp");
            let left: Vec<_> = std::fs::read_dir(&tmp)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            if !left.is_empty() {
                unexplained += 1;
                problems.push(format!("{name}: {folder}/tmp holds {left:?}"));
            }
        }
    }
    let kinds = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let summary = format!(
        "soak: {} s, seed {seed}: {} operations ({}), {} faults ({}){}; {came_back} deleted \
         messages kept by a conflict, a move or an edit; {versions} edited versions kept \
         beside their originals; {} folders held for a human (rule 7: a folder emptied; rule 13: \
         a UIDVALIDITY change not confirmed), {resolved} resolved by the command each printed, \
         {held_count} messages in folders still held; {kept_by_repair} deleted on the server \
         while their folder was renumbered, kept local-only by the re-pairing; {logged} of the {} actor deletions syncmail had to carry in the change log; lost {lost}, duplicated {duplicated}, unexplained {unexplained}",
        started.elapsed().as_secs(),
        journal.ops.values().sum::<usize>(),
        kinds(&journal.ops),
        journal.faults.values().sum::<usize>(),
        kinds(&journal.faults),
        if world.disk.is_none() {
            " (no full disk: no tmpfs could be mounted here)"
        } else {
            ""
        },
        first.len(),
        journal.deletions.iter().filter(|d| d.4).count(),
    );
    if !unlogged.is_empty() {
        problems.push(format!(
            "deletions an actor made on one side, syncmail carried to the other (or should \
             have), and the change log does not show: {unlogged:?}"
        ));
    }
    std::fs::write(
        world.home.path().join("soak-trace.log"),
        journal.trace.join("\n"),
    )
    .unwrap();
    if !problems.is_empty() {
        let log = world.daemon_log();
        let tail: Vec<&str> = log.lines().rev().take(200).collect();
        problems.push(format!(
            "daemon log, last 200 lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    if !problems.is_empty() {
        // The homes stay for a post-mortem: the trace, the daemon's logs, the Maildir
        // and the state (the servers' mail goes with them).
        if world.disk.is_some() {
            let _ = std::process::Command::new("cp")
                .arg("-a")
                .arg(world.maildir())
                .arg(world.home.path().join("Mail.kept"))
                .status();
        }
        drop(world.disk.take());
        let kept = world.home.keep();
        problems.push(format!("kept for a post-mortem: {}", kept.display()));
    }
    Outcome {
        summary,
        problems,
        lost,
        duplicated,
        unexplained,
    }
}

#[test]
#[ignore = "run after the suite by scripts/test.sh (3 minutes, seed 20261205); \
            scripts/soak.sh runs longer ones"]
fn soak() {
    let secs: u64 = std::env::var("SOAK_SECS").map_or(180, |s| s.parse().expect("SOAK_SECS"));
    let seed: u64 = std::env::var("SOAK_SEED").map_or(20261205, |s| s.parse().expect("SOAK_SEED"));
    let outcome = run(Duration::from_secs(secs), seed);
    eprintln!("{}", outcome.summary);
    assert!(
        outcome.problems.is_empty()
            && outcome.lost == 0
            && outcome.duplicated == 0
            && outcome.unexplained == 0,
        "{}\n{}",
        outcome.summary,
        outcome.problems.join("\n")
    );
}

/// The 30 minutes on 2e56a93 (seed 20261209): the client deleted a file in `Local/1240`
/// (deletion 1171 of the journal), then the phone renamed the folder before a pass
/// carried it; the change log has it under `Renamed/3528`. A deletion made after a rename
/// is in the folder that took the old name, and follows no rename made before it.
#[test]
fn a_deletion_is_looked_for_under_the_names_its_folder_took_after_it() {
    let renames = vec![
        ("a", "Local/1240".to_owned(), "Old/1".to_owned(), 10),
        ("b", "Local/1240".to_owned(), "Other/2".to_owned(), 1172),
        (
            "a",
            "Local/1240".to_owned(),
            "Renamed/3528".to_owned(),
            1172,
        ),
        (
            "a",
            "Renamed/3528".to_owned(),
            "Renamed/4000".to_owned(),
            1500,
        ),
    ];
    assert_eq!(
        names_after(&renames, "a", "Local/1240", 1171),
        ["Local/1240", "Renamed/3528", "Renamed/4000"]
    );
    assert_eq!(
        names_after(&renames, "a", "Local/1240", 1172),
        ["Local/1240"]
    );
}
