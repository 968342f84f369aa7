//! The IMAP operations a sync pass needs, as raw commands over async-imap's framing and
//! parser. async-imap has no QRESYNC API, no APPENDUID result, no timeouts, and reports a
//! NO on FETCH as an empty success; here every command has a deadline, every tagged
//! answer is checked, and every UID asked for is accounted for.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_imap::imap_proto::{self, AttributeValue, MailboxDatum, Response, ResponseCode, Status};
use tokio::io::AsyncWriteExt;

use super::{Connected, ImapError};
use crate::model::{EmailId, Flags, MessageId, ModSeq, Uid, UidValidity};

/// An authenticated connection with the extensions it enabled.
pub struct ImapSession {
    conn: Connected,
    timeout: Duration,
    qresync: bool,
    condstore: bool,
    uidplus: bool,
    has_move: bool,
    /// The server's identity of a message: OBJECTID's `EMAILID` (RFC 8474) or Gmail's
    /// `X-GM-MSGID` (X-GM-EXT-1), fetched with the flags.
    identity: Option<Identity>,
    literal_plus: bool,
    /// LITERAL- (RFC 7888): non-synchronizing literals only up to 4096 bytes.
    literal_minus: bool,
    /// MESSAGELIMIT (RFC 9738): the most messages one command may name; longer UID sets
    /// and listings are sent as several commands.
    message_limit: Option<u32>,
    /// APPENDLIMIT (RFC 7889): the largest message the server accepts.
    append_limit: Option<u64>,
    /// UIDNEXT of the selected folder as its SELECT reported it: where a listing that
    /// must be split into UID ranges ends.
    selected_uidnext: Option<Uid>,
    /// The folder SELECT last opened (wire name): opened again after a CLOSE.
    selected: Option<String>,
}

/// How often a command the server throttles is sent again before the pass gives up
/// (a transient failure: the next pass tries again).
const THROTTLE_RETRIES: u32 = 5;
/// The longest wait a throttling server may ask for per attempt; more is capped.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The wait when a server says it throttles but not for how long.
const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// LITERAL- allows a non-synchronizing literal up to this size (RFC 7888 §5).
const LITERAL_MINUS_MAX: usize = 4096;

/// Which server-side message identity a server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// OBJECTID (RFC 8474): `EMAILID`, the same in every mailbox the message is in.
    ObjectId,
    /// Gmail's X-GM-EXT-1: `X-GM-MSGID`, one message whatever its labels.
    Gmail,
}

impl Identity {
    /// The FETCH item that asks for it.
    pub fn fetch_item(self) -> &'static str {
        match self {
            Identity::ObjectId => "EMAILID",
            Identity::Gmail => "X-GM-MSGID",
        }
    }

    /// How `check-config --connect` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Identity::ObjectId => "OBJECTID (EMAILID)",
            Identity::Gmail => "X-GM-EXT-1 (X-GM-MSGID)",
        }
    }
}

/// The identity a FETCH answer carries, if any.
pub fn email_id_of(attrs: &[AttributeValue<'_>]) -> Option<EmailId> {
    attrs.iter().find_map(|a| match a {
        AttributeValue::EmailId(id) if !id.is_empty() => Some(EmailId(id.to_string())),
        AttributeValue::GmailMsgId(n) => Some(EmailId::gmail(*n)),
        _ => None,
    })
}

/// What `SELECT` told us, plus what an incremental QRESYNC select reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selected {
    pub uidvalidity: Option<UidValidity>,
    pub uidnext: Option<Uid>,
    pub highestmodseq: Option<ModSeq>,
    pub exists: u32,
    /// With QRESYNC and a matching UIDVALIDITY: UIDs expunged since the known modseq.
    pub vanished: BTreeSet<Uid>,
    /// With QRESYNC: messages whose flags changed (or that are new) since the known modseq.
    pub changed: BTreeMap<Uid, Flags>,
    /// Whether `vanished`/`changed` are a valid incremental answer.
    pub resynced: bool,
}

/// A message as a flag listing reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteMessage {
    pub flags: Flags,
    pub size: Option<u64>,
    pub modseq: Option<ModSeq>,
    /// With OBJECTID or X-GM-EXT-1.
    pub email_id: Option<EmailId>,
}

/// One fetched message, handed to the caller's sink while its bytes are in memory.
pub struct FetchedBody<'a> {
    pub uid: Uid,
    pub flags: Flags,
    pub internaldate: Option<&'a str>,
    pub body: &'a [u8],
}

/// What a deletion on the server came to (rule 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// Marked `\Deleted` and expunged.
    Expunged,
    /// Marked `\Deleted` but not expunged: the server lacks UIDPLUS, and these other
    /// messages are marked too, so a plain EXPUNGE would remove them as well.
    LeftMarked { others: BTreeSet<Uid> },
}

/// A conditional STORE's outcome: the UIDs the server refused because they changed
/// since `UNCHANGEDSINCE` (RFC 7162 §3.2); the caller re-merges them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    pub modified: BTreeSet<Uid>,
}

/// The tagged completion of a command: the response codes a sync needs, owned.
pub(super) struct Done {
    code: Option<TaggedCode>,
    information: Option<String>,
}

enum TaggedCode {
    AppendUid(u32, Vec<u32>),
    CopyUid(Vec<u32>, Vec<u32>),
}

impl TaggedCode {
    fn from(code: &Option<ResponseCode<'_>>) -> Option<TaggedCode> {
        match code {
            Some(ResponseCode::AppendUid(uv, uids)) => {
                expand(uids).map(|uids| TaggedCode::AppendUid(*uv, uids))
            }
            Some(ResponseCode::CopyUid(_, from, to)) => expand(from)
                .zip(expand(to))
                .map(|(from, to)| TaggedCode::CopyUid(from, to)),
            _ => None,
        }
    }
}

impl ImapSession {
    /// Take over a logged-in connection and enable QRESYNC when the server has it.
    pub async fn new(conn: Connected, timeout: Duration) -> Result<ImapSession, ImapError> {
        let mut session = ImapSession {
            qresync: conn.has("QRESYNC"),
            condstore: conn.has("CONDSTORE") || conn.has("QRESYNC"),
            uidplus: conn.has("UIDPLUS"),
            has_move: conn.has("MOVE"),
            identity: if conn.has("OBJECTID") {
                Some(Identity::ObjectId)
            } else if conn.has("X-GM-EXT-1") {
                Some(Identity::Gmail)
            } else {
                None
            },
            literal_plus: conn.has("LITERAL+"),
            literal_minus: conn.has("LITERAL-"),
            message_limit: capability_value(&conn.capabilities, "MESSAGELIMIT")
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0),
            append_limit: capability_value(&conn.capabilities, "APPENDLIMIT"),
            selected_uidnext: None,
            selected: None,
            conn,
            timeout,
        };
        if session.qresync {
            session.command("ENABLE QRESYNC", |_| Ok(())).await?;
        } else if session.condstore {
            session.command("ENABLE CONDSTORE", |_| Ok(())).await?;
        }
        Ok(session)
    }

    pub fn has_qresync(&self) -> bool {
        self.qresync
    }

    pub fn has_condstore(&self) -> bool {
        self.condstore
    }

    /// The folder this session has selected (wire name), if any: STATUS of it may answer
    /// from the session's view as last synced (Dovecot does), not the folder's now.
    pub fn selected_folder(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    pub fn has_move(&self) -> bool {
        self.has_move
    }

    /// The server-side message identity the server offers, if any.
    pub fn identity(&self) -> Option<Identity> {
        self.identity
    }

    pub fn has_uidplus(&self) -> bool {
        self.uidplus
    }

    /// The largest message the server accepts (APPENDLIMIT), if it says.
    pub fn append_limit(&self) -> Option<u64> {
        self.append_limit
    }

    /// The most messages one command may name (MESSAGELIMIT), if the server says.
    pub fn message_limit(&self) -> Option<u32> {
        self.message_limit
    }

    pub fn connected(&mut self) -> &mut Connected {
        &mut self.conn
    }

    /// Send one command and read to its tagged completion. Untagged responses go to
    /// `on_untagged`; NO/BAD becomes an error carrying the server's words.
    /// A server that throttles (`NO ... Suggested Backoff Time: N milliseconds`) is
    /// waited for and asked again, a bounded number of times.
    pub(super) async fn command(
        &mut self,
        command: &str,
        mut on_untagged: impl FnMut(&Response<'_>) -> Result<(), ImapError>,
    ) -> Result<Done, ImapError> {
        let mut attempt = 0;
        loop {
            let result = self.command_once(command, &mut on_untagged).await;
            if let Some(done) = after_throttling(result, &mut attempt, verb(command)).await {
                return done;
            }
        }
    }

    async fn command_once(
        &mut self,
        command: &str,
        on_untagged: impl FnMut(&Response<'_>) -> Result<(), ImapError>,
    ) -> Result<Done, ImapError> {
        let tag = self.send(command).await?;
        self.read_until_done(&tag, command, on_untagged).await
    }

    /// Write one command, within the timeout; its tag.
    async fn send(
        &mut self,
        command: &str,
    ) -> Result<async_imap::imap_proto::RequestId, ImapError> {
        tokio::time::timeout(self.timeout, self.conn.session.run_command(command))
            .await
            .map_err(|_| ImapError::Timeout {
                what: "sending a command",
                limit: self.timeout,
            })?
            .map_err(|e| ImapError::lib(&e, format_args!("sending {}", verb(command))))
    }

    /// Send every command before reading any answer, then read each one's through its
    /// tagged completion, in order; untagged data of all of them goes to `on_untagged`.
    /// A command the server refuses fails the whole call, but only after every answer
    /// was read, so the session stays in step.
    pub(super) async fn pipelined(
        &mut self,
        commands: &[String],
        mut on_untagged: impl FnMut(&Response<'_>) -> Result<(), ImapError>,
    ) -> Result<(), ImapError> {
        let mut tags = Vec::with_capacity(commands.len());
        for command in commands {
            tags.push(self.send(command).await?);
        }
        let mut first_error = None;
        for (tag, command) in tags.iter().zip(commands) {
            match self.read_until_done(tag, command, &mut on_untagged).await {
                Ok(_) => {}
                Err(e @ (ImapError::Protocol(_) | ImapError::Throttled { .. })) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn read_until_done(
        &mut self,
        tag: &async_imap::imap_proto::RequestId,
        command: &str,
        mut on_untagged: impl FnMut(&Response<'_>) -> Result<(), ImapError>,
    ) -> Result<Done, ImapError> {
        loop {
            let response = tokio::time::timeout(self.timeout, self.conn.session.read_response())
                .await
                .map_err(|_| ImapError::Timeout {
                    what: "waiting for the server",
                    limit: self.timeout,
                })?
                .map_err(|e| ImapError::io(&e, format_args!("during {}", verb(command))))?
                .ok_or_else(|| {
                    ImapError::Connect(format!(
                        "the server closed the connection during {}",
                        verb(command)
                    ))
                })?;
            match response.parsed() {
                Response::Done {
                    tag: t,
                    status,
                    outcome,
                } if t == tag => {
                    let information = outcome.information.as_deref().map(str::to_owned);
                    return match status {
                        Status::Ok => Ok(Done {
                            code: TaggedCode::from(&outcome.code),
                            information,
                        }),
                        _ if information.as_deref().is_some_and(super::says_over_limit) => {
                            Err(ImapError::OverLimit(information.unwrap_or_default()))
                        }
                        Status::No if throttle_backoff(information.as_deref()).is_some() => {
                            Err(ImapError::Throttled {
                                what: verb(command).to_owned(),
                                backoff: throttle_backoff(information.as_deref())
                                    .unwrap_or(DEFAULT_BACKOFF),
                                attempts: 1,
                            })
                        }
                        _ => Err(ImapError::Protocol(format!(
                            "{} failed: {:?} {}",
                            verb(command),
                            status,
                            information.unwrap_or_default()
                        ))),
                    };
                }
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } if outcome
                    .information
                    .as_deref()
                    .is_some_and(super::says_over_limit) =>
                {
                    return Err(ImapError::OverLimit(
                        outcome
                            .information
                            .as_deref()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                }
                Response::Data {
                    status: Status::Bye,
                    outcome,
                } => {
                    return Err(ImapError::Connect(format!(
                        "the server closed the session: {}",
                        outcome.information.as_deref().unwrap_or("BYE")
                    )));
                }
                other => on_untagged(other)?,
            }
        }
    }

    /// SELECT a folder; with QRESYNC and known state, one round trip tells what changed.
    pub async fn select(
        &mut self,
        wire_name: &str,
        known: Option<(UidValidity, ModSeq)>,
    ) -> Result<Selected, ImapError> {
        let mut command = format!("SELECT {}", quote(wire_name)?);
        tracing::debug!(folder = wire_name, "selecting");
        let qresync = self.qresync && known.is_some();
        if let (true, Some((uv, ms))) = (qresync, known) {
            command.push_str(&format!(" (QRESYNC ({} {}))", uv.0, ms.0));
        } else if self.condstore {
            command.push_str(" (CONDSTORE)");
        }
        // A SELECT closes the folder selected before, even when it fails (RFC 3501).
        self.selected = None;
        let mut selected = Selected::default();
        // VANISHED ranges are expanded; past the bound the incremental answer is dropped
        // and the folder listed in full instead (rule 18: `1:4294967295` is 20 bytes).
        let mut vanished_overflow = false;
        let answer = self
            .command(&command, |r| {
                match r {
                    Response::Data { outcome, .. } => match &outcome.code {
                        Some(ResponseCode::UidValidity(v)) => {
                            selected.uidvalidity = Some(UidValidity(*v))
                        }
                        Some(ResponseCode::UidNext(v)) => selected.uidnext = Some(Uid(*v)),
                        Some(ResponseCode::HighestModSeq(v)) => {
                            selected.highestmodseq = Some(ModSeq(*v))
                        }
                        _ => {}
                    },
                    Response::MailboxData(MailboxDatum::Exists(n)) => selected.exists = *n,
                    Response::Vanished { uids, .. } => {
                        for range in uids {
                            let n = range_len(*range.start(), *range.end());
                            if selected.vanished.len() as u64 + n > MAX_SET_MEMBERS as u64 {
                                vanished_overflow = true;
                            }
                            if !vanished_overflow {
                                selected.vanished.extend(range.clone().map(Uid));
                            }
                        }
                    }
                    Response::Fetch(_, attrs) => {
                        if let Some(uid) = uid_of(attrs) {
                            selected
                                .changed
                                .insert(uid, flags_of(attrs).unwrap_or_default());
                        }
                    }
                    _ => {}
                }
                Ok(())
            })
            .await;
        if let Err(ImapError::Protocol(why)) = &answer
            && self.is_gone(wire_name, why).await?
        {
            return Err(ImapError::NoSuchFolder(format!(
                "{wire_name} is no longer on the server ({why})"
            )));
        }
        answer?;
        if selected.uidvalidity.is_none() {
            return Err(ImapError::Protocol(format!(
                "SELECT {wire_name} gave no UIDVALIDITY"
            )));
        }
        self.selected_uidnext = selected.uidnext;
        self.selected = Some(wire_name.to_owned());
        // The incremental answer is valid only if UIDVALIDITY is still the one we know.
        selected.resynced =
            qresync && known.map(|(uv, _)| uv) == selected.uidvalidity && !vanished_overflow;
        if !selected.resynced {
            selected.vanished.clear();
            selected.changed.clear();
        }
        Ok(selected)
    }

    /// Whether a refused SELECT means the folder is gone: the server says so
    /// (`[NONEXISTENT]`, RFC 5530), or, for servers without that code (Courier, GNU
    /// imap4d), a LIST of the name comes back empty.
    pub(crate) async fn is_gone(
        &mut self,
        wire_name: &str,
        refusal: &str,
    ) -> Result<bool, ImapError> {
        if refusal.contains("[NONEXISTENT]") {
            return Ok(true);
        }
        let mut listed = false;
        self.command(&format!("LIST \"\" {}", quote(wire_name)?), |r| {
            listed |= matches!(r, Response::MailboxData(MailboxDatum::List { .. }));
            Ok(())
        })
        .await?;
        Ok(!listed)
    }

    /// Flags (and sizes, MODSEQs) of messages in `uids` (`1:*` for all), optionally
    /// only those changed since a modseq (CONDSTORE).
    pub async fn fetch_flags(
        &mut self,
        uids: &str,
        changed_since: Option<ModSeq>,
    ) -> Result<BTreeMap<Uid, RemoteMessage>, ImapError> {
        let mut out = BTreeMap::new();
        for set in self.split_set(uids) {
            match self.fetch_flags_in(&set, changed_since, &mut out).await {
                // A server that advertises OBJECTID (or X-GM-EXT-1) but refuses the item
                // (a proxy's capability list, a half-done implementation): the session
                // goes on without server identities, so nothing is linked, nothing lost.
                Err(ImapError::Protocol(why)) if self.identity.is_some() => {
                    tracing::warn!(
                        item = self.identity.map(Identity::fetch_item),
                        "the server advertises it but refused to fetch it ({why}); messages in several folders are stored once per folder"
                    );
                    self.identity = None;
                    self.fetch_flags_in(&set, changed_since, &mut out).await?;
                }
                other => other?,
            }
        }
        Ok(out)
    }

    async fn fetch_flags_in(
        &mut self,
        uids: &str,
        changed_since: Option<ModSeq>,
        out: &mut BTreeMap<Uid, RemoteMessage>,
    ) -> Result<(), ImapError> {
        let mut command = format!("UID FETCH {uids} (UID FLAGS RFC822.SIZE");
        if self.condstore {
            command.push_str(" MODSEQ");
        }
        if let Some(identity) = self.identity {
            command.push(' ');
            command.push_str(identity.fetch_item());
        }
        command.push(')');
        if let Some(ms) = changed_since.filter(|_| self.condstore) {
            command.push_str(&format!(" (CHANGEDSINCE {})", ms.0));
        }
        self.command(&command, |r| {
            if let Response::Fetch(_, attrs) = r
                && let (Some(uid), Some(flags)) = (uid_of(attrs), flags_of(attrs))
            {
                let size = attrs.iter().find_map(|a| match a {
                    AttributeValue::Rfc822Size(s) => Some(u64::from(*s)),
                    _ => None,
                });
                let modseq = attrs.iter().find_map(|a| match a {
                    AttributeValue::ModSeq(m) => Some(ModSeq(*m)),
                    _ => None,
                });
                out.insert(
                    uid,
                    RemoteMessage {
                        flags,
                        size,
                        modseq,
                        email_id: email_id_of(attrs),
                    },
                );
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// The UID of the message at sequence number `seq` in the selected folder (`FETCH seq
    /// (UID)`); `None` past the end (a server refuses a number above EXISTS, or answers
    /// nothing).
    pub async fn uid_at(&mut self, seq: u32) -> Result<Option<Uid>, ImapError> {
        let mut out = None;
        let asked = self
            .command(&format!("FETCH {seq} (UID)"), |r| {
                // (An unsolicited FETCH of the same message without its UID says nothing.)
                if let Response::Fetch(n, attrs) = r
                    && *n == seq
                    && let Some(uid) = uid_of(attrs)
                {
                    out = Some(uid);
                }
                Ok(())
            })
            .await;
        match asked {
            Ok(_) => Ok(out),
            Err(ImapError::Protocol(why)) => {
                tracing::debug!("no message {seq} in the folder: {why}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Every UID in the selected folder (`UID SEARCH ALL`), for finding expunges where
    /// QRESYNC is missing.
    pub async fn all_uids(&mut self) -> Result<BTreeSet<Uid>, ImapError> {
        self.search("ALL").await
    }

    /// Which of these UIDs the selected folder still holds.
    pub async fn present(&mut self, uids: &[Uid]) -> Result<BTreeSet<Uid>, ImapError> {
        if uids.is_empty() {
            return Ok(BTreeSet::new());
        }
        let asked: BTreeSet<Uid> = uids.iter().copied().collect();
        let found = self.search(&format!("UID {}", uid_set(uids))).await?;
        Ok(found.intersection(&asked).copied().collect())
    }

    /// `UID SEARCH <criteria>`. Under MESSAGELIMIT the search is made over UID ranges
    /// of at most that many messages each (a leading `UID <set>` criterion is split, and
    /// one without it searches the whole folder range by range).
    pub async fn search(&mut self, criteria: &str) -> Result<BTreeSet<Uid>, ImapError> {
        let commands = match self.message_limit {
            None => vec![format!("UID SEARCH {criteria}")],
            Some(_) => {
                let (set, rest) = leading_uid_set(criteria);
                let set = set.unwrap_or("1:*");
                let rest = if rest.eq_ignore_ascii_case("ALL") {
                    ""
                } else {
                    rest
                };
                self.split_set(set)
                    .into_iter()
                    .map(|s| format!("UID SEARCH UID {s} {rest}").trim_end().to_owned())
                    .collect()
            }
        };
        let mut out = BTreeSet::new();
        for command in commands {
            self.command(&command, |r| {
                if let Response::MailboxData(MailboxDatum::Search(uids)) = r {
                    out.extend(uids.iter().copied().map(Uid));
                }
                Ok(())
            })
            .await?;
        }
        Ok(out)
    }

    /// A UID set as commands may carry it: the set itself, or under MESSAGELIMIT (RFC
    /// 9738) several sets of at most that many messages each. An explicit set is cut
    /// into runs of its members; `n:*` into UID ranges up to the selected folder's
    /// UIDNEXT, each no wider than the limit (so it can never name more), the last one
    /// open-ended so a message that arrived since SELECT is still listed.
    fn split_set(&self, set: &str) -> Vec<String> {
        let Some(limit) = self.message_limit else {
            return vec![set.to_owned()];
        };
        split_uid_set(set, limit, self.selected_uidnext)
    }

    /// Explicit UIDs in runs of at most MESSAGELIMIT each (one run without a limit).
    fn chunks(&self, uids: &[Uid]) -> Vec<Vec<Uid>> {
        let sorted: Vec<Uid> = uids
            .iter()
            .copied()
            .collect::<BTreeSet<Uid>>()
            .into_iter()
            .collect();
        match self.message_limit {
            Some(limit) => sorted.chunks(limit as usize).map(<[Uid]>::to_vec).collect(),
            None if sorted.is_empty() => Vec::new(),
            None => vec![sorted],
        }
    }

    /// Fetch whole messages without setting \Seen (rule 12), handing each to `sink` as it
    /// arrives. Returns the UIDs that did not come back (expunged meanwhile); a FETCH for
    /// a UID we did not ask for is ignored, never written.
    pub async fn fetch_bodies(
        &mut self,
        uids: &[Uid],
        mut sink: impl FnMut(FetchedBody<'_>) -> Result<(), ImapError>,
    ) -> Result<BTreeSet<Uid>, ImapError> {
        let mut pending: BTreeSet<Uid> = uids.iter().copied().collect();
        if pending.is_empty() {
            return Ok(pending);
        }
        for chunk in self.chunks(uids) {
            self.fetch_bodies_in(&chunk, &mut pending, &mut sink)
                .await?;
        }
        Ok(pending)
    }

    async fn fetch_bodies_in(
        &mut self,
        uids: &[Uid],
        pending: &mut BTreeSet<Uid>,
        sink: &mut impl FnMut(FetchedBody<'_>) -> Result<(), ImapError>,
    ) -> Result<(), ImapError> {
        let set = uid_set(uids);
        let command = format!("UID FETCH {set} (UID FLAGS INTERNALDATE BODY.PEEK[])");
        self.command(&command, |r| {
            let Response::Fetch(_, attrs) = r else {
                return Ok(());
            };
            let Some(uid) = uid_of(attrs) else {
                return Ok(());
            };
            let body = attrs.iter().find_map(|a| match a {
                AttributeValue::BodySection {
                    section: None,
                    data: Some(d),
                    ..
                } => Some(d.as_ref()),
                _ => None,
            });
            let Some(body) = body else {
                // A flag update for some message: a hint only.
                return Ok(());
            };
            if !pending.remove(&uid) {
                tracing::warn!(
                    uid = uid.0,
                    "the server sent a message we did not ask for; ignored"
                );
                return Ok(());
            }
            let internaldate = attrs.iter().find_map(|a| match a {
                AttributeValue::InternalDate(d) => Some(d.as_ref()),
                _ => None,
            });
            sink(FetchedBody {
                uid,
                flags: flags_of(attrs).unwrap_or_default(),
                internaldate,
                body,
            })
        })
        .await?;
        Ok(())
    }

    /// `(Message-ID, size)` of messages, for re-pairing after a UIDVALIDITY change and
    /// for recognising a message that moved between folders.
    pub async fn fetch_identities(
        &mut self,
        uids: &str,
    ) -> Result<BTreeMap<Uid, (Option<MessageId>, u64)>, ImapError> {
        let mut out = BTreeMap::new();
        for set in self.split_set(uids) {
            self.fetch_identities_in(&set, &mut out).await?;
        }
        Ok(out)
    }

    async fn fetch_identities_in(
        &mut self,
        uids: &str,
        out: &mut BTreeMap<Uid, (Option<MessageId>, u64)>,
    ) -> Result<(), ImapError> {
        let command =
            format!("UID FETCH {uids} (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
        self.command(&command, |r| {
            if let Response::Fetch(_, attrs) = r
                && let Some(uid) = uid_of(attrs)
            {
                let size = attrs.iter().find_map(|a| match a {
                    AttributeValue::Rfc822Size(s) => Some(u64::from(*s)),
                    _ => None,
                });
                let header = attrs.iter().find_map(|a| match a {
                    AttributeValue::BodySection { data: Some(d), .. } => Some(d.as_ref()),
                    _ => None,
                });
                if let Some(size) = size {
                    out.insert(uid, (header.and_then(MessageId::from_header), size));
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// The header blocks (`BODY.PEEK[HEADER]`) of these messages, as the server stores them.
    pub async fn fetch_headers(
        &mut self,
        uids: &[Uid],
    ) -> Result<BTreeMap<Uid, Vec<u8>>, ImapError> {
        let mut out = BTreeMap::new();
        for chunk in self.chunks(uids) {
            let command = format!("UID FETCH {} (UID BODY.PEEK[HEADER])", uid_set(&chunk));
            self.command(&command, |r| {
                if let Response::Fetch(_, attrs) = r
                    && let Some(uid) = uid_of(attrs)
                    && chunk.contains(&uid)
                    && let Some(header) = attrs.iter().find_map(|a| match a {
                        AttributeValue::BodySection { data: Some(d), .. } => Some(d.as_ref()),
                        _ => None,
                    })
                {
                    out.insert(uid, header.to_vec());
                }
                Ok(())
            })
            .await?;
        }
        Ok(out)
    }

    /// APPEND a message and return its UID from APPENDUID (UIDPLUS), if the server gave
    /// one. Sent raw because async-imap's `append` drops the response code. The message
    /// goes with CRLF line endings whatever `body` uses (rule 23: Cyrus refuses bare LF,
    /// and mutt, neomutt and aerc write LF files); the server's copy is then
    /// [`crate::model::crlf_size`] bytes long. A message above the server's APPENDLIMIT is
    /// not sent ([`ImapError::TooLarge`]); a throttled APPEND (nothing stored) is waited
    /// for and sent again, like any command.
    pub async fn append(
        &mut self,
        wire_name: &str,
        flags: &Flags,
        internaldate: Option<&str>,
        body: &[u8],
    ) -> Result<Option<(UidValidity, Uid)>, ImapError> {
        let body = crate::model::to_crlf(body);
        let body: &[u8] = &body;
        if let Some(limit) = self.append_limit
            && body.len() as u64 > limit
        {
            return Err(ImapError::TooLarge {
                size: body.len() as u64,
                limit,
            });
        }
        let mut attempt = 0;
        loop {
            let result = self.append_once(wire_name, flags, internaldate, body).await;
            if let Some(done) = after_throttling(result, &mut attempt, "APPEND").await {
                return done;
            }
        }
    }

    async fn append_once(
        &mut self,
        wire_name: &str,
        flags: &Flags,
        internaldate: Option<&str>,
        body: &[u8],
    ) -> Result<Option<(UidValidity, Uid)>, ImapError> {
        let mut flag_list: Vec<String> = flags.imap_names();
        // \Recent can never be set by a client; keywords must be atoms.
        flag_list.retain(|f| is_atom(f.trim_start_matches('\\')));
        let mut command = format!("APPEND {} ({})", quote(wire_name)?, flag_list.join(" "));
        if let Some(date) = internaldate {
            command.push_str(&format!(" \"{date}\""));
        }
        // LITERAL- (RFC 7888) saves the round trip for small messages only.
        let non_sync = self.literal_plus || (self.literal_minus && body.len() <= LITERAL_MINUS_MAX);
        let plus = if non_sync { "+" } else { "" };
        command.push_str(&format!(" {{{}{plus}}}", body.len()));
        let tag = tokio::time::timeout(self.timeout, self.conn.session.run_command(&command))
            .await
            .map_err(|_| ImapError::Timeout {
                what: "sending APPEND",
                limit: self.timeout,
            })?
            .map_err(|e| ImapError::lib(&e, "sending APPEND"))?;
        if !non_sync {
            self.wait_continuation().await?;
        }
        let write = async {
            let stream = self.conn.session.get_mut();
            stream.write_all(body).await?;
            stream.write_all(b"\r\n").await?;
            stream.flush().await
        };
        tokio::time::timeout(self.timeout.max(Duration::from_secs(300)), write)
            .await
            .map_err(|_| ImapError::Timeout {
                what: "sending a message",
                limit: self.timeout,
            })?
            .map_err(|e| ImapError::Connect(format!("sending a message: {e}")))?;
        let done = self.read_until_done(&tag, "APPEND", |_| Ok(())).await?;
        Ok(match done.code {
            Some(TaggedCode::AppendUid(uv, uids)) => match uids.as_slice() {
                [uid] => Some((UidValidity(uv), Uid(*uid))),
                _ => None,
            },
            _ => None,
        })
    }

    async fn wait_continuation(&mut self) -> Result<(), ImapError> {
        loop {
            let response = tokio::time::timeout(self.timeout, self.conn.session.read_response())
                .await
                .map_err(|_| ImapError::Timeout {
                    what: "waiting for APPEND continuation",
                    limit: self.timeout,
                })?
                .map_err(|e| ImapError::io(&e, "during APPEND"))?
                .ok_or_else(|| {
                    ImapError::Connect("the server closed the connection during APPEND".into())
                })?;
            match response.parsed() {
                Response::Continue { .. } => return Ok(()),
                Response::Done {
                    status, outcome, ..
                } => {
                    let text = outcome.information.as_deref();
                    if let (Status::No, Some(backoff)) = (status, throttle_backoff(text)) {
                        return Err(ImapError::Throttled {
                            what: "APPEND".into(),
                            backoff,
                            attempts: 1,
                        });
                    }
                    return Err(ImapError::Protocol(format!(
                        "APPEND refused: {}",
                        text.unwrap_or("")
                    )));
                }
                _ => {}
            }
        }
    }

    /// `UID STORE uids ±FLAGS.SILENT (...)`, never a bare FLAGS replace (rule 10), guarded
    /// by UNCHANGEDSINCE when CONDSTORE is on.
    pub async fn store(
        &mut self,
        uids: &[Uid],
        add: bool,
        flags: &Flags,
        unchanged_since: Option<ModSeq>,
    ) -> Result<StoreOutcome, ImapError> {
        let names: Vec<String> = flags.imap_names();
        if uids.is_empty() || names.is_empty() {
            return Ok(StoreOutcome::default());
        }
        let modifier = match unchanged_since.filter(|_| self.condstore) {
            Some(ms) => format!(" (UNCHANGEDSINCE {})", ms.0),
            None => String::new(),
        };
        let mut modified = BTreeSet::new();
        for chunk in self.chunks(uids) {
            let command = format!(
                "UID STORE {}{modifier} {}FLAGS.SILENT ({})",
                uid_set(&chunk),
                if add { '+' } else { '-' },
                names.join(" ")
            );
            let done = self.command(&command, |_| Ok(())).await?;
            modified.extend(
                done.information
                    .as_deref()
                    .and_then(|text| text.strip_prefix("[MODIFIED "))
                    .and_then(|rest| rest.split(']').next())
                    .map(|set| parse_uid_set_within(set, &chunk))
                    .unwrap_or_default(),
            );
        }
        Ok(StoreOutcome { modified })
    }

    /// Delete exactly these messages: `\Deleted`, then `UID EXPUNGE` of the same UIDs
    /// (rule 8). Without UIDPLUS, a folder-wide expunge only when `UID SEARCH DELETED`,
    /// asked right before, shows no message but ours: it would also remove what another
    /// client marked. Otherwise ours stay marked, and the caller says
    /// why and tries again next pass.
    pub async fn delete(&mut self, uids: &[Uid]) -> Result<Deleted, ImapError> {
        if uids.is_empty() {
            return Ok(Deleted::Expunged);
        }
        for chunk in self.chunks(uids) {
            self.command(
                &format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", uid_set(&chunk)),
                |_| Ok(()),
            )
            .await?;
        }
        self.expunge_ours(uids).await
    }

    /// Expunge these messages, already marked `\Deleted`, as [`ImapSession::delete`] does.
    pub async fn expunge_ours(&mut self, uids: &[Uid]) -> Result<Deleted, ImapError> {
        if uids.is_empty() {
            return Ok(Deleted::Expunged);
        }
        if self.uidplus {
            for chunk in self.chunks(uids) {
                self.command(&format!("UID EXPUNGE {}", uid_set(&chunk)), |_| Ok(()))
                    .await?;
            }
            return Ok(Deleted::Expunged);
        }
        let ours: BTreeSet<Uid> = uids.iter().copied().collect();
        let others: BTreeSet<Uid> = self
            .search("DELETED")
            .await?
            .into_iter()
            .filter(|u| !ours.contains(u))
            .collect();
        if !others.is_empty() {
            return Ok(Deleted::LeftMarked { others });
        }
        // CLOSE removes what EXPUNGE would, under the same check, but answers nothing
        // untagged: GNU imap4d 3.15 answers EXPUNGE with `* n EXPUNGED`, which no parser
        // reads, and the connection is stuck on that line. The folder is opened again.
        self.command("CLOSE", |_| Ok(())).await?;
        if let Some(name) = self.selected.take() {
            self.select(&name, None).await?;
        }
        Ok(Deleted::Expunged)
    }

    /// `UID COPY` to another folder: a move to the trash folder where MOVE is missing
    /// (the originals are then deleted as [`ImapSession::delete`] does).
    pub async fn copy_to(&mut self, uids: &[Uid], dest_wire_name: &str) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        for chunk in self.chunks(uids) {
            let command = format!("UID COPY {} {}", uid_set(&chunk), quote(dest_wire_name)?);
            self.command(&command, |_| Ok(())).await?;
        }
        Ok(())
    }

    /// `UID MOVE` (RFC 6851) to another folder; returns the new UIDs from COPYUID when
    /// the server reports them, keyed by old UID.
    pub async fn move_to(
        &mut self,
        uids: &[Uid],
        dest_wire_name: &str,
    ) -> Result<BTreeMap<Uid, Uid>, ImapError> {
        if uids.is_empty() {
            return Ok(BTreeMap::new());
        }
        if !self.has_move {
            return Err(ImapError::Protocol("the server lacks MOVE".into()));
        }
        let mut mapping = BTreeMap::new();
        for chunk in self.chunks(uids) {
            mapping.extend(self.move_chunk(&chunk, dest_wire_name).await?);
        }
        Ok(mapping)
    }

    async fn move_chunk(
        &mut self,
        uids: &[Uid],
        dest_wire_name: &str,
    ) -> Result<BTreeMap<Uid, Uid>, ImapError> {
        let mut mapping = BTreeMap::new();
        let command = format!("UID MOVE {} {}", uid_set(uids), quote(dest_wire_name)?);
        let mut copyuid = None;
        let done = self
            .command(&command, |r| {
                // Servers send COPYUID in an untagged OK before the expunges.
                if let Response::Data { outcome, .. } = r
                    && let Some(ResponseCode::CopyUid(_, from, to)) = &outcome.code
                {
                    copyuid = expand(from).zip(expand(to));
                }
                Ok(())
            })
            .await?;
        if let Some(TaggedCode::CopyUid(from, to)) = done.code {
            copyuid = Some((from, to));
        }
        if let Some((from, to)) = copyuid
            && from.len() == to.len()
        {
            mapping.extend(from.into_iter().map(Uid).zip(to.into_iter().map(Uid)));
        }
        Ok(mapping)
    }

    pub async fn create(&mut self, wire_name: &str) -> Result<(), ImapError> {
        self.command(&format!("CREATE {}", quote(wire_name)?), |_| Ok(()))
            .await
            .map(|_| ())
    }

    /// How many messages a folder holds (`STATUS ... (MESSAGES)`), without selecting it.
    pub async fn message_count(&mut self, wire_name: &str) -> Result<u32, ImapError> {
        self.status_item(wire_name, "MESSAGES", |a| match a {
            imap_proto::StatusAttribute::Messages(n) => Some(*n),
            _ => None,
        })
        .await
    }

    /// A folder's UIDVALIDITY (`STATUS ... (UIDVALIDITY)`), without selecting it.
    pub async fn uidvalidity(&mut self, wire_name: &str) -> Result<UidValidity, ImapError> {
        self.status_item(wire_name, "UIDVALIDITY", |a| match a {
            imap_proto::StatusAttribute::UidValidity(v) => Some(UidValidity(*v)),
            _ => None,
        })
        .await
    }

    /// One STATUS item of a folder, picked from the answer; an answer without it is the
    /// server's error.
    async fn status_item<T>(
        &mut self,
        wire_name: &str,
        item: &str,
        pick: impl Fn(&imap_proto::StatusAttribute) -> Option<T>,
    ) -> Result<T, ImapError> {
        let mut found = None;
        self.command(
            &format!("STATUS {} ({item})", quote(wire_name)?),
            |response| {
                if let Response::MailboxData(MailboxDatum::Status { status, .. }) = response {
                    found = status.iter().find_map(&pick).or(found.take());
                }
                Ok(())
            },
        )
        .await?;
        found.ok_or_else(|| {
            ImapError::Protocol(format!("STATUS {wire_name:?} came back without {item}"))
        })
    }

    /// `DELETE` a folder. The server removes whatever it still holds, so the caller
    /// makes sure it is empty first (rule 9).
    pub async fn delete_folder(&mut self, wire_name: &str) -> Result<(), ImapError> {
        self.command(&format!("DELETE {}", quote(wire_name)?), |_| Ok(()))
            .await
            .map(|_| ())
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.conn.session.logout()).await;
    }
}

fn verb(command: &str) -> &str {
    let mut words = command.split_whitespace();
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("UID") => {
            // "UID FETCH" etc.: name both words without the arguments.
            let end = command
                .find(|c: char| c.is_whitespace())
                .and_then(|i| command[i + 1..].find(' ').map(|j| i + 1 + j))
                .unwrap_or(command.len());
            &command[..end]
        }
        Some(w) => w,
        None => "command",
    }
}

/// The number in a `NAME=n` capability (`MESSAGELIMIT=1000`, `APPENDLIMIT=35651584`).
/// A bare `APPENDLIMIT` (a limit per folder, RFC 7889) gives none.
fn capability_value(capabilities: &[String], name: &str) -> Option<u64> {
    capabilities.iter().find_map(|c| {
        let (key, value) = c.split_once('=')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// A throttling refusal (`NO Request is throttled. Suggested Backoff Time: 500
/// milliseconds`, as Microsoft 365 sends it) and the wait it asks for, capped; `None`
/// for any other NO. Recognised by its words, not by who sent it.
fn throttle_backoff(text: Option<&str>) -> Option<Duration> {
    let lower = text?.to_ascii_lowercase();
    if !lower.contains("throttl") {
        return None;
    }
    let suggested = lower.split_once("backoff time:").and_then(|(_, rest)| {
        let mut words = rest.split_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        Some(match words.next().unwrap_or("milliseconds") {
            u if u.starts_with("sec") || u == "s" => Duration::from_secs(n),
            _ => Duration::from_millis(n),
        })
    });
    Some(suggested.unwrap_or(DEFAULT_BACKOFF).min(MAX_BACKOFF))
}

/// `UID <set> rest` -> (`Some(set)`, `rest`); anything else -> (`None`, all of it).
fn leading_uid_set(criteria: &str) -> (Option<&str>, &str) {
    let mut parts = criteria.trim().splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(word), Some(set))
            if word.eq_ignore_ascii_case("UID")
                && !set.is_empty()
                && set
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b":,*".contains(&b)) =>
        {
            (Some(set), parts.next().unwrap_or("").trim())
        }
        _ => (None, criteria.trim()),
    }
}

/// A UID set cut into sets of at most `limit` messages each (see
/// [`ImapSession::split_set`]). What cannot be cut safely (a `*` anywhere but a lone
/// `n:*`, or no UIDNEXT known) is returned as it is: the server then says what it thinks.
fn split_uid_set(set: &str, limit: u32, uidnext: Option<Uid>) -> Vec<String> {
    let limit = limit.max(1);
    if set.contains('*') {
        let Some(start) = set
            .strip_suffix(":*")
            .and_then(|s| s.parse::<u32>().ok())
            .map(|s| s.max(1))
        else {
            return vec![set.to_owned()];
        };
        let Some(Uid(next)) = uidnext else {
            return vec![set.to_owned()];
        };
        let mut out = Vec::new();
        let mut from = start;
        // Closed ranges while more than one range's worth is left before UIDNEXT.
        while u64::from(from) + u64::from(limit) < u64::from(next) {
            let to = from + (limit - 1);
            out.push(format!("{from}:{to}"));
            from = to + 1;
        }
        out.push(format!("{from}:*"));
        return out;
    }
    let mut members: Vec<u32> = Vec::new();
    for part in set.split(',') {
        let mut ends = part.split(':').map(|n| n.trim().parse::<u32>());
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), Some(Ok(b))) => {
                if members.len() as u64 + range_len(a.min(b), a.max(b)) > MAX_SET_MEMBERS as u64 {
                    return vec![set.to_owned()];
                }
                members.extend(a.min(b)..=a.max(b));
            }
            (Some(Ok(a)), None) => members.push(a),
            _ => return vec![set.to_owned()],
        }
    }
    members.sort_unstable();
    members.dedup();
    if members.len() <= limit as usize {
        return vec![set.to_owned()];
    }
    members
        .chunks(limit as usize)
        .map(|c| uid_set(&c.iter().copied().map(Uid).collect::<Vec<_>>()))
        .collect()
}

fn uid_of(attrs: &[AttributeValue<'_>]) -> Option<Uid> {
    attrs.iter().find_map(|a| match a {
        AttributeValue::Uid(u) => Some(Uid(*u)),
        _ => None,
    })
}

fn flags_of(attrs: &[AttributeValue<'_>]) -> Option<Flags> {
    attrs.iter().find_map(|a| match a {
        AttributeValue::Flags(f) => Some(Flags::from_imap(f.iter().map(|c| c.as_ref()))),
        _ => None,
    })
}

/// The most UIDs a set in a server answer (APPENDUID, COPYUID, VANISHED) is expanded
/// to: `1:4294967295` is a few bytes on the wire and 16 GiB as a list (rule 18).
const MAX_SET_MEMBERS: usize = 1 << 20;

fn range_len(start: u32, end: u32) -> u64 {
    if end >= start {
        u64::from(end - start) + 1
    } else {
        0
    }
}

/// A UID set from a response code, or `None` if it is larger than [`MAX_SET_MEMBERS`]
/// (then treated as if the server had not sent it).
fn expand(members: &[imap_proto::rfc4315::UidSetMember]) -> Option<Vec<u32>> {
    use imap_proto::rfc4315::UidSetMember;
    let total: u64 = members
        .iter()
        .map(|m| match m {
            UidSetMember::Uid(_) => 1,
            UidSetMember::UidRange(r) => range_len(*r.start(), *r.end()),
        })
        .sum();
    if total > MAX_SET_MEMBERS as u64 {
        return None;
    }
    Some(
        members
            .iter()
            .flat_map(|m| match m {
                UidSetMember::Uid(u) => *u..=*u,
                UidSetMember::UidRange(r) => r.clone(),
            })
            .collect(),
    )
}

/// What to do with a command's result when the server may throttle: `None` after
/// waiting as it asked (send the command again), else the final result, a throttled
/// one once [`THROTTLE_RETRIES`] waits are spent.
async fn after_throttling<T>(
    result: Result<T, ImapError>,
    attempt: &mut u32,
    command: &str,
) -> Option<Result<T, ImapError>> {
    match result {
        Err(ImapError::Throttled { backoff, .. }) if *attempt < THROTTLE_RETRIES => {
            *attempt += 1;
            tracing::info!(
                command,
                wait_ms = backoff.as_millis() as u64,
                attempt = *attempt,
                "the server throttles; waiting as it asks"
            );
            tokio::time::sleep(backoff).await;
            None
        }
        Err(ImapError::Throttled { backoff, what, .. }) => Some(Err(ImapError::Throttled {
            what,
            backoff,
            attempts: *attempt + 1,
        })),
        other => Some(other),
    }
}

/// A quoted string for a mailbox name that is already in modified UTF-7 (so ASCII).
pub fn quote(name: &str) -> Result<String, ImapError> {
    if name
        .bytes()
        .any(|b| b == b'\r' || b == b'\n' || b == 0 || !b.is_ascii())
    {
        return Err(ImapError::Protocol(format!(
            "folder name {name:?} cannot be sent as a quoted string"
        )));
    }
    Ok(format!(
        "\"{}\"",
        name.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

fn is_atom(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b > 0x20 && b < 0x7f && !b"(){ %*\"\\]".contains(&b))
}

/// `1:3,5` from UIDs (sorted and merged into ranges).
pub fn uid_set(uids: &[Uid]) -> String {
    let sorted: BTreeSet<u32> = uids.iter().map(|u| u.0).collect();
    let mut parts = Vec::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while end < u32::MAX && iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
    }
    parts.join(",")
}

/// Which of `ours` a UID set from the server (`[MODIFIED 1:3,5]`) names. Only our own
/// UIDs are kept, so a range of four billion costs nothing (rule 18).
fn parse_uid_set_within(text: &str, ours: &[Uid]) -> BTreeSet<Uid> {
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let mut ends = part.split(':').filter_map(|n| n.trim().parse::<u32>().ok());
        match (ends.next(), ends.next()) {
            (Some(a), Some(b)) => ranges.push((a.min(b), a.max(b))),
            (Some(a), None) => ranges.push((a, a)),
            _ => {}
        }
    }
    ours.iter()
        .copied()
        .filter(|u| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&u.0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_ranges() {
        let uids: Vec<Uid> = [5, 1, 2, 3, 9, 10, 7].into_iter().map(Uid).collect();
        assert_eq!(uid_set(&uids), "1:3,5,7,9:10");
        let ours: Vec<Uid> = (1..=12).map(Uid).collect();
        assert_eq!(
            parse_uid_set_within("1:3,5,10:9", &ours),
            [1, 2, 3, 5, 9, 10].into_iter().map(Uid).collect()
        );
        // A hostile range names nothing beyond what we sent.
        assert_eq!(
            parse_uid_set_within("1:4294967295", &ours[..2]),
            [1, 2].into_iter().map(Uid).collect()
        );
    }

    #[test]
    fn quoting_escapes_and_refuses_line_breaks() {
        assert_eq!(quote("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quote("a\r\nb").is_err());
        assert!(
            quote("Gr\u{f6}\u{df}e").is_err(),
            "must be UTF-7 encoded first"
        );
    }

    #[test]
    fn huge_uid_sets_in_answers_are_not_expanded() {
        use imap_proto::rfc4315::UidSetMember;
        let small = [UidSetMember::Uid(3), UidSetMember::UidRange(5..=7)];
        assert_eq!(expand(&small), Some(vec![3, 5, 6, 7]));
        let huge = [UidSetMember::UidRange(1..=u32::MAX)];
        assert_eq!(expand(&huge), None);
        let many = [
            UidSetMember::UidRange(1..=(1 << 19)),
            UidSetMember::UidRange(1..=(1 << 19)),
            UidSetMember::Uid(1),
        ];
        assert_eq!(expand(&many), None);
        assert_eq!(range_len(5, 4), 0);
        assert_eq!(range_len(0, u32::MAX), 1 << 32);
    }

    #[test]
    fn throttling_is_recognised_by_its_words_and_capped() {
        let m365 = "Request is throttled. Suggested Backoff Time: 500 milliseconds";
        assert_eq!(
            throttle_backoff(Some(m365)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            throttle_backoff(Some(
                "Request is throttled. Suggested Backoff Time: 9999 seconds"
            )),
            Some(MAX_BACKOFF)
        );
        assert_eq!(
            throttle_backoff(Some("Server is throttled")),
            Some(DEFAULT_BACKOFF)
        );
        assert_eq!(throttle_backoff(Some("Mailbox does not exist")), None);
        assert_eq!(throttle_backoff(None), None);
    }

    #[test]
    fn capability_values_are_read() {
        let caps: Vec<String> = [
            "IMAP4rev1",
            "MESSAGELIMIT=1000",
            "APPENDLIMIT",
            "appendlimit=35",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(capability_value(&caps, "MESSAGELIMIT"), Some(1000));
        assert_eq!(capability_value(&caps, "APPENDLIMIT"), Some(35));
        assert_eq!(capability_value(&caps[..3], "APPENDLIMIT"), None);
    }

    #[test]
    fn uid_sets_are_cut_to_the_message_limit() {
        // No cut needed.
        assert_eq!(split_uid_set("1:3,7", 4, None), ["1:3,7"]);
        // Explicit members in runs of the limit.
        assert_eq!(split_uid_set("1:5,9", 2, None), ["1:2", "3:4", "5,9"]);
        // `n:*` in ranges no wider than the limit up to UIDNEXT, the last one open.
        assert_eq!(
            split_uid_set("1:*", 1000, Some(Uid(2501))),
            ["1:1000", "1001:2000", "2001:*"]
        );
        assert_eq!(split_uid_set("1:*", 1000, Some(Uid(1001))), ["1:*"]);
        assert_eq!(
            split_uid_set("1:*", 1000, Some(Uid(1002))),
            ["1:1000", "1001:*"]
        );
        assert_eq!(split_uid_set("2400:*", 1000, Some(Uid(2501))), ["2400:*"]);
        // Unknown UIDNEXT or an odd set: left to the server.
        assert_eq!(split_uid_set("1:*", 10, None), ["1:*"]);
        assert_eq!(split_uid_set("1,5:*", 10, Some(Uid(100))), ["1,5:*"]);
        // A huge explicit range is not expanded (rule 18).
        assert_eq!(split_uid_set("1:4294967295", 10, None), ["1:4294967295"]);
    }

    #[test]
    fn a_leading_uid_criterion_is_split_off() {
        assert_eq!(
            leading_uid_set("UID 50:* HEADER Message-ID \"<a@b>\""),
            (Some("50:*"), "HEADER Message-ID \"<a@b>\"")
        );
        assert_eq!(leading_uid_set("UID 7"), (Some("7"), ""));
        assert_eq!(leading_uid_set("ALL"), (None, "ALL"));
        assert_eq!(leading_uid_set("DELETED"), (None, "DELETED"));
    }

    #[test]
    fn verbs_name_the_command_not_its_arguments() {
        assert_eq!(verb("UID FETCH 1:* (FLAGS)"), "UID FETCH");
        assert_eq!(verb("SELECT \"INBOX\""), "SELECT");
    }
}
