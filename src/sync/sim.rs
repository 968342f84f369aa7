//! An in-memory server and Maildir that apply a plan the way the engine will (idempotent
//! creates, +/- flag stores guarded by UNCHANGEDSINCE, per-pair base commits), so the
//! property tests can check convergence, loss and idempotence without any IO.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{AccountName, Flags, FolderName, MaildirKey, Uid, UidValidity};

use super::actions::{Action, Halt, Plan, Timestamp};
use super::plan::plan;
use super::policy::Policy;
use super::repair::apply_repair;
use super::snapshot::{
    Base, LocalMessage, LocalSnapshot, MessageId, Pair, RemoteListing, RemoteMessage,
    RemoteSnapshot,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerMsg {
    pub flags: Flags,
    pub size: u64,
    pub message_id: Option<MessageId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMsg {
    pub flags: Flags,
    pub size: u64,
    /// The Message-ID inside the file (the planner never sees it; the sim uses it for
    /// appends, as the server would parse it).
    pub message_id: Option<MessageId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct World {
    pub uid_validity: UidValidity,
    pub uid_next: u32,
    pub server: BTreeMap<Uid, ServerMsg>,
    pub trash: Vec<ServerMsg>,
    pub local: BTreeMap<MaildirKey, LocalMsg>,
    pub carries_keywords: bool,
    /// Observe the server as QRESYNC would: only what changed since the base, plus
    /// VANISHED (a full listing after a UIDVALIDITY change, as the engine must).
    pub incremental: bool,
    pub base: Base,
    /// Changed by someone else after the last observation: a STORE with UNCHANGEDSINCE
    /// or a rename from the observed filename fails on these.
    pub touched_uids: BTreeSet<Uid>,
    pub touched_keys: BTreeSet<MaildirKey>,
    counter: u32,
}

pub fn folder() -> FolderName {
    FolderName("INBOX".into())
}

pub fn policy() -> Policy {
    Policy::new(AccountName("test".into()))
}

impl World {
    /// A folder in sync: `flags[i]` on message i, paired as UID i+1 / key `k{i}`.
    pub fn synced(flags: &[Flags], carries_keywords: bool) -> World {
        let mut w = World {
            uid_validity: UidValidity(1),
            uid_next: 1,
            server: BTreeMap::new(),
            trash: Vec::new(),
            local: BTreeMap::new(),
            carries_keywords,
            incremental: false,
            base: Base::empty(folder()),
            touched_uids: BTreeSet::new(),
            touched_keys: BTreeSet::new(),
            counter: 0,
        };
        w.base.uid_validity = Some(w.uid_validity);
        for f in flags {
            let uid = w.next_uid();
            let key = w.fresh_key("k");
            let size = 1000 + u64::from(uid.0);
            let message_id = Some(MessageId(format!("<m{}@sim>", uid.0)));
            let local_flags = w.storable(f);
            w.server.insert(
                uid,
                ServerMsg {
                    flags: f.clone(),
                    size,
                    message_id: message_id.clone(),
                },
            );
            w.local.insert(
                key.clone(),
                LocalMsg {
                    flags: local_flags.clone(),
                    size,
                    message_id: message_id.clone(),
                },
            );
            w.base.pairs.insert(
                uid,
                Pair {
                    uid,
                    key,
                    remote_flags: f.clone(),
                    local_flags,
                    remote_size: size,
                    local_size: size,
                    message_id,
                    email_id: None,
                },
            );
        }
        w.base.highest_uid_pulled = w.server.keys().next_back().copied();
        w
    }

    pub fn next_uid(&mut self) -> Uid {
        let uid = Uid(self.uid_next);
        self.uid_next += 1;
        uid
    }

    pub fn fresh_key(&mut self, prefix: &str) -> MaildirKey {
        self.counter += 1;
        MaildirKey(format!("{prefix}{:04}", self.counter))
    }

    pub fn fresh_message_id(&mut self) -> MessageId {
        self.counter += 1;
        MessageId(format!("<new{}@sim>", self.counter))
    }

    /// What the Maildir can store of `flags`.
    pub fn storable(&self, flags: &Flags) -> Flags {
        if self.carries_keywords {
            flags.clone()
        } else {
            flags.system_only()
        }
    }

    pub fn remote(&self) -> RemoteSnapshot {
        let listed = |(&uid, m): (&Uid, &ServerMsg)| {
            (
                uid,
                RemoteMessage {
                    flags: m.flags.clone(),
                    size: m.size,
                    message_id: m.message_id.clone(),
                    email_id: None,
                },
            )
        };
        let listing = if self.incremental && self.base.uid_validity == Some(self.uid_validity) {
            let changed = self
                .server
                .iter()
                .filter(|(uid, m)| match self.base.pairs.get(uid) {
                    Some(p) => p.remote_flags != m.flags,
                    None => !self.base.remote_only.contains(uid),
                })
                .map(listed)
                .collect();
            let vanished = self
                .base
                .pairs
                .keys()
                .chain(&self.base.remote_only)
                .filter(|uid| !self.server.contains_key(uid))
                .copied()
                .collect();
            RemoteListing::Changes { changed, vanished }
        } else {
            RemoteListing::Complete(self.server.iter().map(listed).collect())
        };
        RemoteSnapshot {
            uid_validity: self.uid_validity,
            highest_modseq: None,
            uid_next: Uid(self.uid_next),
            listing,
        }
    }

    /// The server assigns a new UIDVALIDITY and renumbers every message.
    pub fn renumber(&mut self) {
        let old: Vec<ServerMsg> = std::mem::take(&mut self.server).into_values().collect();
        self.uid_validity = UidValidity(self.uid_validity.0 + 1);
        for m in old {
            let uid = self.next_uid();
            self.server.insert(uid, m);
        }
    }

    pub fn local_snapshot(&self) -> LocalSnapshot {
        LocalSnapshot {
            messages: self
                .local
                .iter()
                .map(|(k, m)| {
                    (
                        k.clone(),
                        LocalMessage {
                            flags: m.flags.clone(),
                            size: m.size,
                        },
                    )
                })
                .collect(),
            stable: true,
            carries_keywords: self.carries_keywords,
        }
    }

    /// Observe both sides and plan.
    pub fn plan(&self, policy: &Policy) -> Plan {
        plan(
            &self.remote(),
            &self.local_snapshot(),
            &self.base,
            policy,
            Timestamp(1_700_000_000),
        )
    }

    /// One whole pass: observe, plan, apply, move the watermarks.
    pub fn pass(&mut self, policy: &Policy) -> Plan {
        let p = self.plan(policy);
        self.touched_uids.clear();
        self.touched_keys.clear();
        self.apply(&p);
        p
    }

    fn forget_uid(&mut self, uid: Uid) {
        self.base.pairs.remove(&uid);
    }

    fn forget_key(&mut self, key: &MaildirKey) {
        self.base.pairs.retain(|_, p| p.key != *key);
    }

    fn paired_key(&self, key: &MaildirKey) -> bool {
        self.base.pairs.values().any(|p| p.key == *key)
    }

    /// Apply a plan's steps in order, as the engine does; a step that fails (its target
    /// changed since the observation) leaves the pair's base alone.
    pub fn apply(&mut self, plan: &Plan) {
        let mut failed_uids: BTreeSet<Uid> = BTreeSet::new();
        let mut failed_keys: BTreeSet<MaildirKey> = BTreeSet::new();
        for action in &plan.actions {
            match action {
                Action::RepairUids(r) => {
                    if self.base.uid_validity == Some(r.old) {
                        self.base = apply_repair(&self.base, r);
                    }
                }
                Action::Unpair { uid, key } | Action::Forget { uid, key } => {
                    if self.base.pairs.get(uid).is_some_and(|p| p.key == *key) {
                        self.forget_uid(*uid);
                    }
                }
                Action::KeepLocalOnly { key } => {
                    self.base.local_only.insert(key.clone());
                }
                Action::KeepRemoteOnly { uid } => {
                    self.base.remote_only.insert(*uid);
                }
                Action::Fetch { uids } => {
                    for uid in uids.iter() {
                        let Some(msg) = self.server.get(&uid).cloned() else {
                            continue;
                        };
                        if self.base.pairs.contains_key(&uid) {
                            continue;
                        }
                        let key = self.fresh_key("f");
                        let flags = self.storable(&msg.flags);
                        self.local.insert(
                            key.clone(),
                            LocalMsg {
                                flags: flags.clone(),
                                size: msg.size,
                                message_id: msg.message_id.clone(),
                            },
                        );
                        self.base.remote_only.remove(&uid);
                        self.base.pairs.insert(
                            uid,
                            Pair {
                                uid,
                                key,
                                remote_flags: msg.flags.clone(),
                                local_flags: flags,
                                remote_size: msg.size,
                                local_size: msg.size,
                                message_id: msg.message_id,
                                email_id: None,
                            },
                        );
                    }
                }
                Action::Append { key, flags } => {
                    let Some(msg) = self.local.get(key).cloned() else {
                        failed_keys.insert(key.clone());
                        continue;
                    };
                    if self.paired_key(key) {
                        continue;
                    }
                    let uid = self.next_uid();
                    self.server.insert(
                        uid,
                        ServerMsg {
                            flags: flags.clone(),
                            size: msg.size,
                            message_id: msg.message_id.clone(),
                        },
                    );
                    self.base.local_only.remove(key);
                    self.base.pairs.insert(
                        uid,
                        Pair {
                            uid,
                            key: key.clone(),
                            remote_flags: flags.clone(),
                            local_flags: flags.clone(),
                            remote_size: msg.size,
                            local_size: msg.size,
                            message_id: msg.message_id,
                            email_id: None,
                        },
                    );
                }
                Action::StoreFlags {
                    uids, add, remove, ..
                } => {
                    for uid in uids.iter() {
                        if self.touched_uids.contains(&uid) {
                            failed_uids.insert(uid);
                            continue;
                        }
                        let Some(msg) = self.server.get_mut(&uid) else {
                            failed_uids.insert(uid);
                            continue;
                        };
                        let mut f = super::merge::minus(&msg.flags, remove);
                        for flag in add.iter() {
                            f.insert(flag);
                        }
                        for k in add.keywords() {
                            f.insert_keyword(k.clone());
                        }
                        msg.flags = f;
                    }
                }
                Action::SetLocalFlags { key, flags } => {
                    if self.touched_keys.contains(key) {
                        failed_keys.insert(key.clone());
                        continue;
                    }
                    let storable = self.storable(flags);
                    match self.local.get_mut(key) {
                        Some(m) => m.flags = storable,
                        None => {
                            failed_keys.insert(key.clone());
                        }
                    }
                }
                Action::RecordFlags { uid, remote, local } => {
                    if failed_uids.contains(uid) {
                        continue;
                    }
                    if let Some(p) = self.base.pairs.get_mut(uid)
                        && !failed_keys.contains(&p.key)
                    {
                        p.remote_flags = remote.clone();
                        p.local_flags = local.clone();
                    }
                }
                Action::MoveToTrash { uids, .. } => {
                    for uid in uids.iter() {
                        if let Some(m) = self.server.remove(&uid) {
                            self.trash.push(m);
                        }
                        self.forget_uid(uid);
                    }
                }
                Action::DeleteOnServer { uids } => {
                    for uid in uids.iter() {
                        self.server.remove(&uid);
                        self.forget_uid(uid);
                    }
                }
                Action::DeleteLocal { key } => {
                    self.local.remove(key);
                    self.forget_key(key);
                }
                Action::DropLocalOnly { key } => {
                    self.base.local_only.remove(key);
                }
                Action::DropRemoteOnly { uid } => {
                    self.base.remote_only.remove(uid);
                }
            }
        }
        if !matches!(plan.halt, Some(Halt::UidValidity { .. })) {
            self.base.uid_validity = Some(self.uid_validity);
        }
    }

    /// Both sides agree with each other and with the base (direction both, expunge both).
    pub fn check_in_sync(&self) -> Result<(), String> {
        for uid in self.server.keys() {
            if !self.base.pairs.contains_key(uid) && !self.base.remote_only.contains(uid) {
                return Err(format!("server UID {uid} is not paired"));
            }
        }
        let paired: BTreeSet<&MaildirKey> = self.base.pairs.values().map(|p| &p.key).collect();
        for key in self.local.keys() {
            if !paired.contains(key) && !self.base.local_only.contains(key) {
                return Err(format!("local {key} is not paired"));
            }
        }
        for p in self.base.pairs.values() {
            let s = self
                .server
                .get(&p.uid)
                .ok_or(format!("pair UID {} missing on the server", p.uid))?;
            let l = self
                .local
                .get(&p.key)
                .ok_or(format!("pair {} missing locally", p.key))?;
            if s.flags != p.remote_flags || l.flags != p.local_flags {
                return Err(format!(
                    "UID {} base {}/{} but server {} local {}",
                    p.uid, p.remote_flags, p.local_flags, s.flags, l.flags
                ));
            }
            if self.storable(&s.flags) != l.flags {
                return Err(format!(
                    "UID {} server {} disagrees with local {}",
                    p.uid, s.flags, l.flags
                ));
            }
        }
        Ok(())
    }
}
