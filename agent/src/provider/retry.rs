//! Retry policy: which failures to retry, and how long to wait before each
//! retry (capped exponential backoff with jitter, or the server's hint). Pure.

use std::time::Duration;

use super::error::ProviderError;

/// When and how often to retry. Defaults follow godo (`NewFromToken`):
/// 4 retries, waits from 1 s doubling up to 30 s.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub min_wait: Duration,
    pub max_wait: Duration,
    /// Randomize each wait in [base/2, base] so clients do not retry in lockstep.
    pub jitter: bool,
    /// A 429 that asks to wait longer than this fails instead of waiting.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            jitter: true,
            max_rate_limit_wait: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt + 1` (attempt 0 = after the first failure).
    /// `unit` is a random number in [0, 1) used for jitter.
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let base = self.min_wait.saturating_mul(factor).min(self.max_wait);
        if !self.jitter {
            return base;
        }
        let half = base / 2;
        let extra = half.mul_f64(unit.clamp(0.0, 1.0));
        (half + extra).max(self.min_wait.min(base))
    }

    /// The wait before the next retry, given the server's hint (429 headers).
    pub fn wait(&self, attempt: u32, hint: Option<Duration>) -> Result<Duration, ProviderError> {
        match hint {
            Some(w) if w > self.max_rate_limit_wait => Err(ProviderError::RateLimited {
                wait: w,
                max: self.max_rate_limit_wait,
            }),
            Some(w) => Ok(w),
            None => Ok(self.backoff(attempt, rand::random::<f64>())),
        }
    }
}

/// Statuses worth retrying: 429 and 5xx except 501 (as godo / go-retryablehttp).
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status) && status != 501
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_doubles_and_caps_without_jitter() {
        let p = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (0..7).map(|a| p.backoff(a, 0.0).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(p.backoff(u32::MAX, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_between_half_and_full_and_above_min() {
        let p = RetryPolicy {
            min_wait: ms(10),
            max_wait: ms(1000),
            ..RetryPolicy::default()
        };
        for attempt in 0..10 {
            let full = ms(10 * 2u64.pow(attempt)).min(ms(1000));
            for unit in [0.0, 0.3, 0.999] {
                let w = p.backoff(attempt, unit);
                assert!(
                    w <= full && w >= full / 2 && w >= ms(10),
                    "{attempt} {unit} {w:?}"
                );
            }
        }
    }

    #[test]
    fn server_hint_wins_unless_too_long() {
        let p = RetryPolicy::default();
        assert_eq!(p.wait(0, Some(ms(1500))).unwrap(), ms(1500));
        assert!(matches!(
            p.wait(0, Some(Duration::from_secs(3600))),
            Err(ProviderError::RateLimited { .. })
        ));
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 422, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}
