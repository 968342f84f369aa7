//! Folder mapping against hostile server folder names (rule 17) and the permissions of
//! what we create (rule 20), on a real filesystem.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use syncmail::maildir::{FolderMap, Layout, Maildir, decode_server_name};
use syncmail::model::FolderName;

/// Every path under `dir`, without following symlinks.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            out.insert(e.path());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Wire names (modified UTF-7, as a server sends them) that must never become a folder.
fn hostile_wire_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "../x",
        "a/../../b",
        "..",
        ".",
        "/abs",
        "a/./b",
        "&AC4ALg-",     // ".." encoded (non-canonical)
        "a/&AC4ALg-/b", // same, as a middle component
        "&AAA-",        // NUL
        "a&AAA-b",      // NUL inside a component
        "&AAo-",        // newline
        "cur",
        "new",
        "tmp",
        "INBOX/cur",
        "a/TMP/b",
        "a//b", // empty component
        "/",
        "a/",
        "",
        ".hidden",
        "a/.b",
        "&-AGE-x&AC8-y", // an encoded '/' (non-canonical), which a lax decoder would split on
        "&2D0-",         // lone surrogate
        "&APw",          // unterminated
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(5 * 1024));
    v.push(format!("a/{}", "y".repeat(300)));
    v
}

#[test]
fn rule_17_hostile_folder_names_rejected() {
    for layout in [Layout::Verbatim, Layout::MaildirPlusPlus] {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("mail");
        std::fs::create_dir(&root).unwrap();
        let before = tree(outer.path());
        let map = FolderMap::new(&root, layout, Some('/'));
        for wire in hostile_wire_names() {
            let result = decode_server_name(&wire).and_then(|name| {
                map.to_local(&name)?;
                map.create(&name)
            });
            let err = result.expect_err(&format!("{layout:?}: {wire:?} accepted"));
            let msg = err.to_string();
            // The error names the folder: as sent if it did not decode, else decoded.
            let named = match decode_server_name(&wire) {
                Err(_) => wire.clone(),
                Ok(n) => n.0,
            };
            let head: String = named.chars().take(40).collect();
            let head = format!("{head:?}");
            assert!(
                msg.contains(head.trim_end_matches('"')),
                "{layout:?}: error for {wire:?} does not name it: {msg}"
            );
            assert!(
                msg.len() < 600,
                "error for a long name is bounded: {}",
                msg.len()
            );
        }
        assert_eq!(
            before,
            tree(outer.path()),
            "{layout:?}: something was created"
        );
    }
}

#[test]
fn rule_17_symlinks_inside_the_root_are_not_followed() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("mail");
    let elsewhere = outer.path().join("elsewhere");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("Archive")).unwrap();
    let map = FolderMap::new(&root, Layout::Verbatim, Some('/'));
    let err = map
        .create(&FolderName("Archive/2024".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Archive/2024") && err.contains("symlink"),
        "{err}"
    );
    let err = map.create(&FolderName("Archive".into())).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // maildir++: a symlinked folder directory or cur/ is refused too.
    let pp = FolderMap::new(&root, Layout::MaildirPlusPlus, Some('/'));
    std::os::unix::fs::symlink(&elsewhere, root.join(".Sent")).unwrap();
    assert!(pp.create(&FolderName("Sent".into())).is_err());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn rule_20_state_and_maildir_created_private() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("mail");
    std::fs::create_dir(&root).unwrap();
    for (layout, name, rel) in [
        (Layout::Verbatim, "Archive/2024", "Archive/2024"),
        (Layout::MaildirPlusPlus, "Archive/2024", ".Archive.2024"),
        (Layout::MaildirPlusPlus, "INBOX", ""),
    ] {
        let map = FolderMap::new(&root, layout, Some('/'));
        let path = map.create(&FolderName(name.into())).unwrap();
        assert_eq!(path, root.join(rel));
        let md = Maildir::open(&path).unwrap();
        let mut dirs = vec![md.cur_dir(), md.new_dir(), md.tmp_dir()];
        if !rel.is_empty() {
            dirs.push(path.clone());
        }
        if layout == Layout::Verbatim {
            dirs.push(root.join("Archive"));
        }
        for d in dirs {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{d:?}");
        }
        // Creating again is idempotent.
        map.create(&FolderName(name.into())).unwrap();
        // And the directory maps back to the same server name.
        let back = map.to_server(Path::new(rel)).unwrap();
        assert_eq!(back.0, name);
    }
    let store_path = outer.path().join("state/work.sqlite3");
    let store = syncmail::store::Store::open(&store_path).unwrap();
    drop(store);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store_path), 0o600);
    assert_eq!(mode(store_path.parent().unwrap()), 0o700);
}

#[test]
fn unicode_folder_names_map_from_the_wire() {
    let outer = tempfile::tempdir().unwrap();
    let map = FolderMap::new(outer.path(), Layout::Verbatim, Some('/'));
    let name = decode_server_name("Entw&APw-rfe/&ZeVnLIqe-").unwrap();
    let path = map.create(&name).unwrap();
    assert_eq!(path, outer.path().join("Entwürfe/日本語"));
}
