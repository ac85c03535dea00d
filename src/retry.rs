//! Retry policy: capped exponential backoff with jitter, built on `backon`
//! (the crate `backoff` is unmaintained, RUSTSEC-2025-0012; kube-runtime moved
//! to `backon` too).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// When to try a transient failure again.
///
/// Two levels use it: a few quick in-process retries of one Kubernetes call
/// (absorbing a 429 or a blip without giving the message back), then, when those
/// are spent, a `nak` with a delay that grows with the delivery count, so a
/// struggling API server sees less traffic, not more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// First delay. 100 ms: long enough for a throttled API server's window to
    /// move, short enough that a blip costs little latency.
    pub min_delay: Duration,
    /// Ceiling of any delay. 30 s: under JetStream's default ack wait, and a
    /// tenant waits at most this long after the cluster recovers.
    pub max_delay: Duration,
    /// Growth per attempt. 2: the usual doubling.
    pub factor: f32,
    /// In-process attempts of one call before giving the message back. 3 (so
    /// at most ~0.7 s) keeps a consumer slot from being held by one tenant.
    pub in_process_attempts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            factor: 2.0,
            in_process_attempts: 3,
        }
    }
}

impl RetryPolicy {
    /// The backoff for in-process retries of one call, with full jitter.
    pub fn in_process(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_jitter()
            .with_max_times(self.in_process_attempts.saturating_sub(1))
    }

    /// The `nak` delay before delivery number `delivered + 1` (1-based `delivered`).
    pub fn redelivery_delay(&self, delivered: u64) -> Duration {
        let attempt = usize::try_from(delivered.max(1)).unwrap_or(usize::MAX);
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay * 5)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt - 1)
            .unwrap_or(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_delay_grows_and_is_capped() {
        let p = RetryPolicy::default();
        // Jitter adds up to one more delay, so compare bounds, not exact values.
        let first = p.redelivery_delay(1);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        let tenth = p.redelivery_delay(10);
        assert!(tenth >= Duration::from_secs(30) && tenth <= Duration::from_secs(60));
        assert!(p.redelivery_delay(1000) <= Duration::from_secs(60));
    }

    #[test]
    fn in_process_attempts_are_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.in_process().build().count(), 2);
    }
}
