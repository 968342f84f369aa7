//! The POP3 protocol (RFC 1939, CAPA/response codes RFC 2449, AUTH RFC 5034) as a sans-IO
//! state machine: commands become bytes to send, received bytes become events. No socket,
//! no clock, so every transcript can be tested byte by byte.
//!
//! Use: [`Protocol::send`] a [`Command`] and write [`Outgoing::bytes`] to the server;
//! [`Protocol::feed`] whatever the server sends; drain [`Protocol::next_event`] until it
//! returns `Ok(None)` (needs more bytes). Commands may be pipelined: answers are matched
//! to commands in order.
//!
//! Bounds (rule 18): a status or listing line longer than [`MAX_LINE`] bytes, a listing
//! of more than [`MAX_LISTING`] entries, a UIDL outside RFC 1939's 1-70 printable
//! characters are errors. Message bodies are never buffered: RETR and TOP data come out
//! as [`Event::Body`] chunks of at most [`BODY_CHUNK`] bytes, dot-unstuffed, whatever the
//! read boundaries were; the client refuses a body above [`MAX_MESSAGE`]. As RFC 1939 defines lines by CR LF, only a dot after CR LF (or
//! at the start of the body) is stuffing or the terminator; a bare LF is message data.

use std::collections::VecDeque;
use std::fmt;

use md5::{Digest, Md5};

use crate::net::sasl::Sasl;
use crate::secret::Secret;

/// Longest status or listing line accepted, CRLF included. RFC 1939 allows 512; RFC 2449
/// lifts that for CAPA and response codes, and real servers send longer greetings.
pub const MAX_LINE: usize = 8 * 1024;
/// Most entries accepted in one multi-line listing (UIDL, LIST, CAPA). At the longest
/// UIDL this bounds a listing the client collects to about 100 MiB.
pub const MAX_LISTING: usize = 1_000_000;
/// Longest UIDL RFC 1939 allows.
pub const MAX_UIDL: usize = 70;
/// Largest message accepted from RETR or TOP; the same bound as an IMAP literal. The
/// body streams to disk, so this bounds the disk a server that never ends a message can
/// fill, not memory.
pub const MAX_MESSAGE: u64 = crate::net::MAX_MESSAGE;
/// Largest body chunk one event carries.
pub const BODY_CHUNK: usize = 64 * 1024;

/// A message number: the position of a message in this session's maildrop, 1-based.
/// Valid only for the session that listed it; the UIDL is the lasting identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgNo(pub u32);

impl fmt::Display for MsgNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A POP3 command. Arguments are checked: a CR, LF or NUL in one is refused, so nothing
/// can smuggle a second command onto the line.
#[derive(Clone, Copy, Debug)]
pub enum Command<'a> {
    Capa,
    Stls,
    User(&'a str),
    Pass(&'a Secret),
    /// Digest login with the timestamp from the greeting.
    Apop {
        user: &'a str,
        secret: &'a Secret,
    },
    Auth(Sasl<'a>),
    Stat,
    /// UIDL of every message (`None`) or of one.
    Uidl(Option<MsgNo>),
    /// Sizes of every message (`None`) or of one.
    List(Option<MsgNo>),
    Retr(MsgNo),
    /// Headers and the first `lines` body lines.
    Top(MsgNo, u32),
    /// Marks a message deleted; the server removes it only when QUIT succeeds.
    Dele(MsgNo),
    Rset,
    Noop,
    Quit,
}

/// Bytes to write to the server. They may carry a credential: `Debug` shows only
/// [`Outgoing::shown`], and the buffer is overwritten when dropped.
pub struct Outgoing {
    bytes: Vec<u8>,
    shown: String,
}

impl Outgoing {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The command as it may be logged: credentials replaced by `<redacted>`.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Outgoing({})", self.shown)
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.bytes.fill(0);
        std::hint::black_box(&self.bytes);
    }
}

/// What the server said, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `+OK` greeting; `apop_timestamp` is the `<...>` part if the server offers APOP.
    Greeting {
        text: String,
        apop_timestamp: Option<String>,
    },
    /// A single-line `+OK` (USER, PASS, APOP, AUTH, STLS, DELE, RSET, NOOP, QUIT).
    Ok {
        text: String,
    },
    Stat {
        count: u32,
        octets: u64,
    },
    /// One UIDL entry (one line of the listing, or the single-message form).
    Uidl {
        msg: MsgNo,
        uidl: String,
    },
    /// One LIST entry (one line of the listing, or the single-message form).
    Size {
        msg: MsgNo,
        octets: u64,
    },
    /// One CAPA line, e.g. `SASL PLAIN LOGIN`.
    Capability(String),
    /// Message data from RETR or TOP, dot-unstuffed, CRLF line ends as sent.
    Body(Vec<u8>),
    /// The end of a multi-line answer (CAPA, UIDL, LIST, RETR, TOP).
    End,
    /// A SASL challenge (`+ ...`) during AUTH: answer with [`Protocol::sasl_reply`].
    Challenge(String),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// `-ERR`: the command failed but the session goes on.
    #[error("{command}: the server answered -ERR {text}")]
    Negative { command: String, text: String },
    #[error("{command}: the server sent a line longer than {limit} bytes")]
    LineTooLong { command: String, limit: usize },
    #[error("{command}: the UIDL of message {msg} is invalid: {reason}")]
    BadUidl {
        command: String,
        msg: MsgNo,
        reason: String,
    },
    #[error("{command}: the listing has more than {limit} entries")]
    TooManyEntries { command: String, limit: usize },
    #[error("{command}: cannot understand the server's answer `{line}`: {reason}")]
    Malformed {
        command: String,
        line: String,
        reason: &'static str,
    },
    #[error("the server sent data that answers no command: `{line}`")]
    Unsolicited { line: String },
    /// The caller asked for something impossible; nothing was sent.
    #[error("{0}")]
    Usage(String),
}

impl ProtoError {
    /// After a fatal error the byte stream cannot be trusted to line up with commands
    /// any more; the connection must be dropped.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ProtoError::Negative { .. } | ProtoError::Usage(_))
    }
}

/// The RFC 2449 response code at the start of a `-ERR` text, e.g. `IN-USE` or `SYS/TEMP`.
pub fn response_code(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('[')?;
    let end = rest.find(']')?;
    Some(&rest[..end])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Greeting,
    Simple,
    Auth,
    Stat,
    UidlOne,
    SizeOne,
    Capa,
    UidlAll,
    SizeAll,
    Body,
}

#[derive(Debug)]
struct Expect {
    kind: Kind,
    /// The command as it may appear in errors: never a credential.
    label: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unstuff {
    /// At the start of a line, where a dot is stuffing or the terminator.
    LineStart,
    /// A line began with a dot: stuffing, unless CR LF follows.
    Dot,
    /// `.` CR at the start of a line: the terminator if LF follows.
    DotCr,
    /// Inside a line.
    Mid,
    /// After a CR inside a line.
    Cr,
}

#[derive(Debug)]
enum Reading {
    /// Waiting for the first line of the answer to the front command.
    Status,
    /// Lines of a multi-line listing; `last` is the previous message number.
    Listing {
        entries: usize,
        last: u32,
    },
    Body(Unstuff),
    /// The terminator was read together with a last chunk; `End` is still owed.
    BodyEnd,
}

/// The POP3 session state. Starts expecting the server's greeting.
#[derive(Debug)]
pub struct Protocol {
    input: Vec<u8>,
    /// Bytes of `input` before this are consumed.
    pos: usize,
    expects: VecDeque<Expect>,
    reading: Reading,
    apop_timestamp: Option<String>,
    /// A SASL initial response too long for the AUTH line, sent at the first challenge.
    sasl_pending: Option<Secret>,
    sasl_replies: u8,
    failed: Option<ProtoError>,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol::new()
    }
}

/// RFC 5034: an AUTH line with its initial response must fit in 255 octets.
const MAX_AUTH_LINE: usize = 255;

impl Protocol {
    pub fn new() -> Protocol {
        Protocol {
            input: Vec::new(),
            pos: 0,
            expects: VecDeque::from([Expect {
                kind: Kind::Greeting,
                label: "greeting".into(),
            }]),
            reading: Reading::Status,
            apop_timestamp: None,
            sasl_pending: None,
            sasl_replies: 0,
            failed: None,
        }
    }

    /// The APOP timestamp of the greeting, once read.
    pub fn apop_timestamp(&self) -> Option<&str> {
        self.apop_timestamp.as_deref()
    }

    /// Received bytes not yet turned into events. After the STLS `+OK` this must be
    /// zero: anything there came before the handshake (rule 19).
    pub fn buffered(&self) -> usize {
        self.input.len() - self.pos
    }

    /// Commands sent whose answers are not complete yet.
    pub fn pending(&self) -> usize {
        self.expects.len()
    }

    /// Bytes from the server, in any pieces.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos >= self.input.len() / 2 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Queue a command; returns the bytes to send.
    pub fn send(&mut self, command: Command<'_>) -> Result<Outgoing, ProtoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.expects.is_empty() && self.buffered() > 0 {
            let e = ProtoError::Unsolicited {
                line: shown_line(&self.input[self.pos..]),
            };
            self.failed = Some(e.clone());
            return Err(e);
        }
        let plain = |kind: Kind, line: String| (kind, line.clone(), line, false);
        let (kind, line, label, secret) = match command {
            Command::Capa => plain(Kind::Capa, "CAPA".into()),
            Command::Stls => plain(Kind::Simple, "STLS".into()),
            Command::User(user) => {
                check_arg("user name", user)?;
                plain(Kind::Simple, format!("USER {user}"))
            }
            Command::Pass(password) => {
                check_arg("password", password.expose())?;
                (
                    Kind::Simple,
                    format!("PASS {}", password.expose()),
                    "PASS".into(),
                    true,
                )
            }
            Command::Apop { user, secret } => {
                check_arg("user name", user)?;
                let Some(timestamp) = &self.apop_timestamp else {
                    return Err(ProtoError::Usage(
                        "APOP needs a timestamp in the server's greeting, and it sent none".into(),
                    ));
                };
                // MD5 only because RFC 1939 defines APOP with it; never for anything new.
                let digest = hex::encode(Md5::digest(format!("{timestamp}{}", secret.expose())));
                (
                    Kind::Simple,
                    format!("APOP {user} {digest}"),
                    format!("APOP {user}"),
                    true,
                )
            }
            Command::Auth(sasl) => {
                check_arg("user name", sasl.user())?;
                let initial = sasl.initial_response_base64();
                let name = sasl.name();
                let inline = format!("AUTH {name} {}", initial.expose());
                self.sasl_replies = 0;
                if inline.len() + 2 <= MAX_AUTH_LINE {
                    self.sasl_pending = None;
                    (Kind::Auth, inline, format!("AUTH {name}"), true)
                } else {
                    self.sasl_pending = Some(initial);
                    (
                        Kind::Auth,
                        format!("AUTH {name}"),
                        format!("AUTH {name}"),
                        false,
                    )
                }
            }
            Command::Stat => plain(Kind::Stat, "STAT".into()),
            Command::Uidl(None) => plain(Kind::UidlAll, "UIDL".into()),
            Command::Uidl(Some(n)) => plain(Kind::UidlOne, format!("UIDL {n}")),
            Command::List(None) => plain(Kind::SizeAll, "LIST".into()),
            Command::List(Some(n)) => plain(Kind::SizeOne, format!("LIST {n}")),
            Command::Retr(n) => plain(Kind::Body, format!("RETR {n}")),
            Command::Top(n, lines) => plain(Kind::Body, format!("TOP {n} {lines}")),
            Command::Dele(n) => plain(Kind::Simple, format!("DELE {n}")),
            Command::Rset => plain(Kind::Simple, "RSET".into()),
            Command::Noop => plain(Kind::Simple, "NOOP".into()),
            Command::Quit => plain(Kind::Simple, "QUIT".into()),
        };
        let shown = if secret {
            format!("{} <redacted>", label)
        } else {
            label.clone()
        };
        self.expects.push_back(Expect { kind, label });
        let mut bytes = line.into_bytes();
        bytes.extend_from_slice(b"\r\n");
        Ok(Outgoing { bytes, shown })
    }

    /// The answer to a SASL [`Event::Challenge`]: the initial response if it was too long
    /// for the AUTH line, else an empty response (XOAUTH2 reports errors as a challenge
    /// and expects one), and a cancel (`*`) if the server keeps asking.
    pub fn sasl_reply(&mut self) -> Result<Outgoing, ProtoError> {
        if self.expects.front().map(|e| e.kind) != Some(Kind::Auth) {
            return Err(ProtoError::Usage("no AUTH in progress".into()));
        }
        if let Some(initial) = self.sasl_pending.take() {
            let mut bytes = initial.expose().as_bytes().to_vec();
            bytes.extend_from_slice(b"\r\n");
            return Ok(Outgoing {
                bytes,
                shown: "<redacted SASL response>".into(),
            });
        }
        self.sasl_replies = self.sasl_replies.saturating_add(1);
        let (bytes, shown) = if self.sasl_replies <= 1 {
            (b"\r\n".to_vec(), "(empty SASL response)")
        } else {
            (b"*\r\n".to_vec(), "* (cancel AUTH)")
        };
        Ok(Outgoing {
            bytes,
            shown: shown.into(),
        })
    }

    /// The next event, `Ok(None)` if more bytes are needed. A fatal error sticks: every
    /// later call returns it again.
    pub fn next_event(&mut self) -> Result<Option<Event>, ProtoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.step();
        if let Err(e) = &result
            && e.is_fatal()
        {
            self.failed = Some(e.clone());
        }
        result
    }

    fn label(&self) -> String {
        self.expects
            .front()
            .map_or_else(|| "(no command)".into(), |e| e.label.clone())
    }

    fn finish(&mut self) {
        self.expects.pop_front();
        self.reading = Reading::Status;
    }

    /// One line without its line end (CRLF, or a bare LF from a lax server), or `None`
    /// until a whole line is here.
    fn take_line(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        let avail = &self.input[self.pos..];
        let Some(lf) = avail.iter().position(|&b| b == b'\n') else {
            if avail.len() >= MAX_LINE {
                return Err(ProtoError::LineTooLong {
                    command: self.label(),
                    limit: MAX_LINE,
                });
            }
            return Ok(None);
        };
        if lf + 1 > MAX_LINE {
            return Err(ProtoError::LineTooLong {
                command: self.label(),
                limit: MAX_LINE,
            });
        }
        let mut line = avail[..lf].to_vec();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.pos += lf + 1;
        Ok(Some(line))
    }

    fn step(&mut self) -> Result<Option<Event>, ProtoError> {
        match self.reading {
            Reading::Status => self.status(),
            Reading::Listing { .. } => self.listing(),
            Reading::Body(state) => Ok(self.body(state)),
            Reading::BodyEnd => {
                self.finish();
                Ok(Some(Event::End))
            }
        }
    }

    fn status(&mut self) -> Result<Option<Event>, ProtoError> {
        let Some(kind) = self.expects.front().map(|e| e.kind) else {
            if self.buffered() > 0 {
                return Err(ProtoError::Unsolicited {
                    line: shown_line(&self.input[self.pos..]),
                });
            }
            return Ok(None);
        };
        let Some(line) = self.take_line()? else {
            return Ok(None);
        };
        let malformed = |this: &Self, reason| ProtoError::Malformed {
            command: this.label(),
            line: shown_line(&line),
            reason,
        };
        let text = if let Some(rest) = strip_status(&line, b"+OK") {
            String::from_utf8_lossy(rest).into_owned()
        } else if let Some(rest) = strip_status(&line, b"-ERR") {
            let e = ProtoError::Negative {
                command: self.label(),
                text: String::from_utf8_lossy(rest).into_owned(),
            };
            self.finish();
            return Err(e);
        } else if kind == Kind::Auth
            && let Some(rest) = strip_status(&line, b"+")
        {
            return Ok(Some(Event::Challenge(
                String::from_utf8_lossy(rest).into_owned(),
            )));
        } else {
            return Err(malformed(self, "neither +OK nor -ERR"));
        };
        let event = match kind {
            Kind::Greeting => {
                self.apop_timestamp = apop_timestamp(&text);
                self.finish();
                Event::Greeting {
                    apop_timestamp: self.apop_timestamp.clone(),
                    text,
                }
            }
            Kind::Simple | Kind::Auth => {
                self.finish();
                Event::Ok { text }
            }
            Kind::Stat => {
                let mut words = text.split_ascii_whitespace();
                let count = words.next().and_then(|w| w.parse().ok());
                let octets = words.next().and_then(|w| w.parse().ok());
                let (Some(count), Some(octets)) = (count, octets) else {
                    return Err(malformed(self, "STAT needs a message count and a size"));
                };
                self.finish();
                Event::Stat { count, octets }
            }
            Kind::UidlOne => {
                let (msg, uidl) = self.uidl_entry(text.as_bytes())?;
                self.finish();
                Event::Uidl { msg, uidl }
            }
            Kind::SizeOne => {
                let (msg, octets) = self.size_entry(text.as_bytes())?;
                self.finish();
                Event::Size { msg, octets }
            }
            Kind::Capa | Kind::UidlAll | Kind::SizeAll => {
                self.reading = Reading::Listing {
                    entries: 0,
                    last: 0,
                };
                return self.listing();
            }
            Kind::Body => {
                self.reading = Reading::Body(Unstuff::LineStart);
                return Ok(self.body(Unstuff::LineStart));
            }
        };
        Ok(Some(event))
    }

    fn listing(&mut self) -> Result<Option<Event>, ProtoError> {
        let Reading::Listing { entries, last } = self.reading else {
            return Ok(None);
        };
        let Some(kind) = self.expects.front().map(|e| e.kind) else {
            return Ok(None);
        };
        let Some(line) = self.take_line()? else {
            return Ok(None);
        };
        if line == b"." {
            self.finish();
            return Ok(Some(Event::End));
        }
        if entries >= MAX_LISTING {
            return Err(ProtoError::TooManyEntries {
                command: self.label(),
                limit: MAX_LISTING,
            });
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        let (event, msg) = match kind {
            Kind::Capa => (
                Event::Capability(String::from_utf8_lossy(line).trim().to_owned()),
                last,
            ),
            Kind::UidlAll => {
                let (msg, uidl) = self.uidl_entry(line)?;
                (Event::Uidl { msg, uidl }, msg.0)
            }
            _ => {
                let (msg, octets) = self.size_entry(line)?;
                (Event::Size { msg, octets }, msg.0)
            }
        };
        if kind != Kind::Capa && msg <= last {
            return Err(ProtoError::Malformed {
                command: self.label(),
                line: shown_line(line),
                reason: "message numbers must ascend",
            });
        }
        self.reading = Reading::Listing {
            entries: entries + 1,
            last: msg,
        };
        Ok(Some(event))
    }

    fn msg_no(&self, word: Option<&[u8]>, line: &[u8]) -> Result<MsgNo, ProtoError> {
        word.and_then(|w| std::str::from_utf8(w).ok())
            .and_then(|w| w.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .map(MsgNo)
            .ok_or_else(|| ProtoError::Malformed {
                command: self.label(),
                line: shown_line(line),
                reason: "no message number",
            })
    }

    /// `msg SP uidl`, the UIDL being 1-70 characters 0x21-0x7E (RFC 1939).
    fn uidl_entry(&self, line: &[u8]) -> Result<(MsgNo, String), ProtoError> {
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let msg = self.msg_no(words.next(), line)?;
        let uidl = words.next().unwrap_or_default();
        let bad = |reason: String| ProtoError::BadUidl {
            command: self.label(),
            msg,
            reason,
        };
        if uidl.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if uidl.len() > MAX_UIDL {
            return Err(bad(format!(
                "{} characters, RFC 1939 allows at most {MAX_UIDL}",
                uidl.len()
            )));
        }
        if let Some(b) = uidl.iter().find(|b| !(0x21..=0x7e).contains(*b)) {
            return Err(bad(format!("it contains the byte 0x{b:02X}")));
        }
        if words.next().is_some() {
            return Err(bad("text follows it".into()));
        }
        Ok((msg, String::from_utf8_lossy(uidl).into_owned()))
    }

    /// `msg SP octets`, possibly followed by more (RFC 1939 allows it).
    fn size_entry(&self, line: &[u8]) -> Result<(MsgNo, u64), ProtoError> {
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let msg = self.msg_no(words.next(), line)?;
        let octets = words
            .next()
            .and_then(|w| std::str::from_utf8(w).ok())
            .and_then(|w| w.parse::<u64>().ok())
            .ok_or_else(|| ProtoError::Malformed {
                command: self.label(),
                line: shown_line(line),
                reason: "no message size",
            })?;
        Ok((msg, octets))
    }

    /// Dot-unstuff up to [`BODY_CHUNK`] buffered bytes. The state carries across calls,
    /// so a split anywhere (inside CR LF, inside `..`, inside CR LF `.` CR LF) is fine.
    fn body(&mut self, mut state: Unstuff) -> Option<Event> {
        let avail = &self.input[self.pos..];
        if avail.is_empty() {
            return None;
        }
        // A `.` CR held from the last call is owed back as a CR: one byte of room for it.
        let room = BODY_CHUNK - usize::from(state == Unstuff::DotCr);
        let take = avail.len().min(room);
        let avail = &avail[..take];
        let mut out = Vec::with_capacity(take);
        let mut i = 0;
        let mut done = false;
        while i < take {
            if state == Unstuff::Mid {
                // Copy the rest of the line up to its CR in one go.
                match avail[i..].iter().position(|&b| b == b'\r') {
                    Some(cr) => {
                        out.extend_from_slice(&avail[i..=i + cr]);
                        i += cr + 1;
                        state = Unstuff::Cr;
                    }
                    None => {
                        out.extend_from_slice(&avail[i..]);
                        i = take;
                    }
                }
                continue;
            }
            let b = avail[i];
            i += 1;
            state = match (state, b) {
                (Unstuff::LineStart, b'.') => Unstuff::Dot,
                (Unstuff::Dot, b'\r') => Unstuff::DotCr,
                (Unstuff::DotCr, b'\n') => {
                    done = true;
                    break;
                }
                // `.` CR then something else: a stuffed line that holds a bare CR.
                (Unstuff::DotCr, _) => {
                    out.push(b'\r');
                    out.push(b);
                    if b == b'\r' {
                        Unstuff::Cr
                    } else {
                        Unstuff::Mid
                    }
                }
                // The stuffing dot is dropped; this byte is the line's first.
                (Unstuff::Dot | Unstuff::LineStart | Unstuff::Mid, _) => {
                    out.push(b);
                    if b == b'\r' {
                        Unstuff::Cr
                    } else {
                        Unstuff::Mid
                    }
                }
                (Unstuff::Cr, _) => {
                    out.push(b);
                    match b {
                        b'\n' => Unstuff::LineStart,
                        b'\r' => Unstuff::Cr,
                        _ => Unstuff::Mid,
                    }
                }
            };
        }
        self.pos += i;
        if done {
            if out.is_empty() {
                self.finish();
                return Some(Event::End);
            }
            self.reading = Reading::BodyEnd;
        } else {
            self.reading = Reading::Body(state);
            if out.is_empty() {
                // Only stuffing or line-start bytes so far: they are kept in the state.
                return self.body_more(state);
            }
        }
        Some(Event::Body(out))
    }

    /// Everything consumed produced no output (a lone `.` or `.` CR); if bytes remain,
    /// go on, else wait for more.
    fn body_more(&mut self, state: Unstuff) -> Option<Event> {
        if self.buffered() > 0 {
            self.body(state)
        } else {
            None
        }
    }
}

fn check_arg(what: &str, value: &str) -> Result<(), ProtoError> {
    if value.is_empty() {
        return Err(ProtoError::Usage(format!("the {what} is empty")));
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        // Never echo the value: it may be a password.
        return Err(ProtoError::Usage(format!(
            "the {what} contains a line break or NUL, which POP3 cannot carry"
        )));
    }
    Ok(())
}

/// `+OK`, `-ERR` or `+` followed by the end or a space; returns the text after it.
fn strip_status<'a>(line: &'a [u8], status: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(status)?;
    if rest.is_empty() {
        return Some(rest);
    }
    rest.strip_prefix(b" ")
}

/// `<...>` in the greeting text (RFC 1939 section 7), brackets included.
fn apop_timestamp(text: &str) -> Option<String> {
    let start = text.find('<')?;
    let len = text[start..].find('>')?;
    let stamp = &text[start..=start + len];
    (stamp.len() > 2 && stamp.bytes().all(|b| (0x21..=0x7e).contains(&b))).then(|| stamp.to_owned())
}

/// A server line as it may appear in an error: printable, at most 200 characters.
fn shown_line(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut s: String = String::from_utf8_lossy(&line[..line.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if line.len() > 200 {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
#[path = "proto_tests.rs"]
mod tests;
