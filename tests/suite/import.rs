//! `syncmail import`: the real binary converts mbsync and OfflineIMAP configs, prints
//! them or writes a new file (never over an existing one), and what it writes passes
//! `syncmail check-config`. A broken rc file is an error naming its line.

use std::path::Path;

use crate::support::{stderr, stdout, syncmail};

const MBSYNCRC: &str = r#"IMAPAccount gmail
Host imap.gmail.com
User me@gmail.com
PassCmd "pass show mail/gmail"
SSLType IMAPS

IMAPStore gmail-remote
Account gmail

MaildirStore gmail-local
SubFolders Verbatim
Path ~/Mail/gmail/
Inbox ~/Mail/gmail/INBOX

Channel gmail
Far :gmail-remote:
Near :gmail-local:
Patterns * ![Gmail]* "[Gmail]/Sent Mail"
Create Both
Expunge Both
MaxMessages 100
"#;

fn check_config(home: &Path, config: &Path) -> std::process::Output {
    syncmail(
        home,
        &["check-config", "--config", config.to_str().unwrap()],
    )
}

#[test]
fn mbsync_printed_then_written_then_refused() {
    let home = tempfile::tempdir().unwrap();
    let rc = home.path().join(".mbsyncrc");
    std::fs::write(&rc, MBSYNCRC).unwrap();

    // Printed: the default rc is ~/.mbsyncrc.
    let out = syncmail(home.path(), &["import", "mbsync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.starts_with(&format!(
            "# converted from {} by syncmail import mbsync\n",
            rc.display()
        )),
        "{printed}"
    );
    assert!(printed.contains("password_command = [\"pass\", \"show\", \"mail/gmail\"]"));
    assert!(printed.contains("# not converted: MaxMessages 100"));
    assert!(stderr(&out).contains("1 account from"), "{}", stderr(&out));

    // Written to --output: mode 0600, and it passes check-config.
    let target = home.path().join("out/config.toml");
    let out = syncmail(
        home.path(),
        &[
            "import",
            "mbsync",
            rc.to_str().unwrap(),
            "--write",
            "--output",
            target.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "written, not printed");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), printed);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let checked = check_config(home.path(), &target);
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(
        stdout(&checked).contains("account gmail: imap.gmail.com:993 as me@gmail.com (TLS)"),
        "{}",
        stdout(&checked)
    );

    // Never over an existing file: the error names it and the file is unchanged.
    std::fs::write(&target, "# mine\n").unwrap();
    let out = syncmail(
        home.path(),
        &[
            "import",
            "mbsync",
            rc.to_str().unwrap(),
            "--output",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{} already exists; refusing to overwrite it",
            target.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "# mine\n");
}

#[test]
fn write_goes_to_the_default_config_path() {
    let home = tempfile::tempdir().unwrap();
    let rc = home.path().join("mbsyncrc");
    std::fs::write(&rc, MBSYNCRC).unwrap();
    let out = syncmail(
        home.path(),
        &["import", "mbsync", rc.to_str().unwrap(), "--write"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let default = home.path().join(".config/syncmail/config.toml");
    assert!(default.is_file());
    // check-config finds it without --config.
    let checked = syncmail(home.path(), &["check-config"]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    // A second --write refuses.
    let again = syncmail(
        home.path(),
        &["import", "mbsync", rc.to_str().unwrap(), "--write"],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains(&default.display().to_string()),
        "{}",
        stderr(&again)
    );
}

#[test]
fn offlineimap_output_passes_check_config() {
    let home = tempfile::tempdir().unwrap();
    let rc = home.path().join(".offlineimaprc");
    std::fs::write(
        &rc,
        "[general]\naccounts = Home, Work\n\n[Account Home]\nlocalrepository = home-local\nremoterepository = home-remote\n\n[Repository home-local]\ntype = Maildir\nlocalfolders = ~/Mail/home\nsep = /\n\n[Repository home-remote]\ntype = IMAP\nremotehost = mail.example.org\nremoteuser = me\nremotepasseval = get_pass('home')\nfolderfilter = lambda f: f not in ['Trash']\n\n[Account Work]\nlocalrepository = work-local\nremoterepository = work-remote\n\n[Repository work-local]\ntype = Maildir\nlocalfolders = ~/Mail/work\n\n[Repository work-remote]\ntype = IMAP\nremotehost = imap.work.example\nssl = no\nremoteuser = me\nremotepass = pw\n",
    )
    .unwrap();
    let target = home.path().join("syncmail.toml");
    let out = syncmail(
        home.path(),
        &[
            "import",
            "offlineimap",
            "--output",
            target.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let checked = check_config(home.path(), &target);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let summary = stdout(&checked);
    assert!(
        summary.contains("account Home: mail.example.org:993 as me (TLS)"),
        "{summary}"
    );
    assert!(summary.contains("folders * !Trash"), "{summary}");
    assert!(
        summary.contains("account Work: imap.work.example:143 as me (STARTTLS)"),
        "{summary}"
    );
}

#[test]
fn a_broken_rc_file_is_an_error_naming_its_line() {
    let home = tempfile::tempdir().unwrap();
    let rc = home.path().join("broken-mbsyncrc");
    std::fs::write(
        &rc,
        "MaildirStore local\nPath ~/Mail/\n\nChannel c\nFar :remote:\nNear :local:\n",
    )
    .unwrap();
    let out = syncmail(home.path(), &["import", "mbsync", rc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG");
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:5:1: ", rc.display())), "{err}");
    assert!(err.contains("no store named `remote`"), "{err}");
    assert!(stdout(&out).is_empty());

    std::fs::write(
        &rc,
        "[general]\naccounts = a\n[Account a]\nlocalrepository = \"x\n",
    )
    .unwrap();
    let out = syncmail(
        home.path(),
        &["import", "offlineimap", rc.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains(&format!("{}:4:1: ", rc.display())),
        "{}",
        stderr(&out)
    );

    let missing = syncmail(home.path(), &["import", "mbsync"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains(".mbsyncrc"),
        "{}",
        stderr(&missing)
    );
}
