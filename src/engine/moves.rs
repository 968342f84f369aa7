//! Carrying out cross-folder moves the planner found: a message moved locally becomes a
//! server `UID MOVE`, one moved on the server becomes a file rename, so nothing is
//! downloaded or uploaded again. Each move is journaled with where it goes; the pair is
//! recorded in the destination before it is forgotten in the source, so a crash between
//! the two leaves a pair that the next pass forgets, never an unpaired copy that would be
//! appended or fetched a second time.

use std::io;
use std::time::SystemTime;

use crate::fault;
use crate::imap::ImapSession;
use crate::maildir::{LocalMessage, Maildir};
use crate::model::{MaildirKey, Uid};
use crate::store::{Commit, FolderId, IntentKind, IntentSpec, Store};
use crate::sync::Pair;

use super::EngineError;
use super::LocalError;
use crate::maildir::MessageError;
use crate::store::StoreError;

/// Where one end of a move lives.
pub struct End<'a> {
    pub folder: FolderId,
    pub wire: &'a str,
    pub md: &'a Maildir,
}

/// The intent `detail` of a move, so recovery knows what kind it was.
pub enum MoveDetail {
    /// A server deletion carried out as a move to the trash folder (`wire` name).
    Trash(String),
    /// A local move mirrored on the server into folder `to`.
    Server { to: FolderId },
    /// A server move mirrored locally into folder `to`, where the message is `uid`.
    Local { to: FolderId, uid: Uid },
}

impl MoveDetail {
    pub fn encode(&self) -> String {
        match self {
            MoveDetail::Trash(wire) => format!("trash:{wire}"),
            MoveDetail::Server { to } => format!("server:{}", to.0),
            MoveDetail::Local { to, uid } => format!("local:{}:{}", to.0, uid.0),
        }
    }

    pub fn decode(detail: &str) -> Option<MoveDetail> {
        let (kind, rest) = detail.split_once(':')?;
        match kind {
            "trash" => Some(MoveDetail::Trash(rest.to_owned())),
            "server" => Some(MoveDetail::Server {
                to: FolderId(rest.parse().ok()?),
            }),
            "local" => {
                let (to, uid) = rest.split_once(':')?;
                Some(MoveDetail::Local {
                    to: FolderId(to.parse().ok()?),
                    uid: Uid(uid.parse().ok()?),
                })
            }
            _ => None,
        }
    }
}

async fn journal(
    store: &Store,
    from: FolderId,
    pair: &Pair,
    detail: MoveDetail,
) -> Result<crate::store::IntentId, EngineError> {
    let spec = IntentSpec {
        folder: Some(from),
        uid: Some(pair.uid),
        local_key: Some(pair.key.clone()),
        token: pair.message_id.as_ref().map(|m| m.0.clone()),
        detail: detail.encode(),
        ..IntentSpec::new(IntentKind::Move)
    };
    let ids = store.begin_intents(vec![spec], SystemTime::now()).await?;
    fault::point("after-intent");
    ids.into_iter()
        .next()
        .ok_or_else(|| StoreError::Invalid("the journal returned no intent".into()).into())
}

/// Record the moved pair in `to`, then forget it in `from` and close the intent.
pub async fn repair_moved(
    store: &Store,
    from: FolderId,
    to: FolderId,
    old: &Pair,
    new_uid: Uid,
    intent: Option<crate::store::IntentId>,
) -> Result<(), EngineError> {
    store
        .commit(Commit {
            folder: Some(to),
            upsert_pairs: vec![Pair {
                uid: new_uid,
                ..old.clone()
            }],
            ..Commit::default()
        })
        .await?;
    fault::point("move-between-commits");
    store
        .commit(Commit {
            folder: Some(from),
            remove_pairs: vec![old.uid],
            complete_intents: intent.into_iter().collect(),
            ..Commit::default()
        })
        .await?;
    Ok(())
}

/// The file moved locally: `UID MOVE` it on the server and pair the UID it got there.
pub async fn on_server(
    session: &mut ImapSession,
    store: &Store,
    from: &End<'_>,
    to: &End<'_>,
    pair: &Pair,
) -> Result<(), EngineError> {
    let intent = journal(
        store,
        from.folder,
        pair,
        MoveDetail::Server { to: to.folder },
    )
    .await?;
    session.select(from.wire, None).await?;
    let mapping = session.move_to(&[pair.uid], to.wire).await?;
    fault::point("after-move");
    match mapping.get(&pair.uid) {
        Some(new_uid) => {
            repair_moved(store, from.folder, to.folder, pair, *new_uid, Some(intent)).await
        }
        // Another client moved or expunged it first (after this pass observed it): there
        // was nothing to move. Not an error of ours; the next pass sees where it is.
        None if session.present(&[pair.uid]).await?.is_empty() => {
            tracing::info!(
                folder = from.wire,
                "UID {} left before its move to {}; the next pass looks for it",
                pair.uid,
                to.wire
            );
            store.drop_intents(vec![intent]).await?;
            Ok(())
        }
        // Without COPYUID the new UID is unknown: the intent stays open, and recovery
        // finds the message in `to` by its Message-ID before the next pass.
        None => Err(EngineError::Server(format!(
            "UID MOVE of {} gave no COPYUID; cannot pair the moved message",
            pair.uid
        ))),
    }
}

/// The server moved it: rename the file into the destination Maildir (same name, so the
/// key and flags stay), make both directories durable, then re-pair.
pub async fn locally(
    store: &Store,
    from: &End<'_>,
    to: &End<'_>,
    pair: &Pair,
    uid: Uid,
    file: Option<&LocalMessage>,
) -> Result<(), EngineError> {
    let intent = journal(
        store,
        from.folder,
        pair,
        MoveDetail::Local { to: to.folder, uid },
    )
    .await?;
    if !rename_into(from.md, to.md, &pair.key, file)? {
        return Err(neither(&pair.key));
    }
    fault::point("after-move");
    repair_moved(store, from.folder, to.folder, pair, uid, Some(intent)).await
}

/// Move the file holding `key` from one Maildir into the same subdirectory of another.
/// Already there (a replay after a crash) is success; in neither folder (the mail
/// client moved or deleted it meanwhile) is `Ok(false)`, for the caller to decide.
pub fn rename_into(
    from: &Maildir,
    to: &Maildir,
    key: &MaildirKey,
    known: Option<&LocalMessage>,
) -> Result<bool, EngineError> {
    let msg = match known.filter(|m| m.path.exists()) {
        Some(m) => Some(m.clone()),
        None => from
            .scan()
            .map_err(LocalError::io(from.path()))?
            .messages
            .get(key)
            .cloned(),
    };
    let Some(msg) = msg else {
        return Ok(to
            .scan()
            .map_err(LocalError::io(to.path()))?
            .messages
            .contains_key(key));
    };
    let name = msg
        .path
        .file_name()
        .ok_or_else(|| LocalError::Unexpected(format!("{key}: no file name")))?;
    let dir = if msg.in_new {
        to.new_dir()
    } else {
        to.cur_dir()
    };
    let target = dir.join(name);
    match to.rename_exclusive(&msg.path, &target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(LocalError::Message(MessageError::Collision { path: target }).into());
        }
        Err(e) => return Err(LocalError::io(&msg.path)(e).into()),
    }
    to.sync_dirs().map_err(LocalError::io(to.path()))?;
    from.sync_dirs().map_err(LocalError::io(from.path()))?;
    Ok(true)
}

/// The error for a file a move needs that is in neither folder.
pub fn neither(key: &MaildirKey) -> EngineError {
    LocalError::Unexpected(format!("{key} is in neither folder; rescan")).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maildir::{FolderMap, Layout, rename};
    use crate::model::FolderName;

    /// A move from one folder to another is a rename that never replaces a file of the
    /// same name in the destination (another tool's, or a copy a client made), with or
    /// without `RENAME_NOREPLACE`; a replayed move finds its file already there.
    #[test]
    fn rule_03_a_moved_file_never_overwrites_one_in_the_destination() {
        for supported in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let map = FolderMap::new(dir.path(), Layout::Verbatim, Some('/'));
            let open =
                |name: &str| Maildir::open(map.create(&FolderName(name.into())).unwrap()).unwrap();
            let (from, to) = (open("INBOX"), open("Archive"));
            let (taken, free) = (MaildirKey("1.M1P1.h".into()), MaildirKey("2.M1P1.h".into()));
            std::fs::write(from.cur_dir().join("1.M1P1.h:2,S"), b"ours").unwrap();
            std::fs::write(to.cur_dir().join("1.M1P1.h:2,S"), b"theirs").unwrap();
            std::fs::write(from.new_dir().join("2.M1P1.h"), b"moved").unwrap();
            let ((refused, moved, again), tried) = rename::hooks::with_renames(supported, || {
                (
                    rename_into(&from, &to, &taken, None),
                    rename_into(&from, &to, &free, None),
                    rename_into(&from, &to, &free, None),
                )
            });
            let err = refused.unwrap_err().to_string();
            assert!(err.contains("refusing to overwrite"), "{supported}: {err}");
            assert_eq!(
                std::fs::read(to.cur_dir().join("1.M1P1.h:2,S")).unwrap(),
                b"theirs"
            );
            assert_eq!(
                std::fs::read(from.cur_dir().join("1.M1P1.h:2,S")).unwrap(),
                b"ours"
            );
            assert!(moved.unwrap() && again.unwrap());
            assert_eq!(
                std::fs::read(to.new_dir().join("2.M1P1.h")).unwrap(),
                b"moved"
            );
            assert_eq!(tried, if supported { 2 } else { 1 }, "{supported}");
        }
    }

    #[test]
    fn move_details_round_trip() {
        for d in [
            MoveDetail::Trash("Trash".into()),
            MoveDetail::Server { to: FolderId(7) },
            MoveDetail::Local {
                to: FolderId(3),
                uid: Uid(42),
            },
        ] {
            assert_eq!(
                MoveDetail::decode(&d.encode()).map(|d| d.encode()),
                Some(d.encode())
            );
        }
        assert!(MoveDetail::decode("nonsense").is_none());
    }
}
