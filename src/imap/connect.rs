//! Opening an authenticated IMAP session: TCP with a deadline, implicit TLS, strict
//! STARTTLS (rule 19), greeting checks, and login by the configured mechanism.
//!
//! The pre-TLS and greeting phase is read by hand rather than through async-imap: its
//! buffered reader would silently keep bytes a hostile server injects after the STARTTLS
//! OK, and it cannot tell a PREAUTH greeting from an OK one.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::{Authenticator, Client, Session};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};

use super::ImapError;
use super::bound::Bounded;
use super::namespace::{self, Namespace};
use crate::config::{AuthMech, Server, Tls};
use crate::net::sasl::{self, Offer, Sasl};
use crate::net::{self, MAX_PRELOGIN_LINES, read_line, tls};
use crate::secret::{CredentialKind, Secret};

/// The connection under an IMAP session: the layers IMAP adds on [`net::Stream`].
#[derive(Debug)]
pub enum ImapStream {
    /// Plain TCP (loopback or explicitly allowed) or TLS, as POP3 has it too.
    Net(net::Stream),
    /// After COMPRESS=DEFLATE (RFC 4978): the stream above, compressed.
    Deflate(Box<async_imap::DeflateStream<ImapStream>>),
    /// What an IMAP session reads through: one of the above, every byte checked against
    /// the bounds on lines and literals (rule 18) before async-imap buffers it.
    Bounded(Box<Bounded<ImapStream>>),
}

impl ImapStream {
    /// The transport under the bounds check: `Net` or `Deflate`.
    pub fn transport(&self) -> &ImapStream {
        match self {
            ImapStream::Bounded(b) => b.get_ref().transport(),
            other => other,
        }
    }

    fn bounded(inner: ImapStream, server: &Server) -> ImapStream {
        let label = format!("{}:{}", server.host, server.port);
        ImapStream::Bounded(Box::new(Bounded::new(inner, label)))
    }
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Net(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Deflate(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            ImapStream::Bounded(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Net(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Deflate(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            ImapStream::Bounded(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Net(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Deflate(s) => Pin::new(s.as_mut()).poll_flush(cx),
            ImapStream::Bounded(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Net(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Deflate(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            ImapStream::Bounded(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An authenticated session and what the server said it can do after login.
pub struct Connected {
    pub session: Session<ImapStream>,
    pub capabilities: Vec<String>,
    /// The personal namespace, asked for once at login when the server has NAMESPACE.
    pub namespace: Option<Namespace>,
}

impl Connected {
    /// Capability names are case-insensitive.
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(capability))
    }
}

/// Connect, secure and log in.
pub async fn connect(
    server: &Server,
    secret: &Secret,
    kind: CredentialKind,
) -> Result<Connected, ImapError> {
    let deadline = server.timeout;
    let (stream, pre_caps) = within(deadline, "connecting", open(server)).await??;
    let client = Client::new(stream);
    let mut session = within(
        deadline,
        "logging in",
        login(client, server, secret, kind, &pre_caps),
    )
    .await??;
    // Capabilities may change after STARTTLS and after login (rule 19): read them afresh.
    let capabilities = within(deadline, "reading capabilities", session.capabilities())
        .await?
        .map_err(|e| match &e {
            async_imap::error::Error::Io(io) => ImapError::io(io, "during CAPABILITY"),
            other => ImapError::Protocol(format!("CAPABILITY failed: {other}")),
        })?;
    let mut capabilities: Vec<String> = capabilities
        .iter()
        .map(|c| match c {
            async_imap::types::Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
            async_imap::types::Capability::Auth(m) => format!("AUTH={m}"),
            async_imap::types::Capability::Atom(a) => a.clone(),
        })
        .collect();
    capabilities.sort();
    // Before anything else is sent (see `namespace::personal`), and before compression
    // so the answer is read from the plain session stream.
    let namespace = if capabilities
        .iter()
        .any(|c| c.eq_ignore_ascii_case("NAMESPACE"))
    {
        namespace::personal(session.get_mut(), deadline).await?
    } else {
        None
    };
    let offered = capabilities
        .iter()
        .any(|c| c.eq_ignore_ascii_case("COMPRESS=DEFLATE"));
    if server.compress && offered {
        session = within(
            deadline,
            "starting compression",
            session.compress(|mut d| {
                // The bytes under the decompressor are not IMAP; check what it yields.
                if let ImapStream::Bounded(b) = d.get_mut() {
                    b.stop_checking();
                }
                ImapStream::bounded(ImapStream::Deflate(Box::new(d)), server)
            }),
        )
        .await?
        .map_err(|e| ImapError::Protocol(format!("COMPRESS DEFLATE failed: {e}")))?;
    }
    Ok(Connected {
        session,
        capabilities,
        namespace,
    })
}

async fn within<T>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = T>,
) -> Result<T, ImapError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| ImapError::Timeout { what, limit })
}

/// TCP, then TLS as configured; returns a stream positioned after the greeting and the
/// capabilities known before login.
async fn open(server: &Server) -> Result<(ImapStream, Vec<String>), ImapError> {
    net::check_plaintext(server)?;
    let tcp = net::connect_tcp(server).await?;
    match server.tls {
        Tls::Implicit => {
            let mut stream = BufReader::new(tls::handshake(server, tcp).await?);
            let caps = greeting(&mut stream).await?;
            let tls = ImapStream::Net(net::Stream::Tls(Box::new(drain_checked(stream)?)));
            Ok((ImapStream::bounded(tls, server), caps))
        }
        Tls::Starttls => {
            let mut plain = BufReader::new(tcp);
            let mut caps = greeting(&mut plain).await?;
            if caps.is_empty() {
                caps = capability(&mut plain).await?;
            }
            if !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
                return Err(ImapError::Tls(
                    "the server does not offer STARTTLS; refusing to continue without TLS (try tls = \"implicit\" on port 993)".into(),
                ));
            }
            plain.write_all(b"s1 STARTTLS\r\n").await.map_err(io_err)?;
            let line = read_line(&mut plain).await?;
            if !line.to_ascii_uppercase().starts_with("S1 OK") {
                return Err(ImapError::Tls(format!(
                    "the server refused STARTTLS: {}",
                    line.trim_end()
                )));
            }
            // Anything already sent after the OK came before the handshake: an injection
            // attempt (rule 19). Bytes arriving later break the handshake instead.
            if !plain.buffer().is_empty() {
                return Err(ImapError::Tls(
                    "the server sent data after the STARTTLS OK and before the TLS handshake (possible response injection); aborting".into(),
                ));
            }
            let mut stream = BufReader::new(tls::handshake(server, plain.into_inner()).await?);
            // Capabilities learned before TLS are forgotten; ask again over TLS.
            let caps = capability(&mut stream).await?;
            let tls = ImapStream::Net(net::Stream::Tls(Box::new(drain_checked(stream)?)));
            Ok((ImapStream::bounded(tls, server), caps))
        }
        Tls::None => {
            let mut stream = BufReader::new(tcp);
            let caps = greeting(&mut stream).await?;
            let plain = ImapStream::Net(net::Stream::Plain(drain_checked(stream)?));
            Ok((ImapStream::bounded(plain, server), caps))
        }
    }
}

/// The reader must hold nothing unread when async-imap takes over the stream.
fn drain_checked<S: AsyncRead>(reader: BufReader<S>) -> Result<S, ImapError> {
    if reader.buffer().is_empty() {
        Ok(reader.into_inner())
    } else {
        Err(ImapError::Protocol(
            "the server sent unrequested data before login".into(),
        ))
    }
}

fn io_err(e: std::io::Error) -> ImapError {
    ImapError::Connect(e.to_string())
}

/// Read the greeting: `* OK` continues, `* PREAUTH` and `* BYE` stop. Returns the
/// capabilities if the greeting carries a `[CAPABILITY ...]` code.
async fn greeting<S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
) -> Result<Vec<String>, ImapError> {
    let line = read_line(reader).await?;
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("* PREAUTH") {
        // Already authenticated before any TLS: a STARTTLS-stripping attack (rule 19), or
        // a server we cannot verify the identity of.
        return Err(ImapError::Tls(
            "the server greeted with PREAUTH; refusing a session that skipped authentication"
                .into(),
        ));
    }
    if upper.starts_with("* BYE") {
        if super::says_over_limit(&line) {
            return Err(ImapError::OverLimit(line.trim_end().to_owned()));
        }
        if super::says_too_many_connections(&line) {
            return Err(ImapError::TooManyConnections(line.trim_end().to_owned()));
        }
        return Err(ImapError::Connect(format!(
            "the server refused the connection: {}",
            line.trim_end()
        )));
    }
    if !upper.starts_with("* OK") {
        return Err(ImapError::Protocol(format!(
            "unexpected greeting: {}",
            line.trim_end()
        )));
    }
    Ok(capabilities_in(&line))
}

fn capabilities_in(line: &str) -> Vec<String> {
    let upper = line.to_ascii_uppercase();
    let Some(start) = upper.find("[CAPABILITY ") else {
        return Vec::new();
    };
    let rest = &line[start + "[CAPABILITY ".len()..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end].split_whitespace().map(str::to_owned).collect()
}

async fn capability<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
) -> Result<Vec<String>, ImapError> {
    reader
        .get_mut()
        .write_all(b"s0 CAPABILITY\r\n")
        .await
        .map_err(io_err)?;
    let mut caps = Vec::new();
    // Each line is bounded; so is their number, or a server could send lines for as long
    // as the connect deadline lasts and have us keep every capability (rule 18).
    for _ in 0..MAX_PRELOGIN_LINES {
        let line = read_line(reader).await?;
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("* CAPABILITY ") {
            caps.extend(
                line["* CAPABILITY ".len()..]
                    .split_whitespace()
                    .map(str::to_owned),
            );
        } else if upper.starts_with("S0 OK") {
            return Ok(caps);
        } else if upper.starts_with("S0 ") {
            return Err(ImapError::Protocol(format!(
                "CAPABILITY failed: {}",
                line.trim_end()
            )));
        }
    }
    Err(ImapError::Protocol(format!(
        "the server sent more than {MAX_PRELOGIN_LINES} lines without answering CAPABILITY"
    )))
}

/// SASL responses, one per server challenge in order (SASL LOGIN takes two: user, then
/// password). A challenge beyond them (an error report in XOAUTH2) gets an empty response
/// so the server can finish with NO.
struct Steps(VecDeque<Secret>);

impl Authenticator for &mut Steps {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.0
            .pop_front()
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default()
    }
}

/// Whether IMAP's quoted string can carry `s`: 7-bit, no NUL, CR or LF (RFC 3501
/// `QUOTED-CHAR`; async-imap escapes `"` and `\`).
fn quotable(s: &str) -> bool {
    s.bytes()
        .all(|b| (1..0x80).contains(&b) && b != b'\r' && b != b'\n')
}

/// What the capabilities offer for login: the `AUTH=` mechanisms and LOGINDISABLED.
fn login_offer(caps: &[String]) -> Offer {
    Offer {
        sasl: caps
            .iter()
            .filter_map(|c| {
                let (head, mechanism) = c.split_at_checked("AUTH=".len())?;
                head.eq_ignore_ascii_case("AUTH=")
                    .then(|| mechanism.to_owned())
            })
            .collect(),
        login_disabled: caps.iter().any(|c| c.eq_ignore_ascii_case("LOGINDISABLED")),
        apop: false,
    }
}

async fn login(
    client: Client<ImapStream>,
    server: &Server,
    secret: &Secret,
    kind: CredentialKind,
    caps: &[String],
) -> Result<Session<ImapStream>, ImapError> {
    let user = &server.user;
    let token = secret.expose();
    let offer = login_offer(caps);
    let mechanism = sasl::choose_mechanism(server.auth, kind, &offer).map_err(ImapError::Auth)?;
    if mechanism == AuthMech::Login {
        // A password a quoted string cannot carry (8-bit, control characters) would need
        // a literal, which async-imap's LOGIN never sends: SASL LOGIN carries the same
        // credentials in base64. Without it, the quoted form is the best left.
        if !(quotable(user) && quotable(token)) && offer.offers("LOGIN") {
            let mut steps = Steps(sasl::login_responses(user, secret).into());
            return client
                .authenticate("LOGIN", &mut steps)
                .await
                .map_err(|(e, _)| auth_error(user, secret, &e));
        }
        return client
            .login(user, token)
            .await
            .map_err(|(e, _)| auth_error(user, secret, &e));
    }
    let Some(sasl) = Sasl::for_mechanism(mechanism, user, &server.host, server.port, secret) else {
        return Err(ImapError::Auth(format!(
            "{mechanism:?} is not an IMAP mechanism"
        )));
    };
    let mut steps = Steps([sasl.initial_response()].into());
    client
        .authenticate(sasl.name(), &mut steps)
        .await
        .map_err(|(e, _)| auth_error(user, secret, &e))
}

/// The server's refusal in words, naming the user. Rule 20: a server that echoes the
/// secret back (as is, or escaped as async-imap quotes its text) gets it cut out.
fn auth_error(user: &str, secret: &Secret, e: &async_imap::error::Error) -> ImapError {
    match e {
        async_imap::error::Error::No(msg) | async_imap::error::Error::Bad(msg) => {
            let text = scrub(server_text(msg), secret.expose());
            if super::says_over_limit(&text) {
                return ImapError::OverLimit(text);
            }
            if super::says_too_many_connections(&text) {
                return ImapError::TooManyConnections(text);
            }
            ImapError::Auth(format!("the server rejected the login of `{user}`: {text}"))
        }
        other => ImapError::lib(other, "connection lost while logging in"),
    }
}

/// async-imap reports a tagged NO or BAD as `code: .., info: Some("text")`; the text is
/// what the server told the user.
fn server_text(msg: &str) -> &str {
    msg.split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(msg)
}

fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    let escaped = format!("{secret:?}");
    let escaped = &escaped[1..escaped.len() - 1];
    text.replace(secret, "<redacted>")
        .replace(escaped, "<redacted>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_capabilities_are_read() {
        let caps = capabilities_in("* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready\r\n");
        assert_eq!(caps, ["IMAP4rev1", "STARTTLS", "AUTH=PLAIN"]);
        assert!(capabilities_in("* OK ready\r\n").is_empty());
    }

    #[test]
    fn a_refusal_shows_the_server_text_without_the_secret() {
        let msg = r#"code: None, info: Some("[AUTHENTICATIONFAILED] bad password p\"w for u")"#;
        let err = auth_error(
            "u",
            &Secret::new(r#"p"w"#),
            &async_imap::error::Error::No(msg.into()),
        );
        assert_eq!(
            err.to_string(),
            "login failed: the server rejected the login of `u`: [AUTHENTICATIONFAILED] bad password <redacted> for u"
        );
    }

    #[test]
    fn only_7_bit_text_without_line_breaks_is_quotable() {
        assert!(quotable(r#"a "quoted" \ password"#));
        assert!(!quotable("pässwörd"));
        assert!(!quotable("a\r\nb"));
        assert!(!quotable("nul\0"));
    }

    #[test]
    fn auto_mechanism_prefers_plain_then_login() {
        let choose = |kind, c: &[&str]| {
            let caps: Vec<String> = c.iter().map(|s| s.to_string()).collect();
            sasl::choose_mechanism(AuthMech::Auto, kind, &login_offer(&caps))
        };
        let pw = CredentialKind::Password;
        assert_eq!(choose(pw, &["AUTH=PLAIN"]).unwrap(), AuthMech::Plain);
        assert_eq!(choose(pw, &[]).unwrap(), AuthMech::Login);
        assert!(choose(pw, &["LOGINDISABLED"]).is_err());
        let tok = CredentialKind::OAuth2Token;
        assert_eq!(
            choose(tok, &["AUTH=OAUTHBEARER"]).unwrap(),
            AuthMech::Oauthbearer
        );
        assert!(choose(tok, &["AUTH=PLAIN"]).is_err());
    }
}
