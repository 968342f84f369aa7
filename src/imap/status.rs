//! A folder's numbers without selecting it: `STATUS`, or one `LIST ... RETURN (STATUS
//! ...)` for every folder at once where the server has LIST-STATUS (RFC 5819). The
//! daemon's sweep compares them with the state to find the folders worth a pass.

use std::collections::BTreeMap;

use async_imap::imap_proto::{MailboxDatum, Response, StatusAttribute};

use super::{ImapError, ImapSession, ListedFolder, quote};

/// What STATUS says of a folder; absent numbers the server did not send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderStatus {
    pub uidvalidity: Option<u32>,
    pub uidnext: Option<u32>,
    pub messages: Option<u32>,
    pub highestmodseq: Option<u64>,
}

impl FolderStatus {
    fn absorb(&mut self, attributes: &[StatusAttribute]) {
        for a in attributes {
            match a {
                StatusAttribute::UidValidity(v) => self.uidvalidity = Some(*v),
                StatusAttribute::UidNext(v) => self.uidnext = Some(*v),
                StatusAttribute::Messages(v) => self.messages = Some(*v),
                StatusAttribute::HighestModSeq(v) => self.highestmodseq = Some(*v),
                _ => {}
            }
        }
    }
}

/// Every folder's numbers, by raw (wire) name, and the folder list when it came with them.
#[derive(Debug, Default)]
pub struct Statuses {
    pub folders: BTreeMap<String, FolderStatus>,
    /// With LIST-STATUS the sweep lists too: a new or deleted folder shows here.
    pub listed: Option<Vec<ListedFolder>>,
}

impl ImapSession {
    pub fn has_list_status(&mut self) -> bool {
        self.connected().has("LIST-STATUS")
    }

    /// The items to ask for: HIGHESTMODSEQ catches flag changes where CONDSTORE exists;
    /// without it only arrivals and expunges show (UIDNEXT, MESSAGES).
    fn status_items(&self) -> &'static str {
        if self.has_condstore() {
            "UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ"
        } else {
            "UIDVALIDITY UIDNEXT MESSAGES"
        }
    }

    /// The numbers of `wire_names` (LIST-STATUS: of every folder, in one round trip).
    pub async fn statuses(&mut self, wire_names: &[String]) -> Result<Statuses, ImapError> {
        let items = self.status_items();
        let mut out = Statuses::default();
        if self.has_list_status() {
            let mut listed = Vec::new();
            let folders = &mut out.folders;
            self.command(
                &format!("LIST \"\" \"*\" RETURN (STATUS ({items}))"),
                |response| {
                    match response {
                        Response::MailboxData(MailboxDatum::List(list)) => {
                            listed.push(super::listed_folder(list));
                        }
                        Response::MailboxData(MailboxDatum::Status { mailbox, status }) => {
                            folders
                                .entry(mailbox.to_string())
                                .or_default()
                                .absorb(status);
                        }
                        _ => {}
                    }
                    Ok(())
                },
            )
            .await?;
            listed.sort_by(|a, b| a.raw_name.cmp(&b.raw_name));
            out.listed = Some(listed);
            return Ok(out);
        }
        self.status_each(wire_names, items, &mut out).await?;
        Ok(out)
    }

    /// UIDVALIDITY and UIDNEXT of a few folders, a STATUS each: whether mail arrived.
    /// A NOOP first: a server may answer STATUS on the selected folder from its view as
    /// last synced (Dovecot does), and NOOP syncs it.
    pub async fn arrivals(&mut self, wire_names: &[String]) -> Result<Statuses, ImapError> {
        self.command("NOOP", |_| Ok(())).await?;
        let mut out = Statuses::default();
        self.status_each(wire_names, "UIDVALIDITY UIDNEXT", &mut out)
            .await?;
        Ok(out)
    }

    /// A STATUS each, pipelined: every command is sent before the first answer is read
    /// (in rounds of [`PIPELINE`]), so many folders cost about one round trip, not one
    /// each.
    async fn status_each(
        &mut self,
        wire_names: &[String],
        items: &str,
        out: &mut Statuses,
    ) -> Result<(), ImapError> {
        let commands: Vec<String> = wire_names
            .iter()
            .map(|wire| Ok(format!("STATUS {} ({items})", quote(wire)?)))
            .collect::<Result<_, ImapError>>()?;
        for round in commands.chunks(PIPELINE) {
            let folders = &mut out.folders;
            self.pipelined(round, |response| {
                if let Response::MailboxData(MailboxDatum::Status { mailbox, status }) = response {
                    folders
                        .entry(mailbox.to_string())
                        .or_default()
                        .absorb(status);
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// How many STATUS commands are in flight at once: enough that a hundred folders cost a
/// round trip or two, few enough that the answers never fill the socket buffers while
/// commands are still being written.
const PIPELINE: usize = 64;
