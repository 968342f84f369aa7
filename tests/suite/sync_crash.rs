//! Rule 1 end to end: a pass that fetches, appends, pushes and pulls flags and deletes on
//! both sides is killed (abort, like kill -9: no destructors, no unwinding) at every
//! fault point in turn; after a normal rerun the end state equals an uninterrupted run,
//! with no duplicate on either side and nothing lost.

use crate::support::dovecot::message;
use crate::support::flags::maildir_to_imap;
use crate::support::maildir as md;
use crate::support::sync_env::{QUIET, State, SyncEnv};
use crate::support::{assert_crashed_at_a_fault_point, stderr, stdout};

/// Four messages synced; then changes on both sides that need every kind of step.
fn prepared<T>(start: &impl Fn() -> (SyncEnv, T)) -> (SyncEnv, T) {
    let (env, keep) = start();
    for id in ["a", "b", "c", "d"] {
        env.seed("INBOX", id);
    }
    env.sync_ok();
    // Server: two new messages to fetch, a flag to pull, an expunge to carry over.
    env.seed("INBOX", "e");
    env.seed("INBOX", "f");
    env.dovecot.add_flags("alice", "INBOX", 2, "\\Seen");
    env.dovecot.expunge("alice", "INBOX", 4);
    // Local: a new message to append, a flag to push, a deletion to carry over.
    md::add(
        &env.inbox(),
        "1700000000.new.host",
        "S",
        &message("l", "l@test", "body of l"),
    );
    md::set_flags(&env.inbox(), &env.key_of("INBOX", "a"), "F");
    md::delete(&env.inbox(), &env.key_of("INBOX", "c"));
    (env, keep)
}

fn faulted(env: &SyncEnv, fault: &str) -> std::process::Output {
    env.run("sync", &[], &[("SYNCMAIL_FAULT", fault)])
}

fn assert_no_duplicates(state: &State, when: &str) {
    for side in [&state.0, &state.1] {
        let mut ids: Vec<&String> = side.iter().map(|(id, _)| id).collect();
        ids.dedup();
        assert_eq!(ids.len(), side.len(), "duplicate message {when}: {state:?}");
    }
}

#[test]
fn rule_01_kill_at_every_step_then_rerun_equals_uninterrupted_run() {
    crash_loop("dovecot", || (SyncEnv::new(""), ()));
}

/// The pass `prepared` sets up, killed at every fault point in turn (a fresh server from
/// `start` each time, with whatever must live as long as it); after a normal rerun the
/// end state equals an uninterrupted run's. `start` also serves the provider profiles.
pub fn crash_loop<T>(what: &str, start: impl Fn() -> (SyncEnv, T)) {
    let (reference, _keep) = prepared(&start);
    reference.sync_ok();
    let expected = reference.state();
    assert_eq!(expected.0.len(), 5, "a b e f l on the server: {expected:?}");
    assert_eq!(
        expected.0,
        expected
            .1
            .iter()
            .map(|(id, f)| (id.clone(), maildir_to_imap(f)))
            .collect::<Vec<_>>()
    );
    assert_no_duplicates(&expected, "in the reference run");
    drop(reference);

    let mut crashes = 0;
    for n in 1.. {
        let (env, _keep) = prepared(&start);
        let fault = format!("#{n}");
        let out = faulted(&env, &fault);
        if out.status.code() == Some(0) {
            // Fewer than n fault points in a pass: every step has been crashed at.
            assert_eq!(
                env.state(),
                expected,
                "{what}: a run with an unreached fault point differs"
            );
            break;
        }
        assert_crashed_at_a_fault_point(&out, n);
        crashes += 1;
        let after_crash = env.state();
        assert_no_duplicates(&after_crash, &format!("right after crash #{n}"));
        let out = env.sync(&[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what}: rerun after crash #{n}: {}",
            stderr(&out)
        );
        let state = env.state();
        assert_eq!(
            state, expected,
            "{what}: end state after crash #{n} differs from an uninterrupted run"
        );
        // And it is settled: one more pass changes nothing.
        let out = env.sync(&[]);
        assert!(
            stdout(&out).contains(QUIET),
            "{what}: pass after recovery from crash #{n} was not quiet: {}",
            stdout(&out)
        );
    }
    eprintln!("{what}: crashed and recovered at {crashes} fault points");
    assert!(
        crashes >= 8,
        "{what}: only {crashes} fault points were reached; the pass should cross many more"
    );
}

/// The CI soak on b853f09 (seed 20261205): the daemon was killed while it carried a
/// server deletion to the Maildir; the recovery (or the next pass) finished it, and the
/// change log never said so. Killed at every step of such a pass, the rerun's log names
/// the deletion exactly once.
#[test]
fn rule_1_a_deletion_carried_across_a_kill_is_logged_once() {
    for n in 1.. {
        let env = SyncEnv::new("");
        for id in ["a", "b"] {
            env.seed("INBOX", id);
        }
        env.sync_ok();
        env.dovecot.expunge("alice", "INBOX", 1);
        let out = faulted(&env, &format!("#{n}"));
        let finished = out.status.code() == Some(0);
        if !finished {
            assert_crashed_at_a_fault_point(&out, n);
            env.sync_ok();
        }
        let log = env.log(&[]);
        let rows = log
            .lines()
            .filter(|l| l.contains("UID 1") && l.contains("deleted"))
            .count();
        assert_eq!(rows, 1, "after crash #{n}: {log}");
        assert_eq!(env.state().1.len(), 1, "after crash #{n}");
        if finished {
            assert!(n >= 2, "the pass crossed a fault point");
            break;
        }
    }
}
