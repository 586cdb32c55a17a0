//! The HTTP transport of the DigitalOcean client: authentication, retries with
//! capped exponential backoff and jitter, rate-limit budget and pacing, error bodies.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ProviderError;
use super::ratelimit::{Budget, Pacer, RateLimit, retry_after, wait_after_429};
use super::retry::{RetryPolicy, is_retryable_status};
use super::secret::Secret;

/// A successful answer.
#[derive(Debug)]
pub struct Reply {
    pub body: Vec<u8>,
}

/// A failed attempt: the error, whether a retry may help, and the server's wait hint.
#[derive(Debug)]
pub struct Failure {
    pub error: ProviderError,
    pub retryable: bool,
    pub wait_hint: Option<Duration>,
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Authenticated JSON over HTTP with retries, budget and pacing.
pub struct Http {
    client: reqwest::Client,
    base: Url,
    token: Secret,
    pub policy: RetryPolicy,
    budget: Mutex<Budget>,
    pacer: Mutex<Pacer>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Http {
    pub fn new(
        base: Url,
        token: Secret,
        policy: RetryPolicy,
        timeout: Duration,
        pacer: Pacer,
    ) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("infra-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Config {
                name: "http client",
                reason: e.to_string(),
            })?;
        Ok(Self {
            client,
            base,
            token,
            policy,
            budget: Mutex::new(Budget::default()),
            pacer: Mutex::new(pacer),
        })
    }

    /// `base` + `path` (which starts with `/v2/`), with query pairs.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{path}"));
        url.set_query(None);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// A `links.pages.next` URL rebased onto our base URL: only its path and
    /// query are kept, so the token is never sent to another host.
    pub fn rebase(&self, next: &str) -> Result<Url, ProviderError> {
        rebase_onto(&self.base, next)
    }

    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.budget.lock().expect("budget lock").snapshot()
    }

    async fn wait_for_slot(&self) -> Result<(), ProviderError> {
        loop {
            let budget_wait = self
                .budget
                .lock()
                .expect("budget lock")
                .wait_before_send(now_unix());
            if let Some(w) = budget_wait {
                if w > self.policy.max_rate_limit_wait {
                    return Err(ProviderError::RateLimited {
                        wait: w,
                        max: self.policy.max_rate_limit_wait,
                    });
                }
                tracing::warn!(wait = ?w, "rate-limit budget spent; waiting for reset");
                tokio::time::sleep(w).await;
                continue;
            }
            let pacer_wait = self
                .pacer
                .lock()
                .expect("pacer lock")
                .reserve(tokio::time::Instant::now());
            match pacer_wait {
                Ok(()) => break,
                Err(w) => tokio::time::sleep(w).await,
            }
        }
        self.budget.lock().expect("budget lock").on_send();
        Ok(())
    }

    /// One attempt, no retry.
    pub async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let fail = |error| Failure {
            error,
            retryable: false,
            wait_hint: None,
        };
        self.wait_for_slot().await.map_err(fail)?;
        let path = path_of(url);
        let mut req = self
            .client
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()));
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, "application/json").json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(transport_failure(method, &path, &e)),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let burst_limited = status == 429 && retry_after(&headers).is_some();
        self.budget
            .lock()
            .expect("budget lock")
            .on_response(RateLimit::from_headers(&headers), burst_limited);
        let bytes = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => return Err(transport_failure(method, &path, &e)),
        };
        if (200..300).contains(&status) {
            return Ok(Reply { body: bytes });
        }
        // godo honours `retry-after` on 429 and 503; a 429 without it waits for the reset.
        let wait_hint = match status {
            429 => wait_after_429(&headers, now_unix()),
            503 => retry_after(&headers),
            _ => None,
        };
        Err(Failure {
            error: api_error(method, &path, status, &headers, &bytes),
            retryable: is_retryable_status(status),
            wait_hint,
        })
    }

    /// Sends with retries on connection errors, 429 and 5xx (not 501).
    /// Only for requests that are safe to repeat (GET, PUT, DELETE, and
    /// POSTs whose repetition is harmless).
    pub async fn call(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Reply, ProviderError> {
        let mut attempt = 0;
        loop {
            let failure = match self.attempt(&method, url, body).await {
                Ok(reply) => return Ok(reply),
                Err(f) => f,
            };
            if !failure.retryable {
                return Err(failure.error);
            }
            if attempt >= self.policy.max_retries {
                return Err(ProviderError::RetriesExhausted {
                    attempts: attempt + 1,
                    last: Box::new(failure.error),
                });
            }
            let wait = self.policy.wait(attempt, failure.wait_hint)?;
            tracing::debug!(error = %failure.error, ?wait, attempt, "retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// `call` and decode the JSON body.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<T, ProviderError> {
        let reply = self.call(method.clone(), url, body).await?;
        decode(&method, url, &reply.body)
    }
}

pub(crate) fn path_of(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

pub(crate) fn rebase_onto(base: &Url, next: &str) -> Result<Url, ProviderError> {
    let parsed =
        Url::parse(next)
            .or_else(|_| base.join(next))
            .map_err(|e| ProviderError::Decode {
                method: "GET".into(),
                path: next.into(),
                field: "links.pages.next".into(),
                message: e.to_string(),
            })?;
    let mut url = base.clone();
    url.set_path(parsed.path());
    url.set_query(parsed.query());
    Ok(url)
}

pub(crate) fn decode<T: DeserializeOwned>(
    method: &Method,
    url: &Url,
    body: &[u8],
) -> Result<T, ProviderError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| ProviderError::Decode {
        method: method.to_string(),
        path: path_of(url),
        field: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

fn transport_failure(method: &Method, path: &str, e: &reqwest::Error) -> Failure {
    // A refused connection never reached the server; anything later may have.
    let ambiguous = !e.is_connect();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    Failure {
        error: ProviderError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            message,
            ambiguous,
        },
        retryable: true,
        wait_hint: None,
    }
}

/// Builds the typed error from an error answer `{id, message, request_id}`.
pub(crate) fn api_error(
    method: &Method,
    path: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let header_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let message = field("message").unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(200).collect()
    });
    ProviderError::Api {
        method: method.to_string(),
        path: path.to_string(),
        status,
        id: field("id").unwrap_or_else(|| format!("http_{status}")),
        message,
        request_id: field("request_id").or(header_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn api_error_reads_body_then_header_request_id() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("hdr-1"));
        let body = br#"{"id":"not_found","message":"The resource you were accessing could not be found."}"#;
        match api_error(&Method::GET, "/v2/droplets/9", 404, &h, body) {
            ProviderError::Api {
                status,
                id,
                request_id,
                ..
            } => {
                assert_eq!((status, id.as_str()), (404, "not_found"));
                assert_eq!(request_id.as_deref(), Some("hdr-1"));
            }
            e => panic!("{e:?}"),
        }
        let body = br#"{"id":"x","message":"m","request_id":"body-1"}"#;
        let e = api_error(&Method::GET, "/", 500, &h, body);
        assert!(e.to_string().contains("body-1"));
        let e = api_error(
            &Method::GET,
            "/",
            502,
            &HeaderMap::new(),
            b"<html>bad gateway",
        );
        assert_eq!(e.api_id(), Some("http_502"));
        assert!(e.to_string().contains("bad gateway"));
    }

    #[test]
    fn next_links_are_rebased_onto_our_host() {
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        let u = rebase_onto(
            &base,
            "https://api.digitalocean.com/v2/droplets?page=2&per_page=200&tag_name=a",
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8080/v2/droplets?page=2&per_page=200&tag_name=a"
        );
        let u = rebase_onto(&base, "/v2/droplets?page=3").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/v2/droplets?page=3");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let http = Http::new(
            Url::parse("http://127.0.0.1:1").unwrap(),
            Secret::new("tok-very-secret"),
            RetryPolicy::default(),
            Duration::from_secs(1),
            Pacer::new(250, Duration::from_secs(60)),
        )
        .unwrap();
        assert!(!format!("{http:?}").contains("tok-very-secret"));
    }
}
