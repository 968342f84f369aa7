//! One file per message wherever the server says it is one message (OBJECTID's
//! `EMAILID`, Gmail's `X-GM-MSGID`): a message the account already stores in a folder is
//! not downloaded into another, its entry there is a hard link to the same file (a
//! durable copy across filesystems), exactly as the unified inbox links its entries.
//!
//! A link is journaled like a download (the key chosen and recorded first, rule 1): a
//! link is made in one step with no overwrite, so after a crash it is either there under
//! its planned key, and recovery pairs it, or not at all, and the next pass links again.
//! Concurrent folder runs of one pass claim the identities they download, so a message
//! new in several folders at once is downloaded by one of them and linked by the others.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::maildir::{DeliveryBatch, Maildir, Placement, filename::build_cur_name};
use crate::model::{EmailId, Flags, MaildirKey};
use crate::store::{FolderId, Store};
use crate::sync::Pair;

use super::{EngineError, LocalError};

/// The identities being downloaded right now by some folder run of the pass.
#[derive(Clone, Default)]
pub struct Claims {
    inner: Arc<(Mutex<BTreeSet<EmailId>>, tokio::sync::Notify)>,
}

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<EmailId>> {
        // A poisoned lock only means a run panicked; the set is still a set.
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim an id no run holds; false if one does (this one included).
    pub fn try_claim(&self, id: &EmailId) -> bool {
        self.lock().insert(id.clone())
    }

    pub fn release(&self, ids: &BTreeSet<EmailId>) {
        if ids.is_empty() {
            return;
        }
        {
            let mut held = self.lock();
            for id in ids {
                held.remove(id);
            }
        }
        self.inner.1.notify_waiters();
    }

    /// Wait until none of `ids` is claimed. A run waits only after it released its own
    /// claims, so two runs never wait on each other.
    pub async fn wait_for(&self, ids: &BTreeSet<EmailId>) {
        loop {
            let released = self.inner.1.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if !ids.iter().any(|id| self.lock().contains(id)) {
                return;
            }
            released.await;
        }
    }
}

/// Releases a run's claims however its downloads end (an error, a cut connection).
pub struct Claimed<'c> {
    pub claims: &'c Claims,
    pub ids: BTreeSet<EmailId>,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        self.claims.release(&self.ids);
    }
}

/// Where each identity is already stored: the file of some pair holding it, in any
/// folder of the account (the first one whose file is where the scan finds it).
pub async fn stored_copies(
    store: &Store,
    ids: &BTreeSet<EmailId>,
    this: (FolderId, &Maildir),
) -> Result<BTreeMap<EmailId, (PathBuf, Pair)>, EngineError> {
    let found = store
        .pairs_by_email_id(ids.iter().cloned().collect())
        .await?;
    if found.is_empty() {
        return Ok(BTreeMap::new());
    }
    let paths: BTreeMap<FolderId, PathBuf> = store
        .folders()
        .await?
        .into_iter()
        .map(|f| (f.id, f.local_path))
        .collect();
    let mut scans = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (folder, pair) in found {
        let Some(id) = pair.email_id.clone() else {
            continue;
        };
        if out.contains_key(&id) {
            continue;
        }
        let scan = scans.entry(folder).or_insert_with(|| {
            if folder == this.0 {
                this.1.scan().ok()
            } else {
                paths
                    .get(&folder)
                    .and_then(|p| Maildir::open(p).ok())
                    .and_then(|md| md.scan().ok())
            }
        });
        if let Some(scan) = scan
            && let Some(msg) = scan.messages.get(&pair.key)
        {
            out.insert(id, (msg.path.clone(), pair));
        }
    }
    Ok(out)
}

/// What [`link_into`] made of one entry.
pub enum Linked {
    /// A hard link: the same file, no new bytes on disk.
    Link { size: u64 },
    /// Copied (the folders are on different filesystems), durable once the batch is.
    Copied,
    /// The source file is gone since the scan: download it instead.
    SourceGone,
}

/// Give `source` the name `key` with `flags` in `md`: a hard link, or a copy into
/// `copies` where the two are on different filesystems. Never overwrites.
pub fn link_into(
    md: &Maildir,
    source: &std::path::Path,
    key: &MaildirKey,
    flags: &Flags,
    copies: &mut DeliveryBatch<'_>,
) -> Result<Linked, EngineError> {
    let (target, placement) = if flags.is_empty() {
        (md.new_dir().join(&key.0), Placement::New)
    } else {
        (
            md.cur_dir().join(build_cur_name(key, flags, "")),
            Placement::Cur(flags.clone()),
        )
    };
    match std::fs::hard_link(source, &target) {
        Ok(()) => {
            let size = std::fs::metadata(&target)
                .map_err(LocalError::io(&target))?
                .len();
            Ok(Linked::Link { size })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Linked::SourceGone),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::CrossesDevices
                    | io::ErrorKind::Unsupported
                    | io::ErrorKind::PermissionDenied
            ) =>
        {
            let bytes = match std::fs::read(source) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Linked::SourceGone),
                Err(e) => {
                    return Err(LocalError::Io {
                        path: source.to_owned(),
                        source: e,
                    }
                    .into());
                }
            };
            copies
                .deliver(key.clone(), &bytes, placement)
                .map_err(LocalError::from)?;
            Ok(Linked::Copied)
        }
        Err(e) => Err(LocalError::Io {
            path: target,
            source: e,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::config::Layout;
    use crate::maildir::FolderMap;
    use crate::model::{Flag, FolderName};

    fn maildir(root: &std::path::Path) -> Maildir {
        let map = FolderMap::new(root, Layout::Verbatim, Some('/'));
        Maildir::open(map.create(&FolderName("Archive".into())).unwrap()).unwrap()
    }

    #[test]
    fn an_entry_is_a_hard_link_on_one_filesystem_and_a_durable_copy_across_two() {
        let here = tempfile::tempdir().unwrap();
        let md = maildir(here.path());
        let source = here.path().join("source");
        std::fs::write(&source, b"Message-ID: <m@x>\r\n\r\nbody\r\n").unwrap();
        let seen = Flags::new().with(Flag::Seen);

        let key = MaildirKey("1.link.host".into());
        let mut copies = DeliveryBatch::new(&md);
        let Linked::Link { size } = link_into(&md, &source, &key, &seen, &mut copies).unwrap()
        else {
            panic!("same filesystem: a hard link");
        };
        assert_eq!(size, 27);
        assert_eq!(std::fs::metadata(&source).unwrap().nlink(), 2);
        assert!(md.cur_dir().join("1.link.host:2,S").exists());
        // Never over an existing name.
        assert!(link_into(&md, &source, &key, &seen, &mut copies).is_err());
        // A source gone since the scan: download instead.
        let gone = here.path().join("gone");
        let other = MaildirKey("2.gone.host".into());
        assert!(matches!(
            link_into(&md, &gone, &other, &seen, &mut copies).unwrap(),
            Linked::SourceGone
        ));

        // /dev/shm is a tmpfs: another filesystem than the temp dir's here.
        let shm = tempfile::tempdir_in("/dev/shm").expect("/dev/shm (a tmpfs)");
        let far = shm.path().join("source");
        std::fs::write(&far, b"Message-ID: <f@x>\r\n\r\nfar\r\n").unwrap();
        let (dev_far, dev_md) = (
            std::fs::metadata(&far).unwrap().dev(),
            std::fs::metadata(md.path()).unwrap().dev(),
        );
        assert_ne!(dev_far, dev_md, "the test needs two filesystems");
        let key = MaildirKey("3.copy.host".into());
        assert!(matches!(
            link_into(&md, &far, &key, &Flags::new(), &mut copies).unwrap(),
            Linked::Copied
        ));
        let durable = copies.commit_durable().unwrap();
        assert_eq!(durable.len(), 1);
        let copy = md.new_dir().join("3.copy.host");
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&far).unwrap());
        assert_eq!(std::fs::metadata(&far).unwrap().nlink(), 1, "a copy");
    }

    #[tokio::test]
    async fn a_claimed_identity_is_waited_for_until_released() {
        let claims = Claims::default();
        let id = EmailId("M1".into());
        assert!(claims.try_claim(&id));
        assert!(!claims.try_claim(&id), "one run at a time");
        let ids = BTreeSet::from([id.clone()]);
        let waiter = {
            let claims = claims.clone();
            let ids = ids.clone();
            tokio::spawn(async move { claims.wait_for(&ids).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(Claimed {
            claims: &claims,
            ids,
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("released claims wake the waiter")
            .unwrap();
        assert!(claims.try_claim(&id));
    }
}
