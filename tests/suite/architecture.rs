//! The module map of ARCHITECTURE.md, checked on the source text of `src/`: the planning
//! core does no IO and reads no clock, and imports point down the layer order only.
//!
//! A use is the text `crate::<module>` (or a top-level name in `crate::{...}`) outside a
//! comment line; doc links (`//!`, `///`) do not count. Each finding names file:line.

use std::path::Path;

/// Each module may use only the modules listed before it, except its siblings.
const LAYERS: &[&str] = &[
    "fault", "model", "sync", "store", "maildir", "config", "secret", "net", "imap", "pop3",
    "import", "engine", "unified", "daemon", "cli",
];

/// Siblings: the first may not use the second although it comes later, so neither uses
/// the other. Both protocols stand on `net`; Maildir code is files only and the state
/// database is the engine's business (ARCHITECTURE.md: "`maildir` does not import
/// `store`"); the unified inbox has its own plan and apply and shares no code with the
/// account engine ("nothing below `engine` imports `engine`").
const SIBLINGS: &[(&str, &str)] = &[
    ("pop3", "imap"),
    ("maildir", "store"),
    ("unified", "engine"),
];

/// The crate root, the binary and the hidden fuzzing hooks may use any module.
const EXEMPT: &[&str] = &["lib.rs", "main.rs", "fuzzing.rs"];

/// What `sync/` must not mention: the planner is pure (no runtime, no database, no
/// filesystem, no network, no clock; time is an argument).
const NOT_IN_SYNC: &[&str] = &[
    "tokio",
    "rusqlite",
    "std::fs",
    "std::net",
    "SystemTime::now",
    "Instant::now",
];

/// The same, as names in a `std::{...}` group.
const NOT_IN_SYNC_FROM_STD: &[&str] = &["fs", "net"];

/// At least this many files must be read, so a wrong path cannot pass on nothing.
const MIN_FILES: usize = 50;

#[derive(Debug)]
struct Finding {
    file: String,
    line: usize,
    text: String,
    why: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}\n    {}",
            self.file, self.line, self.why, self.text
        )
    }
}

/// Every `.rs` file under `src/`, as (`src/...` path, text), sorted by path.
fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, text));
            }
        }
    }
    out.sort();
    out
}

/// The module a file belongs to (`src/imap/tls.rs` and `src/imap.rs` are `imap`), or
/// `None` for an exempt file.
fn module_of(file: &str) -> Option<&str> {
    let rel = file.strip_prefix("src/").unwrap_or(file);
    if EXEMPT.contains(&rel) {
        return None;
    }
    Some(match rel.split_once('/') {
        Some((dir, _)) => dir,
        None => rel.strip_suffix(".rs").unwrap_or(rel),
    })
}

/// The text with every comment line blanked (line numbers stay), and where lines start.
fn code(text: &str) -> (String, Vec<usize>) {
    let mut code = String::with_capacity(text.len());
    let mut starts = Vec::new();
    for line in text.lines() {
        starts.push(code.len());
        if !line.trim_start().starts_with("//") {
            code.push_str(line);
        }
        code.push('\n');
    }
    (code, starts)
}

/// The 1-based line of a byte offset.
fn line_at(starts: &[usize], offset: usize) -> usize {
    starts.partition_point(|&s| s <= offset)
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The names a path prefix (`crate::`, `std::`) reaches, with their offsets: the next
/// segment, or each top-level name of a brace group that follows (`crate::{a, b::c}`
/// gives `a` and `b`). A prefix that continues an identifier (`my_crate::`,
/// `$crate::`) is not one.
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<(usize, &'a str)> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let start = at + prefix.len();
        let rest = &code[start..];
        let Some(group) = rest.strip_prefix('{') else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push((start, name));
            }
            continue;
        };
        let (mut depth, mut expect) = (0usize, true);
        for (i, c) in group.char_indices() {
            match c {
                c if c.is_whitespace() => continue,
                ',' if depth == 0 => {
                    expect = true;
                    continue;
                }
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                c if expect && depth == 0 && (c.is_alphabetic() || c == '_') => {
                    let name = ident(&group[i..]);
                    if name != "self" {
                        out.push((start + 1 + i, name));
                    }
                }
                _ => {}
            }
            expect = false;
        }
    }
    out
}

fn source_line(text: &str, line: usize) -> String {
    text.lines().nth(line - 1).unwrap_or("").trim().to_owned()
}

/// The modules `module` may use.
fn allowed(module: &str) -> Vec<&'static str> {
    let Some(rank) = LAYERS.iter().position(|m| *m == module) else {
        return Vec::new();
    };
    LAYERS[..rank]
        .iter()
        .copied()
        .filter(|used| !SIBLINGS.contains(&(module, *used)))
        .collect()
}

/// Uses in `file` of a module it may not use.
fn layer_findings(file: &str, text: &str) -> Vec<Finding> {
    let Some(module) = module_of(file) else {
        return Vec::new();
    };
    let finding = |line: usize, why: String| Finding {
        file: file.to_owned(),
        line,
        text: source_line(text, line),
        why,
    };
    if !LAYERS.contains(&module) {
        return vec![finding(
            1,
            format!("module `{module}` is not in the layer order: place it in LAYERS"),
        )];
    }
    let allowed = allowed(module);
    let (code, starts) = code(text);
    let mut out = Vec::new();
    for (offset, used) in names_after(&code, "crate::") {
        if used == module || allowed.contains(&used) {
            continue;
        }
        let why = if !LAYERS.contains(&used) {
            format!("{module} uses crate::{used}, which is not a module in the layer order")
        } else if SIBLINGS.contains(&(module, used)) {
            format!("{module} uses crate::{used}: siblings, neither may use the other")
        } else {
            format!(
                "{module} uses crate::{used}, which is above it (it may use: {})",
                if allowed.is_empty() {
                    "nothing".to_owned()
                } else {
                    allowed.join(", ")
                }
            )
        };
        out.push(finding(line_at(&starts, offset), why));
    }
    out
}

/// Mentions of IO or the clock in a file of the planning core.
fn purity_findings(file: &str, text: &str) -> Vec<Finding> {
    if module_of(file) != Some("sync") {
        return Vec::new();
    }
    let (code, starts) = code(text);
    let mut out = Vec::new();
    for word in NOT_IN_SYNC {
        for (offset, _) in code.match_indices(word) {
            out.push((offset, format!("sync is pure but mentions `{word}`")));
        }
    }
    // `std::fs` is caught above; `use std::{fs, ...}` needs the group read.
    for (offset, name) in names_after(&code, "std::") {
        if NOT_IN_SYNC_FROM_STD.contains(&name) && !code[..offset].ends_with("std::") {
            out.push((offset, format!("sync is pure but uses `std::{name}`")));
        }
    }
    out.sort();
    out.dedup_by_key(|(offset, _)| *offset);
    out.into_iter()
        .map(|(offset, why)| {
            let line = line_at(&starts, offset);
            Finding {
                file: file.to_owned(),
                line,
                text: source_line(text, line),
                why,
            }
        })
        .collect()
}

fn report(what: &str, findings: &[Finding]) -> String {
    let list: Vec<String> = findings.iter().map(Finding::to_string).collect();
    format!(
        "{} {what} (see ARCHITECTURE.md, \"Module layout\"):\n{}",
        findings.len(),
        list.join("\n")
    )
}

/// The scanner finds what it must and nothing else, on planted text: a check that
/// found nothing because it could not see would pass forever.
fn self_check() {
    // (line, module used) of each finding.
    let uses = |found: &[Finding]| -> Vec<(usize, String)> {
        found
            .iter()
            .map(|f| {
                (
                    f.line,
                    ident(&f.why[f.why.find("crate::").unwrap() + 7..]).to_owned(),
                )
            })
            .collect()
    };
    let planted = "\
//! Doc links such as [`crate::daemon::Status`] do not count,
/// nor [`crate::engine`] in an item's doc,
// nor a commented-out `use crate::engine;`.
use crate::model::Uid;
use crate::{
    config::Server,
    daemon::{self, Status},
    net,
};
use my_crate::engine;
fn f() -> String {
    crate::engine::imap_date(t)
}
use crate::pop3::MsgNo;
";
    let found = layer_findings("src/imap/planted.rs", planted);
    assert_eq!(
        uses(&found),
        [
            (7, "daemon".to_owned()),
            (12, "engine".to_owned()),
            (14, "pop3".to_owned())
        ],
        "the layer scanner misreads planted text: {found:#?}"
    );
    assert_eq!(found[0].file, "src/imap/planted.rs");
    assert_eq!(found[0].text, "daemon::{self, Status},");
    assert!(
        found[0].why.ends_with(
            "above it (it may use: fault, model, sync, store, maildir, config, secret, net)"
        ),
        "{}",
        found[0]
    );
    let found = layer_findings(
        "src/pop3/planted.rs",
        "use crate::imap::tls;\nuse crate::net::Stream;\n",
    );
    assert_eq!(uses(&found), [(1, "imap".to_owned())], "{found:#?}");
    assert!(found[0].why.contains("siblings"), "{}", found[0]);
    for (file, text) in [
        ("src/maildir/planted.rs", "use crate::store::fault;\n"),
        ("src/unified/planted.rs", "crate::engine::imap_date(t)\n"),
        ("src/model.rs", "use crate::sync::Plan;\n"),
        ("src/config/planted.rs", "use crate::fuzzing;\n"),
        ("src/nowhere.rs", "fn f() {}\n"),
    ] {
        assert_eq!(
            layer_findings(file, text).len(),
            1,
            "{file}: {text:?} is not reported"
        );
    }
    assert!(layer_findings("src/lib.rs", "use crate::cli;\n").is_empty());
    assert!(layer_findings("src/cli.rs", "use crate::{daemon, engine};\n").is_empty());
    assert!(layer_findings("src/store/planted.rs", "use crate::sync::Pair;\n").is_empty());

    let planted = "\
// tokio, std::fs and Instant::now in a comment are fine.
pub fn plan(now: Timestamp) {}
let t = std::time::SystemTime::now();
use std::{collections::BTreeMap, fs};
use tokio::sync::mpsc;
use std::net::TcpStream;
";
    let found: Vec<usize> = purity_findings("src/sync/planted.rs", planted)
        .into_iter()
        .map(|f| f.line)
        .collect();
    assert_eq!(
        found,
        [3, 4, 5, 6],
        "the purity scanner misreads planted text"
    );
    assert!(purity_findings("src/store/planted.rs", planted).is_empty());
}

fn scanned() -> Vec<(String, String)> {
    self_check();
    let files = sources();
    assert!(
        files.len() > MIN_FILES,
        "only {} files found under {}/src: is the path right?",
        files.len(),
        env!("CARGO_MANIFEST_DIR")
    );
    files
}

#[test]
fn the_scanner_finds_planted_violations() {
    self_check();
}

#[test]
fn sync_does_no_io_and_reads_no_clock() {
    let files = scanned();
    assert!(
        files.iter().any(|(f, _)| f.starts_with("src/sync/")),
        "no file under src/sync/"
    );
    let findings: Vec<Finding> = files
        .iter()
        .flat_map(|(file, text)| purity_findings(file, text))
        .collect();
    assert!(
        findings.is_empty(),
        "{}",
        report("mentions of IO or the clock in the pure planner", &findings)
    );
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let files = scanned();
    let findings: Vec<Finding> = files
        .iter()
        .flat_map(|(file, text)| layer_findings(file, text))
        .collect();
    assert!(
        findings.is_empty(),
        "{}",
        report("uses of a module outside the layers below", &findings)
    );
}
