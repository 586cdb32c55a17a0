//! `ProviderError`: every way a cloud provider call can fail, with the API's
//! `{id, message, request_id}` and HTTP status when the API answered.

use std::time::Duration;

/// An error from a [`super::CloudProvider`] call. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The API answered with a non-success status.
    #[error(
        "{method} {path}: HTTP {status} {id}: {message}{}",
        request_suffix(request_id)
    )]
    Api {
        method: String,
        path: String,
        status: u16,
        id: String,
        message: String,
        request_id: Option<String>,
    },
    /// No usable answer: connection refused/reset, timeout, body cut short.
    #[error("{method} {path}: transport error: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
        /// True when the request may have reached the server (the outcome is unknown).
        ambiguous: bool,
    },
    /// The answer did not have the expected shape.
    #[error("{method} {path}: cannot decode response at `{field}`: {message}")]
    Decode {
        method: String,
        path: String,
        field: String,
        message: String,
    },
    /// Retries ran out; `last` is the final failure.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<ProviderError>,
    },
    /// The rate limit asks us to wait longer than we are allowed to.
    #[error("rate limited: the API asks to wait {wait:?}, more than the allowed {max:?}")]
    RateLimited { wait: Duration, max: Duration },
    /// A droplet action finished with status `errored`.
    #[error("action {action_id} ({kind}) on {resource} errored")]
    ActionErrored {
        action_id: u64,
        kind: String,
        resource: String,
    },
    /// Something did not finish before its deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// The caller passed a value the API would reject.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidInput {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// Configuration is missing or malformed (environment variables, URLs).
    #[error("configuration {name}: {reason}")]
    Config { name: &'static str, reason: String },
}

fn request_suffix(request_id: &Option<String>) -> String {
    match request_id {
        Some(r) => format!(" (request_id {r})"),
        None => String::new(),
    }
}

impl ProviderError {
    /// HTTP status of the API error, also through `RetriesExhausted`.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Api { status, .. } => Some(*status),
            ProviderError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The API's error id (`not_found`, `unauthorized`, ...).
    pub fn api_id(&self) -> Option<&str> {
        match self {
            ProviderError::Api { id, .. } => Some(id),
            ProviderError::RetriesExhausted { last, .. } => last.api_id(),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when the request may have been carried out although we got no answer:
    /// timeouts, dropped connections after sending, 5xx.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            ProviderError::Transport { ambiguous, .. } => *ambiguous,
            ProviderError::Api { status, .. } => *status >= 500,
            ProviderError::RetriesExhausted { last, .. } => last.is_ambiguous(),
            _ => false,
        }
    }

    /// The 422 "Droplet already has a pending event" answer to a droplet action.
    pub fn is_pending_event(&self) -> bool {
        match self {
            ProviderError::Api {
                status: 422,
                message,
                ..
            } => message.to_ascii_lowercase().contains("pending event"),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, message: &str) -> ProviderError {
        ProviderError::Api {
            method: "POST".into(),
            path: "/v2/droplets/1/actions".into(),
            status,
            id: "unprocessable_entity".into(),
            message: message.into(),
            request_id: Some("r-1".into()),
        }
    }

    #[test]
    fn display_carries_status_id_message_and_request_id() {
        let s = api(422, "Droplet already has a pending event.").to_string();
        assert!(s.contains("422"), "{s}");
        assert!(s.contains("unprocessable_entity"), "{s}");
        assert!(s.contains("request_id r-1"), "{s}");
    }

    #[test]
    fn classification() {
        assert!(api(422, "Droplet already has a pending event.").is_pending_event());
        assert!(!api(422, "Name is invalid").is_pending_event());
        assert!(api(503, "x").is_ambiguous());
        assert!(!api(404, "x").is_ambiguous());
        let wrapped = ProviderError::RetriesExhausted {
            attempts: 5,
            last: Box::new(api(500, "boom")),
        };
        assert_eq!(wrapped.status(), Some(500));
        assert!(wrapped.is_ambiguous());
    }
}
