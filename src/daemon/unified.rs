//! The daemon's unified-folder task: reconciles at start, whenever a file in the unified
//! folder or in one of its source folders changes (a file watcher), and whenever an
//! account pass changed something. One task, so reconciles never overlap here; the
//! reconcile's file lock keeps out other processes (`syncmail unified rebuild`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::unified;

/// Start the task for `config`'s `[unified]` table (none without one). `kick` is what
/// account passes and the watcher notify.
pub fn start(
    config: Arc<Config>,
    kick: Arc<Notify>,
    debounce: Duration,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    config.unified.as_ref()?;
    Some(tokio::spawn(async move {
        let mut watcher: Option<RecommendedWatcher> = None;
        let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => return,
                    () = kick.notified() => {}
                }
                // Gather the rest of a burst (a client renaming many files at once).
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(debounce) => {}
                }
            }
            first = false;
            let c = config.clone();
            let result = tokio::task::spawn_blocking(move || {
                unified::reconcile(&c, unified::Options::default())
            })
            .await;
            match result {
                Ok(Ok(report)) => {
                    if report.changed() {
                        tracing::info!("unified: {report}");
                    } else {
                        tracing::debug!("unified: {report}");
                    }
                    for halt in &report.halts {
                        tracing::warn!("unified: {halt}");
                    }
                    for error in &report.errors {
                        tracing::warn!("unified: {error}");
                    }
                    if report.rescan {
                        // Something moved under us: look again soon, not never.
                        let k = kick.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            k.notify_one();
                        });
                    }
                }
                Ok(Err(e)) => tracing::warn!("unified: the reconcile failed: {e}"),
                Err(e) => tracing::error!("unified: the reconcile task failed: {e}"),
            }
            watch_new_dirs(&config, &kick, &mut watcher, &mut watched);
        }
    }))
}

/// Watch `cur/` and `new/` of the unified folder and of every source folder that exists
/// and is not watched yet (a source appears with its account's first pass).
fn watch_new_dirs(
    config: &Config,
    kick: &Arc<Notify>,
    watcher: &mut Option<RecommendedWatcher>,
    watched: &mut BTreeSet<PathBuf>,
) {
    let Some(u) = &config.unified else {
        return;
    };
    if watcher.is_none() {
        let k = kick.clone();
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                if super::watch::counts(&event.kind)
                    && event.paths.iter().any(|p| in_message_dir(p))
                {
                    k.notify_one();
                }
            }
            Err(e) => {
                tracing::debug!("unified file watcher: {e}");
                k.notify_one();
            }
        }) {
            Ok(w) => *watcher = Some(w),
            Err(e) => {
                tracing::warn!(
                    "unified: cannot watch for changes ({e}); the unified folder is reconciled after account passes only"
                );
                return;
            }
        }
    }
    let Some(w) = watcher.as_mut() else {
        return;
    };
    // A removed directory took its watch with it; watch it again once it is back.
    watched.retain(|d| d.is_dir());
    let folders = std::iter::once(u.path.clone())
        .chain(unified::sources(config, u).into_iter().map(|(_, p, _)| p));
    for folder in folders {
        for sub in ["cur", "new"] {
            let dir = folder.join(sub);
            if watched.contains(&dir) || !dir.is_dir() {
                continue;
            }
            match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(e) => tracing::warn!("unified: cannot watch {}: {e}", dir.display()),
            }
        }
    }
}

/// A message file in a `cur/` or `new/` directory.
fn in_message_dir(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "cur" || n == "new")
}
