//! `syncmail labels`: each message the server identifies across folders (OBJECTID's
//! `EMAILID`, Gmail's `X-GM-MSGID`) with the folders it is in: its labels on Gmail, the
//! folders its one file is linked in elsewhere. Text lines, or one JSON document
//! (`--json`, schema in `doc/json-schema.md`), for notmuch tags and aerc.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Failure;
use crate::config::{Account, Config};
use crate::store::Store;

/// Bumped when a field changes meaning or goes away; new fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
struct Labels {
    schema_version: u32,
    accounts: Vec<AccountLabels>,
}

#[derive(Debug, Serialize)]
struct AccountLabels {
    name: String,
    never_synced: bool,
    messages: Vec<Message>,
}

/// One message as the server identifies it, and where it is.
#[derive(Debug, Serialize)]
struct Message {
    /// `EMAILID` as the server spells it, or `gm:` and Gmail's X-GM-MSGID.
    email_id: String,
    message_id: Option<String>,
    /// Each folder (label) holding it, sorted, with the Maildir path of its entry there.
    folders: Vec<Place>,
}

#[derive(Debug, Serialize)]
struct Place {
    folder: String,
    /// The entry's Maildir folder; its file is a link to the same file as the others'.
    maildir: String,
    /// The unique part of the entry's file name there.
    key: String,
}

async fn read(config: &Config, account: &Account) -> Result<Option<Vec<Message>>, Failure> {
    let other = |e: crate::store::StoreError| Failure::Other(e.to_string());
    let path = crate::store::db_path(&config.general.state_dir, &account.name).map_err(other)?;
    if !path.exists() {
        return Ok(None);
    }
    let store = Store::open_read_only(&path).map_err(other)?;
    let mut by_id: BTreeMap<String, Message> = BTreeMap::new();
    for folder in store.folders().await.map_err(other)? {
        for pair in store.pairs(folder.id).await.map_err(other)? {
            let Some(id) = pair.email_id else { continue };
            let entry = by_id.entry(id.0.clone()).or_insert_with(|| Message {
                email_id: id.0.clone(),
                message_id: None,
                folders: Vec::new(),
            });
            if entry.message_id.is_none() {
                entry.message_id = pair.message_id.map(|m| m.0);
            }
            entry.folders.push(Place {
                folder: folder.server_name.0.clone(),
                maildir: folder.local_path.display().to_string(),
                key: pair.key.0,
            });
        }
    }
    let mut messages: Vec<Message> = by_id.into_values().collect();
    for m in &mut messages {
        m.folders.sort_by(|a, b| a.folder.cmp(&b.folder));
    }
    Ok(Some(messages))
}

pub async fn print(config: &Config, accounts: &[&Account], json: bool) -> Result<(), Failure> {
    let mut doc = Labels {
        schema_version: SCHEMA_VERSION,
        accounts: Vec::new(),
    };
    for account in accounts {
        let name = &account.name.0;
        let messages = read(config, account).await?;
        if json {
            doc.accounts.push(AccountLabels {
                name: name.clone(),
                never_synced: messages.is_none(),
                messages: messages.unwrap_or_default(),
            });
            continue;
        }
        let Some(messages) = messages else {
            println!("{name}: never synced");
            continue;
        };
        if messages.is_empty() {
            println!(
                "{name}: no message with a server identity (the server offers neither OBJECTID nor X-GM-EXT-1, or nothing is synced yet)"
            );
        }
        for m in &messages {
            let folders: Vec<&str> = m.folders.iter().map(|p| p.folder.as_str()).collect();
            println!(
                "{name} {} {}: {}",
                m.message_id.as_deref().unwrap_or("(no Message-ID)"),
                m.email_id,
                folders.join(", ")
            );
        }
    }
    if json {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| Failure::Other(e.to_string()))?;
        println!("{text}");
    }
    Ok(())
}
