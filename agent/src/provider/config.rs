//! `DoConfig` and `PollPolicy`: how the DigitalOcean client is configured
//! (explicitly or from `DO_API_URL` / `DO_TOKEN`).

use std::time::Duration;

use super::error::ProviderError;
use super::retry::RetryPolicy;
use super::secret::Secret;

/// The default API endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.digitalocean.com";

/// How `wait_action` polls: intervals double from `min` to `max`, until `timeout`.
#[derive(Clone, Debug, PartialEq)]
pub struct PollPolicy {
    pub min: Duration,
    pub max: Duration,
    pub timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(2),
            max: Duration::from_secs(15),
            timeout: Duration::from_secs(60 * 60),
        }
    }
}

/// Everything `DoClient` needs. `Debug` redacts the token.
#[derive(Clone, Debug)]
pub struct DoConfig {
    pub base_url: String,
    pub token: Secret,
    pub retry: RetryPolicy,
    pub poll: PollPolicy,
    pub request_timeout: Duration,
    /// Client-side pacing: at most `burst_limit` requests per `burst_window` (DO: 250 per minute).
    pub burst_limit: usize,
    pub burst_window: Duration,
}

impl DoConfig {
    pub fn new(base_url: impl Into<String>, token: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            token,
            retry: RetryPolicy::default(),
            poll: PollPolicy::default(),
            request_timeout: Duration::from_secs(30),
            burst_limit: 250,
            burst_window: Duration::from_secs(60),
        }
    }

    /// `DO_API_URL` (default https://api.digitalocean.com) and `DO_TOKEN` (required).
    pub fn from_env() -> Result<Self, ProviderError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like `from_env`, reading variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ProviderError> {
        let token = get("DO_TOKEN")
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| ProviderError::Config {
                name: "DO_TOKEN",
                reason: "not set; export a DigitalOcean API token".into(),
            })?;
        let base = get("DO_API_URL")
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        Ok(Self::new(base, Secret::new(token.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_lookup_defaults_and_requires_token() {
        let cfg =
            DoConfig::from_lookup(|k| (k == "DO_TOKEN").then(|| "t0ken".to_string())).unwrap();
        assert_eq!(cfg.base_url, DEFAULT_BASE_URL);
        assert_eq!(cfg.token.expose(), "t0ken");
        assert!(!format!("{cfg:?}").contains("t0ken"));
        let e = DoConfig::from_lookup(|_| None).unwrap_err();
        assert!(e.to_string().contains("DO_TOKEN"), "{e}");
        let cfg = DoConfig::from_lookup(|k| match k {
            "DO_TOKEN" => Some("t".into()),
            _ => Some("http://127.0.0.1:9".into()),
        })
        .unwrap();
        assert_eq!(cfg.base_url, "http://127.0.0.1:9");
    }
}
