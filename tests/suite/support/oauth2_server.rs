//! A scripted OAuth2 authorization server on loopback for one test: authorization (it
//! approves at once, as a user who clicks "Allow"), token (authorization_code with PKCE,
//! refresh_token, device_code), device authorization, revocation and introspection
//! (which a private Dovecot's `passdb oauth2` calls), with short-lived access tokens and
//! a clock the test can move. Every token, code and verifier it saw is kept, so a test
//! can look for them where they must not be. Dropping it stops it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use syncmail::secret::oauth2::url::{encode, query_pairs};

pub const CLIENT_ID: &str = "syncmail-test-client";

struct Grant {
    user: String,
    scope: String,
}

struct Code {
    grant: Grant,
    challenge: String,
    redirect_uri: String,
}

struct Device {
    user_code: String,
    approved: Option<String>,
    scope: String,
}

#[derive(Default)]
struct State {
    /// Added to the wall clock (ms): the test moves simulated time with it.
    offset: u64,
    /// Seconds.
    lifetime: u64,
    codes: BTreeMap<String, Code>,
    refresh: BTreeMap<String, (Grant, bool)>,
    /// Access token -> (user, expires at in server seconds, still good).
    access: BTreeMap<String, (String, u64, bool)>,
    devices: BTreeMap<String, Device>,
    /// Every secret this server made or was sent (codes, verifiers, tokens).
    secrets: Vec<String>,
    /// Counts by what happened: `refresh`, `introspect-active`, `introspect-inactive`,
    /// `refresh-refused`, ...
    counts: BTreeMap<String, u64>,
}

pub struct OAuth2Server {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

fn token(prefix: &str) -> String {
    let mut bytes = [0u8; 18];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    format!(
        "{prefix}-{}-{}",
        SERIAL.fetch_add(1, Ordering::Relaxed),
        URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Milliseconds: whole seconds would end a token up to a second before its client,
/// told `expires_in` seconds, expects.
fn wall() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

impl OAuth2Server {
    /// Access tokens last `lifetime` (server time).
    pub fn start(lifetime: Duration) -> OAuth2Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the OAuth2 server");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            lifetime: lifetime.as_secs().max(1),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s, port));
            }
        });
        let dir = tempfile::Builder::new()
            .prefix("syncmail-oauth2-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        OAuth2Server {
            port,
            state,
            stop,
            thread: Some(thread),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The `[account.oauth2]` table for an account of this server.
    pub fn account_table(&self, token_store: &str) -> String {
        format!(
            "auth = \"oauth2\"\n[account.oauth2]\nprovider = \"custom\"\nclient_id = \"{CLIENT_ID}\"\n\
             scopes = [\"mail\", \"offline_access\"]\n\
             authorization_endpoint = \"{}\"\ntoken_endpoint = \"{}\"\n\
             device_authorization_endpoint = \"{}\"\nrevocation_endpoint = \"{}\"\n\
             token_store = \"{token_store}\"\n",
            self.url("/authorize"),
            self.url("/token"),
            self.url("/device"),
            self.url("/revoke"),
        )
    }

    /// Config lines for a Dovecot whose `passdb oauth2` checks XOAUTH2 and OAUTHBEARER
    /// tokens by introspection here (RFC 7662). The password passdb is tried first and
    /// fails for a token, which is never a user's password.
    pub fn dovecot_passdb(&self) -> String {
        let ext = self.dir.path().join("dovecot-oauth2.conf.ext");
        std::fs::write(
            &ext,
            format!(
                "introspection_mode = post\nintrospection_url = {}\nforce_introspection = yes\n\
                 username_attribute = username\nactive_attribute = active\nactive_value = true\n",
                self.url("/introspect")
            ),
        )
        .unwrap();
        std::fs::set_permissions(&ext, std::fs::Permissions::from_mode(0o644)).unwrap();
        format!(
            "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n",
            ext.display()
        )
    }

    /// Play the browser: open the authorization URL syncmail printed, follow the
    /// redirect to its loopback listener, and return that page's status line.
    pub fn play_browser(&self, authorization_url: &str) -> String {
        let (status, headers, _) = http_get(authorization_url);
        assert!(status.contains("302"), "authorize answered {status}");
        let location = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.clone())
            .expect("a Location header");
        http_get(&location).0
    }

    /// Play the user on another device: enter `user_code` and allow access for `user`.
    pub fn approve_device(&self, user_code: &str, user: &str) {
        let mut s = self.state.lock().unwrap();
        let device = s
            .devices
            .values_mut()
            .find(|d| d.user_code == user_code)
            .unwrap_or_else(|| panic!("no device authorization with user code {user_code}"));
        device.approved = Some(user.to_owned());
    }

    /// Revoke every refresh token of `user` and end their access tokens.
    pub fn revoke_user(&self, user: &str) {
        let mut s = self.state.lock().unwrap();
        for (grant, revoked) in s.refresh.values_mut() {
            if grant.user == user {
                *revoked = true;
            }
        }
        for (u, _, good) in s.access.values_mut() {
            if u == user {
                *good = false;
            }
        }
    }

    /// End every access token now (refresh tokens stay good), as a provider that
    /// revoked sessions does: the next login with a cached token is refused.
    pub fn end_access_tokens(&self) {
        for (_, _, good) in self.state.lock().unwrap().access.values_mut() {
            *good = false;
        }
    }

    /// Move the server's clock forward.
    pub fn advance(&self, by: Duration) {
        self.state.lock().unwrap().offset += by.as_millis() as u64;
    }

    pub fn count(&self, what: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .counts
            .get(what)
            .copied()
            .unwrap_or(0)
    }

    /// Every code, verifier and token this server handed out or was sent.
    pub fn secrets(&self) -> Vec<String> {
        self.state.lock().unwrap().secrets.clone()
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for OAuth2Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A GET over plain HTTP/1.1 to loopback: status line, headers, body.
pub fn http_get(url: &str) -> (String, Vec<(String, String)>, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut conn =
        TcpStream::connect(hostport).unwrap_or_else(|e| panic!("connect {hostport}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn serve(mut conn: TcpStream, state: &Mutex<State>, port: u16) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            break (
                head,
                String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned(),
            );
        }
    };
    let target = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let form: BTreeMap<String, String> = query_pairs(if head.starts_with("POST") {
        &body
    } else {
        query
    })
    .into_iter()
    .collect();
    let answer = {
        let mut s = state.lock().unwrap();
        route(&mut s, path, &form, port)
    };
    let (status, extra, body) = answer;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
}

type Answer = (&'static str, String, String);

fn json_error(error: &str) -> Answer {
    (
        "400 Bad Request",
        String::new(),
        format!("{{\"error\":\"{error}\",\"error_description\":\"scripted refusal: {error}\"}}"),
    )
}

fn bump(s: &mut State, what: &str) {
    *s.counts.entry(what.to_owned()).or_default() += 1;
}

fn issue(s: &mut State, grant: Grant, with_refresh: bool) -> Answer {
    let now = wall() + s.offset;
    let access = token("at");
    s.secrets.push(access.clone());
    s.access.insert(
        access.clone(),
        (grant.user.clone(), now + s.lifetime * 1000, true),
    );
    let id_token = format!(
        "eyJhbGciOiJub25lIn0.{}.",
        URL_SAFE_NO_PAD.encode(format!("{{\"email\":\"{}@example.com\"}}", grant.user))
    );
    let mut body = format!(
        "{{\"access_token\":\"{access}\",\"token_type\":\"Bearer\",\"expires_in\":{},\"scope\":\"{}\",\"id_token\":\"{id_token}\"",
        s.lifetime, grant.scope
    );
    if with_refresh {
        let refresh = token("rt");
        s.secrets.push(refresh.clone());
        body.push_str(&format!(",\"refresh_token\":\"{refresh}\""));
        s.refresh.insert(refresh, (grant, false));
    }
    body.push('}');
    ("200 OK", String::new(), body)
}

fn route(s: &mut State, path: &str, form: &BTreeMap<String, String>, port: u16) -> Answer {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    bump(s, path.trim_start_matches('/'));
    match path {
        "/authorize" => {
            let redirect = get("redirect_uri");
            if get("client_id") != CLIENT_ID
                || get("code_challenge_method") != "S256"
                || get("code_challenge").len() != 43
                || !redirect.starts_with("http://127.0.0.1:")
                || get("response_type") != "code"
            {
                return (
                    "400 Bad Request",
                    String::new(),
                    "{\"error\":\"invalid_request\"}".into(),
                );
            }
            let code = token("code");
            s.secrets.push(code.clone());
            s.codes.insert(
                code.clone(),
                Code {
                    grant: Grant {
                        user: get("login_hint"),
                        scope: get("scope"),
                    },
                    challenge: get("code_challenge"),
                    redirect_uri: redirect.clone(),
                },
            );
            let location = format!(
                "{redirect}?code={}&state={}",
                encode(&code),
                encode(&get("state"))
            );
            (
                "302 Found",
                format!("Location: {location}\r\n"),
                String::new(),
            )
        }
        "/device" => {
            if get("client_id") != CLIENT_ID {
                return json_error("invalid_client");
            }
            let device_code = token("dc");
            s.secrets.push(device_code.clone());
            let user_code = format!("WDJB-{:04}", SERIAL.fetch_add(1, Ordering::Relaxed) % 10000);
            s.devices.insert(
                device_code.clone(),
                Device {
                    user_code: user_code.clone(),
                    approved: None,
                    scope: get("scope"),
                },
            );
            let body = format!(
                "{{\"device_code\":\"{device_code}\",\"user_code\":\"{user_code}\",\
                 \"verification_uri\":\"http://127.0.0.1:{port}/activate\",\"expires_in\":600,\"interval\":1}}"
            );
            ("200 OK", String::new(), body)
        }
        "/token" => {
            if get("client_id") != CLIENT_ID {
                return json_error("invalid_client");
            }
            match get("grant_type").as_str() {
                "authorization_code" => {
                    let verifier = get("code_verifier");
                    s.secrets.push(verifier.clone());
                    let Some(code) = s.codes.remove(&get("code")) else {
                        return json_error("invalid_grant");
                    };
                    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
                        &ring::digest::SHA256,
                        verifier.as_bytes(),
                    ));
                    if challenge != code.challenge || code.redirect_uri != get("redirect_uri") {
                        bump(s, "pkce-mismatch");
                        return json_error("invalid_grant");
                    }
                    issue(s, code.grant, true)
                }
                "refresh_token" => {
                    let grant = match s.refresh.get(&get("refresh_token")) {
                        Some((g, false)) => Grant {
                            user: g.user.clone(),
                            scope: g.scope.clone(),
                        },
                        _ => {
                            bump(s, "refresh-refused");
                            return json_error("invalid_grant");
                        }
                    };
                    bump(s, "refresh");
                    issue(s, grant, false)
                }
                "urn:ietf:params:oauth:grant-type:device_code" => {
                    let Some(device) = s.devices.get(&get("device_code")) else {
                        return json_error("invalid_grant");
                    };
                    match &device.approved {
                        None => json_error("authorization_pending"),
                        Some(user) => {
                            let grant = Grant {
                                user: user.clone(),
                                scope: device.scope.clone(),
                            };
                            s.devices.remove(&get("device_code"));
                            issue(s, grant, true)
                        }
                    }
                }
                _ => json_error("unsupported_grant_type"),
            }
        }
        "/revoke" => {
            if let Some((_, revoked)) = s.refresh.get_mut(&get("token")) {
                *revoked = true;
            }
            ("200 OK", String::new(), "{}".into())
        }
        "/introspect" => {
            let now = wall() + s.offset;
            let body = match s.access.get(&get("token")) {
                Some((user, expires, true)) if now < *expires => {
                    let body = format!(
                        "{{\"active\":true,\"username\":\"{user}\",\"exp\":{},\"client_id\":\"{CLIENT_ID}\"}}",
                        expires / 1000
                    );
                    bump(s, "introspect-active");
                    body
                }
                _ => {
                    bump(s, "introspect-inactive");
                    "{\"active\":false}".into()
                }
            };
            ("200 OK", String::new(), body)
        }
        _ => ("404 Not Found", String::new(), "{}".into()),
    }
}
