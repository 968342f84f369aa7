//! Man pages and shell completions, made from the clap definitions and the config key
//! list (`config::keys`), so they cannot drift from what the binary accepts. The
//! packaging script runs the hidden `syncmail generate-manual DIR` to produce them.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use roff::{Roff, bold, italic, roman};

use super::Cli;
use crate::config::keys::{self, Applies, Table};

/// Write `man/man1/*.1`, `man/man5/syncmail.toml.5` and
/// `completions/{syncmail.bash,_syncmail,syncmail.fish}` under `dir`; returns the files.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let man1 = dir.join("man/man1");
    let man5 = dir.join("man/man5");
    let completions = dir.join("completions");
    for d in [&man1, &man5, &completions] {
        std::fs::create_dir_all(d)?;
    }
    let mut written = Vec::new();
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    for page in pages(&cmd) {
        let path = man1.join(page.get_filename());
        let mut file = std::fs::File::create(&path)?;
        render_page(&page, &mut file)?;
        written.push(path);
    }
    let path = man5.join("syncmail.toml.5");
    std::fs::write(&path, config_page())?;
    written.push(path);
    for (shell, name) in [
        (clap_complete::Shell::Bash, "syncmail.bash"),
        (clap_complete::Shell::Zsh, "_syncmail"),
        (clap_complete::Shell::Fish, "syncmail.fish"),
    ] {
        let path = completions.join(name);
        let mut file = std::fs::File::create(&path)?;
        clap_complete::generate(shell, &mut Cli::command(), "syncmail", &mut file);
        file.flush()?;
        written.push(path);
    }
    Ok(written)
}

/// `syncmail(1)` and one page per visible subcommand, nested ones included
/// (`syncmail-unified-status(1)`).
fn pages(cmd: &clap::Command) -> Vec<clap_mangen::Man> {
    let mut out = vec![clap_mangen::Man::new(cmd.clone()).manual("syncmail manual")];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out.extend(pages(sub));
    }
    out
}

/// clap_mangen's page, plus what a man page reader looks for that clap does not know.
fn render_page(page: &clap_mangen::Man, w: &mut dyn Write) -> io::Result<()> {
    page.render(w)?;
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "success"),
        (
            "1",
            "a failure that will not go away by itself (wrong password, bad certificate, a folder that needs attention)",
        ),
        ("2", "usage error"),
        (
            "75",
            "EX_TEMPFAIL: a transient failure (network, the account busy with another syncmail sync, or held by the daemon with an option it cannot run); try again later",
        ),
        (
            "78",
            "EX_CONFIG: the config file is wrong; the message names file:line:col",
        ),
    ] {
        roff.control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    roff.control("SH", ["FILES"]);
    roff.control("TP", [])
        .text([italic("$XDG_CONFIG_HOME/syncmail/config.toml")])
        .text([roman(
            "the config file (default ~/.config/syncmail/config.toml); see syncmail.toml(5). `syncmail init` writes a commented one.",
        )]);
    roff.control("TP", [])
        .text([italic("$XDG_STATE_HOME/syncmail/")])
        .text([roman(
            "one SQLite state database and lock file per account (default ~/.local/state/syncmail/)",
        )]);
    roff.control("TP", [])
        .text([italic("/usr/share/doc/syncmail/")])
        .text([roman(
            "the annotated example config, the JSON schema of `status --json` and `log --json`, the mail client set-ups and hooks",
        )]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "syncmail.toml(5), systemctl(1) (the user unit syncmail.service), mbsync(1), neomutt(1)",
    )]);
    roff.to_writer(w)
}

/// `syncmail.toml(5)`: every key, in the example config's order, with the example's own
/// comment for it and the line that sets it.
pub fn config_page() -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "SYNCMAIL.TOML",
            "5",
            "",
            concat!("syncmail ", env!("CARGO_PKG_VERSION")),
            "syncmail manual",
        ],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman("syncmail.toml - the syncmail config file")]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([italic("$XDG_CONFIG_HOME/syncmail/config.toml")]);
    roff.text([roman(
        " (default ~/.config/syncmail/config.toml; --config overrides)",
    )]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "A TOML file with a [general] table, one [[account]] table per account and an optional [unified] table. \
         `syncmail init` writes a commented starting file; `syncmail check-config` says what a file configures, \
         and names file:line:col and the account for any mistake. Unknown keys are refused.",
    )]);
    roff.control("PP", []);
    roff.text([roman(
        "Paths: ~ is your home directory; a relative path in [general] is relative to the config file's directory, \
         and an account's relative maildir is relative to general.maildir. Durations are written with a unit: \
         \"30s\", \"5m\", \"1h30m\", \"2d\".",
    )]);
    for table in [Table::General, Table::Account, Table::Unified] {
        roff.control("SH", [table.header()]);
        for key in keys::in_table(table) {
            let Some((doc, line)) = key.example() else {
                continue;
            };
            roff.control("TP", []);
            let applies = match key.applies {
                Applies::All => "",
                Applies::ImapOnly => "  (IMAP accounts)",
                Applies::Pop3Only => "  (POP3 accounts)",
            };
            roff.text([bold(key.name), roman(applies)]);
            roff.text([roman(doc.join(" "))]);
            roff.control("RS", []);
            roff.control("EX", []);
            roff.text([roman(line)]);
            roff.control("EE", []);
            roff.control("RE", []);
        }
    }
    roff.control("SH", ["EXAMPLE"]);
    roff.text([roman(
        "The annotated example, /usr/share/doc/syncmail/syncmail.example.toml, sets every key.",
    )]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "syncmail(1), syncmail-check-config(1), syncmail-init(1)",
    )]);
    roff.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_page_has_every_key() {
        let page = config_page();
        for key in keys::KEYS {
            assert!(
                page.contains(&format!("\\fB{}\\fR", key.name)),
                "{} missing",
                key.name
            );
        }
        assert!(
            page.contains("run WITHOUT a shell"),
            "the example's own words"
        );
    }

    #[test]
    fn every_subcommand_gets_a_page() {
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        let names: Vec<String> = pages(&cmd).iter().map(|p| p.get_filename()).collect();
        for want in [
            "syncmail.1",
            "syncmail-sync.1",
            "syncmail-status.1",
            "syncmail-log.1",
            "syncmail-unified-status.1",
            "syncmail-import-mbsync.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
    }

    /// `syncmail-sync(1)` says what happens while the daemon holds the account.
    #[test]
    fn the_sync_page_says_the_daemon_runs_the_pass() {
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        let page = pages(&cmd)
            .into_iter()
            .find(|p| p.get_filename() == "syncmail-sync.1")
            .unwrap();
        let mut out = Vec::new();
        render_page(&page, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap().replace("\\-", "-");
        for want in [
            "is synced by the daemon",
            "a pass of every folder that starts after the request",
            "at most 120 s",
            "--folder, --dry-run, --confirm-delete and --restore cannot be handed over",
            "held by the daemon with an option it cannot run",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
    }

    /// A man page or `--help` line with an empty description reads as an oversight.
    #[test]
    fn every_argument_says_what_it_is() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} {id} has no description");
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        check(&cmd, "syncmail");
    }
}
