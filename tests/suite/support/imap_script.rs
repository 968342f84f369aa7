//! A tiny in-memory IMAP server on loopback that speaks just enough for a whole
//! `syncmail sync` pass (LOGIN, CAPABILITY, LIST, SELECT, UID FETCH/SEARCH/STORE/EXPUNGE,
//! APPEND, CREATE, NOOP, LOGOUT), records every byte it receives, and misbehaves on cue:
//! the transcripts a real server will not produce (rules 17, 18, 19).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;

/// What the server does wrong. The default is nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Misbehaviour {
    #[default]
    None,
    /// The greeting and CAPABILITY offer no STARTTLS.
    StarttlsNotOffered,
    /// STARTTLS is offered, then answered NO.
    StarttlsRefused,
    /// The greeting is `* PREAUTH`.
    Preauth,
    /// Forged responses follow "OK begin TLS" before any handshake.
    StarttlsInjection,
    /// The greeting is a 100 MB line without an end.
    EndlessGreeting,
    /// The greeting carries no capabilities, and CAPABILITY is answered by untagged
    /// lines that never end.
    CapabilityFlood,
    /// LIST reports these extra folders (modified UTF-7, as sent).
    ListNames(Vec<String>),
    /// A FETCH of message bodies announces a literal of 4294967295 bytes.
    HugeLiteral,
    /// A FETCH of message bodies is answered with a 100 MB line and no CRLF.
    EndlessLine,
    /// APPENDUID names this UIDVALIDITY instead of the folder's.
    AppendUidValidity(u32),
    /// APPENDUID names this UID set instead of the new message's UID.
    AppendUidSet(&'static str),
    /// A FETCH of message bodies also returns this UID, which nobody asked for.
    UnaskedFetch(u32),
    /// Greet, then never answer anything.
    SilentAfterGreeting,
    /// Answer until the first command with this verb (e.g. "SELECT"), then go silent.
    SilentAt(&'static str),
}

/// One message on the server.
#[derive(Clone, Debug)]
pub struct Message {
    pub flags: Vec<String>,
    pub body: Vec<u8>,
}

/// One folder on the server.
#[derive(Clone, Debug)]
pub struct Folder {
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub messages: BTreeMap<u32, Message>,
}

impl Folder {
    fn new(uidvalidity: u32) -> Folder {
        Folder {
            uidvalidity,
            uidnext: 1,
            messages: BTreeMap::new(),
        }
    }
}

struct Shared {
    folders: BTreeMap<String, Folder>,
    misbehaviour: Misbehaviour,
    received: Vec<u8>,
    delimiter: char,
}

/// The running server. It stops when dropped.
pub struct ScriptedImap {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The longest a connection waits for anything before giving up (so no test hangs).
const IDLE_LIMIT: Duration = Duration::from_secs(60);

impl ScriptedImap {
    /// A server with an empty INBOX and hierarchy delimiter `/`.
    pub fn start(misbehaviour: Misbehaviour) -> ScriptedImap {
        ScriptedImap::start_with('/', misbehaviour)
    }

    pub fn start_with(delimiter: char, misbehaviour: Misbehaviour) -> ScriptedImap {
        let mut folders = BTreeMap::new();
        folders.insert("INBOX".to_owned(), Folder::new(7));
        let shared = Arc::new(Mutex::new(Shared {
            folders,
            misbehaviour,
            received: Vec::new(),
            delimiter,
        }));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((sock, _)) = accepted else { return };
                            tokio::spawn(serve(sock, Arc::clone(&state)));
                        }
                        _ = &mut stopped => return,
                    }
                }
            });
        });
        ScriptedImap {
            port,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Behave differently from the next command on.
    pub fn set_misbehaviour(&self, m: Misbehaviour) {
        self.shared.lock().unwrap().misbehaviour = m;
    }

    /// Put a message into a folder (created if missing); returns its UID.
    pub fn add(&self, folder: &str, flags: &[&str], body: &[u8]) -> u32 {
        let mut s = self.shared.lock().unwrap();
        let f = s
            .folders
            .entry(folder.to_owned())
            .or_insert_with(|| Folder::new(11));
        let uid = f.uidnext;
        f.uidnext += 1;
        f.messages.insert(
            uid,
            Message {
                flags: flags.iter().map(|f| f.to_string()).collect(),
                body: body.to_vec(),
            },
        );
        uid
    }

    pub fn folder(&self, name: &str) -> Option<Folder> {
        self.shared.lock().unwrap().folders.get(name).cloned()
    }

    /// Every byte any client sent so far.
    pub fn received(&self) -> Vec<u8> {
        self.shared.lock().unwrap().received.clone()
    }

    /// The received bytes as text, for messages and `contains` checks.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.received()).into_owned()
    }
}

impl Drop for ScriptedImap {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Connections still open are dropped with the runtime.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn misbehaviour(shared: &Mutex<Shared>) -> Misbehaviour {
    shared.lock().unwrap().misbehaviour.clone()
}

async fn serve(sock: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) {
    let _ = tokio::time::timeout(IDLE_LIMIT, session(sock, shared)).await;
}

async fn session(sock: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) -> Option<()> {
    let (read, mut write) = sock.into_split();
    let mut read = BufReader::new(read);
    let mode = misbehaviour(&shared);
    let starttls_cap = match mode {
        Misbehaviour::StarttlsNotOffered => "",
        _ => " STARTTLS",
    };
    let greeting = match mode {
        Misbehaviour::Preauth => "* PREAUTH [CAPABILITY IMAP4rev1] logged in already\r\n".into(),
        Misbehaviour::CapabilityFlood => "* OK scripted ready\r\n".into(),
        _ => format!("* OK [CAPABILITY IMAP4rev1 UIDPLUS{starttls_cap}] scripted ready\r\n"),
    };
    if mode == Misbehaviour::EndlessGreeting {
        write.write_all(b"* OK ").await.ok()?;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..(100 * 1024 * 1024 / chunk.len()) {
            write.write_all(&chunk).await.ok()?;
        }
        tokio::time::sleep(IDLE_LIMIT).await;
        return None;
    }
    write.write_all(greeting.as_bytes()).await.ok()?;
    let mut selected: Option<String> = None;
    loop {
        let mut line = Vec::new();
        if read.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        shared.lock().unwrap().received.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let (tag, rest) = text.split_once(' ').unwrap_or((&text, ""));
        let tag = tag.to_owned();
        let mut words = rest.split(' ');
        let mut verb = words.next().unwrap_or("").to_ascii_uppercase();
        if verb == "UID" {
            verb = format!("UID {}", words.next().unwrap_or("").to_ascii_uppercase());
        }
        let args = rest[verb.len().min(rest.len())..].trim_start().to_owned();
        let mode = misbehaviour(&shared);
        let silent = match &mode {
            Misbehaviour::SilentAfterGreeting => true,
            Misbehaviour::SilentAt(v) => verb.eq_ignore_ascii_case(v),
            _ => false,
        };
        if silent {
            tokio::time::sleep(IDLE_LIMIT).await;
            return None;
        }
        let reply: Vec<u8> = match verb.as_str() {
            "CAPABILITY" if mode == Misbehaviour::CapabilityFlood => {
                let line = format!("* CAPABILITY IMAP4rev1 {}\r\n", "X-FLOOD ".repeat(1000));
                // 100 MB of capabilities, unless the client hangs up first.
                for _ in 0..(100_000_000 / line.len()) {
                    write.write_all(line.as_bytes()).await.ok()?;
                }
                tokio::time::sleep(IDLE_LIMIT).await;
                return None;
            }
            "CAPABILITY" => {
                format!("* CAPABILITY IMAP4rev1 UIDPLUS{starttls_cap}\r\n{tag} OK done\r\n").into()
            }
            "STARTTLS" => match mode {
                Misbehaviour::StarttlsRefused => format!("{tag} NO not today\r\n").into(),
                Misbehaviour::StarttlsInjection => {
                    format!("{tag} OK begin TLS\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n").into()
                }
                // No TLS here: a test that gets this far has already failed.
                _ => format!("{tag} BAD no TLS in this script\r\n").into(),
            },
            "LOGIN" | "AUTHENTICATE" => format!("{tag} OK logged in\r\n").into(),
            "NOOP" | "ENABLE" => format!("{tag} OK done\r\n").into(),
            "LOGOUT" => {
                let _ = write
                    .write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes())
                    .await;
                return Some(());
            }
            "LIST" => list(&shared, &tag, &mode).into(),
            "CREATE" => {
                let name = unquote(&args);
                shared
                    .lock()
                    .unwrap()
                    .folders
                    .entry(name)
                    .or_insert_with(|| Folder::new(13));
                format!("{tag} OK created\r\n").into()
            }
            "SELECT" | "EXAMINE" => {
                let name = unquote(args.split(" (").next().unwrap_or(&args));
                let s = shared.lock().unwrap();
                match s.folders.get(&name) {
                    Some(f) => {
                        selected = Some(name);
                        format!(
                            "* {} EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n\
                             * OK [UIDVALIDITY {}] v\r\n* OK [UIDNEXT {}] n\r\n{tag} OK [READ-WRITE] selected\r\n",
                            f.messages.len(),
                            f.uidvalidity,
                            f.uidnext
                        )
                        .into()
                    }
                    None => format!("{tag} NO no such folder\r\n").into(),
                }
            }
            "APPEND" => {
                let name = unquote(&args);
                let size: usize = args
                    .rsplit_once('{')
                    .and_then(|(_, n)| n.trim_end_matches(['}', '+']).parse().ok())?;
                let flags: Vec<String> = args
                    .split_once('(')
                    .and_then(|(_, r)| r.split_once(')'))
                    .map(|(f, _)| f.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default();
                write.write_all(b"+ go ahead\r\n").await.ok()?;
                let mut body = vec![0; size + 2];
                read.read_exact(&mut body).await.ok()?;
                shared.lock().unwrap().received.extend_from_slice(&body);
                body.truncate(size);
                let mut s = shared.lock().unwrap();
                let answer_uv = match &s.misbehaviour {
                    Misbehaviour::AppendUidValidity(uv) => Some(*uv),
                    _ => None,
                };
                let answer_set = match &s.misbehaviour {
                    Misbehaviour::AppendUidSet(set) => Some(*set),
                    _ => None,
                };
                match s.folders.get_mut(&name) {
                    Some(f) => {
                        let uid = f.uidnext;
                        f.uidnext += 1;
                        f.messages.insert(uid, Message { flags, body });
                        let uv = answer_uv.unwrap_or(f.uidvalidity);
                        let set = answer_set.map_or(uid.to_string(), str::to_owned);
                        format!("{tag} OK [APPENDUID {uv} {set}] appended\r\n").into()
                    }
                    None => format!("{tag} NO [TRYCREATE] no such folder\r\n").into(),
                }
            }
            "UID FETCH" => match &selected {
                Some(folder) => {
                    if fetch(&shared, folder, &tag, &args, &mode, &mut write)
                        .await
                        .is_none()
                    {
                        // The script chose to stall or hang up.
                        tokio::time::sleep(IDLE_LIMIT).await;
                        return None;
                    }
                    Vec::new()
                }
                None => format!("{tag} BAD nothing selected\r\n").into(),
            },
            "UID SEARCH" => match &selected {
                Some(folder) => search(&shared, folder, &tag, &args).into(),
                None => format!("{tag} BAD nothing selected\r\n").into(),
            },
            "UID STORE" => match &selected {
                Some(folder) => store(&shared, folder, &tag, &args).into(),
                None => format!("{tag} BAD nothing selected\r\n").into(),
            },
            "UID EXPUNGE" => match &selected {
                Some(folder) => {
                    let mut s = shared.lock().unwrap();
                    let f = s.folders.get_mut(folder)?;
                    let set = uid_set(args.split(' ').next().unwrap_or(""), f);
                    let mut out = String::new();
                    for uid in set {
                        if f.messages
                            .get(&uid)
                            .is_some_and(|m| has(&m.flags, "\\Deleted"))
                        {
                            let seq = f.messages.keys().position(|u| *u == uid)? + 1;
                            f.messages.remove(&uid);
                            out.push_str(&format!("* {seq} EXPUNGE\r\n"));
                        }
                    }
                    format!("{out}{tag} OK expunged\r\n").into()
                }
                None => format!("{tag} BAD nothing selected\r\n").into(),
            },
            _ => format!("{tag} BAD not in this script\r\n").into(),
        };
        if !reply.is_empty() {
            write.write_all(&reply).await.ok()?;
        }
    }
}

fn has(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// The first quoted string or atom of `args`, unescaped.
fn unquote(args: &str) -> String {
    let args = args.trim();
    if let Some(rest) = args.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => break,
                c => out.push(c),
            }
        }
        out
    } else {
        args.split(' ').next().unwrap_or("").to_owned()
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list(shared: &Mutex<Shared>, tag: &str, mode: &Misbehaviour) -> String {
    let s = shared.lock().unwrap();
    let d = s.delimiter;
    let mut out = String::new();
    for name in s.folders.keys() {
        out.push_str(&format!("* LIST () \"{d}\" {}\r\n", quoted(name)));
    }
    if let Misbehaviour::ListNames(names) = mode {
        for name in names {
            out.push_str(&format!("* LIST () \"{d}\" {}\r\n", quoted(name)));
        }
    }
    out.push_str(&format!("{tag} OK listed\r\n"));
    out
}

/// The UIDs of a UID set (`1:*`, `3,5:7`) that exist in the folder.
fn uid_set(set: &str, f: &Folder) -> Vec<u32> {
    let max = f.messages.keys().next_back().copied().unwrap_or(0);
    let num = |s: &str| {
        if s == "*" {
            Some(max)
        } else {
            s.parse::<u32>().ok()
        }
    };
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = match part.split_once(':') {
            Some((a, b)) => (num(a), num(b)),
            None => (num(part), num(part)),
        };
        let (Some(a), Some(b)) = (a, b) else { continue };
        let (lo, hi) = (a.min(b), a.max(b));
        out.extend(f.messages.range(lo..=hi).map(|(u, _)| *u));
    }
    out.sort();
    out.dedup();
    out
}

fn message_id(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let header = text.split("\r\n\r\n").next().unwrap_or("");
    header.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("message-id")
            .then(|| value.trim().to_owned())
    })
}

fn header_fields_message_id(body: &[u8]) -> Vec<u8> {
    match message_id(body) {
        Some(id) => format!("Message-ID: {id}\r\n\r\n").into_bytes(),
        None => b"\r\n".to_vec(),
    }
}

async fn fetch(
    shared: &Mutex<Shared>,
    folder: &str,
    tag: &str,
    args: &str,
    mode: &Misbehaviour,
    write: &mut OwnedWriteHalf,
) -> Option<()> {
    let (set, items) = args.split_once(' ').unwrap_or((args, ""));
    let items = items.to_ascii_uppercase();
    let wants_body = items.contains("BODY.PEEK[]");
    if wants_body {
        match mode {
            Misbehaviour::HugeLiteral => {
                write
                    .write_all(b"* 1 FETCH (UID 1 FLAGS () BODY[] {4294967295}\r\nFrom: x\r\n")
                    .await
                    .ok()?;
                return None;
            }
            Misbehaviour::EndlessLine => {
                write
                    .write_all(b"* 1 FETCH (UID 1 FLAGS () BODY[] \"")
                    .await
                    .ok()?;
                let chunk = vec![b'a'; 64 * 1024];
                for _ in 0..(100 * 1024 * 1024 / chunk.len()) {
                    // The client hangs up once it has seen enough.
                    write.write_all(&chunk).await.ok()?;
                }
                return None;
            }
            _ => {}
        }
    }
    let mut responses: Vec<Vec<u8>> = Vec::new();
    {
        let s = shared.lock().unwrap();
        let f = s.folders.get(folder)?;
        let uids = uid_set(set, f);
        for uid in uids {
            let seq = f.messages.keys().position(|u| *u == uid)? + 1;
            let m = &f.messages[&uid];
            let mut r =
                format!("* {seq} FETCH (UID {uid} FLAGS ({})", m.flags.join(" ")).into_bytes();
            if items.contains("RFC822.SIZE") {
                r.extend_from_slice(format!(" RFC822.SIZE {}", m.body.len()).as_bytes());
            }
            if items.contains("INTERNALDATE") {
                r.extend_from_slice(b" INTERNALDATE \"21-Nov-2026 10:00:00 +0000\"");
            }
            if wants_body {
                r.extend_from_slice(format!(" BODY[] {{{}}}\r\n", m.body.len()).as_bytes());
                r.extend_from_slice(&m.body);
            } else if items.contains("HEADER.FIELDS") {
                let h = header_fields_message_id(&m.body);
                r.extend_from_slice(
                    format!(" BODY[HEADER.FIELDS (MESSAGE-ID)] {{{}}}\r\n", h.len()).as_bytes(),
                );
                r.extend_from_slice(&h);
            }
            r.extend_from_slice(b")\r\n");
            responses.push(r);
        }
        if let (true, Misbehaviour::UnaskedFetch(uid)) = (wants_body, mode) {
            let body = format!("Subject: unasked\r\n\r\nnobody asked for UID {uid}\r\n");
            responses.push(
                format!(
                    "* 99 FETCH (UID {uid} FLAGS () BODY[] {{{}}}\r\n{body})\r\n",
                    body.len()
                )
                .into_bytes(),
            );
        }
    }
    for r in responses {
        write.write_all(&r).await.ok()?;
    }
    write
        .write_all(format!("{tag} OK fetched\r\n").as_bytes())
        .await
        .ok()
}

fn search(shared: &Mutex<Shared>, folder: &str, tag: &str, args: &str) -> String {
    let s = shared.lock().unwrap();
    let Some(f) = s.folders.get(folder) else {
        return format!("{tag} NO gone\r\n");
    };
    let mut uids: Vec<u32> = f.messages.keys().copied().collect();
    let mut words = args.splitn(2, ' ');
    let first = words.next().unwrap_or("");
    let mut rest = words.next().unwrap_or("").to_owned();
    if first.eq_ignore_ascii_case("UID") {
        let (set, more) = rest.split_once(' ').unwrap_or((&rest, ""));
        uids = uid_set(set, f);
        rest = more.to_owned();
    }
    if let Some(wanted) = rest
        .to_ascii_uppercase()
        .find("HEADER MESSAGE-ID ")
        .map(|i| unquote(&rest[i + "HEADER MESSAGE-ID ".len()..]))
    {
        uids.retain(|u| message_id(&f.messages[u].body).as_deref() == Some(&wanted));
    }
    let list: Vec<String> = uids.iter().map(u32::to_string).collect();
    format!("* SEARCH {}\r\n{tag} OK searched\r\n", list.join(" "))
        .replace("SEARCH \r\n", "SEARCH\r\n")
}

fn store(shared: &Mutex<Shared>, folder: &str, tag: &str, args: &str) -> String {
    let mut s = shared.lock().unwrap();
    let Some(f) = s.folders.get_mut(folder) else {
        return format!("{tag} NO gone\r\n");
    };
    let (set, rest) = args.split_once(' ').unwrap_or((args, ""));
    let add = rest.starts_with('+');
    let flags: Vec<String> = rest
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(f, _)| f.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    for uid in uid_set(set, f) {
        let m = f.messages.get_mut(&uid).unwrap();
        for flag in &flags {
            m.flags.retain(|x| !x.eq_ignore_ascii_case(flag));
            if add {
                m.flags.push(flag.clone());
            }
        }
    }
    format!("{tag} OK stored\r\n")
}
