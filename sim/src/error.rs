//! Error types: `SimError` for the library boundary, `ApiError` for DigitalOcean-style HTTP errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;

/// Failures starting or running the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot bind 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("state file {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("backing: {0}")]
    Backing(#[from] crate::backing::BackingError),
    #[error("not found: {0}")]
    NotFound(String),
}

/// An error answered in DigitalOcean's body format `{"id", "message", "request_id"}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub id: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            id,
            message: message.into(),
        }
    }
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "The resource you were accessing could not be found.",
        )
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            message,
        )
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unable to authenticate you.",
        )
    }
    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "API Rate limit exceeded.",
        )
    }
    pub fn pending_event() -> Self {
        Self::unprocessable("Droplet already has a pending event.")
    }
    /// The error body for an arbitrary status (used by fault injection).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            429 => Self::too_many_requests(),
            500 => Self::new(status, "server_error", "Server Error"),
            502 => Self::new(status, "bad_gateway", "Bad Gateway"),
            503 => Self::new(status, "service_unavailable", "Service Unavailable"),
            504 => Self::new(status, "gateway_timeout", "Gateway Timeout"),
            _ => Self::new(status, "error", "Simulated error"),
        }
    }
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"id": self.id, "message": self.message})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
