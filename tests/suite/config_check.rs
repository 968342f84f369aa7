//! `syncmail check-config` against the shipped example and against each kind of mistake:
//! every error names file:line:col and the account, and exits 78 (EX_CONFIG).

use std::path::{Path, PathBuf};

use crate::support::{stderr, stdout, syncmail};

const EXAMPLE: &str = include_str!("../../config/syncmail.example.toml");

/// A minimal valid account to build the broken cases from.
const GOOD: &str = r#"[general]
maildir = "mail"

[[account]]
name = "work"
kind = "imap"
host = "imap.example.com"
user = "me@example.com"
password_command = ["pass", "show", "work"]
"#;

struct Case {
    home: tempfile::TempDir,
    path: PathBuf,
}

fn write_config(text: &str) -> Case {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    Case { home, path }
}

fn check(case: &Case) -> std::process::Output {
    syncmail(
        case.home.path(),
        &["check-config", "--config", case.path.to_str().unwrap()],
    )
}

/// Assert exit 78 and an error that starts with `path:line:col:` and mentions `needles`.
fn assert_config_error(text: &str, line: usize, col: usize, needles: &[&str]) -> String {
    let case = write_config(text);
    let out = check(&case);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "exit code; stderr:\n{err}");
    let location = format!("{}:{line}:{col}: ", case.path.display());
    assert!(
        err.contains(&location),
        "expected location {location:?} in:\n{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    }
    assert!(
        err.contains("help: "),
        "every error says how to fix it:\n{err}"
    );
    err
}

fn line_col(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in config"));
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[test]
fn example_config_passes() {
    let home = tempfile::tempdir().unwrap();
    let example: &Path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/syncmail.example.toml")
        .leak();
    let out = syncmail(
        home.path(),
        &["check-config", "--config", example.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("account work: imap.example.com:993 as me@example.com (TLS)"),
        "{text}"
    );
    assert!(
        text.contains("account old-isp: pop.example.net:995"),
        "{text}"
    );
    // The example documents every key the loader knows: the list is the library's own
    // (`config::keys`, checked there against the loader's fields), the one
    // `syncmail.toml(5)` is made from.
    for key in syncmail::config::keys::KEYS {
        assert!(
            EXAMPLE.contains(&format!("{} =", key.name)),
            "example does not document `{}`",
            key.name
        );
    }
    assert!(syncmail::config::keys::KEYS.len() > 30);
}

#[test]
fn unknown_key_is_located() {
    let text = format!("{GOOD}hots = \"typo\"\n");
    let (line, col) = line_col(&text, "hots");
    assert_config_error(
        &text,
        line,
        col,
        &[
            "unknown field `hots`",
            "account `work`",
            "help: did you mean `host`?",
        ],
    );
}

#[test]
fn unknown_key_far_from_any_gets_no_guess() {
    let text = format!("{GOOD}colour = \"blue\"\n");
    let (line, col) = line_col(&text, "colour");
    let err = assert_config_error(&text, line, col, &["unknown field `colour`"]);
    assert!(!err.contains("did you mean"), "{err}");
}

#[test]
fn password_command_as_a_shell_string_shows_the_list_form() {
    let text = GOOD.replace(
        "password_command = [\"pass\", \"show\", \"work\"]",
        "password_command = \"pass show mail/work\"",
    );
    let (line, col) = line_col(&text, "\"pass show");
    assert_config_error(
        &text,
        line,
        col,
        &[
            "account `work`",
            "password_command = [\"pass\", \"show\", \"mail/work\"]",
            "[\"sh\", \"-c\", \"pass show mail/work\"]",
        ],
    );
}

#[test]
fn missing_host_is_located() {
    let text = GOOD.replace("host = \"imap.example.com\"\n", "");
    let (line, col) = line_col(&text, "[[account]]");
    let err = assert_config_error(
        &text,
        line,
        col,
        &["missing field `host`", "account `work`"],
    );
    assert!(!err.contains("hots"));
}

#[test]
fn plaintext_to_remote_host_is_refused() {
    let text = format!("{GOOD}tls = \"none\"\n");
    let (line, col) = line_col(&text, "\"none\"");
    assert_config_error(
        &text,
        line,
        col,
        &[
            "plaintext",
            "imap.example.com",
            "account `work`",
            "allow_plaintext = true",
        ],
    );
}

#[test]
fn plaintext_to_loopback_or_with_opt_in_is_accepted() {
    for text in [
        GOOD.replace("imap.example.com", "127.0.0.1") + "tls = \"none\"\n",
        GOOD.to_owned() + "tls = \"none\"\nallow_plaintext = true\n",
    ] {
        let case = write_config(&text);
        let out = check(&case);
        assert_eq!(out.status.code(), Some(0), "{}\n{text}", stderr(&out));
    }
}

#[test]
fn empty_password_command_is_refused() {
    let text = GOOD.replace("[\"pass\", \"show\", \"work\"]", "[]");
    let (line, col) = line_col(&text, "[]");
    assert_config_error(
        &text,
        line,
        col,
        &["password_command is empty", "account `work`"],
    );
}

#[test]
fn duplicate_account_name_is_refused() {
    let second = GOOD
        .split_once("[[account]]")
        .unwrap()
        .1
        .replace("maildir", "x");
    let text = format!("{GOOD}\n[[account]]{second}");
    let at = text.rfind("name = \"work\"").unwrap() + "name = ".len();
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').unwrap();
    assert_config_error(
        &text,
        line,
        col,
        &["account name `work` is used twice", "line 5"],
    );
}

#[test]
fn invalid_folder_pattern_is_located() {
    let text = format!("{GOOD}folders = [\"*\", \"!\"]\n");
    let (line, col) = line_col(&text, "\"!\"");
    assert_config_error(
        &text,
        line,
        col,
        &["invalid folder pattern", "account `work`"],
    );
}

#[test]
fn settings_of_the_other_account_kind_are_refused() {
    let text = format!("{GOOD}keep_on_server = false\n");
    let (line, col) = line_col(&text, "false");
    assert_config_error(&text, line, col, &["POP3 setting", "kind = \"imap\""]);
}

#[test]
fn a_bad_value_names_the_accepted_ones() {
    let text = format!("{GOOD}layout = \"flat\"\n");
    let (line, col) = line_col(&text, "\"flat\"");
    assert_config_error(&text, line, col, &["verbatim", "maildir++"]);
}

#[test]
fn a_syntax_error_is_located() {
    let text = format!("{GOOD}port = \n");
    let (line, _) = line_col(&text, "port =");
    let case = write_config(&text);
    let out = check(&case);
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains(&format!("config.toml:{line}:")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_config_file_says_how_to_create_one() {
    let home = tempfile::tempdir().unwrap();
    let out = syncmail(home.path(), &["check-config"]);
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains(".config/syncmail/config.toml") && err.contains("syncmail.example.toml"),
        "{err}"
    );
}

#[test]
fn world_readable_password_gets_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let text = GOOD.replace(
        "password_command = [\"pass\", \"show\", \"work\"]",
        "password = \"hunter2\"",
    );
    let case = write_config(&text);
    std::fs::set_permissions(&case.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check(&case);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("other users can read") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains("hunter2") && !stdout(&out).contains("hunter2"));
    std::fs::set_permissions(&case.path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!stderr(&check(&case)).contains("other users can read"));
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    assert_eq!(
        syncmail(home.path(), &["no-such-command"]).status.code(),
        Some(2)
    );
    assert_eq!(syncmail(home.path(), &["--help"]).status.code(), Some(0));
    // Every subcommand is built now (`daemon` and `status` have their own tests).
}
