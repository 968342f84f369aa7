//! `[account.oauth2]` resolved: the provider's endpoints and default scopes, the user's
//! own app registration and where the refresh token is kept. Data only; no IO.

use std::path::PathBuf;

/// Whose authorization server this is. Presets only choose endpoints and scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Google,
    Microsoft,
    Custom,
}

/// Where the refresh token is kept. Config key `token_store`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStore {
    /// The system keyring when one answers, else the file (a headless server).
    #[default]
    Auto,
    /// The system keyring (Secret Service on Linux, the Keychain on macOS), or an error.
    Keyring,
    /// A 0600 file in the state directory.
    File,
}

impl TokenStore {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStore::Auto => "auto",
            TokenStore::Keyring => "keyring",
            TokenStore::File => "file",
        }
    }
}

/// A resolved `[account.oauth2]`. `Debug` hides the client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth2 {
    /// The account this belongs to: it names the stored token.
    pub account: String,
    /// The account's login name, a hint for the provider's sign-in page.
    pub user: String,
    pub provider: Provider,
    pub client_id: String,
    /// Confidential clients only; Google's "desktop app" clients have one that is not
    /// really secret, Microsoft's public clients have none.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// RFC 8628; `None` where the provider has none for this use.
    pub device_endpoint: Option<String>,
    /// RFC 7009, used by nothing in the sync path; kept for `login` to revoke a replaced
    /// token.
    pub revocation_endpoint: Option<String>,
    pub token_store: TokenStore,
    /// The file used when `token_store` is `file` (or `auto` finds no keyring).
    pub token_file: PathBuf,
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("scopes", &self.scopes)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("device_endpoint", &self.device_endpoint)
            .field("token_store", &self.token_store)
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// The endpoints of a preset provider (`tenant` only matters for Microsoft).
pub struct Preset {
    pub authorization: String,
    pub token: String,
    pub device: Option<String>,
    pub revocation: Option<String>,
}

pub fn preset(provider: Provider, tenant: &str) -> Option<Preset> {
    match provider {
        Provider::Google => Some(Preset {
            authorization: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token: "https://oauth2.googleapis.com/token".into(),
            // Google has a device endpoint, but refuses the mail scope on it: `login
            // --device` says so instead of sending the user to a page that fails.
            device: None,
            revocation: Some("https://oauth2.googleapis.com/revoke".into()),
        }),
        Provider::Microsoft => {
            let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
            Some(Preset {
                authorization: format!("{base}/authorize"),
                token: format!("{base}/token"),
                device: Some(format!("{base}/devicecode")),
                revocation: None,
            })
        }
        Provider::Custom => None,
    }
}

/// The scopes asked for when the config names none.
pub fn default_scopes(provider: Provider, pop3: bool) -> Vec<String> {
    match (provider, pop3) {
        (Provider::Google, _) => vec!["https://mail.google.com/".into()],
        (Provider::Microsoft, false) => vec![
            "https://outlook.office.com/IMAP.AccessAsUser.All".into(),
            "offline_access".into(),
        ],
        (Provider::Microsoft, true) => vec![
            "https://outlook.office.com/POP.AccessAsUser.All".into(),
            "offline_access".into(),
        ],
        (Provider::Custom, _) => Vec::new(),
    }
}

/// The token file of an account, next to its state database.
pub fn token_file(state_dir: &std::path::Path, account: &str) -> PathBuf {
    state_dir.join(format!("{account}.oauth2-token"))
}
