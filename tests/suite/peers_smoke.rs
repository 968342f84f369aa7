//! The peer-tool helpers work: the real mbsync and OfflineIMAP fill a Maildir from the
//! test Dovecot with the adoption scenario, leave the state adoption reads, and sync a
//! later change when run again.

use std::collections::BTreeSet;

use md5::{Digest, Md5};

use crate::support::Dovecot;
use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::peers::{self, MbsyncLayout, OfflineimapLayout, PeerRun, SHARED_ID};

/// Seed, then check every folder holds the seeded number of files and mirrors the server.
fn assert_filled(run: &PeerRun, dovecot: &Dovecot, seeded: &peers::AdoptionMail) {
    for (folder, count) in &seeded.folders {
        assert_eq!(
            md::messages(&run.folder(folder)).len(),
            *count,
            "{:?}: files in {folder} ({:?})\n{}",
            run.tool,
            run.folder(folder),
            run.output
        );
    }
    run.assert_mirrors(dovecot, "alice");
    let inbox = md::state(&run.folder("INBOX"));
    assert_eq!(inbox.iter().filter(|(id, _)| id == SHARED_ID).count(), 2);
    assert_eq!(inbox.iter().filter(|(id, _)| id.is_empty()).count(), 1);
    let flags: Vec<&str> = inbox.iter().map(|(_, f)| f.as_str()).collect();
    for want in ["F", "RS", "S", ""] {
        assert!(
            flags.contains(&want),
            "{:?}: no {want:?} in {flags:?}",
            run.tool
        );
    }
}

/// A change on the server reaches the Maildir when the tool runs again.
fn assert_runs_again(run: &PeerRun, dovecot: &Dovecot, again: fn(&PeerRun) -> String) {
    dovecot.seed(
        "alice",
        "INBOX",
        &message("later", "later@adoption.test", "arrived later"),
    );
    let server = dovecot.state("alice", "INBOX");
    let uid = dovecot
        .list("alice", "INBOX")
        .into_iter()
        .find(|(_, f)| f.is_empty())
        .map(|(uid, _)| uid)
        .expect("an unseen message");
    dovecot.add_flags("alice", "INBOX", uid, "\\Flagged");
    again(run);
    run.assert_mirrors(dovecot, "alice");
    let inbox = md::state(&run.folder("INBOX"));
    assert_eq!(inbox.len(), server.len(), "{:?}", run.tool);
    assert_eq!(
        inbox.iter().filter(|(_, f)| f == "F").count(),
        2,
        "{:?}: {inbox:?}",
        run.tool
    );
}

fn file_names(folder: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(folder.join(sub)).unwrap().flatten() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

/// The number after `,U=` in a peer tool's file name.
fn u_field(name: &str) -> u32 {
    let rest = &name[name.find(",U=").expect(",U= in the name") + 3..];
    let end = rest.find([',', ':']).unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

#[test]
fn mbsync_fills_a_maildir_and_runs_again() {
    let dovecot = Dovecot::start();
    let seeded = peers::seed_adoption_mail(&dovecot, "alice");
    let home = tempfile::tempdir().unwrap();
    let run = peers::mbsync_fill(&dovecot, "alice", &home.path().join("Mail"), home.path());
    assert_filled(&run, &dovecot, &seeded);
    assert!(run.folder("Entwürfe").ends_with("Entw&APw-rfe"));

    // What adoption reads: `.mbsyncstate` pairs far (server) with near (`,U=`) UIDs.
    let inbox = run.folder("INBOX");
    let state = std::fs::read_to_string(inbox.join(".mbsyncstate")).unwrap();
    let (header, entries) = state
        .split_once("\n\n")
        .expect("header, blank line, entries");
    assert!(header.starts_with("FarUidValidity "), "{state}");
    let near: BTreeSet<u32> = entries
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    let in_names: BTreeSet<u32> = file_names(&inbox).iter().map(|n| u_field(n)).collect();
    assert_eq!(near, in_names, "{state}");
    let uidvalidity = std::fs::read_to_string(inbox.join(".uidvalidity")).unwrap();
    assert_eq!(uidvalidity.lines().count(), 2, "{uidvalidity:?}");

    assert_runs_again(&run, &dovecot, peers::mbsync_run_again);
}

#[test]
fn offlineimap_fills_a_maildir_and_runs_again() {
    let dovecot = Dovecot::start();
    let seeded = peers::seed_adoption_mail(&dovecot, "alice");
    let home = tempfile::tempdir().unwrap();
    let run = peers::offlineimap_fill(&dovecot, "alice", &home.path().join("Mail"), home.path());
    assert_filled(&run, &dovecot, &seeded);

    // What adoption reads: `,U=` is the server UID, `,FMD5=` the MD5 of the local name.
    for (folder, _) in &seeded.folders {
        let dir = run.folder(folder);
        let local = dir.strip_prefix(&run.maildir).unwrap().to_str().unwrap();
        let fmd5 = format!(",FMD5={}", hex::encode(Md5::digest(local.as_bytes())));
        let names = file_names(&dir);
        assert!(names.iter().all(|n| n.contains(&fmd5)), "{fmd5}: {names:?}");
        let uids: BTreeSet<u32> = names.iter().map(|n| u_field(n)).collect();
        let server: BTreeSet<u32> = dovecot.list("alice", folder).iter().map(|r| r.0).collect();
        assert_eq!(uids, server, "{folder}");
    }
    let metadata = run.metadata.as_ref().unwrap();
    assert!(
        metadata
            .join("Account-alice/LocalStatus-sqlite/INBOX")
            .is_file()
    );

    assert_runs_again(&run, &dovecot, peers::offlineimap_run_again);
}

#[test]
fn the_other_layouts_fill_too() {
    let dovecot = Dovecot::start();
    let seeded = peers::seed_adoption_mail(&dovecot, "alice");

    let home = tempfile::tempdir().unwrap();
    let run = peers::mbsync_fill_with(
        &dovecot,
        "alice",
        &home.path().join("Maildir"),
        home.path(),
        MbsyncLayout::MaildirPlusPlus,
    );
    assert_filled(&run, &dovecot, &seeded);
    assert!(run.folder("Archive/2024").ends_with(".Archive.2024"));
    let state = run.metadata.as_ref().unwrap();
    assert!(state.join("Archive!2024").is_file(), "{state:?}");

    let home = tempfile::tempdir().unwrap();
    let run = peers::offlineimap_fill_with(
        &dovecot,
        "alice",
        &home.path().join("Mail"),
        home.path(),
        OfflineimapLayout {
            sep: '.',
            utf8_names: true,
        },
    );
    assert_filled(&run, &dovecot, &seeded);
    assert!(run.folder("Archive/2024").ends_with("Archive.2024"));
    assert!(run.folder("Entwürfe").ends_with("Entwürfe"));
}
