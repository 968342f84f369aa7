//! A pass costs what changed, not what the mailbox holds (issue 19): with QRESYNC and a
//! Maildir whose stamp says nothing changed locally, a pass that brings a few server
//! changes reads a constant number of base rows per changed message. Counted in the
//! store (rows its reads returned), not timed.

use std::os::unix::fs::MetadataExt;

use syncmail::engine::{AccountReport, SyncOptions, sync_account};

use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::sync_env::SyncEnv as Env;

const MESSAGES: usize = 400;
/// Base rows a pass may read per message the server changed: its pair, its server-only
/// mark.
const ROWS_PER_CHANGE: u64 = 2;

/// Put `n` messages straight into the server's Maildir for `folder` (Dovecot indexes
/// them when next asked): hundreds of `doveadm save` calls would take a minute.
fn seed_many(env: &Env, folder: &str, n: usize) {
    env.dovecot.create_mailbox("alice", folder);
    let home = env.dovecot.root().join("mail").join("alice");
    let meta = std::fs::metadata(&home).unwrap();
    let new = home.join(format!("Maildir/.{folder}/new"));
    std::fs::create_dir_all(&new).unwrap();
    for i in 0..n {
        let id = format!("m{i}");
        let path = new.join(format!("1700000000.M{i}P1.seed"));
        std::fs::write(
            &path,
            message(&id, &format!("{id}@test"), &format!("body of {id}")),
        )
        .unwrap();
        std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid())).unwrap();
    }
}

/// One `syncmail sync` pass in this process, so the report's row count can be read.
fn pass(env: &Env) -> AccountReport {
    let loaded = env.loaded();
    let account = loaded.config.accounts[0].clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(sync_account(
            &account,
            &loaded.config.general,
            &SyncOptions::default(),
        ))
        .expect("sync");
    assert!(
        report.errors.is_empty() && report.halts.is_empty(),
        "{:?} {:?}",
        report.errors,
        report.halts
    );
    report
}

fn flags_of(env: &Env, folder: &str) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = md::messages(&env.folder(folder)).into_iter().collect();
    all.sort();
    all
}

#[test]
fn a_pass_bringing_server_flag_changes_reads_only_their_base_rows() {
    let env = Env::new("");
    seed_many(&env, "Big", MESSAGES);
    let first = pass(&env);
    assert_eq!(first.counts.fetched, MESSAGES);
    // Nothing changed: the folder is skipped on its stamp and QRESYNC, no base read.
    assert_eq!(pass(&env).base_rows_read, 0);

    let changed = [7u32, 100, 250];
    for uid in changed {
        env.dovecot.add_flags("alice", "Big", uid, "\\Flagged");
    }
    env.dovecot.expunge("alice", "Big", 300);
    let report = pass(&env);
    assert_eq!(
        report.counts.flags_pulled,
        changed.len(),
        "{:?}",
        report.counts
    );
    assert_eq!(report.counts.deleted_local, 1, "{:?}", report.counts);
    let touched = changed.len() as u64 + 1;
    assert!(
        report.base_rows_read <= ROWS_PER_CHANGE * touched,
        "read {} base rows for {touched} changed messages in a folder of {MESSAGES}",
        report.base_rows_read
    );
    let local = flags_of(&env, "Big");
    assert_eq!(local.len(), MESSAGES - 1);
    assert_eq!(
        local.iter().filter(|(_, f)| f.contains('F')).count(),
        changed.len()
    );
    // The pass re-armed the stamp from the names it changed: the next one reads nothing.
    assert_eq!(pass(&env).base_rows_read, 0);
    env.assert_quiet();
}

#[test]
fn a_local_change_beside_server_changes_is_not_missed() {
    let env = Env::new("");
    seed_many(&env, "Big", 50);
    pass(&env);
    pass(&env);
    // The stamp no longer holds: a full pass sees both the client's and the server's change.
    let key = env.key_of("Big", "m0");
    md::set_flags(&env.folder("Big"), &key, "S");
    let uid = env.dovecot.uid_of("alice", "Big", "m10@test");
    env.dovecot.add_flags("alice", "Big", uid, "\\Answered");
    let report = pass(&env);
    assert_eq!(report.counts.flags_pushed, 1, "{:?}", report.counts);
    assert_eq!(report.counts.flags_pulled, 1, "{:?}", report.counts);
    assert!(
        report.base_rows_read >= 50,
        "a full pass: {}",
        report.base_rows_read
    );
    assert!(
        env.server("Big")
            .iter()
            .any(|(_, f)| f.contains("\\Answered"))
    );
    assert_eq!(
        env.server("Big")
            .iter()
            .filter(|(_, f)| f.contains("\\Seen"))
            .count(),
        1
    );
    env.assert_quiet();
}

#[test]
fn a_file_not_under_the_name_its_pair_implies_means_a_full_pass() {
    let env = Env::new("");
    seed_many(&env, "Big", 20);
    pass(&env);
    pass(&env);
    // A client adds a letter of its own and restores the directory's mtimes: the stamp
    // holds, but the file of the message the server changes is not where the base says.
    let dir = env.folder("Big");
    let uid = env.dovecot.uid_of("alice", "Big", "m4@test");
    let key = env.key_of("Big", "m4");
    let cur = dir.join("cur");
    let new = dir.join("new");
    let times: Vec<std::fs::FileTimes> = [&cur, &new]
        .iter()
        .map(|d| {
            let m = std::fs::metadata(d).unwrap();
            std::fs::FileTimes::new()
                .set_accessed(m.accessed().unwrap())
                .set_modified(m.modified().unwrap())
        })
        .collect();
    let from = md::path_of(&dir, &key);
    std::fs::rename(&from, cur.join(format!("{key}:2,a"))).unwrap();
    for (d, t) in [&cur, &new].iter().zip(times) {
        std::fs::File::open(d).unwrap().set_times(t).unwrap();
    }
    env.dovecot.add_flags("alice", "Big", uid, "\\Flagged");
    let report = pass(&env);
    assert_eq!(report.counts.flags_pulled, 1, "{:?}", report.counts);
    assert!(
        report.base_rows_read >= 20,
        "a full pass: {}",
        report.base_rows_read
    );
    let name = md::files(&dir).into_iter().find(|f| f.key == key).unwrap();
    assert_eq!(name.flags, "Fa", "the client's letter is kept");
    env.assert_quiet();
}

/// The folders a `syncmail sync` selected, from its debug log.
fn selected(env: &Env) -> Vec<String> {
    let out = env.run("sync", &[], &[("SYNCMAIL_LOG", "syncmail::imap=debug")]);
    let log = crate::support::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let mut folders: Vec<String> = log
        .lines()
        .filter(|l| l.contains("selecting"))
        .filter_map(|l| l.split("folder=").nth(1))
        .map(|f| {
            f.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_owned()
        })
        .collect();
    folders.sort();
    folders.dedup();
    folders
}

#[test]
fn a_pass_selects_only_the_folders_that_moved_on_either_side() {
    let env = Env::new("");
    for f in ["A", "B", "C"] {
        env.dovecot.create_mailbox("alice", f);
        env.seed(f, &format!("{f}1"));
    }
    env.seed("INBOX", "i1");
    env.sync_ok();
    env.sync_ok();
    assert!(
        selected(&env).is_empty(),
        "nothing changed, nothing selected"
    );
    // One folder moved on the server, another in the Maildir.
    env.dovecot.add_flags("alice", "B", 1, "\\Flagged");
    let key = env.key_of("C", "C1");
    md::set_flags(&env.folder("C"), &key, "S");
    assert_eq!(selected(&env), ["B", "C"]);
    assert!(env.server("C")[0].1.contains("\\Seen"));
    assert_eq!(md::messages(&env.folder("B")).values().next().unwrap(), "F");
    // Our own STORE moved C's HIGHESTMODSEQ past the one its pass recorded: C is looked
    // at once more (QRESYNC then reports only our change), then left alone.
    assert!(selected(&env).iter().all(|f| f == "C"));
    // New mail shows in UIDNEXT.
    env.seed("A", "A2");
    assert_eq!(selected(&env), ["A"]);
    assert_eq!(md::messages(&env.folder("A")).len(), 2);
    assert!(selected(&env).is_empty());
}
