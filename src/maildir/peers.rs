//! What other sync tools left in a Maildir folder that names each file's server UID:
//! mbsync's `.mbsyncstate` (with `.uidvalidity` and the `,U=` in its file names) and
//! OfflineIMAP's `,U=<uid>,FMD5=<md5 of the folder name>` file names. Read only; the
//! other tool's files are never changed. A first contact (rule 21) pairs by this state
//! only where the UIDVALIDITY it recorded is the server's.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::{MaildirKey, Uid, UidValidity};
use crate::sync::adopt::PreviousTool;

/// Which folder a Maildir folder is, in the names the previous tools used for it.
pub struct FolderNames<'a> {
    /// The folder's directory under the account's Maildir root, as on disk
    /// (`Archive/2024`, `Entw&APw-rfe`): OfflineIMAP's `FMD5` is the MD5 of this.
    pub local: &'a str,
    /// The server's name for it, decoded (`Archive/2024`, `Entwürfe`).
    pub server: &'a str,
}

/// The pairs the previous tool's state names among `keys` (files in `dir`), each with
/// the server UID it was synced as. Empty when there is no such state, it cannot be read,
/// or it was made against another UIDVALIDITY (then content pairing decides).
pub fn previous_pairs<'a>(
    dir: &Path,
    names: &FolderNames<'_>,
    server: UidValidity,
    keys: impl Iterator<Item = &'a MaildirKey>,
) -> Vec<(Uid, MaildirKey, PreviousTool)> {
    let keys: Vec<&MaildirKey> = keys.collect();
    let mut out = mbsync_pairs(dir, server, &keys);
    if out.is_empty() {
        out = offlineimap_pairs(names, server, &keys, offlineimap_validities);
    }
    out
}

/// mbsync's state in the folder (`SyncState *`, its default): `.mbsyncstate` maps each
/// far UID to a near UID; the Maildir's near UIDs are in the file names (`,U=n`) and its
/// UIDVALIDITY in `.uidvalidity`. The server is the side whose UIDVALIDITY is the
/// server's; the other must be this Maildir's.
fn mbsync_pairs(
    dir: &Path,
    server: UidValidity,
    keys: &[&MaildirKey],
) -> Vec<(Uid, MaildirKey, PreviousTool)> {
    // An interrupted run leaves a journal: the state file is then not the truth.
    if dir.join(".mbsyncstate.journal").exists() {
        return Vec::new();
    }
    let (Ok(state), Ok(maildir_validity)) = (
        std::fs::read_to_string(dir.join(".mbsyncstate")),
        std::fs::read_to_string(dir.join(".uidvalidity")),
    ) else {
        return Vec::new();
    };
    let Some(local) = maildir_validity
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return Vec::new();
    };
    let Some(state) = MbsyncState::parse(&state) else {
        return Vec::new();
    };
    let server_is_far = match (state.far, state.near) {
        (Some(f), Some(n)) if f == server.0 && n == local => true,
        (Some(f), Some(n)) if n == server.0 && f == local => false,
        _ => return Vec::new(),
    };
    let by_near_uid: BTreeMap<u32, &MaildirKey> = keys
        .iter()
        .filter_map(|k| Some((uid_in_name(&k.0, ",U=")?, *k)))
        .collect();
    state
        .entries
        .iter()
        .filter_map(|&(far, near)| {
            let (server_uid, maildir_uid) = if server_is_far {
                (far, near)
            } else {
                (near, far)
            };
            let key = by_near_uid.get(&maildir_uid)?;
            (server_uid > 0).then(|| (Uid(server_uid), (*key).clone(), PreviousTool::Mbsync))
        })
        .collect()
}

/// The parts of `.mbsyncstate` a pairing needs.
#[derive(Debug, Default, PartialEq, Eq)]
struct MbsyncState {
    far: Option<u32>,
    near: Option<u32>,
    /// (far UID, near UID) of each synced message; 0 where a side has none yet.
    entries: Vec<(u32, u32)>,
}

impl MbsyncState {
    /// The header (`FarUidValidity`/`NearUidValidity`, or 1.3's `Master`/`Slave`
    /// names), a blank line, then one line per message: `far near flags`.
    fn parse(text: &str) -> Option<MbsyncState> {
        let mut state = MbsyncState::default();
        let mut lines = text.lines();
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                break;
            }
            let (name, value) = line.split_once(' ')?;
            let value = value.trim().parse::<u32>().ok();
            match name {
                "FarUidValidity" | "MasterUidValidity" => state.far = value,
                "NearUidValidity" | "SlaveUidValidity" => state.near = value,
                _ => {}
            }
        }
        for line in lines {
            let mut parts = line.splitn(3, ' ');
            let far = parts.next()?.parse().ok()?;
            let near = parts.next()?.parse().ok()?;
            // The flags column is the last merge base; a mark before it says a copy is
            // a placeholder (`>` near, `<` far: a message over MaxSize), or skipped or
            // expired (`^`, `~`): no real pair.
            let flags = parts.next().unwrap_or("");
            if !flags.starts_with(['>', '<', '^', '~']) {
                state.entries.push((far, near));
            }
        }
        Some(state)
    }
}

/// OfflineIMAP names each file `...,U=<server uid>,FMD5=<md5 of the local folder
/// name>`. The UID counts only in the folder the MD5 names (a file moved in from another
/// folder keeps its old name, and is paired by content instead), and only under the
/// UIDVALIDITY OfflineIMAP recorded for the folder, which must be the server's: its
/// `Repository-*/FolderValidity/<folder>` under `~/.offlineimap`. Without that record
/// the names are not trusted.
fn offlineimap_pairs(
    names: &FolderNames<'_>,
    server: UidValidity,
    keys: &[&MaildirKey],
    validities: impl Fn(&[String]) -> Vec<u32>,
) -> Vec<(Uid, MaildirKey, PreviousTool)> {
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(names.local.as_bytes()));
    let named: Vec<(u32, &MaildirKey)> = keys
        .iter()
        .filter(|k| k.0.split(",FMD5=").nth(1).and_then(|m| m.get(..32)) == Some(md5.as_str()))
        .filter_map(|k| Some((uid_in_name(&k.0, ",U=")?, *k)))
        .collect();
    if named.is_empty() {
        return Vec::new();
    }
    // Its metadata names folders by the server's name with `.` for the hierarchy.
    let wire = crate::maildir::utf7::encode(names.server);
    let candidates = [wire.replace('/', "."), names.server.replace('/', ".")];
    if !validities(&candidates).contains(&server.0) {
        return Vec::new();
    }
    named
        .into_iter()
        .filter(|(uid, _)| *uid > 0)
        .map(|(uid, key)| (Uid(uid), key.clone(), PreviousTool::OfflineImap))
        .collect()
}

/// The UIDVALIDITYs OfflineIMAP recorded under any of these folder names, from
/// `$HOME/.offlineimap/Repository-*/FolderValidity/`.
fn offlineimap_validities(names: &[String]) -> Vec<u32> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    let meta = Path::new(&home).join(".offlineimap");
    let Ok(repos) = std::fs::read_dir(&meta) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for repo in repos.flatten() {
        for name in names {
            if let Ok(text) = std::fs::read_to_string(repo.path().join("FolderValidity").join(name))
                && let Ok(v) = text.trim().parse()
            {
                out.push(v);
            }
        }
    }
    out
}

/// The number after `marker` in a file's unique part (`...,U=17,...`).
fn uid_in_name(key: &str, marker: &str) -> Option<u32> {
    let rest = key.split(marker).nth(1)?;
    let digits: &str = &rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())];
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbsync_state_parses_both_generations() {
        let s = MbsyncState::parse(
            "FarUidValidity 1700000000\nNearUidValidity 42\nMaxPulledUid 3\nMaxPushedUid 2\n\n1 1 S\n2 3 \n3 0 F\n4 4 >\n5 5 ~S\n",
        )
        .unwrap();
        assert_eq!(
            s,
            MbsyncState {
                far: Some(1_700_000_000),
                near: Some(42),
                entries: vec![(1, 1), (2, 3), (3, 0)],
            }
        );
        let old =
            MbsyncState::parse("MasterUidValidity 5\nSlaveUidValidity 6\n\n7 8 FS\n").unwrap();
        assert_eq!(
            (old.far, old.near, old.entries),
            (Some(5), Some(6), vec![(7, 8)])
        );
        assert_eq!(MbsyncState::parse("garbage\n"), None);
    }

    #[test]
    fn uids_come_from_the_file_name() {
        assert_eq!(uid_in_name("1733.123_1.host,U=17", ",U="), Some(17));
        assert_eq!(
            uid_in_name(
                "1733_0.1.host,U=9,FMD5=0123456789abcdef0123456789abcdef",
                ",U="
            ),
            Some(9)
        );
        assert_eq!(uid_in_name("1733.123_1.host", ",U="), None);
    }

    fn keys(names: &[&str]) -> Vec<MaildirKey> {
        names.iter().map(|n| MaildirKey((*n).to_owned())).collect()
    }

    #[test]
    fn mbsync_pairs_need_both_uidvalidities_to_match() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".uidvalidity"), "42\n3\n").unwrap();
        std::fs::write(
            dir.path().join(".mbsyncstate"),
            "FarUidValidity 7\nNearUidValidity 42\nMaxPulledUid 2\nMaxPushedUid 0\n\n1 1 S\n2 2 \n",
        )
        .unwrap();
        let ks = keys(&["a,U=1", "b,U=2", "c"]);
        let names = FolderNames {
            local: "INBOX",
            server: "INBOX",
        };
        let pairs = previous_pairs(dir.path(), &names, UidValidity(7), ks.iter());
        assert_eq!(
            pairs,
            [
                (Uid(1), ks[0].clone(), PreviousTool::Mbsync),
                (Uid(2), ks[1].clone(), PreviousTool::Mbsync)
            ]
        );
        assert!(previous_pairs(dir.path(), &names, UidValidity(8), ks.iter()).is_empty());
        std::fs::write(dir.path().join(".mbsyncstate.journal"), "").unwrap();
        assert!(previous_pairs(dir.path(), &names, UidValidity(7), ks.iter()).is_empty());
    }

    #[test]
    fn offlineimap_names_count_in_their_own_folder_under_the_recorded_uidvalidity() {
        // md5("Archive/2024") and md5("INBOX"), as offlineimap3 8.0 writes them.
        let here = "ccd7d7a6d1558bb39540226cfa071c8c";
        let inbox = "7e33429f656f1e6e9d79b29c3f82c57e";
        let ks = keys(&[
            &format!("a,U=5,FMD5={here}"),
            &format!("b,U=6,FMD5={inbox}"),
            "c",
        ]);
        let names = FolderNames {
            local: "Archive/2024",
            server: "Archive/2024",
        };
        let asked = std::cell::RefCell::new(Vec::new());
        let recorded = |n: &[String]| {
            asked.borrow_mut().extend(n.iter().cloned());
            vec![42, 7]
        };
        assert_eq!(
            offlineimap_pairs(
                &names,
                UidValidity(7),
                &ks.iter().collect::<Vec<_>>(),
                recorded
            ),
            [(Uid(5), ks[0].clone(), PreviousTool::OfflineImap)]
        );
        assert!(asked.borrow().contains(&"Archive.2024".to_owned()));
        let stale = |_: &[String]| vec![42, 6];
        assert!(
            offlineimap_pairs(
                &names,
                UidValidity(7),
                &ks.iter().collect::<Vec<_>>(),
                stale
            )
            .is_empty()
        );
        let none = |_: &[String]| Vec::new();
        assert!(
            offlineimap_pairs(&names, UidValidity(7), &ks.iter().collect::<Vec<_>>(), none)
                .is_empty()
        );
    }
}
