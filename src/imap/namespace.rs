//! The personal namespace (RFC 2342): where the server keeps the user's own folders, e.g.
//! `INBOX.` in Cyrus's standard namespace and in Courier, so `INBOX.Archive` is the
//! folder the user calls `Archive` (rule 24). Sent raw and read by hand: async-imap's
//! parser has no NAMESPACE response and would leave the session out of step.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ImapError, ImapStream};

/// The first personal namespace the server reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// The prefix as sent (modified UTF-7), e.g. `INBOX.`; empty for top-level folders.
    pub prefix: String,
    /// The namespace's hierarchy delimiter; `None` for a flat one.
    pub delimiter: Option<char>,
}

/// The most bytes the NAMESPACE answer (untagged lines and the tagged one) may take; a
/// real one is well under 1 KiB (rule 18).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
const TAG: &str = "ns1";

/// Ask for the personal namespace on a freshly logged-in session, before anything else
/// was sent: the answer is read byte by byte up to the tagged line and no further, so
/// async-imap finds the stream exactly where it left it. `Ok(None)`: the server has no
/// personal namespace, or refused the command.
pub(super) async fn personal(
    stream: &mut ImapStream,
    timeout: Duration,
) -> Result<Option<Namespace>, ImapError> {
    let io = |e: std::io::Error| ImapError::io(&e, "during NAMESPACE");
    let exchange = async {
        stream
            .write_all(format!("{TAG} NAMESPACE\r\n").as_bytes())
            .await
            .map_err(io)?;
        stream.flush().await.map_err(io)?;
        let mut found = None;
        let mut total = 0;
        loop {
            let line = read_response(stream, &mut total).await?;
            let upper = line.get(..TAG.len() + 1).map(<[u8]>::to_ascii_uppercase);
            if upper.as_deref() == Some(format!("{} ", TAG.to_ascii_uppercase()).as_bytes()) {
                let ok = line[TAG.len() + 1..]
                    .get(..2)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"OK"));
                if !ok {
                    tracing::debug!(
                        "the server refused NAMESPACE: {}",
                        String::from_utf8_lossy(&line).trim_end()
                    );
                }
                return Ok(found.filter(|_| ok));
            }
            if let Some(rest) = strip_ci(&line, b"* NAMESPACE ") {
                found = parse_personal(rest).map_err(|why| {
                    ImapError::Protocol(format!(
                        "unreadable NAMESPACE answer ({why}): {}",
                        String::from_utf8_lossy(&line).trim_end()
                    ))
                })?;
            }
            // Anything else untagged is a hint at most; nothing was selected yet.
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ImapError::Timeout {
            what: "asking for the NAMESPACE",
            limit: timeout,
        })?
}

fn strip_ci<'a>(line: &'a [u8], head: &[u8]) -> Option<&'a [u8]> {
    (line.len() >= head.len() && line[..head.len()].eq_ignore_ascii_case(head))
        .then(|| &line[head.len()..])
}

/// One response: a line, and the literals it announces (`{n}` at a line's end) with the
/// lines that follow them, up to [`MAX_ANSWER_BYTES`] in all.
async fn read_response(stream: &mut ImapStream, total: &mut usize) -> Result<Vec<u8>, ImapError> {
    let too_long = || {
        ImapError::Bound(format!(
            "the NAMESPACE answer exceeds {MAX_ANSWER_BYTES} bytes"
        ))
    };
    let mut out = Vec::new();
    loop {
        // One byte at a time: whatever follows the answer belongs to async-imap.
        loop {
            let b = stream
                .read_u8()
                .await
                .map_err(|e| ImapError::io(&e, "during NAMESPACE"))?;
            out.push(b);
            *total += 1;
            if *total > MAX_ANSWER_BYTES {
                return Err(too_long());
            }
            if out.ends_with(b"\r\n") {
                break;
            }
        }
        match literal_len(&out) {
            Some(n) if *total + n > MAX_ANSWER_BYTES => return Err(too_long()),
            Some(n) => {
                let start = out.len();
                out.resize(start + n, 0);
                stream
                    .read_exact(&mut out[start..])
                    .await
                    .map_err(|e| ImapError::io(&e, "during NAMESPACE"))?;
                *total += n;
            }
            None => return Ok(out),
        }
    }
}

/// The length of a literal announced at the end of `line` (`... {12}\r\n`).
fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}\r\n")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = body[open + 1..]
        .strip_suffix(b"+")
        .unwrap_or(&body[open + 1..]);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The first personal namespace of a NAMESPACE answer, after `* NAMESPACE `:
/// `(("INBOX." ".")) NIL NIL`. `None` when the personal part is `NIL`.
pub fn parse_personal(text: &[u8]) -> Result<Option<Namespace>, &'static str> {
    let mut p = Parser { s: text, i: 0 };
    if p.nil() {
        return Ok(None);
    }
    p.expect(b'(')?;
    p.expect(b'(')?;
    let prefix = p.string()?.ok_or("the prefix is NIL")?;
    p.expect(b' ')?;
    let delimiter = match p.string()? {
        None => None,
        Some(d) => match d.as_slice() {
            [c] if c.is_ascii() => Some(char::from(*c)),
            _ => return Err("the delimiter is not one 7-bit character"),
        },
    };
    // Namespace response extensions and further personal namespaces are not needed.
    let prefix = String::from_utf8(prefix).map_err(|_| "the prefix is not 7-bit")?;
    if !prefix.is_ascii() {
        return Err("the prefix is not 7-bit");
    }
    Ok(Some(Namespace { prefix, delimiter }))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn nil(&mut self) -> bool {
        let nil = self
            .s
            .get(self.i..self.i + 3)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"NIL"));
        if nil {
            self.i += 3;
        }
        nil
    }

    fn expect(&mut self, c: u8) -> Result<(), &'static str> {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err("unexpected character")
        }
    }

    /// A quoted string, a literal, or NIL.
    fn string(&mut self) -> Result<Option<Vec<u8>>, &'static str> {
        if self.nil() {
            return Ok(None);
        }
        match self.s.get(self.i) {
            Some(b'"') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.i) {
                        Some(b'"') => {
                            self.i += 1;
                            return Ok(Some(out));
                        }
                        Some(b'\\') => {
                            let c = *self.s.get(self.i + 1).ok_or("unterminated string")?;
                            out.push(c);
                            self.i += 2;
                        }
                        Some(b'\r' | b'\n') | None => return Err("unterminated string"),
                        Some(&c) => {
                            out.push(c);
                            self.i += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                let close = self.s[self.i..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or("unterminated literal")?;
                let digits = &self.s[self.i + 1..self.i + close];
                let digits = digits.strip_suffix(b"+").unwrap_or(digits);
                let n: usize = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .ok_or("bad literal length")?;
                let start = self.i + close + 1;
                let start = start + self.s[start..].starts_with(b"\r\n") as usize * 2;
                let data = self.s.get(start..start + n).ok_or("short literal")?;
                self.i = start + n;
                Ok(Some(data.to_vec()))
            }
            _ => Err("expected a string"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(prefix: &str, delimiter: Option<char>) -> Option<Namespace> {
        Some(Namespace {
            prefix: prefix.into(),
            delimiter,
        })
    }

    #[test]
    fn personal_namespaces_of_real_servers() {
        // Cyrus, standard namespace.
        let cyrus = br#"(("INBOX." ".")) (("user." ".")) (("" "."))"#;
        assert_eq!(parse_personal(cyrus), Ok(ns("INBOX.", Some('.'))));
        // Courier.
        let courier = br##"(("INBOX." ".")) NIL (("#shared." "."))"##;
        assert_eq!(parse_personal(courier), Ok(ns("INBOX.", Some('.'))));
        // Dovecot's default, with a response extension.
        let dovecot = br#"(("" "/" "X-PARAM" ("a" "b"))) NIL NIL"#;
        assert_eq!(parse_personal(dovecot), Ok(ns("", Some('/'))));
        assert_eq!(parse_personal(b"NIL NIL NIL"), Ok(None));
        assert_eq!(parse_personal(br#"(("" NIL)) NIL NIL"#), Ok(ns("", None)));
        // A literal prefix, and an escaped quote.
        assert_eq!(
            parse_personal(b"(({6}\r\nINBOX. \".\")) NIL NIL"),
            Ok(ns("INBOX.", Some('.')))
        );
        assert_eq!(
            parse_personal(br#"(("a\"b/" "/")) NIL NIL"#),
            Ok(ns("a\"b/", Some('/')))
        );
    }

    #[test]
    fn broken_answers_are_errors_not_guesses() {
        for bad in [
            &b"(("[..],
            b"((\"INBOX.",
            b"((\"INBOX.\" \"..\")) NIL NIL",
            b"(({99}\r\nINBOX. \".\")) NIL NIL",
            b"garbage",
            b"((NIL \".\")) NIL NIL",
        ] {
            assert!(
                parse_personal(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn literal_lengths_at_line_ends() {
        assert_eq!(literal_len(b"* NAMESPACE (({6}\r\n"), Some(6));
        assert_eq!(literal_len(b"* NAMESPACE (({6+}\r\n"), Some(6));
        assert_eq!(literal_len(b"* NAMESPACE NIL NIL NIL\r\n"), None);
    }
}
