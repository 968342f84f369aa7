//! Mapping server folder names to Maildir directories under the account root and back,
//! refusing any name that could leave the root or collide with Maildir's own names
//! (rule 17, CVE-2021-20247 in isync).
//!
//! Layouts:
//! - `verbatim`: one directory per hierarchy level, `Archive/2024` -> `<root>/Archive/2024`;
//!   INBOX is `<root>/INBOX`.
//! - `maildir++`: flat, `Archive/2024` -> `<root>/.Archive.2024`; INBOX is the root itself
//!   (the Dovecot and Courier convention).
//!
//! Where the server keeps the user's folders under a personal namespace prefix (`INBOX.`
//! in Cyrus's standard namespace and in Courier), the prefix is left out locally and put
//! back for the server: `INBOX.Archive` is `Archive`, INBOX stays INBOX (rule 24).

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use crate::maildir::{rename, utf7};
use crate::model::FolderName;

/// The longest single path component we create (the common filesystem limit).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// The longest folder name we accept, in bytes of its decoded form.
pub const MAX_NAME_BYTES: usize = 1024;

/// How folders are laid out under the account root. Config key `layout`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `Archive/2024` becomes the directory `Archive/2024/` with its own cur/new/tmp.
    #[default]
    Verbatim,
    /// `Archive/2024` becomes `.Archive.2024/` (Courier/Dovecot style, what many clients
    /// expect).
    #[serde(rename = "maildir++")]
    MaildirPlusPlus,
}

/// How folder names are spelled on disk. Config key `folder_names`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub enum FolderNames {
    /// `Entwürfe/`: readable, what most mail clients show.
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// `Entw&APw-rfe/`: the IMAP wire spelling, as mbsync and OfflineIMAP (without
    /// `utf8foldernames`) store folders; for a Maildir tree one of them made.
    #[serde(rename = "modified-utf-7")]
    ModifiedUtf7,
}

/// Why a server folder name cannot be mapped. Always names the folder.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("server folder {}: not canonical modified UTF-7: {source}", shown(.wire))]
    Encoding {
        wire: String,
        source: utf7::Utf7Error,
    },
    #[error("server folder {}: {reason}", shown(.folder))]
    Unsafe {
        folder: String,
        reason: &'static str,
    },
    #[error("local folder {path:?}: {reason}")]
    UnsafeLocal { path: PathBuf, reason: &'static str },
    #[error(
        "server folder {folder:?}: {path:?} is a symlink or not a directory; refusing to use it"
    )]
    NotADirectory { folder: String, path: PathBuf },
    #[error("server folder {}: creating {path:?}: {source}", shown(.folder))]
    Io {
        folder: String,
        path: PathBuf,
        source: io::Error,
    },
}

/// A folder name as a message prefix: as it is when short and printable, else as
/// `shown` makes it, so a hostile name cannot put control characters or 5 kB into a
/// log line.
pub fn shown_prefix(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().count() <= 100 && !name.chars().any(char::is_control) {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(shown(name))
    }
}

/// A folder name for a message: quoted and escaped, and cut after 100 characters so a
/// hostile 5 kB name does not flood the log.
fn shown(name: &str) -> String {
    const MAX: usize = 100;
    if name.chars().count() <= MAX {
        format!("{name:?}")
    } else {
        let head: String = name.chars().take(MAX).collect();
        format!("{head:?}... ({} bytes)", name.len())
    }
}

/// Decode a folder name as the server sent it (modified UTF-7).
pub fn decode_server_name(wire: &str) -> Result<FolderName, FolderError> {
    utf7::decode(wire)
        .map(FolderName)
        .map_err(|source| FolderError::Encoding {
            wire: wire.to_owned(),
            source,
        })
}

/// The folder naming of one account.
#[derive(Clone, Debug)]
pub struct FolderMap {
    pub root: PathBuf,
    pub layout: Layout,
    /// The server's hierarchy delimiter; `None` for a flat namespace.
    pub delimiter: Option<char>,
    /// Directory names in modified UTF-7 (`Entw&APw-rfe`), as mbsync and OfflineIMAP
    /// write them, instead of UTF-8 (`Entwürfe`). Config key `folder_names`.
    pub utf7_names: bool,
    /// The personal namespace prefix (decoded, ending in the delimiter), e.g. `INBOX.`:
    /// left out of local names. `None` maps server names as they are.
    pub prefix: Option<String>,
}

impl FolderMap {
    pub fn new(root: impl Into<PathBuf>, layout: Layout, delimiter: Option<char>) -> FolderMap {
        FolderMap {
            root: root.into(),
            layout,
            delimiter,
            utf7_names: false,
            prefix: None,
        }
    }

    /// The same map with the server's personal namespace prefix (decoded from modified
    /// UTF-7) left out of local names. An empty prefix changes nothing; one without the
    /// delimiter at its end gets it, so `INBOX` and `INBOX.` both mean `INBOX.`.
    pub fn with_prefix(mut self, prefix: Option<&str>) -> FolderMap {
        self.prefix = prefix
            .filter(|p| !p.is_empty())
            .map(|p| match self.delimiter {
                Some(d) if !p.ends_with(d) => format!("{p}{d}"),
                _ => p.to_owned(),
            });
        self
    }

    /// The name of a server folder within the personal namespace, without its prefix
    /// (`INBOX.Archive` -> `Archive`); the name itself without a prefix. `None` for a
    /// folder outside it (another user's, a shared one), which this map does not place.
    /// INBOX is INBOX.
    pub fn personal_name<'a>(&self, name: &'a str) -> Option<&'a str> {
        let Some(prefix) = &self.prefix else {
            return Some(name);
        };
        if name.eq_ignore_ascii_case("INBOX") {
            return Some(name);
        }
        // The INBOX of `INBOX.` is case-insensitive, like INBOX itself.
        let (head, rest) = (name.get(..prefix.len())?, &name[prefix.len()..]);
        let (head, want) = (head.as_bytes(), prefix.as_bytes());
        let same = if want.len() >= 5 && want[..5].eq_ignore_ascii_case(b"INBOX") {
            head[..5].eq_ignore_ascii_case(b"INBOX") && head[5..] == want[5..]
        } else {
            head == want
        };
        (same && !rest.is_empty()).then_some(rest)
    }

    /// The same map with directory names in modified UTF-7 (or UTF-8 again).
    pub fn with_utf7_names(mut self, on: bool) -> FolderMap {
        self.utf7_names = on;
        self
    }

    /// The checked components of a server name, INBOX normalised.
    fn components<'a>(&self, name: &'a FolderName) -> Result<Vec<&'a str>, FolderError> {
        let unsafe_name = |reason| FolderError::Unsafe {
            folder: name.0.clone(),
            reason,
        };
        if name.0.len() > MAX_NAME_BYTES {
            return Err(unsafe_name("name is longer than 1024 bytes"));
        }
        // INBOX is case-insensitive and written `INBOX` locally; with a letter (or digit)
        // as the delimiter, that spelling could split differently from the server's
        // (`inbox` -> `INBOX` -> `IN` `OX` with delimiter `B`), so it would not map back.
        if self.delimiter.is_some_and(|d| d.is_ascii_alphanumeric()) {
            return Err(unsafe_name(
                "the server's hierarchy delimiter is a letter or digit, so names cannot be split safely",
            ));
        }
        let local = self
            .personal_name(&name.0)
            .ok_or_else(|| unsafe_name("outside the personal namespace"))?;
        let parts: Vec<&str> = match self.delimiter {
            Some(d) => local.split(d).collect(),
            None => vec![local],
        };
        // `INBOX.INBOX` would be INBOX locally, and `INBOX.INBOX.x` a folder below the
        // local INBOX, which is where the prefix's folders lived before it was left out.
        if self.prefix.is_some()
            && !name.0.eq_ignore_ascii_case("INBOX")
            && parts[0].eq_ignore_ascii_case("INBOX")
        {
            return Err(unsafe_name(
                "INBOX inside the personal namespace cannot be told from INBOX locally",
            ));
        }
        for part in &parts {
            check_component(part, self.layout).map_err(unsafe_name)?;
        }
        Ok(parts)
    }

    /// The local directory for a server folder. Pure: checks the name, touches nothing.
    pub fn to_local(&self, name: &FolderName) -> Result<PathBuf, FolderError> {
        Ok(self.root.join(self.relative(name)?))
    }

    /// The directory for a server folder relative to the root (empty for the maildir++
    /// INBOX).
    pub fn relative(&self, name: &FolderName) -> Result<PathBuf, FolderError> {
        let parts: Vec<String> = self
            .components(name)?
            .into_iter()
            .map(|p| {
                if self.utf7_names {
                    utf7::encode(p)
                } else {
                    p.to_owned()
                }
            })
            .collect();
        let inbox = parts.len() == 1 && parts[0].eq_ignore_ascii_case("INBOX");
        match self.layout {
            Layout::Verbatim => {
                let mut rel = PathBuf::new();
                for (i, part) in parts.iter().enumerate() {
                    if i == 0 && part.eq_ignore_ascii_case("INBOX") {
                        rel.push("INBOX");
                    } else {
                        rel.push(part);
                    }
                }
                Ok(rel)
            }
            Layout::MaildirPlusPlus if inbox => Ok(PathBuf::new()),
            Layout::MaildirPlusPlus => {
                let mut dir = String::new();
                for (i, part) in parts.iter().enumerate() {
                    dir.push('.');
                    if i == 0 && part.eq_ignore_ascii_case("INBOX") {
                        dir.push_str("INBOX");
                    } else {
                        dir.push_str(part);
                    }
                }
                if dir.len() > MAX_COMPONENT_BYTES {
                    return Err(FolderError::Unsafe {
                        folder: name.0.clone(),
                        reason: "maildir++ directory name would exceed 255 bytes",
                    });
                }
                Ok(PathBuf::from(dir))
            }
        }
    }

    /// The server folder name for a directory relative to the root; the inverse of
    /// [`FolderMap::relative`]. Used for folders a mail client created locally.
    pub fn to_server(&self, rel: &Path) -> Result<FolderName, FolderError> {
        let bad = |reason| FolderError::UnsafeLocal {
            path: rel.to_owned(),
            reason,
        };
        let mut parts: Vec<String> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(s) => {
                    parts.push(s.to_str().ok_or_else(|| bad("not UTF-8"))?.to_owned())
                }
                Component::CurDir => {}
                _ => return Err(bad("not a plain relative path")),
            }
        }
        let parts: Vec<String> = match self.layout {
            Layout::Verbatim => {
                if parts.is_empty() {
                    return Err(bad("the root is not a folder in the verbatim layout"));
                }
                parts
            }
            Layout::MaildirPlusPlus => match parts.as_slice() {
                [] => vec!["INBOX".to_owned()],
                [one] => {
                    let rest = one
                        .strip_prefix('.')
                        .ok_or_else(|| bad("maildir++ folders start with '.'"))?;
                    rest.split('.').map(str::to_owned).collect()
                }
                _ => return Err(bad("maildir++ folders are not nested")),
            },
        };
        let parts: Vec<String> = if self.utf7_names {
            parts
                .iter()
                .map(|p| utf7::decode(p).map_err(|_| bad("not modified UTF-7")))
                .collect::<Result<_, _>>()?
        } else {
            parts
        };
        if self.prefix.is_some() && parts.len() > 1 && parts[0].eq_ignore_ascii_case("INBOX") {
            return Err(bad(
                "a folder below INBOX; the server keeps folders under its personal namespace, and they are at the top level locally (`Archive`, not `INBOX/Archive`)",
            ));
        }
        let joined = match self.delimiter {
            Some(d) => parts.join(&d.to_string()),
            None if parts.len() == 1 => parts[0].clone(),
            None => return Err(bad("nested folder but the server has no hierarchy")),
        };
        let joined = match &self.prefix {
            Some(prefix) if !joined.eq_ignore_ascii_case("INBOX") => format!("{prefix}{joined}"),
            _ => joined,
        };
        let name = FolderName(joined);
        // Whatever we accept from disk must map back to the same place.
        match self.relative(&name) {
            Ok(back) if back == rel => Ok(name),
            Ok(_) => Err(bad("does not map back to itself")),
            Err(_) => Err(bad("not a name we would create")),
        }
    }

    /// Create the Maildir for a server folder (and its parents) with mode 0700, one
    /// component at a time, refusing any existing component that is a symlink or not a
    /// directory. The root itself must exist (it may be a symlink: the user chose it).
    pub fn create(&self, name: &FolderName) -> Result<PathBuf, FolderError> {
        let rel = self.relative(name)?;
        let io_err = |path: &Path, source| FolderError::Io {
            folder: name.0.clone(),
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(&self.root).map_err(|e| io_err(&self.root, e))?;
        if !meta.is_dir() {
            return Err(FolderError::NotADirectory {
                folder: name.0.clone(),
                path: self.root.clone(),
            });
        }
        let mut path = self.root.clone();
        let subdirs = [Path::new("cur"), Path::new("new"), Path::new("tmp")];
        let components: Vec<&Path> = rel.components().map(|c| Path::new(c.as_os_str())).collect();
        // Intermediate verbatim levels get no cur/new/tmp: the engine creates them as
        // folders only if the server has them as folders.
        for comp in components {
            path.push(comp);
            make_private_dir(&path, name, &io_err)?;
        }
        for sub in subdirs {
            let p = path.join(sub);
            make_private_dir(&p, name, &io_err)?;
        }
        Ok(path)
    }

    /// Move the Maildir folder of `from` to where `to` maps (a folder renamed on the
    /// server), with its files: nothing is copied, names and inodes stay. Parents are
    /// made as [`FolderMap::create`] makes them; a target that exists is never
    /// overwritten. `Ok(false)`: nothing to move, because `from` is not there but `to`
    /// already is (it moved with its parent's directory in the verbatim layout). Both
    /// parent directories are synced before it returns.
    pub fn rename(&self, from: &FolderName, to: &FolderName) -> Result<bool, FolderError> {
        let old = self.to_local(from)?;
        let new = self.to_local(to)?;
        let io_err = |path: &Path, source| FolderError::Io {
            folder: to.0.clone(),
            path: path.to_owned(),
            source,
        };
        if !is_maildir(&old) && is_maildir(&new) {
            return Ok(false);
        }
        if std::fs::symlink_metadata(&new).is_ok() {
            return Err(io_err(
                &new,
                io::Error::new(io::ErrorKind::AlreadyExists, "the target exists"),
            ));
        }
        let parent = new.parent().unwrap_or(&self.root).to_path_buf();
        let rel_parent = self.relative(to)?.parent().map(Path::to_path_buf);
        let mut path = self.root.clone();
        for comp in rel_parent.iter().flat_map(|p| p.components()) {
            path.push(comp);
            make_private_dir(&path, to, &io_err)?;
        }
        // Checked above; this closes the window if something appeared since.
        rename::NoReplace::default()
            .rename(&old, &new)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => io_err(&new, e),
                _ => io_err(&old, e),
            })?;
        super::sync_dir(&parent).map_err(|e| io_err(&parent, e))?;
        let old_parent = old.parent().unwrap_or(&self.root);
        super::sync_dir(old_parent).map_err(|e| io_err(old_parent, e))?;
        Ok(true)
    }
}

/// The folders found under an account root.
#[derive(Debug, Default)]
pub struct LocalFolders {
    /// Each folder's server name and directory, by server name.
    pub folders: Vec<(FolderName, PathBuf)>,
    /// Maildirs whose name we would not create, so cannot map to a server name.
    pub skipped: Vec<(PathBuf, FolderError)>,
}

/// Nesting deeper than this is not followed (a loop guard; symlinks are never followed).
const MAX_DEPTH: usize = 32;

fn is_maildir(dir: &Path) -> bool {
    ["cur", "new", "tmp"]
        .iter()
        .all(|sub| std::fs::symlink_metadata(dir.join(sub)).is_ok_and(|m| m.file_type().is_dir()))
}

impl FolderMap {
    /// Find the folders that exist locally (for folders a mail client created). Symlinks
    /// are not followed; directories that do not map back are reported, not guessed at.
    pub fn list_local(&self) -> io::Result<LocalFolders> {
        let mut found = LocalFolders::default();
        let consider = |rel: PathBuf, found: &mut LocalFolders| match self.to_server(&rel) {
            Ok(name) => found.folders.push((name, self.root.join(&rel))),
            Err(e) => found.skipped.push((self.root.join(&rel), e)),
        };
        match self.layout {
            Layout::MaildirPlusPlus => {
                if is_maildir(&self.root) {
                    consider(PathBuf::new(), &mut found);
                }
                for entry in std::fs::read_dir(&self.root)? {
                    let entry = entry?;
                    let name = entry.file_name();
                    let dotted = name
                        .to_str()
                        .is_some_and(|n| n.starts_with('.') && n != "." && n != "..");
                    if dotted && entry.file_type()?.is_dir() && is_maildir(&entry.path()) {
                        consider(PathBuf::from(name), &mut found);
                    }
                }
            }
            Layout::Verbatim => {
                let mut stack = vec![(PathBuf::new(), 0usize)];
                while let Some((rel, depth)) = stack.pop() {
                    let dir = self.root.join(&rel);
                    if !rel.as_os_str().is_empty() && is_maildir(&dir) {
                        consider(rel.clone(), &mut found);
                    }
                    if depth >= MAX_DEPTH {
                        continue;
                    }
                    for entry in std::fs::read_dir(&dir)? {
                        let entry = entry?;
                        let name = entry.file_name();
                        let skip = name.to_str().is_some_and(|n| {
                            n.starts_with('.') || ["cur", "new", "tmp"].contains(&n)
                        });
                        if !skip && entry.file_type()?.is_dir() {
                            stack.push((rel.join(name), depth + 1));
                        }
                    }
                }
            }
        }
        found.folders.sort();
        Ok(found)
    }
}

fn make_private_dir(
    path: &Path,
    name: &FolderName,
    io_err: &dyn Fn(&Path, io::Error) -> FolderError,
) -> Result<(), FolderError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(_) => Err(FolderError::NotADirectory {
            folder: name.0.clone(),
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => Ok(()),
                // Lost a race with another creator: fine if it made a real directory.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match std::fs::symlink_metadata(path) {
                        Ok(m) if m.file_type().is_dir() => Ok(()),
                        _ => Err(FolderError::NotADirectory {
                            folder: name.0.clone(),
                            path: path.to_owned(),
                        }),
                    }
                }
                Err(e) => Err(io_err(path, e)),
            }
        }
        Err(e) => Err(io_err(path, e)),
    }
}

fn check_component(part: &str, layout: Layout) -> Result<(), &'static str> {
    if part.is_empty() {
        return Err("empty hierarchy component");
    }
    if part == "." || part == ".." {
        return Err("component is '.' or '..'");
    }
    if part.starts_with('.') {
        return Err("component starts with '.' (hidden files and maildir++ folders)");
    }
    if part.contains('/') {
        return Err("component contains '/'");
    }
    if part.chars().any(char::is_control) {
        return Err("component contains NUL or a control character");
    }
    if ["cur", "new", "tmp"]
        .iter()
        .any(|m| part.eq_ignore_ascii_case(m))
    {
        return Err("component would collide with Maildir's cur/new/tmp");
    }
    if part.len() > MAX_COMPONENT_BYTES {
        return Err("component is longer than 255 bytes");
    }
    if layout == Layout::MaildirPlusPlus && part.contains('.') {
        return Err("component contains '.', the maildir++ hierarchy separator");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> FolderName {
        FolderName(s.to_owned())
    }

    #[test]
    fn modified_utf7_names_on_disk_map_both_ways() {
        let m = FolderMap::new("/m", Layout::Verbatim, Some('/')).with_utf7_names(true);
        let rel = m.relative(&name("Archiv/Entwürfe")).unwrap();
        assert_eq!(rel, Path::new("Archiv/Entw&APw-rfe"));
        assert_eq!(m.to_server(&rel).unwrap(), name("Archiv/Entwürfe"));
        // A UTF-8 directory is not a name this map would make.
        assert!(m.to_server(Path::new("Entwürfe")).is_err());
        let pp = FolderMap::new("/m", Layout::MaildirPlusPlus, Some('/')).with_utf7_names(true);
        let rel = pp.relative(&name("Entwürfe/2024")).unwrap();
        assert_eq!(rel, Path::new(".Entw&APw-rfe.2024"));
        assert_eq!(pp.to_server(&rel).unwrap(), name("Entwürfe/2024"));
    }

    #[test]
    fn verbatim_maps_hierarchy_to_directories() {
        let m = FolderMap::new("/m", Layout::Verbatim, Some('/'));
        assert_eq!(m.to_local(&name("INBOX")).unwrap(), Path::new("/m/INBOX"));
        assert_eq!(m.to_local(&name("inbox")).unwrap(), Path::new("/m/INBOX"));
        assert_eq!(
            m.to_local(&name("Archive/2024")).unwrap(),
            Path::new("/m/Archive/2024")
        );
        assert_eq!(
            m.to_server(Path::new("Archive/2024")).unwrap(),
            name("Archive/2024")
        );
        let dot = FolderMap::new("/m", Layout::Verbatim, Some('.'));
        assert_eq!(
            dot.to_local(&name("INBOX.Sent")).unwrap(),
            Path::new("/m/INBOX/Sent")
        );
        assert_eq!(
            dot.to_server(Path::new("INBOX/Sent")).unwrap(),
            name("INBOX.Sent")
        );
    }

    /// Rule 24: Cyrus's standard namespace and Courier keep the user's folders under
    /// `INBOX.`; locally they are at the top level, and INBOX stays INBOX.
    #[test]
    fn rule_24_the_personal_namespace_prefix_is_left_out_locally_and_put_back() {
        let m = FolderMap::new("/m", Layout::Verbatim, Some('.')).with_prefix(Some("INBOX."));
        assert_eq!(m.to_local(&name("INBOX")).unwrap(), Path::new("/m/INBOX"));
        assert_eq!(
            m.to_local(&name("INBOX.Archive")).unwrap(),
            Path::new("/m/Archive")
        );
        assert_eq!(
            m.to_local(&name("INBOX.Archive.2024")).unwrap(),
            Path::new("/m/Archive/2024")
        );
        assert_eq!(
            m.to_local(&name("inbox.Entwürfe")).unwrap(),
            Path::new("/m/Entwürfe")
        );
        assert_eq!(m.to_server(Path::new("INBOX")).unwrap(), name("INBOX"));
        assert_eq!(
            m.to_server(Path::new("Projects")).unwrap(),
            name("INBOX.Projects")
        );
        assert_eq!(
            m.to_server(Path::new("Archive/2024")).unwrap(),
            name("INBOX.Archive.2024")
        );
        // Not the user's own: another user's folder, a shared one.
        assert_eq!(m.personal_name("user.bob.x"), None);
        assert!(m.to_local(&name("user.bob.x")).is_err());
        assert_eq!(m.personal_name("INBOX."), None);
        // INBOX inside the prefix would be INBOX locally; the old place of the prefix's
        // folders (`INBOX/Archive`) is not taken for a new folder `INBOX.INBOX.Archive`.
        assert!(m.to_local(&name("INBOX.INBOX")).is_err());
        assert!(m.to_local(&name("INBOX.inbox.x")).is_err());
        let err = m
            .to_server(Path::new("INBOX/Archive"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("top level"), "{err}");

        // The same in maildir++: `.Archive.2024`, INBOX the root.
        let pp =
            FolderMap::new("/m", Layout::MaildirPlusPlus, Some('.')).with_prefix(Some("INBOX"));
        assert_eq!(pp.prefix.as_deref(), Some("INBOX."));
        assert_eq!(
            pp.to_local(&name("INBOX.Archive.2024")).unwrap(),
            Path::new("/m/.Archive.2024")
        );
        assert_eq!(pp.to_server(Path::new("")).unwrap(), name("INBOX"));
        assert_eq!(
            pp.to_server(Path::new(".Projects")).unwrap(),
            name("INBOX.Projects")
        );
        assert!(pp.to_server(Path::new(".INBOX.Archive")).is_err());

        // An empty prefix (Dovecot's default) changes nothing.
        let plain = FolderMap::new("/m", Layout::Verbatim, Some('.')).with_prefix(Some(""));
        assert_eq!(plain.prefix, None);
        assert_eq!(
            plain.to_local(&name("INBOX.Sent")).unwrap(),
            Path::new("/m/INBOX/Sent")
        );
    }

    #[test]
    fn maildirpp_maps_inbox_to_root_and_flattens() {
        let m = FolderMap::new("/m", Layout::MaildirPlusPlus, Some('/'));
        assert_eq!(m.to_local(&name("INBOX")).unwrap(), Path::new("/m"));
        assert_eq!(
            m.to_local(&name("Archive/2024")).unwrap(),
            Path::new("/m/.Archive.2024")
        );
        assert_eq!(m.to_server(Path::new("")).unwrap(), name("INBOX"));
        assert_eq!(
            m.to_server(Path::new(".Archive.2024")).unwrap(),
            name("Archive/2024")
        );
        assert!(m.to_local(&name("v1.2")).is_err());
        let dot = FolderMap::new("/m", Layout::MaildirPlusPlus, Some('.'));
        assert_eq!(
            dot.to_local(&name("INBOX.Sent")).unwrap(),
            Path::new("/m/.INBOX.Sent")
        );
    }

    #[test]
    fn errors_name_the_server_folder() {
        let m = FolderMap::new("/m", Layout::Verbatim, Some('/'));
        let err = m.to_local(&name("a/../../b")).unwrap_err().to_string();
        assert!(err.contains("a/../../b"), "{err}");
        let err = decode_server_name("&AC4ALg-").unwrap_err().to_string();
        assert!(err.contains("&AC4ALg-"), "{err}");
    }

    /// Found by fuzzing (`tests/fuzz/regressions/folder_name/`): with the delimiter `B`,
    /// `inbox` mapped to `INBOX/`, which mapped back as the folder `IN` `OX`.
    #[test]
    fn a_letter_as_hierarchy_delimiter_is_refused() {
        for layout in [Layout::Verbatim, Layout::MaildirPlusPlus] {
            let m = FolderMap::new("/m", layout, Some('B'));
            for n in ["inbox", "inboxBx", "Archive"] {
                let err = m.relative(&name(n)).unwrap_err().to_string();
                assert!(err.contains("delimiter") && err.contains(n), "{err}");
            }
            assert!(m.to_server(Path::new("INBOX")).is_err());
        }
        let m = FolderMap::new("/m", Layout::Verbatim, Some('\\'));
        assert_eq!(m.relative(&name("a\\b")).unwrap(), Path::new("a/b"));
    }

    #[test]
    fn local_names_that_do_not_map_back_are_refused() {
        let m = FolderMap::new("/m", Layout::Verbatim, Some('/'));
        assert!(m.to_server(Path::new("../x")).is_err());
        assert!(m.to_server(Path::new("/abs")).is_err());
        assert!(m.to_server(Path::new("a/cur")).is_err());
        let pp = FolderMap::new("/m", Layout::MaildirPlusPlus, Some('/'));
        assert!(pp.to_server(Path::new("plain")).is_err());
        assert!(pp.to_server(Path::new(".a..b")).is_err());
        assert!(pp.to_server(Path::new("..")).is_err());
    }

    #[test]
    fn lists_local_folders_in_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let v = FolderMap::new(dir.path().join("v"), Layout::Verbatim, Some('/'));
        std::fs::create_dir(&v.root).unwrap();
        for n in ["INBOX", "Archive/2024", "Sent"] {
            v.create(&name(n)).unwrap();
        }
        std::fs::create_dir_all(v.root.join("junk/dir")).unwrap();
        std::os::unix::fs::symlink(v.root.join("Sent"), v.root.join("Link")).unwrap();
        let found = v.list_local().unwrap();
        let names: Vec<&str> = found.folders.iter().map(|(n, _)| n.0.as_str()).collect();
        assert_eq!(names, ["Archive/2024", "INBOX", "Sent"]);
        assert!(found.skipped.is_empty());

        let pp = FolderMap::new(dir.path().join("pp"), Layout::MaildirPlusPlus, Some('.'));
        std::fs::create_dir(&pp.root).unwrap();
        for n in ["INBOX", "Archive.2024", "Sent"] {
            pp.create(&name(n)).unwrap();
        }
        // A directory a client made that we would not create: reported.
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(pp.root.join(".a..b").join(sub)).unwrap();
        }
        let found = pp.list_local().unwrap();
        let names: Vec<&str> = found.folders.iter().map(|(n, _)| n.0.as_str()).collect();
        assert_eq!(names, ["Archive.2024", "INBOX", "Sent"]);
        assert_eq!(found.skipped.len(), 1);
        assert_eq!(found.folders[1].1, pp.root);
    }

    fn component() -> impl Strategy<Value = String> {
        "[A-Za-z0-9 _äöü台北-]{1,12}".prop_filter("reserved", |s| {
            !["cur", "new", "tmp"]
                .iter()
                .any(|m| s.eq_ignore_ascii_case(m))
        })
    }

    proptest! {
        #[test]
        fn mapping_round_trips(parts in proptest::collection::vec(component(), 1..4),
                               pp in any::<bool>(), slash in any::<bool>()) {
            let layout = if pp { Layout::MaildirPlusPlus } else { Layout::Verbatim };
            let delim = if slash { '/' } else { '.' };
            let m = FolderMap::new("/m", layout, Some(delim));
            let n = FolderName(parts.join(&delim.to_string()));
            let rel = m.relative(&n).unwrap();
            let back = m.to_server(&rel).unwrap();
            // INBOX is case-insensitive; everything else is exact.
            if n.0.eq_ignore_ascii_case("INBOX") {
                prop_assert_eq!(back.0, "INBOX");
            } else {
                let mut want = parts.clone();
                if want[0].eq_ignore_ascii_case("INBOX") { want[0] = "INBOX".into(); }
                prop_assert_eq!(back.0, want.join(&delim.to_string()));
            }
        }

        #[test]
        fn mapping_through_a_prefix_round_trips(parts in proptest::collection::vec(component(), 1..4),
                                                pp in any::<bool>()) {
            prop_assume!(!parts[0].eq_ignore_ascii_case("INBOX"));
            let layout = if pp { Layout::MaildirPlusPlus } else { Layout::Verbatim };
            let m = FolderMap::new("/m", layout, Some('/')).with_prefix(Some("INBOX/"));
            let n = FolderName(format!("INBOX/{}", parts.join("/")));
            let rel = m.relative(&n).unwrap();
            prop_assert_eq!(m.to_server(&rel).unwrap(), n);
        }

        #[test]
        fn no_mapped_path_leaves_the_root(s in "\\PC{0,40}", pp in any::<bool>()) {
            let layout = if pp { Layout::MaildirPlusPlus } else { Layout::Verbatim };
            let m = FolderMap::new("/m", layout, Some('/'));
            if let Ok(rel) = m.relative(&FolderName(s)) {
                for c in rel.components() {
                    prop_assert!(matches!(c, Component::Normal(_)));
                    let c = c.as_os_str().to_str().unwrap();
                    prop_assert!(!["cur", "new", "tmp"].contains(&c));
                }
            }
        }
    }
}
