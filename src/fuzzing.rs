//! Fuzz target bodies: each takes arbitrary bytes and asserts the invariants of one parser
//! we own, panicking if one breaks. The libFuzzer targets in `tests/fuzz/` call these,
//! and `tests/suite/fuzz_corpora.rs` replays every stored corpus file through them on
//! stable.
//!
//! Not an API: the inputs are structured only as far as the fuzzer has learned them.

use std::path::Path;

use crate::config::{self, Dirs};
use crate::maildir::{FolderMap, Layout, MaildirName, build_cur_name, decode_server_name, utf7};
use crate::model::{Flag, FolderName};
use crate::net::sasl::Sasl;
use crate::pop3::proto::{
    BODY_CHUNK, Command, Event, MAX_LINE, MAX_UIDL, MsgNo, ProtoError, Protocol,
};
use crate::secret::Secret;

/// Takes a structured prefix off fuzz input; reads past the end as zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A short string: a length byte, then that many bytes (lossy UTF-8).
    fn text(&mut self) -> String {
        let n = usize::from(self.byte() % 64);
        String::from_utf8_lossy(self.bytes(n)).into_owned()
    }
}

// ---------------------------------------------------------------------------------------
// POP3

/// The POP3 state machine against a hostile server. Input: a script (commands pipelined
/// up front, a user name, a secret, cut points), then the server's bytes.
///
/// Checks: every command is one CRLF-terminated line; events are well-formed and within
/// the documented bounds; the buffer stays under [`MAX_LINE`] while waiting; no more
/// message bytes come out than went in; a fatal error sticks; and feeding the server's
/// bytes in arbitrary pieces gives exactly the events of feeding them at once.
pub fn pop3_responses(data: &[u8]) {
    let mut input = Input(data);
    let script = Pop3Script::read(&mut input);
    let wire = input.0;
    let whole = script.run(wire, &[]);
    let pieces = script.run(wire, &script.cuts);
    assert_eq!(
        whole, pieces,
        "feeding in pieces at {:?} changed the events",
        script.cuts
    );
    apop_after_greeting(wire, &script.user, &script.secret);
}

struct Pop3Script {
    commands: Vec<(u8, u8)>,
    user: String,
    secret: Secret,
    cuts: Vec<usize>,
}

/// What a run saw, normalised so that runs with different read boundaries compare equal:
/// adjacent body chunks merged, an unsolicited line (which shows as much as has arrived)
/// blanked.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Event(Event),
    SaslReply(Vec<u8>),
    Error(ProtoError),
    /// Bytes still buffered and answers still pending once all input was read.
    Idle {
        buffered: usize,
        pending: usize,
    },
}

impl Pop3Script {
    fn read(input: &mut Input<'_>) -> Pop3Script {
        let n = input.byte() % 8;
        let commands = (0..n).map(|_| (input.byte(), input.byte())).collect();
        let user = input.text();
        let secret = Secret::new(input.text());
        let ncuts = input.byte() % 16;
        let cuts = (0..ncuts)
            .map(|_| usize::from(u16::from_le_bytes([input.byte(), input.byte()])))
            .collect();
        Pop3Script {
            commands,
            user,
            secret,
            cuts,
        }
    }

    fn command(&self, which: u8, n: u8) -> Command<'_> {
        let msg = MsgNo(u32::from(n));
        let user = self.user.as_str();
        match which % 19 {
            0 => Command::Capa,
            1 => Command::Stls,
            2 => Command::User(user),
            3 => Command::Pass(&self.secret),
            4 => Command::Apop {
                user,
                secret: &self.secret,
            },
            5 => Command::Auth(Sasl::Plain {
                user,
                password: &self.secret,
            }),
            6 => Command::Auth(Sasl::Xoauth2 {
                user,
                token: &self.secret,
            }),
            7 => Command::Auth(Sasl::Oauthbearer {
                user,
                host: user,
                port: u16::from(n),
                token: &self.secret,
            }),
            8 => Command::Stat,
            9 => Command::Uidl(None),
            10 => Command::Uidl(Some(msg)),
            11 => Command::List(None),
            12 => Command::List(Some(msg)),
            13 => Command::Retr(msg),
            14 => Command::Top(msg, u32::from(n)),
            15 => Command::Dele(msg),
            16 => Command::Rset,
            17 => Command::Noop,
            _ => Command::Quit,
        }
    }

    /// Send every command, then feed `wire` cut at `cuts` (all at once if none), reading
    /// every event after each piece.
    fn run(&self, wire: &[u8], cuts: &[usize]) -> Vec<Seen> {
        let mut p = Protocol::new();
        let mut multi_line = 0usize;
        for &(which, n) in &self.commands {
            let command = self.command(which, n);
            let before = p.pending();
            match p.send(command) {
                Ok(out) => {
                    assert_eq!(p.pending(), before + 1);
                    assert_one_line(out.bytes());
                    multi_line += usize::from(matches!(
                        command,
                        Command::Capa
                            | Command::Uidl(None)
                            | Command::List(None)
                            | Command::Retr(_)
                            | Command::Top(..)
                    ));
                }
                Err(ProtoError::Usage(_)) => assert_eq!(p.pending(), before),
                Err(e) => panic!("sending before any input failed: {e}"),
            }
        }
        let mut ends = 0usize;
        let mut seen: Vec<Seen> = Vec::new();
        let mut fed = 0usize;
        let mut emitted = 0usize;
        let mut start = 0usize;
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(wire.len())).collect();
        cuts.sort_unstable();
        cuts.push(wire.len());
        for cut in cuts {
            if cut < start {
                continue;
            }
            p.feed(&wire[start..cut]);
            fed += cut - start;
            start = cut;
            loop {
                match p.next_event() {
                    Ok(None) => {
                        assert!(
                            p.buffered() < MAX_LINE,
                            "{} bytes buffered while waiting for more",
                            p.buffered()
                        );
                        break;
                    }
                    Ok(Some(event)) => {
                        emitted += check_event(&event);
                        assert!(emitted <= fed, "{emitted} bytes out of {fed} fed");
                        ends += usize::from(event == Event::End);
                        assert!(ends <= multi_line, "more ends than multi-line commands");
                        let challenge = matches!(event, Event::Challenge(_));
                        push_merged(&mut seen, event);
                        if challenge {
                            let reply = p.sasl_reply().expect("a challenge is answerable");
                            assert_one_line(reply.bytes());
                            seen.push(Seen::SaslReply(reply.bytes().to_vec()));
                        }
                    }
                    Err(e) if e.is_fatal() => {
                        // It sticks: the stream cannot be trusted any more.
                        assert_eq!(p.next_event(), Err(e.clone()));
                        assert!(p.send(Command::Noop).is_err());
                        let e = match e {
                            ProtoError::Unsolicited { .. } => ProtoError::Unsolicited {
                                line: String::new(),
                            },
                            e => e,
                        };
                        assert!(e.to_string().len() < 1024, "error text too long: {e}");
                        seen.push(Seen::Error(e));
                        return seen;
                    }
                    Err(e) => seen.push(Seen::Error(e)),
                }
            }
        }
        seen.push(Seen::Idle {
            buffered: p.buffered(),
            pending: p.pending(),
        });
        seen
    }
}

fn push_merged(seen: &mut Vec<Seen>, event: Event) {
    if let (Some(Seen::Event(Event::Body(last))), Event::Body(more)) = (seen.last_mut(), &event) {
        last.extend_from_slice(more);
        return;
    }
    seen.push(Seen::Event(event));
}

/// A command on the wire is exactly one line: CRLF at the end and no CR, LF or NUL before.
fn assert_one_line(bytes: &[u8]) {
    let body = bytes
        .strip_suffix(b"\r\n")
        .unwrap_or_else(|| panic!("command not CRLF-terminated: {bytes:?}"));
    assert!(
        !body.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
        "a command line holds a line break or NUL"
    );
}

/// Checks one event's bounds; returns the message bytes it carries.
fn check_event(event: &Event) -> usize {
    match event {
        Event::Body(chunk) => {
            assert!(!chunk.is_empty() && chunk.len() <= BODY_CHUNK);
            chunk.len()
        }
        Event::Uidl { msg, uidl } => {
            assert!(msg.0 > 0);
            assert!((1..=MAX_UIDL).contains(&uidl.len()), "UIDL {uidl:?}");
            assert!(uidl.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            0
        }
        Event::Size { msg, .. } => {
            assert!(msg.0 > 0);
            0
        }
        Event::Greeting {
            text,
            apop_timestamp,
        } => {
            assert!(text.len() < MAX_LINE * 3);
            if let Some(t) = apop_timestamp {
                assert!(t.starts_with('<') && t.ends_with('>') && t.len() > 2);
                assert!(text.contains(t.as_str()));
            }
            0
        }
        Event::Ok { text } | Event::Capability(text) | Event::Challenge(text) => {
            // Lossy UTF-8 may triple a byte; never more.
            assert!(text.len() < MAX_LINE * 3);
            0
        }
        Event::Stat { .. } | Event::End => 0,
    }
}

/// APOP after a greeting that offers it: one line, `APOP user <32 hex digits>`.
fn apop_after_greeting(wire: &[u8], user: &str, secret: &Secret) {
    let mut p = Protocol::new();
    p.feed(wire);
    let Ok(Some(Event::Greeting {
        apop_timestamp: Some(_),
        ..
    })) = p.next_event()
    else {
        return;
    };
    if let Ok(out) = p.send(Command::Apop { user, secret }) {
        assert_one_line(out.bytes());
        let line = &out.bytes()[..out.bytes().len() - 2];
        let prefix = format!("APOP {user} ");
        let digest = line
            .strip_prefix(prefix.as_bytes())
            .expect("APOP line starts with the user");
        assert!(digest.len() == 32 && digest.iter().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(out.shown(), format!("APOP {user} <redacted>"));
    }
}

// ---------------------------------------------------------------------------------------
// Modified UTF-7

/// Modified UTF-7 both ways. As a wire name: decoding never panics and whatever decodes
/// re-encodes to exactly the input (only canonical forms are accepted). As a name:
/// encoding gives printable ASCII that decodes back to the name.
pub fn utf7(data: &[u8]) {
    if let Ok(wire) = std::str::from_utf8(data)
        && let Ok(name) = utf7::decode(wire)
    {
        assert_eq!(utf7::encode(&name), wire, "decoded {wire:?} to {name:?}");
    }
    let name = String::from_utf8_lossy(data);
    let wire = utf7::encode(&name);
    assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{wire:?}");
    assert_eq!(utf7::decode(&wire).as_deref(), Ok(&*name), "wire {wire:?}");
}

// ---------------------------------------------------------------------------------------
// Maildir file names

/// Maildir file names. Whatever parses has a usable unique part; its `cur/` name parses
/// back to the same key, flags and letters and is a fixed point; a name already in the
/// canonical form is rebuilt unchanged.
pub fn maildir_name(data: &[u8]) {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    let host = crate::maildir::filename::escape_hostname(name);
    assert!(
        !host.chars().any(|c| c.is_control() || c == '/' || c == ':'),
        "escaped host name {host:?} still holds / : or a control character"
    );
    let Ok(parsed) = MaildirName::parse(name) else {
        return;
    };
    let key = &parsed.key.0;
    assert!(!key.is_empty() && !key.starts_with('.'));
    assert!(!key.contains([':', '/', '\0']), "key {key:?}");
    let _ = crate::maildir::filename::size_hint(&parsed.key);
    for (i, c) in parsed.extra_letters.char_indices() {
        assert!(Flag::from_maildir_letter(c).is_none(), "{c:?} is a flag");
        assert!(!parsed.extra_letters[..i].contains(c), "{c:?} twice");
    }
    let cur = parsed.cur_name();
    assert_eq!(
        cur,
        build_cur_name(&parsed.key, &parsed.flags, &parsed.extra_letters)
    );
    let again = MaildirName::parse(&cur).expect("a cur name we built parses");
    assert_eq!(again.key, parsed.key);
    assert_eq!(again.flags, parsed.flags);
    let mut a: Vec<char> = again.extra_letters.chars().collect();
    let mut b: Vec<char> = parsed.extra_letters.chars().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "extra letters changed in {cur:?}");
    assert_eq!(again.cur_name(), cur, "cur name is not a fixed point");
    if name.split_once(':').is_some_and(|(_, info)| {
        info.strip_prefix("2,").is_some_and(|letters| {
            letters
                .chars()
                .zip(letters.chars().skip(1))
                .all(|(x, y)| x < y)
        })
    }) {
        assert_eq!(cur, name, "a canonical name was rebuilt differently");
    }
}

// ---------------------------------------------------------------------------------------
// Server folder names

/// A server folder name, as LIST returns it, through decoding and the folder map, under
/// each layout and a fuzzed delimiter; and a folder pattern from the config matched
/// against it. A mapped path is relative, plain, below the root, never a Maildir
/// subdirectory or hidden, and maps back to the same place.
pub fn folder_name(data: &[u8]) {
    let mut input = Input(data);
    let delimiter = match input.byte() {
        0 => None,
        1 => Some('.'),
        2 => Some('/'),
        b => Some(char::from(b)),
    };
    let pattern = input.text();
    let Ok(wire) = std::str::from_utf8(input.0) else {
        return;
    };
    match decode_server_name(wire) {
        Ok(name) => {
            for layout in [Layout::Verbatim, Layout::MaildirPlusPlus] {
                check_mapping(&name, layout, delimiter);
            }
            if let Ok(p) = crate::config::FolderPattern::parse(&pattern) {
                let _ = p.matches(&name.0, delimiter);
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.len() < 2048, "error text too long: {}", shown.len());
        }
    }
}

fn check_mapping(name: &FolderName, layout: Layout, delimiter: Option<char>) {
    let map = FolderMap::new("/root", layout, delimiter);
    let rel = match map.relative(name) {
        Ok(rel) => rel,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_eq!(map.to_local(name).ok(), Some(Path::new("/root").join(&rel)));
    for c in rel.components() {
        let std::path::Component::Normal(c) = c else {
            panic!("{name:?} maps to {rel:?}, which is not plain");
        };
        let c = c.to_str().expect("UTF-8 in, UTF-8 out");
        assert!(c.len() <= 255, "component of {} bytes", c.len());
        assert!(!["cur", "new", "tmp"].contains(&c), "{name:?} -> {rel:?}");
        assert!(!c.chars().any(char::is_control));
        if layout == Layout::Verbatim {
            assert!(!c.starts_with('.'), "{name:?} -> hidden {rel:?}");
        }
    }
    let back = map
        .to_server(&rel)
        .unwrap_or_else(|e| panic!("{name:?} -> {rel:?} does not map back: {e}"));
    assert_eq!(map.relative(&back).ok(), Some(rel), "{name:?} -> {back:?}");
}

// ---------------------------------------------------------------------------------------
// Config

/// Errors that concern the file as a whole, so have no line to point at.
const FILE_LEVEL_ERRORS: &[&str] = &["no accounts are configured"];

/// The config loader on arbitrary text. It never panics; every error names the file and,
/// unless it is about the file as a whole, a line and column that exist in the text with
/// that line quoted; a config that loads has unique account names and disjoint Maildirs.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/nonexistent/syncmail-fuzz/config.toml");
    let dirs = Dirs {
        home: Some("/nonexistent/syncmail-fuzz/home".into()),
        xdg_config_home: None,
        xdg_state_home: None,
    };
    match config::parse(path, &text, &dirs) {
        Ok(loaded) => {
            let accounts = &loaded.config.accounts;
            assert!(!accounts.is_empty());
            for (i, a) in accounts.iter().enumerate() {
                assert!(a.server.port != 0);
                for b in &accounts[..i] {
                    assert_ne!(a.name, b.name);
                    assert!(
                        !a.maildir.starts_with(&b.maildir) && !b.maildir.starts_with(&a.maildir)
                    );
                }
            }
        }
        Err(e) => {
            assert_eq!(e.path, path);
            let shown = e.to_string();
            assert!(shown.starts_with(&*path.to_string_lossy()), "{shown}");
            match e.location.as_deref() {
                Some(loc) => {
                    let line = text
                        .split('\n')
                        .nth(loc.line - 1)
                        .unwrap_or_else(|| panic!("line {} is not in the text: {shown}", loc.line));
                    assert_eq!(loc.source_line, line.trim_end_matches('\r'), "{shown}");
                    let columns = line.chars().count() + 1;
                    assert!(loc.column >= 1 && loc.column <= columns, "{shown}");
                    assert!(loc.width >= 1);
                    assert!(shown.contains(&format!(":{}:{}: ", loc.line, loc.column)));
                }
                None => assert!(
                    FILE_LEVEL_ERRORS.contains(&e.message.as_str()),
                    "error without a location: {shown}"
                ),
            }
        }
    }
}
