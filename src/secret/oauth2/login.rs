//! `syncmail login`: the authorization code flow with PKCE and a one-shot loopback
//! redirect (RFC 8252 §7.3), or the device authorization grant (RFC 8628). Either ends
//! with the refresh token in the token store; the code, the verifier and every token
//! stay in memory and are shown to no one.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::http::{self, TokenError, Tokens};
use super::pkce::{self, Pkce};
use super::store::{self, Place};
use super::url;
use crate::config::oauth2::{OAuth2, Provider};
use crate::secret::{Secret, SecretError};

pub struct Options {
    /// RFC 8628 instead of a browser on this machine.
    pub device: bool,
    /// Start a browser when one can be found (`$BROWSER`, `xdg-open` with a display,
    /// `open` on macOS).
    pub open_browser: bool,
    /// The loopback port; 0 picks a free one.
    pub port: u16,
    /// How long to wait for the user.
    pub timeout: Duration,
}

/// What a login achieved.
pub struct Outcome {
    /// Who logged in, where the provider says (an ID token's email).
    pub who: Option<String>,
    pub place: Place,
}

/// The largest redirect request read from the browser.
const REQUEST_LIMIT: usize = 16 * 1024;

fn failed(cfg: &OAuth2, why: impl Into<String>) -> SecretError {
    SecretError::OAuth2 {
        account: cfg.account.clone(),
        why: why.into(),
    }
}

/// Run the chosen flow, store the refresh token and say who logged in. `say` gets the
/// lines for the user (the URL to open, the device code to enter).
pub async fn login(
    cfg: &OAuth2,
    opts: &Options,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Outcome, SecretError> {
    let tokens = if opts.device {
        device(cfg, opts, say).await?
    } else {
        loopback(cfg, opts, say).await?
    };
    let Some(refresh) = tokens.refresh_token else {
        return Err(failed(
            cfg,
            match cfg.provider {
                Provider::Microsoft => {
                    "the provider gave no refresh token: `scopes` must include offline_access"
                }
                _ => "the provider gave no refresh token, so syncmail could not stay logged in",
            },
        ));
    };
    let place = store::save(cfg, &refresh)
        .await
        .map_err(|why| SecretError::TokenStore {
            account: cfg.account.clone(),
            why,
        })?;
    // A token cached before this login belongs to the old one.
    super::rejected(cfg).await;
    let who = tokens.id_token.as_ref().and_then(http::who);
    tracing::info!(account = %cfg.account, "OAuth2 login stored in {place}");
    Ok(Outcome { who, place })
}

fn token_failure(cfg: &OAuth2, what: &str, e: TokenError) -> SecretError {
    failed(cfg, format!("{what}: {e}"))
}

async fn device(
    cfg: &OAuth2,
    opts: &Options,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Tokens, SecretError> {
    let Some(endpoint) = &cfg.device_endpoint else {
        return Err(failed(
            cfg,
            match cfg.provider {
                Provider::Google => format!(
                    "Google does not allow its mail scope (https://mail.google.com/) in the device flow, so --device cannot work for a Gmail account. Run `syncmail login {}` on a machine with a browser; on a headless one, forward the loopback port: `syncmail login {} --port 8765` there and `ssh -L 8765:127.0.0.1:8765 HOST` here, then open the printed URL here",
                    cfg.account, cfg.account
                ),
                _ => "no device_authorization_endpoint is configured for this provider".to_owned(),
            },
        ));
    };
    let auth = http::device_authorization(cfg, endpoint)
        .await
        .map_err(|e| token_failure(cfg, "the device authorization request failed", e))?;
    say(&format!(
        "To sign in, open {} and enter the code {}",
        auth.verification_uri, auth.user_code
    ));
    if let Some(complete) = &auth.verification_uri_complete {
        say(&format!("(or open {complete})"));
    }
    let deadline = Instant::now()
        + opts
            .timeout
            .min(Duration::from_secs(auth.expires_in.max(1)));
    let mut interval = Duration::from_secs(auth.interval.max(1));
    loop {
        if Instant::now() + interval > deadline {
            return Err(failed(
                cfg,
                "the device code expired before the sign-in finished",
            ));
        }
        tokio::time::sleep(interval).await;
        match http::device_token(cfg, &auth.device_code).await {
            Ok(tokens) => return Ok(tokens),
            Err(TokenError::Refused { error, .. }) if error == "authorization_pending" => {}
            Err(TokenError::Refused { error, .. }) if error == "slow_down" => {
                interval += Duration::from_secs(5);
            }
            Err(e) => return Err(token_failure(cfg, "the sign-in was not completed", e)),
        }
    }
}

/// Where the provider sends the browser back. Microsoft's app registrations take
/// `http://localhost` with any port; RFC 8252 prefers the literal address elsewhere.
fn redirect_uri(cfg: &OAuth2, port: u16) -> String {
    match cfg.provider {
        Provider::Microsoft => format!("http://localhost:{port}/"),
        _ => format!("http://127.0.0.1:{port}/"),
    }
}

async fn loopback(
    cfg: &OAuth2,
    opts: &Options,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Tokens, SecretError> {
    let listener = TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(|e| {
            failed(
                cfg,
                format!("cannot listen on 127.0.0.1:{}: {e}", opts.port),
            )
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| failed(cfg, e.to_string()))?
        .port();
    // `localhost` may be tried as ::1 first by the browser.
    let v6 = TcpListener::bind(("::1", port)).await.ok();
    let redirect = redirect_uri(cfg, port);
    let pkce = Pkce::new().map_err(|e| failed(cfg, e))?;
    let state = pkce::random(16).map_err(|e| failed(cfg, e))?;
    let scope = cfg.scopes.join(" ");
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", cfg.client_id.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("scope", scope.as_str()),
        ("state", state.as_str()),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("login_hint", cfg.user.as_str()),
    ];
    if cfg.provider == Provider::Google {
        // Without these Google gives a refresh token only on the first consent.
        params.push(("access_type", "offline"));
        params.push(("prompt", "consent"));
    }
    let auth_url = url::with_query(&cfg.authorization_endpoint, &params);
    say("Open this URL in a browser to sign in (syncmail waits for the redirect to");
    say(&format!("{redirect}):"));
    say(&auth_url);
    if opts.open_browser && open_browser(&auth_url) {
        say("(a browser was started)");
    }
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let code = loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            r = async {
                match &v6 {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => r,
            () = tokio::time::sleep_until(deadline) => {
                return Err(failed(cfg, format!(
                    "no sign-in came back within {}s; run `syncmail login {}` again",
                    opts.timeout.as_secs(), cfg.account
                )));
            }
        };
        let Ok((stream, _)) = accepted else { continue };
        match tokio::time::timeout(Duration::from_secs(10), redirect_request(stream, &state)).await
        {
            Ok(Redirect::Code(code)) => break code,
            Ok(Redirect::Denied(why)) => {
                return Err(failed(cfg, format!("the sign-in was refused: {why}")));
            }
            Ok(Redirect::Other) | Err(_) => continue,
        }
    };
    drop(listener);
    drop(v6);
    http::exchange_code(cfg, &code, &pkce.verifier, &redirect)
        .await
        .map_err(|e| token_failure(cfg, "exchanging the authorization code failed", e))
}

enum Redirect {
    Code(Secret),
    Denied(String),
    /// Not the redirect (a favicon, a stray request, a wrong `state`): keep waiting.
    Other,
}

/// Read one HTTP request from the browser and answer it.
async fn redirect_request(mut stream: TcpStream, state: &str) -> Redirect {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < REQUEST_LIMIT {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs = url::query_pairs(query);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (status, body, outcome) = if path != "/" {
        ("404 Not Found", "Not found.", Redirect::Other)
    } else if get("state").as_deref() != Some(state) {
        (
            "400 Bad Request",
            "This sign-in does not belong to the running `syncmail login`.",
            Redirect::Other,
        )
    } else if let Some(code) = get("code") {
        (
            "200 OK",
            "Signed in. syncmail has what it needs; you can close this window.",
            Redirect::Code(Secret::new(code)),
        )
    } else {
        let error = get("error").unwrap_or_else(|| "no code in the redirect".into());
        let why = match get("error_description") {
            Some(d) => format!("{error}: {d}"),
            None => error,
        };
        let why: String = why
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect();
        (
            "400 Bad Request",
            "The sign-in failed; see the terminal.",
            Redirect::Denied(why),
        )
    };
    let page = format!(
        "<!doctype html><html><head><title>syncmail</title></head><body><p>{body}</p></body></html>"
    );
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{page}",
        page.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    outcome
}

/// Start a browser on the URL, when this machine has one to show; never waits for it.
fn open_browser(url: &str) -> bool {
    let program = if let Ok(b) = std::env::var("BROWSER")
        && !b.trim().is_empty()
    {
        b
    } else if cfg!(target_os = "macos") {
        "open".to_owned()
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        "xdg-open".to_owned()
    } else {
        return false;
    };
    std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
