//! The unified folder's mapping in its own SQLite file (`<state_dir>/unified.sqlite`,
//! 0600, WAL, synchronous=FULL): one row per entry with its base flags, the files of the
//! unified folder already warned about, and the outcome of the last reconcile.
//!
//! Only the reconcile writes it, under the reconcile lock, so a plain connection is used
//! from the blocking reconcile (no writer thread as in `crate::store`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::plan::{Entry, Source};
use crate::model::{AccountName, Flags, FolderName, MaildirKey};
use crate::store::{StoreError, flags_from_db, flags_to_db};

/// Migration `i` takes the database from version `i` to `i + 1` (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[r#"
    -- A file of the unified folder and the account file it shows. `pending` marks a
    -- link being made: recorded before the link (rule 1), cleared once it is durable;
    -- one left by a crash is resolved by looking for the file.
    CREATE TABLE entries (
        unified_key TEXT PRIMARY KEY,
        account     TEXT NOT NULL,
        folder      TEXT NOT NULL,
        local_key   TEXT NOT NULL,
        base_flags  TEXT NOT NULL,
        pending     INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1)),
        UNIQUE (account, folder, local_key)
    ) STRICT;

    -- Files in the unified folder that no entry maps, already warned about once.
    CREATE TABLE strangers (
        unified_key TEXT PRIMARY KEY
    ) STRICT;

    -- Unified files a rebuild removes. Written with the emptied mapping in one
    -- transaction, before any file goes: a crash never leaves an entry whose unified
    -- file is gone (which would read as "deleted by the user") nor a file left behind.
    CREATE TABLE doomed (
        unified_key TEXT PRIMARY KEY
    ) STRICT;

    -- The latest reconcile, for `syncmail unified status`.
    CREATE TABLE status (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        last_ok      INTEGER,
        last_attempt INTEGER NOT NULL,
        last_error   TEXT,
        halts        TEXT NOT NULL DEFAULT ''
    ) STRICT;
    "#];

/// The mapping file's name in the state directory. Not `<name>.sqlite3`, so no account
/// name can collide with it.
pub const FILE_NAME: &str = "unified.sqlite";

/// The mapping database.
pub struct MapStore {
    conn: Connection,
    path: PathBuf,
}

/// What `syncmail unified status` shows of the last reconcile.
#[derive(Clone, Debug, Default)]
pub struct LastRun {
    pub last_ok: Option<SystemTime>,
    pub last_attempt: Option<SystemTime>,
    pub last_error: Option<String>,
    /// One halt per line.
    pub halts: String,
}

fn to_db(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn from_db(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

impl MapStore {
    /// Open (creating 0700/0600 if needed) and migrate the mapping of `state_dir`.
    pub fn open(state_dir: &Path) -> Result<MapStore, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let mut conn = crate::store::files::open_db(&path)?;
        migrate(&mut conn)?;
        Ok(MapStore { conn, path })
    }

    /// Open an existing mapping for reading (`status` beside a running daemon).
    pub fn open_read_only(state_dir: &Path) -> Result<Option<MapStore>, StoreError> {
        let path = state_dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let found = crate::store::schema::version(&conn)?;
        if found != MIGRATIONS.len() as u32 {
            return Err(StoreError::Invalid(format!(
                "{} has schema version {found}, this syncmail reads version {}",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        Ok(Some(MapStore { conn, path }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, with whether it is still pending, in key order.
    pub fn entries(&self) -> Result<Vec<(Entry, bool)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT unified_key, account, folder, local_key, base_flags, pending FROM entries ORDER BY unified_key",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (u, account, folder, local, base, pending) = row?;
            out.push((
                Entry {
                    unified: MaildirKey(u),
                    source: Source {
                        account: AccountName(account),
                        folder: FolderName(folder),
                    },
                    local_key: MaildirKey(local),
                    base: flags_from_db(&base)?,
                },
                pending != 0,
            ));
        }
        Ok(out)
    }

    /// Record links about to be made (pending), in one transaction, before making them.
    /// An entry's unified copy has a new unique part (the same file, renamed).
    pub fn rekey(&mut self, from: &MaildirKey, to: &MaildirKey) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE entries SET unified_key = ?2 WHERE unified_key = ?1",
            [&from.0, &to.0],
        )?;
        Ok(())
    }

    pub fn add_pending(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO entries (unified_key, account, folder, local_key, base_flags, pending) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            )?;
            for e in entries {
                stmt.execute(params![
                    e.unified.0,
                    e.source.account.0,
                    e.source.folder.0,
                    e.local_key.0,
                    flags_to_db(&e.base)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Commit a reconcile's outcome in one transaction: links made durable (pending
    /// cleared), entries dropped, new bases.
    pub fn commit(
        &mut self,
        done: &[MaildirKey],
        dropped: &[MaildirKey],
        bases: &[(MaildirKey, Flags)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for u in done {
            tx.execute(
                "UPDATE entries SET pending = 0 WHERE unified_key = ?1",
                [&u.0],
            )?;
        }
        for u in dropped {
            tx.execute("DELETE FROM entries WHERE unified_key = ?1", [&u.0])?;
        }
        for (u, flags) in bases {
            tx.execute(
                "UPDATE entries SET base_flags = ?2 WHERE unified_key = ?1",
                params![u.0, flags_to_db(flags)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Start a rebuild: forget every entry and remember which unified files to remove,
    /// in one transaction.
    pub fn begin_rebuild(&mut self, doomed: &[MaildirKey]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch("DELETE FROM entries; DELETE FROM strangers;")?;
        for k in doomed {
            tx.execute(
                "INSERT OR IGNORE INTO doomed (unified_key) VALUES (?1)",
                [&k.0],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Unified files a rebuild still has to remove.
    pub fn doomed(&self) -> Result<Vec<MaildirKey>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT unified_key FROM doomed ORDER BY unified_key")?;
        let keys = stmt
            .query_map([], |r| r.get(0).map(MaildirKey))?
            .collect::<Result<_, _>>()?;
        Ok(keys)
    }

    /// The rebuild's files are removed (and that is durable).
    pub fn clear_doomed(&mut self) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM doomed", [])?;
        Ok(())
    }

    /// Remember the strangers present now; returns those not warned about before.
    pub fn note_strangers(&mut self, now: &[MaildirKey]) -> Result<Vec<MaildirKey>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut fresh = Vec::new();
        let known: Vec<String> = {
            let mut stmt = tx.prepare("SELECT unified_key FROM strangers")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for k in &known {
            if !now.iter().any(|n| &n.0 == k) {
                tx.execute("DELETE FROM strangers WHERE unified_key = ?1", [k])?;
            }
        }
        for k in now {
            if !known.contains(&k.0) {
                tx.execute("INSERT INTO strangers (unified_key) VALUES (?1)", [&k.0])?;
                fresh.push(k.clone());
            }
        }
        tx.commit()?;
        Ok(fresh)
    }

    /// Record a reconcile's outcome for `status`.
    pub fn record_run(
        &mut self,
        at: SystemTime,
        error: Option<&str>,
        halts: &[String],
    ) -> Result<(), StoreError> {
        let ok = error.is_none().then(|| to_db(at));
        self.conn.execute(
            "INSERT INTO status (id, last_ok, last_attempt, last_error, halts) VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET last_ok = COALESCE(excluded.last_ok, last_ok),
                 last_attempt = excluded.last_attempt, last_error = excluded.last_error,
                 halts = excluded.halts",
            params![ok, to_db(at), error, halts.join("\n")],
        )?;
        Ok(())
    }

    pub fn last_run(&self) -> Result<LastRun, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT last_ok, last_attempt, last_error, halts FROM status WHERE id = 1",
                [],
                |r| {
                    Ok(LastRun {
                        last_ok: r.get::<_, Option<i64>>(0)?.map(from_db),
                        last_attempt: Some(from_db(r.get(1)?)),
                        last_error: r.get(2)?,
                        halts: r.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    /// Entries per source, for `status`.
    pub fn counts(&self) -> Result<Vec<(Source, usize)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT account, folder, COUNT(*) FROM entries GROUP BY account, folder ORDER BY account, folder",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                Source {
                    account: AccountName(r.get(0)?),
                    folder: FolderName(r.get(1)?),
                },
                r.get::<_, i64>(2)? as usize,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    crate::store::schema::run_migrations(conn, MIGRATIONS, MIGRATIONS.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flag;

    #[test]
    fn entries_round_trip_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut s = MapStore::open(&state).unwrap();
        let e = Entry {
            unified: MaildirKey("u1".into()),
            source: Source {
                account: AccountName("work".into()),
                folder: FolderName("INBOX".into()),
            },
            local_key: MaildirKey("a1".into()),
            base: Flags::new().with(Flag::Seen),
        };
        s.add_pending(std::slice::from_ref(&e)).unwrap();
        assert_eq!(s.entries().unwrap(), [(e.clone(), true)]);
        // The same account message twice is refused by the schema: never a duplicate.
        let mut twice = e.clone();
        twice.unified = MaildirKey("u2".into());
        assert!(s.add_pending(&[twice]).is_err());
        s.commit(
            std::slice::from_ref(&e.unified),
            &[],
            &[(e.unified.clone(), Flags::new().with(Flag::Flagged))],
        )
        .unwrap();
        drop(s);
        let s = MapStore::open(&state).unwrap();
        let (got, pending) = &s.entries().unwrap()[0];
        assert!(!pending);
        assert_eq!(got.base, Flags::new().with(Flag::Flagged));
        let mode = std::fs::metadata(state.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let version: u32 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as u32);
    }

    #[test]
    fn strangers_are_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = MapStore::open(dir.path()).unwrap();
        let a = MaildirKey("a".into());
        let fresh = s.note_strangers(std::slice::from_ref(&a)).unwrap();
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0], a);
        assert!(
            s.note_strangers(std::slice::from_ref(&a))
                .unwrap()
                .is_empty()
        );
        assert!(s.note_strangers(&[]).unwrap().is_empty());
        assert_eq!(s.note_strangers(std::slice::from_ref(&a)).unwrap(), [a]);
    }
}
