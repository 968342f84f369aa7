//! Local push: a file watcher on the account's Maildir tree. Events are hints only (the
//! pass rescans), so they are reduced to "this folder changed". Only renames,
//! deliveries and deletions count: reads (our own scans) do not, which keeps the daemon's
//! own activity from feeding itself. A pass the daemon's own writes trigger finds
//! nothing to do and writes nothing, so it cannot loop.
//!
//! What is watched: every folder directory, its `cur/` and its `new/`, each on its own,
//! never `tmp/`. A recursive watch also took every write of every download in `tmp/`
//! (an open, the writes, a close, a create, a rename away: an initial sync of 10,000
//! messages made 23,000 more context switches and 0.2-0.4 s more CPU with it), where a
//! message only counts once it is renamed into `new/` or `cur/`. Folders made since are
//! watched by [`LocalWatch::refresh`], which the account calls around each pass.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::triggers::Triggers;

/// The watches on one account's Maildir tree. Dropping it stops them.
pub struct LocalWatch {
    watcher: RecommendedWatcher,
    root: PathBuf,
    /// Each watched directory with its device and inode: a folder deleted and made again
    /// under the same name is a new directory, watched again.
    watched: BTreeMap<PathBuf, (u64, u64)>,
    /// Directories that could not be watched, warned about once.
    unwatchable: BTreeSet<PathBuf>,
}

/// Watch the folders under `root`; changes become folder triggers.
pub fn watch(root: &Path, triggers: Arc<Triggers>) -> notify::Result<LocalWatch> {
    let base = root.to_owned();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) => {
                if !counts(&event.kind) {
                    return;
                }
                for path in &event.paths {
                    match folder_dir(&base, path) {
                        Some(dir) => triggers.dir(dir),
                        // A folder made or removed: let a full pass find out.
                        None if (event.kind.is_create() || event.kind.is_remove())
                            && path
                                .strip_prefix(&base)
                                .is_ok_and(|rel| !is_maildir_part(rel)) =>
                        {
                            triggers.all();
                        }
                        None => {}
                    }
                }
            }
            // Lost events (queue overflow): only a full pass is safe.
            Err(e) => {
                tracing::debug!("file watcher: {e}");
                triggers.all();
            }
        }
    })?;
    let mut watch = LocalWatch {
        watcher,
        root: root.to_owned(),
        watched: BTreeMap::new(),
        unwatchable: BTreeSet::new(),
    };
    let root_id = id(&std::fs::metadata(root).map_err(notify::Error::io)?);
    watch.watcher.watch(root, RecursiveMode::NonRecursive)?;
    watch.watched.insert(root.to_owned(), root_id);
    watch.refresh();
    Ok(watch)
}

impl LocalWatch {
    /// Watch the folders made since the last call and forget the removed ones. Returns
    /// the folders newly watched (relative to the root), for a pass to look at: a file a
    /// client put there before its watch began has made no event.
    pub fn refresh(&mut self) -> Vec<PathBuf> {
        let mut seen = BTreeSet::new();
        let mut fresh = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            // A symlink back up the tree is walked once.
            if !meta.is_dir() || !seen.insert(id(&meta)) {
                continue;
            }
            if self.add(&dir, id(&meta)) {
                fresh.push(dir.clone());
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_name().to_str() {
                    Some("tmp") => {}
                    Some("cur" | "new") => match std::fs::metadata(&path) {
                        Ok(meta) if meta.is_dir() => {
                            seen.insert(id(&meta));
                            if self.add(&path, id(&meta)) {
                                fresh.push(dir.clone());
                            }
                        }
                        _ => {}
                    },
                    _ => dirs.push(path),
                }
            }
        }
        // Gone (a folder deleted or renamed): its watch went with it.
        let gone: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(_, dev_ino)| !seen.contains(dev_ino))
            .map(|(path, _)| path.clone())
            .collect();
        for path in gone {
            self.watched.remove(&path);
            let _ = self.watcher.unwatch(&path);
        }
        fresh.sort();
        fresh.dedup();
        fresh
            .into_iter()
            .filter_map(|dir| dir.strip_prefix(&self.root).ok().map(Path::to_path_buf))
            .collect()
    }

    /// Watch one directory unless it is watched already; true if it was not. A
    /// directory that cannot be watched (the inotify limit, a race with its removal) is
    /// left to the poll, and the rest are still watched.
    fn add(&mut self, dir: &Path, dev_ino: (u64, u64)) -> bool {
        if self.watched.get(dir) == Some(&dev_ino) {
            return false;
        }
        match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.watched.insert(dir.to_owned(), dev_ino);
                self.unwatchable.remove(dir);
                true
            }
            Err(e) => {
                if !self.unwatchable.insert(dir.to_owned()) {
                    return false;
                }
                tracing::warn!(
                    "cannot watch {} for local changes ({e}); they wait for the next poll",
                    dir.display()
                );
                false
            }
        }
    }

    /// The directories watched now.
    #[cfg(test)]
    fn dirs(&self) -> Vec<PathBuf> {
        self.watched.keys().cloned().collect()
    }
}

fn id(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

pub(super) fn counts(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Any)
            | EventKind::Any
    )
}

/// `cur`/`new`/`tmp` or anything below them.
fn is_maildir_part(rel: &Path) -> bool {
    rel.components()
        .any(|c| matches!(c.as_os_str().to_str(), Some("cur" | "new" | "tmp")))
}

/// The folder directory (relative to `root`) of a message file in its `cur/` or `new/`.
pub fn folder_dir(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let sub = rel.parent()?;
    match sub.file_name()?.to_str()? {
        "cur" | "new" => Some(sub.parent()?.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_paths_name_their_folder() {
        let root = Path::new("/m/work");
        assert_eq!(
            folder_dir(root, Path::new("/m/work/INBOX/cur/123.abc:2,S")),
            Some(PathBuf::from("INBOX"))
        );
        assert_eq!(
            folder_dir(root, Path::new("/m/work/Archive/2024/new/1")),
            Some(PathBuf::from("Archive/2024"))
        );
        // Maildir++: the account root is INBOX.
        assert_eq!(
            folder_dir(root, Path::new("/m/work/cur/1:2,")),
            Some(PathBuf::new())
        );
        assert_eq!(folder_dir(root, Path::new("/m/work/INBOX/tmp/1")), None);
        assert_eq!(folder_dir(root, Path::new("/elsewhere/cur/1")), None);
    }

    /// The work gathered once the watcher has told of a change and of its burst.
    async fn settled(triggers: &Triggers) -> crate::daemon::triggers::Work {
        tokio::time::timeout(std::time::Duration::from_secs(5), triggers.changed())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        triggers.take()
    }

    fn folder(root: &Path, name: &str) -> PathBuf {
        let dir = root.join(name);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        dir
    }

    fn relative(root: &Path, dirs: Vec<PathBuf>) -> Vec<String> {
        dirs.iter()
            .map(|d| d.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    /// Every folder, its `cur/` and its `new/` are watched, never `tmp/` (where every
    /// download writes); a folder made later is watched at the next refresh, which names
    /// it; one deleted is forgotten, and one made again under its name watched again.
    #[tokio::test]
    async fn folders_cur_and_new_are_watched_tmp_never_and_new_folders_at_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        folder(root, "INBOX");
        folder(root, "Archive/2024");
        let triggers = Arc::new(Triggers::default());
        let mut w = watch(root, triggers.clone()).unwrap();
        assert_eq!(
            relative(root, w.dirs()),
            [
                "",
                "Archive",
                "Archive/2024",
                "Archive/2024/cur",
                "Archive/2024/new",
                "INBOX",
                "INBOX/cur",
                "INBOX/new"
            ]
        );
        assert!(w.refresh().is_empty());
        let sent = folder(root, "Sent");
        std::fs::write(sent.join("cur/1.x:2,"), b"x").unwrap();
        assert_eq!(w.refresh(), [PathBuf::from("Sent")]);
        // The folder's creation asked for a full pass; then a file moved in it names it.
        assert!(settled(&triggers).await.all);
        std::fs::rename(sent.join("cur/1.x:2,"), sent.join("cur/1.x:2,S")).unwrap();
        let work = settled(&triggers).await;
        assert_eq!(
            work.dirs.into_iter().collect::<Vec<_>>(),
            [PathBuf::from("Sent")]
        );
        std::fs::remove_dir_all(root.join("Archive/2024")).unwrap();
        assert!(w.refresh().is_empty());
        assert!(
            !w.dirs()
                .iter()
                .any(|d| d.starts_with(root.join("Archive/2024")))
        );
        folder(root, "Archive/2024");
        assert_eq!(w.refresh(), [PathBuf::from("Archive/2024")]);
        assert_eq!(w.dirs().len(), 11);
    }

    /// Maildir++: the root is the INBOX, named by the empty path.
    #[test]
    fn a_maildirpp_root_is_a_folder_too() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut w = watch(root, Arc::new(Triggers::default())).unwrap();
        folder(root, "");
        folder(root, ".Sent");
        assert_eq!(w.refresh(), [PathBuf::new(), PathBuf::from(".Sent")]);
        assert_eq!(
            relative(root, w.dirs()),
            ["", ".Sent", ".Sent/cur", ".Sent/new", "cur", "new"]
        );
    }

    #[tokio::test]
    async fn a_rename_in_cur_triggers_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("INBOX");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(inbox.join(sub)).unwrap();
        }
        std::fs::write(inbox.join("cur/1.x:2,"), b"x").unwrap();
        let triggers = Arc::new(Triggers::default());
        let _w = watch(dir.path(), triggers.clone()).unwrap();
        // Reading is not a change.
        let _ = std::fs::read(inbox.join("cur/1.x:2,")).unwrap();
        std::fs::write(inbox.join("tmp/2.x"), b"y").unwrap();
        std::fs::rename(inbox.join("cur/1.x:2,"), inbox.join("cur/1.x:2,S")).unwrap();
        let work = settled(&triggers).await;
        assert_eq!(
            work.dirs.into_iter().collect::<Vec<_>>(),
            [PathBuf::from("INBOX")]
        );
        assert!(!work.all);
    }
}
