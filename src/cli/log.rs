//! `syncmail log`: the change and conflict log of each account, as text lines or as one
//! JSON document (`--json`, schema in `doc/json-schema.md`).

use serde::Serialize;

use super::Failure;
use crate::config::{Account, Config};
use crate::model::{local_time, rfc3339};
use crate::store::{ChangeRecord, ConflictRecord, Store};

/// Bumped when a field changes meaning or goes away; new fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// At most this many changes and this many conflicts per account, the latest.
const LIMIT: usize = 1000;

#[derive(Debug, Serialize)]
struct Log {
    schema_version: u32,
    accounts: Vec<AccountLog>,
}

#[derive(Debug, Serialize)]
struct AccountLog {
    name: String,
    never_synced: bool,
    entries: Vec<Entry>,
}

/// One change seen on one side, or one conflict between the two sides.
#[derive(Debug, Serialize)]
struct Entry {
    /// `change` or `conflict`.
    kind: &'static str,
    time: String,
    account: String,
    folder: String,
    uid: Option<u32>,
    file: Option<String>,
    message_id: Option<String>,
    /// Where the change was seen: `server`, `maildir`, or `both` for a conflict.
    side: &'static str,
    /// What changed (`+S -F`, `deleted`, `new`); for a conflict, the change that met a
    /// deletion on the other side.
    change: String,
    /// What syncmail did about it.
    resolution: String,
    /// For a conflict, each side's change as recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    maildir_change: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_change: Option<String>,
}

fn conflict_entry(account: &str, c: &ConflictRecord) -> Entry {
    Entry {
        kind: "conflict",
        time: rfc3339(c.at),
        account: account.to_owned(),
        folder: c.folder.0.clone(),
        uid: c.uid.map(|u| u.0),
        file: c.local_key.as_ref().map(ToString::to_string),
        message_id: c.message_id.as_ref().map(|m| m.0.clone()),
        side: "both",
        change: c.what().to_owned(),
        resolution: c.resolution.clone(),
        maildir_change: Some(c.local_change.clone()),
        server_change: Some(c.remote_change.clone()),
    }
}

fn change_entry(account: &str, c: &ChangeRecord) -> Entry {
    Entry {
        kind: "change",
        time: rfc3339(c.at),
        account: account.to_owned(),
        folder: c.folder.0.clone(),
        uid: c.uid.map(|u| u.0),
        file: c.local_key.as_ref().map(ToString::to_string),
        message_id: None,
        side: match c.side {
            crate::store::Side::Server => "server",
            crate::store::Side::Local => "maildir",
        },
        change: c.change.clone(),
        resolution: c.action.clone(),
        maildir_change: None,
        server_change: None,
    }
}

struct Read {
    conflicts: Vec<ConflictRecord>,
    changes: Vec<ChangeRecord>,
}

async fn read(
    config: &Config,
    account: &Account,
    conflicts_only: bool,
) -> Result<Option<Read>, Failure> {
    let other = |e: crate::store::StoreError| Failure::Other(e.to_string());
    let path = crate::store::db_path(&config.general.state_dir, &account.name).map_err(other)?;
    if !path.exists() {
        return Ok(None);
    }
    let store = Store::open(&path).map_err(other)?;
    let conflicts = store.conflicts(None, LIMIT).await.map_err(other)?;
    let changes = if conflicts_only {
        Vec::new()
    } else {
        store.changes(None, LIMIT).await.map_err(other)?
    };
    Ok(Some(Read { conflicts, changes }))
}

pub async fn print(
    config: &Config,
    accounts: &[&Account],
    conflicts_only: bool,
    json: bool,
) -> Result<(), Failure> {
    let mut doc = Log {
        schema_version: SCHEMA_VERSION,
        accounts: Vec::new(),
    };
    for account in accounts {
        let name = &account.name.0;
        let read = read(config, account, conflicts_only).await?;
        if json {
            let mut entries: Vec<Entry> = Vec::new();
            if let Some(r) = &read {
                entries.extend(r.conflicts.iter().map(|c| conflict_entry(name, c)));
                entries.extend(r.changes.iter().map(|c| change_entry(name, c)));
            }
            // RFC 3339 with one offset sorts as text; conflicts first at a tie.
            entries.sort_by(|a, b| a.time.cmp(&b.time));
            doc.accounts.push(AccountLog {
                name: name.clone(),
                never_synced: read.is_none(),
                entries,
            });
            continue;
        }
        let Some(r) = read else {
            println!("{name}: never synced");
            continue;
        };
        for c in &r.conflicts {
            println!(
                "{} {name} {}: conflict over {}: {}; {}",
                local_time(c.at),
                c.folder,
                c.which(),
                c.what(),
                c.resolution
            );
        }
        for c in &r.changes {
            let who = match (c.uid, &c.local_key) {
                (Some(uid), Some(key)) => format!("UID {uid} / {key}"),
                (Some(uid), None) => format!("UID {uid}"),
                (None, Some(key)) => key.to_string(),
                (None, None) => String::new(),
            };
            println!(
                "{} {name} {} {} {who}: {} ({})",
                local_time(c.at),
                c.folder,
                c.side,
                c.change,
                c.action
            );
        }
        match (r.conflicts.is_empty(), r.changes.is_empty(), conflicts_only) {
            (true, _, true) => println!("{name}: no conflicts recorded"),
            (true, true, false) => println!("{name}: no changes recorded"),
            _ => {}
        }
    }
    if json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| Failure::Other(e.to_string()))?;
        println!("{text}");
    }
    Ok(())
}
