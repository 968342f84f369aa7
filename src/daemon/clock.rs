//! Suspend/resume detection: the monotonic clock stops while the machine sleeps, the
//! wall clock does not. When they disagree by more than a threshold every connection is
//! presumed dead and every folder resynced (rule 16).

use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

/// Whether the wall clock moved by more than `threshold` beyond (or behind) the
/// monotonic clock. `wall` is `None` when the wall clock went backwards.
pub fn jumped(wall: Option<Duration>, monotonic: Duration, threshold: Duration) -> bool {
    match wall {
        Some(wall) => wall.abs_diff(monotonic) > threshold,
        None => true,
    }
}

/// Check every `tick`; bump `epoch` on each jump.
pub async fn watch_clock(tick: Duration, threshold: Duration, epoch: watch::Sender<u64>) {
    let mut wall = SystemTime::now();
    let mut mono = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let (now_wall, now_mono) = (SystemTime::now(), Instant::now());
        let wall_elapsed = now_wall.duration_since(wall).ok();
        if jumped(wall_elapsed, now_mono - mono, threshold) {
            tracing::info!(
                "the clock jumped (suspend/resume?): reconnecting and resyncing every account"
            );
            epoch.send_modify(|e| *e += 1);
        }
        (wall, mono) = (now_wall, now_mono);
        if epoch.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspend_or_a_clock_step_is_a_jump() {
        let s = Duration::from_secs;
        assert!(!jumped(Some(s(5)), s(5), s(30)));
        assert!(!jumped(Some(s(20)), s(5), s(30)));
        // Resumed after an hour asleep: the monotonic clock saw 5 s.
        assert!(jumped(Some(s(3605)), s(5), s(30)));
        // The wall clock stepped back.
        assert!(jumped(None, s(5), s(30)));
        assert!(jumped(Some(s(0)), s(60), s(30)));
    }
}
