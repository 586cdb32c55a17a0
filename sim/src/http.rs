//! The `/v2` request pipeline: request ids, bearer auth, rate limits, faults and the request log.

use crate::error::ApiError;
use crate::ratelimit::Decision;
use crate::server::App;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAX_BODY: usize = 4 << 20;

/// One `/v2` request as the simulator saw and answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub request_id: String,
    /// When the request arrived (Unix milliseconds).
    pub at_unix_ms: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// HTTP status; 0 when a `reset` fault closed the connection instead.
    pub status: u16,
    pub request_body: Option<Value>,
    pub response_body: Option<Value>,
}

/// A log entry as stored: bodies stay raw bytes until someone reads the log.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub request_id: String,
    pub at_unix_ms: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub request_body: axum::body::Bytes,
    pub response_body: axum::body::Bytes,
}

impl RawRecord {
    pub fn decode(&self) -> RecordedRequest {
        RecordedRequest {
            request_id: self.request_id.clone(),
            at_unix_ms: self.at_unix_ms,
            method: self.method.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            status: self.status,
            request_body: json_or_none(&self.request_body),
            response_body: json_or_none(&self.response_body),
        }
    }
}

fn request_id() -> String {
    let a: u128 = rand::random();
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then(|| token.to_string())
}

fn json_or_none(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(bytes).ok()
    }
}

/// A response whose body fails at once: hyper aborts the connection, the client gets no answer.
fn reset_response() -> Response {
    let failing = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
            "simulated connection reset",
        ))
    });
    Response::new(Body::from_stream(failing))
}

/// What the middleware knows about a request before answering it.
struct Incoming {
    rid: String,
    at: Duration,
    method: String,
    path: String,
    query: Option<String>,
    body: axum::body::Bytes,
}

impl Incoming {
    fn record(self, status: u16, response_body: axum::body::Bytes) -> RawRecord {
        RawRecord {
            request_id: self.rid,
            at_unix_ms: self.at.as_millis() as u64,
            method: self.method,
            path: self.path,
            query: self.query,
            status,
            request_body: self.body,
            response_body,
        }
    }
}

/// Middleware wrapped around every `/v2` route: auth, rate limit, faults, then the handler;
/// the answer gets rate-limit headers and a request id and is logged.
pub async fn api_layer(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let token = bearer(&req).filter(|t| app.token_ok(t));
    let (parts, body) = req.into_parts();
    let (body, too_large) = match to_bytes(body, MAX_BODY).await {
        Ok(b) => (b, false),
        Err(_) => (axum::body::Bytes::new(), true),
    };
    let incoming = Incoming {
        rid: request_id(),
        at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        body: body.clone(),
    };
    let req = Request::from_parts(parts, Body::from(body));
    let now_unix = incoming.at.as_secs_f64();
    let (decision, response) = match token {
        None => (
            app.lock_limiter().uncounted(now_unix as u64),
            ApiError::unauthorized().into_response(),
        ),
        Some(_) if too_large => (
            app.lock_limiter().uncounted(now_unix as u64),
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body larger than {MAX_BODY} bytes"),
            )
            .into_response(),
        ),
        Some(token) => {
            let decision = app
                .lock_limiter()
                .check(&token, app.origin.elapsed(), now_unix);
            if !decision.allowed {
                (decision, ApiError::too_many_requests().into_response())
            } else {
                match run_with_faults(&app, &incoming, req, next).await {
                    Some(response) => (decision, response),
                    None => {
                        app.record(incoming.record(0, Default::default()));
                        app.persist();
                        return reset_response();
                    }
                }
            }
        }
    };
    finish(&app, incoming, decision, response).await
}

/// Runs the handler under the matching faults; `None` means "close the connection".
async fn run_with_faults(
    app: &App,
    incoming: &Incoming,
    req: Request,
    next: Next,
) -> Option<Response> {
    let verdict = app.lock_faults().check(&incoming.method, &incoming.path);
    if verdict.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(verdict.delay_ms)).await;
    }
    if let Some(executed) = verdict.reset {
        if executed {
            let _ = next.run(req).await;
        }
        return None;
    }
    if let Some((status, retry_after)) = verdict.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = ApiError::for_status(status).into_response();
        if let Some(ra) = retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, ra.into());
        }
        return Some(r);
    }
    let r = next.run(req).await;
    Some(if verdict.drop_response {
        ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
    } else {
        r
    })
}

/// Adds `request_id` to error bodies and the rate-limit / request-id headers, logs, persists.
async fn finish(app: &App, incoming: Incoming, decision: Decision, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let mut bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    if parts.status.as_u16() >= 400
        && let Some(Value::Object(mut map)) = json_or_none(&bytes)
        && map.contains_key("id")
    {
        map.insert("request_id".into(), Value::String(incoming.rid.clone()));
        if let Ok(v) = serde_json::to_vec(&map) {
            bytes = v.into();
        }
    }
    let h = &mut parts.headers;
    h.remove(header::CONTENT_LENGTH);
    h.insert("ratelimit-limit", decision.limit.into());
    h.insert("ratelimit-remaining", decision.remaining.into());
    h.insert("ratelimit-reset", decision.reset.into());
    if let Some(ra) = decision.retry_after
        && !decision.allowed
    {
        h.insert(header::RETRY_AFTER, ra.into());
    }
    if let Ok(v) = HeaderValue::from_str(&incoming.rid) {
        h.insert("x-request-id", v);
    }
    let status = parts.status.as_u16();
    tracing::debug!(method = %incoming.method, path = %incoming.path, status, request_id = %incoming.rid, "request");
    app.record(incoming.record(status, bytes.clone()));
    app.persist();
    Response::from_parts(parts, Body::from(bytes))
}
