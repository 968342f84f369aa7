//! Every config key the loader accepts, by table, and its documentation as the example
//! config writes it: one list that the example-config test, `syncmail.toml(5)` and the
//! "did you mean" help all read, so none of them can drift from the loader.

/// The annotated example config, shipped inside the binary (`syncmail init` writes it).
pub const EXAMPLE: &str = include_str!("../../config/syncmail.example.toml");

/// The tables of the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    General,
    Account,
    Unified,
}

impl Table {
    pub fn header(self) -> &'static str {
        match self {
            Table::General => "[general]",
            Table::Account => "[[account]]",
            Table::Unified => "[unified]",
        }
    }
}

/// Which account kinds a key applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    All,
    ImapOnly,
    Pop3Only,
}

#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub table: Table,
    pub name: &'static str,
    pub applies: Applies,
}

const fn key(table: Table, name: &'static str, applies: Applies) -> Key {
    Key {
        table,
        name,
        applies,
    }
}

use Applies::{All, ImapOnly, Pop3Only};
use Table::{Account, General, Unified};

/// In the order the example config documents them. A unit test below checks this list
/// against the fields serde knows for each table, both ways.
pub const KEYS: &[Key] = &[
    key(General, "maildir", All),
    key(General, "state_dir", All),
    key(General, "log_level", All),
    key(General, "on_new_mail", All),
    key(General, "after_sync", All),
    key(General, "hook_timeout", All),
    key(Account, "name", All),
    key(Account, "kind", All),
    key(Account, "host", All),
    key(Account, "provider", ImapOnly),
    key(Account, "port", All),
    key(Account, "tls", All),
    key(Account, "allow_plaintext", All),
    key(Account, "user", All),
    key(Account, "auth", All),
    key(Account, "password_command", All),
    key(Account, "oauth2_token_command", All),
    key(Account, "oauth2", All),
    key(Account, "password", All),
    key(Account, "ca_file", All),
    key(Account, "cert_fingerprint", All),
    key(Account, "compress", ImapOnly),
    key(Account, "timeout", All),
    key(Account, "maildir", All),
    key(Account, "poll_interval", All),
    key(Account, "folders", ImapOnly),
    key(Account, "idle", ImapOnly),
    key(Account, "idle_refresh", ImapOnly),
    key(Account, "idle_connections", ImapOnly),
    key(Account, "sweep_interval", ImapOnly),
    key(Account, "layout", ImapOnly),
    key(Account, "folder_names", ImapOnly),
    key(Account, "use_namespace", ImapOnly),
    key(Account, "direction", ImapOnly),
    key(Account, "expunge", ImapOnly),
    key(Account, "trash", ImapOnly),
    key(Account, "delete_vs_flag", ImapOnly),
    key(Account, "max_delete_share", ImapOnly),
    key(Account, "connections", ImapOnly),
    key(Account, "max_connections", ImapOnly),
    key(Account, "keep_on_server", Pop3Only),
    key(Account, "delete_after_days", Pop3Only),
    key(Unified, "path", All),
    key(Unified, "folders", All),
    key(Unified, "accounts", All),
];

/// The keys of one table, in documentation order.
pub fn in_table(table: Table) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.table == table)
}

/// The example's section for `table` (from its header to the next table's), and for
/// POP3-only keys the POP3 account's section.
fn section(table: Table, applies: Applies) -> &'static str {
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let mut offset = 0;
    for line in EXAMPLE.split_inclusive('\n') {
        let t = line.trim_end();
        if t.starts_with('[') {
            starts.push((offset, t));
        }
        offset += line.len();
    }
    let wanted: Vec<usize> = starts
        .iter()
        .enumerate()
        .filter(|(_, (_, h))| *h == table.header())
        .map(|(i, _)| i)
        .collect();
    // The first [[account]] is the IMAP one, the second the POP3 one.
    let Some(&i) = (match applies {
        Pop3Only => wanted.get(1),
        _ => wanted.first(),
    }) else {
        return "";
    };
    let start = starts[i].0;
    let end = starts.get(i + 1).map_or(EXAMPLE.len(), |s| s.0);
    &EXAMPLE[start..end]
}

/// Whether `line` sets a key, written or commented out: `name = ...` or `# name = ...`.
fn assigned(line: &str) -> Option<&str> {
    let l = line.trim_start_matches('#').trim_start();
    let (name, _) = l.split_once(" =")?;
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(name)
    .filter(|_| !line.starts_with("#   "))
}

impl Key {
    /// The line that sets this key in the example (maybe commented out), and the
    /// comment lines just above it, up to a blank line or another key's line.
    pub fn example(&self) -> Option<(Vec<&'static str>, &'static str)> {
        let lines: Vec<&'static str> = section(self.table, self.applies).lines().collect();
        let at = lines.iter().position(|l| assigned(l) == Some(self.name))?;
        let mut doc = Vec::new();
        for l in lines[..at].iter().rev() {
            if !l.starts_with('#') || assigned(l).is_some() || l.starts_with("# ---") {
                break;
            }
            doc.push(l.trim_start_matches('#').strip_prefix(' ').unwrap_or(""));
        }
        doc.reverse();
        Some((doc, lines[at].trim_start_matches('#').trim_start()))
    }
}

/// The known key closest to `unknown` among `candidates`, when one is close enough to
/// be a typo (at most a third of the letters differ).
pub fn closest<'a>(
    unknown: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (unknown.len() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(unknown, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string
/// alignment), over bytes: keys are ASCII.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields serde accepts in `table`, read from its own "unknown field" error.
    fn serde_fields(table: &str) -> Vec<String> {
        let text = match table {
            "general" => "[general]\nzzz = 1\n",
            "account" => "[[account]]\nzzz = 1\n",
            _ => "[unified]\nzzz = 1\n",
        };
        let err = toml::from_str::<super::super::raw::RawFile>(text)
            .unwrap_err()
            .message()
            .to_owned();
        let list = err
            .split_once("expected one of ")
            .unwrap_or_else(|| panic!("{err}"))
            .1;
        list.split(", ")
            .map(|f| f.trim().trim_matches('`').to_owned())
            .collect()
    }

    #[test]
    fn the_key_list_is_exactly_what_the_loader_accepts() {
        for (name, table) in [
            ("general", Table::General),
            ("account", Table::Account),
            ("unified", Table::Unified),
        ] {
            let mut known = serde_fields(name);
            known.sort();
            let mut listed: Vec<String> = in_table(table).map(|k| k.name.to_owned()).collect();
            listed.sort();
            assert_eq!(listed, known, "KEYS for [{name}]");
        }
    }

    #[test]
    fn the_example_documents_every_key() {
        for k in KEYS {
            let (doc, line) = k
                .example()
                .unwrap_or_else(|| panic!("the example does not set `{}`", k.name));
            assert!(line.starts_with(k.name), "{line}");
            assert!(
                !doc.is_empty(),
                "no comment above `{}` in the example",
                k.name
            );
        }
    }

    #[test]
    fn a_close_typo_finds_its_key() {
        let keys = || in_table(Table::Account).map(|k| k.name);
        assert_eq!(closest("password_cmd", keys()), Some("password_command"));
        assert_eq!(closest("passwd_command", keys()), Some("password_command"));
        assert_eq!(closest("pasword_command", keys()), Some("password_command"));
        assert_eq!(closest("hots", keys()), Some("host"));
        assert_eq!(closest("xyz", keys()), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("hots", "host"), 1);
    }
}
