//! One account as the library sees it, for tests that drive the library below
//! `syncmail sync`: parsed from a TOML block (`Dovecot::imap_account`, `pop3_account`),
//! its secret fetched, its IMAP login done.

use std::path::Path;

use syncmail::config::{self, Account, Dirs};
use syncmail::imap::{self, Connected, ImapError};
use syncmail::secret::{self, CredentialKind, Secret};

/// The first account of a config holding `toml`, whose Maildir and home are never used.
pub fn account(toml: &str) -> Account {
    let dirs = Dirs {
        home: Some("/nonexistent-home".into()),
        ..Dirs::default()
    };
    let text = format!("[general]\nmaildir = \"/tmp/unused\"\n\n{toml}");
    let mut loaded = config::parse(Path::new("test.toml"), &text, &dirs).expect("valid config");
    loaded.config.accounts.remove(0)
}

/// The account's secret, fetched as `syncmail` fetches it.
pub async fn secret_of(account: &Account) -> (Secret, CredentialKind) {
    secret::fetch(&account.secret, secret::COMMAND_TIMEOUT)
        .await
        .unwrap()
}

/// Connect and log in with the account's own secret.
pub async fn imap_login(account: &Account) -> Result<Connected, ImapError> {
    let (secret, kind) = secret_of(account).await;
    imap::connect(&account.server, &secret, kind).await
}
