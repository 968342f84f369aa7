//! Durable delivery into a folder, batched (rule 3): each message is written to `tmp/`
//! (O_EXCL, 0600) and made durable in the way its filesystem does cheapest (see
//! [`Storage`]): handed to background fsync threads as soon as it is complete; on tmpfs,
//! where an fsync does nothing, not synced at all; on a local journaling filesystem,
//! past a handful of files, synced all at once with one `syncfs` at commit. At commit,
//! once every file is synced, each is renamed (or linked) into `new/` or `cur/` without
//! overwriting, then the touched directories are fsynced once. Only then may the caller
//! record the messages as existing.
//!
//! Because files are synced *before* they get their visible name, a crash at any point
//! leaves either nothing visible or a complete file under its planned key; never a partial
//! file in `new/`/`cur/`. The caller journals the keys (from [`crate::maildir::new_key`])
//! in intents before delivering, and recovery looks them up.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, mpsc};

use crate::fault;
use crate::maildir::filename::build_cur_name;
use crate::maildir::{Maildir, sync_dir};
use crate::model::{Flags, MaildirKey};

/// Where a delivered message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// `new/`, no info: mail no client has seen yet.
    New,
    /// `cur/` with these flags. Only the system flags go into the filename: Maildir has
    /// no portable spelling for IMAP keywords (Dovecot's letters need its keyword file).
    Cur(Flags),
}

/// A message that is durably in the folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub key: MaildirKey,
    pub path: PathBuf,
    pub size: u64,
    pub in_new: bool,
    pub flags: Flags,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("delivering {key} ({path:?}): {source}")]
    Io {
        key: MaildirKey,
        path: PathBuf,
        source: io::Error,
    },
    #[error("delivering {key}: {path:?} already exists; refusing to overwrite it")]
    Collision { key: MaildirKey, path: PathBuf },
    /// Syncing a directory (or a worker failing outside any one message).
    #[error("making deliveries durable in {path:?}: {source}")]
    Sync { path: PathBuf, source: io::Error },
}

fn io_err(key: &MaildirKey, path: &Path) -> impl FnOnce(io::Error) -> DeliveryError {
    let (key, path) = (key.clone(), path.to_owned());
    move |source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            DeliveryError::Collision { key, path }
        } else {
            DeliveryError::Io { key, path, source }
        }
    }
}

struct Staged {
    tmp: PathBuf,
    delivered: Delivered,
}

/// A batch of deliveries into one folder, made durable together by
/// [`DeliveryBatch::commit_durable`]. Dropping a batch without committing removes its
/// `tmp/` files: nothing becomes visible.
pub struct DeliveryBatch<'a> {
    md: &'a Maildir,
    sync_each: bool,
    staged: Vec<Staged>,
    done: Vec<Delivered>,
    syncer: Option<Syncer>,
}

impl<'a> DeliveryBatch<'a> {
    pub fn new(md: &'a Maildir) -> DeliveryBatch<'a> {
        DeliveryBatch {
            md,
            sync_each: false,
            staged: Vec::new(),
            done: Vec::new(),
            syncer: None,
        }
    }

    /// The slow, one-fsync-per-message mode (file + directory for each message), kept
    /// for the benchmark and for callers that deliver a single message.
    pub fn sync_each(mut self, on: bool) -> DeliveryBatch<'a> {
        self.sync_each = on;
        self
    }

    /// Messages delivered or staged so far.
    pub fn len(&self) -> usize {
        self.staged.len() + self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deliver a whole message under a key chosen (and journaled) beforehand.
    pub fn deliver(
        &mut self,
        key: MaildirKey,
        bytes: &[u8],
        placement: Placement,
    ) -> Result<(), DeliveryError> {
        let mut w = self.begin(key)?;
        w.write_all(bytes).map_err(|source| DeliveryError::Io {
            key: w.key.clone(),
            path: w.tmp.clone(),
            source,
        })?;
        w.finish(placement)
    }

    /// Start a streamed delivery: write the message through the returned writer as it
    /// arrives, then call [`TmpWriter::finish`]. Dropping the writer unfinished (a cut
    /// connection) removes the `tmp/` file (rule 5).
    pub fn begin(&mut self, key: MaildirKey) -> Result<TmpWriter<'_, 'a>, DeliveryError> {
        if !self.sync_each && self.syncer.is_none() {
            // Before the batch's first byte is written: a `syncfs` reports the writeback
            // errors since its descriptor was opened.
            self.syncer = Some(Syncer::for_folder(&self.md.tmp_dir()));
        }
        let tmp = self.md.tmp_dir().join(&key.0);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&key, &tmp))?;
        Ok(TmpWriter {
            batch: self,
            key,
            tmp,
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            size: 0,
        })
    }

    fn stage(
        &mut self,
        key: MaildirKey,
        tmp: PathBuf,
        file: File,
        size: u64,
        placement: Placement,
    ) -> Result<(), DeliveryError> {
        let (dest, in_new, flags) = match placement {
            Placement::New => (self.md.new_dir().join(&key.0), true, Flags::new()),
            Placement::Cur(flags) => (
                self.md.cur_dir().join(build_cur_name(&key, &flags, "")),
                false,
                flags,
            ),
        };
        let staged = Staged {
            tmp,
            delivered: Delivered {
                key,
                path: dest,
                size,
                in_new,
                flags,
            },
        };
        if self.sync_each {
            file.sync_all()
                .map_err(io_err(&staged.delivered.key, &staged.tmp))?;
            drop(file);
            self.place(&staged)?;
            let dir = if staged.delivered.in_new {
                self.md.new_dir()
            } else {
                self.md.cur_dir()
            };
            sync_dir(&dir).map_err(io_err(&staged.delivered.key, &dir))?;
            self.done.push(staged.delivered);
        } else {
            // (`begin` made the syncer before the file; without one, sync here.)
            match self.syncer.as_mut() {
                Some(syncer) => syncer.submit(file, self.staged.len()),
                None => file
                    .sync_all()
                    .map_err(io_err(&staged.delivered.key, &staged.tmp))?,
            }
            self.staged.push(staged);
        }
        Ok(())
    }

    /// Make every message of the batch durable with one round of syncs: wait for every
    /// file's fsync (started in the background as each file was finished), or sync the
    /// filesystem once, then move each into place, then fsync each touched directory
    /// once. When this returns `Ok`, the returned messages survive a crash and the
    /// caller may commit its state.
    ///
    /// On error some messages may already be placed but not durable; the caller's open
    /// intents decide (recovery looks each planned key up).
    pub fn commit_durable(mut self) -> Result<Vec<Delivered>, DeliveryError> {
        if let Some(syncer) = self.syncer.take() {
            let deferred = syncer.deferred;
            match syncer.finish() {
                Ok(()) => {}
                Err(Failed::File(i, source)) => {
                    let s = &self.staged[i];
                    return Err(DeliveryError::Io {
                        key: s.delivered.key.clone(),
                        path: s.tmp.clone(),
                        source,
                    });
                }
                Err(Failed::Filesystem(source)) => {
                    // The error may be any file's on the filesystem (its writeback errors
                    // are counted together): fsync each file left to the `syncfs`, which
                    // reports that file's own, as the threads would have.
                    tracing::warn!(
                        folder = %self.md.path().display(),
                        "syncfs failed ({source}); syncing the batch's {deferred} files one by one"
                    );
                    for s in self.staged.iter().skip(ONE_BY_ONE) {
                        File::open(&s.tmp)
                            .and_then(|f| f.sync_all())
                            .map_err(io_err(&s.delivered.key, &s.tmp))?;
                    }
                }
            }
        }
        let (mut touched_new, mut touched_cur) = (false, false);
        let staged = std::mem::take(&mut self.staged);
        let mut remaining = staged.into_iter();
        while let Some(s) = remaining.next() {
            if let Err(e) = self.place(&s) {
                // Put the unplaced ones back so Drop removes their tmp files.
                self.staged.push(s);
                self.staged.extend(remaining);
                return Err(e);
            }
            fault::point("deliver-mid-place");
            touched_new |= s.delivered.in_new;
            touched_cur |= !s.delivered.in_new;
            self.done.push(s.delivered);
        }
        for (touched, dir) in [
            (touched_new, self.md.new_dir()),
            (touched_cur, self.md.cur_dir()),
        ] {
            if touched {
                sync_dir(&dir).map_err(|source| DeliveryError::Sync {
                    path: dir.clone(),
                    source,
                })?;
            }
        }
        Ok(std::mem::take(&mut self.done))
    }
}

/// How many fsyncs run at once. Concurrent fsyncs let the filesystem fold them into a
/// few journal commits instead of one commit per file. The threads only wait on the disk
/// (small stacks, no CPU); on ext4 32 beat 8 by about a third in the delivery benchmark.
const SYNC_THREADS: usize = 32;

/// Finished files waiting for a sync thread, at most. More would not sync sooner, only
/// hold more open file descriptors.
const SYNC_QUEUE: usize = SYNC_THREADS;

type SyncFailure = Option<(usize, io::Error)>;

/// How a batch's syncs failed.
#[derive(Debug)]
enum Failed {
    /// The fsync of the file staged at this index.
    File(usize, io::Error),
    /// The `syncfs`, which cannot say whose write failed.
    Filesystem(io::Error),
}

/// One batch's fsyncs in flight: how many are pending, and the first failure.
#[derive(Default)]
struct BatchSyncs {
    state: Mutex<(usize, SyncFailure)>,
    done: Condvar,
}

impl BatchSyncs {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, SyncFailure)> {
        // A poisoned lock only means a worker panicked; the data is still a count.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn finished(&self, index: usize, result: io::Result<()>) {
        let mut state = self.lock();
        state.0 = state.0.saturating_sub(1);
        if let Err(e) = result {
            state.1.get_or_insert((index, e));
        }
        // Only the batch's end is waited for (a notify is a futex call even when no one
        // waits).
        if state.0 == 0 {
            self.done.notify_all();
        }
    }
}

type SyncJob = (File, usize, Arc<BatchSyncs>);

/// The fsync threads, started once for the process (a batch of 500 small messages used
/// to start and join its own 32: 3,200 threads for a first sync of 50,000). `None`: no
/// thread could be started, and each file is synced where it is finished.
fn sync_pool() -> Option<&'static mpsc::SyncSender<SyncJob>> {
    static POOL: OnceLock<Option<mpsc::SyncSender<SyncJob>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (sender, receiver) = mpsc::sync_channel::<SyncJob>(SYNC_QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let started = (0..SYNC_THREADS)
            .filter(|_| {
                let receiver = Arc::clone(&receiver);
                std::thread::Builder::new()
                    .name("syncmail-fsync".into())
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        loop {
                            let job = match receiver.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            let Ok((file, index, batch)) = job else {
                                return;
                            };
                            batch.finished(index, file.sync_all());
                        }
                    })
                    .is_ok()
            })
            .count();
        (started > 0).then_some(sender)
    })
    .as_ref()
}

/// What a folder's filesystem is, as far as making files durable goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    /// In memory (tmpfs, ramfs): an fsync has no disk to wait for.
    Memory,
    /// A local journaling filesystem (ext4, XFS, btrfs, F2FS) on a kernel whose `syncfs`
    /// reports the errors of the writes and of the filesystem's own sync (Linux 5.17 and
    /// later): one `syncfs` writes a whole batch's files and commits the journal once.
    Journaled,
    /// Anything else, or not known: an fsync per file.
    Disk,
}

/// Up to this many files of a batch are fsynced one by one even where the filesystem
/// could be synced whole: a `syncfs` also writes out whatever else is dirty on the
/// filesystem, which a daemon delivering one or two new messages should not wait for.
const ONE_BY_ONE: usize = 8;

/// Durability for a batch: each finished tmp file is synced while the caller writes (or
/// fetches) the next ones, so at commit little is left to wait for; or, past
/// [`ONE_BY_ONE`] files on a [`Storage::Journaled`] filesystem, the rest are left to one
/// `syncfs` at commit; or, in memory, nothing.
///
/// Measured on ext4 (a virtio disk, 2 cores; 10,000 files of realistic sizes, 485 MB, in
/// batches of 500, 4 rounds): the 32 fsync threads took 2.3-2.5 s and 2.8-3.1 s of the
/// process's CPU, one `syncfs` per batch 1.5-1.7 s and 1.2-1.4 s, against 1.2-1.6 s for
/// writing the files with no sync at all. Concurrent fsyncs still contend in the journal
/// and each writes its own file; a `syncfs` writes them all in one sweep and commits once.
struct Syncer {
    batch: Arc<BatchSyncs>,
    way: Way,
    /// Files left to the `syncfs`.
    deferred: usize,
}

/// How a [`Syncer`] syncs, from its folder's [`Storage`].
enum Way {
    /// None: tmpfs and ramfs have no disk, and their fsync does nothing.
    Memory,
    /// Each file on the fsync threads.
    Threads,
    /// The first [`ONE_BY_ONE`] files on the threads, the rest with one `syncfs` of this
    /// descriptor of the folder's `tmp/`, opened before the batch's first file: the
    /// point from which it reports writeback errors.
    Whole(File),
}

impl Syncer {
    fn for_folder(dir: &Path) -> Syncer {
        let way = match storage(dir) {
            Storage::Memory => Way::Memory,
            Storage::Journaled => File::open(dir).map_or(Way::Threads, Way::Whole),
            Storage::Disk => Way::Threads,
        };
        Syncer {
            batch: Arc::default(),
            way,
            deferred: 0,
        }
    }

    fn submit(&mut self, file: File, index: usize) {
        match self.way {
            Way::Memory => return,
            Way::Whole(_) if index >= ONE_BY_ONE => {
                // Closed unsynced: the `syncfs` at commit writes it.
                self.deferred += 1;
                return;
            }
            Way::Threads | Way::Whole(_) => {}
        }
        self.batch.lock().0 += 1;
        let job = (file, index, Arc::clone(&self.batch));
        // Bounded, so a writer faster than the disk waits instead of holding an open file
        // descriptor per queued message.
        let sent = match sync_pool() {
            Some(pool) => pool.send(job).map_err(|e| e.0),
            None => Err(job),
        };
        // No worker could be started (or all are gone): sync where it is finished.
        if let Err((file, index, batch)) = sent {
            batch.finished(index, file.sync_all());
        }
    }

    /// Wait for every submitted fsync, then sync the filesystem if files were left to
    /// it; the first failure.
    fn finish(self) -> Result<(), Failed> {
        if let Some((i, e)) = self.wait().1.take() {
            return Err(Failed::File(i, e));
        }
        match &self.way {
            Way::Whole(tmp) if self.deferred > 0 => syncfs(tmp).map_err(Failed::Filesystem),
            _ => Ok(()),
        }
    }

    fn wait(&self) -> std::sync::MutexGuard<'_, (usize, SyncFailure)> {
        let mut state = self.batch.lock();
        while state.0 > 0 {
            state = self
                .batch
                .done
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn syncfs(folder: &File) -> io::Result<()> {
    #[cfg(test)]
    if tests::FAIL_SYNCFS.with(std::cell::Cell::get) {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    rustix::fs::syncfs(folder).map_err(io::Error::from)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn syncfs(_folder: &File) -> io::Result<()> {
    Err(io::Error::other("syncfs is Linux only"))
}

/// What `dir`'s filesystem is (`statfs`); a failed `statfs` counts as a disk.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn storage(dir: &Path) -> Storage {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    // ext2, ext3 and ext4 share one. (ext2 keeps no journal and its `syncfs` flushes
    // no disk cache; the fsync of `new/` or `cur/` after the placing does.)
    const EXT4_SUPER_MAGIC: u64 = 0xef53;
    const XFS_SUPER_MAGIC: u64 = 0x5846_5342;
    const BTRFS_SUPER_MAGIC: u64 = 0x9123_683e;
    const F2FS_SUPER_MAGIC: u64 = 0xf2f5_2010;
    let Ok(fs) = rustix::fs::statfs(dir) else {
        return Storage::Disk;
    };
    match fs.f_type as u64 {
        TMPFS_MAGIC | RAMFS_MAGIC => Storage::Memory,
        EXT4_SUPER_MAGIC | XFS_SUPER_MAGIC | BTRFS_SUPER_MAGIC | F2FS_SUPER_MAGIC
            if syncfs_reports_errors() =>
        {
            Storage::Journaled
        }
        _ => Storage::Disk,
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn storage(_dir: &Path) -> Storage {
    Storage::Disk
}

/// Whether this kernel's `syncfs` fails when a write or the filesystem's own sync does:
/// Linux 5.17 and later. Since 5.8 it returned the files' writeback errors, but until
/// 5.17 it dropped the error of the filesystem's sync (a failed journal commit or cache
/// flush on ext4, a log error on XFS). Backports to older stable kernels cannot be told
/// from the release; those keep an fsync per file.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn syncfs_reports_errors() -> bool {
    static REPORTS: OnceLock<bool> = OnceLock::new();
    *REPORTS.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .is_ok_and(|release| kernel_at_least(&release, (5, 17)))
    })
}

/// Whether a kernel release (`6.1.0-18-amd64`, `5.10.0`) is at least `want`.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= want,
        _ => false,
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Pending fsyncs finish before their files can be removed.
        drop(self.wait());
    }
}

impl Drop for DeliveryBatch<'_> {
    fn drop(&mut self) {
        // Let pending fsyncs finish before their files are removed.
        self.syncer.take();
        for s in &self.staged {
            let _ = std::fs::remove_file(&s.tmp);
        }
    }
}

impl DeliveryBatch<'_> {
    /// Give a synced tmp file its visible name without overwriting anything: one
    /// rename that refuses an existing name where the filesystem has one, else
    /// [`link_into_place`]. Either way the name is durable once the caller fsyncs the
    /// directory, and a crash before that is recovered from the batch's open intents.
    fn place(&self, s: &Staged) -> Result<(), DeliveryError> {
        let (key, dest) = (&s.delivered.key, &s.delivered.path);
        if self
            .md
            .try_rename_exclusive(&s.tmp, dest)
            .map_err(io_err(key, dest))?
        {
            return Ok(());
        }
        self.link_into_place(s)
    }

    /// Link a synced tmp file into place, then unlink its tmp name; where the
    /// filesystem has no hard links (some FUSE and SMB mounts), check that the name is
    /// free, then rename. A crash between the two steps leaves the file under both
    /// names; recovery discards the tmp one.
    fn link_into_place(&self, s: &Staged) -> Result<(), DeliveryError> {
        let (key, dest) = (&s.delivered.key, &s.delivered.path);
        match std::fs::hard_link(&s.tmp, dest) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
                ) =>
            {
                return self
                    .md
                    .rename_exclusive(&s.tmp, dest)
                    .map_err(io_err(key, dest));
            }
            Err(e) => return Err(io_err(key, dest)(e)),
        }
        std::fs::remove_file(&s.tmp).map_err(io_err(key, &s.tmp))
    }
}

/// A message being written to `tmp/`. See [`DeliveryBatch::begin`].
pub struct TmpWriter<'b, 'a> {
    batch: &'b mut DeliveryBatch<'a>,
    key: MaildirKey,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    size: u64,
}

impl TmpWriter<'_, '_> {
    pub fn key(&self) -> &MaildirKey {
        &self.key
    }

    /// The message is complete: stage it (or, in `sync_each` mode, make it durable now).
    pub fn finish(mut self, placement: Placement) -> Result<(), DeliveryError> {
        let Some(w) = self.file.take() else {
            return Err(DeliveryError::Io {
                key: self.key.clone(),
                path: self.tmp.clone(),
                source: io::Error::other("writer already finished"),
            });
        };
        let file = match w.into_inner() {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&self.tmp);
                return Err(DeliveryError::Io {
                    key: self.key.clone(),
                    path: self.tmp.clone(),
                    source: e.into_error(),
                });
            }
        };
        let (key, tmp) = (self.key.clone(), std::mem::take(&mut self.tmp));
        self.batch.stage(key, tmp, file, self.size, placement)
    }
}

impl Write for TmpWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let w = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("writer already finished"))?;
        let n = w.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for TmpWriter<'_, '_> {
    fn drop(&mut self) {
        // Unfinished: a cut connection or an error mid-message. Leave nothing behind.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildir::{FolderMap, Layout, new_key, rename};
    use crate::model::{Flag, FolderName};
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, Maildir) {
        let dir = tempfile::tempdir().unwrap();
        let map = FolderMap::new(dir.path(), Layout::Verbatim, Some('/'));
        let path = map.create(&FolderName("INBOX".into())).unwrap();
        (dir, Maildir::open(path).unwrap())
    }

    thread_local! {
        /// Makes this thread's `syncfs` fail with EIO.
        pub static FAIL_SYNCFS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A folder under the build directory, not the temporary directory (which may be
    /// tmpfs): on a disk. The batches there are synced whole, so the test fails where
    /// that disk is not a local journaling filesystem on Linux 5.17 or later.
    #[cfg(target_os = "linux")]
    fn on_disk() -> (tempfile::TempDir, Maildir) {
        let base = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(&base).unwrap();
        let map = FolderMap::new(dir.path(), Layout::Verbatim, Some('/'));
        let md = Maildir::open(map.create(&FolderName("INBOX".into())).unwrap()).unwrap();
        assert_eq!(
            storage(&md.tmp_dir()),
            Storage::Journaled,
            "{:?} should be ext4, XFS, btrfs or F2FS on Linux 5.17 or later",
            dir.path()
        );
        (dir, md)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rule_03_delivery_is_exclusive_0600_and_no_overwrite() {
        let (_d, md) = setup();
        let key = new_key();
        // A leftover tmp file with the same name is never reused or truncated.
        std::fs::write(md.tmp_dir().join(&key.0), b"someone else's").unwrap();
        let mut batch = DeliveryBatch::new(&md);
        let err = batch
            .deliver(key.clone(), b"mine", Placement::New)
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Collision { .. }), "{err}");
        assert_eq!(
            std::fs::read(md.tmp_dir().join(&key.0)).unwrap(),
            b"someone else's"
        );
        std::fs::remove_file(md.tmp_dir().join(&key.0)).unwrap();

        // An existing file in new/ under the key is not overwritten at commit.
        std::fs::write(md.new_dir().join(&key.0), b"existing").unwrap();
        let mut batch = DeliveryBatch::new(&md);
        batch.deliver(key.clone(), b"mine", Placement::New).unwrap();
        let err = batch.commit_durable().unwrap_err();
        assert!(matches!(err, DeliveryError::Collision { .. }), "{err}");
        assert_eq!(
            std::fs::read(md.new_dir().join(&key.0)).unwrap(),
            b"existing"
        );
        assert!(
            names(&md.tmp_dir()).is_empty(),
            "failed batch leaves no tmp files"
        );

        // A normal delivery: 0600, content intact, nothing left in tmp/.
        let k2 = new_key();
        let mut batch = DeliveryBatch::new(&md);
        batch
            .deliver(
                k2.clone(),
                b"hello",
                Placement::Cur(Flags::new().with(Flag::Seen)),
            )
            .unwrap();
        let out = batch.commit_durable().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, md.cur_dir().join(format!("{}:2,S", k2.0)));
        let mode = std::fs::metadata(&out[0].path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&out[0].path).unwrap(), b"hello");
        assert!(names(&md.tmp_dir()).is_empty());
    }

    #[test]
    fn nothing_is_visible_before_commit() {
        let (_d, md) = setup();
        let mut batch = DeliveryBatch::new(&md);
        for i in 0..5 {
            batch
                .deliver(new_key(), format!("msg {i}").as_bytes(), Placement::New)
                .unwrap();
        }
        assert!(names(&md.new_dir()).is_empty());
        assert_eq!(names(&md.tmp_dir()).len(), 5);
        let out = batch.commit_durable().unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(names(&md.new_dir()).len(), 5);
        assert!(names(&md.tmp_dir()).is_empty());
    }

    /// On tmpfs no file is synced (its fsync does nothing); the batch behaves the same:
    /// nothing visible before commit, everything after.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_folder_in_memory_is_not_synced_and_commits_the_same() {
        let shm = tempfile::tempdir_in("/dev/shm").expect("/dev/shm (tmpfs) on Linux");
        let map = FolderMap::new(shm.path(), Layout::Verbatim, Some('/'));
        let md = Maildir::open(map.create(&FolderName("INBOX".into())).unwrap()).unwrap();
        assert_eq!(storage(&md.tmp_dir()), Storage::Memory, "{:?}", shm.path());
        let mut batch = DeliveryBatch::new(&md);
        for i in 0..5 {
            batch
                .deliver(new_key(), format!("msg {i}").as_bytes(), Placement::New)
                .unwrap();
        }
        assert!(
            batch
                .syncer
                .as_ref()
                .is_some_and(|s| matches!(s.way, Way::Memory) && s.deferred == 0)
        );
        assert!(names(&md.new_dir()).is_empty());
        assert_eq!(batch.commit_durable().unwrap().len(), 5);
        assert_eq!(names(&md.new_dir()).len(), 5);
        assert!(names(&md.tmp_dir()).is_empty());
    }

    /// On a local journaling filesystem (this checkout's disk: ext4 here and in CI),
    /// the first files of a batch are fsynced one by one and the rest are left to one
    /// `syncfs` at commit; the batch behaves the same. Run where the checkout is, not in
    /// the temporary directory, which may be tmpfs.
    #[cfg(target_os = "linux")]
    #[test]
    fn rule_03_a_batch_on_a_journaled_disk_is_synced_whole_and_commits_the_same() {
        let (_dir, md) = on_disk();
        let mut batch = DeliveryBatch::new(&md);
        for i in 0..ONE_BY_ONE + 5 {
            let placement = if i % 2 == 0 {
                Placement::New
            } else {
                Placement::Cur(Flags::new().with(Flag::Seen))
            };
            batch
                .deliver(new_key(), format!("msg {i}").as_bytes(), placement)
                .unwrap();
        }
        assert!(batch.syncer.as_ref().is_some_and(|s| s.deferred == 5));
        assert!(names(&md.new_dir()).is_empty() && names(&md.cur_dir()).is_empty());
        assert_eq!(batch.commit_durable().unwrap().len(), ONE_BY_ONE + 5);
        assert_eq!(names(&md.new_dir()).len() + names(&md.cur_dir()).len(), 13);
        assert!(names(&md.tmp_dir()).is_empty());
        // A batch of a few (a daemon's new mail) never syncs the whole filesystem.
        let mut batch = DeliveryBatch::new(&md);
        batch.deliver(new_key(), b"one", Placement::New).unwrap();
        assert!(batch.syncer.as_ref().is_some_and(|s| s.deferred == 0));
        batch.commit_durable().unwrap();
    }

    #[test]
    fn syncfs_is_trusted_from_linux_5_17() {
        for (release, ok) in [
            ("6.1.0-18-amd64", true),
            ("5.17.0", true),
            ("5.16.20", false),
            ("5.10.0-28-cloud-amd64", false),
            ("4.18.0-513.el8.x86_64", false),
            ("10.0", true),
            ("6", false),
            ("", false),
            ("garbage", false),
        ] {
            assert_eq!(kernel_at_least(release, (5, 17)), ok, "{release:?}");
        }
    }

    /// A failed `syncfs` (its error may be any file's on the filesystem) falls back to
    /// an fsync of each file it was to sync; the batch commits when those succeed.
    #[cfg(target_os = "linux")]
    #[test]
    fn rule_03_a_failed_syncfs_falls_back_to_an_fsync_per_file() {
        let (_dir, md) = on_disk();
        let mut batch = DeliveryBatch::new(&md);
        for i in 0..ONE_BY_ONE + 3 {
            batch
                .deliver(new_key(), format!("msg {i}").as_bytes(), Placement::New)
                .unwrap();
        }
        FAIL_SYNCFS.with(|f| f.set(true));
        let out = batch.commit_durable();
        FAIL_SYNCFS.with(|f| f.set(false));
        assert_eq!(out.unwrap().len(), ONE_BY_ONE + 3);
        assert_eq!(names(&md.new_dir()).len(), ONE_BY_ONE + 3);
        assert!(names(&md.tmp_dir()).is_empty());
    }

    /// Where the filesystem has no `RENAME_NOREPLACE` (NFS, ZFS, most FUSE mounts), a
    /// file is linked into place and its tmp name unlinked: still never over an
    /// existing file, and nothing is left in `tmp/`. A folder tries the rename once.
    #[test]
    fn rule_03_without_rename_noreplace_delivery_links_and_still_never_overwrites() {
        let (_d, md) = setup();
        let (taken, free) = (new_key(), new_key());
        std::fs::write(md.new_dir().join(&taken.0), b"existing").unwrap();
        let more = [new_key(), new_key()];
        let ((refused, placed), tried) = rename::hooks::with_renames(false, || {
            let mut batch = DeliveryBatch::new(&md);
            batch
                .deliver(taken.clone(), b"mine", Placement::New)
                .unwrap();
            let refused = batch.commit_durable();
            let mut batch = DeliveryBatch::new(&md);
            for key in [&free, &more[0], &more[1]] {
                batch.deliver(key.clone(), b"mine", Placement::New).unwrap();
            }
            (refused, batch.commit_durable())
        });
        assert!(
            matches!(refused, Err(DeliveryError::Collision { .. })),
            "{refused:?}"
        );
        assert_eq!(
            std::fs::read(md.new_dir().join(&taken.0)).unwrap(),
            b"existing"
        );
        assert_eq!(placed.unwrap().len(), 3);
        assert_eq!(tried, 1, "one failed rename per folder, not one per file");
        assert_eq!(std::fs::read(md.new_dir().join(&free.0)).unwrap(), b"mine");
        assert!(names(&md.tmp_dir()).is_empty());
    }

    #[test]
    fn dropped_batch_and_unfinished_writer_leave_nothing() {
        let (_d, md) = setup();
        {
            let mut batch = DeliveryBatch::new(&md);
            batch.deliver(new_key(), b"a", Placement::New).unwrap();
            let mut w = batch.begin(new_key()).unwrap();
            w.write_all(b"partial").unwrap();
            drop(w);
        }
        assert!(names(&md.tmp_dir()).is_empty());
        assert!(names(&md.new_dir()).is_empty());
    }

    #[test]
    fn streamed_delivery_and_sync_each_mode() {
        let (_d, md) = setup();
        let mut batch = DeliveryBatch::new(&md).sync_each(true);
        let key = new_key();
        let mut w = batch.begin(key.clone()).unwrap();
        for chunk in [&b"Subject: hi\r\n"[..], b"\r\n", b"body\r\n"] {
            w.write_all(chunk).unwrap();
        }
        w.finish(Placement::New).unwrap();
        // Already durable and visible in sync_each mode.
        assert_eq!(names(&md.new_dir()), vec![key.0.clone()]);
        let out = batch.commit_durable().unwrap();
        assert_eq!(out[0].size, 21);
        let scan = md.scan().unwrap();
        assert_eq!(scan.messages[&key].size, 21);
    }
}
