//! The files state lives in, private whatever the umask (rule 20): directories 0700,
//! files 0600, and the SQLite settings every state database shares.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// Open `path` for reading and writing, creating it 0600 (and a missing parent 0700);
/// never truncated, since a lock file may hold its holder's pid. An existing file is
/// made 0600 too.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Open (creating if needed) a state database: a private file, WAL so readers never
/// wait for the writer, synchronous=FULL so a commit survives power loss.
pub fn open_db(path: &Path) -> Result<Connection, StoreError> {
    drop(private_file(path).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })?);
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!(
            "could not switch {} to WAL (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}
