//! Reconnect delays: exponential with jitter, capped, so a fleet of clients that lost
//! the same server does not come back in lock step, and a dead server is not hammered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Option<Duration>,
    rng: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Backoff {
            min,
            max: max.max(min),
            current: None,
            rng: seed | 1,
        }
    }

    /// The next delay: the ceiling doubles from `min` up to `max`; the delay is drawn
    /// between half the ceiling and the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .current
            .map_or(self.min, |c| c.saturating_mul(2).min(self.max));
        self.current = Some(ceiling);
        let half = ceiling / 2;
        let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            self.random() % (spread + 1)
        };
        half + Duration::from_millis(jitter)
    }

    /// After a success: the next failure starts from `min` again.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// xorshift64: jitter needs no cryptographic randomness.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let mut b = Backoff::new(min, max);
        let mut ceiling = min;
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
            ceiling = (ceiling * 2).min(max);
        }
        assert!(b.next_delay() >= max / 2);
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
