//! Admin routes outside `/v2` (no auth, no rate limit): faults, request log, droplet kill.

use super::{AppState, json, no_content, parse};
use crate::error::{ApiError, ApiResult};
use crate::faults::Fault;
use crate::server::App;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/_sim/faults",
            get(list_faults).post(add_fault).delete(reset_faults),
        )
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/droplets/{key}/kill", post(kill))
}

async fn list_faults(State(app): AppState) -> Response {
    json(StatusCode::OK, json!({"faults": app.faults()}))
}

async fn add_fault(State(app): AppState, body: Bytes) -> ApiResult<Response> {
    let fault: Fault = parse(&body)?;
    app.add_fault(fault.clone());
    Ok(json(StatusCode::CREATED, json!({"fault": fault})))
}

async fn reset_faults(State(app): AppState) -> Response {
    app.reset_faults();
    no_content()
}

async fn requests(State(app): AppState) -> Response {
    json(StatusCode::OK, json!({"requests": app.requests()}))
}

async fn clear_requests(State(app): AppState) -> Response {
    app.clear_requests();
    no_content()
}

async fn kill(State(app): AppState, Path(key): Path<String>) -> ApiResult<Response> {
    match app.kill_droplet(&key) {
        Ok(was_running) => Ok(json(StatusCode::OK, json!({"killed": was_running}))),
        Err(_) => Err(ApiError::not_found()),
    }
}
