//! Bounds on what a server may send before any protocol's own framing applies (rule 18):
//! the lines of the greeting and the pre-TLS exchange, and the size of one message.
//! IMAP's literal-aware bound on a running session is IMAP grammar: `imap::bound`.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use super::NetError;

/// Greeting and pre-login lines are short; a server sending more is misbehaving.
pub const MAX_PRELOGIN_LINE: usize = 16 * 1024;

/// The most lines a pre-login CAPABILITY answer may take (real servers send one or two).
pub const MAX_PRELOGIN_LINES: usize = 100;

/// The largest message accepted from a server, an IMAP literal or a POP3 RETR alike.
/// Servers commonly refuse messages above 50-150 MiB, so 256 MiB is generous. Bodies
/// stream to disk, so this bounds the disk a server that never ends a message can fill.
pub const MAX_MESSAGE: u64 = 256 * 1024 * 1024;

/// One line, LF included, of at most [`MAX_PRELOGIN_LINE`] bytes.
pub async fn read_line<S: AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
) -> Result<String, NetError> {
    let mut line = Vec::new();
    let mut limited = (&mut *reader).take(MAX_PRELOGIN_LINE as u64);
    let n = limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| NetError::Connect(e.to_string()))?;
    if n == 0 {
        return Err(NetError::Connect("the server closed the connection".into()));
    }
    if !line.ends_with(b"\n") {
        return Err(NetError::Protocol(format!(
            "a pre-login line longer than {MAX_PRELOGIN_LINE} bytes"
        )));
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}
