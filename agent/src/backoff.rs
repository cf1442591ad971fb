//! Capped exponential back-off with jitter, shared by camera reconnects and the MQTT link.

use std::time::Duration;

use rand::Rng;

/// Reconnect timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Fraction of random spread around each delay (0.2 = ±20%).
    pub jitter: f64,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, jitter: 0.2, current: initial }
    }

    /// The next delay (with jitter); doubles the base up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let spread = rand::rng().random_range(-self.jitter..=self.jitter);
        base.mul_f64((1.0 + spread).max(0.0))
    }

    /// Jumps straight to at least `floor` (used for authentication failures, which retrying fast won't fix).
    pub fn at_least(&mut self, floor: Duration) {
        self.current = self.current.max(floor.min(self.max));
    }

    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let delays: Vec<f64> = (0..6).map(|_| b.next_delay().as_secs_f64()).collect();
        for (d, base) in delays.iter().zip([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]) {
            assert!(*d >= base * 0.8 - 1e-9 && *d <= base * 1.2 + 1e-9, "{delays:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs_f64(1.2));
    }

    #[test]
    fn auth_failures_jump_the_backoff() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        b.at_least(Duration::from_secs(15));
        assert!(b.next_delay() >= Duration::from_secs(12));
    }
}
