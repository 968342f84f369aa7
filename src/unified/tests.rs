//! Reconcile on real Maildirs, without a server: two POP3 accounts (whose INBOX is a
//! plain Maildir folder) merged into a unified folder, with races and crashes injected
//! between the steps.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::apply::{self, Folder, Sides};
use super::plan::{Action, Plan, Source};
use super::store::MapStore;
use super::*;
use crate::config::Dirs;
use crate::model::{AccountName, FolderName, MaildirKey};

struct Fixture {
    dir: tempfile::TempDir,
    config: Config,
}

fn fixture_at(unified: &Path) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut text = format!(
        "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n",
        root.display()
    );
    for name in ["work", "home"] {
        text.push_str(&format!(
            "\n[[account]]\nname = \"{name}\"\nkind = \"pop3\"\nhost = \"localhost\"\nuser = \"u\"\npassword_command = [\"true\"]\n"
        ));
    }
    text.push_str(&format!("\n[unified]\npath = \"{}\"\n", unified.display()));
    let config = crate::config::parse(&root.join("config.toml"), &text, &Dirs::default())
        .unwrap()
        .config;
    for name in ["work", "home"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(root.join("Mail").join(name).join("INBOX").join(sub)).unwrap();
        }
    }
    Fixture { dir, config }
}

fn fixture() -> Fixture {
    let f = fixture_at(Path::new("/nonexistent"));
    let unified = f.dir.path().join("Mail/Unified/INBOX");
    let mut config = f.config.clone();
    if let Some(u) = config.unified.as_mut() {
        u.path = unified;
    }
    Fixture { config, ..f }
}

impl Fixture {
    fn inbox(&self, account: &str) -> PathBuf {
        self.dir.path().join("Mail").join(account).join("INBOX")
    }

    fn unified(&self) -> PathBuf {
        self.config.unified.as_ref().unwrap().path.clone()
    }

    fn deliver(&self, account: &str, key: &str, body: &str) {
        std::fs::write(self.inbox(account).join("new").join(key), body).unwrap();
    }

    /// The unified folder and work's INBOX as scanned now: what a plan is applied to.
    fn sides_now(&self) -> Sides {
        let folder = |md: Maildir| Folder {
            scan: md.scan().unwrap(),
            md,
        };
        Sides {
            unified: folder(Maildir::open(self.unified()).unwrap()),
            sources: [(
                source("work"),
                folder(Maildir::open(self.inbox("work")).unwrap()),
            )]
            .into_iter()
            .collect(),
        }
    }

    fn reconcile(&self) -> Report {
        reconcile(&self.config, Options::default()).unwrap()
    }

    fn store(&self) -> MapStore {
        MapStore::open(&self.config.general.state_dir).unwrap()
    }

    /// Every file of a folder: (name in its subdirectory, contents).
    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(dir.join(sub)).unwrap() {
                let e = e.unwrap();
                out.push((
                    format!("{sub}/{}", e.file_name().to_string_lossy()),
                    std::fs::read_to_string(e.path()).unwrap(),
                ));
            }
        }
        out.sort();
        out
    }
}

fn source(account: &str) -> Source {
    Source {
        account: AccountName(account.into()),
        folder: FolderName("INBOX".into()),
    }
}

#[test]
fn links_new_mail_keeps_new_and_cur_and_is_quiet_afterwards() {
    let f = fixture();
    f.deliver("work", "1.M1P1.w", "one");
    std::fs::write(f.inbox("home").join("cur/2.M1P1.h:2,S"), "two").unwrap();
    let r = f.reconcile();
    assert_eq!(r.linked, 2, "{r}");
    let files = Fixture::files(&f.unified());
    assert_eq!(files.len(), 2);
    assert!(
        files
            .iter()
            .any(|(n, b)| n.starts_with("new/") && b == "one")
    );
    assert!(
        files
            .iter()
            .any(|(n, b)| n.starts_with("cur/") && n.ends_with(":2,S") && b == "two")
    );
    let r = f.reconcile();
    assert!(!r.changed(), "{r}");
    assert_eq!(Fixture::files(&f.unified()), files);
}

#[test]
fn rule_14_a_file_renamed_after_the_scan_is_rescanned_not_deleted() {
    let f = fixture();
    f.deliver("work", "1.M1P1.w", "one");
    f.reconcile();
    let u = Maildir::open(f.unified()).unwrap();
    let key = u.scan().unwrap().messages.keys().next().unwrap().clone();
    // The user marks it seen in the unified folder; our scans are taken.
    let msg = u.scan().unwrap().messages[&key].clone();
    u.set_flags(
        &msg,
        &crate::model::Flags::new().with(crate::model::Flag::Seen),
    )
    .unwrap();
    let sides = f.sides_now();
    // ...and then a mail client renames the account copy before we act on it.
    std::fs::rename(
        f.inbox("work").join("new/1.M1P1.w"),
        f.inbox("work").join("cur/1.M1P1.w:2,F"),
    )
    .unwrap();
    let local_key = MaildirKey("1.M1P1.w".into());
    let seen = crate::model::Flags::new().with(crate::model::Flag::Seen);
    let plan = Plan {
        actions: vec![
            Action::SetSourceFlags {
                unified: key.clone(),
                source: source("work"),
                local_key: local_key.clone(),
                flags: seen.clone(),
            },
            Action::RecordBase {
                unified: key.clone(),
                flags: seen,
            },
        ],
        ..Plan::default()
    };
    let mut store = f.store();
    let mut report = Report::default();
    apply::apply(&plan, &sides, &mut store, &mut report).unwrap();
    assert!(report.rescan, "ENOENT means rescan");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // Nothing deleted, base unchanged, and the next reconcile merges both changes.
    assert_eq!(
        store.entries().unwrap()[0].0.base,
        crate::model::Flags::new()
    );
    drop(store);
    let r = f.reconcile();
    assert_eq!((r.to_accounts, r.to_unified), (1, 1), "{r}");
    assert!(f.inbox("work").join("cur/1.M1P1.w:2,FS").exists());
    let names = Fixture::files(&f.unified());
    assert!(names[0].0.ends_with(":2,FS"), "{names:?}");
}

#[test]
fn rule_1_an_interrupted_link_is_resolved_never_doubled() {
    let f = fixture();
    f.deliver("work", "1.M1P1.w", "one");
    f.deliver("home", "2.M1P1.h", "two");
    // A crash after recording two links, with only one of them made.
    let mut store = f.store();
    let planned: Vec<_> = [
        ("work", "1.M1P1.w", "u-made"),
        ("home", "2.M1P1.h", "u-lost"),
    ]
    .into_iter()
    .map(|(a, l, u)| plan::Entry {
        unified: MaildirKey(u.into()),
        source: source(a),
        local_key: MaildirKey(l.into()),
        base: crate::model::Flags::new(),
    })
    .collect();
    store.add_pending(&planned).unwrap();
    drop(store);
    create_maildir(&f.unified()).unwrap();
    std::fs::hard_link(
        f.inbox("work").join("new/1.M1P1.w"),
        f.unified().join("new/u-made"),
    )
    .unwrap();
    let r = f.reconcile();
    assert_eq!(r.linked, 1, "only the lost one is linked again: {r}");
    let files = Fixture::files(&f.unified());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().any(|(n, _)| n == "new/u-made"));
    let entries = f.store().entries().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|(_, pending)| !pending));
}

#[test]
fn entries_are_hard_links_or_across_filesystems_durable_copies() {
    // Same filesystem: one inode.
    let f = fixture();
    f.deliver("work", "1.M1P1.w", "one");
    f.reconcile();
    let (name, _) = &Fixture::files(&f.unified())[0];
    let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(f.unified().join(name)),
        ino(f.inbox("work").join("new/1.M1P1.w"))
    );

    // /dev/shm is a tmpfs, another filesystem than the temp dir: link(2) fails with
    // EXDEV and the entry is a copy that still syncs both ways.
    let shm = tempfile::tempdir_in("/dev/shm").expect("this test needs /dev/shm (a tmpfs)");
    let f = fixture_at(&shm.path().join("Unified"));
    let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
    assert_ne!(
        dev(shm.path()),
        dev(f.dir.path()),
        "this test needs /dev/shm on another filesystem than the temp dir"
    );
    f.deliver("work", "1.M1P1.w", "one");
    std::fs::write(f.inbox("home").join("cur/2.M1P1.h:2,S"), "two").unwrap();
    let r = f.reconcile();
    assert_eq!((r.linked, r.copied), (0, 2), "{r}");
    let files = Fixture::files(&f.unified());
    assert_eq!(files.len(), 2);
    assert!(
        files
            .iter()
            .any(|(n, b)| n.starts_with("new/") && b == "one")
    );
    assert!(files.iter().any(|(n, b)| n.ends_with(":2,S") && b == "two"));
    // A flag set on the copy reaches the account's file.
    let u = Maildir::open(f.unified()).unwrap();
    let scan = u.scan().unwrap();
    let msg = scan.messages.values().find(|m| m.in_new).unwrap();
    u.set_flags(
        msg,
        &crate::model::Flags::new().with(crate::model::Flag::Flagged),
    )
    .unwrap();
    let r = f.reconcile();
    assert_eq!(r.to_accounts, 1, "{r}");
    assert!(f.inbox("work").join("cur/1.M1P1.w:2,F").exists());
    assert!(!f.reconcile().changed());
}

#[test]
fn rebuild_keeps_a_unified_file_whose_account_copy_is_gone() {
    let f = fixture();
    f.deliver("work", "1.M1P1.w", "one");
    f.deliver("home", "2.M1P1.h", "two");
    f.reconcile();
    // The account folder loses its file while the mapping still shows it (a guard held
    // back the removal: the folder is empty).
    std::fs::remove_file(f.inbox("home").join("new/2.M1P1.h")).unwrap();
    let r = f.reconcile();
    assert_eq!(r.halts.len(), 1, "{r:?}");
    let r = rebuild(&f.config).unwrap();
    assert_eq!(r.linked, 1, "{r}");
    let files = Fixture::files(&f.unified());
    assert_eq!(files.len(), 2, "the only copy of `two` is kept: {files:?}");
    assert!(files.iter().any(|(_, b)| b == "two"));
    assert_eq!(f.store().entries().unwrap().len(), 1);
}

#[test]
fn rule_1_a_rebuild_interrupted_after_forgetting_the_mapping_never_doubles_the_view() {
    let f = fixture();
    f.deliver("work", "1.M1P1.w", "one");
    f.deliver("home", "2.M1P1.h", "two");
    f.reconcile();
    // The rebuild recorded its plan and was killed before removing any file.
    let mut store = f.store();
    let keys: Vec<MaildirKey> = store
        .entries()
        .unwrap()
        .into_iter()
        .map(|(e, _)| e.unified)
        .collect();
    store.begin_rebuild(&keys).unwrap();
    drop(store);
    let r = f.reconcile();
    assert_eq!(r.linked, 2, "{r}");
    assert_eq!((r.deleted, r.removed), (0, 0), "{r}");
    let files = Fixture::files(&f.unified());
    assert_eq!(
        files.len(),
        2,
        "the old entries went, the new ones came: {files:?}"
    );
    assert!(
        files
            .iter()
            .all(|(n, _)| !keys.iter().any(|k| n.contains(&k.0)))
    );
    assert_eq!(Fixture::files(&f.inbox("work")).len(), 1);
    assert_eq!(Fixture::files(&f.inbox("home")).len(), 1);
    assert!(f.store().doomed().unwrap().is_empty());
}

/// An edit in the unified folder whose new file moves before we link it: the original
/// stays in the account until its replacement is there, and the next reconcile finishes
/// the job. Never neither.
#[test]
fn rule_1_an_edit_is_never_lost_when_its_file_moves_before_the_adoption() {
    let f = fixture();
    f.deliver("work", "1.M1P1.w", "Message-ID: <a@x>\r\n\r\noriginal\r\n");
    f.reconcile();
    let u = Maildir::open(f.unified()).unwrap();
    let old = u.scan().unwrap().messages.keys().next().unwrap().clone();
    // mutt's edit-message: a new file with the same Message-ID, the old one removed.
    let edited = f.unified().join("cur/9.M9P9.edit:2,S");
    std::fs::write(&edited, "Message-ID: <a@x>\r\n\r\nedited\r\n").unwrap();
    u.delete(&u.scan().unwrap().messages[&old]).unwrap();
    let sides = f.sides_now();
    let local_key = MaildirKey("1.M1P1.w".into());
    let seen = crate::model::Flags::new().with(crate::model::Flag::Seen);
    let plan = Plan {
        actions: vec![
            Action::DeleteSource {
                unified: old.clone(),
                source: source("work"),
                local_key: local_key.clone(),
            },
            Action::Adopt {
                unified: MaildirKey("9.M9P9.edit".into()),
                source: source("work"),
                flags: seen,
                replaces: local_key,
            },
        ],
        ..Plan::default()
    };
    // The user flags the edited message before we act: its name changes under us.
    std::fs::rename(&edited, f.unified().join("cur/9.M9P9.edit:2,FS")).unwrap();
    let mut store = f.store();
    let mut report = Report::default();
    apply::apply(&plan, &sides, &mut store, &mut report).unwrap();
    drop(store);
    assert!(report.rescan, "{report}");
    let bodies =
        |dir: &Path| -> Vec<String> { Fixture::files(dir).into_iter().map(|(_, b)| b).collect() };
    assert_eq!(
        bodies(&f.inbox("work")),
        ["Message-ID: <a@x>\r\n\r\noriginal\r\n"],
        "the original stays while its replacement is not in the account"
    );
    // The next reconcile adopts the edit and only then deletes the original.
    f.reconcile();
    assert_eq!(
        bodies(&f.inbox("work")),
        ["Message-ID: <a@x>\r\n\r\nedited\r\n"]
    );
    assert_eq!(
        bodies(&f.unified()),
        ["Message-ID: <a@x>\r\n\r\nedited\r\n"]
    );
    let unified_file = &Fixture::files(&f.unified())[0].0;
    let account_file = &Fixture::files(&f.inbox("work"))[0].0;
    assert!(unified_file.ends_with(":2,FS") && account_file.ends_with(":2,FS"));
    assert_eq!(
        std::fs::metadata(f.unified().join(unified_file))
            .unwrap()
            .ino(),
        std::fs::metadata(f.inbox("work").join(account_file))
            .unwrap()
            .ino()
    );
    let r = f.reconcile();
    assert!(!r.changed(), "{r}");
}
