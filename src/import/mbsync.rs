//! mbsync (isync 1.4) config: `~/.mbsyncrc` read the way mbsync reads it (a keyword and
//! its arguments per line, `"` quoting and `\` escapes, a section ended by an empty
//! line), then each Channel between an IMAP store and a Maildir store made a syncmail
//! account that adopts the Maildir tree mbsync wrote.

use std::collections::BTreeMap;
use std::path::Path;

use super::{AccountDraft, Draft, Key, Note, Tool, Value};
use crate::config::{ConfigError, Dirs, FolderPattern, FolderPatterns};

/// One `Keyword arg…` line inside a section or at the top level.
#[derive(Clone, Debug)]
struct Entry {
    key: String,
    args: Vec<String>,
    line: usize,
}

impl Entry {
    fn value(&self) -> &str {
        &self.args[0]
    }

    fn is(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.key.eq_ignore_ascii_case(n))
    }

    /// The line as a comment shows it; secrets are not repeated.
    fn shown(&self) -> String {
        if self.is(&["Pass"]) {
            return format!("{} <redacted>", self.key);
        }
        let args: Vec<String> = self.args.iter().map(|a| quoted(a)).collect();
        format!("{} {}", self.key, args.join(" "))
    }

    fn flag(&self) -> Option<bool> {
        match self.value().to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => Some(true),
            "no" | "false" | "off" | "0" => Some(false),
            _ => None,
        }
    }
}

fn quoted(arg: &str) -> String {
    if arg.is_empty() || arg.contains(char::is_whitespace) || arg.contains('"') {
        format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        arg.to_owned()
    }
}

/// A section's entries, taken out as they are converted; what is left is reported.
#[derive(Clone, Debug, Default)]
struct Entries(Vec<Entry>);

impl Entries {
    /// The last entry for a single-valued keyword (mbsync keeps the last); all are taken.
    fn take(&mut self, names: &[&str]) -> Option<Entry> {
        self.take_all(names).pop()
    }

    fn take_all(&mut self, names: &[&str]) -> Vec<Entry> {
        let (taken, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|e| e.is(names));
        self.0 = rest;
        taken
    }

    fn peek(&self, names: &[&str]) -> Option<&Entry> {
        self.0.iter().rev().find(|e| e.is(names))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ImapAccount,
    ImapStore,
    MaildirStore,
    Channel,
    Group,
}

impl Kind {
    fn of(keyword: &str) -> Option<Kind> {
        [
            ("IMAPAccount", Kind::ImapAccount),
            ("IMAPStore", Kind::ImapStore),
            ("MaildirStore", Kind::MaildirStore),
            ("Channel", Kind::Channel),
            ("Group", Kind::Group),
        ]
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
        .map(|(_, kind)| kind)
    }

    fn keyword(self) -> &'static str {
        match self {
            Kind::ImapAccount => "IMAPAccount",
            Kind::ImapStore => "IMAPStore",
            Kind::MaildirStore => "MaildirStore",
            Kind::Channel => "Channel",
            Kind::Group => "Group",
        }
    }
}

#[derive(Clone, Debug)]
struct Section {
    kind: Kind,
    name: String,
    line: usize,
    entries: Entries,
}

/// Options allowed outside any section; the channel options among them are defaults
/// for every channel.
const GLOBAL: [&str; 13] = [
    "Sync",
    "Expunge",
    "ExpungeSolo",
    "Create",
    "Remove",
    "MaxMessages",
    "ExpireUnread",
    "CopyArrivalDate",
    "SyncState",
    "FSync",
    "FieldDelimiter",
    "BufferLimit",
    "Utf8Mailboxes",
];

/// mbsync's argument splitting: whitespace separates, `"` quotes (and may start or end
/// mid-argument, as in `+"cmd"`), `\` takes the next character literally.
fn tokenize(line: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut in_arg, mut quoted) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(chars.next().ok_or("a line ends in a lone backslash")?);
                in_arg = true;
            }
            '"' => {
                quoted = !quoted;
                in_arg = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_arg {
                    out.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if quoted {
        return Err("missing closing quote");
    }
    if in_arg {
        out.push(cur);
    }
    Ok(out)
}

struct Rc<'a> {
    path: &'a Path,
    text: &'a str,
    sections: Vec<Section>,
    globals: Entries,
}

impl Rc<'_> {
    fn error(&self, line: usize, message: impl Into<String>, help: &str) -> ConfigError {
        super::error_at(self.path, self.text, line, message, Some(help))
    }

    fn find(&self, kinds: &[Kind], name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| kinds.contains(&s.kind) && s.name == name)
    }
}

fn parse<'a>(path: &'a Path, text: &'a str) -> Result<Rc<'a>, ConfigError> {
    let mut rc = Rc {
        path,
        text,
        sections: Vec::new(),
        globals: Entries::default(),
    };
    let mut open: Option<Section> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let words = tokenize(raw).map_err(|m| {
            rc.error(
                line,
                m,
                "quote arguments with spaces as \"a b\"; write a literal \" or \\ as \\\" or \\\\",
            )
        })?;
        let Some((key, args)) = words.split_first() else {
            // An empty line ends the section.
            if let Some(s) = open.take() {
                rc.sections.push(s);
            }
            continue;
        };
        if key.starts_with('#') {
            continue;
        }
        if args.is_empty() {
            return Err(rc.error(
                line,
                format!("`{key}` has no value"),
                "mbsync needs a value after every keyword (it says \"parameter missing\")",
            ));
        }
        let in_group = open.as_ref().is_some_and(|s| s.kind == Kind::Group);
        let starts = Kind::of(key).filter(|k| !(in_group && *k == Kind::Channel));
        if let Some(kind) = starts {
            if let Some(s) = &open {
                return Err(rc.error(
                    line,
                    format!(
                        "`{key}` starts a section, but the {} `{}` section (line {}) has not ended",
                        s.kind.keyword(),
                        s.name,
                        s.line
                    ),
                    "mbsync ends a section at an empty line; put one before this line",
                ));
            }
            let mut entries = Entries::default();
            if kind == Kind::Group && args.len() > 1 {
                entries.0.push(Entry {
                    key: "Channels".into(),
                    args: args[1..].to_vec(),
                    line,
                });
            }
            if let Some(first) = rc
                .sections
                .iter()
                .find(|s| same_namespace(s.kind, kind) && s.name == args[0])
            {
                return Err(rc.error(
                    line,
                    format!(
                        "{} `{}` is defined twice (first at line {})",
                        kind.keyword(),
                        args[0],
                        first.line
                    ),
                    "give each store, account, channel and group its own name",
                ));
            }
            open = Some(Section {
                kind,
                name: args[0].clone(),
                line,
                entries,
            });
            continue;
        }
        let entry = Entry {
            key: key.clone(),
            args: args.to_vec(),
            line,
        };
        match &mut open {
            Some(s) => s.entries.0.push(entry),
            None if entry.is(&GLOBAL) => rc.globals.0.push(entry),
            None => {
                return Err(rc.error(
                    line,
                    format!("`{key}` is outside any section"),
                    "mbsync ends a section at an empty line: remove the empty line above if this belongs to the section before it",
                ));
            }
        }
    }
    if let Some(s) = open {
        rc.sections.push(s);
    }
    Ok(rc)
}

fn same_namespace(a: Kind, b: Kind) -> bool {
    let store = |k| matches!(k, Kind::ImapStore | Kind::MaildirStore);
    a == b || (store(a) && store(b))
}

/// A channel's side: `:store:` or `:store:mailbox`.
fn store_spec(rc: &Rc, e: &Entry) -> Result<(String, String), ConfigError> {
    let spec = e.value();
    let Some((store, mailbox)) = spec.strip_prefix(':').and_then(|rest| rest.split_once(':'))
    else {
        return Err(rc.error(
            e.line,
            format!("`{spec}` is not a store reference"),
            "write it as :store: or :store:mailbox",
        ));
    };
    if rc
        .find(&[Kind::ImapStore, Kind::MaildirStore], store)
        .is_none()
    {
        return Err(rc.error(
            e.line,
            format!("there is no store named `{store}`"),
            "define it with an IMAPStore or MaildirStore section, or fix the name",
        ));
    }
    Ok((store.to_owned(), mailbox.to_owned()))
}

/// The message operations of one direction (`Sync`'s type flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ops {
    new: bool,
    renew: bool,
    delete: bool,
    flags: bool,
    old: bool,
}

impl Ops {
    const ALL: Ops = Ops {
        new: true,
        renew: true,
        delete: true,
        flags: true,
        old: false,
    };

    fn any(self) -> bool {
        self.new || self.renew || self.delete || self.flags || self.old
    }

    /// Whether syncmail's one switch per direction ("everything") says the same.
    fn whole(self) -> bool {
        self.new && self.delete && self.flags
    }

    fn active(self) -> bool {
        self.new || self.delete || self.flags
    }

    fn overlaps(self, other: Ops) -> bool {
        (self.new && other.new)
            || (self.renew && other.renew)
            || (self.delete && other.delete)
            || (self.flags && other.flags)
            || (self.old && other.old)
    }

    fn union(self, o: Ops) -> Ops {
        Ops {
            new: self.new || o.new,
            renew: self.renew || o.renew,
            delete: self.delete || o.delete,
            flags: self.flags || o.flags,
            old: self.old || o.old,
        }
    }

    fn set(&mut self, kind: &str) -> bool {
        match kind {
            "new" => self.new = true,
            "renew" | "upgrade" => self.renew = true,
            "delete" | "gone" => self.delete = true,
            "flags" => self.flags = true,
            "old" => self.old = true,
            _ => return false,
        }
        true
    }
}

/// `Sync` lines as (far -> near, near -> far) operations, read as mbsync does: plain
/// direction and type flags select rows and columns, `PullNew`-style flags single cells.
fn sync_ops(rc: &Rc, entries: &[Entry]) -> Result<(Ops, Ops), ConfigError> {
    if entries.is_empty() {
        return Ok((Ops::ALL, Ops::ALL));
    }
    let (mut dir_pull, mut dir_push) = (false, false);
    let (mut types, mut pull, mut push) = (Ops::default(), Ops::default(), Ops::default());
    let mut last_line = 0;
    for e in entries {
        last_line = e.line;
        for arg in &e.args {
            let a = arg.to_ascii_lowercase();
            let known = match a.as_str() {
                "pull" => {
                    dir_pull = true;
                    true
                }
                "push" => {
                    dir_push = true;
                    true
                }
                "all" | "full" => {
                    dir_pull = true;
                    dir_push = true;
                    true
                }
                "none" | "noop" => true,
                _ => match (a.strip_prefix("pull"), a.strip_prefix("push")) {
                    (Some(kind), _) => pull.set(kind),
                    (_, Some(kind)) => push.set(kind),
                    _ => types.set(&a),
                },
            };
            if !known {
                return Err(rc.error(
                    e.line,
                    format!("`{arg}` is not a Sync operation"),
                    "use None, All, Pull, Push, New, ReNew, Delete, Flags, or Pull/Push joined with one of them (PullNew)",
                ));
            }
        }
    }
    let conflict = || {
        rc.error(
            last_line,
            "conflicting Sync arguments: one operation is asserted twice",
            "mbsync refuses this too; e.g. `Sync PullNew Pull` asserts PullNew twice",
        )
    };
    if pull.any() || push.any() {
        if pull.overlaps(types) || push.overlaps(types) {
            return Err(conflict());
        }
        pull = pull.union(types);
        push = push.union(types);
        if dir_pull {
            if pull.any() {
                return Err(conflict());
            }
            pull = Ops::ALL;
        }
        if dir_push {
            if push.any() {
                return Err(conflict());
            }
            push = Ops::ALL;
        }
    } else if dir_pull || dir_push || types.any() {
        let t = if types.any() { types } else { Ops::ALL };
        let (p, q) = if dir_pull || dir_push {
            (dir_pull, dir_push)
        } else {
            (true, true)
        };
        if p {
            pull = t;
        }
        if q {
            push = t;
        }
    }
    Ok((pull, push))
}

/// `Expunge`/`Create`/`Remove` arguments as (far, near).
fn sides(rc: &Rc, entries: &[Entry]) -> Result<(bool, bool), ConfigError> {
    let (mut far, mut near) = (false, false);
    for e in entries {
        for arg in &e.args {
            match arg.to_ascii_lowercase().as_str() {
                "none" => {}
                "far" | "master" => far = true,
                "near" | "slave" => near = true,
                "both" => (far, near) = (true, true),
                _ => {
                    return Err(rc.error(
                        e.line,
                        format!("`{arg}` is not a side for {}", e.key),
                        "use None, Far, Near or Both",
                    ));
                }
            }
        }
    }
    Ok((far, near))
}

/// What one channel's sync options come to in syncmail.
#[derive(Clone, Debug, PartialEq)]
struct Policy {
    direction: &'static str,
    expunge: &'static str,
    notes: Vec<Note>,
}

/// The channel's own options, else the global ones, as syncmail's `direction` and
/// `expunge`. `swapped`: the Maildir is the far side.
fn policy(rc: &Rc, ch: &mut Entries, swapped: bool) -> Result<Policy, ConfigError> {
    let mut pick = |names: &[&str]| {
        let own = ch.take_all(names);
        if own.is_empty() {
            rc.globals
                .0
                .iter()
                .filter(|e| e.is(names))
                .cloned()
                .collect()
        } else {
            own
        }
    };
    let sync = pick(&["Sync"]);
    let expunge = pick(&["Expunge"]);
    let create = pick(&["Create"]);
    let remove = pick(&["Remove"]);
    let (pull, push) = sync_ops(rc, &sync)?;
    let (exp_far, exp_near) = sides(rc, &expunge)?;
    let (to_local, to_server) = if swapped { (push, pull) } else { (pull, push) };
    let (exp_server, exp_local) = if swapped {
        (exp_near, exp_far)
    } else {
        (exp_far, exp_near)
    };
    let mut notes = Vec::new();
    let shown = |es: &[Entry]| es.iter().map(Entry::shown).collect::<Vec<_>>().join(", ");
    let direction = match (to_local.active(), to_server.active()) {
        (true, true) => "both",
        (true, false) => "pull",
        (false, true) => "push",
        (false, false) => {
            notes.push(Note::Fix(format!(
                "`{}` propagated nothing (expunge only); syncmail has no such mode: direction is set to \"pull\" and expunge to \"none\"",
                shown(&sync)
            )));
            "pull"
        }
    };
    if (to_local.active() && !to_local.whole()) || (to_server.active() && !to_server.whole()) {
        notes.push(Note::not_converted(
            shown(&sync),
            "syncmail carries new messages, flag changes and deletions together in each direction it syncs",
        ));
    }
    let local_removal = to_local.delete && exp_local && direction != "push";
    let server_removal = to_server.delete && exp_server && direction != "pull";
    let expunge_value = match (local_removal, server_removal) {
        (true, true) => "both",
        (true, false) => "local",
        (false, true) => "server",
        (false, false) => "none",
    };
    if expunge_value != "both" && (to_local.delete || to_server.delete) {
        let why = if expunge.is_empty() {
            "Expunge is not set (mbsync's default is None)".to_owned()
        } else {
            format!("`{}`", shown(&expunge))
        };
        notes.push(Note::Info(format!(
            "{why}: mbsync only marked messages deleted on the other side (\\Deleted, or T in the Maildir) where it did not expunge; syncmail with this expunge value records those deletions and leaves the messages alone"
        )));
    }
    let (create_far, create_near) = sides(rc, &create)?;
    let create_both = create_far && create_near;
    if !create.is_empty() && !create_both {
        notes.push(Note::not_converted(
            shown(&create),
            "syncmail creates a folder on the other side whenever one side has it and `folders` selects it",
        ));
    }
    let (remove_far, remove_near) = sides(rc, &remove)?;
    let remove_both = remove_far && remove_near;
    if !remove.is_empty() && !remove_both {
        notes.push(Note::not_converted(
            shown(&remove),
            "syncmail removes a folder deleted on one side from the other side when it is empty there, on both sides alike",
        ));
    }
    Ok(Policy {
        direction,
        expunge: expunge_value,
        notes,
    })
}

/// Why a keyword has no syncmail equivalent.
fn why(key: &str) -> &'static str {
    match key.to_ascii_lowercase().as_str() {
        "maxsize" => "syncmail always transfers whole messages",
        "maxmessages" | "expireunread" => "syncmail keeps every message of a synced folder",
        "copyarrivaldate" => {
            "syncmail always sends a message file's time as its arrival date when uploading"
        }
        "syncstate" => {
            "syncmail keeps its own state database; on first contact it pairs the mail already on both sides"
        }
        "fsync" => "syncmail always makes each delivery durable before recording it",
        "fielddelimiter" | "bufferlimit" => "no equivalent; syncmail does not need it",
        "altmap" => "syncmail keeps UIDs in its state database, never in file names",
        "infodelimiter" => "syncmail reads and writes flags after `:2,` only",
        "trash" => "syncmail has no local trash folder",
        "trashnewonly" | "trashremotenew" => "no equivalent in syncmail's trash handling",
        "mapinbox" => "syncmail has no INBOX alias",
        "flatten" => "syncmail lays folders out as verbatim directories or maildir++",
        "usenamespace" => {
            "syncmail leaves the personal namespace prefix out of local names unless `use_namespace = false`"
        }
        "subscribedonly" => "syncmail syncs what `folders` selects, subscribed or not",
        "tunnel" => "syncmail connects over TCP itself; a tunnel command has no equivalent",
        "usercmd" => "syncmail needs the login name written out",
        "sslversions" | "tlsversions" => "syncmail always uses TLS 1.2 or 1.3",
        "cipherstring" => "syncmail uses rustls's safe cipher suites",
        "clientcertificate" | "clientkey" => "syncmail does not log in with client certificates",
        "pipelinedepth" => "syncmail chooses its own pipelining",
        "disableextension" | "disableextensions" => {
            "syncmail adapts to the server's capabilities by itself"
        }
        "systemcertificates" => "syncmail always trusts the system's CAs as well as ca_file",
        "requirecram" => "syncmail does not offer CRAM-MD5",
        "utf8mailboxes" => "syncmail always stores folder names as UTF-8",
        "expungesolo" => "syncmail decides expunges from `expunge`",
        "path" => "an IMAP store's Path has no equivalent",
        _ => "no syncmail equivalent",
    }
}

/// Each leftover entry as a `not converted` note.
fn leftovers(entries: Entries) -> Vec<Note> {
    entries
        .0
        .into_iter()
        .map(|e| Note::not_converted(e.shown(), why(&e.key)))
        .collect()
}

/// How a Maildir store lays out folders.
#[derive(Clone, Debug)]
struct LocalStore {
    name: String,
    /// `Path` as written, if set.
    path: Option<String>,
    /// `Inbox` as written (default `~/Maildir`).
    inbox: String,
    layout: &'static str,
    /// The account root: `Path` (verbatim) or `Inbox` (maildir++).
    root: Option<String>,
    /// About subfolders: moot for an account that syncs INBOX only.
    layout_notes: Vec<Note>,
    /// SubFolders or Flatten is set.
    layout_set: bool,
    notes: Vec<Note>,
    rest: Entries,
}

fn local_store(rc: &Rc, s: &Section) -> Result<LocalStore, ConfigError> {
    let mut rest = s.entries.clone();
    let mut notes = Vec::new();
    let mut layout_notes = Vec::new();
    let path = rest.take(&["Path"]).map(|e| e.value().to_owned());
    let inbox = rest
        .take(&["Inbox"])
        .map_or_else(|| "~/Maildir".to_owned(), |e| e.value().to_owned());
    let subfolders = rest.take(&["SubFolders"]);
    let style = match &subfolders {
        None => None,
        Some(e) => Some(match e.value().to_ascii_lowercase().as_str() {
            "verbatim" => "verbatim",
            "maildir++" => "maildir++",
            "legacy" => "legacy",
            _ => {
                return Err(rc.error(
                    e.line,
                    format!("`{}` is not a SubFolders style", e.value()),
                    "use Verbatim, Maildir++ or Legacy",
                ));
            }
        }),
    };
    let (layout, root) = match style {
        Some("maildir++") => {
            if let Some(p) = &path {
                notes.push(Note::not_converted(
                    format!("Path {}", quoted(p)),
                    "mbsync rejects Path with SubFolders Maildir++; the Maildir++ root is Inbox",
                ));
            }
            ("maildir++", Some(inbox.clone()))
        }
        other => {
            if other == Some("legacy") {
                layout_notes.push(Note::Warning(
                    "SubFolders Legacy stored a subfolder as Parent/.Child; syncmail's verbatim layout uses Parent/Child, so subfolders will be fetched again into new directories (top-level folders are adopted as they are)"
                        .into(),
                ));
            } else if other.is_none() {
                layout_notes.push(Note::Info(
                    "SubFolders was not set, so mbsync synced no subfolders: verbatim (one directory per level) matches its top-level folders"
                        .into(),
                ));
            }
            ("verbatim", path.clone())
        }
    };
    let flatten = rest.take(&["Flatten"]);
    let layout_set = subfolders.is_some() || flatten.is_some();
    if let Some(flat) = flatten {
        layout_notes.push(Note::Warning(format!(
            "Flatten {}: mbsync stored Parent/Child as Parent{}Child; syncmail's layouts cannot, so subfolders will be fetched again into new directories. Move them (Parent{}Child -> Parent/Child) before the first sync to keep them",
            quoted(flat.value()),
            flat.value(),
            flat.value()
        )));
    }
    if let Some(delim) = rest.take(&["InfoDelimiter"])
        && delim.value() != ":"
    {
        notes.push(Note::Warning(format!(
            "InfoDelimiter {}: syncmail reads flags after `:2,` only, so messages named with another delimiter lose their flags",
            quoted(delim.value())
        )));
    }
    Ok(LocalStore {
        name: s.name.clone(),
        path,
        inbox,
        layout,
        root,
        layout_notes,
        layout_set,
        notes,
        rest,
    })
}

impl LocalStore {
    /// The directory of a mailbox as mbsync placed it in this store (Inbox for INBOX).
    fn mailbox_dir(&self, mailbox: &str) -> Option<String> {
        if mailbox.eq_ignore_ascii_case("INBOX") {
            return Some(self.inbox.clone());
        }
        match self.layout {
            "maildir++" => Some(format!(
                "{}/.{}",
                super::dir_value(&self.inbox),
                mailbox.replace('/', ".")
            )),
            _ => self.path.as_ref().map(|p| format!("{p}{mailbox}")),
        }
    }
}

/// Where one channel's folders go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Placement {
    /// Folders under `root` in `layout`, named as the server names them.
    Tree { root: String, layout: &'static str },
    /// The channel syncs only INBOX, kept in this directory.
    InboxAt(String),
}

/// One convertible channel.
#[derive(Clone, Debug)]
struct Plan {
    channel: String,
    line: usize,
    server_store: String,
    local_store: String,
    placement: Placement,
    /// Patterns over server names.
    folders: Vec<String>,
    /// Where mbsync kept INBOX when a Tree channel selects it (None: under the root).
    inbox_dir: Option<String>,
    policy: Policy,
    notes: Vec<Note>,
}

/// mbsync patterns as syncmail patterns: UTF-7 decoded, `/` turned into the server's
/// delimiter when the store names it.
fn patterns(raw: &[String], delimiter: Option<&str>, notes: &mut Vec<Note>) -> Vec<String> {
    let mut out = Vec::new();
    for raw_p in raw {
        let mut p = super::decoded_folder(raw_p);
        if p != *raw_p {
            notes.push(Note::Info(format!(
                "Patterns {} is modified UTF-7; syncmail matches the UTF-8 name {}",
                quoted(raw_p),
                quoted(&p)
            )));
        }
        if let Some(d) = delimiter.filter(|d| *d != "/") {
            p = p.replace('/', d);
        }
        match FolderPattern::parse(&p) {
            Ok(_) => out.push(p),
            Err(e) => notes.push(Note::not_converted(
                format!("Patterns {}", quoted(&p)),
                format!("not a syncmail folder pattern: {e}"),
            )),
        }
    }
    out
}

fn channel_plan(
    rc: &Rc,
    ch: &Section,
    stores: &BTreeMap<String, LocalStore>,
) -> Result<Result<Plan, Note>, ConfigError> {
    let mut entries = ch.entries.clone();
    let far = entries.take(&["Far", "Master"]);
    let near = entries.take(&["Near", "Slave"]);
    let (Some(far), Some(near)) = (far, near) else {
        return Err(rc.error(
            ch.line,
            format!("Channel `{}` needs both a Far and a Near store", ch.name),
            "add `Far :store:` and `Near :store:` lines to the channel",
        ));
    };
    let (far_store, far_box) = store_spec(rc, &far)?;
    let (near_store, near_box) = store_spec(rc, &near)?;
    let kind = |name: &str| {
        rc.find(&[Kind::ImapStore, Kind::MaildirStore], name)
            .map(|s| s.kind)
    };
    let (server, server_box, local, local_box, swapped) = match (
        kind(&far_store),
        kind(&near_store),
    ) {
        (Some(Kind::ImapStore), Some(Kind::MaildirStore)) => {
            (far_store, far_box, near_store, near_box, false)
        }
        (Some(Kind::MaildirStore), Some(Kind::ImapStore)) => {
            (near_store, near_box, far_store, far_box, true)
        }
        _ => {
            return Ok(Err(Note::not_converted(
                format!("Channel {}", ch.name),
                "it connects two stores of the same kind; syncmail syncs an IMAP server with a Maildir",
            )));
        }
    };
    let store = &stores[&local];
    let mut notes = Vec::new();
    if swapped {
        notes.push(Note::Info(format!(
            "Channel {} has the Maildir on the far side; Pull and Push are read the other way round",
            ch.name
        )));
    }
    let raw_patterns: Vec<String> = entries
        .take_all(&["Pattern", "Patterns"])
        .into_iter()
        .flat_map(|e| e.args)
        .collect();
    let delimiter = rc
        .find(&[Kind::ImapStore], &server)
        .and_then(|s| s.entries.peek(&["PathDelimiter"]))
        .map(|e| e.value().to_owned());
    let policy = policy(rc, &mut entries, swapped)?;
    let unplaceable = |why: String| {
        Ok(Err(Note::Fix(format!(
            "Channel {} is not converted: {why}",
            ch.name
        ))))
    };
    let (placement, folders, inbox_dir) = if !raw_patterns.is_empty() {
        let mut folders = patterns(&raw_patterns, delimiter.as_deref(), &mut notes);
        if folders.is_empty() {
            return unplaceable("none of its Patterns is a syncmail pattern".into());
        }
        if !server_box.is_empty() {
            if server_box != local_box {
                return unplaceable(format!(
                    "it maps server folders under {} to local folders under {}; syncmail stores every folder under its server name. Rename the local folders to their server names and add them to `folders` of the account for IMAPStore {server}",
                    quoted(&server_box),
                    quoted(&local_box)
                ));
            }
            for f in &mut folders {
                *f = match f.strip_prefix('!') {
                    Some(rest) => format!("!{server_box}{rest}"),
                    None => format!("{server_box}{f}"),
                };
            }
        }
        let root = match (&store.root, local_box.is_empty() || server_box == local_box) {
            (Some(root), true) => root.clone(),
            (Some(_), false) if store.layout == "verbatim" && local_box.ends_with('/') => {
                store.mailbox_dir(&local_box).unwrap_or_default()
            }
            (Some(_), false) => {
                return unplaceable(format!(
                    "it puts the folders under the local prefix {}, which syncmail's layouts cannot express",
                    quoted(&local_box)
                ));
            }
            (None, _) => {
                return unplaceable(format!(
                    "MaildirStore {} has no Path, so mbsync kept its folders relative to the directory it ran in",
                    store.name
                ));
            }
        };
        // Where mbsync kept INBOX: the store's Inbox, unless a local prefix put it under
        // the root like any other folder.
        let inbox_dir = local_box.is_empty().then(|| store.inbox.clone());
        (
            Placement::Tree {
                root,
                layout: store.layout,
            },
            folders,
            inbox_dir,
        )
    } else {
        let far_name = if server_box.is_empty() {
            "INBOX".to_owned()
        } else {
            server_box.clone()
        };
        let near_name = if local_box.is_empty() {
            "INBOX".to_owned()
        } else {
            local_box.clone()
        };
        let server_inbox = far_name.eq_ignore_ascii_case("INBOX");
        if server_inbox {
            let Some(dir) = store.mailbox_dir(&near_name) else {
                return unplaceable(format!(
                    "MaildirStore {} has no Path for mailbox {}",
                    store.name,
                    quoted(&near_name)
                ));
            };
            (Placement::InboxAt(dir), vec!["INBOX".to_owned()], None)
        } else if far_name == near_name {
            let Some(root) = store.root.clone() else {
                return unplaceable(format!("MaildirStore {} has no Path", store.name));
            };
            let folder = patterns(&[far_name], delimiter.as_deref(), &mut notes);
            (
                Placement::Tree {
                    root,
                    layout: store.layout,
                },
                folder,
                None,
            )
        } else {
            let dir = store.mailbox_dir(&near_name).unwrap_or(near_name.clone());
            return unplaceable(format!(
                "it syncs server folder {} into local folder {} ({dir}); syncmail stores a folder under its server name. Move that directory to the server name under the account's maildir and add {} to its `folders`",
                quoted(&far_name),
                quoted(&near_name),
                quoted(&super::decoded_folder(&far_name))
            ));
        }
    };
    notes.extend(policy.notes.iter().cloned());
    notes.extend(leftovers(entries));
    Ok(Ok(Plan {
        channel: ch.name.clone(),
        line: ch.line,
        server_store: server,
        local_store: local,
        placement,
        folders,
        inbox_dir,
        policy,
        notes,
    }))
}

/// Several channels' patterns as one list selecting what any of them selected. Exact
/// when at most one channel excludes anything: it goes first, the others' includes
/// after it (the last matching pattern decides).
fn union_patterns(lists: &[Vec<String>], notes: &mut Vec<Note>) -> Vec<String> {
    let excluding: Vec<&Vec<String>> = lists
        .iter()
        .filter(|l| l.iter().any(|p| p.starts_with('!')))
        .collect();
    if excluding.len() > 1 {
        notes.push(Note::Warning(
            "several channels exclude folders; their patterns are listed one after the other, and the last pattern that matches a folder decides: check that `folders` selects what the channels did"
                .into(),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    let ordered = excluding.iter().copied().chain(
        lists
            .iter()
            .filter(|l| !l.iter().any(|p| p.starts_with('!'))),
    );
    for list in ordered {
        for p in list {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
    }
    out
}

/// The IMAP side of an account: the store's options and its IMAPAccount's.
fn server_settings(
    rc: &Rc,
    account: &mut AccountDraft,
    store: &Section,
    dirs: &Dirs,
) -> Result<(), ConfigError> {
    let mut e = store.entries.clone();
    if let Some(acc) = e.take(&["Account"]) {
        let Some(section) = rc.find(&[Kind::ImapAccount], acc.value()) else {
            return Err(rc.error(
                acc.line,
                format!("there is no IMAPAccount named `{}`", acc.value()),
                "define it with an IMAPAccount section, or fix the name",
            ));
        };
        // The store's own lines win over its account's, as in mbsync.
        let mut merged = section.entries.clone();
        merged.0.extend(e.0);
        e = merged;
    }
    let name = account.name().to_owned();

    let tunnel = e.take(&["Tunnel"]);
    let mut implicit_legacy = false;
    let host = e.take(&["Host"]).map(|h| {
        let v = h.value();
        match v.strip_prefix("imaps:") {
            Some(rest) => {
                implicit_legacy = true;
                rest.to_owned()
            }
            None => v.to_owned(),
        }
    });
    if let Some(u) = e.take(&["UseIMAPS"]) {
        implicit_legacy = u.flag() == Some(true);
    }
    if let Some(t) = &tunnel {
        account.note(Note::not_converted(t.shown(), why("tunnel")));
    }
    match host {
        Some(h) => account.set(Key::Host, Value::str(h)),
        None => {
            account.set(Key::Host, Value::str(super::PLACEHOLDER_HOST));
            account.note_on(
                Key::Host,
                Note::Fix(format!(
                    "IMAPStore {} names no Host; write the IMAP server's host name here",
                    store.name
                )),
            );
        }
    }
    let tls_entry = e.take(&["TLSType", "SSLType"]);
    let tls = match &tls_entry {
        Some(t) => match t.value().to_ascii_lowercase().as_str() {
            "imaps" => "implicit",
            "starttls" => "starttls",
            "none" => "none",
            _ => {
                return Err(rc.error(
                    t.line,
                    format!("`{}` is not an {} value", t.value(), t.key),
                    "use IMAPS, STARTTLS or None",
                ));
            }
        },
        None if tunnel.is_some() => "none",
        None if implicit_legacy => "implicit",
        None => {
            account.note_on(
                Key::Tls,
                Note::Info("mbsync 1.4 uses STARTTLS when SSLType is not set".into()),
            );
            "starttls"
        }
    };
    if let Some(r) = e.take(&["RequireSSL"]) {
        account.note(Note::not_converted(
            r.shown(),
            "syncmail never falls back to plaintext; `tls` says how it connects",
        ));
    }
    account.set(Key::Tls, Value::str(tls));
    if let Some(p) = e.take(&["Port"]) {
        let port = p
            .value()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                rc.error(
                    p.line,
                    format!("`{}` is not a port number", p.value()),
                    "use 1-65535, e.g. 993 for IMAPS or 143 for STARTTLS",
                )
            })?;
        let default = if tls == "implicit" { 993 } else { 143 };
        if port != default {
            account.set(Key::Port, Value::Int(i64::from(port)));
        }
    }
    if tls == "none" {
        let host = match account.get(Key::Host) {
            Some(Value::Str(h)) => h.clone(),
            _ => String::new(),
        };
        if !crate::config::is_loopback(&host) {
            account.set(Key::AllowPlaintext, Value::Bool(true));
            account.note_on(
                Key::Tls,
                Note::Warning(
                    "mbsync connected without TLS; syncmail sends a password in plaintext to a remote host only with allow_plaintext = true, set below. Prefer tls = \"starttls\" or \"implicit\""
                        .into(),
                ),
            );
        }
    }

    let user = e.take(&["User"]);
    let user_cmd = e.take(&["UserCmd"]);
    match (user, user_cmd) {
        (Some(u), _) => account.set(Key::User, Value::str(u.value())),
        (None, cmd) => {
            account.set(Key::User, Value::str(super::PLACEHOLDER_USER));
            let how = match &cmd {
                Some(c) => format!("{} computed the login name", c.shown()),
                None => "the store names no User".to_owned(),
            };
            account.note_on(Key::User, Note::Fix(format!("{how}; write it here")));
        }
    }

    let mechs: Vec<String> = e
        .take(&["AuthMechs", "AuthMech"])
        .map(|m| m.args.iter().map(|a| a.to_ascii_uppercase()).collect())
        .unwrap_or_default();
    let oauth = mechs.iter().any(|m| m == "XOAUTH2" || m == "OAUTHBEARER");
    let auth = match mechs.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => None,
        ["XOAUTH2"] => Some("xoauth2"),
        ["OAUTHBEARER"] => Some("oauthbearer"),
        ["LOGIN"] => Some("login"),
        ["PLAIN"] => Some("plain"),
        _ => {
            account.note_on(
                Key::Auth,
                Note::Info(format!(
                    "AuthMechs {}: syncmail picks PLAIN or LOGIN for a password, XOAUTH2 or OAUTHBEARER for a token, from what the server offers",
                    mechs.join(" ")
                )),
            );
            None
        }
    };
    if let Some(a) = auth {
        account.set(Key::Auth, Value::str(a));
    }
    if let Some(r) = e.take(&["RequireCRAM"]) {
        account.note(Note::not_converted(r.shown(), why("requirecram")));
    }

    let pass = e.take(&["Pass"]);
    let pass_cmd = e.take(&["PassCmd"]);
    let keychain = e.take(&["UseKeychain"]).filter(|k| k.flag() == Some(true));
    let secret_key = if oauth {
        Key::Oauth2TokenCommand
    } else {
        Key::PasswordCommand
    };
    if let Some(cmd) = pass_cmd {
        let (command, tty) = match cmd.value().strip_prefix('+') {
            Some(rest) => (rest, true),
            None => (cmd.value(), false),
        };
        let (argv, note) = super::shell_argv(command, "PassCmd");
        if let Some(n) = note {
            account.note_on(secret_key, n);
        }
        if tty {
            account.note_on(
                secret_key,
                Note::Warning(
                    "PassCmd +\"…\" talks to the terminal; the syncmail daemon has none, so the command must work without one (e.g. a gpg-agent with the key cached)"
                        .into(),
                ),
            );
        }
        if oauth {
            account.note_on(
                secret_key,
                Note::Info("AuthMechs asks for OAuth2, so PassCmd printed an access token".into()),
            );
        }
        account.set(secret_key, Value::List(argv));
        if pass.is_some() {
            account.note(Note::not_converted("Pass <redacted>", "PassCmd is used"));
        }
    } else if let (Some(p), false) = (&pass, oauth) {
        account.set(Key::Password, Value::str(p.value()));
        account.note_on(
            Key::Password,
            Note::Warning(
                "the password is written in this file, as it was in the mbsync config; password_command keeps it in a keyring instead (e.g. [\"pass\", \"show\", \"mail/work\"])"
                    .into(),
            ),
        );
    } else if let (Some(_), false) = (&keychain, oauth) {
        let host = match account.get(Key::Host) {
            Some(Value::Str(h)) => h.clone(),
            _ => String::new(),
        };
        let user = match account.get(Key::User) {
            Some(Value::Str(u)) => u.clone(),
            _ => String::new(),
        };
        account.set(
            Key::PasswordCommand,
            Value::List(
                [
                    "security",
                    "find-internet-password",
                    "-r",
                    "imap",
                    "-s",
                    &host,
                    "-a",
                    &user,
                    "-w",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
        );
        account.note_on(
            Key::PasswordCommand,
            Note::Info(
                "UseKeychain yes: the same macOS Keychain item, read with `security`".into(),
            ),
        );
    } else {
        let why = if pass.is_some() {
            "Pass holds an OAuth2 token, which expires; syncmail runs a command that prints a fresh one"
        } else {
            "mbsync asked for the password on the terminal; syncmail runs unattended"
        };
        account.set(
            secret_key,
            super::placeholder_command(&name, secret_key.name()),
        );
        account.note_on(
            secret_key,
            Note::Fix(format!(
                "{why}: replace this placeholder with a command that prints the {}",
                if oauth { "access token" } else { "password" }
            )),
        );
        account.note_on(
            secret_key,
            Note::Line(format!(
                "{} = [\"pass\", \"show\", \"mail/{name}\"]",
                secret_key.name()
            )),
        );
    }

    if let Some(k) = &keychain
        && !matches!(account.get(Key::PasswordCommand), Some(Value::List(argv)) if argv[0] == "security")
    {
        account.note(Note::not_converted(
            k.shown(),
            "the password comes from the source above",
        ));
    }
    if let Some(ca) = e.take(&["CertificateFile"]) {
        super::ca_file(account, "CertificateFile", ca.value(), dirs);
    }
    if let Some(t) = e.take(&["Timeout"]) {
        match t.value().parse::<u64>() {
            Ok(0) => account.note(Note::not_converted(
                t.shown(),
                "syncmail always limits how long one network read or write may take",
            )),
            Ok(s) => account.set(Key::Timeout, Value::str(super::duration(s))),
            Err(_) => {
                return Err(rc.error(
                    t.line,
                    format!("`{}` is not a number of seconds", t.value()),
                    "write Timeout as whole seconds, e.g. Timeout 60",
                ));
            }
        }
    }
    for d in e.take_all(&["DisableExtension", "DisableExtensions"]) {
        let (compress, other): (Vec<&String>, Vec<&String>) = d.args.iter().partition(|a| {
            a.eq_ignore_ascii_case("COMPRESS") || a.eq_ignore_ascii_case("COMPRESS=DEFLATE")
        });
        if !compress.is_empty() {
            account.set(Key::Compress, Value::Bool(false));
        }
        if !other.is_empty() {
            let list: Vec<&str> = other.iter().map(|s| s.as_str()).collect();
            account.note(Note::not_converted(
                format!("{} {}", d.key, list.join(" ")),
                why("disableextension"),
            ));
        }
    }
    if let Some(t) = e.take(&["Trash"]) {
        account.set(Key::Trash, Value::str(super::decoded_folder(t.value())));
        account.note_on(
            Key::Trash,
            Note::Info(
                "mbsync copied messages to Trash before expunging them on the server; syncmail moves messages deleted locally there instead of expunging them"
                    .into(),
            ),
        );
    }
    if let Some(p) = e.take(&["Path"]) {
        account.note(Note::Fix(format!(
            "IMAPStore {} used Path {}: mbsync left that prefix out of folder names; syncmail leaves out only the server's personal NAMESPACE prefix (`INBOX.` on Cyrus and Courier). If Path is that prefix, the folders keep their places; otherwise server folder {}Sent is the local folder {}Sent, with the prefix as a directory, so the folders are fetched again into new directories; adjust `folders` to the full server names",
            store.name,
            quoted(p.value()),
            p.value(),
            p.value()
        )));
    }
    e.take(&["PathDelimiter"]);
    account.notes.extend(leftovers(e));
    Ok(())
}

/// Convert an mbsync config.
pub(crate) fn convert(path: &Path, text: &str, dirs: &Dirs) -> Result<Draft, ConfigError> {
    let rc = parse(path, text)?;
    let mut draft = Draft::new(Tool::Mbsync, path);
    let mut stores: BTreeMap<String, LocalStore> = BTreeMap::new();
    for s in rc.sections.iter().filter(|s| s.kind == Kind::MaildirStore) {
        stores.insert(s.name.clone(), local_store(&rc, s)?);
    }
    for s in rc.sections.iter().filter(|s| s.kind == Kind::ImapStore) {
        if let Some(acc) = s.entries.peek(&["Account"])
            && rc.find(&[Kind::ImapAccount], acc.value()).is_none()
        {
            return Err(rc.error(
                acc.line,
                format!("there is no IMAPAccount named `{}`", acc.value()),
                "define it with an IMAPAccount section, or fix the name",
            ));
        }
    }
    let mut plans = Vec::new();
    for ch in rc.sections.iter().filter(|s| s.kind == Kind::Channel) {
        match channel_plan(&rc, ch, &stores)? {
            Ok(plan) => plans.push(plan),
            Err(note) => draft.notes.push(note),
        }
    }
    for g in rc.sections.iter().filter(|s| s.kind == Kind::Group) {
        let channels: Vec<String> = g
            .entries
            .0
            .iter()
            .flat_map(|e| e.args.iter().cloned())
            .collect();
        draft.notes.push(Note::not_converted(
            format!("Group {} {}", g.name, channels.join(" ")),
            "syncmail syncs every account; `syncmail sync ACCOUNT...` syncs some",
        ));
    }
    for e in &rc.globals.0 {
        if !e.is(&["Sync", "Expunge", "Create", "Remove"]) {
            draft
                .notes
                .push(Note::not_converted(e.shown(), why(&e.key)));
        }
    }
    for s in &rc.sections {
        let used = match s.kind {
            Kind::ImapStore => plans.iter().any(|p| p.server_store == s.name),
            Kind::MaildirStore => plans.iter().any(|p| p.local_store == s.name),
            Kind::ImapAccount => rc.sections.iter().any(|st| {
                st.kind == Kind::ImapStore
                    && plans.iter().any(|p| p.server_store == st.name)
                    && st
                        .entries
                        .peek(&["Account"])
                        .is_some_and(|a| a.value() == s.name)
            }),
            Kind::Channel | Kind::Group => true,
        };
        if !used {
            draft.notes.push(Note::not_converted(
                format!("{} {}", s.kind.keyword(), s.name),
                "no converted Channel uses it",
            ));
        }
    }

    // One account per (IMAP store, Maildir store, tree); an INBOX-only channel joins
    // the tree of the same two stores when there is one.
    let mut groups: Vec<Vec<Plan>> = Vec::new();
    let (inbox_only, trees): (Vec<Plan>, Vec<Plan>) = plans
        .into_iter()
        .partition(|p| matches!(p.placement, Placement::InboxAt(_)));
    for plan in trees {
        match groups.iter_mut().find(|g| {
            g[0].server_store == plan.server_store
                && g[0].local_store == plan.local_store
                && g[0].placement == plan.placement
        }) {
            Some(g) => g.push(plan),
            None => groups.push(vec![plan]),
        }
    }
    for plan in inbox_only {
        match groups.iter_mut().find(|g| {
            g[0].server_store == plan.server_store && g[0].local_store == plan.local_store
        }) {
            Some(g) => g.push(plan),
            None => groups.push(vec![plan]),
        }
    }
    for group in groups {
        let account = account(&rc, &mut draft, group, &stores, dirs)?;
        draft.accounts.push(account);
    }
    if draft.accounts.is_empty() {
        draft.notes.push(Note::Fix(
            "no Channel between an IMAP store and a Maildir store could be converted, so there is no account yet"
                .into(),
        ));
    }
    Ok(draft)
}

fn account(
    rc: &Rc,
    draft: &mut Draft,
    mut group: Vec<Plan>,
    stores: &BTreeMap<String, LocalStore>,
    dirs: &Dirs,
) -> Result<AccountDraft, ConfigError> {
    group.sort_by_key(|p| p.line);
    let first = &group[0];
    let server = rc
        .find(&[Kind::ImapStore], &first.server_store)
        .expect("channel plans name existing stores");
    let local = &stores[&first.local_store];
    let channels: Vec<&str> = group.iter().map(|p| p.channel.as_str()).collect();
    let wanted = if group.len() == 1 {
        first.channel.clone()
    } else {
        server
            .entries
            .peek(&["Account"])
            .map_or_else(|| server.name.clone(), |a| a.value().to_owned())
    };
    let name = draft.account_name(&wanted);
    let lines: Vec<String> = group.iter().map(|p| p.line.to_string()).collect();
    let mut account = AccountDraft::new(
        &name,
        format!(
            "From Channel {} (IMAPStore {}, MaildirStore {}), line {}.",
            channels.join(", "),
            server.name,
            local.name,
            lines.join(", ")
        ),
    );
    server_settings(rc, &mut account, server, dirs)?;

    // Where the folders go.
    let tree = group.iter().find_map(|p| match &p.placement {
        Placement::Tree { root, layout } => Some((root.clone(), *layout)),
        Placement::InboxAt(_) => None,
    });
    let inbox_dir = group.iter().find_map(|p| match &p.placement {
        Placement::InboxAt(dir) => Some(dir.clone()),
        Placement::Tree { .. } => p.inbox_dir.clone(),
    });
    let lists: Vec<Vec<String>> = group.iter().map(|p| p.folders.clone()).collect();
    let mut folder_notes = Vec::new();
    let mut folders = union_patterns(&lists, &mut folder_notes);
    if !folders.iter().any(|p| !p.starts_with('!')) {
        folder_notes.push(Note::Fix(
            "the channels' Patterns only exclude, so mbsync synced nothing; `folders` needs a pattern that includes, e.g. \"*\""
                .into(),
        ));
        folders.insert(0, "INBOX".into());
    }
    let selects_inbox = FolderPatterns(
        folders
            .iter()
            .filter_map(|p| FolderPattern::parse(p).ok())
            .collect(),
    )
    .includes("INBOX", Some('/'));
    let has_tree = tree.is_some();
    let (root, layout) = match tree {
        Some((root, layout)) => {
            if selects_inbox && let Some(dir) = &inbox_dir {
                let expected = if layout == "maildir++" {
                    super::dir_value(&root)
                } else {
                    format!("{}/INBOX", super::dir_value(&root))
                };
                if !super::same_dir(dir, &expected, dirs) {
                    account.note_on(Key::Maildir, inbox_move(dir, &expected, dirs));
                }
            }
            (root, layout)
        }
        None => {
            let dir = inbox_dir.unwrap_or_else(|| local.inbox.clone());
            account.note_on(
                Key::Layout,
                Note::Info(
                    "only INBOX is synced, so layout = \"maildir++\" keeps it in the account's maildir itself, where mbsync kept it"
                        .into(),
                ),
            );
            (dir, "maildir++")
        }
    };
    account.set(Key::Maildir, Value::str(super::dir_value(&root)));
    if !(root.starts_with('/') || root.starts_with('~')) {
        account.note_on(
            Key::Maildir,
            Note::Fix(format!(
                "mbsync read {} relative to the directory it ran in; syncmail reads it relative to general.maildir: write the full path",
                quoted(&root)
            )),
        );
    }
    if local.layout == "verbatim"
        && local.path.as_deref().is_some_and(|p| !p.ends_with('/'))
        && has_tree
    {
        account.note_on(
            Key::Maildir,
            Note::Fix(format!(
                "MaildirStore {} Path {} has no trailing /, so mbsync named folders {}NAME; syncmail uses {}/NAME: rename the folders or correct this path",
                local.name,
                quoted(local.path.as_deref().unwrap_or("")),
                local.path.as_deref().unwrap_or(""),
                local.path.as_deref().unwrap_or("")
            )),
        );
    }
    // Gmail's delimiter is `/`, so the note would only be noise there.
    let gmail = matches!(account.get(Key::Host), Some(Value::Str(h)) if h.eq_ignore_ascii_case("imap.gmail.com"));
    if folders.iter().any(|p| p.contains('/'))
        && server.entries.peek(&["PathDelimiter"]).is_none()
        && !gmail
    {
        folder_notes.push(Note::Info(
            "mbsync writes folder hierarchy with `/`; syncmail's patterns use the server's own delimiter, so if the server uses `.` write INBOX.Sent where mbsync had INBOX/Sent"
                .into(),
        ));
    }
    account.set(Key::Folders, Value::List(folders));
    for n in folder_notes {
        account.note_on(Key::Folders, n);
    }
    account.set(Key::Layout, Value::str(layout));
    // mbsync 1.4 never decodes folder names: a non-ASCII folder is a directory named in
    // modified UTF-7 (Entw&APw-rfe). Keeping that spelling adopts those directories.
    account.set(Key::FolderNames, Value::str("modified-utf-7"));
    account.note_on(
        Key::FolderNames,
        Note::Info(
            "mbsync stored non-ASCII folder names in modified UTF-7 (Entw&APw-rfe); syncmail keeps that spelling so it adopts those directories".into(),
        ),
    );

    // How it syncs: one policy per account.
    let policy = &first.policy;
    account.set(Key::Direction, Value::str(policy.direction));
    account.set(Key::Expunge, Value::str(policy.expunge));
    if let Some(other) = group
        .iter()
        .find(|p| p.policy.direction != policy.direction || p.policy.expunge != policy.expunge)
    {
        account.note_on(
            Key::Direction,
            Note::Warning(format!(
                "channels {} and {} sync differently (direction {} / {}, expunge {} / {}); syncmail has one setting per account, taken from {}",
                first.channel,
                other.channel,
                policy.direction,
                other.policy.direction,
                policy.expunge,
                other.policy.expunge,
                first.channel
            )),
        );
    }
    let mut seen: Vec<Note> = Vec::new();
    for plan in &group {
        for n in &plan.notes {
            if !seen.contains(n) {
                seen.push(n.clone());
            }
        }
    }
    for n in seen {
        account.note(n);
    }
    if has_tree {
        account.notes.extend(local.layout_notes.iter().cloned());
    } else if local.layout_set {
        account.note(Note::Info(format!(
            "only INBOX is synced, so how MaildirStore {} lays out subfolders (SubFolders, Flatten) does not matter",
            local.name
        )));
    }
    account.notes.extend(local.notes.iter().cloned());
    account.notes.extend(leftovers(local.rest.clone()));
    Ok(account)
}

/// The one move that lets syncmail adopt an INBOX mbsync kept elsewhere.
fn inbox_move(from: &str, to: &str, dirs: &Dirs) -> Note {
    let from_dir = super::dir_value(from);
    let inside = super::expand_home(&format!("{to}/"), dirs)
        .zip(super::expand_home(&from_dir, dirs))
        .is_some_and(|(t, f)| t.starts_with(&f));
    if inside {
        Note::Fix(format!(
            "mbsync kept INBOX in {from_dir} itself; syncmail keeps it in {to}. Before the first sync: mkdir {to} && mv {from_dir}/cur {from_dir}/new {from_dir}/tmp {to}/"
        ))
    } else {
        Note::Fix(format!(
            "mbsync kept INBOX in {from_dir}; syncmail keeps it in {to}. Before the first sync: mv {from_dir} {to} (else INBOX is fetched again)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMech, Layout, SecretSource, Tls};
    use crate::import::tests::{Out, dirs, load};
    use crate::sync::{Direction, Expunge};

    const RC: &str = "/home/me/.mbsyncrc";

    fn convert_ok(rc: &str) -> Out {
        crate::import::tests::convert_ok(Tool::Mbsync, RC, rc)
    }

    fn convert_err(rc: &str) -> ConfigError {
        crate::import::tests::convert_err(Tool::Mbsync, RC, rc)
    }

    const GMAIL: &str = r#"# Gmail with a password command and patterns
IMAPAccount gmail
Host imap.gmail.com
User me@gmail.com
PassCmd "pass show mail/gmail | head -n1"
SSLType IMAPS
CertificateFile /etc/ssl/certs/ca-certificates.crt

IMAPStore gmail-remote
Account gmail

MaildirStore gmail-local
SubFolders Verbatim
Path ~/Mail/gmail/
Inbox ~/Mail/gmail/Inbox

Channel gmail
Far :gmail-remote:
Near :gmail-local:
Patterns * ![Gmail]* "[Gmail]/Sent Mail" "[Gmail]/Starred"
Pattern "[Gmail]/All Mail"
Create Both
Expunge Both
SyncState *

Group everything
Channel gmail
"#;

    #[test]
    fn gmail_with_passcmd_and_patterns() {
        let out = convert_ok(GMAIL);
        assert!(out.text.starts_with(&format!(
            "# converted from {RC} by syncmail import mbsync\n"
        )));
        let a = out.account("gmail");
        assert_eq!(a.server.host, "imap.gmail.com");
        assert_eq!((a.server.port, a.server.tls), (993, Tls::Implicit));
        assert_eq!(a.server.user, "me@gmail.com");
        assert!(
            a.server.ca_file.is_none(),
            "the system bundle is not repeated"
        );
        match &a.secret {
            SecretSource::PasswordCommand(argv) => {
                assert_eq!(argv, &["sh", "-c", "pass show mail/gmail | head -n1"])
            }
            other => panic!("{other:?}"),
        }
        assert!(out.has("# note: PassCmd was a shell command line"));
        assert_eq!(a.maildir, out.home("Mail/gmail"));
        assert_eq!(
            out.folders("gmail"),
            [
                "*",
                "![Gmail]*",
                "[Gmail]/Sent Mail",
                "[Gmail]/Starred",
                "[Gmail]/All Mail"
            ]
        );
        let s = out.imap("gmail");
        assert_eq!(s.layout, Layout::Verbatim);
        assert_eq!((s.direction, s.expunge), (Direction::Both, Expunge::Both));
        // Inbox is not where syncmail keeps INBOX: say how to move it.
        assert!(
            out.has("# fix: mbsync kept INBOX in ~/Mail/gmail/Inbox; syncmail keeps it in ~/Mail/gmail/INBOX."),
            "{}",
            out.text
        );
        assert!(out.has("# not converted: SyncState *"));
        assert!(out.has("# not converted: Group everything gmail"));
    }

    const DOVECOT: &str = r#"Expunge None
Create Near

IMAPAccount work
Host mail.example.org
User john
Pass "se\"cret"
SSLType STARTTLS
Timeout 90
CertificateFile $HOME/company-ca.pem
DisableExtension COMPRESS=DEFLATE ID

IMAPStore work-remote
Account work
Trash Trash

MaildirStore work-local
Path ~/Maildir/work/
Inbox ~/Maildir/work/INBOX
SubFolders Verbatim

Channel work
Far :work-remote:
Near :work-local:
Patterns * !Junk
Sync Pull Push
Expunge Far
MaxMessages 500
"#;

    #[test]
    fn dovecot_with_starttls_and_verbatim_subfolders() {
        let home_ca = |out: &Out| out.home("company-ca.pem");
        // The CA file must exist for the loader; create it under the test's home.
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("company-ca.pem"), "pem").unwrap();
        let rc = DOVECOT.replace("$HOME", home.path().to_str().unwrap());
        let d = dirs(home.path());
        let converted = super::super::convert(Tool::Mbsync, Path::new(RC), &rc, &d).unwrap();
        let out = Out {
            config: load(&converted.text, &d),
            text: converted.text,
            home,
        };
        let a = out.account("work");
        assert_eq!((a.server.port, a.server.tls), (143, Tls::Starttls));
        assert!(!a.server.compress, "DisableExtension COMPRESS=DEFLATE");
        assert_eq!(a.server.timeout, std::time::Duration::from_secs(90));
        assert_eq!(a.server.ca_file.as_deref(), Some(home_ca(&out).as_path()));
        assert!(matches!(&a.secret, SecretSource::Password(p) if p == "se\"cret"));
        assert!(out.has("# warning: the password is written in this file"));
        assert_eq!(a.maildir, out.home("Maildir/work"));
        assert!(
            !out.has_fix(),
            "INBOX is where syncmail keeps it:\n{}",
            out.text
        );
        assert_eq!(out.folders("work"), ["*", "!Junk"]);
        let s = out.imap("work");
        assert_eq!(s.layout, Layout::Verbatim);
        assert_eq!(s.direction, Direction::Both);
        assert_eq!(
            s.expunge,
            Expunge::Server,
            "Expunge Far: deletions reach the server only"
        );
        assert_eq!(s.trash.as_ref().map(|t| t.0.as_str()), Some("Trash"));
        assert!(out.has("# not converted: DisableExtension ID"));
        assert!(out.has("# not converted: MaxMessages 500"));
        assert!(
            out.has("# not converted: Create Near"),
            "global options apply to channels"
        );
    }

    const MAILDIRPP: &str = r#"IMAPStore isp
Host imap.isp.example
Port 993
User me
PassCmd +"gpg -q --for-your-eyes-only -d ~/.isp.gpg"
SSLType IMAPS

MaildirStore courier
Inbox ~/Maildir
SubFolders Maildir++

Channel isp
Far :isp:
Near :courier:
Patterns INBOX Sent Drafts "Archive/%"
Sync All
Expunge Both
"#;

    #[test]
    fn maildir_plus_plus_store_keeps_inbox_at_the_root() {
        let out = convert_ok(MAILDIRPP);
        let a = out.account("isp");
        assert_eq!(a.maildir, out.home("Maildir"));
        let s = out.imap("isp");
        assert_eq!(s.layout, Layout::MaildirPlusPlus);
        assert_eq!(out.folders("isp"), ["INBOX", "Sent", "Drafts", "Archive/%"]);
        assert!(!out.has_fix(), "{}", out.text);
        assert!(out.has("# warning: PassCmd +\"…\" talks to the terminal"));
        assert!(
            !out.text.contains("port ="),
            "993 is the default with implicit TLS"
        );
    }

    /// isync's own sample: one INBOX per channel into a folder of a shared store.
    const SHARED_STORE: &str = r#"MaildirStore local
Path ~/Mail/
Trash Trash

IMAPStore work
Host work.host.com
User tehuser
Pass xxxxxxxx

Channel work
Far :work:
Near :local:work
Expunge Near
Sync PullNew Push

IMAPStore personal
Host host.play.com
Port 6789
SSLType IMAPS
User me
UseKeychain yes

Channel personal
Far :personal:
Near :local:personal
Expunge Both
MaxSize 200k
"#;

    #[test]
    fn inbox_only_channels_keep_inbox_where_mbsync_put_it() {
        let out = convert_ok(SHARED_STORE);
        for name in ["work", "personal"] {
            let a = out.account(name);
            assert_eq!(a.maildir, out.home(&format!("Mail/{name}")), "{name}");
            assert_eq!(out.folders(name), ["INBOX"]);
            assert_eq!(out.imap(name).layout, Layout::MaildirPlusPlus);
        }
        assert_eq!(out.account("personal").server.port, 6789);
        match &out.account("personal").secret {
            SecretSource::PasswordCommand(argv) => assert_eq!(
                argv,
                &[
                    "security",
                    "find-internet-password",
                    "-r",
                    "imap",
                    "-s",
                    "host.play.com",
                    "-a",
                    "me",
                    "-w"
                ]
            ),
            other => panic!("{other:?}"),
        }
        // Sync PullNew Push: deletions travel to the server only; Expunge Near removes
        // nothing then.
        let work = out.imap("work");
        assert_eq!(
            (work.direction, work.expunge),
            (Direction::Both, Expunge::None)
        );
        assert!(out.has("# not converted: Sync PullNew Push"));
        assert!(out.has("# not converted: MaxSize 200k"));
        assert!(
            !out.has("xxxxxxxx\n#"),
            "a password never lands in a comment"
        );
    }

    #[test]
    fn several_channels_to_one_server_make_one_account() {
        let out = convert_ok(
            r#"IMAPAccount fm
Host imap.fastmail.com
User me@fastmail.com
AuthMechs XOAUTH2
PassCmd "oama access me@fastmail.com"
SSLType IMAPS

IMAPStore fm-remote
Account fm

MaildirStore fm-local
Path ~/Mail/fm/
Inbox ~/Mail/fm/INBOX
SubFolders Verbatim

Channel fm-inbox
Far :fm-remote:
Near :fm-local:

Channel fm-lists
Far :fm-remote:
Near :fm-local:
Patterns Lists/*

Channel fm-sent
Far :fm-remote:Sent
Near :fm-local:sent
"#,
        );
        assert_eq!(out.config.accounts.len(), 1, "{}", out.text);
        let a = out.account("fm");
        assert_eq!(a.server.auth, AuthMech::Xoauth2);
        match &a.secret {
            SecretSource::OAuth2TokenCommand(argv) => {
                assert_eq!(argv, &["oama", "access", "me@fastmail.com"])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.folders("fm"), ["INBOX", "Lists/*"]);
        assert_eq!(a.maildir, out.home("Mail/fm"));
        // A server folder synced into a differently named local folder cannot be said.
        assert!(
            out.has("# fix: Channel fm-sent is not converted: it syncs server folder Sent into local folder sent"),
            "{}",
            out.text
        );
    }

    #[test]
    fn the_maildir_as_far_side_swaps_pull_and_push() {
        let out = convert_ok(
            "IMAPStore r\nHost h.example\nUser u\nPass p\nSSLType IMAPS\n\nMaildirStore l\nPath ~/M/\nInbox ~/M/INBOX\n\nChannel c\nFar :l:\nNear :r:\nPatterns *\nSync Pull\nExpunge Near\n",
        );
        let s = out.imap("c");
        assert_eq!(
            s.direction,
            Direction::Push,
            "far (Maildir) -> near (server)"
        );
        assert_eq!(s.expunge, Expunge::Server);
    }

    #[test]
    fn sync_operations_read_as_mbsync_reads_them() {
        let rc = Rc {
            path: Path::new(RC),
            text: "",
            sections: Vec::new(),
            globals: Entries::default(),
        };
        let ops = |line: &str| {
            let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
            sync_ops(
                &rc,
                &[Entry {
                    key: "Sync".into(),
                    args,
                    line: 1,
                }],
            )
        };
        let new_flags = Ops {
            new: true,
            flags: true,
            ..Ops::default()
        };
        let none = Ops::default();
        assert_eq!(ops("All").unwrap(), (Ops::ALL, Ops::ALL));
        assert_eq!(ops("Pull").unwrap(), (Ops::ALL, none));
        assert_eq!(ops("New Flags").unwrap(), (new_flags, new_flags));
        assert_eq!(ops("Pull New Flags").unwrap(), (new_flags, none));
        assert_eq!(
            ops("PullNew Push").unwrap(),
            (Ops { new: true, ..none }, Ops::ALL)
        );
        assert_eq!(ops("None").unwrap(), (none, none));
        assert_eq!(
            ops("PullGone PushFlags").unwrap().0,
            Ops {
                delete: true,
                ..none
            }
        );
        assert!(ops("PullNew Pull").is_err(), "a cell asserted twice");
        assert!(ops("Sideways").is_err());
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = convert_err("MaildirStore l\nPath \"~/Mail/\n");
        assert_eq!(
            (e.path.as_path(), e.line_col()),
            (Path::new(RC), Some((2, 1)))
        );
        assert!(e.message.contains("missing closing quote"), "{e}");

        let e = convert_err("MaildirStore l\nPath ~/M/\n\nChannel c\nFar :nope:\nNear :l:\n");
        assert_eq!(e.line_col(), Some((5, 1)));
        assert!(e.message.contains("no store named `nope`"), "{e}");
        assert!(e.to_string().starts_with("/home/me/.mbsyncrc:5:1: "), "{e}");

        let e = convert_err("IMAPStore r\nAccount ghost\nHost h\n");
        assert_eq!(e.line_col(), Some((2, 1)));
        assert!(e.message.contains("no IMAPAccount named `ghost`"), "{e}");

        let e = convert_err("IMAPAccount a\nHost h\n\nUser me\n");
        assert_eq!(e.line_col(), Some((4, 1)));
        assert!(e.message.contains("outside any section"), "{e}");

        let e = convert_err("IMAPAccount a\nHost h\nIMAPStore s\n");
        assert_eq!(e.line_col(), Some((3, 1)));
        assert!(e.help.as_deref().unwrap().contains("empty line"), "{e}");

        let e = convert_err("MaildirStore l\nPath\n");
        assert!(e.message.contains("has no value"), "{e}");

        let e = convert_err("MaildirStore l\nPath ~/M/\n\nMaildirStore l\nPath ~/N/\n");
        assert_eq!(e.line_col(), Some((4, 1)));
        assert!(e.message.contains("defined twice"), "{e}");

        let e = convert_err("MaildirStore l\nPath ~/M/\n\nChannel c\nNear :l:\n");
        assert_eq!(e.line_col(), Some((4, 1)));
    }

    #[test]
    fn tokens_follow_mbsyncs_quoting() {
        assert_eq!(tokenize("Pass \"a b\"").unwrap(), ["Pass", "a b"]);
        assert_eq!(
            tokenize("PassCmd +\"gpg -d x\"").unwrap(),
            ["PassCmd", "+gpg -d x"]
        );
        assert_eq!(
            tokenize(r#"PassCmd "sed -n 's,^x\\.y,\\1,p' \"f\"""#).unwrap(),
            ["PassCmd", r#"sed -n 's,^x\.y,\1,p' "f""#]
        );
        assert_eq!(tokenize("  \t ").unwrap(), Vec::<String>::new());
        assert!(tokenize("Path \"x").is_err());
        assert!(tokenize("Path x\\").is_err());
    }

    #[test]
    fn what_has_no_equivalent_is_listed_never_dropped() {
        let out = convert_ok(
            "FSync no\nBufferLimit 20M\n\nIMAPStore r\nHost h.example\nUser u\nPass hunter2\nPass hunter3\nPassCmd \"pass x\"\nFrobnicate yes\nClientCertificate ~/c.pem\n\nMaildirStore l\nPath ~/M/\nInbox ~/M/INBOX\nAltMap yes\n\nMaildirStore unused\nPath ~/U/\n\nChannel c\nFar :r:\nNear :l:\nPatterns %\nCopyArrivalDate yes\n",
        );
        for needle in [
            "# not converted: FSync no",
            "# not converted: BufferLimit 20M",
            "# not converted: Frobnicate yes",
            "# not converted: ClientCertificate ~/c.pem",
            "# not converted: AltMap yes",
            "# not converted: MaildirStore unused",
            "# not converted: CopyArrivalDate yes",
            "# not converted: Pass <redacted> (PassCmd is used)",
        ] {
            assert!(out.has(needle), "{needle} missing from\n{}", out.text);
        }
        assert!(!out.text.contains("hunter"), "{}", out.text);
        assert!(out.has("# note: mbsync 1.4 uses STARTTLS when SSLType is not set"));
    }

    #[test]
    fn an_interactive_password_becomes_a_placeholder_that_loads() {
        let out = convert_ok(
            "IMAPStore r\nHost h.example\nUser u\nSSLType IMAPS\n\nMaildirStore l\nPath ~/M/\nInbox ~/M/INBOX\n\nChannel c\nFar :r:\nNear :l:\nPatterns *\n",
        );
        assert!(out.has("# fix: mbsync asked for the password on the terminal"));
        assert!(out.has("# password_command = [\"pass\", \"show\", \"mail/c\"]"));
        match &out.account("c").secret {
            SecretSource::PasswordCommand(argv) => {
                assert!(
                    argv[2].contains("account c has no secret source yet"),
                    "{argv:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
