//! The service files: the systemd unit passes `systemd-analyze verify` with no warning,
//! the launchd plist is a well-formed property list with the keys launchd needs; the
//! daemon's config keys are documented; `status` works with no daemon and no state.

use std::path::Path;
use std::process::Command;

use crate::support::{stdout, syncmail};

fn contrib(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(rel)
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = contrib("systemd/syncmail.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    for key in [
        "Type=notify",
        "ExecStart=%h/.cargo/bin/syncmail daemon",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "WatchdogSec=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        // Both exist before the sandbox is set up, and a missing one never fails the
        // start (226/NAMESPACE on a new user's first try).
        "ExecStartPre=+/bin/mkdir -p -m 0700 %h/Mail %h/.local/state/syncmail",
        "ReadWritePaths=-%h/Mail -%h/.local/state/syncmail",
        "PrivateTmp=yes",
    ] {
        assert!(text.contains(key), "the unit lacks {key}");
    }
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: only the static checks ran");
        return;
    };
    assert!(probe.status.success());
    // A user manager's view: %h is this home, where the binary is installed.
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join(".cargo/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_syncmail"), bin.join("syncmail")).unwrap();
    let runtime = home.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(&unit)
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify exits 0 even for keys it ignores; any word about our unit is a defect.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("syncmail.service"))
        .collect();
    assert!(about_unit.is_empty(), "systemd-analyze verify:\n{stderr}");
}

#[test]
fn launchd_plist_is_a_well_formed_property_list() {
    let plist = contrib("launchd/org.syncmail.daemon.plist");
    let script = r#"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], 'rb'))
assert p['Label'] == 'org.syncmail.daemon', p['Label']
assert p['ProgramArguments'][-1] == 'daemon', p['ProgramArguments']
assert p['RunAtLoad'] is True
assert p['KeepAlive'] == {'SuccessfulExit': False}
print('ok')
"#;
    let checked = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&plist)
        .output();
    match checked {
        Ok(out) => assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            // No python: at least the XML must be balanced and declare a plist.
            let text = std::fs::read_to_string(&plist).unwrap();
            assert!(text.starts_with("<?xml") && text.contains("<plist version=\"1.0\">"));
            assert_eq!(
                text.matches("<dict>").count(),
                text.matches("</dict>").count()
            );
        }
    }
    if let Ok(out) = Command::new("plutil").arg("-lint").arg(&plist).output() {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn example_config_documents_the_daemon_keys() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/syncmail.example.toml"),
    )
    .unwrap();
    for key in [
        "on_new_mail",
        "after_sync",
        "hook_timeout",
        "idle_refresh",
        "poll_interval",
    ] {
        assert!(example.contains(&format!("{key} =")), "example lacks {key}");
    }
}

#[test]
fn status_without_a_daemon_or_any_state() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n[[account]]\nname = \"w\"\nkind = \"imap\"\nhost = \"localhost\"\nuser = \"u\"\npassword_command = [\"true\"]\n",
            home.path().display()
        ),
    )
    .unwrap();
    let out = syncmail(
        home.path(),
        &["status", "--config", config.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("w (imap): no daemon running"), "{text}");
    assert!(text.contains("never synced"), "{text}");
}

#[test]
fn status_shows_a_folder_a_deletion_guard_holds() {
    let env = crate::support::sync_env::SyncEnv::new("");
    for i in 0..12 {
        env.seed("INBOX", &format!("m{i}"));
    }
    env.sync_ok();
    let inbox = env.folder("INBOX");
    for key in crate::support::maildir::messages(&inbox)
        .into_keys()
        .take(11)
    {
        crate::support::maildir::delete(&inbox, &key);
    }
    let out = env.sync(&[]);
    assert_ne!(out.status.code(), Some(0));
    let text = stdout(&env.run("status", &[], &[]));
    assert!(text.contains("t (imap): no daemon running"), "{text}");
    assert!(
        text.contains("folder INBOX: last attempt") && text.contains("FAILED"),
        "{text}"
    );
    assert!(text.contains("--confirm-delete"), "{text}");
}

/// The unit's sandbox as far as this machine allows without a user manager: the
/// unit's own ExecStartPre line makes the writable directories in a home that has
/// neither (a new user's first start), then the daemon runs in a mount namespace where
/// the home is read-only except the unit's ReadWritePaths (ProtectHome=read-only),
/// and still syncs and stops cleanly. Needs root for the namespace; skipped otherwise.
#[test]
fn the_daemon_runs_in_the_units_sandbox_on_a_first_start() {
    use crate::support::daemon::{Daemon, FAST, local_count, wait_until};
    use crate::support::sync_env::SyncEnv;

    let probe = Command::new("unshare")
        .args(["-m", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !probe {
        eprintln!("no mount namespaces here (not root, or no unshare): skipped");
        return;
    }
    let unit = std::fs::read_to_string(contrib("systemd/syncmail.service")).unwrap();
    let value = |key: &str| -> String {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("the unit has no {key}"))
            .to_owned()
    };
    let env = SyncEnv::new(FAST);
    let home = env.home.path();
    // The unit's defaults: ~/Mail, and the state in ~/.local/state/syncmail.
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text.replace(
        &format!("state_dir = \"{}/state\"", home.display()),
        "state_dir = \"~/.local/state/syncmail\"",
    );
    std::fs::write(&env.config, text).unwrap();
    assert!(!home.join("Mail").exists() && !home.join(".local").exists());
    env.seed("INBOX", "a");

    let h = home.to_str().unwrap();
    let pre = value("ExecStartPre=+").replace("%h", h);
    let writable: Vec<String> = value("ReadWritePaths=")
        .split_whitespace()
        .map(|p| p.trim_start_matches('-').replace("%h", h))
        .collect();
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg(&pre)
            .status()
            .unwrap()
            .success(),
        "{pre}"
    );
    // Each writable path becomes its own mount, then the home is bound read-only above
    // them: what ProtectHome=read-only plus ReadWritePaths= amounts to.
    let mut script = String::from("set -e\n");
    for path in &writable {
        script.push_str(&format!("mount --bind '{path}' '{path}'\n"));
    }
    script.push_str(&format!(
        "mount --rbind '{h}' '{h}'\nmount -o remount,bind,ro '{h}'\n\
         if touch '{h}/probe' 2>/dev/null; then echo 'home is writable' >&2; exit 1; fi\n\
         exec \"$@\"\n"
    ));
    let wrapper: Vec<String> = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sandbox",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let daemon = Daemon::launch_wrapped(home, &env.config, &[], &wrapper);
    wait_until(
        &daemon,
        std::time::Duration::from_secs(20),
        "a in ~/Mail",
        || local_count(&env, "INBOX") == 1,
    );
    assert!(
        home.join(".local/state/syncmail/t.sqlite").exists()
            || home
                .join(".local/state/syncmail")
                .read_dir()
                .unwrap()
                .count()
                > 0
    );
    assert!(!home.join("probe").exists());
    daemon.stop();
}
