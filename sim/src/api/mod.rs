//! The `/v2` routes and the `/_sim` admin routes, plus shared handler helpers.

mod account;
mod actions;
mod admin;
mod droplets;
mod firewalls;
mod snapshots;
mod tags;

use crate::error::{ApiError, ApiResult};
use crate::server::App;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

pub type AppState = axum::extract::State<Arc<App>>;
pub type Query = axum::extract::Query<std::collections::HashMap<String, String>>;

/// Builds the whole router.
pub fn router(app: Arc<App>) -> Router {
    let v2 = Router::new()
        .route("/v2/account", get(account::get_account))
        .route(
            "/v2/account/keys",
            get(account::list_keys).post(account::create_key),
        )
        .route(
            "/v2/account/keys/{key}",
            get(account::get_key)
                .put(account::update_key)
                .delete(account::delete_key),
        )
        .route(
            "/v2/droplets",
            get(droplets::list)
                .post(droplets::create)
                .delete(droplets::delete_by_tag),
        )
        .route("/v2/droplets/actions", post(actions::post_by_tag))
        .route(
            "/v2/droplets/{id}",
            get(droplets::get).delete(droplets::delete),
        )
        .route(
            "/v2/droplets/{id}/actions",
            get(actions::list_for_droplet).post(actions::post),
        )
        .route(
            "/v2/droplets/{id}/actions/{aid}",
            get(actions::get_for_droplet),
        )
        .route(
            "/v2/droplets/{id}/snapshots",
            get(snapshots::list_for_droplet),
        )
        .route(
            "/v2/droplets/{id}/firewalls",
            get(firewalls::list_for_droplet),
        )
        .route("/v2/actions", get(actions::list))
        .route("/v2/actions/{aid}", get(actions::get))
        .route("/v2/snapshots", get(snapshots::list))
        .route(
            "/v2/snapshots/{sid}",
            get(snapshots::get).delete(snapshots::delete),
        )
        .route("/v2/images", get(snapshots::list_images))
        .route(
            "/v2/images/{iid}",
            get(snapshots::get_image).delete(snapshots::delete_image),
        )
        .route("/v2/tags", get(tags::list).post(tags::create))
        .route("/v2/tags/{tag}", get(tags::get).delete(tags::delete))
        .route(
            "/v2/tags/{tag}/resources",
            post(tags::assign).delete(tags::unassign),
        )
        .route(
            "/v2/firewalls",
            get(firewalls::list).post(firewalls::create),
        )
        .route(
            "/v2/firewalls/{fid}",
            get(firewalls::get)
                .put(firewalls::update)
                .delete(firewalls::delete),
        )
        .route(
            "/v2/firewalls/{fid}/rules",
            post(firewalls::add_rules).delete(firewalls::remove_rules),
        )
        .route(
            "/v2/firewalls/{fid}/droplets",
            post(firewalls::add_droplets).delete(firewalls::remove_droplets),
        )
        .route(
            "/v2/firewalls/{fid}/tags",
            post(firewalls::add_tags).delete(firewalls::remove_tags),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::http::api_layer,
        ));
    Router::new()
        .merge(admin::router())
        .merge(v2)
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed.",
    )
}

/// Parses a JSON request body: 400 for malformed JSON, 422 for a wrong shape.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable(e.to_string())
        } else {
            ApiError::bad_request(format!("unable to parse request body: {e}"))
        }
    })
}

pub fn json(status: StatusCode, value: Value) -> Response {
    (status, axum::Json(value)).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Parses an integer path id; anything else is 404.
pub fn int_id(raw: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// `^[a-zA-Z0-9]?[a-z0-9A-Z.\-]*[a-z0-9A-Z]$`, at most 255 characters.
pub fn valid_droplet_name(name: &str) -> bool {
    name.len() <= 255
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// `^[a-zA-Z0-9_\-\:]+$`, at most 255 characters.
pub fn valid_tag_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns() {
        assert!(valid_droplet_name("web-1.example.com"));
        assert!(!valid_droplet_name("web_1"));
        assert!(!valid_droplet_name("web-"));
        assert!(!valid_droplet_name(""));
        assert!(!valid_droplet_name(&"a".repeat(256)));
        assert!(valid_tag_name("env:prod_1-a"));
        assert!(!valid_tag_name("a b"));
    }
}
