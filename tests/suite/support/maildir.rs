//! Looking at and changing a Maildir the way a mail client would: by file names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One message file of a Maildir folder.
pub struct File {
    pub path: PathBuf,
    /// The unique part of its name.
    pub key: String,
    /// Its flag letters (empty in `new/`).
    pub flags: String,
    pub in_new: bool,
}

/// Every message file of a folder, `new/` then `cur/`, each sorted by name.
pub fn files(folder: &Path) -> Vec<File> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(folder.join(sub)) else {
            continue;
        };
        let mut here: Vec<File> = entries
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let (key, flags) = match name.split_once(":2,") {
                    Some((k, f)) => (k.to_owned(), f.to_owned()),
                    None => (name.clone(), String::new()),
                };
                File {
                    path: e.path(),
                    key,
                    flags,
                    in_new: sub == "new",
                }
            })
            .collect();
        here.sort_by(|a, b| a.path.cmp(&b.path));
        out.extend(here);
    }
    out
}

/// Every message in a folder: unique part -> flag letters (empty for `new/`).
pub fn messages(folder: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for f in files(folder) {
        assert!(
            out.insert(f.key.clone(), f.flags).is_none(),
            "duplicate key {} in {folder:?}",
            f.key
        );
    }
    out
}

/// The path of the file holding `key`.
pub fn path_of(folder: &Path, key: &str) -> PathBuf {
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(folder.join(sub)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == key || name.starts_with(&format!("{key}:2,")) {
                return e.path();
            }
        }
    }
    panic!("no message {key} in {folder:?}");
}

/// Write a message into `cur/` with these flag letters, as a client saving a draft would.
pub fn add(folder: &Path, key: &str, flags: &str, body: &[u8]) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(folder.join(sub)).unwrap();
    }
    std::fs::write(folder.join("cur").join(format!("{key}:2,{flags}")), body).unwrap();
}

/// Change flags by renaming, as mutt does.
pub fn set_flags(folder: &Path, key: &str, flags: &str) {
    let from = path_of(folder, key);
    std::fs::rename(&from, folder.join("cur").join(format!("{key}:2,{flags}"))).unwrap();
}

pub fn delete(folder: &Path, key: &str) {
    std::fs::remove_file(path_of(folder, key)).unwrap();
}

pub fn read(folder: &Path, key: &str) -> Vec<u8> {
    std::fs::read(path_of(folder, key)).unwrap()
}

/// `(Message-ID, flag letters)` of every message in a folder, sorted: comparable with
/// `Dovecot::state` across runs.
pub fn state(folder: &Path) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = messages(folder)
        .into_iter()
        .map(|(key, flags)| {
            let body = read(folder, &key);
            let text = String::from_utf8_lossy(&body);
            let id = text
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(n, _)| n.eq_ignore_ascii_case("message-id"))
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default();
            (id, flags)
        })
        .collect();
    rows.sort();
    rows
}
