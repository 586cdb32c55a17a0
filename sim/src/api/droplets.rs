//! `/v2/droplets`: list, create (single and multi), get, delete, delete by tag.

use super::account::{DROPLET_LIMIT, resolve_keys};
use super::{AppState, Query, int_id, json, no_content, parse, valid_droplet_name, valid_tag_name};
use crate::catalog;
use crate::error::{ApiError, ApiResult};
use crate::model::{Droplet, DropletStatus, Effect};
use crate::pagination::{Page, paginate_by};
use crate::store::Store;
use crate::timing::Op;
use crate::views;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_VPC: &str = "5a4981aa-9653-4bd1-bef5-d6bff52042e4";
const MAX_USER_DATA: usize = 64 * 1024;

pub async fn list(State(app): AppState, q: Query) -> ApiResult<Response> {
    let page = Page::from_query(&q)?;
    let tag = q.get("tag_name").cloned();
    let name = q.get("name").cloned();
    if tag.is_some() && (name.is_some() || q.contains_key("type")) {
        return Err(ApiError::unprocessable(
            "tag_name cannot be combined with name or type",
        ));
    }
    if let Some(t) = q.get("type")
        && t != "droplets"
        && t != "gpus"
    {
        return Err(ApiError::unprocessable(format!(
            "type must be droplets or gpus, got {t:?}"
        )));
    }
    let gpus = q.get("type").is_some_and(|t| t == "gpus");
    let body = app.with_store(|s| {
        let matching: Vec<&Droplet> = s
            .state
            .droplets
            .values()
            .filter(|_| !gpus)
            .filter(|d| tag.as_ref().is_none_or(|t| d.tags.contains(t)))
            .filter(|d| name.as_ref().is_none_or(|n| &d.name == n))
            .collect();
        let render = |d: &&Droplet| views::droplet(d);
        paginate_by(
            "droplets",
            &matching,
            render,
            page,
            &app.base_url,
            "/v2/droplets",
            &q,
        )
    });
    Ok(json(StatusCode::OK, body))
}

pub async fn get(State(app): AppState, Path(id): Path<String>) -> ApiResult<Response> {
    let id = int_id(&id)?;
    app.with_store(|s| {
        let d = s.state.droplets.get(&id).ok_or_else(ApiError::not_found)?;
        Ok(json(StatusCode::OK, json!({"droplet": views::droplet(d)})))
    })
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<String>,
    names: Option<Vec<String>>,
    size: String,
    image: Value,
    region: Option<String>,
    #[serde(default)]
    ssh_keys: Vec<Value>,
    #[serde(default)]
    tags: Vec<String>,
    user_data: Option<String>,
    #[serde(default)]
    ipv6: bool,
    #[serde(default)]
    monitoring: bool,
    #[serde(default)]
    backups: bool,
    vpc_uuid: Option<String>,
}

/// A resolved image: its JSON, and the snapshot to restore if it is one.
pub struct ResolvedImage {
    pub json: Value,
    pub snapshot: Option<u64>,
    pub snapshot_gb: f64,
    pub min_disk: u64,
    pub region: Option<String>,
}

/// Resolves an image given as a slug or an integer id (distribution or snapshot).
pub fn resolve_image(s: &Store, image: &Value) -> ApiResult<ResolvedImage> {
    let invalid =
        || ApiError::unprocessable("You specified an invalid image for Droplet creation.");
    let distro = match image {
        Value::String(slug) => catalog::distro_by_slug(slug),
        Value::Number(n) => {
            let id = n.as_u64().ok_or_else(invalid)?;
            if let Some(snap) = s.state.snapshots.get(&id).filter(|x| x.available) {
                return Ok(ResolvedImage {
                    json: views::snapshot_image(snap),
                    snapshot: Some(id),
                    snapshot_gb: snap.size_gigabytes,
                    min_disk: snap.min_disk_size,
                    region: Some(snap.region.clone()),
                });
            }
            catalog::distro_by_id(id)
        }
        _ => None,
    };
    let d = distro.ok_or_else(invalid)?;
    Ok(ResolvedImage {
        json: catalog::distro_json(d),
        snapshot: None,
        snapshot_gb: 0.0,
        min_disk: 7,
        region: None,
    })
}

pub async fn create(State(app): AppState, body: Bytes) -> ApiResult<Response> {
    let b: CreateBody = parse(&body)?;
    let (names, multi) = match (&b.name, &b.names) {
        (Some(n), None) => (vec![n.clone()], false),
        (None, Some(ns)) => (ns.clone(), true),
        _ => {
            return Err(ApiError::unprocessable(
                "the body must contain exactly one of name or names",
            ));
        }
    };
    if names.is_empty() || names.len() > 10 {
        return Err(ApiError::unprocessable("names must contain 1 to 10 names"));
    }
    if let Some(bad) = names.iter().find(|n| !valid_droplet_name(n)) {
        return Err(ApiError::unprocessable(format!(
            "name {bad:?} is invalid: only letters, digits, '.' and '-' are allowed and it must end with a letter or digit (at most 255 characters)"
        )));
    }
    let size = catalog::size(&b.size).ok_or_else(|| {
        ApiError::unprocessable("You specified an invalid size for Droplet creation.")
    })?;
    if let Some(r) = &b.region
        && !catalog::region_known(r)
    {
        return Err(ApiError::unprocessable(
            "You specified an invalid region for Droplet creation.",
        ));
    }
    if let Some(bad) = b.tags.iter().find(|t| !valid_tag_name(t)) {
        return Err(ApiError::unprocessable(format!(
            "tag name {bad:?} is invalid"
        )));
    }
    if b.user_data
        .as_ref()
        .is_some_and(|u| u.len() > MAX_USER_DATA)
    {
        return Err(ApiError::unprocessable("user_data must be at most 64 KiB"));
    }
    app.with_store(|s| {
        let image = resolve_image(s, &b.image)?;
        let region = b
            .region
            .clone()
            .or(image.region.clone())
            .unwrap_or_else(|| catalog::DEFAULT_REGION.to_string());
        if let Some(img_region) = &image.region
            && img_region != &region
        {
            return Err(ApiError::unprocessable(format!(
                "image is not available in region {region}"
            )));
        }
        if image.min_disk > size.disk {
            return Err(ApiError::unprocessable(format!(
                "size {} is too small for the image (needs {} GB disk)",
                size.slug, image.min_disk
            )));
        }
        let keys = resolve_keys(&s.state.ssh_keys, &b.ssh_keys)?;
        if s.state.droplets.len() + names.len() > DROPLET_LIMIT {
            return Err(ApiError::unprocessable(format!(
                "creating this/these droplet(s) will exceed your droplet limit ({DROPLET_LIMIT})"
            )));
        }
        for t in &b.tags {
            s.state.tags.insert(t.clone());
        }
        let mut droplets = Vec::new();
        let mut links = Vec::new();
        for name in &names {
            let id = s.state.next_droplet_id;
            s.state.next_droplet_id += 1;
            let addr = s.state.free_addr();
            s.state.droplets.insert(
                id,
                Droplet {
                    id,
                    name: name.clone(),
                    size_slug: size.slug.to_string(),
                    region: region.clone(),
                    image: image.json.clone(),
                    status: DropletStatus::New,
                    created_at: chrono::Utc::now(),
                    tags: b.tags.clone(),
                    snapshot_ids: Vec::new(),
                    user_data: b.user_data.clone(),
                    ssh_keys: keys.clone(),
                    addr,
                    ipv6: b.ipv6,
                    monitoring: b.monitoring,
                    backups: b.backups,
                    vpc_uuid: b.vpc_uuid.clone().unwrap_or_else(|| DEFAULT_VPC.to_string()),
                },
            );
            let op = Op::Create {
                restore_gb: image.snapshot.map(|_| image.snapshot_gb),
            };
            let effect = Effect::Create {
                restore_from: image.snapshot,
            };
            let action = s.begin_action(id, "create", effect, op)?;
            links.push(json!({"id": action.id, "rel": "create", "href": format!("{}/v2/actions/{}", app.base_url, action.id)}));
            droplets.push(views::droplet(&s.state.droplets[&id]));
        }
        let body = if multi {
            json!({"droplets": droplets, "links": {"actions": links}})
        } else {
            json!({"droplet": droplets[0], "links": {"actions": links}})
        };
        Ok(json(StatusCode::ACCEPTED, body))
    })
}

pub async fn delete(State(app): AppState, Path(id): Path<String>) -> ApiResult<Response> {
    let id = int_id(&id)?;
    app.with_store(|s| {
        if s.destroy_droplet(id) {
            Ok(no_content())
        } else {
            Err(ApiError::not_found())
        }
    })
}

pub async fn delete_by_tag(State(app): AppState, q: Query) -> ApiResult<Response> {
    let tag = q
        .get("tag_name")
        .ok_or_else(|| ApiError::unprocessable("tag_name is required to delete droplets"))?;
    app.with_store(|s| {
        let ids: Vec<u64> = s
            .state
            .droplets
            .values()
            .filter(|d| d.tags.contains(tag))
            .map(|d| d.id)
            .collect();
        for id in ids {
            s.destroy_droplet(id);
        }
        Ok(no_content())
    })
}
