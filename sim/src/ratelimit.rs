//! Per-token rate limiting: a sliding one-hour window plus a one-minute burst limit.

use crate::config::RateLimitConfig;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

/// The verdict for one request and the values of the `ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds when the oldest counted request expires.
    pub reset: u64,
    /// Seconds to wait, set when the burst limit was hit.
    pub retry_after: Option<u64>,
}

/// Request times per token, as offsets from an arbitrary origin (pure logic; the caller supplies
/// the current offset and the Unix time that corresponds to it).
#[derive(Debug, Default)]
pub struct RateLimiter {
    cfg: RateLimitConfig,
    buckets: HashMap<String, VecDeque<Duration>>,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        RateLimiter {
            cfg,
            buckets: HashMap::new(),
        }
    }

    /// Headers for a request that is not counted (e.g. unauthenticated).
    pub fn uncounted(&self, now_unix: u64) -> Decision {
        Decision {
            allowed: true,
            limit: self.cfg.per_hour,
            remaining: self.cfg.per_hour,
            reset: now_unix,
            retry_after: None,
        }
    }

    /// Counts a request by `key` at offset `now` (Unix time `now_unix`) if it is within limits.
    pub fn check(&mut self, key: &str, now: Duration, now_unix: f64) -> Decision {
        let bucket = self.buckets.entry(key.to_string()).or_default();
        while bucket
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= HOUR)
        {
            bucket.pop_front();
        }
        let in_minute = bucket
            .iter()
            .rev()
            .take_while(|t| now.saturating_sub(**t) < MINUTE)
            .count();
        let hourly_ok = (bucket.len() as u32) < self.cfg.per_hour;
        let burst_ok = (in_minute as u32) < self.cfg.per_minute;
        let allowed = hourly_ok && burst_ok;
        if allowed {
            bucket.push_back(now);
        }
        let oldest = bucket.front().copied().unwrap_or(now);
        let until_reset = (oldest + HOUR).saturating_sub(now).as_secs_f64();
        let retry_after = if !burst_ok {
            let first_in_minute = bucket[bucket.len() - in_minute];
            let wait = (first_in_minute + MINUTE).saturating_sub(now).as_secs_f64();
            Some((wait.ceil() as u64).max(1))
        } else {
            None
        };
        let remaining = if burst_ok {
            self.cfg.per_hour.saturating_sub(bucket.len() as u32)
        } else {
            0
        };
        Decision {
            allowed,
            limit: self.cfg.per_hour,
            remaining,
            reset: (now_unix + until_reset).ceil() as u64,
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(h: u32, m: u32) -> RateLimitConfig {
        RateLimitConfig {
            per_hour: h,
            per_minute: m,
        }
    }

    #[test]
    fn burst_limit_gives_retry_after_until_oldest_leaves_the_minute() {
        let mut rl = RateLimiter::new(cfg(100, 3));
        let base = 1_000_000.0;
        for i in 0..3 {
            let d = rl.check("t", Duration::from_secs(i), base + i as f64);
            assert!(d.allowed);
            assert_eq!(d.remaining, 100 - (i as u32 + 1));
        }
        let d = rl.check("t", Duration::from_secs(10), base + 10.0);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Some(50));
        assert_eq!(d.reset, 1_000_000 + 3600);
        // Other tokens are independent.
        assert!(rl.check("u", Duration::from_secs(10), base + 10.0).allowed);
        // After the minute has passed, requests are allowed again.
        assert!(rl.check("t", Duration::from_secs(61), base + 61.0).allowed);
    }

    #[test]
    fn hourly_window_slides() {
        let mut rl = RateLimiter::new(cfg(2, 100));
        assert!(rl.check("t", Duration::from_secs(0), 0.0).allowed);
        assert!(rl.check("t", Duration::from_secs(1800), 1800.0).allowed);
        let d = rl.check("t", Duration::from_secs(1900), 1900.0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, None);
        assert_eq!(d.reset, 3600);
        assert!(rl.check("t", Duration::from_secs(3600), 3600.0).allowed);
    }
}
