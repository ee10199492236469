//! How long the client waits between connection attempts.

use std::time::Duration;

use rand::Rng;

/// Reconnection delays: `initial`, doubling after each round of failed remotes up to `max`,
/// each randomised to between half and all of its value so that many clients restarted
/// together do not reconnect in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, and the delay after a session that reached sync.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The delay after `delay`.
    pub fn next(&self, delay: Duration) -> Duration {
        (delay * 2).clamp(self.initial, self.max)
    }

    /// `delay` with jitter applied.
    pub fn jittered(delay: Duration) -> Duration {
        delay.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_below_the_delay() {
        let b = Backoff::default();
        let mut d = b.initial;
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(d);
            d = b.next(d);
        }
        assert_eq!(seen[0], Duration::from_millis(100));
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(
            *seen.last().unwrap_or(&Duration::ZERO),
            Duration::from_secs(5)
        );
        for _ in 0..100 {
            let j = Backoff::jittered(Duration::from_millis(400));
            assert!(
                j >= Duration::from_millis(200) && j <= Duration::from_millis(400),
                "{j:?}"
            );
        }
    }
}
