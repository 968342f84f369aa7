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
    watch_clocks(tick, threshold, epoch, || {
        (SystemTime::now(), Instant::now())
    })
    .await;
}

/// [`watch_clock`] with the clocks as an argument, so a test can suspend the machine.
async fn watch_clocks(
    tick: Duration,
    threshold: Duration,
    epoch: watch::Sender<u64>,
    mut clocks: impl FnMut() -> (SystemTime, Instant),
) {
    let (mut wall, mut mono) = clocks();
    loop {
        tokio::time::sleep(tick).await;
        let (now_wall, now_mono) = clocks();
        let wall_elapsed = now_wall.duration_since(wall).ok();
        if jumped(wall_elapsed, now_mono - mono, threshold) {
            tracing::info!(
                "the clock jumped (suspend/resume?): reconnecting and resyncing every account"
            );
            // An access token may have expired while the machine slept.
            crate::secret::oauth2::forget_all();
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

    /// A fake pair of clocks: each read moves both by one tick, except the fourth, where
    /// the wall clock also moves an hour (the machine slept).
    #[tokio::test]
    async fn the_watcher_bumps_the_epoch_on_a_jump_only() {
        let (tx, mut rx) = watch::channel(0u64);
        let (wall0, mono0) = (SystemTime::now(), Instant::now());
        let mut reads = 0u32;
        let clocks = move || {
            reads += 1;
            let tick = Duration::from_secs(10) * reads;
            let slept = if reads >= 4 {
                Duration::from_secs(3600)
            } else {
                Duration::ZERO
            };
            (wall0 + tick + slept, mono0 + tick)
        };
        tokio::spawn(watch_clocks(
            Duration::from_millis(5),
            Duration::from_secs(30),
            tx,
            clocks,
        ));
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*rx.borrow_and_update(), 1);
        // Only the one jump: later reads move both clocks together again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*rx.borrow(), 1);
    }

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
