//! Local push: a file watcher on the account's Maildir tree. Events are hints only (the
//! pass rescans), so they are reduced to "this folder changed". Only renames,
//! deliveries and deletions count: reads (our own scans) and writes inside `tmp/` do not,
//! which keeps the daemon's own activity from feeding itself. A pass the daemon's own
//! writes trigger finds nothing to do and writes nothing, so it cannot loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::triggers::Triggers;

/// Watch `root` recursively; changes become folder triggers. Keep the watcher alive.
pub fn watch(root: &Path, triggers: Arc<Triggers>) -> notify::Result<RecommendedWatcher> {
    let base = root.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
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
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
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
        tokio::time::timeout(std::time::Duration::from_secs(5), triggers.changed())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let work = triggers.take();
        assert_eq!(
            work.dirs.into_iter().collect::<Vec<_>>(),
            [PathBuf::from("INBOX")]
        );
        assert!(!work.all);
    }
}
