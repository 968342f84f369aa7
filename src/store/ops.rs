//! The SQL behind [`crate::store::Store`]'s methods, as plain functions on a connection.
//! Only the writer thread calls them.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use std::collections::BTreeSet;

use crate::model::{EmailId, FolderName, MaildirKey, ModSeq, Uid, UidValidity};
use crate::store::{
    ChangeRecord, Commit, ConflictRecord, DeleState, FolderId, FolderState, Hold, HoldRecord,
    Intent, IntentId, IntentKind, IntentSpec, Pair, Side, StoreError, UidlRecord, Wait,
    flags_from_db, flags_to_db, side_to_db, time_from_db, time_to_db,
};
use crate::sync::MessageId;

fn u32_col(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<u32>> {
    row.get::<_, Option<i64>>(i)?
        .map(|v| u32::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v)))
        .transpose()
}

fn path_text(p: &Path) -> Result<&str, StoreError> {
    p.to_str()
        .ok_or_else(|| StoreError::Invalid(format!("local path {p:?} is not UTF-8")))
}

fn modseq_db(m: ModSeq) -> Result<i64, StoreError> {
    i64::try_from(m.0).map_err(|_| StoreError::Invalid(format!("MODSEQ {} out of range", m.0)))
}

const FOLDER_COLUMNS: &str = "id, server_name, local_path, uidvalidity, highestmodseq, uidnext, \
     highest_uid_pulled, halt_reason, local_stamp";

fn folder_from_row(row: &Row<'_>) -> rusqlite::Result<FolderState> {
    Ok(FolderState {
        id: FolderId(row.get(0)?),
        server_name: FolderName(row.get(1)?),
        local_path: PathBuf::from(row.get::<_, String>(2)?),
        uidvalidity: u32_col(row, 3)?.map(UidValidity),
        highestmodseq: row
            .get::<_, Option<i64>>(4)?
            .map(|v| ModSeq(v.unsigned_abs())),
        uidnext: u32_col(row, 5)?.map(Uid),
        highest_uid_pulled: Uid(u32_col(row, 6)?.unwrap_or(0)),
        halt_reason: row.get(7)?,
        local_stamp: row.get(8)?,
    })
}

pub fn folder(conn: &Connection, name: &FolderName) -> Result<Option<FolderState>, StoreError> {
    let sql = format!("SELECT {FOLDER_COLUMNS} FROM folders WHERE server_name = ?1");
    Ok(conn
        .query_row(&sql, [&name.0], folder_from_row)
        .optional()?)
}

pub fn folders(conn: &Connection) -> Result<Vec<FolderState>, StoreError> {
    let sql = format!("SELECT {FOLDER_COLUMNS} FROM folders ORDER BY server_name");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], folder_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn ensure_folder(
    conn: &mut Connection,
    name: &FolderName,
    local_path: &Path,
) -> Result<FolderState, StoreError> {
    let tx = conn.transaction()?;
    if let Some(existing) = folder(&tx, name)? {
        if existing.local_path != local_path {
            // A changed root or layout would make every paired message look deleted
            // locally; that needs a deliberate move, never a silent update (rule 7).
            return Err(StoreError::Invalid(format!(
                "folder {name} is recorded at {}, but now maps to {}; \
                 move the Maildir or restore the old root/layout",
                existing.local_path.display(),
                local_path.display()
            )));
        }
        return Ok(existing);
    }
    tx.execute(
        "INSERT INTO folders (server_name, local_path) VALUES (?1, ?2)",
        params![name.0, path_text(local_path)?],
    )?;
    let state =
        folder(&tx, name)?.ok_or_else(|| StoreError::Invalid(format!("folder {name} vanished")))?;
    tx.commit()?;
    Ok(state)
}

/// Forget a folder and its pairs (after it was deleted on both sides, rule 9). Refused
/// while intents on it are open.
pub fn delete_folder(conn: &mut Connection, folder: FolderId) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    // Its pass status goes too: a folder that is gone has no last error to show.
    leave_name(&tx, folder)?;
    tx.execute("DELETE FROM folders WHERE id = ?1", [folder.0])?;
    tx.commit()?;
    Ok(())
}

/// Give a folder its new name and Maildir path after the server renamed it: its pairs,
/// watermarks and stamp stay, since the messages did not change. Refused while intents
/// on it are open (they name the folder's path).
pub fn rename_folder(
    conn: &mut Connection,
    folder: FolderId,
    name: &FolderName,
    local_path: &Path,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    // The old name's pass status goes: the folder's next pass records the new one.
    leave_name(&tx, folder)?;
    tx.execute(
        "UPDATE folders SET server_name = ?2, local_path = ?3 WHERE id = ?1",
        params![folder.0, name.0, path_text(local_path)?],
    )?;
    tx.commit()?;
    Ok(())
}

/// A folder about to be deleted or renamed leaves its name: refused while intents on it
/// are open (they name the folder and its path), and its pass status under that name
/// goes.
fn leave_name(tx: &Transaction<'_>, folder: FolderId) -> Result<(), StoreError> {
    let open: i64 = tx.query_row(
        "SELECT count(*) FROM intents WHERE folder_id = ?1",
        [folder.0],
        |r| r.get(0),
    )?;
    if open > 0 {
        return Err(StoreError::Invalid(format!(
            "folder {} has {open} open intents; resolve them first",
            folder.0
        )));
    }
    tx.execute(
        "DELETE FROM pass_status WHERE folder = (SELECT server_name FROM folders WHERE id = ?1)",
        [folder.0],
    )?;
    Ok(())
}

pub fn set_halt(
    conn: &Connection,
    folder: FolderId,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE folders SET halt_reason = ?2 WHERE id = ?1",
        params![folder.0, reason],
    )?;
    Ok(())
}

/// For each (folder, key), the other folders whose pairs hold `key`.
pub fn pairing_folders(
    conn: &Connection,
    keys: &[(FolderId, MaildirKey)],
) -> Result<Vec<(MaildirKey, FolderId)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT folder_id FROM pairs WHERE local_key = ?1 AND folder_id != ?2")?;
    let mut out = Vec::new();
    for (folder, key) in keys {
        let ids = stmt.query_map(params![key.0, folder.0], |r| r.get::<_, i64>(0))?;
        for id in ids {
            out.push((key.clone(), FolderId(id?)));
        }
    }
    Ok(out)
}

/// Which of these pairs have a row in the table of `wait`.
pub fn waited(
    conn: &Connection,
    wait: Wait,
    pairs: &[(FolderId, Uid)],
) -> Result<BTreeSet<(FolderId, Uid)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT 1 FROM {} WHERE folder_id = ?1 AND uid = ?2",
        wait.table()
    ))?;
    let mut out = BTreeSet::new();
    for (folder, uid) in pairs {
        if stmt.exists(params![folder.0, uid.0])? {
            out.insert((*folder, *uid));
        }
    }
    Ok(out)
}

/// Record that these pairs wait a pass (a pair gone meanwhile is skipped).
pub fn wait(
    conn: &mut Connection,
    wait: Wait,
    pairs: &[(FolderId, Uid)],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(&format!(
            "INSERT OR IGNORE INTO {} (folder_id, uid)
             SELECT folder_id, uid FROM pairs WHERE folder_id = ?1 AND uid = ?2",
            wait.table()
        ))?;
        for (folder, uid) in pairs {
            stmt.execute(params![folder.0, uid.0])?;
        }
    }
    tx.commit()?;
    Ok(())
}

const PAIR_COLUMNS: &str =
    "uid, local_key, remote_flags, local_flags, remote_size, local_size, message_id, email_id";

fn pair_from_row(row: &Row<'_>) -> Result<Pair, StoreError> {
    pair_from_row_at(row, 0)
}

/// A pair from [`PAIR_COLUMNS`] starting at column `at`.
fn pair_from_row_at(row: &Row<'_>, at: usize) -> Result<Pair, StoreError> {
    let remote: String = row.get(at + 2)?;
    let local: String = row.get(at + 3)?;
    Ok(Pair {
        uid: Uid(u32_col(row, at)?.unwrap_or(0)),
        key: MaildirKey(row.get(at + 1)?),
        remote_flags: flags_from_db(&remote)?,
        local_flags: flags_from_db(&local)?,
        remote_size: row.get::<_, i64>(at + 4)?.unsigned_abs(),
        local_size: row.get::<_, i64>(at + 5)?.unsigned_abs(),
        message_id: row.get::<_, Option<String>>(at + 6)?.map(MessageId),
        email_id: row.get::<_, Option<String>>(at + 7)?.map(EmailId),
    })
}

pub fn pairs(conn: &Connection, folder: FolderId) -> Result<Vec<Pair>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {PAIR_COLUMNS} FROM pairs WHERE folder_id = ?1 ORDER BY uid"
    ))?;
    let mut rows = stmt.query([folder.0])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(pair_from_row(row)?);
    }
    Ok(out)
}

/// The pairs of one folder whose message has one of these Message-IDs. One scan of the
/// folder's rows per 500 IDs (no index on the column: it would cost every insert).
pub fn pairs_with_message_ids(
    conn: &Connection,
    folder: FolderId,
    ids: &[MessageId],
) -> Result<Vec<Pair>, StoreError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let mut stmt = conn.prepare(&format!(
            "SELECT {PAIR_COLUMNS} FROM pairs WHERE folder_id = ? AND message_id IN ({marks})"
        ))?;
        let params = std::iter::once(rusqlite::types::Value::Integer(folder.0)).chain(
            chunk
                .iter()
                .map(|id| rusqlite::types::Value::Text(id.0.clone())),
        );
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            out.push(pair_from_row(row)?);
        }
    }
    Ok(out)
}

/// Every pair of the account, in any folder, whose message has one of these
/// Message-IDs, with its folder (`pairs_by_message_id`: one lookup each).
pub fn pairs_with_message_ids_anywhere(
    conn: &Connection,
    ids: &[MessageId],
) -> Result<Vec<(FolderId, Pair)>, StoreError> {
    pairs_anywhere(conn, "message_id", ids.iter().map(|id| id.0.as_str()))
}

/// Every pair of the account whose message has one of these server identities, with
/// its folder: where a message about to be fetched into another folder already is.
pub fn pairs_by_email_id(
    conn: &Connection,
    ids: &[EmailId],
) -> Result<Vec<(FolderId, Pair)>, StoreError> {
    pairs_anywhere(conn, "email_id", ids.iter().map(|id| id.0.as_str()))
}

/// The pairs of any folder whose `column` (an indexed identity column, named by this
/// module) holds one of these values, each with its folder, by folder and UID per value.
fn pairs_anywhere<'v>(
    conn: &Connection,
    column: &'static str,
    values: impl Iterator<Item = &'v str>,
) -> Result<Vec<(FolderId, Pair)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT folder_id, {PAIR_COLUMNS} FROM pairs WHERE {column} = ?1 ORDER BY folder_id, uid"
    ))?;
    let mut out = Vec::new();
    for value in values {
        let mut rows = stmt.query([value])?;
        while let Some(row) = rows.next()? {
            out.push((FolderId(row.get(0)?), pair_from_row_at(row, 1)?));
        }
    }
    Ok(out)
}

/// The pairs and server-only marks of these UIDs alone (a primary-key lookup each):
/// the part of a base a pass that brings a few changes needs.
pub fn pairs_of(
    conn: &Connection,
    folder: FolderId,
    uids: &[Uid],
) -> Result<(Vec<Pair>, BTreeSet<Uid>), StoreError> {
    let mut pair = conn.prepare_cached(&format!(
        "SELECT {PAIR_COLUMNS} FROM pairs WHERE folder_id = ?1 AND uid = ?2"
    ))?;
    let mut remote_only =
        conn.prepare_cached("SELECT 1 FROM remote_only WHERE folder_id = ?1 AND uid = ?2")?;
    let mut pairs = Vec::new();
    let mut kept = BTreeSet::new();
    for uid in uids {
        let mut rows = pair.query(params![folder.0, uid.0])?;
        if let Some(row) = rows.next()? {
            pairs.push(pair_from_row(row)?);
        }
        if remote_only
            .query_row(params![folder.0, uid.0], |_| Ok(()))
            .optional()?
            .is_some()
        {
            kept.insert(*uid);
        }
    }
    Ok((pairs, kept))
}

/// Local keys and server UIDs the folder keeps on one side only.
pub fn one_sided(
    conn: &Connection,
    folder: FolderId,
) -> Result<(BTreeSet<MaildirKey>, BTreeSet<Uid>), StoreError> {
    let mut local = BTreeSet::new();
    let mut stmt = conn.prepare("SELECT local_key FROM local_only WHERE folder_id = ?1")?;
    let mut rows = stmt.query([folder.0])?;
    while let Some(row) = rows.next()? {
        local.insert(MaildirKey(row.get(0)?));
    }
    let mut remote = BTreeSet::new();
    let mut stmt = conn.prepare("SELECT uid FROM remote_only WHERE folder_id = ?1")?;
    let mut rows = stmt.query([folder.0])?;
    while let Some(row) = rows.next()? {
        remote.insert(Uid(u32_col(row, 0)?.unwrap_or(0)));
    }
    Ok((local, remote))
}

fn size_db(size: u64) -> Result<i64, StoreError> {
    i64::try_from(size).map_err(|_| StoreError::Invalid(format!("size {size} out of range")))
}

pub fn commit(conn: &mut Connection, c: &Commit) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let needs_folder = c.reset_uids
        || !c.upsert_pairs.is_empty()
        || !c.remove_pairs.is_empty()
        || !c.add_local_only.is_empty()
        || !c.remove_local_only.is_empty()
        || !c.add_remote_only.is_empty()
        || !c.remove_remote_only.is_empty()
        || !c.holds.is_empty()
        || c.watermarks.is_some();
    if needs_folder && c.folder.is_none() {
        return Err(StoreError::Invalid(
            "a commit with pair or watermark changes must name its folder".into(),
        ));
    }
    if let Some(folder) = c.folder {
        if c.reset_uids {
            tx.execute("DELETE FROM pairs WHERE folder_id = ?1", [folder.0])?;
            tx.execute("DELETE FROM remote_only WHERE folder_id = ?1", [folder.0])?;
            // The old UIDVALIDITY's modseq and UID watermark mean nothing for the new one.
            tx.execute(
                "UPDATE folders SET highestmodseq = NULL, highest_uid_pulled = 0 WHERE id = ?1",
                [folder.0],
            )?;
        }
        {
            // Delete every touched row first, then insert: uniqueness then holds for the
            // commit's end state, so keys may move between UIDs within one commit.
            let mut del =
                tx.prepare_cached("DELETE FROM pairs WHERE folder_id = ?1 AND uid = ?2")?;
            for uid in c
                .remove_pairs
                .iter()
                .chain(c.upsert_pairs.iter().map(|p| &p.uid))
            {
                del.execute(params![folder.0, uid.0])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT INTO pairs (folder_id, uid, local_key, remote_flags, local_flags,
                                    remote_size, local_size, message_id, email_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for p in &c.upsert_pairs {
                ins.execute(params![
                    folder.0,
                    p.uid.0,
                    p.key.0,
                    flags_to_db(&p.remote_flags),
                    flags_to_db(&p.local_flags),
                    size_db(p.remote_size)?,
                    size_db(p.local_size)?,
                    p.message_id.as_ref().map(|m| m.0.as_str()),
                    p.email_id.as_ref().map(|m| m.0.as_str()),
                ])?;
            }
            let mut add = tx.prepare_cached(
                "INSERT OR IGNORE INTO local_only (folder_id, local_key) VALUES (?1, ?2)",
            )?;
            for key in &c.add_local_only {
                add.execute(params![folder.0, key.0])?;
            }
            let mut rm = tx
                .prepare_cached("DELETE FROM local_only WHERE folder_id = ?1 AND local_key = ?2")?;
            for key in &c.remove_local_only {
                rm.execute(params![folder.0, key.0])?;
            }
            let mut add = tx.prepare_cached(
                "INSERT OR IGNORE INTO remote_only (folder_id, uid) VALUES (?1, ?2)",
            )?;
            for uid in &c.add_remote_only {
                add.execute(params![folder.0, uid.0])?;
            }
            let mut rm =
                tx.prepare_cached("DELETE FROM remote_only WHERE folder_id = ?1 AND uid = ?2")?;
            for uid in &c.remove_remote_only {
                rm.execute(params![folder.0, uid.0])?;
            }
            record_holds(&tx, folder, &c.holds)?;
        }
        if let Some(w) = &c.watermarks {
            let changed = tx.execute(
                "UPDATE folders SET
                   uidvalidity = coalesce(?2, uidvalidity),
                   highestmodseq = coalesce(?3, highestmodseq),
                   uidnext = coalesce(?4, uidnext),
                   highest_uid_pulled = coalesce(?5, highest_uid_pulled),
                   local_stamp = CASE WHEN ?6 THEN ?7 ELSE local_stamp END
                 WHERE id = ?1",
                params![
                    folder.0,
                    w.uidvalidity.map(|v| v.0),
                    w.highestmodseq.map(modseq_db).transpose()?,
                    w.uidnext.map(|v| v.0),
                    w.highest_uid_pulled.map(|v| v.0),
                    w.local_stamp.is_some(),
                    w.local_stamp.clone().flatten(),
                ],
            )?;
            if changed != 1 {
                return Err(StoreError::Invalid(format!(
                    "no folder with id {}",
                    folder.0
                )));
            }
        }
    }
    append_changes(&tx, &c.changes)?;
    append_conflicts(&tx, &c.conflicts)?;
    record_uidls(&tx, &c.uidls)?;
    {
        let mut done = tx.prepare_cached("DELETE FROM intents WHERE id = ?1")?;
        for id in &c.complete_intents {
            if done.execute([id.0])? != 1 {
                return Err(StoreError::Invalid(format!("no open intent {}", id.0)));
            }
        }
    }
    tx.commit()?;
    Ok(())
}

pub fn begin_intents(
    conn: &mut Connection,
    specs: &[IntentSpec],
    now: SystemTime,
) -> Result<Vec<IntentId>, StoreError> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(specs.len());
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO intents (kind, folder_id, uid, local_key, token, uidl, detail, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for s in specs {
            ins.execute(params![
                s.kind.as_str(),
                s.folder.map(|f| f.0),
                s.uid.map(|u| u.0),
                s.local_key.as_ref().map(|k| k.0.as_str()),
                s.token,
                s.uidl,
                s.detail,
                time_to_db(now),
            ])?;
            ids.push(IntentId(tx.last_insert_rowid()));
        }
    }
    tx.commit()?;
    Ok(ids)
}

pub fn open_intents(conn: &Connection) -> Result<Vec<Intent>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, kind, folder_id, uid, local_key, token, uidl, detail, created_at
         FROM intents ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let kind: String = row.get(1)?;
        out.push(Intent {
            id: IntentId(row.get(0)?),
            created_at: time_from_db(row.get(8)?),
            spec: IntentSpec {
                kind: IntentKind::parse(&kind)
                    .ok_or_else(|| StoreError::Invalid(format!("unknown intent kind {kind:?}")))?,
                folder: row.get::<_, Option<i64>>(2)?.map(FolderId),
                uid: u32_col(row, 3)?.map(Uid),
                local_key: row.get::<_, Option<String>>(4)?.map(MaildirKey),
                token: row.get(5)?,
                uidl: row.get(6)?,
                detail: row.get(7)?,
            },
        });
    }
    Ok(out)
}

fn append_changes(conn: &Connection, changes: &[ChangeRecord]) -> Result<(), StoreError> {
    let mut ins = conn.prepare_cached(
        "INSERT INTO change_log (at, folder, side, uid, local_key, change, action)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for c in changes {
        ins.execute(params![
            time_to_db(c.at),
            c.folder.0,
            side_to_db(c.side),
            c.uid.map(|u| u.0),
            c.local_key.as_ref().map(|k| k.0.as_str()),
            c.change,
            c.action,
        ])?;
    }
    Ok(())
}

fn append_conflicts(conn: &Connection, conflicts: &[ConflictRecord]) -> Result<(), StoreError> {
    let mut ins = conn.prepare_cached(
        "INSERT INTO conflict_log (at, folder, uid, local_key, local_change, remote_change, resolution,
                                   message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for c in conflicts {
        ins.execute(params![
            time_to_db(c.at),
            c.folder.0,
            c.uid.map(|u| u.0),
            c.local_key.as_ref().map(|k| k.0.as_str()),
            c.local_change,
            c.remote_change,
            c.resolution,
            c.message_id.as_ref().map(|m| m.0.as_str()),
        ])?;
    }
    Ok(())
}

/// The newest `limit` entries (of one folder, or all), oldest first.
pub fn changes(
    conn: &Connection,
    folder: Option<&FolderName>,
    limit: usize,
) -> Result<Vec<ChangeRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at, folder, side, uid, local_key, change, action FROM (
           SELECT * FROM change_log WHERE ?1 IS NULL OR folder = ?1 ORDER BY id DESC LIMIT ?2
         ) ORDER BY id",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![folder.map(|f| f.0.as_str()), limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let side: String = row.get(2)?;
        out.push(ChangeRecord {
            at: time_from_db(row.get(0)?),
            folder: FolderName(row.get(1)?),
            side: if side == "local" {
                Side::Local
            } else {
                Side::Server
            },
            uid: u32_col(row, 3)?.map(Uid),
            local_key: row.get::<_, Option<String>>(4)?.map(MaildirKey),
            change: row.get(5)?,
            action: row.get(6)?,
        });
    }
    Ok(out)
}

/// The newest `limit` conflicts (of one folder, or all), oldest first.
pub fn conflicts(
    conn: &Connection,
    folder: Option<&FolderName>,
    limit: usize,
) -> Result<Vec<ConflictRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at, folder, uid, local_key, local_change, remote_change, resolution, message_id FROM (
           SELECT * FROM conflict_log WHERE ?1 IS NULL OR folder = ?1 ORDER BY id DESC LIMIT ?2
         ) ORDER BY id",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![folder.map(|f| f.0.as_str()), limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(ConflictRecord {
            at: time_from_db(row.get(0)?),
            folder: FolderName(row.get(1)?),
            uid: u32_col(row, 2)?.map(Uid),
            local_key: row.get::<_, Option<String>>(3)?.map(MaildirKey),
            message_id: row.get::<_, Option<String>>(7)?.map(MessageId),
            local_change: row.get(4)?,
            remote_change: row.get(5)?,
            resolution: row.get(6)?,
        });
    }
    Ok(out)
}

/// Insert or update UIDL rows; `first_seen` of an existing row is kept.
fn record_uidls(conn: &Connection, uidls: &[UidlRecord]) -> Result<(), StoreError> {
    let mut ins = conn.prepare_cached(
        "INSERT INTO pop3_uidls (uidl, local_key, first_seen, dele) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (uidl) DO UPDATE SET
           local_key = coalesce(excluded.local_key, local_key), dele = excluded.dele",
    )?;
    for u in uidls {
        ins.execute(params![
            u.uidl,
            u.local_key.as_ref().map(|k| k.0.as_str()),
            time_to_db(u.first_seen),
            u.dele.as_str(),
        ])?;
    }
    Ok(())
}

pub fn uidls(conn: &Connection) -> Result<Vec<UidlRecord>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT uidl, local_key, first_seen, dele FROM pop3_uidls ORDER BY uidl")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let dele: String = row.get(3)?;
        out.push(UidlRecord {
            uidl: row.get(0)?,
            local_key: row.get::<_, Option<String>>(1)?.map(MaildirKey),
            first_seen: time_from_db(row.get(2)?),
            dele: DeleState::parse(&dele)
                .ok_or_else(|| StoreError::Invalid(format!("bad DELE state {dele:?}")))?,
        });
    }
    Ok(out)
}

pub fn set_dele(
    conn: &mut Connection,
    uidls: &[String],
    state: DeleState,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut up = tx.prepare_cached("UPDATE pop3_uidls SET dele = ?2 WHERE uidl = ?1")?;
        for u in uidls {
            up.execute(params![u, state.as_str()])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Forget UIDLs the server no longer lists (after their DELE is done).
pub fn forget_uidls(conn: &mut Connection, uidls: &[String]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut del = tx.prepare_cached("DELETE FROM pop3_uidls WHERE uidl = ?1")?;
        for u in uidls {
            del.execute([u])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Record one pass attempt: success moves `last_ok`, failure keeps it and sets the error.
pub fn record_pass(
    conn: &Connection,
    folder: Option<&FolderName>,
    at: SystemTime,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let at = time_to_db(at);
    let folder = folder.map_or("", |f| f.0.as_str());
    conn.execute(
        "INSERT INTO pass_status (folder, last_ok, last_attempt, last_error)
         VALUES (?1, CASE WHEN ?3 IS NULL THEN ?2 END, ?2, ?3)
         ON CONFLICT (folder) DO UPDATE SET
             last_ok = CASE WHEN ?3 IS NULL THEN ?2 ELSE last_ok END,
             last_attempt = ?2,
             last_error = ?3",
        params![folder, at, error],
    )?;
    Ok(())
}

/// Set what the daemon is doing for the account (`None` clears it).
pub fn set_daemon_state(
    conn: &Connection,
    at: SystemTime,
    state: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO pass_status (folder, last_attempt, daemon_state) VALUES ('', ?1, ?2)
         ON CONFLICT (folder) DO UPDATE SET daemon_state = ?2",
        params![time_to_db(at), state],
    )?;
    Ok(())
}

/// Every recorded pass outcome, the account row first, then folders by name.
pub fn pass_status(conn: &Connection) -> Result<Vec<crate::store::PassStatus>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT folder, last_ok, last_attempt, last_error, daemon_state
         FROM pass_status ORDER BY folder",
    )?;
    let rows = stmt.query_map([], |row| {
        let folder: String = row.get(0)?;
        Ok(crate::store::PassStatus {
            folder: (!folder.is_empty()).then_some(FolderName(folder)),
            last_ok: row.get::<_, Option<i64>>(1)?.map(time_from_db),
            last_attempt: time_from_db(row.get(2)?),
            last_error: row.get(3)?,
            daemon_state: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Open intents per kind, the cheap measure of work left over from an interrupted pass.
pub fn open_intent_count(conn: &Connection) -> Result<usize, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM intents", [], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Hold each message one-sided (rule 21), and say why.
fn record_holds(tx: &Transaction<'_>, folder: FolderId, holds: &[Hold]) -> Result<(), StoreError> {
    if holds.is_empty() {
        return Ok(());
    }
    let now = time_to_db(SystemTime::now());
    let mut ins = tx.prepare_cached(
        "INSERT OR REPLACE INTO adopt_holds (folder_id, side, item, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut local = tx.prepare_cached(
        "INSERT OR IGNORE INTO local_only (folder_id, local_key) VALUES (?1, ?2)",
    )?;
    let mut remote =
        tx.prepare_cached("INSERT OR IGNORE INTO remote_only (folder_id, uid) VALUES (?1, ?2)")?;
    for h in holds {
        ins.execute(params![folder.0, side_to_db(h.side), h.item, h.reason, now])?;
        match h.side {
            Side::Local => local.execute(params![folder.0, h.item])?,
            Side::Server => remote.execute(params![folder.0, uid_db(&h.item)?])?,
        };
    }
    Ok(())
}

fn uid_db(item: &str) -> Result<u32, StoreError> {
    item.parse()
        .map_err(|_| StoreError::Invalid(format!("held UID {item:?} is not a number")))
}

/// The holds still standing (their message still kept one-sided), oldest first.
pub fn holds(conn: &Connection, folder: Option<FolderId>) -> Result<Vec<HoldRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT f.server_name, h.side, h.item, h.reason, h.at
         FROM adopt_holds h JOIN folders f ON f.id = h.folder_id
         WHERE (?1 IS NULL OR h.folder_id = ?1)
           AND ((h.side = 'local' AND EXISTS (SELECT 1 FROM local_only o
                   WHERE o.folder_id = h.folder_id AND o.local_key = h.item))
             OR (h.side = 'remote' AND EXISTS (SELECT 1 FROM remote_only o
                   WHERE o.folder_id = h.folder_id AND CAST(o.uid AS TEXT) = h.item)))
         ORDER BY h.at, f.server_name, h.side, h.item",
    )?;
    let rows = stmt.query_map([folder.map(|f| f.0)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (folder, side, item, reason, at) = row?;
        out.push(HoldRecord {
            folder: FolderName(folder),
            hold: Hold {
                side: if side == "local" {
                    Side::Local
                } else {
                    Side::Server
                },
                item,
                reason,
            },
            at: time_from_db(at),
        });
    }
    Ok(out)
}

/// End the holds of `folder` (all folders: `None`). `transfer`: they are distinct
/// messages after all, so they stop being one-sided and the next pass copies each to
/// the other side; otherwise they stay where they are, one-sided for good.
pub fn release_holds(
    conn: &mut Connection,
    folder: Option<FolderId>,
    transfer: bool,
) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let f = folder.map(|f| f.0);
    if transfer {
        tx.execute(
            "DELETE FROM local_only WHERE EXISTS (SELECT 1 FROM adopt_holds h
               WHERE h.folder_id = local_only.folder_id AND h.side = 'local'
                 AND h.item = local_only.local_key AND (?1 IS NULL OR h.folder_id = ?1))",
            [f],
        )?;
        tx.execute(
            "DELETE FROM remote_only WHERE EXISTS (SELECT 1 FROM adopt_holds h
               WHERE h.folder_id = remote_only.folder_id AND h.side = 'remote'
                 AND h.item = CAST(remote_only.uid AS TEXT) AND (?1 IS NULL OR h.folder_id = ?1))",
            [f],
        )?;
    }
    let n = tx.execute(
        "DELETE FROM adopt_holds WHERE ?1 IS NULL OR folder_id = ?1",
        [f],
    )?;
    tx.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flag, Flags};
    use crate::store::schema;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug)]
    enum Op {
        Upsert(u32, u8, u8),
        Remove(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u32..20, 0u8..4, 0u8..64).prop_map(|(u, k, f)| Op::Upsert(u, k, f)),
            (1u32..20).prop_map(Op::Remove),
        ]
    }

    fn flags(bits: u8) -> Flags {
        let mut f: Flags = Flag::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, f)| f)
            .collect();
        if bits & 1 != 0 {
            f.insert_keyword("$Junk");
        }
        f
    }

    proptest! {
        /// Commits behave like a map keyed by UID, and a commit that would give two UIDs
        /// the same local key leaves everything as it was.
        #[test]
        fn commits_match_a_model(batches in proptest::collection::vec(proptest::collection::vec(op(), 0..6), 1..12)) {
            let mut conn = Connection::open_in_memory().unwrap();
            schema::migrate(&mut conn).unwrap();
            let f = ensure_folder(&mut conn, &FolderName("INBOX".into()), Path::new("/m")).unwrap();
            let mut model: BTreeMap<u32, (String, Flags)> = BTreeMap::new();
            for batch in batches {
                let mut next = model.clone();
                let mut c = Commit { folder: Some(f.id), ..Commit::default() };
                for op in batch {
                    match op {
                        Op::Upsert(u, k, b) => {
                            // Keys derive from the UID, plus a few shared ones to collide.
                            let key = if k == 0 { "shared".to_owned() } else { format!("k{u}") };
                            next.insert(u, (key.clone(), flags(b)));
                            c.upsert_pairs.retain(|p: &Pair| p.uid != Uid(u));
                            c.remove_pairs.retain(|r| *r != Uid(u));
                            c.upsert_pairs.push(Pair::synced(Uid(u), MaildirKey(key), flags(b), u64::from(u), None));
                        }
                        Op::Remove(u) => {
                            next.remove(&u);
                            c.upsert_pairs.retain(|p: &Pair| p.uid != Uid(u));
                            c.remove_pairs.push(Uid(u));
                        }
                    }
                }
                let mut keys: Vec<&String> = next.values().map(|(k, _)| k).collect();
                let before = keys.len();
                keys.sort();
                keys.dedup();
                let valid = keys.len() == before;
                let result = commit(&mut conn, &c);
                prop_assert_eq!(result.is_ok(), valid, "{:?}", result);
                if valid {
                    model = next;
                }
                let got: BTreeMap<u32, (String, Flags)> = pairs(&conn, f.id)
                    .unwrap()
                    .into_iter()
                    .map(|p| (p.uid.0, (p.key.0, p.remote_flags)))
                    .collect();
                prop_assert_eq!(&got, &model);
            }
        }
    }

    #[test]
    fn a_wait_lasts_as_long_as_its_pair_row_and_each_kind_is_its_own() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        let f = ensure_folder(&mut conn, &FolderName("INBOX".into()), Path::new("/m")).unwrap();
        let pair =
            |u: u32| Pair::synced(Uid(u), MaildirKey(format!("k{u}")), Flags::new(), 1, None);
        let c = Commit {
            folder: Some(f.id),
            upsert_pairs: vec![pair(1), pair(2)],
            ..Commit::default()
        };
        commit(&mut conn, &c).unwrap();
        // UID 3 has no pair: nothing to wait for.
        let all = [(f.id, Uid(1)), (f.id, Uid(2)), (f.id, Uid(3))];
        wait(&mut conn, Wait::Move, &all).unwrap();
        let of = |conn: &Connection, kind| waited(conn, kind, &all).unwrap();
        assert_eq!(of(&conn, Wait::Move), BTreeSet::from([all[0], all[1]]));
        assert_eq!(of(&conn, Wait::Gone), BTreeSet::new(), "a move wait only");
        wait(&mut conn, Wait::Gone, &all[1..]).unwrap();
        assert_eq!(of(&conn, Wait::Gone), BTreeSet::from([all[1]]));
        // Any change of the pair ends its waits: forgotten, or rewritten.
        let c = Commit {
            folder: Some(f.id),
            remove_pairs: vec![Uid(1)],
            upsert_pairs: vec![pair(2)],
            ..Commit::default()
        };
        commit(&mut conn, &c).unwrap();
        assert_eq!(of(&conn, Wait::Move), BTreeSet::new());
        assert_eq!(of(&conn, Wait::Gone), BTreeSet::new());
    }

    #[test]
    fn rule_21_holds_keep_one_sided_until_released() {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        let f = ensure_folder(
            &mut conn,
            &FolderName("INBOX".into()),
            Path::new("/m/INBOX"),
        )
        .unwrap();
        let hold = |side, item: &str| Hold {
            side,
            item: item.to_owned(),
            reason: "two copies".into(),
        };
        let c = Commit {
            folder: Some(f.id),
            holds: vec![hold(Side::Server, "7"), hold(Side::Local, "k1")],
            ..Commit::default()
        };
        commit(&mut conn, &c).unwrap();
        let (local, remote) = one_sided(&conn, f.id).unwrap();
        assert!(local.contains(&MaildirKey("k1".into())) && remote.contains(&Uid(7)));
        assert_eq!(holds(&conn, None).unwrap().len(), 2);
        // Keeping them apart ends the holds and leaves them one-sided.
        assert_eq!(release_holds(&mut conn, Some(f.id), false).unwrap(), 2);
        assert!(holds(&conn, None).unwrap().is_empty());
        assert_eq!(one_sided(&conn, f.id).unwrap().0.len(), 1);
        // Transferring them makes them two-sided again.
        commit(&mut conn, &c).unwrap();
        assert_eq!(release_holds(&mut conn, None, true).unwrap(), 2);
        let (local, remote) = one_sided(&conn, f.id).unwrap();
        assert!(local.is_empty() && remote.is_empty());
        // A held message gone since is no longer listed.
        commit(&mut conn, &c).unwrap();
        conn.execute("DELETE FROM local_only", []).unwrap();
        let left = holds(&conn, Some(f.id)).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].hold.side, Side::Server);
    }
}
