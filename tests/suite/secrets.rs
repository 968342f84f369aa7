//! Rule 20, secrets: at trace level, over every way syncmail logs in (IMAP LOGIN with an
//! escaped quoted password; an 8-bit password, which a quoted string cannot carry, sent
//! by SASL LOGIN instead of a literal; AUTHENTICATE PLAIN, XOAUTH2, OAUTHBEARER; POP3
//! USER/PASS, AUTH PLAIN, AUTH XOAUTH2), no password or token reaches the output of
//! check-config, sync, the daemon, status or log, or any file syncmail writes (state DB
//! and its WAL, lock files, Maildir), neither as is nor in any encoding that goes on the
//! wire. For syncmail's own OAuth2 (issue 17) the same holds for every access and refresh
//! token, authorization and device code and PKCE verifier, and for the argv of syncmail
//! and each of its children.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::support::dovecot::{LOCAL_NAMES, ServerCert, Setup, message};
use crate::support::{Dovecot, stderr, stdout, syncmail};

/// One account: its name, protocol, `auth` setting, user and secret. The secret is also
/// the user's password in Dovecot's passdb, which checks bearer tokens against it.
struct Login {
    name: &'static str,
    kind: &'static str,
    auth: &'static str,
    user: &'static str,
    secret: &'static str,
}

impl Login {
    fn token(&self) -> bool {
        matches!(self.auth, "xoauth2" | "oauthbearer")
    }
}

const LOGINS: &[Login] = &[
    // Quoted specials: sent as an escaped quoted string.
    Login {
        name: "imap-login-quoted",
        kind: "imap",
        auth: "login",
        user: "quoted",
        secret: r#"Qu"o\ted-Secret-7b1"#,
    },
    // 8-bit: a quoted string cannot carry it; it goes by SASL LOGIN (see imap::connect).
    Login {
        name: "imap-login-literal",
        kind: "imap",
        auth: "login",
        user: "literal",
        secret: "Lit-pässwörd-€-9c2",
    },
    Login {
        name: "imap-plain",
        kind: "imap",
        auth: "plain",
        user: "plain",
        secret: "Plain-Secret-3f8",
    },
    Login {
        name: "imap-xoauth2",
        kind: "imap",
        auth: "xoauth2",
        user: "xoauth",
        secret: "ya29.Xoauth2-Token-5d4",
    },
    Login {
        name: "imap-oauthbearer",
        kind: "imap",
        auth: "oauthbearer",
        user: "bearer",
        secret: "ya29.Bearer-Token-8e6",
    },
    Login {
        name: "pop3-user-pass",
        kind: "pop3",
        auth: "login",
        user: "popuser",
        secret: r#"Pop"Pass\word-€-1a3"#,
    },
    Login {
        name: "pop3-plain",
        kind: "pop3",
        auth: "plain",
        user: "popplain",
        secret: "Pop-Plain-Secret-2b7",
    },
    Login {
        name: "pop3-xoauth2",
        kind: "pop3",
        auth: "xoauth2",
        user: "popoauth",
        secret: "ya29.Pop-Token-6c9",
    },
];

/// Everything that would betray user `u`'s secret `s`: the secret itself, its quoted-string
/// escape, a fragment of it, and each SASL message that carries it, raw and in base64.
fn needles(u: &str, s: &str, port: u16) -> Vec<(String, Vec<u8>)> {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
    let tail: String = s.chars().skip(s.chars().count() - 6).collect();
    let sasl = [
        ("PLAIN", format!("\0{u}\0{s}")),
        ("XOAUTH2", format!("user={u}\x01auth=Bearer {s}\x01\x01")),
        (
            "OAUTHBEARER",
            format!("n,a={u},\x01host=localhost\x01port={port}\x01auth=Bearer {s}\x01\x01"),
        ),
    ];
    let mut out = vec![
        ("the secret".to_owned(), s.as_bytes().to_vec()),
        ("its quoted form".to_owned(), escaped.into_bytes()),
        ("its tail".to_owned(), tail.into_bytes()),
        ("its base64".to_owned(), STANDARD.encode(s).into_bytes()),
    ];
    for (mech, msg) in sasl {
        out.push((format!("{mech} base64"), STANDARD.encode(msg).into_bytes()));
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file below `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// A config with every account of [`LOGINS`], each reading `secret(login)` from a file
/// in `vault` by a command.
fn write_config(
    dovecot: &Dovecot,
    home: &Path,
    vault: &Path,
    secret: impl Fn(&Login) -> String,
) -> std::path::PathBuf {
    let mut accounts = String::new();
    for l in LOGINS {
        let file = vault.join(l.name);
        std::fs::write(&file, secret(l)).unwrap();
        let base = if l.kind == "imap" {
            dovecot.imap_account(l.name, l.user, "implicit")
        } else {
            dovecot.pop3_account(l.name, l.user, "implicit")
        };
        let key = if l.token() {
            "oauth2_token_command"
        } else {
            "password_command"
        };
        let base = base.replace(
            &format!("password = \"{}\"\n", crate::support::DEFAULT_PASSWORD),
            &format!("{key} = [\"cat\", \"{}\"]\n", file.display()),
        );
        accounts.push_str(&format!("{base}auth = \"{}\"\n\n", l.auth));
    }
    let config = home.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[general]\nmaildir = \"{0}/Mail\"\nstate_dir = \"{0}/state\"\n\n{accounts}",
            home.display()
        ),
    )
    .unwrap();
    config
}

fn port_of(dovecot: &Dovecot, login: &Login) -> u16 {
    if login.kind == "imap" {
        dovecot.imaps_port
    } else {
        dovecot.pop3s_port
    }
}

fn start_dovecot() -> Dovecot {
    let users: Vec<(&str, &str)> = LOGINS.iter().map(|l| (l.user, l.secret)).collect();
    Dovecot::start_setup(Setup {
        users: &users,
        cert: ServerCert::For(LOCAL_NAMES),
        extra_config: "",
    })
}

#[test]
fn rule_20_no_password_or_token_reaches_output_or_files_at_trace_level() {
    let dovecot = start_dovecot();
    for l in LOGINS {
        dovecot.seed(
            l.user,
            "INBOX",
            &message(l.name, &format!("{}@t", l.name), "body"),
        );
    }

    // Secrets come from files outside the home directory, so that nothing under it
    // holds them unless syncmail put them there.
    let vault = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let config = write_config(&dovecot, home.path(), vault.path(), |l| l.secret.to_owned());
    let config = config.to_str().unwrap();

    let check = syncmail(
        home.path(),
        &["-vv", "check-config", "--connect", "--config", config],
    );
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}\n{}\n{}",
        stdout(&check),
        stderr(&check),
        dovecot.logs()
    );
    let sync = syncmail(home.path(), &["-vv", "sync", "--config", config]);
    assert_eq!(
        sync.status.code(),
        Some(0),
        "{}\n{}\n{}",
        stdout(&sync),
        stderr(&sync),
        dovecot.logs()
    );
    // Each login really happened, and trace level really was on.
    for l in LOGINS {
        assert!(
            stdout(&check).contains(&format!("account {}: logged in", l.name)),
            "{}",
            stdout(&check)
        );
        assert!(
            stdout(&sync).contains(&format!("{}: ", l.name)),
            "{}",
            stdout(&sync)
        );
        let delivered =
            crate::support::maildir::messages(&home.path().join("Mail").join(l.name).join("INBOX"));
        assert_eq!(delivered.len(), 1, "{}: {delivered:?}", l.name);
    }
    assert!(stderr(&sync).contains("DEBUG"), "{}", stderr(&sync));

    // The daemon, at trace level too, with new mail to fetch; its files are read while
    // it runs, so the state databases' write-ahead logs are there to be checked.
    for l in LOGINS {
        dovecot.seed(
            l.user,
            "INBOX",
            &message(l.name, &format!("{}-2@t", l.name), "body"),
        );
    }
    let daemon_log = vault.path().join("daemon.log");
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_syncmail"))
        .args(["-vv", "daemon", "--config", config])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(vault.path().join("daemon.out")).unwrap())
        .stderr(std::fs::File::create(&daemon_log).unwrap())
        .spawn()
        .expect("start syncmail daemon");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while LOGINS.iter().any(|l| {
        crate::support::maildir::messages(&home.path().join("Mail").join(l.name).join("INBOX"))
            .len()
            < 2
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not fetch the second messages:\n{}",
            std::fs::read_to_string(&daemon_log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut written = Vec::new();
    files(home.path(), &mut written);
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for path in &written {
        if let Ok(bytes) = std::fs::read(path) {
            places.push((path.display().to_string(), bytes));
        }
    }
    assert!(
        written
            .iter()
            .any(|p| p.to_string_lossy().ends_with("-wal")),
        "a state WAL is among the files checked: {written:?}"
    );
    let pid = daemon.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(
        daemon.wait().unwrap().success(),
        "the daemon exits 0 on SIGTERM"
    );
    places.extend([
        ("check-config stdout".into(), check.stdout.clone()),
        ("check-config stderr".into(), check.stderr.clone()),
        ("sync stdout".into(), sync.stdout.clone()),
        ("sync stderr".into(), sync.stderr.clone()),
        (
            "daemon stdout".into(),
            std::fs::read(vault.path().join("daemon.out")).unwrap(),
        ),
        ("daemon stderr".into(), std::fs::read(&daemon_log).unwrap()),
    ]);
    // What syncmail shows from its state: status, and the change and conflict logs.
    for args in [&["status"][..], &["log"], &["log", "--conflicts"]] {
        let mut all = vec!["-vv"];
        all.extend_from_slice(args);
        all.extend(["--config", config]);
        let out = syncmail(home.path(), &all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        places.push((format!("{args:?} stdout"), out.stdout));
        places.push((format!("{args:?} stderr"), out.stderr));
    }
    // And the files as the processes left them.
    let mut written = Vec::new();
    files(home.path(), &mut written);
    for path in &written {
        places.push((path.display().to_string(), std::fs::read(path).unwrap()));
    }
    // The SASL LOGIN stand-in for a literal really carried the 8-bit password.
    let log = dovecot.logs();
    assert!(log.contains("user=<literal>, method=LOGIN"), "{log}");
    for l in LOGINS {
        for (what, needle) in needles(l.user, l.secret, port_of(&dovecot, l)) {
            for (place, bytes) in &places {
                assert!(
                    !contains(bytes, &needle),
                    "{}: {what} ({}) is in {place}",
                    l.name,
                    String::from_utf8_lossy(&needle)
                );
            }
        }
    }
}

#[test]
fn rule_20_a_refused_login_echoes_no_secret_at_trace_level() {
    // Wrong secrets: the server says NO (after an error challenge, for XOAUTH2 and
    // OAUTHBEARER, which gets an empty SASL response), and the errors name the account
    // and the user but carry no secret.
    let dovecot = start_dovecot();
    let vault = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let wrong = |l: &Login| format!("Wrong-{}", l.secret);
    let config = write_config(&dovecot, home.path(), vault.path(), wrong);
    let check = syncmail(
        home.path(),
        &[
            "-vv",
            "check-config",
            "--connect",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let err = stderr(&check);
    assert_eq!(check.status.code(), Some(1), "{}\n{err}", stdout(&check));
    for l in LOGINS {
        let line = err
            .lines()
            .find(|line| line.contains(&format!("account `{}`:", l.name)))
            .unwrap_or_else(|| panic!("no error for {}:\n{err}", l.name));
        assert!(
            line.contains(&format!("`{}`", l.user)) && line.contains("rejected"),
            "the error names the user and says the login was rejected: {line}"
        );
        for (what, needle) in needles(l.user, &wrong(l), port_of(&dovecot, l))
            .into_iter()
            .chain(needles(l.user, l.secret, port_of(&dovecot, l)))
        {
            for (place, bytes) in [("stdout", &check.stdout), ("stderr", &check.stderr)] {
                assert!(
                    !contains(bytes, &needle),
                    "{}: {what} ({}) is in {place}",
                    l.name,
                    String::from_utf8_lossy(&needle)
                );
            }
        }
    }
}

/// SASL carries credentials in padded base64 of the standard alphabet: the needles above
/// must be exactly that, or a leak in another spelling would pass unseen.
#[test]
fn base64_matches_the_rfc_4648_vectors() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in vectors {
        assert_eq!(STANDARD.encode(plain), encoded);
    }
}

/// Issue 17: syncmail's own OAuth2. At trace level, through `login` (loopback redirect
/// and --device), sync, the daemon (with a refresh and a refused token retried), status
/// and check-config: no access token, refresh token, authorization code, device code or
/// PKCE verifier (nor a SASL encoding of a token) reaches any output, any file syncmail
/// wrote other than the 0600 token file itself, or the argv of syncmail or any child
/// of it (/proc/PID/cmdline).
#[test]
fn rule_20_no_oauth2_token_code_or_verifier_in_output_files_or_argv() {
    use crate::oauth2::{Env, argvs_of, oauth2_account};
    use crate::support::daemon::{Daemon, wait_until};
    use std::time::Duration;

    let env = Env::new(Duration::from_secs(4), |d, s| {
        format!(
            "{}\n{}",
            oauth2_account(d, s, "imap", "t", "alice", "poll_interval = \"1s\"\n"),
            oauth2_account(
                d,
                s,
                "pop3",
                "p",
                "bob",
                "keep_on_server = true\npoll_interval = \"1s\"\nauth = \"oauthbearer\"\n"
            )
            .replace("auth = \"oauth2\"\n", "")
        )
    });
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut argvs: Vec<String> = Vec::new();
    for (account, user, args) in [("t", "alice", &[][..]), ("p", "bob", &["--device"][..])] {
        let login = env.login(account, user, args);
        assert!(login.success, "{}", login.output);
        outputs.push((format!("login {account}"), login.output.into_bytes()));
        argvs.extend(login.argvs);
    }
    env.dovecot
        .seed("alice", "INBOX", &message("s", "s1@test", "x"));
    env.dovecot
        .seed("bob", "INBOX", &message("s", "s2@test", "x"));
    for args in [
        &["-vv", "sync"][..],
        &["-vv", "check-config", "--connect"][..],
        &["status"][..],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        outputs.push((format!("{args:?}"), [out.stdout, out.stderr].concat()));
    }
    let daemon = Daemon::launch(env.home.path(), &env.config, &[("SYNCMAIL_LOG", "trace")]);
    std::thread::sleep(Duration::from_secs(3));
    env.server.end_access_tokens();
    let before = env.server.count("refresh");
    wait_until(
        &daemon,
        Duration::from_secs(30),
        "refreshes in the daemon",
        || {
            argvs.extend(argvs_of(daemon.pid()));
            env.server.count("refresh") >= before + 3
        },
    );
    daemon.signal("TERM");
    let mut daemon = daemon;
    daemon.wait_exit(Duration::from_secs(20));
    outputs.push(("the daemon".into(), daemon.log().into_bytes()));
    assert!(
        daemon.log().contains("refreshed the OAuth2 access token"),
        "{}",
        daemon.log()
    );

    let mut written = Vec::new();
    files(env.home.path(), &mut written);
    for path in &written {
        let name = path.file_name().unwrap().to_string_lossy();
        if name.ends_with(".oauth2-token") {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
            continue;
        }
        if name.starts_with("daemon-") {
            continue; // already in `outputs`
        }
        outputs.push((path.display().to_string(), std::fs::read(path).unwrap()));
    }
    outputs.push((
        "argv of syncmail and its children".into(),
        argvs.join("\n").into_bytes(),
    ));

    let secrets = env.server.secrets();
    assert!(
        secrets.len() >= 8,
        "too few secrets to look for: {}",
        secrets.len()
    );
    let mut checked = 0;
    for secret in &secrets {
        for user in ["alice", "bob"] {
            for (what, needle) in needles(user, secret, env.dovecot.pop3s_port)
                .into_iter()
                .chain(needles(user, secret, env.dovecot.imaps_port))
            {
                if what == "its tail" {
                    continue; // random tails of short codes may occur by chance
                }
                for (place, haystack) in &outputs {
                    checked += 1;
                    assert!(
                        !contains(haystack, &needle),
                        "{what} of an OAuth2 secret is in {place}"
                    );
                }
            }
        }
    }
    assert!(checked > 1000, "checked only {checked} places");
}
