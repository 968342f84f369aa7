//! The token, device and revocation endpoints over HTTPS (ureq with rustls, run on a
//! blocking thread). Answers are read into typed results; a response body is never
//! quoted whole in an error, since it may hold a token: only `error` and
//! `error_description` are.

use std::time::Duration;

use serde_json::Value;

use crate::config::oauth2::OAuth2;
use crate::secret::Secret;

/// How long one request to the authorization server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read: token answers are a few KiB.
const BODY_LIMIT: u64 = 256 * 1024;

/// A successful token answer (RFC 6749 §5.1).
pub struct Tokens {
    pub access_token: Secret,
    /// Seconds; `None` when the server did not say.
    pub expires_in: Option<u64>,
    /// A new refresh token (on a login, or a rotation on refresh).
    pub refresh_token: Option<Secret>,
    /// OpenID Connect's ID token, read only to say who logged in.
    pub id_token: Option<Secret>,
}

/// Why a token request failed.
#[derive(Debug)]
pub enum TokenError {
    /// The server answered with an OAuth2 error (RFC 6749 §5.2, RFC 8628 §3.5):
    /// `invalid_grant`, `authorization_pending`, Microsoft's AADSTS codes in the
    /// description...
    Refused {
        error: String,
        description: Option<String>,
    },
    /// No usable answer: network, TLS, a 5xx, a body that is not a token answer.
    Failed(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::Refused {
                error,
                description: Some(d),
            } => write!(f, "{error}: {d}"),
            TokenError::Refused { error, .. } => f.write_str(error),
            TokenError::Failed(why) => f.write_str(why),
        }
    }
}

/// POST a form and read the JSON answer, with its status.
async fn post_form(
    url: &str,
    form: Vec<(&'static str, String)>,
) -> Result<(u16, Value), TokenError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("syncmail/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let mut response = agent
            .post(&url)
            .header("Accept", "application/json")
            .send_form(form.iter().map(|(k, v)| (*k, v.as_str())))
            .map_err(|e| TokenError::Failed(format!("{url}: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_string()
            .map_err(|e| TokenError::Failed(format!("{url}: reading the answer: {e}")))?;
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(TokenError::Refused {
                error: clean(error),
                description: value
                    .get("error_description")
                    .and_then(Value::as_str)
                    .map(clean),
            });
        }
        if !(200..300).contains(&status) {
            return Err(TokenError::Failed(format!("{url} answered HTTP {status}")));
        }
        if value.is_null() {
            return Err(TokenError::Failed(format!(
                "{url} answered something that is not JSON"
            )));
        }
        Ok((status, value))
    })
    .await
    .map_err(|e| TokenError::Failed(format!("the request task failed: {e}")))?
}

/// One printable line of at most 300 characters: a server's error text goes into our
/// messages, so it must not carry control characters.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect()
}

fn with_client(cfg: &OAuth2, mut form: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    form.push(("client_id", cfg.client_id.clone()));
    if let Some(secret) = &cfg.client_secret {
        form.push(("client_secret", secret.clone()));
    }
    form
}

fn tokens(value: &Value) -> Result<Tokens, TokenError> {
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(Secret::new);
    let access_token = text("access_token").ok_or_else(|| {
        TokenError::Failed("the token endpoint's answer has no access_token".into())
    })?;
    let expires_in = match value.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        // Microsoft once sent it as a string.
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(Tokens {
        access_token,
        expires_in,
        refresh_token: text("refresh_token"),
        id_token: text("id_token"),
    })
}

/// `grant_type=refresh_token` (RFC 6749 §6).
pub async fn refresh(cfg: &OAuth2, refresh_token: &Secret) -> Result<Tokens, TokenError> {
    let form = with_client(
        cfg,
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", refresh_token.expose().to_owned()),
        ],
    );
    let (_, value) = post_form(&cfg.token_endpoint, form).await?;
    tokens(&value)
}

/// `grant_type=authorization_code` with the PKCE verifier (RFC 7636 §4.5).
pub async fn exchange_code(
    cfg: &OAuth2,
    code: &Secret,
    verifier: &Secret,
    redirect_uri: &str,
) -> Result<Tokens, TokenError> {
    let form = with_client(
        cfg,
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.expose().to_owned()),
            ("code_verifier", verifier.expose().to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
        ],
    );
    let (_, value) = post_form(&cfg.token_endpoint, form).await?;
    tokens(&value)
}

/// The device authorization answer (RFC 8628 §3.2).
pub struct DeviceAuthorization {
    pub device_code: Secret,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: u64,
}

pub async fn device_authorization(
    cfg: &OAuth2,
    endpoint: &str,
) -> Result<DeviceAuthorization, TokenError> {
    let form = with_client(cfg, vec![("scope", cfg.scopes.join(" "))]);
    let (_, v) = post_form(endpoint, form).await?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let missing = |k: &str| TokenError::Failed(format!("the device endpoint's answer has no {k}"));
    Ok(DeviceAuthorization {
        device_code: Secret::new(text("device_code").ok_or_else(|| missing("device_code"))?),
        user_code: clean(&text("user_code").ok_or_else(|| missing("user_code"))?),
        // Google spells it verification_url.
        verification_uri: clean(
            &text("verification_uri")
                .or_else(|| text("verification_url"))
                .ok_or_else(|| missing("verification_uri"))?,
        ),
        verification_uri_complete: text("verification_uri_complete").map(|s| clean(&s)),
        expires_in: v.get("expires_in").and_then(Value::as_u64).unwrap_or(900),
        interval: v.get("interval").and_then(Value::as_u64).unwrap_or(5),
    })
}

/// One poll of the token endpoint for a device code (RFC 8628 §3.4).
pub async fn device_token(cfg: &OAuth2, device_code: &Secret) -> Result<Tokens, TokenError> {
    let form = with_client(
        cfg,
        vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:device_code".into(),
            ),
            ("device_code", device_code.expose().to_owned()),
        ],
    );
    let (_, value) = post_form(&cfg.token_endpoint, form).await?;
    tokens(&value)
}

/// Revoke a refresh token (RFC 7009); failures are the caller's to report or ignore.
pub async fn revoke(cfg: &OAuth2, endpoint: &str, token: &Secret) -> Result<(), TokenError> {
    let form = with_client(
        cfg,
        vec![
            ("token", token.expose().to_owned()),
            ("token_type_hint", "refresh_token".into()),
        ],
    );
    post_form(endpoint, form).await.map(|_| ())
}

/// Who an ID token says logged in: `email`, else `preferred_username`, else `upn`. The
/// signature is not checked: this is only shown to the user, never trusted.
pub fn who(id_token: &Secret) -> Option<String> {
    use base64::Engine;
    let payload = id_token.expose().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    ["email", "preferred_username", "upn"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_reads_the_id_token_claims() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"1","email":"alice@example.com"}"#);
        let token = Secret::new(format!("eyJhbGciOiJub25lIn0.{payload}.sig"));
        assert_eq!(who(&token).as_deref(), Some("alice@example.com"));
        assert_eq!(who(&Secret::new("not-a-jwt")), None);
    }

    #[test]
    fn token_answers_are_read_without_quoting_them() {
        let v: Value = serde_json::from_str(
            r#"{"access_token":"AT","expires_in":"3599","refresh_token":"RT"}"#,
        )
        .unwrap();
        let t = tokens(&v).unwrap();
        assert_eq!(t.access_token.expose(), "AT");
        assert_eq!(t.expires_in, Some(3599));
        let v: Value = serde_json::from_str(r#"{"refresh_token":"RT"}"#).unwrap();
        let err = tokens(&v).err().unwrap().to_string();
        assert!(!err.contains("RT"), "{err}");
    }
}
