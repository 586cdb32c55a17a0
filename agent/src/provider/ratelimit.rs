//! Rate limits: the `ratelimit-*` / `retry-after` headers, the client-side
//! budget built from them, and the pacer that keeps bursts under 250/minute.
//! All pure: callers pass the current time.

use std::collections::VecDeque;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Serialize;
use tokio::time::Instant;

/// What the API last said about our hourly budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// `ratelimit-limit`: requests per hour.
    pub limit: u64,
    /// `ratelimit-remaining`, minus the requests sent since that answer.
    pub remaining: u64,
    /// `ratelimit-reset`: Unix seconds when the oldest counted request expires.
    pub reset_unix: u64,
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl RateLimit {
    /// Parses `ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset`;
    /// `None` unless all three are present and numeric.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        Some(Self {
            limit: header_u64(headers, "ratelimit-limit")?,
            remaining: header_u64(headers, "ratelimit-remaining")?,
            reset_unix: header_u64(headers, "ratelimit-reset")?,
        })
    }
}

/// `retry-after` in seconds (the only form DigitalOcean sends).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_u64(headers, "retry-after").map(Duration::from_secs)
}

/// How long a 429 asks us to wait: `retry-after` if present, else until
/// `ratelimit-reset`, else `None` (fall back to exponential backoff).
pub fn wait_after_429(headers: &HeaderMap, now_unix: u64) -> Option<Duration> {
    retry_after(headers).or_else(|| {
        let reset = header_u64(headers, "ratelimit-reset")?;
        Some(Duration::from_secs(reset.saturating_sub(now_unix).max(1)))
    })
}

/// The client-side view of the hourly budget.
#[derive(Debug, Default)]
pub struct Budget {
    last: Option<RateLimit>,
    sent_since: u64,
    /// The last answer was a burst-limit 429 (with `retry-after`): its
    /// `ratelimit-remaining: 0` is about the minute, not the hour.
    burst_limited: bool,
}

impl Budget {
    /// The budget as we believe it is now.
    pub fn snapshot(&self) -> Option<RateLimit> {
        self.last.map(|l| RateLimit {
            remaining: l.remaining.saturating_sub(self.sent_since),
            ..l
        })
    }

    pub fn on_send(&mut self) {
        self.sent_since += 1;
    }

    /// Records an answer's headers; `burst_limited` when it was a 429 with `retry-after`.
    pub fn on_response(&mut self, seen: Option<RateLimit>, burst_limited: bool) {
        if let Some(seen) = seen {
            self.last = Some(seen);
            self.sent_since = 0;
        }
        self.burst_limited = burst_limited;
    }

    /// If the budget is spent, how long until it resets.
    pub fn wait_before_send(&self, now_unix: u64) -> Option<Duration> {
        if self.burst_limited {
            return None;
        }
        let snap = self.snapshot()?;
        (snap.remaining == 0 && snap.reset_unix > now_unix)
            .then(|| Duration::from_secs(snap.reset_unix - now_unix))
    }
}

/// A sliding-window pacer: at most `limit` requests in any `window`.
#[derive(Debug)]
pub struct Pacer {
    limit: usize,
    window: Duration,
    sent: VecDeque<Instant>,
}

impl Pacer {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            sent: VecDeque::new(),
        }
    }

    /// Reserves a slot at `now`, or says how long to wait for one.
    pub fn reserve(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&front) = self.sent.front() {
            if now.duration_since(front) >= self.window {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() < self.limit {
            self.sent.push_back(now);
            return Ok(());
        }
        let oldest = *self.sent.front().expect("full window is not empty");
        Err((oldest + self.window).saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn parses_rate_limit_headers() {
        let h = headers(&[
            ("ratelimit-limit", "5000"),
            ("ratelimit-remaining", "4816"),
            ("ratelimit-reset", "1444931833"),
        ]);
        assert_eq!(
            RateLimit::from_headers(&h),
            Some(RateLimit {
                limit: 5000,
                remaining: 4816,
                reset_unix: 1444931833
            })
        );
        let partial = headers(&[("ratelimit-limit", "5000"), ("ratelimit-remaining", "x")]);
        assert_eq!(RateLimit::from_headers(&partial), None);
    }

    #[test]
    fn wait_after_429_prefers_retry_after_then_reset() {
        let h = headers(&[("retry-after", "7"), ("ratelimit-reset", "1000")]);
        assert_eq!(wait_after_429(&h, 900), Some(Duration::from_secs(7)));
        let h = headers(&[("ratelimit-reset", "1000")]);
        assert_eq!(wait_after_429(&h, 990), Some(Duration::from_secs(10)));
        assert_eq!(wait_after_429(&h, 2000), Some(Duration::from_secs(1)));
        assert_eq!(wait_after_429(&HeaderMap::new(), 0), None);
    }

    #[test]
    fn budget_counts_local_sends_and_waits_when_spent() {
        let mut b = Budget::default();
        assert_eq!(b.wait_before_send(0), None);
        b.on_response(
            Some(RateLimit {
                limit: 5000,
                remaining: 2,
                reset_unix: 100,
            }),
            false,
        );
        b.on_send();
        assert_eq!(b.snapshot().unwrap().remaining, 1);
        assert_eq!(b.wait_before_send(40), None);
        b.on_send();
        assert_eq!(b.wait_before_send(40), Some(Duration::from_secs(60)));
        assert_eq!(b.wait_before_send(100), None, "reset passed");
        b.on_response(None, false);
        assert_eq!(
            b.snapshot().unwrap().remaining,
            0,
            "no headers keeps the count"
        );
    }

    #[test]
    fn burst_limit_429_does_not_block_for_the_hour() {
        let mut b = Budget::default();
        let zero = Some(RateLimit {
            limit: 5000,
            remaining: 0,
            reset_unix: 3600,
        });
        b.on_response(zero, true);
        assert_eq!(
            b.wait_before_send(0),
            None,
            "retry-after governs a burst 429"
        );
        b.on_response(zero, false);
        assert_eq!(b.wait_before_send(0), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn pacer_never_allows_more_than_limit_per_window() {
        let start = Instant::now();
        let mut p = Pacer::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            p.reserve(start).unwrap();
        }
        assert_eq!(p.reserve(start), Err(Duration::from_secs(60)));
        let later = start + Duration::from_secs(59);
        assert_eq!(p.reserve(later), Err(Duration::from_secs(1)));
        assert_eq!(p.reserve(start + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn pacer_simulated_burst_stays_under_limit() {
        let start = Instant::now();
        let mut p = Pacer::new(250, Duration::from_secs(60));
        let mut now = start;
        let mut sent = Vec::new();
        for _ in 0..600 {
            loop {
                match p.reserve(now) {
                    Ok(()) => break,
                    Err(w) => now += w,
                }
            }
            sent.push(now);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(60))
                .count();
            assert!(in_window <= 250, "{in_window} requests within a minute");
        }
    }
}
