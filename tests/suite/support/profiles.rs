//! Provider capability profiles: a private Dovecot that advertises what Microsoft 365,
//! Gmail, Yahoo or iCloud advertise (`imap_capability`), and, for what Dovecot cannot be
//! told to do, a scripted proxy in front of it that throttles, refuses connections or
//! enforces MESSAGELIMIT the way those providers do.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::dovecot::{LOCAL_NAMES, ServerCert, Setup};
use super::sync_env::SyncEnv;
use super::{DEFAULT_PASSWORD, Dovecot};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Microsoft365,
    Gmail,
    Yahoo,
    ICloud,
}

/// Gmail's connection limit is 15 per account; two keep the test small and still show
/// a pass that asked for more.
pub const GMAIL_CONNECTIONS: usize = 2;
/// Gmail's APPENDLIMIT (35 MiB), as it advertises it.
pub const GMAIL_APPENDLIMIT: u64 = 35_651_584;
pub const YAHOO_MESSAGELIMIT: usize = 1000;
/// How many `UID FETCH` commands the Microsoft 365 layer throttles, and for how long.
pub const M365_THROTTLED: usize = 2;
pub const M365_BACKOFF_MS: u64 = 500;

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::Microsoft365,
        Profile::Gmail,
        Profile::Yahoo,
        Profile::ICloud,
    ];

    /// What the provider advertises after login, as recorded from the real servers
    /// (AUTH= mechanisms are Dovecot's own, added before login).
    pub fn capability(self) -> String {
        match self {
            // No CONDSTORE, QRESYNC, ENABLE, COMPRESS or SPECIAL-USE.
            Profile::Microsoft365 => {
                "IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
                    .into()
            }
            // No QRESYNC; LITERAL- instead of LITERAL+; APPENDLIMIT; X-GM-EXT-1.
            Profile::Gmail => format!(
                "IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS \
                 COMPRESS=DEFLATE ENABLE MOVE CONDSTORE ESEARCH LIST-EXTENDED LIST-STATUS \
                 LITERAL- SPECIAL-USE APPENDLIMIT={GMAIL_APPENDLIMIT}"
            ),
            // No CONDSTORE (only Yahoo's own XYMHIGHESTMODSEQ), no COMPRESS; MESSAGELIMIT.
            Profile::Yahoo => format!(
                "IMAP4rev1 ID MOVE NAMESPACE XYMHIGHESTMODSEQ UIDPLUS LITERAL+ CHILDREN \
                 X-MSG-EXT UNSELECT OBJECTID IDLE MESSAGELIMIT={YAHOO_MESSAGELIMIT}"
            ),
            // CONDSTORE without QRESYNC, no MOVE, no COMPRESS.
            Profile::ICloud => "IMAP4 IMAP4rev1 ACL QUOTA LITERAL+ NAMESPACE UIDPLUS CHILDREN \
                 BINARY UNSELECT SORT CATENATE ESEARCH ESORT THREAD=ORDEREDSUBJECT \
                 THREAD=REFERENCES CONDSTORE ENABLE CONTEXT=SEARCH WITHIN SASL-IR SEARCHRES ID IDLE"
                .into(),
        }
    }

    /// The scripted layer this provider needs in front of Dovecot, if any.
    fn rules(self) -> Option<Rules> {
        match self {
            Profile::Microsoft365 => Some(Rules {
                throttle: Some(Throttle {
                    verb: "UID FETCH",
                    count: M365_THROTTLED,
                    backoff_ms: M365_BACKOFF_MS,
                }),
                ..Rules::default()
            }),
            Profile::Gmail => Some(Rules {
                max_connections: Some(GMAIL_CONNECTIONS),
                identity: Some(IdentityItem::GmailMsgId),
                gmail_labels: true,
                ..Rules::default()
            }),
            Profile::Yahoo => Some(Rules {
                message_limit: Some(YAHOO_MESSAGELIMIT),
                identity: Some(IdentityItem::EmailId),
                ..Rules::default()
            }),
            Profile::ICloud => None,
        }
    }

    /// A Dovecot with this profile's capabilities, user `alice`, and its proxy.
    pub fn start(self) -> ProfiledServer {
        self.start_with(self.rules())
    }

    /// The same with other proxy rules (e.g. a throttle that never ends).
    pub fn start_with(self, rules: Option<Rules>) -> ProfiledServer {
        // The zlib plugin adds COMPRESS=DEFLATE whatever imap_capability says: only the
        // profiles that advertise it load it.
        let plugins = if self.capability().contains("COMPRESS=DEFLATE") {
            "$mail_plugins imap_zlib"
        } else {
            "$mail_plugins"
        };
        let extra = format!(
            "imap_capability = {}\nprotocol imap {{\n  mail_plugins = {plugins}\n}}\n",
            self.capability()
        );
        let dovecot = Dovecot::start_setup(Setup {
            users: &[("alice", DEFAULT_PASSWORD)],
            cert: ServerCert::For(LOCAL_NAMES),
            extra_config: &extra,
        });
        let proxy = rules.map(|r| ScriptProxy::start(dovecot.imap_port, r));
        ProfiledServer {
            profile: self,
            dovecot,
            proxy,
        }
    }
}

pub struct ProfiledServer {
    pub profile: Profile,
    pub dovecot: Dovecot,
    pub proxy: Option<ScriptProxy>,
}

impl ProfiledServer {
    /// Account `t` for `alice`, over plaintext on loopback so the proxy can read the
    /// protocol: to the proxy when there is one, else to Dovecot's plain port.
    pub fn env(self, extra: &str) -> (SyncEnv, Option<ScriptProxy>) {
        let port = self
            .proxy
            .as_ref()
            .map_or(self.dovecot.imap_port, |p| p.port);
        let mut env = SyncEnv::with_dovecot(self.dovecot, extra);
        env.write_plain_config(port);
        (env, self.proxy)
    }
}

/// What the scripted layer does.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub throttle: Option<Throttle>,
    /// Connections open at once beyond this get `* BYE [ALERT] Too many simultaneous
    /// connections` as their greeting.
    pub max_connections: Option<usize>,
    /// Commands whose UID set or sequence set names more messages than this are refused
    /// with `NO [LIMIT]` (RFC 9738).
    pub message_limit: Option<usize>,
    /// The server-side message identity the provider sends and Dovecot 2.3 cannot:
    /// asked for, it is fetched from Dovecot as the Message-ID and answered as the
    /// provider's item, the same in every folder (a copy keeps its Message-ID).
    pub identity: Option<IdentityItem>,
    /// Every download (`UID FETCH ... BODY.PEEK[]`) is refused as Gmail refuses them once
    /// the account is over its daily limit: `NO [ALERT] Account exceeded command or
    /// bandwidth limits. (Failure)`.
    pub over_limit: bool,
    /// Gmail's label semantics, played by a session of the layer's own to Dovecot: a
    /// flag stored in one folder is stored on every copy of the message (Gmail's flags
    /// are per message; `\Deleted` stays per folder: there it removes one label), and a
    /// message moved to `[Gmail]/Trash` leaves every other folder (every label).
    pub gmail_labels: bool,
    /// Each connection answers every plain `LIST "" "*"` after its first with the first
    /// one's folders, as a Dovecot session did for a minute in a soak after another
    /// client renamed folders (its SELECT of the old name said it did not exist, while
    /// its LIST kept showing it; a new session listed the truth).
    pub stale_list: bool,
}

/// A provider's FETCH item naming a message across folders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityItem {
    /// Gmail's `X-GM-MSGID` (X-GM-EXT-1): a 64-bit number.
    GmailMsgId,
    /// OBJECTID's `EMAILID` (RFC 8474; Yahoo, Fastmail): `(M...)`.
    EmailId,
}

/// What Dovecot is asked for instead of the identity item: a header section no client
/// asks for, so its echo in the answer is found and replaced.
const IDENTITY_SECTION: &str = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-SCRIPTED-IDENTITY)]";
const IDENTITY_ECHO: &[u8] = b"X-SCRIPTED-IDENTITY)] {";

impl IdentityItem {
    fn item(self) -> &'static str {
        match self {
            IdentityItem::GmailMsgId => "X-GM-MSGID",
            IdentityItem::EmailId => "EMAILID",
        }
    }

    /// The item as the provider answers it for a message with this Message-ID header.
    fn answer(self, header: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(header);
        let id = text.split_once(':')?.1.trim();
        if id.is_empty() {
            return None;
        }
        // FNV-1a: stable across runs, the same for every copy of the message.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let h = h >> 1;
        Some(match self {
            IdentityItem::GmailMsgId => format!("X-GM-MSGID {h}"),
            IdentityItem::EmailId => format!("EMAILID (M{h:016x})"),
        })
    }
}

/// A client command with the identity item asked of Dovecot as [`IDENTITY_SECTION`].
fn ask_identity(line: &[u8], identity: IdentityItem) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?;
    let upper = text.to_ascii_uppercase();
    if !upper.contains(" FETCH ") {
        return None;
    }
    let at = upper.find(identity.item())?;
    let mut out = String::with_capacity(text.len() + 40);
    out.push_str(&text[..at]);
    out.push_str(IDENTITY_SECTION);
    out.push_str(&text[at + identity.item().len()..]);
    Some(out.into_bytes())
}

/// A server response with the echoed [`IDENTITY_SECTION`] and its literal replaced by the
/// provider's item (or dropped, for a message without a Message-ID).
fn answer_identity(frame: &[u8], identity: IdentityItem) -> Vec<u8> {
    let Some(echo) = frame
        .windows(IDENTITY_ECHO.len())
        .position(|w| w.eq_ignore_ascii_case(IDENTITY_ECHO))
    else {
        return frame.to_vec();
    };
    let Some(start) = frame[..echo]
        .windows(5)
        .rposition(|w| w.eq_ignore_ascii_case(b"BODY["))
    else {
        return frame.to_vec();
    };
    let open = echo + IDENTITY_ECHO.len();
    let Some(close) = frame[open..].iter().position(|b| *b == b'}') else {
        return frame.to_vec();
    };
    let Ok(n) = String::from_utf8_lossy(&frame[open..open + close]).parse::<usize>() else {
        return frame.to_vec();
    };
    let body = open + close + 3; // `}\r\n`
    let end = (body + n).min(frame.len());
    let mut out = frame[..start].to_vec();
    match identity.answer(&frame[body..end]) {
        Some(item) => out.extend_from_slice(item.as_bytes()),
        // Nothing to say: drop the item and the space before it.
        None => {
            if out.last() == Some(&b' ') {
                out.pop();
            }
        }
    }
    out.extend_from_slice(&frame[end..]);
    out
}

/// Answer the first `count` commands with this verb (`UID FETCH`) with Microsoft 365's
/// `NO Request is throttled. Suggested Backoff Time: <backoff_ms> milliseconds`.
#[derive(Clone, Debug)]
pub struct Throttle {
    pub verb: &'static str,
    pub count: usize,
    pub backoff_ms: u64,
}

/// What the layer did, for the tests to check.
#[derive(Debug, Default)]
pub struct Seen {
    pub throttled: AtomicUsize,
    pub refused_connections: AtomicUsize,
    pub limit_refusals: AtomicUsize,
    /// Downloads refused with the over-limit ALERT.
    pub over_limit: AtomicUsize,
    /// The most messages any one command named (as the layer counts them).
    pub largest_set: AtomicUsize,
    /// Commands that named a set (FETCH, STORE, SEARCH, ...).
    pub set_commands: AtomicUsize,
    /// The first line of every command, in order.
    pub commands: Mutex<Vec<String>>,
}

pub struct ScriptProxy {
    pub port: u16,
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
}

impl ScriptProxy {
    pub fn start(target_port: u16, rules: Rules) -> ScriptProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let live = Arc::new(AtomicUsize::new(0));
        let throttle_left = Arc::new(AtomicUsize::new(
            rules.throttle.as_ref().map_or(0, |t| t.count),
        ));
        let (stopping, seen2) = (stop.clone(), seen.clone());
        thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((mut client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                if let Some(max) = rules.max_connections
                    && live.load(Ordering::SeqCst) >= max
                {
                    seen2.refused_connections.fetch_add(1, Ordering::SeqCst);
                    let _ = client.write_all(
                        b"* BYE [ALERT] Too many simultaneous connections. (Failure)\r\n",
                    );
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                live.fetch_add(1, Ordering::SeqCst);
                let state = Arc::new(Mutex::new(Folder::default()));
                let writer = Arc::new(Mutex::new(client.try_clone().unwrap()));
                let parse = rules.throttle.is_some()
                    || rules.over_limit
                    || rules.gmail_labels
                    || rules.message_limit.is_some()
                    || rules.identity.is_some()
                    || rules.stale_list;
                let identity = rules.identity;
                let live2 = live.clone();
                let (srv, wr, st) = (server.try_clone().unwrap(), writer.clone(), state.clone());
                thread::spawn(move || {
                    if parse {
                        server_to_client(srv, wr, st, identity);
                    } else {
                        raw(srv, wr);
                    }
                    live2.fetch_sub(1, Ordering::SeqCst);
                });
                let (rules, seen, left) = (rules.clone(), seen2.clone(), throttle_left.clone());
                thread::spawn(move || {
                    if parse {
                        client_to_server(client, server, writer, state, &rules, &seen, &left);
                    } else {
                        let w = Arc::new(Mutex::new(server));
                        raw(client, w);
                    }
                });
            }
        });
        ScriptProxy { port, seen, stop }
    }
}

impl Drop for ScriptProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The selected folder as the server described it: what a `*` in a set stands for.
#[derive(Default)]
struct Folder {
    exists: usize,
    uidnext: usize,
    /// [`Rules::stale_list`]: the first LIST's answer is being read, and once read.
    list_recording: bool,
    list_building: Vec<u8>,
    list_frozen: Option<Vec<u8>>,
}

fn raw(mut from: TcpStream, to: Arc<Mutex<TcpStream>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.lock().unwrap().write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.lock().unwrap().shutdown(Shutdown::Both);
}

/// The literal a line announces (`{123}` or `{123+}` at its end).
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").or(line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|b| *b == b'{')?;
    let n = std::str::from_utf8(&line[open + 1..]).ok()?;
    n.trim_end_matches(['+', '-']).parse().ok()
}

/// Whole responses (line, literals, continuation lines) from the server, each written to
/// the client at once so an injected answer never lands inside one.
fn server_to_client(
    from: TcpStream,
    to: Arc<Mutex<TcpStream>>,
    state: Arc<Mutex<Folder>>,
    identity: Option<IdentityItem>,
) {
    let mut reader = BufReader::new(from.try_clone().unwrap());
    'outer: loop {
        let mut frame = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break 'outer,
                Ok(_) => {}
            }
            observe(&line, &state);
            frame.extend_from_slice(&line);
            match literal_len(&line) {
                Some(n) => {
                    let start = frame.len();
                    frame.resize(start + n, 0);
                    if reader.read_exact(&mut frame[start..]).is_err() {
                        break 'outer;
                    }
                }
                None => break,
            }
        }
        {
            let mut st = state.lock().unwrap();
            if st.list_recording {
                if frame.starts_with(b"* LIST") {
                    st.list_building.extend_from_slice(&frame);
                } else if !frame.starts_with(b"*") {
                    st.list_frozen = Some(std::mem::take(&mut st.list_building));
                    st.list_recording = false;
                }
            }
        }
        if let Some(identity) = identity {
            frame = answer_identity(&frame, identity);
        }
        // The layer reads the protocol: a compressed stream it could not.
        if frame.windows(10).any(|w| w == b"CAPABILITY") {
            frame = String::from_utf8_lossy(&frame)
                .replace(" COMPRESS=DEFLATE", "")
                .into_bytes();
        }
        if to.lock().unwrap().write_all(&frame).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.lock().unwrap().shutdown(Shutdown::Both);
}

fn observe(line: &[u8], state: &Mutex<Folder>) {
    let text = String::from_utf8_lossy(line);
    let words: Vec<&str> = text.split_whitespace().collect();
    if let ["*", n, "EXISTS"] = words.as_slice()
        && let Ok(n) = n.parse()
    {
        state.lock().unwrap().exists = n;
    }
    if let Some(rest) = text.split_once("[UIDNEXT ").map(|(_, r)| r)
        && let Some(n) = rest.split(']').next().and_then(|n| n.parse().ok())
    {
        state.lock().unwrap().uidnext = n;
    }
}

/// Commands from the client, line by line; a command's first line (when it carries no
/// literal) may be answered here instead of reaching the server.
fn client_to_server(
    from: TcpStream,
    mut to: TcpStream,
    client: Arc<Mutex<TcpStream>>,
    state: Arc<Mutex<Folder>>,
    rules: &Rules,
    seen: &Seen,
    throttle_left: &AtomicUsize,
) {
    let mut reader = BufReader::new(from.try_clone().unwrap());
    // After a line announcing a literal, the next line continues the same command.
    let mut continuing = false;
    // The folder the client selected, for the Gmail semantics.
    let mut selected: Option<String> = None;
    let port = to.peer_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let literal = literal_len(&line);
        if !continuing
            && literal.is_none()
            && let Some(answer) = script(&line, rules, seen, throttle_left, &state)
        {
            if client.lock().unwrap().write_all(answer.as_bytes()).is_err() {
                break;
            }
            continue;
        }
        // A line of one word is a SASL response or IDLE's DONE, not a command (and is
        // not kept: it may carry a credential).
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if !continuing && text.contains(' ') {
            seen.commands.lock().unwrap().push(text);
        }
        if rules.gmail_labels && !continuing && literal.is_none() {
            gmail_labels(&line, &mut selected, port);
        }
        let line = match rules.identity {
            Some(identity) if !continuing && literal.is_none() => {
                ask_identity(&line, identity).unwrap_or(line)
            }
            _ => line,
        };
        if to.write_all(&line).is_err() {
            break;
        }
        continuing = literal.is_some();
        if let Some(n) = literal {
            // Copied as it comes: a synchronizing literal follows the server's `+`.
            let mut left = n;
            let mut buf = [0u8; 16 * 1024];
            while left > 0 {
                let want = left.min(buf.len());
                if reader.read_exact(&mut buf[..want]).is_err()
                    || to.write_all(&buf[..want]).is_err()
                {
                    left = usize::MAX;
                    break;
                }
                left -= want;
            }
            if left == usize::MAX {
                break;
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// The first argument after a command's verb: a quoted string or an atom.
fn mailbox_after(text: &str, verb: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let at = upper.find(&format!(" {verb} "))? + verb.len() + 2;
    let rest = &text[at..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        None
    } else {
        rest.split_whitespace().next().map(str::to_owned)
    }
}

/// The UIDs an explicit set names (`3,5:7`); `*` names nothing here.
fn uids_of(set: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a.min(b)..=a.max(b));
                }
            }
            None => out.extend(part.parse::<u32>()),
        }
    }
    out
}

/// Gmail's per-message flags and its Trash, for one client command line in `selected`:
/// done by a session of the layer's own before the command reaches Dovecot.
fn gmail_labels(line: &[u8], selected: &mut Option<String>, port: u16) {
    let text = String::from_utf8_lossy(line).trim_end().to_owned();
    let upper = text.to_ascii_uppercase();
    for verb in ["SELECT", "EXAMINE"] {
        if let Some(name) = mailbox_after(&text, verb) {
            *selected = Some(name);
            return;
        }
    }
    let Some(folder) = selected.clone() else {
        return;
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 4 || !words[1].eq_ignore_ascii_case("UID") {
        return;
    }
    let uids = uids_of(words[3]);
    if uids.is_empty() {
        return;
    }
    let verb = words[2].to_ascii_uppercase();
    let mut sidecar = match super::imap_client::ImapClient::login(port, "alice", DEFAULT_PASSWORD) {
        Ok(c) => c,
        Err(_) => return,
    };
    let Ok(here) = sidecar.fetch_all(&folder) else {
        return;
    };
    let ids: Vec<String> = here
        .iter()
        .filter(|f| uids.contains(&f.uid) && !f.message_id.is_empty())
        .map(|f| f.message_id.clone())
        .collect();
    let folders = sidecar.list_folders().unwrap_or_default();
    let others = folders.iter().filter(|f| **f != folder);
    if verb == "STORE" && (upper.contains("+FLAGS") || upper.contains("-FLAGS")) {
        let sign = if upper.contains("+FLAGS") { '+' } else { '-' };
        let flags: Vec<&str> = text
            .rsplit_once('(')
            .map(|(_, f)| f.trim_end_matches(')'))
            .unwrap_or("")
            .split_whitespace()
            .filter(|f| !f.eq_ignore_ascii_case("\\Deleted"))
            .collect();
        if flags.is_empty() {
            return;
        }
        for other in others {
            let Ok(rows) = sidecar.fetch_all(other) else {
                continue;
            };
            let same: Vec<String> = rows
                .iter()
                .filter(|r| ids.contains(&r.message_id))
                .map(|r| r.uid.to_string())
                .collect();
            if same.is_empty() || sidecar.select(other, false).is_err() {
                continue;
            }
            let _ = sidecar.command(&format!(
                "UID STORE {} {sign}FLAGS.SILENT ({})",
                same.join(","),
                flags.join(" ")
            ));
        }
    } else if (verb == "MOVE" || verb == "COPY")
        && mailbox_after(&text, words[3]).is_some_and(|to| to == "[Gmail]/Trash")
    {
        for other in others.filter(|f| *f != "[Gmail]/Trash") {
            let Ok(rows) = sidecar.fetch_all(other) else {
                continue;
            };
            let same: Vec<String> = rows
                .iter()
                .filter(|r| ids.contains(&r.message_id))
                .map(|r| r.uid.to_string())
                .collect();
            if same.is_empty() || sidecar.select(other, false).is_err() {
                continue;
            }
            let set = same.join(",");
            let _ = sidecar.command(&format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"));
            let _ = sidecar.command(&format!("UID EXPUNGE {set}"));
        }
    }
    sidecar.logout();
}

/// The answer this layer gives instead of the server, if any.
fn script(
    line: &[u8],
    rules: &Rules,
    seen: &Seen,
    throttle_left: &AtomicUsize,
    state: &Mutex<Folder>,
) -> Option<String> {
    let text = String::from_utf8_lossy(line);
    let mut words: VecDeque<&str> = text.split_whitespace().collect();
    let tag = words.pop_front()?;
    let mut verb = words.pop_front()?.to_ascii_uppercase();
    let uid = verb == "UID";
    if uid {
        verb = format!("UID {}", words.pop_front()?.to_ascii_uppercase());
    }
    if let Some(t) = &rules.throttle
        && verb == t.verb
        && throttle_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        seen.throttled.fetch_add(1, Ordering::SeqCst);
        return Some(format!(
            "{tag} NO Request is throttled. Suggested Backoff Time: {} milliseconds\r\n",
            t.backoff_ms
        ));
    }
    if rules.stale_list
        && verb == "LIST"
        && matches!(words.make_contiguous(), ["\"\"", "*" | "\"*\""])
    {
        let mut st = state.lock().unwrap();
        match &st.list_frozen {
            Some(lines) => {
                return Some(format!(
                    "{}{tag} OK List completed (scripted: the first answer again).\r\n",
                    String::from_utf8_lossy(lines)
                ));
            }
            None => st.list_recording = true,
        }
    }
    if rules.over_limit && verb == "UID FETCH" && text.contains("BODY.PEEK[]") {
        seen.over_limit.fetch_add(1, Ordering::SeqCst);
        return Some(format!(
            "{tag} NO [ALERT] Account exceeded command or bandwidth limits. (Failure)\r\n"
        ));
    }
    let limit = rules.message_limit?;
    let bare = verb.trim_start_matches("UID ");
    if !["FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE"].contains(&bare) {
        return None;
    }
    let folder = state.lock().unwrap();
    let set = if bare == "SEARCH" {
        // The set a `UID <set>` (or leading sequence-set) criterion names; else the
        // whole folder is searched.
        let words: Vec<&str> = words.iter().copied().collect();
        match words.as_slice() {
            [w, set, ..] if w.eq_ignore_ascii_case("UID") => Some(*set),
            [set, ..] if is_set(set) => Some(*set),
            _ => None,
        }
    } else {
        words.front().copied()
    };
    let count = match set {
        Some(set) => set_size(set, uid, &folder),
        None if bare == "EXPUNGE" => return None,
        None => folder.exists,
    };
    seen.set_commands.fetch_add(1, Ordering::SeqCst);
    seen.largest_set.fetch_max(count, Ordering::SeqCst);
    if count > limit {
        seen.limit_refusals.fetch_add(1, Ordering::SeqCst);
        return Some(format!(
            "{tag} NO [LIMIT] {verb} would process {count} messages, more than {limit}\r\n"
        ));
    }
    None
}

fn is_set(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b":,*".contains(&b))
}

/// How many messages a set can name: explicit members and ranges as written; `*` as the
/// folder's last message (UIDNEXT - 1 for UIDs); never more than the folder holds.
fn set_size(set: &str, uid: bool, folder: &Folder) -> usize {
    let star = if uid {
        folder.uidnext.saturating_sub(1).max(1)
    } else {
        folder.exists.max(1)
    };
    let value = |s: &str| {
        if s == "*" {
            star
        } else {
            s.parse().unwrap_or(0)
        }
    };
    let total: usize = set
        .split(',')
        .map(|part| match part.split_once(':') {
            // `n:*` with n past the last message names only the last one.
            Some((a, "*")) | Some(("*", a)) if value(a) >= star => 1,
            Some((a, b)) => {
                let (a, b) = (value(a), value(b));
                a.max(b) - a.min(b) + 1
            }
            None => 1,
        })
        .sum();
    if folder.exists > 0 {
        total.min(folder.exists)
    } else {
        total
    }
}

/// `n` messages (`<prefix>N@bulk`) written straight into alice's server INBOX, then
/// indexed once: one `doveadm save` each would take minutes for a thousand.
pub fn seed_bulk(dovecot: &Dovecot, prefix: &str, n: usize) {
    use std::os::unix::fs::MetadataExt;
    dovecot.doveadm(
        &["mailbox", "status", "-u", "alice", "messages", "INBOX"],
        None,
    );
    let maildir = dovecot.root().join("mail/alice/Maildir");
    let meta = std::fs::metadata(&maildir).unwrap();
    for i in 0..n {
        let name = format!("1790000000.B{prefix}N{i}.localhost");
        let tmp = maildir.join("tmp").join(&name);
        let body = super::dovecot::message(
            &format!("{prefix} {i}"),
            &format!("{prefix}{i}@bulk"),
            &format!("bulk {prefix} {i}"),
        );
        std::fs::write(&tmp, body).unwrap();
        std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid())).unwrap();
        std::fs::rename(&tmp, maildir.join("new").join(&name)).unwrap();
    }
    dovecot.doveadm(
        &["mailbox", "status", "-u", "alice", "messages", "INBOX"],
        None,
    );
}
