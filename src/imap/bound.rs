//! Bounds on what an IMAP server may send (rule 18): a sans-IO scanner that follows the
//! response byte stream line by line and literal by literal, and a thin `AsyncRead`
//! layer that runs every byte through it before async-imap's framing sees it.
//! It stays in `imap`, not `net`: where a line ends and a literal starts is IMAP grammar.
//! The protocol-neutral bounds (pre-login lines, message size) are in `net`.
//!
//! async-imap alone accepts literals up to 512 MiB and grows its buffer for a line of
//! any length; a hostile server could make us hold that much. The scanner needs no
//! parser: a response is lines ended by CRLF, and a line that ends in a literal
//! announcement (`{n}`, `{n+}`, `~{n}`) is followed by exactly n bytes that are not
//! looked at, then the response goes on.
//!
//! A line ended by a bare LF (GNU imap4d 3.15 ends AUTHENTICATE's tagged OK so) is read
//! as ended by CRLF: outside a literal a bare LF can only be a line's end, and
//! async-imap would otherwise wait for a CR that never comes. Literal bytes are never
//! touched. Extended data after a `LIST` line's mailbox name (RFC 5258; NOTIFY's
//! `("OLDNAME" ...)` on a rename) is dropped, since imap-proto cannot parse it and
//! async-imap would then fail every read after it (see [`list_extension`]).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most non-literal bytes one response may carry (its lines together). Large
/// enough for a `UID SEARCH ALL` answer over a folder of about a million messages.
pub const MAX_LINE: u64 = 8 * 1024 * 1024;

/// The most literal bytes one response may carry: the largest message we fetch.
pub const MAX_LITERAL: u64 = crate::net::MAX_MESSAGE;

/// What was wrong with the server's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// One literal announced larger than the bound.
    Literal { size: u64, limit: u64 },
    /// The literals of one response together above the bound.
    Literals { limit: u64 },
    /// More than the bound of line bytes without a response end.
    Line { limit: u64 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Literal { size, limit } => write!(
                f,
                "sent a literal of {size} bytes; the limit is {limit} bytes"
            ),
            FrameError::Literals { limit } => write!(
                f,
                "sent a response with more than {limit} bytes of literals; the limit is {limit} bytes"
            ),
            FrameError::Line { limit } => write!(
                f,
                "sent a line longer than {limit} bytes without an end; the limit is {limit} bytes"
            ),
        }
    }
}

/// The trailing bytes of the current line, as far as they may announce a literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    Other,
    /// Just after `\r` that follows nothing special.
    Cr,
    /// After `{`.
    Open,
    /// After `{` and digits (saturating: an absurd number is still an absurd number).
    Digits(u64),
    /// After `{n+`.
    Plus(u64),
    /// After `{n}` or `{n+}`.
    Closed(u64),
    /// After `{n}\r`.
    ClosedCr(u64),
}

/// Follows server-to-client IMAP bytes and refuses them once a bound is crossed.
#[derive(Clone, Debug)]
pub struct FrameScanner {
    max_line: u64,
    max_literal: u64,
    /// Bytes of the current literal still to come; 0 while reading a line.
    literal_left: u64,
    /// Line bytes and literal bytes of the current response so far.
    line_bytes: u64,
    /// Line bytes since the last CRLF: the unfinished end of what was fed.
    segment: u64,
    literal_bytes: u64,
    tail: Tail,
    /// The first bytes of the current response: enough to tell a status response.
    head: Vec<u8>,
    /// Offsets, within the bytes of the last `feed`, of LFs that ended a line without a
    /// CR before them: where [`Bounded`] puts the missing CR.
    bare_lf: Vec<usize>,
    /// `LIST`/`LSUB` responses without literals that the last `feed` completed: the
    /// offset of their ending LF within those bytes, and their length up to it.
    list_lines: Vec<(usize, u64)>,
}

/// How many bytes of a response's start [`FrameScanner`] keeps to classify it.
const HEAD: usize = 32;

/// Whether a response starting with `head` is a status response or a continuation
/// request: those carry free text (RFC 9051 `resp-text`), never a literal. A start not
/// seen in full counts as "may carry literals", the safe side: the line bound applies
/// either way.
fn is_status_response(head: &[u8]) -> bool {
    let mut words = head.split(|b| *b == b' ');
    let first = words.next().unwrap_or_default();
    if first == b"+" || first.starts_with(b"+\r") || first.starts_with(b"+\n") {
        return true;
    }
    let Some(second) = words.next() else {
        return false;
    };
    let second = second.strip_suffix(b"\n").unwrap_or(second);
    let second = second.strip_suffix(b"\r").unwrap_or(second);
    ["OK", "NO", "BAD", "BYE", "PREAUTH"]
        .iter()
        .any(|s| second.eq_ignore_ascii_case(s.as_bytes()))
        && words.next().is_some()
}

/// Whether a response starting with `head` is an untagged `LIST` or `LSUB`.
fn is_list_response(head: &[u8]) -> bool {
    head.len() > 7
        && head.starts_with(b"* ")
        && (head[2..6].eq_ignore_ascii_case(b"LIST") || head[2..6].eq_ignore_ascii_case(b"LSUB"))
        && head[6] == b' '
}

/// Where one literal-free `LIST`/`LSUB` line carries extended data after its mailbox
/// name (RFC 5258 `mbox-list-extended`; RFC 5465 reports a rename as
/// `* LIST () "/" "New" ("OLDNAME" ("Old"))`): the bytes to drop, from the space before
/// it to the line end (CRLF excluded). imap-proto cannot parse it, and async-imap keeps
/// an unparsable response in its buffer and fails every later read, so the connection
/// would be lost. Nobody here reads the extension (a NOTIFY event is only a hint, rule
/// 16), so it is dropped and the rest of the response reaches the parser intact.
pub fn list_extension(line: &[u8]) -> Option<std::ops::Range<usize>> {
    let end = line.len()
        - if line.ends_with(b"\r\n") {
            2
        } else {
            usize::from(line.ends_with(b"\n"))
        };
    let line = &line[..end];
    if !is_list_response(line) || line.get(7) != Some(&b'(') {
        return None;
    }
    // The attributes: atoms, never nested.
    let mut at = 7 + line[7..].iter().position(|b| *b == b')')? + 1;
    at = space(line, at)?;
    // The delimiter: a quoted character or NIL.
    at = if line.get(at) == Some(&b'"') {
        quoted_end(line, at)?
    } else if line.len() >= at + 3 && line[at..at + 3].eq_ignore_ascii_case(b"NIL") {
        at + 3
    } else {
        return None;
    };
    at = space(line, at)?;
    // The mailbox: a quoted string or an atom.
    at = if line.get(at) == Some(&b'"') {
        quoted_end(line, at)?
    } else {
        at + line[at..]
            .iter()
            .position(|b| *b == b' ')
            .unwrap_or(line.len() - at)
    };
    line[at..].starts_with(b" (").then_some(at..end)
}

fn space(line: &[u8], at: usize) -> Option<usize> {
    (line.get(at) == Some(&b' ')).then_some(at + 1)
}

/// The offset just past the quoted string that starts at `at`.
fn quoted_end(line: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

impl Default for FrameScanner {
    fn default() -> FrameScanner {
        FrameScanner::new(MAX_LINE, MAX_LITERAL)
    }
}

impl FrameScanner {
    pub fn new(max_line: u64, max_literal: u64) -> FrameScanner {
        FrameScanner {
            max_line,
            max_literal,
            literal_left: 0,
            line_bytes: 0,
            segment: 0,
            literal_bytes: 0,
            tail: Tail::Other,
            head: Vec::with_capacity(HEAD),
            bare_lf: Vec::new(),
            list_lines: Vec::new(),
        }
    }

    /// The `LIST`/`LSUB` responses without literals that the last
    /// [`FrameScanner::feed`] completed: (offset of the ending LF in those bytes, length
    /// of the whole line up to and with that LF, which may have begun in earlier feeds).
    pub fn list_lines(&self) -> &[(usize, u64)] {
        &self.list_lines
    }

    /// Where the bytes of the last [`FrameScanner::feed`] ended a line with a bare LF.
    pub fn bare_lfs(&self) -> &[usize] {
        &self.bare_lf
    }

    /// How many of the bytes fed so far belong to a line whose CRLF has not come yet.
    pub fn unfinished(&self) -> u64 {
        self.segment
    }

    /// Take the next bytes the server sent. After an error the stream is out of step
    /// and must be dropped.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        self.bare_lf.clear();
        self.list_lines.clear();
        let mut at = 0;
        while at < bytes.len() {
            if self.literal_left > 0 {
                let n = self.literal_left.min((bytes.len() - at) as u64);
                self.literal_left -= n;
                at += n as usize;
                continue;
            }
            let b = bytes[at];
            at += 1;
            self.line_bytes += 1;
            self.segment += 1;
            if self.line_bytes <= HEAD as u64 {
                self.head.push(b);
            }
            if b == b'\n' {
                if !matches!(self.tail, Tail::Cr | Tail::ClosedCr(_)) {
                    self.bare_lf.push(at - 1);
                }
                let line = self.segment;
                self.segment = 0;
                match self.tail {
                    Tail::Closed(size) | Tail::ClosedCr(size)
                        if !is_status_response(&self.head) =>
                    {
                        // The response goes on, so this LF counts against its bound
                        // like any other line byte; only a response's last LF may
                        // stand one past it.
                        self.check_line()?;
                        self.start_literal(size)?;
                    }
                    _ => {
                        // The response is complete; the next one starts afresh.
                        if line == self.line_bytes && is_list_response(&self.head) {
                            self.list_lines.push((at - 1, line));
                        }
                        self.line_bytes = 0;
                        self.literal_bytes = 0;
                        self.head.clear();
                    }
                }
                self.tail = Tail::Other;
                continue;
            }
            self.check_line()?;
            self.tail = match (self.tail, b) {
                (_, b'{') => Tail::Open,
                (Tail::Open, b'0'..=b'9') => Tail::Digits(u64::from(b - b'0')),
                (Tail::Digits(n), b'0'..=b'9') => {
                    Tail::Digits(n.saturating_mul(10).saturating_add(u64::from(b - b'0')))
                }
                (Tail::Digits(n), b'+') => Tail::Plus(n),
                (Tail::Digits(n) | Tail::Plus(n), b'}') => Tail::Closed(n),
                (Tail::Closed(n), b'\r') => Tail::ClosedCr(n),
                (_, b'\r') => Tail::Cr,
                _ => Tail::Other,
            };
        }
        Ok(())
    }

    fn check_line(&self) -> Result<(), FrameError> {
        if self.line_bytes > self.max_line {
            return Err(FrameError::Line {
                limit: self.max_line,
            });
        }
        Ok(())
    }

    fn start_literal(&mut self, size: u64) -> Result<(), FrameError> {
        if size > self.max_literal {
            return Err(FrameError::Literal {
                size,
                limit: self.max_literal,
            });
        }
        self.literal_bytes = self.literal_bytes.saturating_add(size);
        if self.literal_bytes > self.max_literal {
            return Err(FrameError::Literals {
                limit: self.max_literal,
            });
        }
        self.literal_left = size;
        Ok(())
    }
}

/// The error a [`Bounded`] stream reads as: the bound crossed and who crossed it.
#[derive(Debug)]
pub struct BoundError {
    pub server: String,
    pub error: FrameError,
}

impl fmt::Display for BoundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server {} {}", self.server, self.error)
    }
}

impl std::error::Error for BoundError {}

impl BoundError {
    /// The bound error inside an I/O error, if that is what it is.
    pub fn within(e: &std::io::Error) -> Option<&BoundError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<BoundError>())
    }
}

/// A stream whose every read passes a [`FrameScanner`]; writes go straight through.
///
/// It also holds back an unfinished line until its CRLF arrives (at most the line bound),
/// so an overlong line is refused as soon as it crosses the bound: async-imap re-parses
/// its whole buffer on every read of at most 4 KiB, and feeding it the line as it comes
/// would cost time quadratic in the line's length before the bound is even reached.
/// Literal bytes pass at once.
#[derive(Debug)]
pub struct Bounded<S> {
    inner: S,
    scanner: FrameScanner,
    /// `host:port`, for the error.
    server: String,
    /// Off for a stream that another layer decodes first (COMPRESS): its bytes are not
    /// IMAP, and the layer above checks the decoded ones.
    checking: bool,
    failed: Option<FrameError>,
    /// Bytes read and checked: `pending[start..ready]` may be handed out, the rest waits
    /// for its line to end.
    pending: Vec<u8>,
    start: usize,
    ready: usize,
    eof: bool,
}

/// How much one read from the transport asks for.
const READ_CHUNK: usize = 64 * 1024;

impl<S> Bounded<S> {
    pub fn new(inner: S, server: String) -> Bounded<S> {
        Bounded {
            inner,
            scanner: FrameScanner::default(),
            server,
            checking: true,
            failed: None,
            pending: Vec::new(),
            start: 0,
            ready: 0,
            eof: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the bytes read through this layer are checked (see [`Bounded::stop_checking`]).
    pub fn is_checking(&self) -> bool {
        self.checking
    }

    /// Stop checking: the bytes read from now on are compressed, and a new `Bounded`
    /// above the decompressor checks what they decode to.
    pub fn stop_checking(&mut self) {
        self.checking = false;
        self.ready = self.pending.len();
    }

    fn error(&self, error: FrameError) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            BoundError {
                server: self.server.clone(),
                error,
            },
        )
    }
}

impl<S> Bounded<S> {
    /// Mend the bytes from `from` (nothing before it was handed out; `carried` of them
    /// were fed before the last `feed`): a CR before each bare LF, and no extended data
    /// in a `LIST` line (see [`list_extension`]).
    fn mend(&mut self, from: usize, carried: usize) {
        let fed = self.pending.split_off(from);
        // (where, what to skip from there): a CR goes in at a bare LF; extended data is
        // skipped, and always ends before its line's LF.
        let mut edits: Vec<(usize, usize)> = self
            .scanner
            .bare_lfs()
            .iter()
            .map(|lf| (carried + lf, 0))
            .collect();
        for &(lf, len) in self.scanner.list_lines() {
            let end = carried + lf + 1;
            let start = end - len as usize;
            if let Some(cut) = list_extension(&fed[start..end]) {
                edits.push((start + cut.start, cut.len()));
            }
        }
        edits.sort_unstable();
        let mut at = 0;
        for (to, skip) in edits {
            self.pending.extend_from_slice(&fed[at..to]);
            if skip == 0 {
                self.pending.push(b'\r');
            }
            at = to + skip;
        }
        self.pending.extend_from_slice(&fed[at..]);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = &this.failed {
                return Poll::Ready(Err(this.error(e.clone())));
            }
            if this.start < this.ready {
                let n = (this.ready - this.start).min(buf.remaining());
                buf.put_slice(&this.pending[this.start..this.start + n]);
                this.start += n;
                if this.start == this.pending.len() {
                    // Everything handed out: drop a buffer a long line made big.
                    if this.pending.capacity() > 4 * READ_CHUNK {
                        this.pending = Vec::new();
                    }
                    this.pending.clear();
                    this.start = 0;
                    this.ready = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // An unfinished line at the end: async-imap reports it as cut off.
                if this.start < this.pending.len() {
                    this.ready = this.pending.len();
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            if this.start > 0 {
                this.pending.drain(..this.start);
                this.ready -= this.start;
                this.start = 0;
            }
            let old = this.pending.len();
            this.pending.resize(old + READ_CHUNK, 0);
            let mut chunk = ReadBuf::new(&mut this.pending[old..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut chunk);
            let got = chunk.filled().len();
            this.pending.truncate(old + got);
            match polled {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if got == 0 => this.eof = true,
                Poll::Ready(Ok(())) if !this.checking => this.ready = this.pending.len(),
                Poll::Ready(Ok(())) => {
                    // The held back start of a line the new bytes may end.
                    let carried = this.scanner.unfinished() as usize;
                    if let Err(e) = this.scanner.feed(&this.pending[old..]) {
                        // Nothing more reaches the parser.
                        this.pending = Vec::new();
                        this.start = 0;
                        this.ready = 0;
                        this.failed = Some(e);
                        continue;
                    }
                    if !this.scanner.bare_lfs().is_empty() || !this.scanner.list_lines().is_empty()
                    {
                        this.mend(old - carried, carried);
                    }
                    // The unfinished line is at most the line bound, so this fits.
                    this.ready = this.pending.len() - this.scanner.unfinished() as usize;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(limits: (u64, u64), chunks: &[&[u8]]) -> Result<(), FrameError> {
        let mut s = FrameScanner::new(limits.0, limits.1);
        chunks.iter().try_for_each(|c| s.feed(c))
    }

    #[test]
    fn a_huge_literal_announcement_is_refused_before_its_bytes() {
        let err = scan(
            (MAX_LINE, MAX_LITERAL),
            &[b"* 1 FETCH (UID 1 BODY[] {4294967295}\r\n"],
        )
        .unwrap_err();
        assert_eq!(
            err,
            FrameError::Literal {
                size: 4294967295,
                limit: MAX_LITERAL
            }
        );
        assert_eq!(
            err.to_string(),
            "sent a literal of 4294967295 bytes; the limit is 268435456 bytes"
        );
        // Absurd digit strings saturate rather than wrap around to something small.
        let err = scan((100, 100), &[b"* X {99999999999999999999999999}\r\n"]).unwrap_err();
        assert!(matches!(err, FrameError::Literal { size: u64::MAX, .. }));
        // LITERAL+ and literal8 forms count too.
        assert!(scan((100, 10), &[b"* X {11+}\r\n"]).is_err());
        assert!(scan((100, 10), &[b"* X ~{11}\r\n"]).is_err());
    }

    #[test]
    fn text_of_a_status_response_ending_in_braces_is_not_a_literal() {
        // A NO echoing a mailbox name the user chose: legitimate, and not a literal.
        assert_eq!(
            scan(
                (MAX_LINE, MAX_LITERAL),
                &[b"a5 NO Invalid mailbox name x{300000000}\r\n* 1 EXISTS\r\n"]
            ),
            Ok(())
        );
        for text in [
            &b"* OK hi {5}\r\n"[..],
            b"* BYE going {5}\r\n",
            b"* PREAUTH {5}\r\n",
            b"+ go ahead {5}\r\n",
            b"a1 ok done {5}\r\n",
        ] {
            let mut s = FrameScanner::new(MAX_LINE, MAX_LITERAL);
            s.feed(text).unwrap();
            assert_eq!(s.literal_left, 0, "{}", String::from_utf8_lossy(text));
        }
        // Data responses still carry literals.
        let mut s = FrameScanner::new(MAX_LINE, MAX_LITERAL);
        s.feed(b"* LIST () \"/\" {5}\r\n").unwrap();
        assert_eq!(s.literal_left, 5);
    }

    #[test]
    fn a_phantom_literal_in_status_text_cannot_lift_the_line_bound() {
        // `* OK {256 MiB}` then a line without end: still the line bound, not 256 MiB.
        let limits = (1024, MAX_LITERAL);
        let long = vec![b'x'; 2048];
        assert_eq!(
            scan(limits, &[b"* OK hi {268435456}\r\n", &long]),
            Err(FrameError::Line { limit: 1024 })
        );
        // And the next real literal is seen as one.
        let mut s = FrameScanner::new(MAX_LINE, MAX_LITERAL);
        s.feed(b"* OK text {5}\r\n* 1 FETCH (BODY[] {3}\r\n")
            .unwrap();
        assert_eq!(s.literal_left, 3);
    }

    #[test]
    fn literal_bytes_are_not_lines() {
        // A 54-byte literal full of CRLFs and braces within a 20-byte line bound.
        let body = b"{99}\r\n{99}\r\n0123456789012345678901234567890123456789\r\n";
        assert_eq!(body.len(), 54);
        let mut stream = b"* 1 FETCH ({54}\r\n".to_vec();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b")\r\n* 2 EXISTS\r\n");
        assert_eq!(scan((20, 60), &[&stream]), Ok(()));
        // The same bytes one at a time.
        let singles: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan((20, 60), &singles), Ok(()));
    }

    #[test]
    fn a_line_without_end_is_refused_at_the_bound() {
        let mut s = FrameScanner::new(10, 10);
        assert_eq!(s.feed(b"* OK 12345"), Ok(()));
        assert_eq!(s.feed(b"6"), Err(FrameError::Line { limit: 10 }));
        // CRLF ends a line, and so does a bare LF (read as CRLF, see the module
        // comment); each response gets the whole bound.
        assert_eq!(scan((10, 10), &[b"* OK 1234\n* OK 1234\n"]), Ok(()));
        assert_eq!(scan((10, 10), &[b"* OK 1234\r\n* OK 1234\r\n"]), Ok(()));
    }

    #[test]
    fn the_line_end_before_a_literal_counts_against_the_bound() {
        // The response goes on after it, so it may not stand past the bound the way a
        // response's last LF may (proptest found this with a bare LF).
        for line in [&b"* 1 FETCH (X {1}\r\n"[..], b"* 1 FETCH (X {1}\n"] {
            let bound = line.len() as u64 - 1;
            assert_eq!(
                scan((bound, 8), &[line]),
                Err(FrameError::Line { limit: bound }),
                "{}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(scan((bound + 1, 8), &[line]), Ok(()));
        }
    }

    #[test]
    fn many_small_literals_in_one_response_add_up() {
        let mut stream = b"* 1 FETCH (".to_vec();
        for _ in 0..5 {
            stream.extend_from_slice(b"{3}\r\nabc ");
        }
        // Line bytes: every segment between literals counts towards one response.
        assert!(matches!(
            scan((1000, 14), &[&stream]),
            Err(FrameError::Literals { limit: 14 })
        ));
        assert_eq!(scan((1000, 15), &[&stream]), Ok(()));
        assert!(matches!(
            scan((30, 1000), &[&stream]),
            Err(FrameError::Line { .. })
        ));
    }

    async fn read_all(stream: &'static [u8], chunk: usize) -> std::io::Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut b = Bounded::new(stream, "imap.example:993".into());
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = b.read(&mut buf).await?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn the_stream_layer_passes_good_bytes_and_names_the_server_on_bad() {
        let good: &[u8] = b"* 1 FETCH (BODY[] {5}\r\nab\r\nc)\r\na1 OK done\r\n";
        for chunk in [1, 3, 4096] {
            assert_eq!(read_all(good, chunk).await.unwrap(), good);
        }
        // A cut-off line is still handed over at the end, for the parser to report.
        assert_eq!(read_all(b"* OK cut of", 4).await.unwrap(), b"* OK cut of");
        let err = read_all(b"* 1 FETCH (BODY[] {4294967295}\r\nabc", 4096)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(
            BoundError::within(&err).unwrap().to_string(),
            "the server imap.example:993 sent a literal of 4294967295 bytes; the limit is 268435456 bytes"
        );
    }

    /// GNU imap4d 3.15 ends AUTHENTICATE's tagged OK with a bare LF; the parser needs
    /// CRLF. Line ends gain their CR, a literal's LFs stay as they are.
    #[tokio::test]
    async fn a_line_ended_by_a_bare_lf_reads_as_ended_by_crlf() {
        let sent: &[u8] = b"+ \nA1 OK AUTHENTICATE PLAIN authentication successful\n\
                            * 1 FETCH (BODY[] {5}\nab\nc\n)\na2 OK done\r\n";
        let want: &[u8] = b"+ \r\nA1 OK AUTHENTICATE PLAIN authentication successful\r\n\
                            * 1 FETCH (BODY[] {5}\r\nab\nc\n)\r\na2 OK done\r\n";
        for chunk in [1, 2, 7, 4096] {
            assert_eq!(
                read_all(sent, chunk).await.unwrap(),
                want,
                "reads of {chunk}"
            );
        }
    }

    #[test]
    fn extended_list_data_is_found_after_the_mailbox_name() {
        let cut = |line: &[u8]| {
            list_extension(line).map(|r| String::from_utf8_lossy(&line[r]).into_owned())
        };
        // RFC 5465: a folder renamed while NOTIFY watches (Dovecot sends this).
        assert_eq!(
            cut(b"* LIST () \"/\" \"Archive/2026\" (\"OLDNAME\" (\"Old/2026\"))\r\n").as_deref(),
            Some(" (\"OLDNAME\" (\"Old/2026\"))")
        );
        // RFC 5258 CHILDINFO, an atom name, a NIL delimiter, LSUB, a bare LF.
        assert_eq!(
            cut(b"* list (\\HasChildren) NIL Foo (\"CHILDINFO\" (\"SUBSCRIBED\"))\n").as_deref(),
            Some(" (\"CHILDINFO\" (\"SUBSCRIBED\"))")
        );
        // Quotes and a space inside the name are the name's.
        assert_eq!(
            cut(b"* LSUB () \".\" \"a \\\" (b\" (\"X\" (\"y\"))\r\n").as_deref(),
            Some(" (\"X\" (\"y\"))")
        );
        // Ordinary lines and other responses are left alone.
        for line in [
            &b"* LIST () \"/\" \"Receipts\"\r\n"[..],
            b"* LIST (\\NonExistent) \"/\" Old\r\n",
            b"* LIST (\\Noselect) NIL \"\"\r\n",
            b"* STATUS \"a\" (MESSAGES 1)\r\n",
            b"* LIST (\\HasNoChildren \"/\" \"unterminated\r\n",
            b"* LIST",
        ] {
            assert_eq!(cut(line), None, "{}", String::from_utf8_lossy(line));
        }
    }

    /// A rename reported by NOTIFY reaches the parser as a plain LIST, however the
    /// bytes are split, and the responses around it are untouched.
    #[tokio::test]
    async fn extended_list_data_is_dropped_before_the_parser() {
        let sent: &[u8] = b"* LIST () \"/\" \"New\" (\"OLDNAME\" (\"Old\"))\r\n\
                            * 1 FETCH (BODY[] {30}\r\n* LIST () \"/\" x (\"OLDNAME\")\r\n)\r\n\
                            * LIST () \"/\" \"B\" (\"OLDNAME\" (\"A\"))\na1 OK done\r\n";
        let want: &[u8] = b"* LIST () \"/\" \"New\"\r\n\
                            * 1 FETCH (BODY[] {30}\r\n* LIST () \"/\" x (\"OLDNAME\")\r\n)\r\n\
                            * LIST () \"/\" \"B\"\r\na1 OK done\r\n";
        for chunk in [1, 2, 5, 7, 4096] {
            let got = read_all(sent, chunk).await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want),
                "reads of {chunk}"
            );
        }
        for line in [
            &b"* LIST () \"/\" \"New\"\r\n"[..],
            b"* LIST () \"/\" \"B\"\r\n",
        ] {
            assert!(async_imap::imap_proto::Response::parse(line).is_ok());
        }
        // What the parser could not read before.
        assert!(
            async_imap::imap_proto::Response::parse(
                b"* LIST () \"/\" \"New\" (\"OLDNAME\" (\"Old\"))\r\n"
            )
            .is_err()
        );
    }

    proptest! {
        /// However a valid stream is split into reads, the scanner accepts it, and it
        /// refuses the first byte beyond the line bound.
        #[test]
        fn splitting_never_changes_the_verdict(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..6),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let mut stream = Vec::new();
            for (i, body) in bodies.iter().enumerate() {
                stream.extend_from_slice(format!("* {} FETCH (BODY[] {{{}}}\r\n", i + 1, body.len()).as_bytes());
                stream.extend_from_slice(body);
                stream.extend_from_slice(b")\r\n");
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort();
            let mut chunks = Vec::new();
            let mut at = 0;
            for c in cuts {
                chunks.push(&stream[at..c]);
                at = c;
            }
            chunks.push(&stream[at..]);
            prop_assert_eq!(scan((40, 64), &chunks), Ok(()));
            // Arbitrary bytes never panic and never pass an overlong line.
            let mut s = FrameScanner::new(16, 16);
            let _ = s.feed(&stream);
        }

        #[test]
        fn arbitrary_bytes_never_exceed_the_line_bound_unnoticed(
            bytes in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\r'), Just(b'\n'), Just(b'{'), Just(b'}'), Just(b'1'), Just(b'+')], 0..400),
        ) {
            let mut s = FrameScanner::new(16, 8);
            if s.feed(&bytes).is_ok() {
                // No run of bytes outside literals longer than 16 without a CRLF.
                prop_assert!(s.line_bytes <= 16);
                prop_assert!(s.literal_bytes <= 8 && s.literal_left <= 8);
            }
        }
    }
}
