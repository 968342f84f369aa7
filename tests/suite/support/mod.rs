//! Shared test support: a private Dovecot and the server matrix (Cyrus, Courier, imap4d),
//! test certificates, running the binary and the daemon, and the scripted fake servers.
#![allow(dead_code)]

pub mod account;
pub mod certs;
pub mod daemon;
pub mod dovecot;
pub mod flags;
pub mod hostile;
pub mod idle_script;
pub mod imap_client;
pub mod imap_script;
pub mod maildir;
pub mod oauth2_server;
pub mod peers;
pub mod pop3_script;
pub mod profiles;
pub mod proxy;
pub mod rng;
pub mod servers;
pub mod sync_env;
pub mod tmpfs;
pub mod unified_env;

use std::path::Path;
use std::process::{Command, Output};

pub use dovecot::{DEFAULT_PASSWORD, Dovecot};

/// Run the real `syncmail` binary with a clean environment rooted at `home`.
pub fn syncmail(home: &Path, args: &[&str]) -> Output {
    syncmail_with_env(home, args, &[])
}

/// The same, with extra environment variables (e.g. a fault point).
pub fn syncmail_with_env(home: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_syncmail"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run syncmail")
}

/// This test binary again, in a child process that runs only `test` of `module` (pass
/// `module_path!()`): for the tests that crash, or hold a lock, in another process. The
/// child tells itself apart by an environment variable the caller sets.
pub fn test_in_child(module: &str, test: &str) -> Command {
    // `module_path!()` names the crate too (`suite::store_crash`); the harness does not.
    let module = module.split_once("::").map_or(module, |(_, path)| path);
    let mut child = Command::new(std::env::current_exe().expect("the test binary's path"));
    child.args([
        "--exact",
        &format!("{module}::{test}"),
        "--nocapture",
        "--test-threads=1",
    ]);
    child
}

/// Run `n` of a kill-at-every-step loop failed because a fault point aborted it, not for
/// another reason.
pub fn assert_crashed_at_a_fault_point(out: &Output, n: u32) {
    assert!(
        stderr(out).contains("fault point"),
        "run {n} failed without crashing: {}{}",
        stdout(out),
        stderr(out)
    );
}

/// Write a file only its owner may read (a config that may hold a password: 0600).
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
