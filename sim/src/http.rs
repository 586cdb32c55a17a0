//! The `/v2` request pipeline: request ids, bearer auth, rate limits, faults and the request log.

use crate::error::ApiError;
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
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub request_body: Option<Value>,
    pub response_body: Option<Value>,
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

/// Middleware wrapped around every `/v2` route.
pub async fn api_layer(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let rid = request_id();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let token = bearer(&req).filter(|t| app.token_ok(t));
    let (parts, body) = req.into_parts();
    let req_bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => axum::body::Bytes::new(),
    };
    let req_json = json_or_none(&req_bytes);
    let req = Request::from_parts(parts, Body::from(req_bytes));

    let (decision, response) = match token {
        None => (
            app.lock_limiter().uncounted(now_unix as u64),
            ApiError::unauthorized().into_response(),
        ),
        Some(token) => {
            let decision = app
                .lock_limiter()
                .check(&token, app.origin.elapsed(), now_unix);
            let response = if !decision.allowed {
                ApiError::too_many_requests().into_response()
            } else {
                let verdict = app.lock_faults().check(&method, &path);
                if verdict.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(verdict.delay_ms)).await;
                }
                match verdict.status {
                    Some((status, retry_after)) => {
                        let status = StatusCode::from_u16(status)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        let mut r = ApiError::for_status(status).into_response();
                        if let Some(ra) = retry_after {
                            r.headers_mut().insert(header::RETRY_AFTER, ra.into());
                        }
                        r
                    }
                    None => {
                        let r = next.run(req).await;
                        if verdict.drop_response {
                            ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
                        } else {
                            r
                        }
                    }
                }
            };
            (decision, response)
        }
    };

    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut resp_json = json_or_none(&bytes);
    let mut bytes = bytes.to_vec();
    if parts.status.as_u16() >= 400
        && let Some(Value::Object(map)) = &mut resp_json
        && map.contains_key("id")
    {
        map.insert("request_id".into(), Value::String(rid.clone()));
        bytes = serde_json::to_vec(&map).unwrap_or(bytes);
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
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert("x-request-id", v);
    }
    app.record(RecordedRequest {
        request_id: rid,
        method,
        path,
        query,
        status: parts.status.as_u16(),
        request_body: req_json,
        response_body: resp_json,
    });
    app.persist();
    Response::from_parts(parts, Body::from(bytes))
}
