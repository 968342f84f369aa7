//! Where the refresh token lives: the system keyring (Secret Service on Linux, the
//! Keychain on macOS) or a 0600 file in the state directory. The token is stored with
//! the client id it was issued to, so a changed `client_id` asks for a new login
//! instead of failing at the provider.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::oauth2::{OAuth2, TokenStore};
use crate::secret::Secret;

/// The keyring's service name for every syncmail entry.
const SERVICE: &str = "syncmail";
/// A keyring that does not answer within this is taken as unreachable.
const KEYRING_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a token was found or put, as `check-config` and `status` say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Keyring,
    File(PathBuf),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Keyring => f.write_str(KEYRING_NAME),
            Place::File(p) => write!(f, "the file {}", p.display()),
        }
    }
}

#[cfg(target_os = "macos")]
const KEYRING_NAME: &str = "the system keyring (Keychain)";
#[cfg(not(target_os = "macos"))]
const KEYRING_NAME: &str = "the system keyring (Secret Service)";

/// The keyring entry's user: account and client id, so each registration has its own.
fn keyring_user(cfg: &OAuth2) -> String {
    format!("{} oauth2 {}", cfg.account, cfg.client_id)
}

/// A keyring operation on a blocking thread, with a deadline.
async fn keyring<T: Send + 'static>(
    cfg: &OAuth2,
    op: impl FnOnce(keyring::Entry) -> keyring::Result<T> + Send + 'static,
) -> Result<T, String> {
    let user = keyring_user(cfg);
    let task = tokio::task::spawn_blocking(move || {
        let entry = keyring::Entry::new(SERVICE, &user)?;
        op(entry)
    });
    match tokio::time::timeout(KEYRING_TIMEOUT, task).await {
        Err(_) => Err(format!(
            "the keyring did not answer within {KEYRING_TIMEOUT:?}"
        )),
        Ok(Err(e)) => Err(format!("the keyring task failed: {e}")),
        // keyring's errors name the platform's failure, never the stored value.
        Ok(Ok(r)) => r.map_err(|e| e.to_string()),
    }
}

async fn keyring_load(cfg: &OAuth2) -> Result<Option<Secret>, String> {
    keyring(cfg, |e| match e.get_password() {
        Ok(p) => Ok(Some(Secret::new(p))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(e),
    })
    .await
}

/// Whether the keyring answers at all (an absent entry is an answer).
pub async fn keyring_reachable(cfg: &OAuth2) -> Result<(), String> {
    keyring_load(cfg).await.map(|_| ())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileToken {
    client_id: String,
    refresh_token: String,
}

fn file_load(cfg: &OAuth2) -> Result<Option<Secret>, String> {
    let path = &cfg.token_file;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let token: FileToken = serde_json::from_str(&text)
        .map_err(|_| format!("{} is not a syncmail token file", path.display()))?;
    Ok((token.client_id == cfg.client_id).then(|| Secret::new(token.refresh_token)))
}

/// Written to a 0600 temp file beside it, synced, renamed over: a crash leaves the old
/// token or the new one, never half of one.
fn file_save(cfg: &OAuth2, token: &Secret) -> Result<(), String> {
    let path = &cfg.token_file;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let body = serde_json::to_string(&FileToken {
        client_id: cfg.client_id.clone(),
        refresh_token: token.expose().to_owned(),
    })
    .map_err(|e| e.to_string())?;
    let tmp = path.with_extension("oauth2-token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

fn file_delete(cfg: &OAuth2) {
    let _ = std::fs::remove_file(&cfg.token_file);
}

/// The stored refresh token and where it was, or `None` when no login is stored.
pub async fn load(cfg: &OAuth2) -> Result<Option<(Secret, Place)>, String> {
    let file = || file_load(cfg).map(|t| t.map(|t| (t, Place::File(cfg.token_file.clone()))));
    match cfg.token_store {
        TokenStore::File => file(),
        TokenStore::Keyring => Ok(keyring_load(cfg).await?.map(|t| (t, Place::Keyring))),
        TokenStore::Auto => match keyring_load(cfg).await {
            Ok(Some(t)) => Ok(Some((t, Place::Keyring))),
            // Saved while no keyring answered, or no login at all.
            Ok(None) | Err(_) => file(),
        },
    }
}

/// Store a refresh token; says where it went.
pub async fn save(cfg: &OAuth2, token: &Secret) -> Result<Place, String> {
    let to_keyring = |token: Secret| keyring(cfg, move |e| e.set_password(token.expose()));
    match cfg.token_store {
        TokenStore::File => file_save(cfg, token).map(|()| Place::File(cfg.token_file.clone())),
        TokenStore::Keyring => {
            to_keyring(token.clone()).await?;
            Ok(Place::Keyring)
        }
        TokenStore::Auto => match to_keyring(token.clone()).await {
            Ok(()) => {
                // One copy only: a file left from a keyless day would shadow nothing,
                // but it is a token on disk that no longer needs to be there.
                file_delete(cfg);
                Ok(Place::Keyring)
            }
            Err(why) => {
                tracing::info!(
                    account = %cfg.account,
                    "no keyring reachable ({why}); storing the OAuth2 refresh token in {}",
                    cfg.token_file.display()
                );
                file_save(cfg, token).map(|()| Place::File(cfg.token_file.clone()))
            }
        },
    }
}

/// What `check-config` and `status` say about the store, without showing the token.
pub async fn describe(cfg: &OAuth2) -> String {
    let configured = cfg.token_store.as_str();
    let place = match load(cfg).await {
        Ok(Some((_, place))) => format!("a login is stored in {place}"),
        Ok(None) => format!("no login stored yet: run `syncmail login {}`", cfg.account),
        Err(why) => format!("the token store cannot be read: {why}"),
    };
    let keyring = match cfg.token_store {
        TokenStore::File => String::new(),
        _ => match keyring_reachable(cfg).await {
            Ok(()) => format!("; {KEYRING_NAME} answers"),
            Err(why) => format!("; {KEYRING_NAME} is not reachable ({why})"),
        },
    };
    format!("token_store = \"{configured}\"{keyring}; {place}")
}

/// [`describe`] for a caller outside the async runtime (`check-config`, `status`).
pub fn describe_now(cfg: &OAuth2) -> String {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(describe(cfg)),
        Err(e) => format!("the token store cannot be read: {e}"),
    }
}
