//! syncmail's own OAuth2: access tokens kept in memory only and refreshed ahead of their
//! expiry from the refresh token `syncmail login` stored; a refusal by the provider
//! becomes "run `syncmail login ACCOUNT`", and the same refused token is not sent again.

pub mod http;
pub mod login;
pub mod pkce;
pub mod store;
pub mod url;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use crate::config::oauth2::OAuth2;
use crate::secret::{Secret, SecretError};

/// When the provider does not say how long an access token lasts.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// At most this long before its expiry a token is replaced.
const MAX_MARGIN: Duration = Duration::from_secs(300);

/// Whether a token issued at `issued` for `lifetime` must be refreshed at `now`: within a
/// fifth of its lifetime (at most five minutes) of its expiry, or when the wall clock
/// went back past its issue. Wall-clock time on purpose: a machine that slept through
/// the expiry sees it at once on waking, where a monotonic clock stood still.
pub fn needs_refresh(issued: SystemTime, lifetime: Duration, now: SystemTime) -> bool {
    let margin = (lifetime / 5).min(MAX_MARGIN);
    match now.duration_since(issued) {
        Ok(age) => age + margin >= lifetime,
        Err(_) => true,
    }
}

struct Cached {
    access: Secret,
    issued: SystemTime,
    lifetime: Duration,
}

/// One slot per account and registration; its async lock makes concurrent connections
/// wait for one refresh instead of each making its own.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

static SLOTS: LazyLock<Mutex<BTreeMap<String, Slot>>> = LazyLock::new(Mutex::default);

/// Refresh tokens the provider refused, by digest, with the reason: the same token is
/// never sent again; a new login stores a different one and the account resumes.
static REFUSED: LazyLock<Mutex<BTreeMap<String, Refusal>>> = LazyLock::new(Mutex::default);

/// A refused refresh token's SHA-256, and the provider's reason.
type Refusal = ([u8; 32], String);

fn key(cfg: &OAuth2) -> String {
    format!("{}\0{}\0{}", cfg.account, cfg.client_id, cfg.token_endpoint)
}

fn slot(cfg: &OAuth2) -> Slot {
    SLOTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key(cfg))
        .or_default()
        .clone()
}

fn digest(token: &Secret) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.expose().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn login_needed(cfg: &OAuth2, why: String) -> SecretError {
    SecretError::LoginNeeded {
        account: cfg.account.clone(),
        why,
    }
}

/// An access token valid at `now` for a while yet: the cached one, else a fresh one from
/// the stored refresh token. `now` is an argument so that tests can run hours of token
/// lifetimes in seconds.
pub async fn access_token(cfg: &OAuth2, now: SystemTime) -> Result<Secret, SecretError> {
    let slot = slot(cfg);
    let mut cached = slot.lock().await;
    if let Some(c) = cached.as_ref()
        && !needs_refresh(c.issued, c.lifetime, now)
    {
        return Ok(c.access.clone());
    }
    *cached = None;
    let (refresh_token, place) = store::load(cfg)
        .await
        .map_err(|why| SecretError::TokenStore {
            account: cfg.account.clone(),
            why,
        })?
        .ok_or_else(|| {
            login_needed(
                cfg,
                format!(
                    "no OAuth2 login is stored (token_store = \"{}\")",
                    cfg.token_store.as_str()
                ),
            )
        })?;
    let fingerprint = digest(&refresh_token);
    if let Some((refused, why)) = REFUSED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key(cfg))
        && *refused == fingerprint
    {
        return Err(login_needed(cfg, why.clone()));
    }
    let tokens = match http::refresh(cfg, &refresh_token).await {
        Ok(t) => t,
        Err(http::TokenError::Refused { error, description }) => {
            let why = format!(
                "the provider refused the stored OAuth2 login ({error}{})",
                description.map(|d| format!(": {d}")).unwrap_or_default()
            );
            tracing::warn!(account = %cfg.account, "{why}");
            REFUSED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key(cfg), (fingerprint, why.clone()));
            return Err(login_needed(cfg, why));
        }
        Err(http::TokenError::Failed(why)) => {
            return Err(SecretError::OAuth2 {
                account: cfg.account.clone(),
                why: format!("refreshing the access token failed: {why}"),
            });
        }
    };
    REFUSED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key(cfg));
    if let Some(rotated) = &tokens.refresh_token
        && *rotated != refresh_token
    {
        // The provider rotated it (Microsoft does): the old one stops working soon.
        if let Err(why) = store::save(cfg, rotated).await {
            tracing::warn!(account = %cfg.account, "cannot store the rotated refresh token: {why}");
        }
    }
    let lifetime = tokens
        .expires_in
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    tracing::info!(
        account = %cfg.account,
        "refreshed the OAuth2 access token (valid for {}s; refresh token from {place})",
        lifetime.as_secs()
    );
    *cached = Some(Cached {
        access: tokens.access_token.clone(),
        issued: now,
        lifetime,
    });
    Ok(tokens.access_token)
}

/// The server refused the access token: forget it, so the next fetch refreshes.
pub async fn rejected(cfg: &OAuth2) {
    *slot(cfg).lock().await = None;
}

/// Forget every cached access token (after a suspend or a clock jump).
pub fn forget_all() {
    let slots: Vec<Slot> = SLOTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for slot in slots {
        if let Ok(mut s) = slot.try_lock() {
            *s = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_ahead_of_expiry_and_after_a_sleep() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        assert!(!needs_refresh(t0, hour, t0));
        assert!(!needs_refresh(t0, hour, t0 + Duration::from_secs(3299)));
        // Five minutes ahead of the expiry.
        assert!(needs_refresh(t0, hour, t0 + Duration::from_secs(3300)));
        // A machine that slept for a day.
        assert!(needs_refresh(t0, hour, t0 + 24 * hour));
        // The wall clock went back.
        assert!(needs_refresh(t0, hour, t0 - Duration::from_secs(1)));
        // A five-second token is replaced a second ahead.
        let five = Duration::from_secs(5);
        assert!(!needs_refresh(t0, five, t0 + Duration::from_millis(3900)));
        assert!(needs_refresh(t0, five, t0 + Duration::from_secs(4)));
    }
}
