//! Two IMAP accounts (alice as `work`, bob as `home`) and optionally a POP3 account
//! (carol as `old`) on one private Dovecot, with the unified inbox at
//! `~/Mail/Unified/INBOX`: the set-up of the unified-inbox and mail-client tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::dovecot::message;
use super::maildir as md;
use super::{Dovecot, stderr, stdout, syncmail};

pub struct UnifiedEnv {
    pub dovecot: Dovecot,
    pub home: tempfile::TempDir,
    pub config: PathBuf,
}

impl UnifiedEnv {
    /// `work` (alice) and `home` (bob) over IMAPS; with `pop3`, also `old` (carol).
    pub fn new(pop3: bool, account_extra: &str) -> UnifiedEnv {
        let dovecot = Dovecot::start_with_users(&["alice", "bob", "carol"]);
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join("config.toml");
        let mut text = format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n",
            home.path().display()
        );
        for (name, user) in [("work", "alice"), ("home", "bob")] {
            text.push_str(&dovecot.imap_account(name, user, "implicit"));
            text.push_str(account_extra);
            text.push('\n');
        }
        if pop3 {
            text.push_str(&dovecot.pop3_account("old", "carol", "implicit"));
            text.push('\n');
        }
        text.push_str(&format!(
            "[unified]\npath = \"{}/Mail/Unified/INBOX\"\n",
            home.path().display()
        ));
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        UnifiedEnv {
            dovecot,
            home,
            config,
        }
    }

    pub fn seed(&self, user: &str, id: &str) {
        self.dovecot.seed(
            user,
            "INBOX",
            &message(id, &format!("{id}@test"), &format!("body of {id}")),
        );
    }

    pub fn unified(&self) -> PathBuf {
        self.home.path().join("Mail/Unified/INBOX")
    }

    pub fn inbox(&self, account: &str) -> PathBuf {
        self.home.path().join("Mail").join(account).join("INBOX")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = vec![args[0], "--config", self.config.to_str().unwrap()];
        all.extend_from_slice(&args[1..]);
        syncmail(self.home.path(), &all)
    }

    /// `syncmail sync`, required to succeed; its stdout.
    pub fn sync_ok(&self) -> String {
        let out = self.run(&["sync"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "sync failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// The unified key of the message `id`.
    pub fn key_of(&self, dir: &Path, id: &str) -> String {
        let needle = format!("body of {id}\r\n");
        md::messages(dir)
            .into_keys()
            .find(|k| md::read(dir, k).ends_with(needle.as_bytes()))
            .unwrap_or_else(|| panic!("no message {id} in {dir:?}"))
    }

    /// `(Message-ID, flag letters)` of the unified folder.
    pub fn unified_state(&self) -> Vec<(String, String)> {
        md::state(&self.unified())
    }

    pub fn server_ids(&self, user: &str) -> Vec<String> {
        self.dovecot
            .state(user, "INBOX")
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    pub fn server_flags(&self, user: &str, id: &str) -> String {
        self.server_flags_if_there(user, id)
            .unwrap_or_else(|| panic!("{id} not on {user}'s server"))
    }

    /// The flags of `id` in `user`'s INBOX, or `None` when it is not there.
    pub fn server_flags_if_there(&self, user: &str, id: &str) -> Option<String> {
        let want = format!("<{id}@test>");
        self.dovecot
            .state(user, "INBOX")
            .into_iter()
            .find(|(i, _)| *i == want)
            .map(|(_, f)| f)
    }

    /// The mapping's rows, as stored.
    pub fn mapping(&self) -> Vec<(String, String, String, String, String)> {
        let db = self.home.path().join("state/unified.sqlite");
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let mut stmt = conn
            .prepare("SELECT unified_key, account, folder, local_key, base_flags FROM entries ORDER BY unified_key")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// No Message-ID twice: in the unified folder, on each server, in each account.
    pub fn assert_no_duplicates(&self) {
        let once = |what: &str, ids: Vec<String>| {
            let mut seen = BTreeMap::new();
            for id in ids {
                *seen.entry(id).or_insert(0) += 1;
            }
            let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
            assert!(twice.is_empty(), "{what} holds duplicates: {twice:?}");
        };
        once(
            "the unified folder",
            self.unified_state().into_iter().map(|(i, _)| i).collect(),
        );
        for user in ["alice", "bob"] {
            once(user, self.server_ids(user));
        }
        for account in ["work", "home"] {
            if self.inbox(account).is_dir() {
                once(
                    account,
                    md::state(&self.inbox(account))
                        .into_iter()
                        .map(|(i, _)| i)
                        .collect(),
                );
            }
        }
    }
}
