//! IMAP IDLE (RFC 2177) on a connection of its own: wait until the server reports a
//! change in one folder, the refresh deadline passes, or the caller interrupts. With
//! NOTIFY (RFC 5465) the same connection watches every personal folder: no folder is
//! selected, and each event names its folder (`STATUS`) or says the folder list changed
//! (`LIST`).
//!
//! Raw commands over async-imap's framing rather than its `Handle`: that reports a closed
//! connection as a "manual interrupt", and here every wait has a deadline. An event is a
//! hint only (rule 16): the caller runs a normal pass and trusts nothing from it.

use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, RequestId, Response, Status};
use tokio::time::Instant;

use super::{Connected, ImapError, quote};

/// Why [`IdleSession::wait`] returned; the IDLE is always ended (DONE answered) first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleWake {
    /// New, expunged or re-flagged messages: run a pass of the folder.
    Changed,
    /// The refresh deadline passed with no news; the server answered DONE, so the link
    /// is alive.
    Refreshed,
    /// The caller's interrupt fired (shutdown, reconnect).
    Interrupted,
}

/// What a NOTIFY event says, still only a hint (rule 16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Messages arrived, left or changed flags in the folder this connection selected.
    Selected,
    /// Messages arrived, left or changed flags in this folder (its raw, wire name).
    Folder(String),
    /// A folder was created, deleted or renamed: list the folders again.
    Folders,
}

/// A connection that has `EXAMINE`d one folder and can IDLE on it, or that asked for
/// NOTIFY on every personal folder.
pub struct IdleSession {
    conn: Connected,
    timeout: Duration,
    notices: Vec<Notice>,
}

/// The NOTIFY request: message and folder-list events of every personal folder, as
/// STATUS and LIST responses.
const NOTIFY_PERSONAL: &str =
    "(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))";
/// With a folder selected, its own events come as EXISTS, EXPUNGE and FETCH, as in
/// IDLE: a server may report those sooner (Dovecot holds STATUS events back for half a
/// second).
const NOTIFY_SELECTED: &str = "(selected (MessageNew MessageExpunge FlagChange))";

impl IdleSession {
    /// Whether the server can push at all; without IDLE the caller polls.
    pub fn supported(conn: &Connected) -> bool {
        conn.has("IDLE")
    }

    /// `EXAMINE` the folder (read-only: watching changes nothing, not even `\Recent`).
    pub async fn start(
        conn: Connected,
        wire_name: &str,
        timeout: Duration,
    ) -> Result<IdleSession, ImapError> {
        let mut idle = IdleSession {
            conn,
            timeout,
            notices: Vec::new(),
        };
        let command = format!("EXAMINE {}", quote(wire_name)?);
        let tag = idle.send(&command).await?;
        idle.read_until_done(&tag, "EXAMINE").await?;
        Ok(idle)
    }

    /// Whether one connection can watch every folder (RFC 5465).
    pub fn supports_notify(conn: &Connected) -> bool {
        conn.has("NOTIFY") && conn.has("IDLE")
    }

    /// Ask for NOTIFY on every personal folder, `selected` (a wire name) `EXAMINE`d
    /// first; [`IdleSession::wait`] then wakes for an event in any of them, and
    /// [`IdleSession::take_notices`] says which. A refusal is a protocol error: the
    /// caller falls back to IDLE on one folder.
    pub async fn start_notify(
        conn: Connected,
        selected: Option<&str>,
        timeout: Duration,
    ) -> Result<IdleSession, ImapError> {
        let mut idle = IdleSession {
            conn,
            timeout,
            notices: Vec::new(),
        };
        let mut set = format!("NOTIFY SET {NOTIFY_PERSONAL}");
        if let Some(wire) = selected {
            let tag = idle.send(&format!("EXAMINE {}", quote(wire)?)).await?;
            idle.read_until_done(&tag, "EXAMINE").await?;
            set = format!("NOTIFY SET {NOTIFY_SELECTED} {NOTIFY_PERSONAL}");
        }
        let tag = idle.send(&set).await?;
        idle.read_until_done(&tag, "NOTIFY").await?;
        // Whatever the NOTIFY answer carried is before we listened: the caller's first
        // pass covers it.
        idle.notices.clear();
        Ok(idle)
    }

    /// The events gathered since the last call, oldest first: those that came before
    /// the IDLE began or with its end (the one that woke [`IdleSession::wait`] went to
    /// its `early` callback).
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    async fn send(&mut self, command: &str) -> Result<RequestId, ImapError> {
        tokio::time::timeout(self.timeout, self.conn.session.run_command(command))
            .await
            .map_err(|_| ImapError::Timeout {
                what: "sending a command",
                limit: self.timeout,
            })?
            .map_err(|e| ImapError::lib(&e, format_args!("sending {command}")))
    }

    /// One response within `limit`, classified; a closed connection or BYE is an error.
    async fn read(&mut self, limit: Duration, what: &'static str) -> Result<Seen, ImapError> {
        let response = tokio::time::timeout(limit, self.conn.session.read_response())
            .await
            .map_err(|_| ImapError::Timeout { what, limit })?;
        alive(response.map(|r| r.map(|d| classify(d.parsed()))))
    }

    /// Read to the tagged completion of `tag`; returns whether a change was reported on
    /// the way.
    async fn read_until_done(&mut self, tag: &RequestId, what: &str) -> Result<bool, ImapError> {
        let mut changed = false;
        loop {
            match self.read(self.timeout, "waiting for the server").await? {
                Seen::Tagged { tag: t, ok, info } if t == *tag => {
                    return if ok {
                        Ok(changed)
                    } else {
                        Err(ImapError::Protocol(format!("{what} failed: {info}")))
                    };
                }
                Seen::Change => {
                    self.selected_changed();
                    changed = true;
                }
                Seen::Notice(n) => {
                    self.notices.push(n);
                    changed = true;
                }
                _ => {}
            }
        }
    }

    fn selected_changed(&mut self) {
        if self.notices.last() != Some(&Notice::Selected) {
            self.notices.push(Notice::Selected);
        }
    }

    /// IDLE until a change, `refresh` elapses, or `interrupt` completes; then DONE and
    /// read its answer within the session timeout, which is what catches a half-open
    /// link that a silent server would otherwise hide for ever. The event that ends the
    /// wait goes to `early` as it arrives, before the DONE round trip, so the pass it
    /// asks for starts one round trip sooner; events before and after it are in
    /// [`IdleSession::take_notices`].
    pub async fn wait(
        &mut self,
        refresh: Duration,
        interrupt: impl Future<Output = ()>,
        mut early: impl FnMut(Notice),
    ) -> Result<IdleWake, ImapError> {
        let tag = self.send("IDLE").await?;
        // Up to the continuation the server may still report what happened before.
        let mut changed = false;
        loop {
            match self.read(self.timeout, "starting IDLE").await? {
                Seen::Continue => break,
                Seen::Tagged { tag: t, info, .. } if t == tag => {
                    return Err(ImapError::Protocol(format!(
                        "the server refused IDLE: {info}"
                    )));
                }
                Seen::Change => {
                    self.selected_changed();
                    changed = true;
                }
                Seen::Notice(n) => {
                    self.notices.push(n);
                    changed = true;
                }
                _ => {}
            }
        }
        let deadline = Instant::now() + refresh;
        tokio::pin!(interrupt);
        let wake = if changed {
            IdleWake::Changed
        } else {
            loop {
                tokio::select! {
                    response = self.conn.session.read_response() => {
                        match alive(response.map(|r| r.map(|d| classify(d.parsed()))))? {
                            Seen::Change => {
                                early(Notice::Selected);
                                break IdleWake::Changed;
                            }
                            Seen::Notice(n) => {
                                early(n);
                                break IdleWake::Changed;
                            }
                            _ => {}
                        }
                        // "* OK Still here" and the like: keep waiting.
                    }
                    () = tokio::time::sleep_until(deadline) => break IdleWake::Refreshed,
                    () = &mut interrupt => break IdleWake::Interrupted,
                }
            }
        };
        tokio::time::timeout(self.timeout, self.conn.session.run_command_untagged("DONE"))
            .await
            .map_err(|_| ImapError::Timeout {
                what: "ending IDLE",
                limit: self.timeout,
            })?
            .map_err(|e| ImapError::Connect(format!("sending DONE: {e}")))?;
        let more = self.read_until_done(&tag, "IDLE").await?;
        Ok(if more && wake == IdleWake::Refreshed {
            IdleWake::Changed
        } else {
            wake
        })
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.conn.session.logout()).await;
    }
}

/// A response reduced to what IDLE needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Continue,
    Tagged {
        tag: RequestId,
        ok: bool,
        info: String,
    },
    Change,
    Notice(Notice),
    Bye(String),
    Other,
}

fn classify(response: &Response<'_>) -> Seen {
    match response {
        Response::Continue { .. } => Seen::Continue,
        Response::Done {
            tag,
            status,
            outcome,
        } => Seen::Tagged {
            tag: tag.clone(),
            ok: *status == Status::Ok,
            info: format!(
                "{status:?} {}",
                outcome.information.as_deref().unwrap_or_default()
            ),
        },
        Response::Data {
            status: Status::Bye,
            outcome,
        } => Seen::Bye(outcome.information.as_deref().unwrap_or("BYE").to_owned()),
        Response::MailboxData(MailboxDatum::Status { mailbox, .. }) => {
            Seen::Notice(Notice::Folder(mailbox.to_string()))
        }
        Response::MailboxData(MailboxDatum::List(_)) => Seen::Notice(Notice::Folders),
        other if is_change(other) => Seen::Change,
        _ => Seen::Other,
    }
}

fn alive(response: std::io::Result<Option<Seen>>) -> Result<Seen, ImapError> {
    match response {
        Err(e) => Err(ImapError::io(&e, "while idling")),
        Ok(None) => Err(ImapError::Connect(
            "the server closed the connection".into(),
        )),
        Ok(Some(Seen::Bye(why))) => Err(ImapError::Connect(format!(
            "the server closed the session: {why}"
        ))),
        Ok(Some(seen)) => Ok(seen),
    }
}

/// Responses that mean the folder's messages changed (RFC 2177, RFC 7162 VANISHED).
fn is_change(response: &Response<'_>) -> bool {
    matches!(
        response,
        Response::MailboxData(MailboxDatum::Exists(_))
            | Response::Expunge(_)
            | Response::Vanished { .. }
            | Response::Fetch(..)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &[u8]) -> bool {
        let (_, response) = Response::parse(line).unwrap();
        is_change(&response)
    }

    #[test]
    fn changes_are_exists_expunge_fetch_and_vanished() {
        assert!(parsed(b"* 4 EXISTS\r\n"));
        assert!(parsed(b"* 2 EXPUNGE\r\n"));
        assert!(parsed(b"* 3 FETCH (FLAGS (\\Seen))\r\n"));
        assert!(parsed(b"* VANISHED 5:7\r\n"));
        assert!(!parsed(b"* OK Still here\r\n"));
        assert!(!parsed(b"* 1 RECENT\r\n"));
    }

    fn seen(line: &[u8]) -> Seen {
        let (_, response) = Response::parse(line).unwrap();
        classify(&response)
    }

    #[test]
    fn notify_events_name_their_folder_or_the_folder_list() {
        assert_eq!(
            seen(b"* STATUS \"Lists/rust/2026\" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1)\r\n"),
            Seen::Notice(Notice::Folder("Lists/rust/2026".into()))
        );
        assert_eq!(
            seen(b"* LIST () \"/\" \"Receipts\"\r\n"),
            Seen::Notice(Notice::Folders)
        );
        assert_eq!(
            seen(b"* LIST (\\NonExistent) \"/\" \"Old\"\r\n"),
            Seen::Notice(Notice::Folders)
        );
    }
}
