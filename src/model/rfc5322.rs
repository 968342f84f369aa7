//! What syncmail reads out of a message header and writes as a date: the one Message-ID
//! parser (RFC 5322 §3.6.4) and the date formats, so every layer agrees on both.

use std::fmt;
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A message's `Message-ID`, in its canonical form `<id-left@id-right>`: unfolded, with
/// the comments and white space around it dropped and the case of both parts kept.
/// Two copies of one message (server and Maildir, or two folders) carry equal ids, so
/// it re-pairs a folder after a UIDVALIDITY change, finds a lost APPEND, recognises
/// moves and matches edits in the unified inbox. Only [`MessageId::from_header`] makes
/// one from mail; the field is public for the state store and tests.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub String);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of a whole message (header block and body) with every CRLF made LF, so a
/// server's CRLF copy and a Maildir's LF copy of one message hash alike. Tells apart
/// messages without a Message-ID, or copies sharing one, when a first contact pairs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of a message, leaving out the `X-TUID` line mbsync adds to the files it
    /// writes (see [`tuid_line`]), so its copy hashes as the server's.
    pub fn of(message: &[u8]) -> ContentHash {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let (message, tail) = match tuid_line(message) {
            Some(line) => (&message[..line.start], &message[line.end..]),
            None => (message, &[][..]),
        };
        for part in [message, tail] {
            hash_lf(&mut ctx, part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        ContentHash(out)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0[..6]))
    }
}

/// Feed `part` to the hash with every CRLF made LF.
fn hash_lf(ctx: &mut ring::digest::Context, part: &[u8]) {
    let mut start = 0;
    for (i, _) in part.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        if i > start && part[i - 1] == b'\r' {
            ctx.update(&part[start..i - 1]);
            start = i;
        }
    }
    ctx.update(&part[start..]);
}

/// Where the `X-TUID: ` header line is in a message's header block, its line ending
/// included. mbsync writes one into every file it stores (a transaction id it uses to
/// find its uploads); the server's copy of a message mbsync downloaded lacks it.
pub fn tuid_line(message: &[u8]) -> Option<std::ops::Range<usize>> {
    let end = header_end(message);
    let mut at = 0;
    for line in message[..end].split_inclusive(|&b| b == b'\n') {
        if line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"x-tuid: ") {
            return Some(at..at + line.len());
        }
        at += line.len();
    }
    None
}

/// The size of a message with every bare LF counted as CRLF: what a server reports as
/// RFC822.SIZE for the copy of a Maildir file it stores (IMAP sends CRLF).
pub fn crlf_size(message: &[u8]) -> u64 {
    let mut size = message.len() as u64;
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            size += 1;
        }
        prev = b;
    }
    size
}

/// A message as it goes to a server: every bare LF made CRLF, existing CRLFs left alone
/// (rule 23: Cyrus refuses bare newlines, and IMAP's wire form is CRLF). Borrowed when
/// the message has no bare LF. Its length is [`crlf_size`] of the input.
pub fn to_crlf(message: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let size = crlf_size(message);
    if size == message.len() as u64 {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(message.len()));
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    std::borrow::Cow::Owned(out)
}

/// The longest header block read for a Message-ID; a header is rarely 16 KiB.
const HEADER_LIMIT: usize = 256 * 1024;

impl MessageId {
    /// The Message-ID of a message, from its header block only: a whole message, or
    /// just its header (an IMAP `HEADER.FIELDS (MESSAGE-ID)` section), CRLF or LF.
    /// `None` when there is no such field or its value is not a msg-id (`<...>`);
    /// such a message is matched by size and content instead of a guessed id.
    pub fn from_header(message: &[u8]) -> Option<MessageId> {
        let header = &message[..header_end(message).min(message.len()).min(HEADER_LIMIT)];
        let value = field_value(header, b"message-id")?;
        parse_msg_id(&value).map(MessageId)
    }
}

/// The header block with the empty line that ends it (what IMAP's `BODY[HEADER]` is).
pub fn header_block(message: &[u8]) -> &[u8] {
    let end = header_end(message);
    let blank = message[end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(message.len(), |i| end + i + 1);
    &message[..blank]
}

/// Where the header block ends: at the first empty line, or the end of the message.
fn header_end(message: &[u8]) -> usize {
    let mut at = 0;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line == b"\n" || line == b"\r\n" {
            return at;
        }
        at += line.len();
    }
    message.len()
}

/// The unfolded value of the first field called `name` (lower case), if any.
fn field_value(header: &[u8], name: &[u8]) -> Option<String> {
    let mut lines = header
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        // RFC 5322 §4.5 (obsolete syntax) allows white space before the colon.
        if !line[..colon].trim_ascii_end().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) = lines.next_if(|l| l.starts_with(b" ") || l.starts_with(b"\t")) {
            value.extend_from_slice(next);
        }
        return Some(String::from_utf8_lossy(&value).into_owned());
    }
    None
}

/// `[CFWS] "<" id-left "@" id-right ">" [CFWS]` (with the obsolete forms' inner white
/// space dropped), as `<id-left@id-right>`. A value that is not one is `None`.
fn parse_msg_id(value: &str) -> Option<String> {
    let rest = skip_cfws(value)?;
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let (inner, after) = (&rest[..end], &rest[end + 1..]);
    let id: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    let well_formed = !id.is_empty()
        && !id
            .chars()
            .any(|c| c.is_control() || matches!(c, '<' | '"' | '\\'))
        && id
            .split_once('@')
            .is_none_or(|(l, r)| !l.is_empty() && !r.is_empty());
    // Whatever follows must be comments or white space (another id is ignored).
    let trailer_ok = skip_cfws(after).is_some_and(|r| r.is_empty() || r.starts_with('<'));
    (well_formed && trailer_ok).then(|| format!("<{id}>"))
}

/// The text after leading white space and (nested) comments; `None` for an unclosed
/// comment.
fn skip_cfws(mut s: &str) -> Option<&str> {
    loop {
        s = s.trim_start();
        if !s.starts_with('(') {
            return Some(s);
        }
        let mut depth = 0usize;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        s = &s[end?..];
    }
}

/// An IMAP date-time (`21-Nov-2026 10:00:00 +0000`, RFC 3501 `date-time`) in UTC, as
/// sent with APPEND for a file's mtime. A time before 1970 is sent as the epoch.
pub fn imap_date(t: SystemTime) -> String {
    let ts = Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(TimeZone::UTC)
        .strftime("%d-%b-%Y %H:%M:%S +0000")
        .to_string()
}

/// A time for people to read (status, logs, certificate dates), in the system's time
/// zone: `2026-11-22 11:00:00 +01:00`.
pub fn local_time(t: SystemTime) -> String {
    let ts = Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// The same instant for machines: RFC 3339 in local time with its offset
/// (`2026-11-22T11:00:00+01:00`), as the JSON outputs write times.
pub fn rfc3339(t: SystemTime) -> String {
    let ts = Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.to_zoned(TimeZone::system())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn id(message: &[u8]) -> Option<String> {
        MessageId::from_header(message).map(|m| m.0)
    }

    #[test]
    fn imap_dates() {
        assert_eq!(imap_date(UNIX_EPOCH), "01-Jan-1970 00:00:00 +0000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_341_600); // date -u -d @1795341600
        assert_eq!(imap_date(t), "22-Nov-2026 10:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(imap_date(leap), "29-Feb-2000 00:00:00 +0000");
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(imap_date(before), "31-Dec-1969 23:59:50 +0000");
    }

    #[test]
    fn local_time_names_its_offset() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_341_600);
        let shown = local_time(t);
        assert_eq!(shown.len(), "2026-11-22 10:00:00 +00:00".len(), "{shown}");
        assert!(shown.starts_with("2026-11-2"), "{shown}");
    }

    #[test]
    fn message_id_from_the_header_only() {
        assert_eq!(
            id(b"Subject: x\r\nMessage-Id:\r\n <a@b>\r\n\r\nMessage-ID: <no@body>\r\n").as_deref(),
            Some("<a@b>")
        );
        assert_eq!(id(b"Subject: x\n\nMessage-ID: <no@body>\n"), None);
        assert_eq!(id(b"Message-ID: not-an-id\n\n"), None);
        assert_eq!(id(b"\r\n"), None);
        assert_eq!(id(b""), None);
    }

    #[test]
    fn message_id_is_unfolded_and_keeps_its_case() {
        assert_eq!(
            id(b"Message-ID:\r\n <abc@x>\r\n\r\n").as_deref(),
            Some("<abc@x>")
        );
        assert_eq!(
            id(b"message-id: <CAF=Ab.Cd@Mail.Gmail.COM>\n").as_deref(),
            Some("<CAF=Ab.Cd@Mail.Gmail.COM>")
        );
        // A HEADER.FIELDS section: the field alone, folded inside the id.
        assert_eq!(
            id(b"Message-ID: <very.long.local.part\r\n\t@example.org>\r\n\r\n").as_deref(),
            Some("<very.long.local.part@example.org>")
        );
    }

    #[test]
    fn message_id_ignores_surrounding_comments_and_space() {
        assert_eq!(
            id(b"Message-ID: (sent by (nested) x) <a@b>  (trailing)\n\n").as_deref(),
            Some("<a@b>")
        );
        assert_eq!(id(b"Message-ID  : <a@b>\n").as_deref(), Some("<a@b>"));
        assert_eq!(id(b"Message-ID: (unclosed <a@b>\n"), None);
        assert_eq!(id(b"Message-ID: <a@b> junk\n"), None);
    }

    #[test]
    fn message_id_refuses_what_cannot_be_searched_for() {
        assert_eq!(id(b"Message-ID: <>\n"), None);
        assert_eq!(id(b"Message-ID: <a\"b@c>\n"), None);
        assert_eq!(id(b"Message-ID: <@b>\n"), None);
        assert_eq!(id(b"Message-ID: <a@>\n"), None);
        assert_eq!(id(b"Message-ID: <a@b\n"), None);
        // An id without a domain part is still an id (some mailers write them).
        assert_eq!(
            id(b"Message-ID: <12345.ABC>\n").as_deref(),
            Some("<12345.ABC>")
        );
    }

    #[test]
    fn rule_23_uploads_carry_crlf_whatever_the_file_uses() {
        let lf = b"Subject: x\n\nbody\nline\n";
        let crlf = b"Subject: x\r\n\r\nbody\r\nline\r\n";
        assert_eq!(&*to_crlf(lf), crlf);
        assert!(
            matches!(to_crlf(crlf), std::borrow::Cow::Borrowed(_)),
            "CRLF already: sent as is"
        );
        // Mixed endings: only the bare LFs change; a lone CR stays content.
        assert_eq!(&*to_crlf(b"a\r\nb\nc\rd\n"), b"a\r\nb\r\nc\rd\r\n");
        assert_eq!(&*to_crlf(b"\n\n"), b"\r\n\r\n");
        assert_eq!(&*to_crlf(b""), b"");
        for m in [&lf[..], &crlf[..], b"a\r\nb\nc", b"no newline"] {
            let sent = to_crlf(m);
            assert_eq!(sent.len() as u64, crlf_size(m), "{m:?}");
            assert!(
                !sent
                    .iter()
                    .enumerate()
                    .any(|(i, b)| *b == b'\n' && (i == 0 || sent[i - 1] != b'\r')),
                "a bare LF left in {sent:?}"
            );
            assert_eq!(ContentHash::of(&sent), ContentHash::of(m));
        }
    }

    #[test]
    fn content_hashes_ignore_line_endings_only() {
        let lf = b"Subject: x\n\nbody\nline\n";
        let crlf = b"Subject: x\r\n\r\nbody\r\nline\r\n";
        assert_eq!(ContentHash::of(lf), ContentHash::of(crlf));
        assert_ne!(
            ContentHash::of(lf),
            ContentHash::of(b"Subject: x\n\nbody\nline2\n")
        );
        // A lone CR is content, not a line ending.
        assert_ne!(ContentHash::of(b"a\rb"), ContentHash::of(b"ab"));
        assert_eq!(ContentHash::of(b"").0.len(), 32);
    }

    #[test]
    fn mbsync_transaction_ids_are_not_content() {
        let server = b"Message-ID: <a@b>\r\nDate: x\r\n\r\nbody\r\n";
        let mbsync = b"Message-ID: <a@b>\nDate: x\nX-TUID: NdHqlw0m6Gat\n\nbody\n";
        assert_eq!(ContentHash::of(server), ContentHash::of(mbsync));
        let line = tuid_line(mbsync).unwrap();
        assert_eq!(&mbsync[line.clone()], b"X-TUID: NdHqlw0m6Gat\n");
        assert_eq!(
            crlf_size(mbsync) - crlf_size(&mbsync[line]),
            server.len() as u64
        );
        // Only in the header.
        assert_eq!(tuid_line(b"Subject: x\n\nX-TUID: body\n"), None);
    }

    #[test]
    fn the_header_block_ends_with_its_empty_line() {
        assert_eq!(
            header_block(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(header_block(b"A: 1\n\nbody\n"), b"A: 1\n\n");
        assert_eq!(header_block(b"A: 1\n"), b"A: 1\n");
    }

    #[test]
    fn crlf_sizes_count_bare_line_feeds() {
        assert_eq!(crlf_size(b"a\nb\r\nc\n"), 9);
        assert_eq!(crlf_size(b"\n\n"), 4);
        assert_eq!(crlf_size(b""), 0);
        assert_eq!(crlf_size(b"\r\n"), 2);
    }

    #[test]
    fn the_first_message_id_field_counts() {
        assert_eq!(
            id(b"Message-ID: <one@x>\nMessage-ID: <two@x>\n\n").as_deref(),
            Some("<one@x>")
        );
    }
}
