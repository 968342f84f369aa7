//! A small blocking IMAP client for tests: "another mail client" against a real server
//! that has no admin tool like `doveadm` (the server matrix, support/servers.rs). Plain
//! TCP to loopback, LOGIN, one command at a time; literals are read and sent whole. It
//! shares no code with syncmail's own IMAP layer, so it can judge what syncmail did.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;

/// One answer: the untagged responses (literals inlined) and the tagged status line
/// without its tag, e.g. `OK [APPENDUID 1 2] Completed`.
#[derive(Debug)]
pub struct Reply {
    pub untagged: Vec<Vec<u8>>,
    pub status: String,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        self.status.starts_with("OK")
    }

    /// Everything the server said, for failure messages.
    pub fn transcript(&self) -> String {
        let mut out = String::new();
        for line in &self.untagged {
            out.push_str(&String::from_utf8_lossy(line));
        }
        out.push_str(&self.status);
        out
    }
}

/// One message as a listing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    /// Sorted, space separated, without `\Recent`.
    pub flags: String,
    /// The Message-ID header's value, as sent (`<id@host>`), or empty.
    pub message_id: String,
    pub size: u64,
}

pub struct ImapClient {
    reader: BufReader<TcpStream>,
    next_tag: u32,
    pub greeting: String,
}

impl ImapClient {
    pub fn connect(port: u16) -> io::Result<ImapClient> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut client = ImapClient {
            reader: BufReader::new(stream),
            next_tag: 1,
            greeting: String::new(),
        };
        client.greeting = String::from_utf8_lossy(&client.read_response()?).into_owned();
        if !client.greeting.starts_with("* OK") {
            return Err(io::Error::other(format!(
                "unexpected greeting: {}",
                client.greeting
            )));
        }
        Ok(client)
    }

    /// Connect and LOGIN; the error says what the server answered.
    pub fn login(port: u16, user: &str, password: &str) -> Result<ImapClient, String> {
        let mut client = ImapClient::connect(port).map_err(|e| format!("connect: {e}"))?;
        let reply = client
            .command(&format!("LOGIN {} {}", quote(user), quote(password)))
            .map_err(|e| format!("LOGIN: {e}"))?;
        if !reply.is_ok() {
            return Err(format!("LOGIN refused: {}", reply.transcript()));
        }
        Ok(client)
    }

    /// One response: a line, and every literal it announces with the lines after them.
    fn read_response(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            let n = self.reader.read_until(b'\n', &mut out)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "server closed the connection after: {}",
                        String::from_utf8_lossy(&out)
                    ),
                ));
            }
            match literal_length(&out[start..]) {
                Some(len) => {
                    let mut literal = vec![0; len];
                    self.reader.read_exact(&mut literal)?;
                    out.extend_from_slice(&literal);
                }
                None => return Ok(out),
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    fn tag(&mut self) -> String {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Read until the tagged answer to `tag`.
    fn finish(&mut self, tag: &str) -> io::Result<Reply> {
        let mut untagged = Vec::new();
        loop {
            let response = self.read_response()?;
            if let Some(rest) = response.strip_prefix(format!("{tag} ").as_bytes()) {
                let status = String::from_utf8_lossy(rest).trim_end().to_owned();
                return Ok(Reply { untagged, status });
            }
            untagged.push(response);
        }
    }

    /// Send one command line (no literals) and read its answer.
    pub fn command(&mut self, command: &str) -> io::Result<Reply> {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n").as_bytes())?;
        self.finish(&tag)
    }

    /// The same; panics with the server's answer unless it is OK.
    pub fn command_ok(&mut self, command: &str) -> Reply {
        let reply = self
            .command(command)
            .unwrap_or_else(|e| panic!("{command}: {e}"));
        assert!(reply.is_ok(), "{command}: {}", reply.transcript());
        reply
    }

    /// APPEND `message` exactly as given (a synchronizing literal), with `flags` such as
    /// `\Seen \Flagged` (may be empty).
    pub fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> io::Result<Reply> {
        let tag = self.tag();
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!("({flags}) ")
        };
        self.send(
            format!(
                "{tag} APPEND {} {flags}{{{}}}\r\n",
                mailbox_arg(mailbox),
                message.len()
            )
            .as_bytes(),
        )?;
        let response = self.read_response()?;
        if !response.starts_with(b"+") {
            // Refused before the literal: this is the tagged answer (or an untagged one).
            let mut reply = Reply {
                untagged: Vec::new(),
                status: String::new(),
            };
            if let Some(rest) = response.strip_prefix(format!("{tag} ").as_bytes()) {
                reply.status = String::from_utf8_lossy(rest).trim_end().to_owned();
                return Ok(reply);
            }
            let mut rest = self.finish(&tag)?;
            rest.untagged.insert(0, response);
            return Ok(rest);
        }
        self.send(message)?;
        self.send(b"\r\n")?;
        self.finish(&tag)
    }

    /// SELECT (or EXAMINE when `read_only`) a mailbox; returns its EXISTS count.
    pub fn select(&mut self, mailbox: &str, read_only: bool) -> Result<u32, String> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let reply = self
            .command(&format!("{verb} {}", mailbox_arg(mailbox)))
            .map_err(|e| e.to_string())?;
        if !reply.is_ok() {
            return Err(format!("{verb} {mailbox}: {}", reply.transcript()));
        }
        Ok(reply
            .untagged
            .iter()
            .filter_map(|line| {
                let text = String::from_utf8_lossy(line);
                let mut words = text.split_whitespace();
                let (star, n, what) = (words.next()?, words.next()?, words.next()?);
                (star == "*" && what.eq_ignore_ascii_case("EXISTS"))
                    .then(|| n.parse().ok())
                    .flatten()
            })
            .next_back()
            .unwrap_or(0))
    }

    /// UID, flags, Message-ID and size of every message in `mailbox`, sorted by UID.
    /// Uses EXAMINE and sequence numbers (`FETCH 1:n`), which every server answers; no
    /// `UID n:*`, no SEARCH.
    pub fn fetch_all(&mut self, mailbox: &str) -> Result<Vec<Fetched>, String> {
        let exists = self.select(mailbox, true)?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let reply = self
            .command(&format!(
                "FETCH 1:{exists} (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
            ))
            .map_err(|e| e.to_string())?;
        if !reply.is_ok() {
            return Err(format!("FETCH in {mailbox}: {}", reply.transcript()));
        }
        let mut rows: Vec<Fetched> = reply
            .untagged
            .iter()
            .filter_map(|r| parse_fetch(r))
            .collect();
        rows.sort_by_key(|r| r.uid);
        Ok(rows)
    }

    /// The full message with this UID (`UID FETCH n BODY.PEEK[]`).
    pub fn fetch_body(&mut self, mailbox: &str, uid: u32) -> Result<Vec<u8>, String> {
        self.select(mailbox, true)?;
        let reply = self
            .command(&format!("UID FETCH {uid} (BODY.PEEK[])"))
            .map_err(|e| e.to_string())?;
        for response in &reply.untagged {
            if let Some(start) = find(response, b"BODY[] {") {
                let after = &response[start + 8..];
                let close = find(after, b"}\r\n").ok_or("malformed literal")?;
                let len: usize = std::str::from_utf8(&after[..close])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or("malformed literal length")?;
                let body = &after[close + 3..];
                return Ok(body[..len.min(body.len())].to_vec());
            }
        }
        Err(format!(
            "no body for UID {uid} in {mailbox}: {}",
            reply.transcript()
        ))
    }

    /// `LIST "" "*"`: every selectable folder, decoded from modified UTF-7, sorted.
    pub fn list_folders(&mut self) -> Result<Vec<String>, String> {
        let reply = self.command("LIST \"\" \"*\"").map_err(|e| e.to_string())?;
        if !reply.is_ok() {
            return Err(format!("LIST: {}", reply.transcript()));
        }
        let mut names = Vec::new();
        for response in &reply.untagged {
            let Some(rest) = response.strip_prefix(b"* LIST (") else {
                continue;
            };
            let close = rest.iter().position(|&b| b == b')').ok_or("bad LIST")?;
            let attributes = String::from_utf8_lossy(&rest[..close]).to_ascii_lowercase();
            if attributes.contains("\\noselect") || attributes.contains("\\nonexistent") {
                continue;
            }
            // `) "." name` or `) NIL name`
            let rest = &rest[close + 1..];
            let rest = rest.strip_prefix(b" ").ok_or("bad LIST")?;
            let rest = if let Some(r) = rest.strip_prefix(b"NIL ") {
                r
            } else {
                let end = rest[1..]
                    .iter()
                    .position(|&b| b == b'"')
                    .ok_or("bad LIST delimiter")?;
                rest.get(end + 3..).ok_or("bad LIST")?
            };
            let rest = rest
                .strip_suffix(b"\r\n")
                .or(rest.strip_suffix(b"\n"))
                .unwrap_or(rest);
            let wire = if let Some(quoted) = rest.strip_prefix(b"\"") {
                let inner = quoted.strip_suffix(b"\"").ok_or("bad quoted name")?;
                String::from_utf8_lossy(inner)
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\")
            } else if rest.starts_with(b"{") {
                let close = find(rest, b"}\r\n").ok_or("bad literal name")?;
                String::from_utf8_lossy(&rest[close + 3..]).into_owned()
            } else {
                String::from_utf8_lossy(rest).into_owned()
            };
            names.push(utf7_decode(&wire).map_err(|e| format!("{wire}: {e}"))?);
        }
        names.sort();
        Ok(names)
    }

    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }
}

/// `{123}` (or `{123+}`) at the end of a line: the literal's length.
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n").or(line.strip_suffix(b"\n"))?;
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// A number after `key ` in a FETCH response.
fn number_after(response: &[u8], key: &[u8]) -> Option<u64> {
    let start = find_ignore_case(response, key)? + key.len();
    let digits: Vec<u8> = response[start..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn parse_fetch(response: &[u8]) -> Option<Fetched> {
    find_ignore_case(response, b" FETCH (")?;
    let uid = number_after(response, b"UID ")? as u32;
    let size = number_after(response, b"RFC822.SIZE ").unwrap_or(0);
    let flags_at = find_ignore_case(response, b"FLAGS (")? + 7;
    let flags_end = flags_at + response[flags_at..].iter().position(|&b| b == b')')?;
    let mut flags: Vec<String> = String::from_utf8_lossy(&response[flags_at..flags_end])
        .split_whitespace()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .map(str::to_owned)
        .collect();
    flags.sort();
    let message_id = match find_ignore_case(response, b"\nMessage-ID:") {
        Some(at) => {
            let value = &response[at + 12..];
            let end = find(value, b"\n").unwrap_or(value.len());
            String::from_utf8_lossy(&value[..end]).trim().to_owned()
        }
        None => String::new(),
    };
    Some(Fetched {
        uid,
        flags: flags.join(" "),
        message_id,
        size,
    })
}

/// A quoted string.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A mailbox name as an argument: modified UTF-7 (RFC 3501 §5.1.3), quoted.
pub fn mailbox_arg(name: &str) -> String {
    quote(&utf7_encode(name))
}

/// RFC 3501 modified UTF-7, written here independently of syncmail's own.
pub fn utf7_encode(name: &str) -> String {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::IMAP_MUTF7,
        base64::engine::general_purpose::NO_PAD,
    );
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&engine.encode(bytes));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if c == '&' {
            flush(&mut pending, &mut out);
            out.push_str("&-");
        } else if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// The reverse of [`utf7_encode`].
pub fn utf7_decode(wire: &str) -> Result<String, String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::IMAP_MUTF7,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let mut out = String::new();
    let mut rest = wire;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('-').ok_or("unterminated shift")?;
        if end == 0 {
            out.push('&');
        } else {
            let bytes = engine
                .decode(&after[..end])
                .map_err(|e| format!("bad base64: {e}"))?;
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            out.push_str(&String::from_utf16(&units).map_err(|e| e.to_string())?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn utf7_encodes_as_rfc_3501_says() {
    assert_eq!(utf7_encode("Entwürfe"), "Entw&APw-rfe");
    assert_eq!(utf7_encode("A&B"), "A&-B");
    assert_eq!(
        utf7_encode("~peter/mail/台北/日本語"),
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    );
    for name in ["Entwürfe", "A&B", "~peter/mail/台北/日本語", "plain"] {
        assert_eq!(utf7_decode(&utf7_encode(name)).unwrap(), name);
    }
}

#[test]
fn fetch_responses_parse_in_any_item_order() {
    let courier = b"* 1 FETCH (UID 7 FLAGS (\\Seen \\Recent) RFC822.SIZE 37 BODY[HEADER.FIELDS (\"MESSAGE-ID\")] {21}\r\nMessage-ID: <a@b>\r\n\r\n)\r\n";
    let got = parse_fetch(courier).unwrap();
    assert_eq!(
        got,
        Fetched {
            uid: 7,
            flags: "\\Seen".into(),
            message_id: "<a@b>".into(),
            size: 37
        }
    );
    let other = b"* 2 FETCH (FLAGS () BODY[HEADER.FIELDS (MESSAGE-ID)] {21}\r\nMESSAGE-ID: <c@b>\r\n\r\n UID 9 RFC822.SIZE 40)\r\n";
    let got = parse_fetch(other).unwrap();
    assert_eq!((got.uid, got.message_id.as_str()), (9, "<c@b>"));
    assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
    assert_eq!(literal_length(b"* OK no literal\r\n"), None);
}
