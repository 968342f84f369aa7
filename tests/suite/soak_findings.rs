//! Failures the soak (`soak.rs`, issue 20) found, each as its own small test with the
//! schedule that found it (seed 20261205, the first runs of `scripts/soak.sh 90`).

use std::time::Duration;

use crate::support::daemon::{Daemon, wait_until};
use crate::support::dovecot::{LOCAL_NAMES, ServerCert, Setup, WITHOUT_NOTIFY};
use crate::support::maildir as md;
use crate::support::sync_env::SyncEnv;
use crate::support::{DEFAULT_PASSWORD, Dovecot};

/// (Message-ID, folder) of every copy.
type Copies = Vec<(String, String)>;

/// Every copy on the server and in the Maildir, sorted.
fn copies(env: &SyncEnv, folders: &[&str]) -> (Copies, Copies) {
    let mut server = Vec::new();
    let mut local = Vec::new();
    for folder in folders {
        for (id, _) in env.dovecot.state("alice", folder) {
            server.push((id, (*folder).to_owned()));
        }
        for (id, _) in md::state(&env.folder(folder)) {
            local.push((id, (*folder).to_owned()));
        }
    }
    server.sort();
    local.sort();
    (server, local)
}

/// Seed 20261205, t=42-44 s: the phone moved a message from `Lists/rust` to `Archive`
/// while the laptop flagged it in `Lists/rust`. The daemon's pass after the local change
/// covered `Lists/rust` only: it saw the server copy gone and the file flagged, kept it
/// and copied it back (rule 11), and the next pass downloaded the moved copy into
/// `Archive` too: two copies. A pass that sees a message leave a folder now covers every
/// folder, so the move is seen as a move.
#[test]
fn a_server_move_during_a_local_flag_change_stays_one_message() {
    // Without NOTIFY: IDLE on INBOX and a minute's sweep leave the watcher's pass, over
    // the changed folder only, to find the move (with NOTIFY, the server's events name
    // both folders, and the pass covers them both anyway).
    let dovecot = Dovecot::start_setup(Setup {
        users: &[("alice", DEFAULT_PASSWORD)],
        cert: ServerCert::For(LOCAL_NAMES),
        extra_config: WITHOUT_NOTIFY,
    });
    let env = SyncEnv::with_dovecot(dovecot, "poll_interval = \"1h\"\nidle = [\"INBOX\"]\n");
    env.dovecot.create_mailbox("alice", "Lists/rust");
    env.dovecot.create_mailbox("alice", "Archive");
    env.seed("Lists/rust", "m");
    env.sync_ok();
    let daemon = Daemon::start(&env);
    wait_until(&daemon, Duration::from_secs(20), "the first pass", || {
        daemon.log().contains("folders: fetched")
    });
    // The server move first, then the local change at once: the passes the two start
    // (the watcher's, NOTIFY's or the sweep's) each cover some folders only.
    let uid = env.dovecot.uid_of("alice", "Lists/rust", "m@test");
    env.dovecot.doveadm(
        &[
            "move",
            "-u",
            "alice",
            "Archive",
            "mailbox",
            "Lists/rust",
            "uid",
            &uid.to_string(),
        ],
        None,
    );
    let key = env.key_of("Lists/rust", "m");
    md::set_flags(&env.folder("Lists/rust"), &key, "F");
    wait_until(&daemon, Duration::from_secs(20), "the move", || {
        md::messages(&env.folder("Archive")).contains_key(&key)
    });
    daemon.stop();
    env.sync_ok();
    let want = vec![("<m@test>".to_owned(), "Archive".to_owned())];
    assert_eq!(
        copies(&env, &["INBOX", "Lists/rust", "Archive"]),
        (want.clone(), want)
    );
    // The flag made before the move followed the message.
    assert_eq!(md::messages(&env.folder("Archive"))[&key], "F");
    assert!(
        env.dovecot.state("alice", "Archive")[0]
            .1
            .contains("\\Flagged")
    );
    env.assert_quiet();
}

/// Seed 20261205, t=63-66 s: the laptop moved a message from `Work` to `Projects` while
/// the phone moved it from `Work` to `Archive`. The pass uploaded the file into
/// `Projects` and downloaded the server copy into `Archive`: one message in two folders
/// on each side. Now the file follows the server's move.
#[test]
fn moves_to_different_folders_on_each_side_stay_one_message() {
    let (env, key) = m_synced("", &["Work", "Projects", "Archive"], "Work");
    move_file(&env, &key, "Work", "Projects");
    env.dovecot.move_uid("alice", "Work", 1, "Archive");
    let summary = env.sync_ok();
    assert!(
        summary.contains("fetched 0") && summary.contains("appended 0"),
        "no download, no upload: {summary}"
    );
    let want = vec![("<m@test>".to_owned(), "Archive".to_owned())];
    assert_eq!(
        copies(&env, &["Work", "Projects", "Archive"]),
        (want.clone(), want)
    );
    assert!(md::messages(&env.folder("Archive")).contains_key(&key));
    env.assert_quiet();
}

/// Seed 20261205, t=153 s: the same, with each side moving the message into a folder it
/// had just made (a filter's new folder on the server, a new Maildir folder locally).
#[test]
fn moves_into_new_folders_on_each_side_stay_one_message() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "Work");
    env.seed("Work", "m");
    env.sync_ok();
    let key = env.key_of("Work", "m");
    let from = md::path_of(&env.folder("Work"), &key);
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(env.folder("Mine").join(sub)).unwrap();
    }
    std::fs::rename(
        &from,
        env.folder("Mine")
            .join("cur")
            .join(from.file_name().unwrap()),
    )
    .unwrap();
    env.dovecot.create_mailbox("alice", "Filtered");
    env.dovecot.move_uid("alice", "Work", 1, "Filtered");
    let summary = env.sync_ok();
    let want = vec![("<m@test>".to_owned(), "Filtered".to_owned())];
    assert_eq!(
        copies(&env, &["Work", "Mine", "Filtered"]),
        (want.clone(), want),
        "{summary}"
    );
    assert!(
        summary.contains("fetched 0") && summary.contains("appended 0"),
        "no download, no upload: {summary}"
    );
    env.assert_quiet();
}

/// Seed 20261205, t=141-144 s: the phone flagged a message, then moved it to another
/// folder. The pass that renamed the file after the move kept the pair's old flags, and
/// moved the destination's HIGHESTMODSEQ past the moved message, so QRESYNC never
/// reported it again: \Flagged on the server, not in the Maildir, for good.
#[test]
fn a_flag_set_on_the_server_before_a_move_arrives_with_the_message() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "Work");
    env.dovecot.create_mailbox("alice", "Archive");
    env.seed("Work", "m");
    env.seed("Archive", "other");
    env.sync_ok();
    let key = env.key_of("Work", "m");
    env.dovecot.add_flags("alice", "Work", 1, "\\Flagged");
    env.dovecot.move_uid("alice", "Work", 1, "Archive");
    let summary = env.sync_ok();
    assert!(summary.contains("moved 1"), "{summary}");
    env.sync_ok();
    assert_eq!(md::messages(&env.folder("Archive"))[&key], "F");
    env.assert_quiet();
}

/// Seed 20261205, 20-minute run: a pass was killed right after journaling a server move
/// it mirrors locally (rename the file into the destination), and the mail client moved
/// the file to another folder before the next start. Recovery found the file in neither
/// folder and halted the source folder for good ("an interrupted move could not be
/// resolved: ... is in neither folder; rescan"). Now recovery lets go of the intent and
/// the pass finds the message where the user put it: one message, where the server has it.
#[test]
fn a_file_moved_away_during_an_interrupted_move_is_found_not_halted() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "Archive");
    env.seed("INBOX", "m");
    env.sync_ok();
    let key = env.key_of("INBOX", "m");
    env.dovecot.move_uid("alice", "INBOX", 1, "Archive");
    let out = env.run("sync", &[], &[("SYNCMAIL_FAULT", "after-intent")]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the pass must die at the fault point"
    );
    // The client moves the file into a folder of its own meanwhile.
    let from = md::path_of(&env.folder("INBOX"), &key);
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(env.folder("Mine").join(sub)).unwrap();
    }
    let sub = from.parent().unwrap().file_name().unwrap().to_owned();
    std::fs::rename(
        &from,
        env.folder("Mine").join(sub).join(from.file_name().unwrap()),
    )
    .unwrap();
    let summary = env.sync_ok();
    assert!(!summary.contains("halted"), "{summary}");
    let want = vec![("<m@test>".to_owned(), "Archive".to_owned())];
    assert_eq!(
        copies(&env, &["INBOX", "Mine", "Archive"]),
        (want.clone(), want)
    );
    env.assert_quiet();
}

/// Seed 20261205, the 5-minute run, t=298 s: the mail client moved the only message of
/// `Server/118` to `Server/459` while a pass over every folder ran. `Server/118` had been
/// found unchanged, then `Server/459` showed a new file, which was uploaded; the
/// next pass saw `Server/118` emptied, which rule 7 holds: two copies on the server. A
/// file that arrives while another folder still pairs its key now makes the pass observe
/// every folder again, and the rename is a move.
#[test]
fn a_file_moved_between_the_observations_of_one_pass_is_a_move() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "A");
    env.dovecot.create_mailbox("alice", "B");
    env.seed("A", "m");
    env.sync_ok();
    let key = env.key_of("A", "m");
    // New mail in B: the pass finds A still and B moved, then the client moves A's
    // message to B before B is observed.
    env.seed("B", "n");
    pass_paused_after_the_check(&env, || {
        move_file(&env, &key, "A", "B");
    });
    env.sync_ok();
    let (server, local) = copies(&env, &["A", "B"]);
    let two = vec![
        ("<m@test>".to_owned(), "B".to_owned()),
        ("<n@test>".to_owned(), "B".to_owned()),
    ];
    assert_eq!(server, two, "one copy of m on the server, moved");
    assert_eq!(local, two);
    env.assert_quiet();
}

/// Run `syncmail sync` paused after it asked every folder's numbers (so the folders it
/// found still are as good as observed), do `meanwhile`, and let it finish; it must
/// succeed.
fn pass_paused_after_the_check(env: &SyncEnv, meanwhile: impl FnOnce()) {
    pass_paused(env, "checked=3000", 1, meanwhile);
}

/// A server with these folders (and INBOX) and the message m in `home`, synced with the
/// account keys `config`: the environment and m's key.
fn m_synced(config: &str, folders: &[&str], home: &str) -> (SyncEnv, String) {
    let env = SyncEnv::new(config);
    for folder in folders {
        env.dovecot.create_mailbox("alice", folder);
    }
    env.seed(home, "m");
    env.sync_ok();
    let key = env.key_of(home, "m");
    (env, key)
}

/// The mail client moves the file of `key` from one folder's Maildir to another's `cur/`
/// (a rename across folders, under the same name).
fn move_file(env: &SyncEnv, key: &str, from: &str, to: &str) {
    let path = md::path_of(&env.folder(from), key);
    std::fs::rename(
        &path,
        env.folder(to).join("cur").join(path.file_name().unwrap()),
    )
    .unwrap();
}

/// `syncmail sync` paused at `pause` (see [`SyncEnv::sync_paused`]); its summary.
fn pass_paused(env: &SyncEnv, pause: &str, times: usize, meanwhile: impl FnOnce()) -> String {
    env.sync_paused(pause, times, &[], meanwhile)
}

/// Seed 20261205, a 3-minute run after the folder operations were added, t=137 s: the
/// mail client marked a flagged message in `Work` answered while the phone moved it to
/// `INBOX`. A pass over every folder had observed `INBOX` before the move; `Work` then
/// showed the server copy gone and the file changed, which rule 11 keeps and copies back
/// (flagged), and the moved copy was downloaded into `INBOX` by the next pass: two
/// copies. Unflagged, the deletion won and the client's change was lost. A conflict
/// between a deletion and a change now makes the pass observe every folder again, where
/// it is a move that carries the change.
#[test]
fn a_server_move_during_a_local_flag_change_into_a_folder_already_observed_is_a_move() {
    for flags in ["FRS", "RS"] {
        let env = SyncEnv::new("");
        env.dovecot.create_mailbox("alice", "A");
        env.dovecot.create_mailbox("alice", "B");
        env.seed("B", "m");
        env.sync_ok();
        let key = env.key_of("B", "m");
        // The client's change first: the pass finds A still and B changed; the phone's
        // move comes before B is observed.
        md::set_flags(&env.folder("B"), &key, flags);
        pass_paused_after_the_check(&env, || {
            let uid = env.dovecot.uid_of("alice", "B", "m@test");
            env.dovecot.doveadm(
                &[
                    "move",
                    "-u",
                    "alice",
                    "A",
                    "mailbox",
                    "B",
                    "uid",
                    &uid.to_string(),
                ],
                None,
            );
        });
        env.sync_ok();
        let (server, local) = copies(&env, &["A", "B"]);
        let one = vec![("<m@test>".to_owned(), "A".to_owned())];
        assert_eq!(server, one, "{flags}: one message on the server, moved");
        assert_eq!(local, one, "{flags}");
        assert_eq!(
            md::state(&env.folder("A"))[0].1,
            flags,
            "the client's change carried"
        );
        env.assert_quiet();
    }
}

/// The hour on 8ed40ea (seed 20261209, account b, t=1835 s): the same, with the phone's
/// move into a folder it made after the pass listed the folders. Observing every folder
/// again, over the same listing, showed the conflict again, and the flagged file was
/// copied back beside the phone's copy (unflagged, the deletion would have won and the
/// change been lost). Now such a conflict makes the pass list the folders again first.
#[test]
fn a_server_move_during_a_local_flag_change_into_a_folder_made_after_the_listing_is_a_move() {
    for flags in ["FRS", "RS"] {
        let (env, key) = m_synced("", &["B"], "B");
        md::set_flags(&env.folder("B"), &key, flags);
        pass_paused_after_the_check(&env, || {
            env.dovecot.create_mailbox("alice", "Filtered");
            let uid = env.dovecot.uid_of("alice", "B", "m@test");
            env.dovecot.move_uid("alice", "B", uid, "Filtered");
        });
        let again = env.sync_ok();
        m_only_in(
            &env,
            &["B", "Filtered"],
            "Filtered",
            &format!("{flags}: {again}"),
        );
        assert_eq!(
            md::state(&env.folder("Filtered"))[0].1,
            flags,
            "the client's change carried"
        );
        env.assert_quiet();
    }
}

/// The hours on 27a2a15 and 8ed40ea (seed 20261209): the mail client deleted a folder's
/// last file, and the phone deleted the folder on the server before a pass carried it.
/// Rule 9 kept the Maildir folder as "still holding messages" (its pair), and the
/// client's deletion was never logged. An empty Maildir folder is removed now, and the
/// log says what became of the pair.
#[test]
fn rule_9_a_folder_the_server_deleted_after_the_client_deleted_its_last_file_is_removed() {
    let (env, key) = m_synced("", &["S", "T"], "S");
    std::fs::remove_file(md::path_of(&env.folder("S"), &key)).unwrap();
    env.dovecot
        .doveadm(&["mailbox", "delete", "-u", "alice", "S"], None);
    let out = env.sync_ok();
    assert!(!env.folder("S").exists(), "{out}");
    let log = env.log(&[]);
    assert!(
        log.lines()
            .any(|l| l.contains(" S maildir ") && l.contains(": deleted")),
        "{out}\n{log}"
    );
    env.sync_ok();
    env.assert_quiet();
}

/// The soak's second device deletes server folders: one it deleted after a pass listed
/// the folders and before that pass selected it was the folder's failure (`SELECT`
/// answered `NO [NONEXISTENT]`), and a `syncmail sync` exited 1 for what another client
/// did. It is a note now, and the next pass sees the deletion and applies rule 9.
#[test]
fn rule_9_a_folder_deleted_on_the_server_between_the_list_and_its_select_is_not_an_error() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "A");
    env.dovecot.create_mailbox("alice", "Gone");
    env.seed("A", "a");
    env.seed("Gone", "g");
    env.sync_ok();
    // New mail in Gone, so the pass selects it after its check.
    env.seed("Gone", "h");
    pass_paused_after_the_check(&env, || {
        env.dovecot
            .doveadm(&["mailbox", "delete", "-u", "alice", "Gone"], None);
    });
    // The next pass sees the folder gone on the server with local mail in it: kept, and
    // said so (rule 9), as when the deletion happened between two passes.
    let out = env.sync(&[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Gone: deleted on the server"), "{said}");
    assert_eq!(
        md::messages(&env.folder("Gone")).len(),
        1,
        "the mail is kept"
    );
    assert_eq!(env.dovecot.state("alice", "A").len(), 1);
}

/// Seed 20261206, a 3-minute run, t=94-104 s: the mail client moved a message from
/// `Server/85` to `Server/135` while a pass that had widened to every folder was between
/// observing the two. `Server/85` still held the file when it was observed, `Server/135`
/// then showed it as new: uploaded, a second server copy. The phone flagged the first
/// copy, so the next pass saw a deletion against a flag change (rule 11), kept it and
/// restored it: one message in two folders. An arrival that another observed folder
/// still pairs and no longer holds is now left for the next pass, which sees the move.
#[test]
fn a_file_moved_between_the_observations_of_a_widened_pass_is_not_uploaded() {
    let env = SyncEnv::new("connections = 1\n");
    for folder in ["A", "B", "C"] {
        env.dovecot.create_mailbox("alice", folder);
    }
    env.seed("A", "m");
    env.seed("C", "x");
    env.sync_ok();
    let key = env.key_of("A", "m");
    // A deletion in C against a flag set on the server: a conflict, so the pass (which
    // found A and B still) looks at every folder; the client's move comes in that look,
    // after A was observed and before B is.
    let x = md::path_of(&env.folder("C"), &env.key_of("C", "x"));
    std::fs::remove_file(x).unwrap();
    env.dovecot.add_flags("alice", "C", 1, "\\Flagged");
    let summary = pass_paused(&env, "observed:A=2000", 1, || {
        move_file(&env, &key, "A", "B");
    });
    assert!(summary.contains("appended 0"), "not uploaded: {summary}");
    // The phone flags the copy still in A; the next pass moves the message.
    env.dovecot.add_flags("alice", "A", 1, "\\Flagged");
    env.sync_ok();
    env.sync_ok();
    let (server, local) = copies(&env, &["A", "B"]);
    let one = vec![("<m@test>".to_owned(), "B".to_owned())];
    assert_eq!(server, one, "one message on the server, moved");
    assert_eq!(local, one);
    assert!(env.dovecot.state("alice", "B")[0].1.contains("\\Flagged"));
    assert_eq!(md::messages(&env.folder("B"))[&key], "F");
    env.assert_quiet();
}

/// Seed 20261205, a 3-minute run on commit 367ed90, t=175-178 s: the mail client moved a
/// message from `Server/119` to `Server/56` while the phone moved the server copy from
/// `Server/119` to `Server/73`, after the pass had observed `Server/119` and before it
/// observed `Server/73`. The pass downloaded the phone's copy into `Server/73` and tried
/// to mirror the client's move, which found nothing to move; the next pass uploaded the
/// client's file: one message in two folders. An arrival with the Message-ID and size of
/// a pair another folder's observation saw on the server, which is gone from there now,
/// is now left for the next pass, which sees the two moves and keeps the server's.
#[test]
fn a_server_move_between_the_observations_of_a_pass_is_not_downloaded_beside_a_local_move() {
    let (env, key) = m_synced("connections = 1\n", &["A", "B", "C"], "A");
    // The client's move first; the phone's comes after the pass observed A. New mail in
    // C, so the pass observes C too (after A) rather than finding it still.
    env.seed("C", "c");
    move_file(&env, &key, "A", "B");
    // Past the timestamp granularity, so the pass reads A's Maildir as stable (rule 6).
    std::thread::sleep(std::time::Duration::from_millis(200));
    // The first look finds the file arrived in B while A still pairs it and looks at
    // every folder again; the phone moves in that second look, after A.
    let summary = pass_paused(&env, "observed:A=2000", 2, || {
        env.dovecot.move_uid("alice", "A", 1, "C");
    });
    assert!(summary.contains("fetched 1 "), "c only, not m: {summary}");
    env.sync_ok();
    env.sync_ok();
    let (server, local) = copies(&env, &["A", "B", "C"]);
    let one = vec![
        ("<c@test>".to_owned(), "C".to_owned()),
        ("<m@test>".to_owned(), "C".to_owned()),
    ];
    assert_eq!(
        server, one,
        "one message on the server, where the phone put it"
    );
    assert_eq!(local, one);
    assert!(
        md::messages(&env.folder("C")).contains_key(&key),
        "the client's file followed"
    );
    env.assert_quiet();
}

/// The hour on 9786e9e (seed 20261209, account a, t=1961 s): the phone moved a message
/// from A to C while a daemon pass over every folder was between them; the pass held
/// C's download back for the next pass, but named only C for it, and the daemon's next
/// pass, over C alone, downloaded the message beside the file still paired in A (which
/// the client then moved: two copies). The next pass now covers the folder it left
/// too, and sees one move.
#[test]
fn a_server_move_mid_pass_is_seen_by_the_daemons_next_pass_as_a_move() {
    let (env, key) = m_in_a_c_in_c_daemon_without_notify("INBOX");
    // Changes in both, so the daemon's first pass observes A, then C (a keyword the
    // Maildir does not carry: nothing changes in A's Maildir, which would bring A into
    // the next pass by itself).
    env.dovecot.add_flags("alice", "A", 1, "$Soak");
    env.seed("C", "d");
    let daemon = Daemon::start_with(&env, &[("SYNCMAIL_PAUSE", "observed:A=3000")]);
    wait_until(&daemon, Duration::from_secs(30), "the pass at A", || {
        daemon.log().contains("pause point \"observed:A\"")
    });
    env.dovecot.move_uid("alice", "A", 1, "C");
    wait_until(&daemon, Duration::from_secs(60), "the file follows", || {
        md::messages(&env.folder("C")).contains_key(&key)
            || md::messages(&env.folder("C")).len() > 2
    });
    std::thread::sleep(Duration::from_secs(1));
    daemon.stop();
    assert!(
        md::messages(&env.folder("C")).contains_key(&key),
        "the file moved, not a second download: {:?}",
        md::messages(&env.folder("C"))
    );
    env.sync_ok();
    let (server, local) = copies(&env, &["A", "C"]);
    let want: Vec<(String, String)> = ["c", "d", "m"]
        .iter()
        .map(|id| (format!("<{id}@test>"), "C".to_owned()))
        .collect();
    assert_eq!((server, local), (want.clone(), want));
}

/// The hour on 9786e9e (seed 20261209, account b): an upload interrupted by a kill whose
/// folder the phone then deleted halted that folder ("an interrupted append could not be
/// resolved: ... no longer on the server"), and its open intent then refused every
/// change of the folder's state ("has 1 open intents; resolve them first"), for good.
/// The intent is moot now: the file stays, and rule 9 keeps the folder that holds it.
#[test]
fn rule_1_an_interrupted_append_into_a_folder_deleted_since_is_let_go() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "A");
    env.sync_ok();
    md::add(
        &env.folder("A"),
        "1700000000.P1Q1.host",
        "S",
        &crate::support::dovecot::message("n", "n@test", "new here"),
    );
    let crashed = env.run("sync", &[], &[("SYNCMAIL_FAULT", "before-append")]);
    assert!(!crashed.status.success(), "the fault point was reached");
    env.dovecot
        .doveadm(&["mailbox", "delete", "-u", "alice", "A"], None);
    let out = env.sync(&[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("could not be resolved"), "{said}");
    assert!(!said.contains("open intents"), "{said}");
    assert!(said.contains("A: deleted on the server"), "{said}");
    assert!(
        md::messages(&env.folder("A")).contains_key("1700000000.P1Q1.host"),
        "the file stays: {said}"
    );
    // The user moves it on as told; it reaches the server once, and the folder goes.
    std::fs::create_dir_all(env.folder("B").join("cur")).unwrap();
    for sub in ["new", "tmp"] {
        std::fs::create_dir_all(env.folder("B").join(sub)).unwrap();
    }
    move_file(&env, "1700000000.P1Q1.host", "A", "B");
    env.sync_ok();
    env.sync_ok();
    assert!(!env.folder("A").exists());
    let (server, local) = copies(&env, &["B"]);
    let one = vec![("<n@test>".to_owned(), "B".to_owned())];
    assert_eq!((server, local), (one.clone(), one), "{said}");
}

/// The hour on commit aeaa0d2: a move interrupted by a kill whose source folder the
/// other device then deleted halted that folder ("an interrupted move could not be
/// resolved: SELECT failed: Mailbox doesn't exist"), for good. The intent is moot now,
/// and the pass sees the folder gone (rule 9); nothing is halted, nothing lost.
#[test]
fn rule_1_an_interrupted_move_out_of_a_folder_deleted_since_is_let_go() {
    let (env, _) = move_interrupted_then_folder_deleted(&["m"], "A");
    let out = env.sync(&[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("could not be resolved"), "{said}");
    // The client moved its only file away: rule 9 removes the empty Maildir folder.
    assert!(!env.folder("A").exists(), "{said}");
    env.sync_ok();
    // The server copy went with its folder; the file the user moved is uploaded.
    let (server, local) = copies(&env, &["B"]);
    let one = vec![("<m@test>".to_owned(), "B".to_owned())];
    assert_eq!((server, local), (one.clone(), one), "{said}");
}

/// Seed 20261205, a 3-minute run on commit cf3477f, t=52 s: the phone moved a message
/// into INBOX while INBOX was renumbered (a new UIDVALIDITY). The pass mirrored the move
/// (the file renamed into INBOX, paired with its new UID) and then re-paired INBOX from
/// the base it had read before the move, which forgot that pair: the next pass downloaded
/// the message and uploaded the file, two copies. Moves into or out of a folder being
/// re-paired now wait for the pass after the re-pairing (rule 13 first).
#[test]
fn rule_13_a_move_into_a_folder_being_renumbered_stays_one_message() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "A");
    env.seed("A", "m");
    env.seed("INBOX", "x");
    env.sync_ok();
    env.dovecot.set_uidvalidity("alice", "INBOX", 12345);
    env.dovecot.move_uid("alice", "A", 1, "INBOX");
    env.sync_ok();
    env.sync_ok();
    env.sync_ok();
    let (server, local) = copies(&env, &["A", "INBOX"]);
    let two = vec![
        ("<m@test>".to_owned(), "INBOX".to_owned()),
        ("<x@test>".to_owned(), "INBOX".to_owned()),
    ];
    assert_eq!(server, two, "one copy of m on the server");
    assert_eq!(local, two);
    env.assert_quiet();
}

/// Seed 20261207, a 3-minute run on commit 3618304, t=126 s: the phone moved a message
/// out of INBOX while INBOX was renumbered. The re-pairing could not confirm its pair
/// (gone from INBOX's new listing) and kept the file there, local-only, while the moved
/// copy was downloaded into its new folder: two copies. An unconfirmed pair whose
/// Message-ID and size arrive in exactly one other folder is now a move.
#[test]
fn rule_13_a_move_out_of_a_folder_being_renumbered_stays_one_message() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "B");
    // Ten messages, so one unconfirmed pair is within the re-pairing's 10% (rule 13).
    let ids: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    for id in &ids {
        env.seed("INBOX", id);
    }
    env.sync_ok();
    let key = env.key_of("INBOX", "m0");
    env.dovecot.set_uidvalidity("alice", "INBOX", 12345);
    env.dovecot.move_uid("alice", "INBOX", 1, "B");
    let summary = env.sync_ok();
    assert!(
        summary.contains("fetched 0"),
        "moved, not downloaded: {summary}"
    );
    env.sync_ok();
    let (server, local) = copies(&env, &["INBOX", "B"]);
    assert_eq!(server, local);
    assert_eq!(
        server
            .iter()
            .filter(|(id, _)| id == "<m0@test>")
            .collect::<Vec<_>>(),
        vec![&("<m0@test>".to_owned(), "B".to_owned())]
    );
    assert_eq!(server.len(), 10);
    assert!(
        md::messages(&env.folder("B")).contains_key(&key),
        "the file followed"
    );
    env.assert_quiet();
}

/// Seed 20261205, the 3-minute run in CI on 71c9f28: the phone moved one of INBOX's two
/// messages into a folder it had just made while INBOX was renumbered. One of two pairs
/// unconfirmed halted INBOX (rule 13); the moved copy was downloaded into the new folder,
/// and the printed `--confirm-repair` kept the file in INBOX local-only: two copies. The
/// message arrives in exactly one other folder, so the pair is a move: no halt.
#[test]
fn rule_13_a_move_out_of_a_small_folder_being_renumbered_into_a_new_folder_is_a_move() {
    let env = SyncEnv::new("");
    env.seed("INBOX", "m0");
    env.seed("INBOX", "m1");
    env.sync_ok();
    let key = env.key_of("INBOX", "m0");
    env.dovecot.set_uidvalidity("alice", "INBOX", 12345);
    env.dovecot.create_mailbox("alice", "Filed");
    env.dovecot.move_uid("alice", "INBOX", 1, "Filed");
    let out = env.sync(&[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("halted"), "{said}");
    env.sync_ok();
    let (server, local) = copies(&env, &["INBOX", "Filed"]);
    let both = vec![
        ("<m0@test>".to_owned(), "Filed".to_owned()),
        ("<m1@test>".to_owned(), "INBOX".to_owned()),
    ];
    assert_eq!((server, local), (both.clone(), both));
    assert!(
        md::messages(&env.folder("Filed")).contains_key(&key),
        "the file followed"
    );
    env.assert_quiet();
}

/// The hour on commit cf3477f: a move interrupted by a kill whose destination folder the
/// other device then deleted halted the source folder for good ("an interrupted move
/// could not be resolved: UID MOVE failed: Mailbox doesn't exist"), so its messages were
/// never synced again. The intent is let go; the message stays where it is.
#[test]
fn rule_1_an_interrupted_move_into_a_folder_deleted_since_is_let_go() {
    let (env, key) = move_interrupted_then_folder_deleted(&["m", "n"], "B");
    let out = env.sync(&[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("could not be resolved"), "{said}");
    assert!(!said.contains("halted"), "{said}");
    // Nothing of the user's is gone: the file is where they put it, n still syncs.
    assert!(md::messages(&env.folder("B")).contains_key(&key));
    assert!(
        copies(&env, &["A"])
            .1
            .iter()
            .any(|(id, _)| id == "<n@test>")
    );
}

/// Seed `ids` in A, sync, move m's file from A to B, crash the pass right after it
/// journaled the server move (`after-intent`), then delete `deleted` on the server as
/// another device would. Returns the environment and m's key.
fn move_interrupted_then_folder_deleted(ids: &[&str], deleted: &str) -> (SyncEnv, String) {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "A");
    env.dovecot.create_mailbox("alice", "B");
    for id in ids {
        env.seed("A", id);
    }
    env.sync_ok();
    let key = env.key_of("A", "m");
    move_file(&env, &key, "A", "B");
    let crashed = env.run("sync", &[], &[("SYNCMAIL_FAULT", "after-intent")]);
    assert!(!crashed.status.success(), "the fault point was reached");
    env.dovecot
        .doveadm(&["mailbox", "delete", "-u", "alice", deleted], None);
    (env, key)
}

/// The CI run's 3-minute soak on commit f1ac544 (seed 20261205): the mail client moved a
/// message from one folder to another while the phone made a folder and moved the server
/// copy into it, after the pass had listed the folders. The pass saw the message gone
/// from both sides of its folder and the file arrived in another: it forgot the pair and
/// uploaded the file, and the next pass downloaded the phone's copy from the new folder:
/// one message in two folders. Now such a pass lists the folders again first, sees the
/// new folder's arrival, and the file follows the server's move.
#[test]
fn a_server_move_into_a_folder_made_after_the_listing_beside_a_local_move_is_one_message() {
    let (env, key) = m_synced("connections = 1\n", &["Work", "Projects"], "Work");
    move_file(&env, &key, "Work", "Projects");
    // Past the timestamp granularity, so the pass reads the Maildir as stable (rule 6).
    std::thread::sleep(Duration::from_millis(200));
    let summary = pass_paused(&env, "checked=3000", 1, || {
        env.dovecot.create_mailbox("alice", "Filtered");
        env.dovecot.move_uid("alice", "Work", 1, "Filtered");
    });
    assert!(
        summary.contains("fetched 0") && summary.contains("appended 0"),
        "no download, no upload: {summary}"
    );
    let want = vec![("<m@test>".to_owned(), "Filtered".to_owned())];
    assert_eq!(
        copies(&env, &["Work", "Projects", "Filtered"]),
        (want.clone(), want),
        "{summary}"
    );
    assert!(md::messages(&env.folder("Filtered")).contains_key(&key));
    env.assert_quiet();
}

/// The hour on commit 85f10ea (seed 20261209, t=3473 s): the phone moved a message while
/// the mail client made a folder and moved the file into it, both after the pass listed
/// the folders. The pass saw the pair gone from both sides and the phone's copy arrive,
/// but not the file, in a folder it had not listed: it downloaded the copy, and the next
/// pass uploaded the file from the new folder. Now such a pass lists the folders again,
/// makes the client's folder on the server, and the file follows the server's move.
#[test]
fn a_server_move_beside_a_local_move_into_a_folder_made_after_the_listing_is_one_message() {
    let (env, key) = m_synced("connections = 1\n", &["Work", "Filtered"], "Work");
    env.dovecot.move_uid("alice", "Work", 1, "Filtered");
    // After the pass listed the local folders and observed Filtered (first, in name
    // order), before it observes Work.
    let summary = pass_paused(&env, "observed:Filtered=2000", 1, || {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(env.folder("Fresh").join(sub)).unwrap();
        }
        move_file(&env, &key, "Work", "Fresh");
    });
    assert!(summary.contains("appended 0"), "no upload: {summary}");
    let want = vec![("<m@test>".to_owned(), "Filtered".to_owned())];
    let folders = ["Work", "Filtered", "Fresh"];
    assert_eq!(
        copies(&env, &folders),
        (want.clone(), want.clone()),
        "{summary}"
    );
    assert!(md::messages(&env.folder("Filtered")).contains_key(&key));
    // And it stays one message.
    let again = env.sync_ok();
    assert!(again.contains("appended 0"), "{again}");
    assert_eq!(copies(&env, &folders), (want.clone(), want), "{again}");
}

/// The same with the phone's move into a folder the pass had already observed: the
/// second look at every folder sees it there.
#[test]
fn a_server_move_into_a_folder_already_observed_beside_a_local_move_is_one_message() {
    let (env, key) = m_synced(
        "connections = 1\n",
        &["Archive", "Projects", "Work"],
        "Work",
    );
    move_file(&env, &key, "Work", "Projects");
    // New mail in Archive, so the pass observes it (first: folders go in name order)
    // rather than finding it still.
    env.seed("Archive", "a");
    std::thread::sleep(Duration::from_millis(200));
    // The file arrived in Projects while Work still pairs it: the pass looks at every
    // folder again, and the phone moves in that second look, after Archive.
    let summary = pass_paused(&env, "observed:Archive=2000", 2, || {
        env.dovecot.move_uid("alice", "Work", 1, "Archive");
    });
    assert!(
        summary.contains("fetched 1 ") && summary.contains("appended 0"),
        "a only, no upload: {summary}"
    );
    let (server, local) = copies(&env, &["Archive", "Projects", "Work"]);
    let want = vec![
        ("<a@test>".to_owned(), "Archive".to_owned()),
        ("<m@test>".to_owned(), "Archive".to_owned()),
    ];
    assert_eq!((server, local), (want.clone(), want), "{summary}");
    assert!(md::messages(&env.folder("Archive")).contains_key(&key));
    env.assert_quiet();
}

/// The 15-minute soak on commit 2aff00c (seed 20261209, t=815 s): the mail client moved
/// a message from one folder to another while the phone moved the server copy to a third.
/// That pass had already looked at every folder again, and the client moved the file a
/// second time while it looked: the pass read the file in the first folder it was moved
/// to and again in the second. An arrival in two folders matched no move, so the file
/// was uploaded and the phone's copy downloaded: two messages. Now the arrival stays only
/// where the file is, and the file follows the server's move.
#[test]
fn a_file_moved_again_while_the_pass_reads_follows_the_servers_move() {
    let (env, key) = m_synced(
        "connections = 1\n",
        &["Alpha", "Beta", "Gamma", "Work"],
        "Work",
    );
    move_file(&env, &key, "Work", "Beta");
    // New mail in Alpha, so the pass observes it (first: folders go in name order).
    env.seed("Alpha", "a");
    std::thread::sleep(Duration::from_millis(200));
    let summary = env.sync_paused_steps(
        "observed:Alpha=1500;observed:Beta=1500",
        &[],
        vec![
            // The first look sees the file arrive in Beta while Work still pairs it, and
            // looks at every folder (see the tests above). In that second look, after
            // Alpha was read: the phone's move is not seen, so the pass lists the folders
            // and looks again, twice, as from the start. New mail in Gamma, so those
            // looks read it.
            (
                "observed:Alpha",
                2,
                Box::new(|| {
                    env.dovecot.move_uid("alice", "Work", 1, "Alpha");
                    env.seed("Gamma", "g");
                }),
            ),
            // In the last look, after Beta was read: the client moves the file on.
            (
                "observed:Beta",
                4,
                Box::new(|| move_file(&env, &key, "Beta", "Gamma")),
            ),
        ],
    );
    assert!(summary.contains("appended 0"), "no upload: {summary}");
    let (server, local) = copies(&env, &["Alpha", "Beta", "Gamma", "Work"]);
    let want = vec![
        ("<a@test>".to_owned(), "Alpha".to_owned()),
        ("<g@test>".to_owned(), "Gamma".to_owned()),
        ("<m@test>".to_owned(), "Alpha".to_owned()),
    ];
    assert_eq!((server, local), (want.clone(), want), "{summary}");
    assert!(md::messages(&env.folder("Alpha")).contains_key(&key));
    env.assert_quiet();
}

/// Another device deleted the message while the mail client moved it: no arrival
/// anywhere, even on a second look over a fresh listing, nor in the next pass (the
/// upload waits one, in case the message moved again after the relist). The client's
/// move stands (a deletion against a change keeps the message, rule 11): one copy,
/// where the client put it.
#[test]
fn rule_11_a_server_deletion_beside_a_local_move_keeps_the_moved_message() {
    let (env, key) = m_synced("connections = 1\n", &["Work", "Projects"], "Work");
    move_file(&env, &key, "Work", "Projects");
    env.dovecot.expunge("alice", "Work", 1);
    std::thread::sleep(Duration::from_millis(200));
    let first = env.sync_ok();
    assert!(first.contains("appended 0"), "the upload waits: {first}");
    let summary = env.sync_ok();
    assert!(summary.contains("appended 1"), "{summary}");
    let want = vec![("<m@test>".to_owned(), "Projects".to_owned())];
    assert_eq!(
        copies(&env, &["Work", "Projects"]),
        (want.clone(), want),
        "{summary}"
    );
    env.assert_quiet();
}

/// Seed 20261209, the hour on 71c9f28: the phone deleted `Kept` with its mail; rule 9 kept
/// the Maildir folder, which still held a message, and no pass looks at it since. The mail
/// client then moved a message into it while the phone moved the server copy to another
/// folder. The pass forgot the pair (gone from both sides of its folder) and downloaded
/// the phone's copy, and the file in `Kept` was a second copy (uploaded when the client
/// later moved it on). The server's folder wins, as for any two moves of one message:
/// the file follows it out of the kept folder.
#[test]
fn rule_9_a_move_into_a_folder_the_server_deleted_beside_a_server_move_is_one_message() {
    let (env, key) = m_synced("", &["Work", "Kept", "Archive"], "Work");
    env.seed("Kept", "k");
    env.sync_ok();
    env.dovecot
        .doveadm(&["mailbox", "delete", "-u", "alice", "Kept"], None);
    let kept = env.sync(&[]);
    let said = String::from_utf8_lossy(&kept.stderr);
    assert!(said.contains("Kept: deleted on the server"), "{said}");
    move_file(&env, &key, "Work", "Kept");
    env.dovecot.move_uid("alice", "Work", 1, "Archive");
    let out = env.sync(&[]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("fetched 0"), "moved, not downloaded: {said}");
    assert!(said.contains("the file follows the server"), "{said}");
    env.sync(&[]);
    let want = vec![("<m@test>".to_owned(), "Archive".to_owned())];
    let (server, local) = copies(&env, &["Work", "Archive"]);
    assert_eq!((server, local), (want.clone(), want), "{said}");
    assert!(md::messages(&env.folder("Archive")).contains_key(&key));
    assert!(
        !md::messages(&env.folder("Kept")).contains_key(&key),
        "not left behind as a second copy"
    );
    // The kept folder still holds what it held, for the user to look at (rule 9).
    assert_eq!(md::messages(&env.folder("Kept")).len(), 1);
}

/// Seed 20261209, the hour on 85f10ea: the phone moved a message during a pass over every
/// folder, after the pass had read its folder from the changed pairs alone (QRESYNC and
/// the Maildir's stamp) and before it observed the destination. The check for a move
/// made mid-pass looked only at the pairs the pass had read, so the arrival was
/// downloaded; the mail client's move of the file a few seconds later was then uploaded:
/// two copies. The pairs such a folder did not read are looked up in the state.
#[test]
fn a_server_move_mid_pass_out_of_a_folder_read_from_its_changes_is_not_downloaded() {
    let (env, key) = m_synced("connections = 1\n", &["Alpha", "Beta", "Gamma"], "Alpha");
    env.seed("Alpha", "n");
    env.seed("Beta", "b");
    env.sync_ok();
    env.sync_ok();
    std::thread::sleep(Duration::from_millis(300));
    env.sync_ok();
    // A change in each, so the pass reads them (Alpha from that change alone) rather
    // than finding them still; the phone moves m after Alpha was observed, before Beta.
    for (folder, id) in [("Alpha", "n@test"), ("Beta", "b@test")] {
        let uid = env.dovecot.uid_of("alice", folder, id);
        env.dovecot.add_flags("alice", folder, uid, "\\Flagged");
    }
    let summary = pass_paused(&env, "observed:Alpha=2000", 1, || {
        env.dovecot.move_uid("alice", "Alpha", 1, "Beta");
    });
    assert!(
        summary.contains("fetched 0"),
        "not downloaded yet: {summary}"
    );
    // The mail client files the message meanwhile.
    move_file(&env, &key, "Alpha", "Gamma");
    let again = env.sync_ok();
    assert!(again.contains("appended 0"), "no upload: {again}");
    env.sync_ok();
    m_only_in(&env, &["Alpha", "Beta", "Gamma"], "Beta", &again);
    assert!(
        md::messages(&env.folder("Beta")).contains_key(&key),
        "the file followed"
    );
}

/// Found reviewing the fix above: the same message (Message-ID and size) in INBOX and in
/// Lists; INBOX is renumbered while the phone moves INBOX's copy into a new folder and
/// expunges the one in Lists. The arrival could be either one's: no evidence that
/// INBOX's pair moved out, so the re-pairing halts as rule 13 says, rather than keep the
/// file local-only without a word.
#[test]
fn rule_13_a_move_out_that_could_be_another_folders_is_no_evidence_for_the_repairing() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "Lists");
    env.seed("INBOX", "m0");
    env.seed("INBOX", "m1");
    env.seed("Lists", "m0");
    env.sync_ok();
    env.dovecot.set_uidvalidity("alice", "INBOX", 12345);
    env.dovecot.create_mailbox("alice", "Filed");
    env.dovecot.move_uid("alice", "INBOX", 1, "Filed");
    env.dovecot.expunge("alice", "Lists", 1);
    let out = env.sync(&[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("syncmail sync t --folder INBOX --confirm-repair"),
        "{said}"
    );
}

/// Seed 20261209, the hour on b4cbcad (account b, t=3557 s): the same as the test above
/// with the source folder found unchanged, in a pass that looked at every folder again
/// because the client had filed another message; such a folder is not read at all. Its
/// pairs are looked up in the state too.
#[test]
fn a_server_move_mid_pass_out_of_a_folder_found_unchanged_is_not_downloaded() {
    let (env, key) = m_synced(
        "connections = 1\n",
        &["Alpha", "Beta", "Delta", "Epsilon", "Gamma"],
        "Alpha",
    );
    env.seed("Delta", "n");
    env.sync_ok();
    env.sync_ok();
    std::thread::sleep(Duration::from_millis(300));
    env.sync_ok();
    // The mail client files n: the first look sees it arrive in Epsilon while Delta pairs
    // it, and looks at every folder again, Alpha too, which it finds unchanged.
    let n = env.key_of("Delta", "n");
    move_file(&env, &n, "Delta", "Epsilon");
    let summary = pass_paused(&env, "observed:Alpha=2000", 1, || {
        env.dovecot.move_uid("alice", "Alpha", 1, "Beta");
    });
    assert!(
        summary.contains("fetched 0"),
        "not downloaded yet: {summary}"
    );
    move_file(&env, &key, "Alpha", "Gamma");
    let again = env.sync_ok();
    assert!(again.contains("appended 0"), "no upload: {again}");
    env.sync_ok();
    m_only_in(
        &env,
        &["Alpha", "Beta", "Gamma", "Delta", "Epsilon"],
        "Beta",
        &format!("first: {summary}\nagain: {again}"),
    );
}

/// Seed 20261209, the hour on 27a2a15 (account a, t=3321 s): the phone made a folder and
/// moved a message into it after the pass listed the folders, and the mail client moved
/// the file to another folder after the pass scanned its own. The pass deleted the file
/// for the server's deletion, found it gone, and still dropped the pair and logged the
/// deletion as carried: nothing was left to see the move from, so the file was uploaded
/// and the phone's copy downloaded. A file that left its folder before its deletion was
/// not deleted (rule 14): the pair stays, and the next pass sees the move.
#[test]
fn rule_14_a_file_moved_away_before_its_deletion_is_not_taken_as_deleted() {
    let (env, key) = m_synced("connections = 1\n", &["Projects", "Work"], "Work");
    env.seed("Work", "w");
    env.sync_ok();
    // A change in Work, so the pass looks at it.
    let w = env.dovecot.uid_of("alice", "Work", "w@test");
    env.dovecot.add_flags("alice", "Work", w, "\\Flagged");
    let summary = env.sync_paused_steps(
        "checked=1500;observed:Work=1500",
        &[],
        vec![
            (
                "checked",
                1,
                Box::new(|| {
                    env.dovecot.create_mailbox("alice", "Filtered");
                    env.dovecot.move_uid("alice", "Work", 1, "Filtered");
                }),
            ),
            (
                "observed:Work",
                1,
                Box::new(|| move_file(&env, &key, "Work", "Projects")),
            ),
        ],
    );
    m_settles_only_in(
        &env,
        &summary,
        &["Projects", "Work", "Filtered"],
        "Filtered",
    );
}

/// The hours on b4cbcad and 27a2a15 (seed 20261209; account b, t=2418 s): the pass spent
/// its one relist on the phone's move into a folder made after the listing, and the
/// phone moved the message again, into a folder made after the relist, while the mail
/// client had moved the file. The pass took the pair as deleted on the server and moved
/// locally, and uploaded the file; the next pass downloaded the phone's copy: two
/// messages. Now the pair waits a pass (`wait_for_unseen_moves`), and the next pass,
/// over a fresh listing, sees both ends of the move.
#[test]
fn a_server_move_into_a_folder_made_after_the_relist_beside_a_local_move_is_one_message() {
    let (env, key) = m_synced("connections = 1\n", &["Alpha", "Beta"], "Alpha");
    env.sync_ok();
    move_file(&env, &key, "Alpha", "Beta");
    let summary = relist_spent_on_a_move_to_x(&env, || {
        env.dovecot.create_mailbox("alice", "Y");
        let uid = env.dovecot.uid_of("alice", "X", "m@test");
        env.dovecot.move_uid("alice", "X", uid, "Y");
    });
    m_settles_only_in(&env, &summary, &["Alpha", "Beta", "X", "Y"], "Y");
}

/// The mirror image (the hour on 27a2a15): the phone moved the message into a folder the
/// pass observed, while the mail client made a folder and moved the file into it after
/// the listing, and again after the relist. The pass downloaded the phone's copy, and the
/// next one uploaded the file. Now the download waits a pass, and the file follows the
/// server's move.
#[test]
fn a_local_move_into_a_folder_made_after_the_relist_beside_a_server_move_is_one_message() {
    let (env, key) = m_synced("connections = 1\n", &["Work", "Filtered"], "Work");
    env.dovecot.move_uid("alice", "Work", 1, "Filtered");
    let summary = file_moved_into_new_folders_twice(&env, &key);
    m_settles_only_in(
        &env,
        &summary,
        &["Work", "Filtered", "Fresh", "Later"],
        "Filtered",
    );
    assert!(md::messages(&env.folder("Filtered")).contains_key(&key));
}

/// The same beside a real conflict elsewhere (a review of the fix): the conflict makes the
/// relisted pass look at every folder a second time, which must not find the wait the
/// first look started already spent, and download the phone's copy after all.
#[test]
fn a_local_move_after_the_relist_beside_a_conflict_elsewhere_is_one_message() {
    let (env, key) = m_synced("connections = 1\n", &["Work", "Filtered", "Other"], "Work");
    env.seed("Other", "n");
    env.sync_ok();
    // A real conflict in Other: the phone deletes n, the client flags it.
    let n = env.key_of("Other", "n");
    md::set_flags(&env.folder("Other"), &n, "FS");
    let uid = env.dovecot.uid_of("alice", "Other", "n@test");
    env.dovecot.expunge("alice", "Other", uid);
    env.dovecot.move_uid("alice", "Work", 1, "Filtered");
    let summary = file_moved_into_new_folders_twice(&env, &key);
    m_settles_only_in(
        &env,
        &summary,
        &["Work", "Filtered", "Fresh", "Later", "Other"],
        "Filtered",
    );
}

/// A pair that waited a pass and is still gone from both sides was deleted there and
/// moved here: the file is uploaded then, once, and the next passes leave it be (a
/// one-shot sync run again gets there too: the wait is in the state).
#[test]
fn a_local_move_whose_server_copy_was_deleted_after_the_relist_is_uploaded_after_one_wait() {
    let (env, key) = m_synced("connections = 1\n", &["Alpha", "Beta"], "Alpha");
    env.sync_ok();
    move_file(&env, &key, "Alpha", "Beta");
    let summary = relist_spent_on_a_move_to_x(&env, || {
        let uid = env.dovecot.uid_of("alice", "X", "m@test");
        env.dovecot.expunge("alice", "X", uid);
    });
    assert!(
        summary.contains("appended 0"),
        "the upload waits: {summary}"
    );
    let again = env.sync_ok();
    assert!(again.contains("appended 1"), "then it is uploaded: {again}");
    let last = env.sync_ok();
    assert!(last.contains("appended 0"), "once: {last}");
    m_only_in(
        &env,
        &["Alpha", "Beta", "X"],
        "Beta",
        &format!("first: {summary}\nagain: {again}"),
    );
}

/// The hour on b4cbcad (seed 20261209, account a, t=29 s): a folder renamed on the
/// server right after its only paired message was expunged holds none of its pairs, so
/// the rename was not confirmed: rule 9 kept the old Maildir folder with the message the
/// phone deleted, and no deletion was logged. The server's QRESYNC answer for the new
/// name, every pair expunged since the stored HIGHESTMODSEQ, confirms it now.
#[test]
fn a_folder_renamed_after_its_only_message_was_expunged_is_a_rename() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "A");
    env.seed("A", "m");
    env.sync_ok();
    let uid = env.dovecot.uid_of("alice", "A", "m@test");
    env.dovecot.expunge("alice", "A", uid);
    env.seed("A", "n");
    env.dovecot
        .doveadm(&["mailbox", "rename", "-u", "alice", "A", "B"], None);
    let out = env.sync_ok();
    let log = env.log(&[]);
    assert!(
        out.contains("A: renamed on the server to B; moved locally"),
        "{out}\n{log}"
    );
    assert!(!env.folder("A").exists(), "{out}");
    assert!(log.contains("deleted"), "{out}\n{log}");
}

/// Seed 20261205, the 3 minutes in CI on d13caf0 (account a, t=61.7-62.8 s): the phone
/// moved a message from `Local/57` to `Archive/2024`, and the daemon's next pass, over
/// the folders NOTIFY had named by then (`Archive/2024` and others, not `Local/57`),
/// downloaded it as new beside the file still paired in `Local/57`; the client then
/// moved that file into a new folder, which was uploaded: two copies. A pass over some
/// folders now asks where the state pairs an arriving message outside them; gone from
/// there, the download waits, and the next pass covers both folders and sees a move.
/// Here IDLE on C alone starts a pass over C while the move's source A is not looked at
/// (a sweep every hour).
#[test]
fn a_server_move_into_the_folder_a_daemon_pass_covers_from_one_it_does_not_is_a_move() {
    let (env, key) = m_in_a_c_in_c_daemon_without_notify("C");
    let daemon = Daemon::start(&env);
    wait_until(&daemon, Duration::from_secs(20), "the first pass", || {
        daemon.log().contains("folders: fetched")
    });
    std::thread::sleep(Duration::from_secs(1));
    env.dovecot.move_uid("alice", "A", 1, "C");
    wait_until(&daemon, Duration::from_secs(30), "m in C", || {
        md::messages(&env.folder("C")).len() > 1
    });
    std::thread::sleep(Duration::from_secs(1));
    daemon.stop();
    assert!(
        md::messages(&env.folder("C")).contains_key(&key)
            && md::messages(&env.folder("A")).is_empty(),
        "the file moved, not a second download: A {:?}, C {:?}",
        md::messages(&env.folder("A")),
        md::messages(&env.folder("C"))
    );
    env.sync_ok();
    let want: Vec<(String, String)> = ["c", "m"]
        .iter()
        .map(|id| (format!("<{id}@test>"), "C".to_owned()))
        .collect();
    assert_eq!(copies(&env, &["A", "C"]), (want.clone(), want));
}

/// Folders A (holding m) and C (holding c), synced once, on a Dovecot without NOTIFY,
/// for a daemon with IDLE on `idle` alone, one connection and a sweep every hour; m's
/// local key.
fn m_in_a_c_in_c_daemon_without_notify(idle: &str) -> (SyncEnv, String) {
    let dovecot = Dovecot::start_setup(Setup {
        users: &[("alice", DEFAULT_PASSWORD)],
        cert: ServerCert::For(LOCAL_NAMES),
        extra_config: WITHOUT_NOTIFY,
    });
    let env = SyncEnv::with_dovecot(
        dovecot,
        &format!("poll_interval = \"1h\"\nidle = [\"{idle}\"]\nconnections = 1\n"),
    );
    env.dovecot.create_mailbox("alice", "A");
    env.dovecot.create_mailbox("alice", "C");
    env.seed("A", "m");
    env.seed("C", "c");
    env.sync_ok();
    let key = env.key_of("A", "m");
    (env, key)
}

/// Seed 20261209, the 30 minutes on 2e56a93, t=1369-1371 s: the mail client deleted a
/// file in `Local/1240`, and two seconds later, before a pass carried it, the phone renamed
/// the folder to `Renamed/3528`. The pass that found the rename moved the Maildir folder
/// with its state, and carried the deletion there, logged under the folder's new name
/// (the soak looked for it under the old one: its check now follows renames).
#[test]
fn a_local_deletion_not_yet_carried_when_the_server_renames_its_folder_is_carried_and_logged() {
    let env = SyncEnv::new("");
    env.dovecot.create_mailbox("alice", "A");
    env.seed("A", "m");
    env.seed("A", "n");
    env.sync_ok();
    let key = env.key_of("A", "m");
    std::fs::remove_file(md::path_of(&env.folder("A"), &key)).unwrap();
    env.dovecot
        .doveadm(&["mailbox", "rename", "-u", "alice", "A", "B"], None);
    let out = env.sync_ok();
    let (server, local) = copies(&env, &["A", "B"]);
    let only_n = vec![("<n@test>".to_owned(), "B".to_owned())];
    assert_eq!((&server, &local), (&only_n, &only_n), "{out}");
    let log = env.log(&[]);
    assert!(
        log.lines()
            .any(|l| l.contains(&key) && l.contains("deleted") && l.contains(" B ")),
        "{out}\n{log}"
    );
}

/// `syncmail sync` (every folder in Alpha, Beta, ...) during which the phone makes X and
/// moves m out of Alpha into it after the listing (the pass relists for it), then does
/// `second` after the relist; its summary.
fn relist_spent_on_a_move_to_x(env: &SyncEnv, second: impl FnOnce()) -> String {
    env.sync_paused_steps(
        "checked=1500",
        &[],
        vec![
            (
                "checked",
                1,
                Box::new(|| {
                    env.dovecot.create_mailbox("alice", "X");
                    env.dovecot.move_uid("alice", "Alpha", 1, "X");
                }),
            ),
            ("checked", 2, Box::new(second)),
        ],
    )
}

/// `syncmail sync` during which the mail client makes the folder Fresh and moves the file
/// of `key` from Work into it, then (after the relist) Later, and moves it on: each time
/// after the pass listed the local folders and observed Filtered (first, in name order),
/// before it observes Work. Its summary.
fn file_moved_into_new_folders_twice(env: &SyncEnv, key: &str) -> String {
    let fresh = |name: &str, from: &str| {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(env.folder(name).join(sub)).unwrap();
        }
        move_file(env, key, from, name);
    };
    env.sync_paused_steps(
        "observed:Filtered=2000",
        &[],
        vec![
            ("observed:Filtered", 1, Box::new(|| fresh("Fresh", "Work"))),
            ("observed:Filtered", 2, Box::new(|| fresh("Later", "Fresh"))),
        ],
    )
}

/// Two more passes after the one that said `summary`, then m is in `folder` alone among
/// `folders` (see [`m_only_in`]).
fn m_settles_only_in(env: &SyncEnv, summary: &str, folders: &[&str], folder: &str) {
    let again = env.sync_ok();
    env.sync_ok();
    m_only_in(
        env,
        folders,
        folder,
        &format!("first: {summary}\nagain: {again}"),
    );
}

/// m is in `folder` alone among `folders`, once on each side, and both sides agree.
fn m_only_in(env: &SyncEnv, folders: &[&str], folder: &str, said: &str) {
    let (server, local) = copies(env, folders);
    let m: Vec<_> = server.iter().filter(|(id, _)| id == "<m@test>").collect();
    assert_eq!(
        m,
        vec![&("<m@test>".to_owned(), folder.to_owned())],
        "{said}"
    );
    assert_eq!(server, local);
}

/// The hour on d13caf0 (seed 20261209, t=1613-1614 s): the mail client moved a file from
/// `Server/3688` to `Local/2191` and the phone moved its server copy from `Server/3688` to
/// `Local/2620`, both after a pass over every folder had observed the two destinations
/// and before it observed the source. The pair was gone from both sides with no arrival
/// seen, taken as deleted on both and forgotten; the next pass uploaded the file and
/// downloaded the message: two copies. Such a pair now waits one pass, which sees both
/// moves (the file follows the server).
#[test]
fn a_pair_gone_from_both_sides_with_no_arrival_seen_waits_a_pass_for_its_moves() {
    let (env, key) = m_synced("connections = 1\n", &["A", "B", "S"], "S");
    // Something new in each, so the pass observes all three (A and B first, in order).
    for (folder, id) in [("A", "a"), ("B", "b"), ("S", "s")] {
        env.seed(folder, id);
    }
    let first = pass_paused(&env, "observed:B=3000", 1, || {
        move_file(&env, &key, "S", "A");
        env.dovecot.move_uid("alice", "S", 1, "B");
        // Past the timestamp granularity, so the pass reads S's Maildir as stable.
        std::thread::sleep(std::time::Duration::from_millis(200));
    });
    assert!(
        first.contains("fetched 3 ") && first.contains("appended 0"),
        "a, b and s only: {first}"
    );
    m_settles_only_in(&env, &first, &["A", "B", "S"], "B");
    assert!(
        md::messages(&env.folder("B")).contains_key(&key),
        "the client's file followed the server"
    );
    env.assert_quiet();
}

/// A deletion on both sides (the client's and the phone's) is the same sight as two
/// moves not seen yet: the pair waits one pass, then is forgotten, once, with nothing
/// copied back either way.
#[test]
fn a_deletion_on_both_sides_is_forgotten_after_one_wait() {
    let (env, key) = m_synced("", &["A"], "A");
    env.seed("A", "n");
    env.sync_ok();
    std::fs::remove_file(md::path_of(&env.folder("A"), &key)).unwrap();
    env.dovecot.expunge("alice", "A", 1);
    std::thread::sleep(Duration::from_millis(200));
    // A dry run shows what the pass does: it keeps the pair, and records no wait.
    let dry_run = || {
        let out = env.sync(&["--dry-run"]);
        assert_eq!(out.status.code(), Some(0));
        crate::support::stdout(&out)
    };
    let plan = dry_run();
    assert!(!plan.contains("forget UID"), "{plan}");
    let first = env.sync_ok();
    assert_eq!(env.pairs_in("A"), 2, "m's pair waits: {first}");
    let plan = dry_run();
    assert!(plan.contains("forget UID 1"), "{plan}");
    let again = env.sync_ok();
    assert_eq!(env.pairs_in("A"), 1, "then it is forgotten: {again}");
    let only_n = vec![("<n@test>".to_owned(), "A".to_owned())];
    assert_eq!(copies(&env, &["A"]), (only_n.clone(), only_n));
    env.assert_quiet();
    assert_eq!(env.pairs_in("A"), 1);
}

/// A folder held by rule 7 (too many deletions at once) still applies its other actions,
/// a pair's Forget among them, so a pair gone from both sides there waits its one pass
/// like anywhere else (2a8b916: skipping every held folder forgot it at once).
#[test]
fn rule_07_a_pair_gone_from_both_sides_waits_in_a_folder_held_for_its_deletions() {
    let (env, key) = m_synced("", &["A"], "A");
    for i in 0..19 {
        env.seed("A", &format!("n{i}"));
    }
    env.sync_ok();
    assert_eq!(env.pairs_in("A"), 20);
    std::fs::remove_file(md::path_of(&env.folder("A"), &key)).unwrap();
    for uid in 1..=16 {
        env.dovecot.expunge("alice", "A", uid);
    }
    std::thread::sleep(Duration::from_millis(200));
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(1), "held by rule 7");
    assert!(
        crate::support::stderr(&out).contains("would delete 15 of 20"),
        "{}",
        crate::support::stderr(&out)
    );
    assert_eq!(env.pairs_in("A"), 20, "m's pair waits in the held folder");
    assert_eq!(env.sync(&[]).status.code(), Some(1), "still held");
    assert_eq!(env.pairs_in("A"), 19, "then m's pair is forgotten");
    let out = env.sync(&["--confirm-delete"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&out)
    );
    assert_eq!(env.pairs_in("A"), 4);
    assert_eq!(md::messages(&env.folder("A")).len(), 4);
    env.assert_quiet();
}

/// [`a_pair_gone_from_both_sides_with_no_arrival_seen_waits_a_pass_for_its_moves`] in
/// the daemon, as the soak found it: its next pass, over the source folder, widens to
/// every folder (something leaves it) and sees both moves.
#[test]
fn a_daemon_pass_that_finds_a_pair_gone_from_both_sides_sees_its_moves_in_the_next() {
    let (env, key) = m_synced(
        "connections = 1\npoll_interval = \"1h\"\n",
        &["A", "B", "S"],
        "S",
    );
    for (folder, id) in [("A", "a"), ("B", "b"), ("S", "s")] {
        env.seed(folder, id);
    }
    let daemon = Daemon::start_with(&env, &[("SYNCMAIL_PAUSE", "observed:B=3000")]);
    wait_until(&daemon, Duration::from_secs(30), "the pass at B", || {
        daemon.log().contains("pause point \"observed:B\"")
    });
    move_file(&env, &key, "S", "A");
    env.dovecot.move_uid("alice", "S", 1, "B");
    wait_until(&daemon, Duration::from_secs(60), "the file follows", || {
        md::messages(&env.folder("B")).contains_key(&key)
    });
    // Time for a wrong upload or download to show, then stop.
    std::thread::sleep(Duration::from_secs(3));
    let log = daemon.log();
    daemon.stop();
    env.sync_ok();
    let (server, local) = copies(&env, &["A", "B", "S"]);
    let m: Vec<_> = server.iter().filter(|(id, _)| id == "<m@test>").collect();
    assert_eq!(m, vec![&("<m@test>".to_owned(), "B".to_owned())], "{log}");
    assert_eq!(server, local);
}

/// Seed 20261209, the hour on b12337a (account b, t=59-61 s): the client deleted a file
/// in `Lists/rust`; the pass carried the deletion, and the link was cut during its
/// `UID EXPUNGE`, which the server had done. The next pass's recovery found the message
/// gone and dropped the pair, but logged nothing: a deletion syncmail made, missing from
/// `syncmail log`. Recovery now logs what the interrupted pass would have.
#[test]
fn rule_01_a_deletion_interrupted_after_the_expunge_is_logged_by_its_recovery() {
    let (env, key) = m_synced("", &["A"], "A");
    env.seed("A", "n");
    env.sync_ok();
    std::fs::remove_file(md::path_of(&env.folder("A"), &key)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let crashed = env.run("sync", &[], &[("SYNCMAIL_FAULT", "after-expunge")]);
    assert!(!crashed.status.success(), "the fault point was reached");
    let ids: Vec<String> = env
        .dovecot
        .state("alice", "A")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["<n@test>"], "expunged before the crash");
    let out = env.sync_ok();
    let log = env.log(&[]);
    assert!(
        log.lines()
            .any(|l| l.contains(&key) && l.contains("deleted") && l.contains(" A ")),
        "{out}\n{log}"
    );
    let only_n = vec![("<n@test>".to_owned(), "A".to_owned())];
    assert_eq!(copies(&env, &["A"]), (only_n.clone(), only_n));
    env.assert_quiet();
}

/// The other window of the same gap: a local deletion carried to the server was logged
/// only with the pass's last commit, after its pair was dropped; a kill between the two
/// (here at the unlink of a server deletion later in the same plan) left it unlogged.
/// It is logged with the commit that drops its pair now.
#[test]
fn rule_01_a_deletion_carried_to_the_server_is_logged_before_the_pass_ends() {
    let (env, m) = m_synced("", &["A"], "A");
    env.seed("A", "n");
    env.seed("A", "o");
    env.sync_ok();
    std::fs::remove_file(md::path_of(&env.folder("A"), &m)).unwrap();
    let o = env.dovecot.uid_of("alice", "A", "o@test");
    env.dovecot.expunge("alice", "A", o);
    std::thread::sleep(Duration::from_millis(200));
    let crashed = env.run("sync", &[], &[("SYNCMAIL_FAULT", "after-unlink")]);
    assert!(!crashed.status.success(), "the fault point was reached");
    let out = env.sync_ok();
    let log = env.log(&[]);
    assert!(
        log.lines()
            .any(|l| l.contains(&m) && l.contains("deleted") && l.contains(" A ")),
        "{out}\n{log}"
    );
    let only_n = vec![("<n@test>".to_owned(), "A".to_owned())];
    assert_eq!(copies(&env, &["A"]), (only_n.clone(), only_n));
    env.assert_quiet();
}
