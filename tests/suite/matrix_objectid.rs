//! One file per message on a server with OBJECTID (RFC 8474), against the real Cyrus of
//! the server matrix (issue 18): a message another client copied into three folders is
//! downloaded once and is one inode in three Maildir folders; flags stay per folder; a
//! deletion in one folder removes only that folder's copy on both sides; a server-side
//! MOVE is a rename of the link; the crash loop leaves no duplicate and no orphan link.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;

use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::servers::{MatrixHome as Home, MatrixServer, ServerKind};
use crate::support::{assert_crashed_at_a_fault_point, stdout};

const FOLDERS: [&str; 3] = ["INBOX", "Archive", "Work"];

fn body(id: &str) -> Vec<u8> {
    message(
        id,
        &format!("{id}@test"),
        &format!("body of {id}\r\n{}", "x".repeat(2000)),
    )
}

fn uid_of(server: &MatrixServer, user: &str, folder: &str, id: &str) -> Option<u32> {
    server
        .fetch_all(user, folder)
        .into_iter()
        .find(|f| f.message_id == format!("<{id}@test>"))
        .map(|f| f.uid)
}

/// `m` in INBOX, then copied by another client (UID COPY) into Archive and Work; `n` in
/// INBOX only, `a` in Archive only, `w` in Work only (so no folder is ever emptied, which
/// rule 7 would hold).
fn seed_copies(server: &MatrixServer, user: &str) {
    for folder in ["Archive", "Work", "Later"] {
        server.create_mailbox(user, folder);
    }
    server.seed(user, "INBOX", &body("m"));
    server.seed(user, "INBOX", &body("n"));
    server.seed(user, "Archive", &body("a"));
    server.seed(user, "Work", &body("w"));
    let uid = uid_of(server, user, "INBOX", "m").unwrap();
    for folder in ["Archive", "Work"] {
        server.in_folder(
            user,
            "INBOX",
            &format!(
                "UID COPY {uid} {}",
                crate::support::imap_client::mailbox_arg(&server.server_name(folder))
            ),
        );
    }
}

/// The inode of the local file holding `<id@test>` in `folder`, if there is exactly one.
fn inode(home: &Home, folder: &str, id: &str) -> Option<u64> {
    let dir = home.folder(folder);
    let wanted = format!("<{id}@test>");
    let found: Vec<u64> = md::messages(&dir)
        .into_keys()
        .filter(|k| String::from_utf8_lossy(&md::read(&dir, k)).contains(&wanted))
        .map(|k| std::fs::metadata(md::path_of(&dir, &k)).unwrap().ino())
        .collect();
    assert!(
        found.len() <= 1,
        "{folder}: {} copies of {wanted}",
        found.len()
    );
    found.first().copied()
}

fn capabilities(server: &MatrixServer) -> String {
    let mut client = server.client("alice");
    let reply = client.command_ok("CAPABILITY");
    client.logout();
    reply.transcript()
}

#[test]
fn cyrus_objectid_stores_a_message_once_and_keeps_flags_and_deletions_per_folder() {
    let server = MatrixServer::start_with_users(ServerKind::Cyrus, &["alice"]);
    assert!(
        capabilities(&server).contains("OBJECTID"),
        "Cyrus offers OBJECTID: {}",
        capabilities(&server)
    );
    let user = "alice";
    let home = Home::new(&server, user, "implicit", "");
    seed_copies(&server, user);

    // Copied into three folders: downloaded once, one inode in three Maildir folders.
    let (summary, _) = home.sync(&server, "the first pass");
    assert!(
        summary.contains("fetched 4 (") && summary.contains("linked 2"),
        "one download each of m, n, a and w, two links: {summary}"
    );
    let inodes: BTreeSet<u64> = FOLDERS
        .iter()
        .map(|f| inode(&home, f, "m").unwrap_or_else(|| panic!("m is not in {f}")))
        .collect();
    assert_eq!(inodes.len(), 1, "one file in three folders: {inodes:?}");
    let first = *inodes.iter().next().unwrap();
    assert_eq!(
        std::fs::metadata(md::path_of(
            &home.folder("INBOX"),
            &home.key_of("INBOX", "m")
        ))
        .unwrap()
        .nlink(),
        3
    );
    home.assert_quiet(&server, "the pass after the first");
    let check = stdout(&home.run(&["check-config", "--connect"]));
    assert!(
        check.contains("OBJECTID (EMAILID): a message in several folders is downloaded once")
            && !check.contains("no OBJECTID"),
        "{check}"
    );

    // `syncmail labels` lists the message with the three folders it is linked in.
    let labels = stdout(&home.run(&["labels"]));
    let line = labels
        .lines()
        .find(|l| l.contains("<m@test>"))
        .unwrap_or_else(|| panic!("{labels}"));
    assert!(
        line.ends_with(": INBOX, INBOX.Archive, INBOX.Work"),
        "{line}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&home.run(&["labels", "--json"]))).unwrap();
    let messages = json["accounts"][0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "m, n, a and w: {json}");
    let m = messages
        .iter()
        .find(|m| m["message_id"] == "<m@test>")
        .unwrap();
    assert_eq!(m["folders"].as_array().unwrap().len(), 3, "{m}");
    notmuch_tags_follow_the_folders(&home);

    // A flag set on one folder's copy reaches the server for that folder only.
    md::set_flags(&home.folder("Archive"), &home.key_of("Archive", "m"), "F");
    let (summary, _) = home.sync(&server, "a flag on Archive's copy");
    assert!(summary.contains("flags pushed 1"), "{summary}");
    let flags = |folder: &str| {
        server
            .state(user, folder)
            .into_iter()
            .find(|(id, _)| id == "<m@test>")
            .map(|(_, f)| f)
            .unwrap()
    };
    assert_eq!(flags("Archive"), "\\Flagged");
    assert_eq!(flags("INBOX"), "");
    assert_eq!(flags("Work"), "");
    assert_eq!(
        md::messages(&home.folder("INBOX"))[&home.key_of("INBOX", "m")],
        "",
        "the INBOX entry keeps its own flags"
    );
    assert_eq!(inode(&home, "Archive", "m"), Some(first), "still one file");
    home.assert_quiet(&server, "the pass after the flag");

    // A local deletion in Work removes only Work's copy, on both sides.
    md::delete(&home.folder("Work"), &home.key_of("Work", "m"));
    let (summary, _) = home.sync(&server, "a local deletion in Work");
    assert!(
        summary.contains("deleted 1 on server 0 locally"),
        "{summary}"
    );
    assert_eq!(uid_of(&server, user, "Work", "m"), None);
    assert!(uid_of(&server, user, "INBOX", "m").is_some());
    assert!(uid_of(&server, user, "Archive", "m").is_some());
    assert_eq!(inode(&home, "INBOX", "m"), Some(first));
    assert_eq!(inode(&home, "Archive", "m"), Some(first));

    // A server deletion in Archive removes only Archive's link.
    server.expunge(
        user,
        "Archive",
        uid_of(&server, user, "Archive", "m").unwrap(),
    );
    let (summary, _) = home.sync(&server, "a server deletion in Archive");
    assert!(
        summary.contains("deleted 0 on server 1 locally"),
        "{summary}"
    );
    assert_eq!(inode(&home, "Archive", "m"), None);
    assert_eq!(inode(&home, "INBOX", "m"), Some(first));
    home.assert_quiet(&server, "the pass after the deletions");

    // A server-side MOVE is a rename of the link: no download, the same inode.
    let uid = uid_of(&server, user, "INBOX", "m").unwrap();
    server.in_folder(
        user,
        "INBOX",
        &format!(
            "UID MOVE {uid} {}",
            crate::support::imap_client::mailbox_arg(&server.server_name("Later"))
        ),
    );
    let (summary, _) = home.sync(&server, "a server-side MOVE");
    assert!(
        summary.contains("fetched 0 (") && summary.contains("moved 1"),
        "{summary}"
    );
    assert_eq!(inode(&home, "INBOX", "m"), None);
    assert_eq!(
        inode(&home, "Later", "m"),
        Some(first),
        "renamed, not downloaded"
    );
    home.assert_quiet(&server, "the pass after the move");

    // A copy made on the server later is a new link, no download.
    let uid = uid_of(&server, user, "Later", "m").unwrap();
    server.in_folder(
        user,
        "Later",
        &format!(
            "UID COPY {uid} {}",
            crate::support::imap_client::mailbox_arg(&server.server_name("Work"))
        ),
    );
    let (summary, _) = home.sync(&server, "a server-side COPY");
    assert!(
        summary.contains("fetched 0 (") && summary.contains("linked 1"),
        "{summary}"
    );
    assert_eq!(inode(&home, "Work", "m"), Some(first));
    home.assert_quiet(&server, "the pass after the copy");

    // A message written locally is uploaded; its identity is learnt on the next pass,
    // so a copy another client makes of it later is a link too.
    md::add(&home.folder("INBOX"), "1700000000.u.host", "S", &body("u"));
    let (summary, _) = home.sync(&server, "an upload");
    assert!(summary.contains("appended 1"), "{summary}");
    home.assert_quiet(&server, "the pass after the upload");
    let uid = uid_of(&server, user, "INBOX", "u").unwrap();
    server.in_folder(
        user,
        "INBOX",
        &format!(
            "UID COPY {uid} {}",
            crate::support::imap_client::mailbox_arg(&server.server_name("Archive"))
        ),
    );
    let (summary, _) = home.sync(&server, "a copy of the upload");
    assert!(
        summary.contains("fetched 0 (") && summary.contains("linked 1"),
        "{summary}"
    );
    assert_eq!(inode(&home, "Archive", "u"), inode(&home, "INBOX", "u"));
}

/// Rule 1 with links: the first pass over three folders holding one message, killed at
/// every fault point in turn (a fresh user each time); after a rerun every folder holds
/// the message exactly once, all three entries one file, nothing unpaired (the next pass
/// does nothing and the server has no extra copy).
#[test]
fn cyrus_objectid_crash_loop_leaves_no_duplicate_and_no_orphan_link() {
    const USERS: usize = 24;
    let users: Vec<String> = (1..=USERS).map(|n| format!("crash{n}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let server = MatrixServer::start_with_users(ServerKind::Cyrus, &refs);
    for (n, user) in users.iter().enumerate() {
        let n = n + 1;
        seed_copies(&server, user);
        let home = Home::new(&server, user, "implicit", "");
        let out = home.run_with(&["sync"], &[("SYNCMAIL_FAULT", &format!("#{n}"))]);
        let crashed = out.status.code() != Some(0);
        if crashed {
            assert_crashed_at_a_fault_point(&out, n as u32);
            home.sync(&server, &format!("the rerun after crash #{n}"));
        }
        let inodes: Vec<Option<u64>> = FOLDERS.iter().map(|f| inode(&home, f, "m")).collect();
        assert!(
            inodes.iter().all(|i| *i == inodes[0] && i.is_some()),
            "crash #{n}: one file in three folders: {inodes:?}"
        );
        assert!(inode(&home, "INBOX", "n").is_some());
        for folder in FOLDERS {
            let ids: Vec<String> = server
                .fetch_all(user, folder)
                .into_iter()
                .map(|f| f.message_id)
                .collect();
            let want: &[&str] = match folder {
                "INBOX" => &["<m@test>", "<n@test>"],
                "Archive" => &["<a@test>", "<m@test>"],
                _ => &["<w@test>", "<m@test>"],
            };
            assert_eq!(ids, want, "crash #{n}: no copy uploaded back to {folder}");
        }
        home.assert_quiet(&server, &format!("the pass after recovery from crash #{n}"));
        if !crashed {
            assert!(n > 4, "only {} fault points reached", n - 1);
            eprintln!(
                "cyrus objectid: crashed and recovered at {} fault points",
                n - 1
            );
            return;
        }
    }
    panic!("more than {USERS} fault points: raise USERS");
}

/// The contrib `after_sync` hooks: `notmuch-new` indexes the one message of three links
/// once, `notmuch-labels` tags it with the three folders it is in.
fn notmuch_tags_follow_the_folders(home: &Home) {
    use std::process::{Command, Stdio};
    let dir = home.dir.path();
    let config = dir.join("notmuch-config");
    std::fs::write(
        &config,
        format!(
            "[database]\npath={}\n[new]\ntags=unread;\n[maildir]\nsynchronize_flags=true\n",
            dir.join("Mail").display()
        ),
    )
    .unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_syncmail"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let contrib = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/hooks");
    for hook in ["notmuch-new", "notmuch-labels"] {
        let out = Command::new(format!("{contrib}/{hook}"))
            .env_clear()
            .env("PATH", &path)
            .env("HOME", dir)
            .env("NOTMUCH_CONFIG", &config)
            .env("SYNCMAIL_ACCOUNT", "t")
            .env("SYNCMAIL_CONFIG", &home.config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{hook} failed: {}",
            crate::support::stderr(&out)
        );
    }
    let notmuch = |args: &[&str]| {
        let out = Command::new("notmuch")
            .args(args)
            .env("NOTMUCH_CONFIG", &config)
            .env("HOME", dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "notmuch {args:?}");
        stdout(&out)
    };
    assert_eq!(notmuch(&["count", "--output=messages", "*"]).trim(), "4");
    assert_eq!(
        notmuch(&["count", "--output=files", "id:m@test"]).trim(),
        "3"
    );
    let tags = notmuch(&["search", "--output=tags", "id:m@test"]);
    for tag in ["label/INBOX", "label/INBOX.Archive", "label/INBOX.Work"] {
        assert!(tags.lines().any(|t| t == tag), "{tag} in {tags}");
    }
}

/// Folder (server name) -> Message-ID -> copies, on the server, empty folders left out.
fn server_counts(server: &MatrixServer, user: &str) -> BTreeMap<String, BTreeMap<String, usize>> {
    server
        .message_ids(user)
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .collect()
}

/// Local folder -> Message-ID -> files, empty folders left out.
fn local_counts(home: &Home) -> BTreeMap<String, BTreeMap<String, usize>> {
    home.message_ids()
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .collect()
}

/// After the first pass of `seed_copies`: another client copies `m` into Later (a new
/// link) and moves `n` into Archive (a rename); the user deletes Work's `m` (that
/// folder's copy on the server) while another client expunges Archive's `a` (that link).
fn prepared_changes(server: &MatrixServer, user: &str) -> Home {
    seed_copies(server, user);
    server.seed(user, "Later", &body("l"));
    let home = Home::new(server, user, "implicit", "");
    home.sync(server, &format!("the first pass of {user}"));
    let client_cmd = |folder: &str, cmd: String| server.in_folder(user, folder, &cmd);
    let m = uid_of(server, user, "INBOX", "m").unwrap();
    let n = uid_of(server, user, "INBOX", "n").unwrap();
    let arg = |f: &str| crate::support::imap_client::mailbox_arg(&server.server_name(f));
    client_cmd("INBOX", format!("UID COPY {m} {}", arg("Later")));
    client_cmd("INBOX", format!("UID MOVE {n} {}", arg("Archive")));
    server.expunge(
        user,
        "Archive",
        uid_of(server, user, "Archive", "a").unwrap(),
    );
    md::delete(&home.folder("Work"), &home.key_of("Work", "m"));
    home
}

/// Rule 1 over a pass that links, renames and deletes: killed at every fault point in
/// turn (a fresh user each time), then rerun: both sides equal an uninterrupted run's,
/// `m`'s entries are still one file, and the next pass does nothing.
#[test]
fn cyrus_objectid_crash_loop_over_copies_moves_and_deletions() {
    const USERS: usize = 24;
    let mut users = vec!["ref".to_owned()];
    users.extend((1..=USERS).map(|n| format!("crash{n}")));
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let server = MatrixServer::start_with_users(ServerKind::Cyrus, &refs);
    let reference = prepared_changes(&server, "ref");
    let (summary, _) = reference.sync(&server, "the uninterrupted pass");
    assert!(
        summary.contains("fetched 0 (") && summary.contains("linked 1"),
        "{summary}"
    );
    let want_server = server_counts(&server, "ref");
    let want_local = local_counts(&reference);
    assert_eq!(want_local.len(), 4, "{want_local:?}");
    let m_inodes = |home: &Home| -> BTreeSet<Option<u64>> {
        ["INBOX", "Archive", "Later"]
            .iter()
            .map(|f| inode(home, f, "m"))
            .collect()
    };
    assert_eq!(m_inodes(&reference).len(), 1);
    for n in 1..=USERS {
        let user = format!("crash{n}");
        let home = prepared_changes(&server, &user);
        let out = home.run_with(&["sync"], &[("SYNCMAIL_FAULT", &format!("#{n}"))]);
        let crashed = out.status.code() != Some(0);
        if crashed {
            assert_crashed_at_a_fault_point(&out, n as u32);
            home.sync(&server, &format!("the rerun after crash #{n}"));
        }
        // Server folder names differ only by user; Message-ID counts must match.
        assert_eq!(
            server_counts(&server, &user),
            want_server,
            "crash #{n}: server"
        );
        assert_eq!(local_counts(&home), want_local, "crash #{n}: Maildir");
        let inodes = m_inodes(&home);
        assert!(
            inodes.len() == 1 && !inodes.contains(&None),
            "crash #{n}: m is one file in INBOX, Archive and Later: {inodes:?}"
        );
        home.assert_quiet(&server, &format!("the pass after recovery from crash #{n}"));
        if !crashed {
            assert!(n > 4, "only {} fault points reached", n - 1);
            eprintln!(
                "cyrus objectid changes: crashed and recovered at {} fault points",
                n - 1
            );
            return;
        }
    }
    panic!("more than {USERS} fault points: raise USERS");
}

/// Counts the bytes a server sends through it: what a client downloaded.
struct CountingProxy {
    port: u16,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CountingProxy {
    fn start(target: u16) -> CountingProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = received.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
                for (mut from, mut to, count) in [
                    (
                        server.try_clone().unwrap(),
                        client.try_clone().unwrap(),
                        true,
                    ),
                    (client, server, false),
                ] {
                    let counter = counter.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if count {
                                counter.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        CountingProxy { port, received }
    }

    fn take(&self) -> u64 {
        self.received.swap(0, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Disk a tree uses: each inode counted once (hard links are one file), in allocated
/// blocks.
fn disk_used(root: &std::path::Path) -> u64 {
    fn walk(dir: &std::path::Path, seen: &mut BTreeSet<u64>, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.is_dir() {
                walk(&e.path(), seen, total);
            } else if meta.is_file() && seen.insert(meta.ino()) {
                *total += meta.blocks() * 512;
            }
        }
    }
    let (mut seen, mut total) = (BTreeSet::new(), 0);
    walk(root, &mut seen, &mut total);
    total
}

/// The benchmark of issue 18 (run by `scripts/bench-objectid.sh`): an account where
/// every message is in All Mail and half of them in one or two labels (folders holding
/// copies, as Gmail's labels look over IMAP), synced by syncmail and by mbsync (the same
/// folders), each through a proxy that counts the bytes the server sent. Prints one
/// table row per tool.
#[test]
#[ignore = "a benchmark: scripts/bench-objectid.sh"]
fn benchmark_all_mail_and_labels_syncmail_vs_mbsync() {
    let messages: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let server = MatrixServer::start_with_users(ServerKind::CyrusAltNamespace, &["bench"]);
    let user = "bench";
    for folder in ["All Mail", "Work", "Travel"] {
        server.create_mailbox(user, folder);
    }
    let mut client = server.client(user);
    let mut payload = String::new();
    for i in 0..messages {
        // 4 to 60 KiB of base64 (an attachment: compression gains little on it).
        payload.clear();
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for _ in 0..(50 + (i * 37) % 760) {
            for _ in 0..76 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(x >> 58) as usize];
                payload.push(c as char);
            }
            payload.push_str("\r\n");
        }
        let id = format!("b{i}");
        let reply = client
            .append(
                "All Mail",
                "",
                &message(&id, &format!("{id}@test"), &payload),
            )
            .unwrap();
        assert!(reply.is_ok(), "{}", reply.transcript());
    }
    client.select("All Mail", false).unwrap();
    // Half the messages carry a label: every 2nd is in Work, every 4th in Travel too.
    let work: Vec<String> = (0..messages)
        .step_by(2)
        .map(|i| (i + 1).to_string())
        .collect();
    let travel: Vec<String> = (0..messages)
        .step_by(4)
        .map(|i| (i + 1).to_string())
        .collect();
    client.command_ok(&format!("UID COPY {} Work", work.join(",")));
    client.command_ok(&format!("UID COPY {} Travel", travel.join(",")));
    client.logout();
    let proxy = CountingProxy::start(server.imap_port);

    let home = Home::new(&server, user, "none", "");
    let text = std::fs::read_to_string(&home.config).unwrap().replace(
        &format!("port = {}", server.imap_port),
        &format!("port = {}", proxy.port),
    );
    crate::support::write_private(&home.config, &text);
    let started = std::time::Instant::now();
    let (summary, _) = home.sync(&server, "the benchmark's syncmail pass");
    let syncmail = (proxy.take(), disk_used(&home.root()), started.elapsed());
    assert!(summary.contains("linked"), "{summary}");

    let mb = tempfile::tempdir().unwrap();
    std::fs::create_dir(mb.path().join("Mail")).unwrap();
    let rc = mb.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount bench\nHost 127.0.0.1\nPort {}\nUser {user}\nPass {}\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount bench\n\n\
             MaildirStore local\nPath @DIR@/Mail/\nInbox @DIR@/Mail/INBOX\nSubFolders Verbatim\n\n\
             Channel bench\nFar :remote:\nNear :local:\nPatterns INBOX \"All Mail\" Work Travel\nCreate Near\nSyncState *\n",
            proxy.port,
            crate::support::DEFAULT_PASSWORD,
        )
        .replace("@DIR@", &mb.path().display().to_string()),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new("mbsync")
        .args(["-c", rc.to_str().unwrap(), "-a"])
        .output()
        .expect("mbsync (apt-get install isync)");
    assert!(
        out.status.success(),
        "mbsync: {}{}",
        stdout(&out),
        crate::support::stderr(&out)
    );
    let mbsync = (
        proxy.take(),
        disk_used(&mb.path().join("Mail")),
        started.elapsed(),
    );

    let total_entries = messages + work.len() + travel.len();
    println!(
        "{messages} messages in All Mail, {} in Work, {} in Travel ({total_entries} folder entries)",
        work.len(),
        travel.len()
    );
    println!("| tool | downloaded | disk used | time |");
    println!("|---|---|---|---|");
    for (tool, (bytes, disk, time)) in [("syncmail", syncmail), ("mbsync 1.4", mbsync)] {
        println!(
            "| {tool} | {:.1} MiB | {:.1} MiB | {:.1} s |",
            bytes as f64 / 1048576.0,
            disk as f64 / 1048576.0,
            time.as_secs_f64()
        );
    }
    assert!(syncmail.0 < mbsync.0, "syncmail downloads less");
}
