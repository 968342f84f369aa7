//! The config file exactly as written: serde structs with spans, unknown keys refused.
//! Nothing here is trusted; `validate` turns it into a `Config` or a located error.

use serde::Deserialize;
use toml::Spanned;

use crate::sync::{DeleteVsFlag, Direction, Expunge};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub general: Option<RawGeneral>,
    #[serde(default)]
    pub account: Vec<Spanned<RawAccount>>,
    pub unified: Option<Spanned<RawUnified>>,
}

/// `[unified]`: one Maildir showing every configured account's folders together.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnified {
    pub path: Spanned<String>,
    pub folders: Option<Spanned<Vec<Spanned<String>>>>,
    pub accounts: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeneral {
    pub maildir: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub on_new_mail: Option<Spanned<Vec<String>>>,
    pub after_sync: Option<Spanned<Vec<String>>>,
    pub hook_timeout: Option<Spanned<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawKind {
    Imap,
    Pop3,
}

/// A mail provider whose defaults a preset chooses. Config key `provider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Gmail: labels are folders, `[Gmail]/All Mail` holds every message.
    Gmail,
}

/// How the connection is secured. Config key `tls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// TLS from the first byte (IMAPS 993, POP3S 995). The default.
    Implicit,
    /// Plain connection upgraded with STARTTLS/STLS, strictly: no fallback.
    Starttls,
    /// No encryption: only to loopback, or with `allow_plaintext = true`.
    None,
}

/// How to authenticate. Config key `auth`; `auto` picks from the secret source and the
/// server's capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMech {
    #[default]
    Auto,
    Login,
    Plain,
    Xoauth2,
    Oauthbearer,
    /// syncmail's own OAuth2 (`[account.oauth2]`): XOAUTH2 or OAUTHBEARER, whichever
    /// the server offers.
    Oauth2,
    /// POP3 only: APOP digest login.
    Apop,
}

pub use crate::maildir::Layout;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub name: Spanned<String>,
    pub kind: Spanned<RawKind>,
    pub host: Spanned<String>,
    pub provider: Option<Spanned<Provider>>,
    pub port: Option<Spanned<i64>>,
    pub tls: Option<Spanned<Tls>>,
    pub allow_plaintext: Option<bool>,
    pub compress: Option<Spanned<bool>>,
    pub user: Spanned<String>,
    pub auth: Option<Spanned<AuthMech>>,

    pub password_command: Option<Spanned<Vec<String>>>,
    pub oauth2_token_command: Option<Spanned<Vec<String>>>,
    pub password: Option<Spanned<String>>,
    pub oauth2: Option<Spanned<RawOAuth2>>,

    pub ca_file: Option<Spanned<String>>,
    pub cert_fingerprint: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub maildir: Option<Spanned<String>>,
    pub poll_interval: Option<Spanned<String>>,

    // IMAP only.
    pub folders: Option<Spanned<Vec<Spanned<String>>>>,
    pub idle: Option<Spanned<Vec<Spanned<String>>>>,
    pub idle_refresh: Option<Spanned<String>>,
    pub layout: Option<Spanned<Layout>>,
    pub folder_names: Option<Spanned<crate::maildir::FolderNames>>,
    pub use_namespace: Option<Spanned<bool>>,
    pub direction: Option<Spanned<Direction>>,
    pub expunge: Option<Spanned<Expunge>>,
    pub trash: Option<Spanned<String>>,
    pub delete_vs_flag: Option<Spanned<DeleteVsFlag>>,
    pub max_delete_share: Option<Spanned<f64>>,
    pub connections: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
    pub idle_connections: Option<Spanned<i64>>,
    pub sweep_interval: Option<Spanned<String>>,

    // POP3 only.
    pub keep_on_server: Option<Spanned<bool>>,
    pub delete_after_days: Option<Spanned<i64>>,
}

/// `[account.oauth2]`: syncmail does the OAuth2 flow itself (`syncmail login`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth2 {
    pub provider: Spanned<super::oauth2::Provider>,
    pub client_id: Option<Spanned<String>>,
    pub client_secret: Option<Spanned<String>>,
    pub tenant: Option<Spanned<String>>,
    pub scopes: Option<Spanned<Vec<String>>>,
    pub authorization_endpoint: Option<Spanned<String>>,
    pub token_endpoint: Option<Spanned<String>>,
    pub device_authorization_endpoint: Option<Spanned<String>>,
    pub revocation_endpoint: Option<Spanned<String>>,
    pub token_store: Option<Spanned<super::oauth2::TokenStore>>,
}

/// Every account's name and extent, read leniently so that an error anywhere inside an
/// account can say which account it is in even when the strict parse failed.
#[derive(Debug, Deserialize)]
pub struct Outline {
    #[serde(default)]
    pub account: Vec<Spanned<OutlineAccount>>,
}

#[derive(Debug, Deserialize)]
pub struct OutlineAccount {
    pub name: Option<toml::Value>,
}
