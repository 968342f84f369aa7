//! One file per message on a server with OBJECTID (RFC 8474), against the real Cyrus of
//! the server matrix (issue 18): a message another client copied into three folders is
//! downloaded once and is one inode in three Maildir folders; flags stay per folder; a
//! deletion in one folder removes only that folder's copy on both sides; a server-side
//! MOVE is a rename of the link; the crash loop leaves no duplicate and no orphan link.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

use crate::support::assert_crashed_at_a_fault_point;
use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::servers::{MatrixHome as Home, MatrixServer, ServerKind};

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
    // LABELS_CHECK

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
