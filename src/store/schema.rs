//! The database schema as an ordered list of migrations. `PRAGMA user_version` is the
//! number of migrations applied; a migration is never edited once released, only
//! followed by a new one.

use rusqlite::Connection;

use crate::store::StoreError;

/// Migration `i` takes the database from version `i` to version `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // Version 1: the initial schema.
    r#"
    CREATE TABLE folders (
        id                 INTEGER PRIMARY KEY,
        server_name        TEXT NOT NULL UNIQUE,
        local_path         TEXT NOT NULL,
        uidvalidity        INTEGER CHECK (uidvalidity BETWEEN 0 AND 4294967295),
        highestmodseq      INTEGER CHECK (highestmodseq >= 0),
        uidnext            INTEGER CHECK (uidnext BETWEEN 0 AND 4294967295),
        highest_uid_pulled INTEGER NOT NULL DEFAULT 0
                           CHECK (highest_uid_pulled BETWEEN 0 AND 4294967295),
        halt_reason        TEXT,
        -- The cur/ and new/ mtimes of the last stable scan that matched the committed
        -- base exactly; unchanged mtimes mean an unchanged Maildir folder.
        local_stamp        TEXT
    ) STRICT;

    -- A server message and its local file, with what each side had at the last sync
    -- (the base). The sides differ only when a direction setting left a change unsent.
    CREATE TABLE pairs (
        folder_id    INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid          INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
        local_key    TEXT NOT NULL,
        remote_flags TEXT NOT NULL,
        local_flags  TEXT NOT NULL,
        remote_size  INTEGER NOT NULL CHECK (remote_size >= 0),
        local_size   INTEGER NOT NULL CHECK (local_size >= 0),
        message_id   TEXT,
        PRIMARY KEY (folder_id, uid),
        UNIQUE (folder_id, local_key)
    ) STRICT;

    -- Messages deliberately kept on one side only (direction, expunge policy, a kept
    -- conflict copy): never copied across, never reported again while present.
    CREATE TABLE local_only (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        local_key TEXT NOT NULL,
        PRIMARY KEY (folder_id, local_key)
    ) STRICT;
    CREATE TABLE remote_only (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        uid       INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
        PRIMARY KEY (folder_id, uid)
    ) STRICT;

    -- Non-idempotent actions in flight (rule 1). A row exists from before the act until
    -- its outcome is committed; rows left at start-up are resolved before anything else.
    CREATE TABLE intents (
        id         INTEGER PRIMARY KEY,
        kind       TEXT NOT NULL CHECK (kind IN ('deliver', 'append', 'flag-deleted',
                       'expunge', 'move', 'local-delete', 'pop3-deliver', 'pop3-dele')),
        folder_id  INTEGER REFERENCES folders(id),
        uid        INTEGER CHECK (uid BETWEEN 1 AND 4294967295),
        local_key  TEXT,
        token      TEXT,
        uidl       TEXT,
        detail     TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    ) STRICT;

    -- Logs name the folder rather than reference it: they outlive the folder's row.
    CREATE TABLE change_log (
        id        INTEGER PRIMARY KEY,
        at        INTEGER NOT NULL,
        folder    TEXT NOT NULL,
        side      TEXT NOT NULL CHECK (side IN ('local', 'remote')),
        uid       INTEGER,
        local_key TEXT,
        change    TEXT NOT NULL,
        action    TEXT NOT NULL
    ) STRICT;
    CREATE INDEX change_log_by_folder ON change_log (folder, id);

    CREATE TABLE conflict_log (
        id            INTEGER PRIMARY KEY,
        at            INTEGER NOT NULL,
        folder        TEXT NOT NULL,
        uid           INTEGER,
        local_key     TEXT,
        local_change  TEXT NOT NULL,
        remote_change TEXT NOT NULL,
        resolution    TEXT NOT NULL
    ) STRICT;
    CREATE INDEX conflict_log_by_folder ON conflict_log (folder, id);

    CREATE TABLE pop3_uidls (
        uidl       TEXT PRIMARY KEY,
        local_key  TEXT,
        first_seen INTEGER NOT NULL,
        dele       TEXT NOT NULL DEFAULT 'none' CHECK (dele IN ('none', 'pending', 'done'))
    ) STRICT;
    "#,
    // Version 2: the outcome of the latest pass, per folder and for the account as a
    // whole (folder ''), for `syncmail status`; `daemon_state` is what the daemon is doing
    // (e.g. "retrying in 30s"), set only on the account row.
    r#"
    CREATE TABLE pass_status (
        folder       TEXT PRIMARY KEY,
        last_ok      INTEGER,
        last_attempt INTEGER NOT NULL,
        last_error   TEXT,
        daemon_state TEXT
    ) STRICT;
    "#,
    // Version 3: messages a first contact could not tell apart (rule 21). Each is also
    // in local_only / remote_only, so nothing is transferred for it; the row says why,
    // for `syncmail status` and `syncmail adopt`, until the user decides.
    r#"
    CREATE TABLE adopt_holds (
        folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
        side      TEXT NOT NULL CHECK (side IN ('local', 'remote')),
        item      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        at        INTEGER NOT NULL,
        PRIMARY KEY (folder_id, side, item)
    ) STRICT;
    "#,
    // Version 4: a conflict names its message by Message-ID too, so `syncmail log
    // --conflicts` says which message it was even after the pair is gone.
    r#"
    ALTER TABLE conflict_log ADD COLUMN message_id TEXT;
    "#,
    // Version 5: pairs by Maildir key, so a file that arrives in one folder is found
    // cheaply when another folder pairs it (a rename across folders in flight).
    r#"
    CREATE INDEX pairs_by_key ON pairs (local_key);
    "#,
    // Version 6: the server's identity of a paired message (OBJECTID's EMAILID, Gmail's
    // X-GM-MSGID), where it has one: a message already stored in another folder of the
    // account is linked there, not downloaded again. Older rows have none, so a state
    // file from before this version keeps working; their messages are only not linked.
    r#"
    ALTER TABLE pairs ADD COLUMN email_id TEXT;
    CREATE INDEX pairs_by_email_id ON pairs (email_id) WHERE email_id IS NOT NULL;
    "#,
    // Version 7: pairs gone from both sides of their folder whose move a pass did not see
    // end, even after listing the folders again: such a pair waits for one more pass
    // before it is taken as deleted on one side and moved on the other. A row lives as
    // long as its pair row is unchanged.
    r#"
    CREATE TABLE move_waits (
        folder_id INTEGER NOT NULL,
        uid       INTEGER NOT NULL,
        PRIMARY KEY (folder_id, uid),
        FOREIGN KEY (folder_id, uid) REFERENCES pairs (folder_id, uid) ON DELETE CASCADE
    ) STRICT;
    "#,
    // Version 8: pairs by Message-ID, so a message arriving in a folder a daemon's pass
    // covers is found cheaply where another folder, outside that pass, still pairs it
    // (a move whose source the pass does not look at).
    r#"
    CREATE INDEX pairs_by_message_id ON pairs (message_id) WHERE message_id IS NOT NULL;
    "#,
    // Version 9: pairs gone from both sides of their folder while no pass saw their
    // message arrive anywhere: each waits one pass (a move on each side, both made after
    // the pass observed where they went, shows in the next), apart from `move_waits`, so
    // a pair that then shows one end only waits once more for the other.
    r#"
    CREATE TABLE gone_waits (
        folder_id INTEGER NOT NULL,
        uid       INTEGER NOT NULL,
        PRIMARY KEY (folder_id, uid),
        FOREIGN KEY (folder_id, uid) REFERENCES pairs (folder_id, uid) ON DELETE CASCADE
    ) STRICT;
    "#,
];

/// The schema version this build writes.
pub fn latest_version() -> u32 {
    MIGRATIONS.len() as u32
}

pub fn version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Bring the database to the latest version, one transaction per migration.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, latest_version())
}

/// Apply migrations up to `target` (tests build every earlier version with this).
pub fn migrate_to(conn: &mut Connection, target: u32) -> Result<(), StoreError> {
    run_migrations(conn, MIGRATIONS, target)
}

/// Bring a database kept by `user_version` from its version to `target` through
/// `migrations` (version N+1 is `migrations[N]`), one transaction each; a database newer
/// than this build is refused. Every state database (an account's, the unified
/// mapping) migrates this way.
pub fn run_migrations(
    conn: &mut Connection,
    migrations: &[&str],
    target: u32,
) -> Result<(), StoreError> {
    let found = version(conn)?;
    let latest = migrations.len() as u32;
    if found > latest {
        return Err(StoreError::TooNew {
            found,
            supported: latest,
        });
    }
    for v in found..target.min(latest) {
        let tx = conn.transaction()?;
        tx.execute_batch(migrations[v as usize])?;
        tx.pragma_update(None, "user_version", v + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_sql(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn migrates_empty_db_and_every_earlier_version() {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh).unwrap();
        assert_eq!(version(&fresh).unwrap(), latest_version());
        let want = schema_sql(&fresh);
        assert!(!want.is_empty());
        for k in 0..=latest_version() {
            let mut conn = Connection::open_in_memory().unwrap();
            migrate_to(&mut conn, k).unwrap();
            assert_eq!(version(&conn).unwrap(), k);
            migrate(&mut conn).unwrap();
            assert_eq!(
                version(&conn).unwrap(),
                latest_version(),
                "from version {k}"
            );
            assert_eq!(schema_sql(&conn), want, "from version {k}");
            // Migrating again is a no-op.
            migrate(&mut conn).unwrap();
        }
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::TooNew { .. })));
    }

    #[test]
    fn tables_are_strict() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let err = conn.execute(
            "INSERT INTO folders (server_name, local_path, uidvalidity) VALUES ('x', 'y', 'abc')",
            [],
        );
        assert!(err.is_err());
    }
}
