//! Rule 21 end to end: a Maildir that the real mbsync or OfflineIMAP filled, or that
//! syncmail filled before its state was lost, is adopted by pairing: nothing transferred
//! either way, every pair found, both sides exactly as before, a second pass quiet, and
//! changes after adoption travel as usual. Only truly one-sided messages move.

use std::path::{Path, PathBuf};

use crate::support::dovecot::message;
use crate::support::flags::maildir_to_imap;
use crate::support::maildir as md;
use crate::support::peers::{self, IdCounts, PeerRun};
use crate::support::sync_env::SyncEnv;
use crate::support::{Dovecot, stdout};

const FOLDERS: [&str; 4] = ["INBOX", "Archive", "Archive/2024", "Entwürfe"];

/// A folder's name with its server rows and its Maildir rows, `(Message-ID, flags)`.
type FolderRows = (String, Vec<(String, String)>, Vec<(String, String)>);

/// Both sides, every folder: comparable before and after.
fn snapshot(env: &SyncEnv, run: &PeerRun) -> Vec<FolderRows> {
    FOLDERS
        .iter()
        .map(|f| {
            (
                (*f).to_owned(),
                env.dovecot.state("alice", f),
                md::state(&run.folder(f)),
            )
        })
        .collect()
}

/// A Maildir folder's rows with IMAP flag names, comparable with `Dovecot::state`.
fn local_rows(folder: &Path) -> Vec<(String, String)> {
    md::state(folder)
        .into_iter()
        .map(|(id, letters)| (id, maildir_to_imap(&letters)))
        .collect()
}

/// No Message-ID more often on either side than the server had it before.
fn assert_no_duplicates(env: &SyncEnv, root: &Path, before: &IdCounts) {
    let server = peers::server_ids(&env.dovecot, "alice");
    for (folder, ids) in &server {
        for (id, n) in ids {
            let was = before
                .get(folder)
                .and_then(|m| m.get(id))
                .copied()
                .unwrap_or(0);
            assert!(
                *n <= was.max(1),
                "{folder}: {id} {n} times on the server (was {was})"
            );
        }
    }
    for (folder, ids) in peers::maildir_ids(root) {
        for (id, n) in ids {
            let on_server = server
                .values()
                .filter_map(|m| m.get(&id))
                .max()
                .copied()
                .unwrap_or(1);
            assert!(
                n <= on_server,
                "{folder}: {id} {n} times locally, {on_server} on the server"
            );
        }
    }
}

/// A syncmail account `t` whose Maildir is the one the peer tool fills (kept in
/// modified UTF-7, as the tools write folder names).
fn env_for_peer() -> SyncEnv {
    SyncEnv::with_dovecot(Dovecot::start(), "folder_names = \"modified-utf-7\"\n")
}

/// `syncmail import TOOL RC --output FILE` on the peer tool's own config, then every
/// later command of `env` runs on that config (its account is named after the user).
fn use_imported_config(env: &mut SyncEnv, run: &PeerRun, tool: &str) {
    let out = env.home.path().join("imported.toml");
    let done = env.run(
        "import",
        &[
            tool,
            run.config.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        done.status.code(),
        Some(0),
        "import failed:\n{}\n{}",
        stdout(&done),
        crate::support::stderr(&done)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("folder_names = \"modified-utf-7\""), "{text}");
    assert!(text.contains(&run.maildir.display().to_string()), "{text}");
    env.config = out;
}

fn first_contact(env: &SyncEnv, method: &str) -> String {
    let out = env.sync_ok();
    assert!(
        out.contains("fetched 0 (0 KiB), appended 0,"),
        "a first contact transfers nothing:\n{out}"
    );
    assert!(out.contains("first contact:"), "{out}");
    assert!(out.contains(method), "paired by {method}:\n{out}");
    assert!(!out.contains("held"), "nothing is ambiguous here:\n{out}");
    out
}

/// After adoption, changes on each side travel as they would have anyway.
fn changes_travel(env: &SyncEnv, inbox: &Path) {
    // Server: a new message and a flag.
    env.dovecot.seed(
        "alice",
        "INBOX",
        &message("after", "after@adoption.test", "arrived after adoption"),
    );
    let (uid, _) = env.dovecot.list("alice", "INBOX")[0];
    env.dovecot.add_flags("alice", "INBOX", uid, "\\Flagged");
    // Local: a new message and a deletion.
    md::add(
        inbox,
        "1800000000.local1.host",
        "S",
        &message(
            "written here",
            "local@adoption.test",
            "written after adoption",
        ),
    );
    let victim = md::state(inbox)
        .into_iter()
        .find(|(id, _)| id.starts_with("<inbox-7"))
        .map(|(id, _)| id)
        .unwrap();
    let key = md::messages(inbox)
        .into_keys()
        .find(|k| {
            String::from_utf8_lossy(&md::read(inbox, k)).contains(victim.trim_matches(['<', '>']))
        })
        .unwrap();
    md::delete(inbox, &key);
    let out = env.sync_ok();
    assert!(out.contains("fetched 1 "), "{out}");
    assert!(out.contains("appended 1,"), "{out}");
    assert!(out.contains("deleted 1 on server"), "{out}");
    let server = env.dovecot.state("alice", "INBOX");
    assert_eq!(server, local_rows(inbox), "INBOX in step after the changes");
    assert!(server.iter().any(|(id, _)| id == "<local@adoption.test>"));
    assert!(server.iter().all(|(id, _)| *id != victim));
    env.assert_quiet();
}

fn root(env: &SyncEnv) -> PathBuf {
    env.home.path().join("Mail").join("t")
}

#[test]
fn rule_21_a_maildir_mbsync_filled_is_adopted_without_a_transfer() {
    let mut env = env_for_peer();
    let seeded = peers::seed_adoption_mail(&env.dovecot, "alice");
    let run = peers::mbsync_fill(&env.dovecot, "alice", &root(&env), env.home.path());
    run.assert_mirrors(&env.dovecot, "alice");
    use_imported_config(&mut env, &run, "mbsync");
    let before = snapshot(&env, &run);
    let ids = peers::server_ids(&env.dovecot, "alice");
    let total: usize = seeded.folders.iter().map(|(_, n)| n).sum();

    let out = first_contact(&env, "by mbsync's state");
    assert!(out.contains(&format!("{}", seeded.folders[0].1)), "{out}");
    assert_eq!(snapshot(&env, &run), before, "both sides exactly as before");
    env.assert_quiet();
    let log = env.log(&[]);
    assert_eq!(
        log.matches("paired by mbsync's state").count(),
        total,
        "every pair is in the change log with its method:\n{log}"
    );
    assert_no_duplicates(&env, &root(&env), &ids);
    changes_travel(&env, &run.folder("INBOX"));
    assert_no_duplicates(&env, &root(&env), &ids);
}

#[test]
fn rule_21_a_maildir_offlineimap_filled_is_adopted_without_a_transfer() {
    let mut env = env_for_peer();
    peers::seed_adoption_mail(&env.dovecot, "alice");
    let run = peers::offlineimap_fill(&env.dovecot, "alice", &root(&env), env.home.path());
    run.assert_mirrors(&env.dovecot, "alice");
    use_imported_config(&mut env, &run, "offlineimap");
    let before = snapshot(&env, &run);
    let ids = peers::server_ids(&env.dovecot, "alice");

    first_contact(&env, "by OfflineIMAP's file name");
    assert_eq!(snapshot(&env, &run), before, "both sides exactly as before");
    env.assert_quiet();
    assert_no_duplicates(&env, &root(&env), &ids);
    changes_travel(&env, &run.folder("INBOX"));
}

#[test]
fn rule_21_without_the_previous_tools_state_content_pairs_everything() {
    let env = env_for_peer();
    peers::seed_adoption_mail(&env.dovecot, "alice");
    let run = peers::mbsync_fill(&env.dovecot, "alice", &root(&env), env.home.path());
    // Another tool's Maildir without its state (getmail, a backup, a copied tree).
    for f in FOLDERS {
        let _ = std::fs::remove_file(run.folder(f).join(".mbsyncstate"));
    }
    let before = snapshot(&env, &run);
    let out = first_contact(&env, "by Message-ID and size");
    assert!(
        out.contains("by content hash"),
        "the message without Message-ID:\n{out}"
    );
    assert_eq!(snapshot(&env, &run), before);
    env.assert_quiet();
}

#[test]
fn rule_21_lost_state_with_changes_on_both_sides_ends_in_the_union() {
    let env = SyncEnv::new("");
    for i in 0..6 {
        env.seed("INBOX", &format!("m{i}@lost.test"));
    }
    env.sync_ok();
    let inbox = env.inbox();
    // The state is lost (a new laptop restored from a backup of ~/Mail only)...
    std::fs::remove_dir_all(env.home.path().join("state")).unwrap();
    // ...and both sides change meanwhile.
    let server = env.dovecot.list("alice", "INBOX");
    env.dovecot
        .add_flags("alice", "INBOX", server[0].0, "\\Flagged");
    env.seed("INBOX", "new-on-server@lost.test");
    let keys: Vec<String> = md::messages(&inbox).into_keys().collect();
    md::set_flags(&inbox, &keys[1], "RS");
    md::add(
        &inbox,
        "1800000000.new.host",
        "",
        &message(
            "new here",
            "new-locally@lost.test",
            "written while the state was gone",
        ),
    );
    let out = env.sync_ok();
    assert!(
        out.contains("first contact: 6 paired (6 by Message-ID and size)"),
        "{out}"
    );
    assert!(
        out.contains("fetched 1 "),
        "only the new server message:\n{out}"
    );
    assert!(
        out.contains("appended 1,"),
        "only the new local message:\n{out}"
    );
    let server = env.dovecot.state("alice", "INBOX");
    assert_eq!(server, local_rows(&inbox), "both sides hold the union");
    assert_eq!(server.len(), 8, "{server:?}");
    let flags_of = |id: &str| {
        server
            .iter()
            .find(|(i, _)| i.contains(id))
            .unwrap()
            .1
            .clone()
    };
    assert!(flags_of("m0@").contains("\\Flagged"), "{server:?}");
    assert!(flags_of("m1@").contains("\\Answered"), "{server:?}");
    env.assert_quiet();
}

#[test]
fn rule_21_only_truly_one_sided_messages_move_and_nothing_is_deleted() {
    let env = env_for_peer();
    peers::seed_adoption_mail(&env.dovecot, "alice");
    let run = peers::mbsync_fill(&env.dovecot, "alice", &root(&env), env.home.path());
    let archive = run.folder("Archive/2024");
    // While neither tool runs: new mail on the server, a message written locally, one
    // deleted on the server and another deleted locally.
    env.dovecot.seed(
        "alice",
        "Archive/2024",
        &message("new", "new-server@adoption.test", "new on the server"),
    );
    md::add(
        &archive,
        "1800000000.mine.host",
        "S",
        &message("mine", "new-local@adoption.test", "new in the Maildir"),
    );
    let (first_uid, _) = env.dovecot.list("alice", "Archive/2024")[0];
    env.dovecot.expunge("alice", "Archive/2024", first_uid);
    let key = md::messages(&archive)
        .into_keys()
        .find(|k| String::from_utf8_lossy(&md::read(&archive, k)).contains("archive-2024-1@"))
        .unwrap();
    md::delete(&archive, &key);

    // A dry run says what the pairing found and what would still move, and moves nothing.
    let before = (
        env.dovecot.state("alice", "Archive/2024"),
        md::state(&archive),
    );
    let dry = stdout(&env.sync(&["--dry-run"]));
    assert!(
        dry.contains("Archive/2024: first contact: 1 paired (1 by mbsync's state)"),
        "{dry}"
    );
    assert!(dry.contains("fetch") && dry.contains("append"), "{dry}");
    assert_eq!(
        (
            env.dovecot.state("alice", "Archive/2024"),
            md::state(&archive)
        ),
        before
    );

    let out = env.sync_ok();
    // The deleted ones come back from the other side: without a base a deletion cannot
    // be told from a message the other side never had (rule 21: nothing is deleted).
    assert!(out.contains("fetched 2 "), "{out}");
    assert!(out.contains("appended 2,"), "{out}");
    assert!(out.contains("deleted 0 on server 0 locally"), "{out}");
    let server = env.dovecot.state("alice", "Archive/2024");
    assert_eq!(server, local_rows(&archive));
    assert_eq!(server.len(), 5, "{server:?}");
    env.assert_quiet();
}

#[test]
fn rule_21_ambiguous_copies_are_held_and_released_on_request() {
    let env = SyncEnv::new("");
    env.seed("INBOX", "one@held.test");
    env.sync_ok();
    std::fs::remove_dir_all(env.home.path().join("state")).unwrap();
    // A second local file of the same message (a copy a user made by hand).
    let inbox = env.inbox();
    let key = md::messages(&inbox).into_keys().next().unwrap();
    md::add(&inbox, "1800000000.copy.host", "S", &md::read(&inbox, &key));
    let out = env.sync_ok();
    assert!(
        out.contains("3 held as ambiguous (1 on the server, 2 local)"),
        "{out}"
    );
    assert!(
        out.contains("fetched 0 (0 KiB), appended 0,"),
        "nothing moves for it:\n{out}"
    );
    let status = stdout(&env.run("status", &[], &[]));
    assert!(status.contains("held at first contact"), "{status}");
    assert!(status.contains("share one Message-ID"), "{status}");
    // Listed, then kept apart: nothing is copied or deleted, and the hold is gone.
    let listed = stdout(&env.run("adopt", &["t"], &[]));
    assert!(listed.contains("INBOX: file "), "{listed}");
    let kept = stdout(&env.run("adopt", &["t", "--keep-apart"], &[]));
    assert!(
        kept.contains("released; each stays on its own side"),
        "{kept}"
    );
    env.assert_quiet();
    assert_eq!(env.dovecot.list("alice", "INBOX").len(), 1);
    assert_eq!(md::messages(&inbox).len(), 2);
    let status = stdout(&env.run("status", &[], &[]));
    assert!(!status.contains("held at first contact"), "{status}");
}
