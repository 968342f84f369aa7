//! Rule 5: a connection cut in the middle of a FETCH or an APPEND literal leaves no
//! partial file and no duplicate; the next pass completes exactly once.

use crate::support::dovecot::message;
use crate::support::maildir as md;
use crate::support::proxy::{CutProxy, Direction};
use crate::support::stderr;
use crate::support::sync_env::SyncEnv;

/// A message of about `kib` KiB of pseudo-random text: incompressible, so the proxy's
/// byte count means the same with COMPRESS=DEFLATE on.
fn big(id: &str, kib: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state: u64 = id.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3)
    });
    let mut body = String::with_capacity(kib * 1024);
    while body.len() < kib * 1024 {
        for _ in 0..76 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            body.push(ALPHABET[(state >> 58) as usize] as char);
        }
        body.push_str("\r\n");
    }
    message(id, &format!("{id}@cut"), &body)
}

fn tmp_is_empty(env: &SyncEnv) -> bool {
    std::fs::read_dir(env.inbox().join("tmp")).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn rule_05_cut_mid_fetch_leaves_no_partial_file_and_refetches_once() {
    let mut env = SyncEnv::new("");
    for id in ["a", "b", "c"] {
        env.dovecot.seed("alice", "INBOX", &big(id, 300));
    }
    // Enough for the login and part of the first 300 KiB literal, never all three.
    let proxy = CutProxy::start(env.dovecot.imaps_port, Direction::ToClient, 200 * 1024);
    env.write_config(proxy.port);
    let out = env.sync(&[]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "a cut link is transient: {}",
        stderr(&out)
    );
    let partial = md::messages(&env.inbox());
    assert!(
        partial.len() < 3,
        "the cut came too late to test anything: {partial:?}"
    );
    for key in partial.keys() {
        let body = md::read(&env.inbox(), key);
        assert!(
            body.ends_with(b"\r\n") && body.len() > 300 * 1000,
            "partial file {key}"
        );
    }
    assert!(tmp_is_empty(&env), "tmp/ holds a leftover");
    drop(proxy);
    let port = env.dovecot.imaps_port;
    env.write_config(port);
    env.sync_ok();
    let (server, local) = env.state();
    assert_eq!(local.len(), 3, "{local:?}");
    assert_eq!(
        server.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        local.iter().map(|(id, _)| id).collect::<Vec<_>>()
    );
    for key in md::messages(&env.inbox()).keys() {
        let body = md::read(&env.inbox(), key);
        assert!(
            body == big("a", 300) || body == big("b", 300) || body == big("c", 300),
            "byte-exact"
        );
    }
    env.assert_quiet();
}

#[test]
fn rule_05_cut_mid_append_leaves_no_duplicate() {
    let mut env = SyncEnv::new("");
    env.sync_ok();
    md::add(&env.inbox(), "1700000000.big.host", "S", &big("up", 400));
    let proxy = CutProxy::start(env.dovecot.imaps_port, Direction::ToServer, 100 * 1024);
    env.write_config(proxy.port);
    let out = env.sync(&[]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        env.server("INBOX").is_empty(),
        "a cut literal is never stored"
    );
    drop(proxy);
    let port = env.dovecot.imaps_port;
    env.write_config(port);
    env.sync_ok();
    assert_eq!(env.server("INBOX").len(), 1, "appended exactly once");
    env.assert_quiet();
}
