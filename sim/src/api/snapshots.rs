//! Snapshots (`/v2/snapshots`, `/v2/droplets/{id}/snapshots`) and images (`/v2/images`).

use super::{AppState, Query, int_id, json, no_content};
use crate::catalog;
use crate::error::{ApiError, ApiResult};
use crate::model::Snapshot;
use crate::pagination::{Page, paginate};
use crate::store::Store;
use crate::views;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

fn available(s: &Store) -> impl Iterator<Item = &Snapshot> {
    s.state.snapshots.values().filter(|x| x.available)
}

pub async fn list_for_droplet(
    State(app): AppState,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let id = int_id(&id)?;
    let page = Page::from_query(&q)?;
    let items = app.with_store(|s| {
        if !s.state.droplets.contains_key(&id) {
            return Err(ApiError::not_found());
        }
        Ok(available(s)
            .filter(|x| x.droplet_id == id)
            .map(views::droplet_snapshot)
            .collect())
    })?;
    let path = format!("/v2/droplets/{id}/snapshots");
    Ok(json(
        StatusCode::OK,
        paginate("snapshots", items, page, &app.base_url, &path, &q),
    ))
}

pub async fn list(State(app): AppState, q: Query) -> ApiResult<Response> {
    let page = Page::from_query(&q)?;
    let volume = match q.get("resource_type").map(String::as_str) {
        None | Some("droplet") => false,
        Some("volume") => true,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "resource_type must be droplet or volume, got {other:?}"
            )));
        }
    };
    let items: Vec<Value> = if volume {
        Vec::new()
    } else {
        app.with_store(|s| available(s).map(views::snapshot).collect())
    };
    Ok(json(
        StatusCode::OK,
        paginate("snapshots", items, page, &app.base_url, "/v2/snapshots", &q),
    ))
}

pub async fn get(State(app): AppState, Path(sid): Path<String>) -> ApiResult<Response> {
    let sid = int_id(&sid)?;
    app.with_store(|s| {
        let snap = available(s)
            .find(|x| x.id == sid)
            .ok_or_else(ApiError::not_found)?;
        Ok(json(
            StatusCode::OK,
            json!({"snapshot": views::snapshot(snap)}),
        ))
    })
}

fn remove_snapshot(s: &mut Store, id: u64) -> ApiResult<()> {
    if !s.state.snapshots.get(&id).is_some_and(|x| x.available) {
        return Err(ApiError::not_found());
    }
    s.state.snapshots.remove(&id);
    for d in s.state.droplets.values_mut() {
        d.snapshot_ids.retain(|x| *x != id);
    }
    s.machines.delete_snapshot(id);
    s.touch();
    Ok(())
}

pub async fn delete(State(app): AppState, Path(sid): Path<String>) -> ApiResult<Response> {
    let sid = int_id(&sid)?;
    app.with_store(|s| remove_snapshot(s, sid))?;
    Ok(no_content())
}

pub async fn list_images(State(app): AppState, q: Query) -> ApiResult<Response> {
    let page = Page::from_query(&q)?;
    let private = q.get("private").is_some_and(|p| p == "true");
    let kind = q.get("type").map(String::as_str);
    let tag = q.get("tag_name");
    if let Some(k) = kind
        && k != "distribution"
        && k != "application"
    {
        return Err(ApiError::unprocessable(format!(
            "type must be distribution or application, got {k:?}"
        )));
    }
    let items: Vec<Value> = app.with_store(|s| {
        let mut items = Vec::new();
        if !private && tag.is_none() && kind != Some("application") {
            items.extend(catalog::DISTROS.iter().map(catalog::distro_json));
        }
        if kind.is_none() {
            items.extend(
                available(s)
                    .filter(|x| tag.is_none_or(|t| x.tags.contains(t)))
                    .map(views::snapshot_image),
            );
        }
        items
    });
    Ok(json(
        StatusCode::OK,
        paginate("images", items, page, &app.base_url, "/v2/images", &q),
    ))
}

pub async fn get_image(State(app): AppState, Path(iid): Path<String>) -> ApiResult<Response> {
    app.with_store(|s| {
        let image = match iid.parse::<u64>() {
            Ok(id) => available(s)
                .find(|x| x.id == id)
                .map(views::snapshot_image)
                .or_else(|| catalog::distro_by_id(id).map(catalog::distro_json)),
            Err(_) => catalog::distro_by_slug(&iid).map(catalog::distro_json),
        };
        let image = image.ok_or_else(ApiError::not_found)?;
        Ok(json(StatusCode::OK, json!({"image": image})))
    })
}

pub async fn delete_image(State(app): AppState, Path(iid): Path<String>) -> ApiResult<Response> {
    let id = int_id(&iid)?;
    app.with_store(|s| {
        if catalog::distro_by_id(id).is_some() {
            return Err(ApiError::unprocessable("public images cannot be deleted"));
        }
        remove_snapshot(s, id)
    })?;
    Ok(no_content())
}
