//! Daemon latency and footprint, run by hand (ignored by default):
//!
//!   scripts/bench-daemon.sh   (= cargo test --release --test suite daemon_bench -- --ignored --nocapture)
//!
//! Push latency in both directions over 100 single changes each (p50/p99), and the
//! resident memory and CPU time of an idle daemon with three accounts over a minute.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::DEFAULT_PASSWORD;
use crate::support::daemon::{Daemon, local_count, wait_until};
use crate::support::maildir as md;
use crate::support::sync_env::SyncEnv as Env;

const N: usize = 100;

/// A minimal IMAP client on Dovecot's plain loopback port, to watch the server side
/// without a process start per look (doveadm costs ~30 ms a call).
struct Watcher {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Watcher {
    fn connect(port: u16) -> Watcher {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut w = Watcher {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            tag: 0,
        };
        let mut greeting = String::new();
        w.reader.read_line(&mut greeting).unwrap();
        w.command(&format!("LOGIN alice {DEFAULT_PASSWORD}"));
        w.command("SELECT INBOX");
        w
    }

    fn command(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = format!("w{}", self.tag);
        write!(self.writer, "{tag} {command}\r\n").unwrap();
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "server closed"
            );
            if line.starts_with(&format!("{tag} ")) {
                assert!(line.starts_with(&format!("{tag} OK")), "{command}: {line}");
                return lines;
            }
            lines.push(line);
        }
    }

    fn seen(&mut self, uid: u32) -> bool {
        self.command(&format!("UID FETCH {uid} (FLAGS)"))
            .iter()
            .any(|l| l.contains(&format!("UID {uid}")) && l.contains("\\Seen"))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    println!(
        "{what}: n={} p50={:.0} ms p99={:.0} ms max={:.0} ms",
        samples.len(),
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        samples.last().unwrap().as_secs_f64() * 1000.0
    );
    (p50, p99)
}

#[test]
#[ignore = "benchmark: scripts/bench-daemon.sh"]
fn latency_100_appends_and_100_flag_changes() {
    let env = Env::new("timeout = \"10s\"\npoll_interval = \"1h\"\n");
    env.seed("INBOX", "start");
    let daemon = Daemon::start(&env);
    wait_until(&daemon, Duration::from_secs(15), "the initial pass", || {
        local_count(&env, "INBOX") == 1
    });
    wait_until(&daemon, Duration::from_secs(10), "IDLE", || {
        daemon.log().contains("idling on INBOX")
    });
    std::thread::sleep(Duration::from_secs(1));

    // Server -> Maildir: from just before another client's delivery starts (doveadm
    // save, which itself takes tens of ms) until the file is in the Maildir.
    let mut down = Vec::new();
    for i in 0..N {
        let t0 = Instant::now();
        env.seed("INBOX", &format!("bench{i}"));
        while local_count(&env, "INBOX") < i + 2 {
            assert!(t0.elapsed() < Duration::from_secs(10), "{}", daemon.log());
            std::thread::sleep(Duration::from_millis(2));
        }
        down.push(t0.elapsed());
    }
    let (d50, d99) = report("server -> Maildir", down);

    // Maildir -> server: from the rename a mail client makes until the server has it.
    let mut watcher = Watcher::connect(env.dovecot.imap_port);
    let inbox = env.folder("INBOX");
    let server = env.server("INBOX");
    let mut up = Vec::new();
    // UID 1 is "start", UIDs 2.. are bench0.. in delivery order.
    for (i, (uid, _)) in server.iter().skip(1).take(N).enumerate() {
        let key = env.key_of("INBOX", &format!("bench{i}"));
        let t0 = Instant::now();
        md::set_flags(&inbox, &key, "S");
        while !watcher.seen(*uid) {
            assert!(t0.elapsed() < Duration::from_secs(10), "{}", daemon.log());
            std::thread::sleep(Duration::from_millis(2));
        }
        up.push(t0.elapsed());
    }
    daemon.stop();
    let (u50, u99) = report("Maildir -> server", up);
    for (p50, p99) in [(d50, d99), (u50, u99)] {
        assert!(p50 < Duration::from_millis(500) && p99 < Duration::from_secs(2));
    }
}

#[test]
#[ignore = "benchmark: scripts/bench-daemon.sh"]
fn idle_footprint_with_three_accounts() {
    let mut env = Env::new("poll_interval = \"1h\"\n");
    for i in 0..20 {
        env.seed("INBOX", &format!("m{i}"));
    }
    let text = std::fs::read_to_string(&env.config).unwrap();
    let mut more = String::new();
    for name in ["t2", "t3"] {
        more.push_str(&format!(
            "\n{}maildir = \"{name}\"\npoll_interval = \"1h\"\n",
            env.dovecot.imap_account(name, "alice", "implicit")
        ));
    }
    std::fs::write(&env.config, format!("{text}{more}")).unwrap();
    let _ = &mut env;
    let daemon = Daemon::start(&env);
    wait_until(
        &daemon,
        Duration::from_secs(30),
        "three accounts synced",
        || {
            ["t", "t2", "t3"].iter().all(|a| {
                md::messages(&env.home.path().join("Mail").join(a).join("INBOX")).len() == 20
            })
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let pid = daemon.pid();
    let ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let rss_kib = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    let hz: f64 = String::from_utf8(
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let secs = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60u64);
    let (t0, c0) = (Instant::now(), ticks());
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = (ticks() - c0) as f64 / hz;
    let wall = t0.elapsed().as_secs_f64();
    let rss = rss_kib();
    println!(
        "idle daemon, 3 accounts: RSS {:.1} MiB, CPU {cpu:.2} s over {wall:.0} s ({:.3}%)",
        rss as f64 / 1024.0,
        cpu / wall * 100.0
    );
    daemon.stop();
    assert!(rss < 30 * 1024, "RSS {rss} KiB");
    assert!(cpu / wall < 0.01, "CPU {cpu} s in {wall} s");
}
