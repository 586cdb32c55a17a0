//! `/v2/tags`: list, create, get, delete, assign/unassign resources.

use super::{AppState, Query, json, no_content, parse, valid_tag_name};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Page, paginate};
use crate::views;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

pub async fn list(State(app): AppState, q: Query) -> ApiResult<Response> {
    let page = Page::from_query(&q)?;
    let items = app.with_store(|s| {
        s.state
            .tags
            .iter()
            .map(|t| views::tag(&s.state, t, &app.base_url))
            .collect()
    });
    Ok(json(
        StatusCode::OK,
        paginate("tags", items, page, &app.base_url, "/v2/tags", &q),
    ))
}

#[derive(Deserialize)]
struct TagBody {
    name: String,
}

pub async fn create(State(app): AppState, body: Bytes) -> ApiResult<Response> {
    let b: TagBody = parse(&body)?;
    if !valid_tag_name(&b.name) {
        return Err(ApiError::unprocessable(format!(
            "tag name {:?} is invalid: use letters, digits, '_', '-' and ':' (at most 255 characters)",
            b.name
        )));
    }
    app.with_store(|s| {
        s.state.tags.insert(b.name.clone());
        s.touch();
        Ok(json(
            StatusCode::CREATED,
            json!({"tag": views::tag(&s.state, &b.name, &app.base_url)}),
        ))
    })
}

pub async fn get(State(app): AppState, Path(tag): Path<String>) -> ApiResult<Response> {
    app.with_store(|s| {
        if !s.state.tags.contains(&tag) {
            return Err(ApiError::not_found());
        }
        Ok(json(
            StatusCode::OK,
            json!({"tag": views::tag(&s.state, &tag, &app.base_url)}),
        ))
    })
}

pub async fn delete(State(app): AppState, Path(tag): Path<String>) -> ApiResult<Response> {
    app.with_store(|s| {
        if !s.state.tags.remove(&tag) {
            return Err(ApiError::not_found());
        }
        for d in s.state.droplets.values_mut() {
            d.tags.retain(|t| t != &tag);
        }
        for x in s.state.snapshots.values_mut() {
            x.tags.retain(|t| t != &tag);
        }
        for f in &mut s.state.firewalls {
            f.tags.retain(|t| t != &tag);
        }
        s.touch();
        Ok(no_content())
    })
}

#[derive(Deserialize)]
struct Resource {
    resource_id: String,
    resource_type: String,
}

#[derive(Deserialize)]
struct ResourcesBody {
    resources: Vec<Resource>,
}

fn change(app: &crate::server::App, tag: &str, body: &[u8], add: bool) -> ApiResult<Response> {
    let b: ResourcesBody = parse(body)?;
    app.with_store(|s| {
        if !s.state.tags.contains(tag) {
            return Err(ApiError::not_found());
        }
        // Validate everything first so a bad entry changes nothing.
        for r in &b.resources {
            let id: Option<u64> = r.resource_id.parse().ok();
            let exists = match r.resource_type.as_str() {
                "droplet" => id.is_some_and(|i| s.state.droplets.contains_key(&i)),
                "image" => id.is_some_and(|i| s.state.snapshots.contains_key(&i)),
                "volume" | "volume_snapshot" => false,
                other => {
                    return Err(ApiError::unprocessable(format!(
                        "resource_type must be droplet, image, volume or volume_snapshot, got {other:?}"
                    )));
                }
            };
            if !exists {
                return Err(ApiError::not_found());
            }
        }
        for r in &b.resources {
            let Ok(id) = r.resource_id.parse::<u64>() else { continue };
            let tags = match r.resource_type.as_str() {
                "droplet" => s.state.droplets.get_mut(&id).map(|d| &mut d.tags),
                _ => s.state.snapshots.get_mut(&id).map(|x| &mut x.tags),
            };
            if let Some(tags) = tags {
                if add && !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_string());
                } else if !add {
                    tags.retain(|t| t != tag);
                }
            }
        }
        s.touch();
        Ok(no_content())
    })
}

pub async fn assign(
    State(app): AppState,
    Path(tag): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    change(&app, &tag, &body, true)
}

pub async fn unassign(
    State(app): AppState,
    Path(tag): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    change(&app, &tag, &body, false)
}
