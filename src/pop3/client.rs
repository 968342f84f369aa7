//! The tokio driver around [`Protocol`]: TCP with a deadline on every read and write,
//! implicit TLS or strict STLS (rule 19), login, and RETR streamed into a writer.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Pop3Error;
use super::proto::{Command, Event, MAX_MESSAGE, MsgNo, ProtoError, Protocol, response_code};
use crate::config::{AuthMech, Server, Tls};
use crate::net::sasl::{self, Offer, Sasl};
use crate::net::{self, Stream, tls};
use crate::secret::{CredentialKind, Secret};

/// Commands in flight at once when pipelining: their answers (a line each) fit easily
/// in socket buffers, so neither side can block the other.
const PIPELINE_WINDOW: usize = 64;

/// One network read at most; also the most one body chunk holds before it is written.
const READ_BUF: usize = 64 * 1024;

/// A `-ERR` answer: the command it answers (no credential in it) and the server's text.
struct Negative {
    command: String,
    text: String,
}

/// The answer to STAT: messages in the maildrop and their total size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub count: u32,
    pub octets: u64,
}

/// An authenticated POP3 session (the TRANSACTION state).
pub struct Pop3Client {
    stream: Stream,
    proto: Protocol,
    buf: Vec<u8>,
    timeout: Duration,
    /// `host:port`, for messages.
    server: String,
    capabilities: Vec<String>,
    /// Set by an error that leaves the stream out of step; every later call fails.
    broken: Option<(bool, String)>,
    /// RETRs sent by [`Pop3Client::retr_ahead`] whose answers no call has begun to read.
    ahead: usize,
}

impl std::fmt::Debug for Pop3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pop3Client")
            .field("server", &self.server)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl Pop3Client {
    /// Connect, secure as configured, read the greeting and CAPA, and log in.
    pub async fn connect(
        server: &Server,
        secret: &Secret,
        kind: CredentialKind,
    ) -> Result<Pop3Client, Pop3Error> {
        let label = format!("{}:{}", server.host, server.port);
        net::check_plaintext(server)?;
        let limit = server.timeout;
        let tcp = tokio::time::timeout(limit, net::connect_tcp(server))
            .await
            .map_err(|_| Pop3Error::Timeout {
                server: label.clone(),
                what: "connecting",
                limit,
            })??;
        let mut client = match server.tls {
            Tls::Implicit => {
                let tls = handshake(server, &label, tcp).await?;
                let mut c = Pop3Client::new(tls, server, label);
                c.greeting().await?;
                c.capabilities = c.capa().await?;
                c
            }
            Tls::Starttls => {
                let mut c = Pop3Client::new(Stream::Plain(tcp), server, label);
                c.greeting().await?;
                c.stls(server).await?
            }
            Tls::None => {
                let mut c = Pop3Client::new(Stream::Plain(tcp), server, label);
                c.greeting().await?;
                c.capabilities = c.capa().await?;
                c
            }
        };
        client.login(server, secret, kind).await?;
        Ok(client)
    }

    fn new(stream: Stream, server: &Server, label: String) -> Pop3Client {
        Pop3Client {
            stream,
            proto: Protocol::new(),
            buf: vec![0; READ_BUF],
            timeout: server.timeout,
            server: label,
            capabilities: Vec::new(),
            broken: None,
            ahead: 0,
        }
    }

    /// CAPA lines as the server sent them after TLS (e.g. `UIDL`, `SASL PLAIN LOGIN`).
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// Whether CAPA listed this capability (the first word of a line, any case).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| {
            c.split_ascii_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(name))
        })
    }

    /// `host:port` of the server, as messages name it.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Message count and total size.
    pub async fn stat(&mut self) -> Result<Stat, Pop3Error> {
        self.send(Command::Stat, "sending STAT").await?;
        match self.event("reading STAT").await? {
            Event::Stat { count, octets } => Ok(Stat { count, octets }),
            other => Err(self.unexpected("STAT", &other)),
        }
    }

    /// Every message's UIDL, in message-number order. [`Pop3Error::NoUidl`] if the server
    /// has no UIDL command, so the caller can fall back to [`Pop3Client::list`] and
    /// [`Pop3Client::top`] content hashes.
    pub async fn uidl(&mut self) -> Result<Vec<(MsgNo, String)>, Pop3Error> {
        self.send(Command::Uidl(None), "sending UIDL").await?;
        let mut out = Vec::new();
        loop {
            match self.event_or_negative("reading UIDL").await? {
                Err(negative) if is_busy(&negative.text) => {
                    return Err(self.refusal(negative));
                }
                Err(Negative { text, .. }) => {
                    return Err(Pop3Error::NoUidl {
                        server: self.server.clone(),
                        text,
                    });
                }
                Ok(Event::Uidl { msg, uidl }) => out.push((msg, uidl)),
                Ok(Event::End) => return Ok(out),
                Ok(other) => return Err(self.unexpected("UIDL", &other)),
            }
        }
    }

    /// The UIDL of one message.
    pub async fn uidl_one(&mut self, msg: MsgNo) -> Result<String, Pop3Error> {
        self.send(Command::Uidl(Some(msg)), "sending UIDL").await?;
        match self.event("reading UIDL").await? {
            Event::Uidl { msg: got, uidl } if got == msg => Ok(uidl),
            other => Err(self.unexpected("UIDL", &other)),
        }
    }

    /// Every message's size in octets (as the server counts them, CRLF line ends), in
    /// message-number order.
    pub async fn list(&mut self) -> Result<Vec<(MsgNo, u64)>, Pop3Error> {
        self.send(Command::List(None), "sending LIST").await?;
        let mut out = Vec::new();
        loop {
            match self.event("reading LIST").await? {
                Event::Size { msg, octets } => out.push((msg, octets)),
                Event::End => return Ok(out),
                other => return Err(self.unexpected("LIST", &other)),
            }
        }
    }

    /// Download one message into `out`, dot-unstuffed and byte-exact, chunk by chunk
    /// (never whole in memory). Returns the bytes written. Every read has the server
    /// timeout, so a body that stops arriving ends in [`Pop3Error::Timeout`]; to bound
    /// the whole download too, wrap the call in `tokio::time::timeout`. After any error
    /// but [`Pop3Error::Refused`] (and after a cancelled call) the session refuses further
    /// commands: drop it, discard the partial output, and reconnect.
    pub async fn retr(&mut self, msg: MsgNo, out: &mut impl Write) -> Result<u64, Pop3Error> {
        self.send(Command::Retr(msg), "sending RETR").await?;
        self.body(out, "RETR").await
    }

    /// Pipelined RETR, first half: send `RETR` for each of `msgs` now, without waiting;
    /// [`Pop3Client::retr_next`] reads the answers in the same order. The server streams
    /// the next message while the caller is still writing this one to disk, instead of
    /// idling one round trip per message. Only when CAPA lists `PIPELINING` (RFC 2449);
    /// keep a bounded number in flight. Until every RETR sent ahead has been read, any
    /// other command is refused.
    pub async fn retr_ahead(&mut self, msgs: &[MsgNo]) -> Result<(), Pop3Error> {
        self.check()?;
        if self.proto.pending() != self.ahead {
            return Err(self.out_of_step());
        }
        let mut bytes = Vec::new();
        for msg in msgs {
            let out = self
                .proto
                .send(Command::Retr(*msg))
                .map_err(|e| self.proto_error(e))?;
            tracing::debug!(server = %self.server, command = %out.shown(), "pop3 >");
            bytes.extend_from_slice(out.bytes());
        }
        self.ahead += msgs.len();
        self.write(&bytes, "sending RETR").await
    }

    /// Pipelined RETR, second half: the oldest answer to [`Pop3Client::retr_ahead`] into
    /// `out`, exactly as [`Pop3Client::retr`] would write it. A `-ERR` for this message
    /// is [`Pop3Error::Refused`] and leaves the rest of the pipeline in step.
    pub async fn retr_next(&mut self, out: &mut impl Write) -> Result<u64, Pop3Error> {
        self.check()?;
        if self.ahead == 0 {
            return Err(Pop3Error::Protocol(format!(
                "{}: retr_next without a RETR sent ahead",
                self.server
            )));
        }
        if self.proto.pending() != self.ahead {
            return Err(self.out_of_step());
        }
        self.ahead -= 1;
        self.body(out, "RETR").await
    }

    /// A pipelined read was cancelled midway: the rest of its answer would be misread.
    fn out_of_step(&mut self) -> Pop3Error {
        let why = "an earlier call was cancelled before its answer was read";
        self.broken = Some((false, why.into()));
        Pop3Error::Protocol(format!(
            "{}: the session is unusable after: {why}",
            self.server
        ))
    }

    /// The headers, the blank line and the first `lines` body lines of a message, like
    /// [`Pop3Client::retr`]. `TOP n 0` gives a cheap identity when UIDL is missing.
    pub async fn top(
        &mut self,
        msg: MsgNo,
        lines: u32,
        out: &mut impl Write,
    ) -> Result<u64, Pop3Error> {
        self.send(Command::Top(msg, lines), "sending TOP").await?;
        self.body(out, "TOP").await
    }

    /// Mark a message deleted. The server removes it only when [`Pop3Client::quit`]
    /// succeeds; after a dropped connection it is still there (rule 15).
    pub async fn dele(&mut self, msg: MsgNo) -> Result<(), Pop3Error> {
        self.simple(Command::Dele(msg), "DELE").await.map(drop)
    }

    /// Mark many messages deleted, pipelined when the server offers PIPELINING (RFC 2449)
    /// so a long list costs a few round trips instead of one per message. Every answer
    /// is read; the first `-ERR` comes back as [`Pop3Error::Refused`] after the rest.
    /// As with [`Pop3Client::dele`], nothing is removed before QUIT.
    pub async fn dele_many(&mut self, msgs: &[MsgNo]) -> Result<(), Pop3Error> {
        let window = if self.has_capability("PIPELINING") {
            PIPELINE_WINDOW
        } else {
            1
        };
        let mut refused = None;
        for batch in msgs.chunks(window) {
            let commands: Vec<_> = batch.iter().map(|m| Command::Dele(*m)).collect();
            self.send_all(&commands, "sending DELE").await?;
            for _ in batch {
                match self.event_or_negative("reading DELE answers").await? {
                    Ok(Event::Ok { .. }) => {}
                    Ok(other) => return Err(self.unexpected("DELE", &other)),
                    Err(negative) => {
                        refused.get_or_insert(negative);
                    }
                }
            }
        }
        match refused {
            None => Ok(()),
            Some(negative) => Err(self.refusal(negative)),
        }
    }

    /// Unmark every message marked by DELE in this session.
    pub async fn rset(&mut self) -> Result<(), Pop3Error> {
        self.simple(Command::Rset, "RSET").await.map(drop)
    }

    /// Keep the session alive; also a cheap liveness check.
    pub async fn noop(&mut self) -> Result<(), Pop3Error> {
        self.simple(Command::Noop, "NOOP").await.map(drop)
    }

    /// End the session. The server now removes the messages marked by DELE: only an `Ok`
    /// here means they are gone. A `-ERR` ([`Pop3Error::Refused`]) means some may remain.
    pub async fn quit(mut self) -> Result<(), Pop3Error> {
        self.simple(Command::Quit, "QUIT").await?;
        let _ = tokio::time::timeout(self.timeout, self.stream.shutdown()).await;
        Ok(())
    }

    async fn greeting(&mut self) -> Result<(), Pop3Error> {
        match self.event_or_negative("reading the greeting").await? {
            Ok(Event::Greeting { .. }) => Ok(()),
            // An overloaded or shutting-down server: worth trying again later.
            Err(Negative { text, .. }) if !is_busy(&text) => Err(Pop3Error::Connect(format!(
                "{}: the server refused the connection: -ERR {text}",
                self.server
            ))),
            Err(negative) => Err(self.refusal(negative)),
            Ok(other) => Err(self.unexpected("the greeting", &other)),
        }
    }

    /// CAPA lines; none if the server does not know CAPA (`-ERR`, RFC 2449).
    async fn capa(&mut self) -> Result<Vec<String>, Pop3Error> {
        self.send(Command::Capa, "sending CAPA").await?;
        let mut caps = Vec::new();
        loop {
            match self.event_or_negative("reading CAPA").await? {
                Err(_) => return Ok(Vec::new()),
                Ok(Event::Capability(c)) => caps.push(c),
                Ok(Event::End) => return Ok(caps),
                Ok(other) => return Err(self.unexpected("CAPA", &other)),
            }
        }
    }

    /// Strict STLS (rule 19): it must be offered and accepted, nothing may follow the
    /// `+OK` before the handshake, and CAPA is read again over TLS.
    async fn stls(mut self, server: &Server) -> Result<Pop3Client, Pop3Error> {
        let caps = self.capa().await?;
        if !caps.iter().any(|c| c.trim().eq_ignore_ascii_case("STLS")) {
            return Err(Pop3Error::Tls(format!(
                "{} does not offer STLS; refusing to continue without TLS (try tls = \"implicit\" on port 995)",
                self.server
            )));
        }
        self.send(Command::Stls, "sending STLS").await?;
        match self.event_or_negative("reading the STLS answer").await? {
            Ok(Event::Ok { .. }) => {}
            Err(Negative { text, .. }) => {
                return Err(Pop3Error::Tls(format!(
                    "{} refused STLS: -ERR {text}",
                    self.server
                )));
            }
            Ok(other) => return Err(self.unexpected("STLS", &other)),
        }
        // Bytes already here came before the handshake: an injection attempt. Bytes
        // sent later break the handshake instead.
        if self.proto.buffered() > 0 {
            return Err(Pop3Error::Tls(format!(
                "{} sent data after the STLS +OK and before the TLS handshake (possible response injection); aborting",
                self.server
            )));
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(Pop3Error::Tls(
                "STLS on a connection that is already TLS".into(),
            ));
        };
        let stream = handshake(server, &self.server, tcp).await?;
        let mut c = Pop3Client {
            stream,
            proto: self.proto,
            buf: self.buf,
            timeout: self.timeout,
            server: self.server,
            capabilities: Vec::new(),
            broken: None,
            ahead: 0,
        };
        // What was learnt before TLS is forgotten; only the greeting's APOP timestamp
        // stays, as RFC 2595 keeps the session.
        c.capabilities = c.capa().await?;
        Ok(c)
    }

    fn sasl_names(&self) -> Vec<String> {
        self.capabilities
            .iter()
            .filter_map(|c| {
                let mut words = c.split_ascii_whitespace();
                words
                    .next()
                    .filter(|w| w.eq_ignore_ascii_case("SASL"))
                    .map(|_| words.map(str::to_ascii_uppercase).collect::<Vec<_>>())
            })
            .flatten()
            .collect()
    }

    async fn login(
        &mut self,
        server: &Server,
        secret: &Secret,
        kind: CredentialKind,
    ) -> Result<(), Pop3Error> {
        let user = server.user.as_str();
        let offer = Offer {
            sasl: self.sasl_names(),
            login_disabled: false,
            apop: self.proto.apop_timestamp().is_some(),
        };
        let mechanism = sasl::choose_mechanism(server.auth, kind, &offer)
            .map_err(|why| Pop3Error::Auth(format!("{} for `{user}`: {why}", self.server)))?;
        if mechanism == AuthMech::Apop {
            return self
                .login_step(Command::Apop { user, secret }, user, secret, "APOP")
                .await;
        }
        let host = net::bare_host(server);
        let Some(sasl) = Sasl::for_mechanism(mechanism, user, host, server.port, secret) else {
            // LOGIN is POP3's own USER/PASS.
            self.login_step(Command::User(user), user, secret, "USER/PASS")
                .await?;
            return self
                .login_step(Command::Pass(secret), user, secret, "USER/PASS")
                .await;
        };
        let how = format!("AUTH {}", sasl.name());
        self.send(Command::Auth(sasl), "sending AUTH").await?;
        loop {
            match self.event_or_negative("logging in").await? {
                Ok(Event::Ok { .. }) => return Ok(()),
                Ok(Event::Challenge(_)) => {
                    let reply = self.proto.sasl_reply().map_err(|e| self.proto_error(e))?;
                    self.write(reply.bytes(), "logging in").await?;
                }
                Err(Negative { text, .. }) => {
                    return Err(self.auth_error(user, secret, &how, &text));
                }
                Ok(other) => return Err(self.unexpected(&how, &other)),
            }
        }
    }

    async fn login_step(
        &mut self,
        command: Command<'_>,
        user: &str,
        secret: &Secret,
        how: &str,
    ) -> Result<(), Pop3Error> {
        self.send(command, "logging in").await?;
        match self.event_or_negative("logging in").await? {
            Ok(Event::Ok { .. }) => Ok(()),
            Err(Negative { text, .. }) => Err(self.auth_error(user, secret, how, &text)),
            Ok(other) => Err(self.unexpected(how, &other)),
        }
    }

    /// Rule 20: the message names the user and the server, and if a server echoes the
    /// secret back, it is cut out.
    fn auth_error(&self, user: &str, secret: &Secret, how: &str, text: &str) -> Pop3Error {
        let text = scrub(text, secret);
        if is_busy(&text) {
            return Pop3Error::Busy(format!(
                "{} cannot log `{user}` in now: -ERR {text}",
                self.server
            ));
        }
        Pop3Error::Auth(format!(
            "{} rejected the login of `{user}` ({how}): -ERR {text}",
            self.server
        ))
    }

    async fn simple(
        &mut self,
        command: Command<'_>,
        name: &'static str,
    ) -> Result<String, Pop3Error> {
        self.send(command, name).await?;
        match self.event(name).await? {
            Event::Ok { text } => Ok(text),
            other => Err(self.unexpected(name, &other)),
        }
    }

    async fn body(&mut self, out: &mut impl Write, name: &'static str) -> Result<u64, Pop3Error> {
        let mut written = 0u64;
        loop {
            match self.event(name).await? {
                Event::Body(chunk) => {
                    // A message that never ends must not fill the disk (rule 18).
                    if written + chunk.len() as u64 > MAX_MESSAGE {
                        let why = format!(
                            "{name} sent a message longer than {MAX_MESSAGE} bytes; the limit is {MAX_MESSAGE} bytes"
                        );
                        self.broken = Some((false, why.clone()));
                        return Err(Pop3Error::Protocol(format!("{}: {why}", self.server)));
                    }
                    if let Err(e) = out.write_all(&chunk) {
                        self.broken = Some((false, format!("an earlier {name} failed: {e}")));
                        return Err(Pop3Error::Write(e));
                    }
                    written += chunk.len() as u64;
                }
                Event::End => return Ok(written),
                other => return Err(self.unexpected(name, &other)),
            }
        }
    }

    fn check(&self) -> Result<(), Pop3Error> {
        match &self.broken {
            None => Ok(()),
            Some((true, why)) => Err(Pop3Error::Connect(format!(
                "{}: the session is unusable after: {why}",
                self.server
            ))),
            Some((false, why)) => Err(Pop3Error::Protocol(format!(
                "{}: the session is unusable after: {why}",
                self.server
            ))),
        }
    }

    async fn send(&mut self, command: Command<'_>, what: &'static str) -> Result<(), Pop3Error> {
        self.send_all(&[command], what).await
    }

    /// Send commands in one write; their answers are read in order afterwards.
    async fn send_all(
        &mut self,
        commands: &[Command<'_>],
        what: &'static str,
    ) -> Result<(), Pop3Error> {
        self.check()?;
        if self.ahead > 0 {
            return Err(Pop3Error::Protocol(format!(
                "{}: {} RETR answers sent ahead must be read first",
                self.server, self.ahead
            )));
        }
        if self.proto.pending() > 0 {
            // Every method reads its whole answer before returning, so an unanswered
            // command means a caller dropped (cancelled, timed out) a call midway: the
            // rest of that answer is still coming and would be misread.
            self.broken = Some((
                false,
                "an earlier call was cancelled before its answer was read".into(),
            ));
            self.check()?;
        }
        let mut bytes = Vec::new();
        for command in commands {
            let out = self.proto.send(*command).map_err(|e| self.proto_error(e))?;
            tracing::debug!(server = %self.server, command = %out.shown(), "pop3 >");
            bytes.extend_from_slice(out.bytes());
        }
        let written = self.write(&bytes, what).await;
        // The batch may hold a credential.
        bytes.fill(0);
        std::hint::black_box(&bytes);
        written
    }

    async fn write(&mut self, bytes: &[u8], what: &'static str) -> Result<(), Pop3Error> {
        let io = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, io).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.lost(what, &e)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    /// The next event; `-ERR` becomes [`Pop3Error::Refused`] (or `Busy`).
    async fn event(&mut self, what: &'static str) -> Result<Event, Pop3Error> {
        match self.event_or_negative(what).await? {
            Ok(event) => Ok(event),
            Err(negative) => Err(self.refusal(negative)),
        }
    }

    /// The next event, or the text of a `-ERR`: the session goes on after one.
    async fn event_or_negative(
        &mut self,
        what: &'static str,
    ) -> Result<Result<Event, Negative>, Pop3Error> {
        self.check()?;
        loop {
            match self.proto.next_event() {
                Ok(Some(event)) => return Ok(Ok(event)),
                Ok(None) => {}
                Err(ProtoError::Negative { command, text }) => {
                    return Ok(Err(Negative { command, text }));
                }
                Err(e) => return Err(self.proto_error(e)),
            }
            let read = tokio::time::timeout(self.timeout, self.stream.read(&mut self.buf)).await;
            let n = match read {
                Err(_) => return Err(self.timed_out(what)),
                Ok(Err(e)) => return Err(self.lost(what, &e)),
                Ok(Ok(0)) => {
                    self.broken = Some((true, "the server closed the connection".into()));
                    return Err(Pop3Error::Connect(format!(
                        "{}: the server closed the connection while {what}",
                        self.server
                    )));
                }
                Ok(Ok(n)) => n,
            };
            self.proto.feed(&self.buf[..n]);
        }
    }

    fn refusal(&self, Negative { command, text }: Negative) -> Pop3Error {
        if is_busy(&text) {
            return Pop3Error::Busy(format!("{} is busy ({command}): -ERR {text}", self.server));
        }
        Pop3Error::Refused {
            server: self.server.clone(),
            command,
            text,
        }
    }

    fn timed_out(&mut self, what: &'static str) -> Pop3Error {
        self.broken = Some((true, format!("a timeout while {what}")));
        Pop3Error::Timeout {
            server: self.server.clone(),
            what,
            limit: self.timeout,
        }
    }

    fn lost(&mut self, what: &'static str, e: &std::io::Error) -> Pop3Error {
        self.broken = Some((true, format!("a network error while {what}: {e}")));
        Pop3Error::Connect(format!("{}: {e} while {what}", self.server))
    }

    fn proto_error(&mut self, e: ProtoError) -> Pop3Error {
        let text = format!("{}: {e}", self.server);
        if let ProtoError::Usage(_) = e {
            // Refused before sending: a user name or password POP3 cannot carry.
            return Pop3Error::Auth(text);
        }
        if e.is_fatal() {
            self.broken = Some((false, text.clone()));
        }
        Pop3Error::Protocol(text)
    }

    fn unexpected(&mut self, command: &str, event: &Event) -> Pop3Error {
        // Only reachable if the state machine and this driver disagree.
        let text = format!("{}: unexpected answer to {command}: {event:?}", self.server);
        self.broken = Some((false, text.clone()));
        Pop3Error::Protocol(text)
    }
}

/// The TLS handshake, implicit or after STLS, within the server timeout.
async fn handshake(server: &Server, label: &str, tcp: TcpStream) -> Result<Stream, Pop3Error> {
    let tls = tokio::time::timeout(server.timeout, tls::handshake(server, tcp))
        .await
        .map_err(|_| Pop3Error::Timeout {
            server: label.to_owned(),
            what: "the TLS handshake",
            limit: server.timeout,
        })??;
    Ok(Stream::Tls(Box::new(tls)))
}

/// `-ERR [IN-USE]`, `[LOGIN-DELAY]` and `[SYS/TEMP]` say "later", not "never".
fn is_busy(text: &str) -> bool {
    response_code(text).is_some_and(|code| {
        ["IN-USE", "LOGIN-DELAY", "SYS/TEMP"]
            .iter()
            .any(|c| code.eq_ignore_ascii_case(c))
    })
}

fn scrub(text: &str, secret: &Secret) -> String {
    let s = secret.expose();
    if s.is_empty() {
        text.to_owned()
    } else {
        text.replace(s, "<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_codes_are_transient_and_a_secret_is_scrubbed() {
        assert!(is_busy("[IN-USE] maildrop locked"));
        assert!(is_busy("[SYS/TEMP] try later"));
        assert!(!is_busy("[AUTH] Authentication failed."));
        assert!(!is_busy("no such message"));
        let s = Secret::new("hunter2");
        assert_eq!(scrub("bad pass hunter2!", &s), "bad pass <redacted>!");
    }
}
