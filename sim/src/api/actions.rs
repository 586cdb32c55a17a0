//! Droplet actions (`/v2/droplets/{id}/actions`, by tag) and `/v2/actions`.

use super::droplets::resolve_image;
use super::{AppState, Query, int_id, json, parse, valid_droplet_name};
use crate::catalog;
use crate::error::{ApiError, ApiResult};
use crate::model::{Action, Droplet, DropletStatus, Effect, Snapshot};
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

#[derive(Deserialize)]
struct ActionBody {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    image: Option<Value>,
    size: Option<String>,
}

const KNOWN: &[&str] = &[
    "enable_backups",
    "disable_backups",
    "reboot",
    "power_cycle",
    "shutdown",
    "power_off",
    "power_on",
    "restore",
    "password_reset",
    "resize",
    "rebuild",
    "rename",
    "change_kernel",
    "enable_ipv6",
    "snapshot",
    "change_backup_policy",
];
const BY_TAG: &[&str] = &[
    "power_cycle",
    "power_on",
    "power_off",
    "shutdown",
    "snapshot",
];

/// Copies the droplet's data now and records a pending snapshot image.
fn prepare_snapshot(
    s: &mut Store,
    droplet: &Droplet,
    name: Option<String>,
) -> ApiResult<(Effect, Op<'static>)> {
    let id = droplet.id;
    let image_id = s.state.next_image_id;
    s.state.next_image_id += 1;
    let copied = s.machines.snapshot(id, image_id).map_err(|e| {
        tracing::warn!(droplet = id, error = %e, "snapshot copy failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "snapshot failed",
        )
    })?;
    let disk = catalog::size(&droplet.size_slug).map_or(25, |z| z.disk);
    // Without a data dir, assume 6 % of the disk is used.
    let gb = copied.map_or(disk as f64 * 0.06, |g| g.max(0.01));
    let gb = (gb * 100.0).round() / 100.0;
    let name =
        name.unwrap_or_else(|| format!("{}-{}", droplet.name, chrono::Utc::now().timestamp()));
    s.state.snapshots.insert(
        image_id,
        Snapshot {
            id: image_id,
            name,
            droplet_id: id,
            region: droplet.region.clone(),
            created_at: chrono::Utc::now(),
            min_disk_size: disk,
            size_gigabytes: gb,
            tags: Vec::new(),
            available: false,
        },
    );
    Ok((Effect::Snapshot { image_id }, Op::Snapshot { gb }))
}

/// Starts one action on droplet `id`.
fn start(s: &mut Store, id: u64, b: &ActionBody) -> ApiResult<Action> {
    let droplet = s
        .state
        .droplets
        .get(&id)
        .ok_or_else(ApiError::not_found)?
        .clone();
    if s.state.pending_action(id).is_some() {
        return Err(ApiError::pending_event());
    }
    let kind = b.kind.as_str();
    let (effect, op) = match kind {
        "power_off" => (Effect::PowerOff, Op::Power),
        "shutdown" => (Effect::Shutdown, Op::Power),
        "power_on" => (Effect::PowerOn, Op::Power),
        "reboot" => (Effect::Reboot, Op::Reboot),
        "power_cycle" => (Effect::PowerCycle, Op::Reboot),
        "rename" => {
            let name = b
                .name
                .clone()
                .ok_or_else(|| ApiError::unprocessable("rename requires name"))?;
            if !valid_droplet_name(&name) {
                return Err(ApiError::unprocessable(format!("name {name:?} is invalid")));
            }
            (Effect::Rename { name }, Op::Rename)
        }
        "resize" => {
            let slug = b
                .size
                .clone()
                .ok_or_else(|| ApiError::unprocessable("resize requires size"))?;
            if catalog::size(&slug).is_none() {
                return Err(ApiError::unprocessable(format!("size {slug:?} is invalid")));
            }
            if droplet.status != DropletStatus::Off {
                return Err(ApiError::unprocessable(
                    "Droplet is currently on. Please power it off to run this event.",
                ));
            }
            (Effect::Resize { size: slug }, Op::Resize)
        }
        "rebuild" | "restore" => {
            let image = b
                .image
                .as_ref()
                .ok_or_else(|| ApiError::unprocessable(format!("{kind} requires image")))?;
            let img = resolve_image(s, image)?;
            if kind == "restore" && img.snapshot.is_none() {
                return Err(ApiError::unprocessable(
                    "restore requires a snapshot or backup image id",
                ));
            }
            (
                Effect::Rebuild {
                    image: img.json,
                    snapshot: img.snapshot,
                },
                Op::Rebuild {
                    gb: img.snapshot_gb,
                },
            )
        }
        "snapshot" => prepare_snapshot(s, &droplet, b.name.clone())?,
        other if KNOWN.contains(&other) => {
            return Err(ApiError::unprocessable(format!(
                "action type {other:?} is not supported by the simulator"
            )));
        }
        other => {
            return Err(ApiError::unprocessable(format!(
                "invalid action type {other:?}"
            )));
        }
    };
    s.begin_action(id, kind, effect, op)
}

pub async fn post(
    State(app): AppState,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = int_id(&id)?;
    let b: ActionBody = parse(&body)?;
    app.with_store(|s| {
        let a = start(s, id, &b)?;
        Ok(json(
            StatusCode::CREATED,
            json!({"action": views::action(&a)}),
        ))
    })
}

pub async fn post_by_tag(State(app): AppState, q: Query, body: Bytes) -> ApiResult<Response> {
    let tag = q
        .get("tag_name")
        .cloned()
        .ok_or_else(|| ApiError::unprocessable("tag_name is required"))?;
    let b: ActionBody = parse(&body)?;
    if !BY_TAG.contains(&b.kind.as_str()) {
        return Err(ApiError::unprocessable(format!(
            "action type {:?} cannot be run by tag",
            b.kind
        )));
    }
    app.with_store(|s| {
        let ids: Vec<u64> = s
            .state
            .droplets
            .values()
            .filter(|d| d.tags.contains(&tag))
            .map(|d| d.id)
            .collect();
        if ids.iter().any(|id| s.state.pending_action(*id).is_some()) {
            return Err(ApiError::pending_event());
        }
        let mut actions = Vec::new();
        for id in ids {
            actions.push(views::action(&start(s, id, &b)?));
        }
        Ok(json(StatusCode::CREATED, json!({"actions": actions})))
    })
}

fn list_actions(
    app: &crate::server::App,
    q: &Query,
    droplet: Option<u64>,
    path: &str,
) -> ApiResult<Response> {
    let page = Page::from_query(q)?;
    let body = app.with_store(|s| {
        if let Some(id) = droplet
            && !s.state.droplets.contains_key(&id)
        {
            return Err(ApiError::not_found());
        }
        let matching: Vec<&Action> = s
            .state
            .actions
            .values()
            .rev()
            .filter(|a| droplet.is_none_or(|d| a.droplet_id == d))
            .collect();
        let render = |a: &&Action| views::action(a);
        Ok(paginate_by(
            "actions",
            &matching,
            render,
            page,
            &app.base_url,
            path,
            q,
        ))
    })?;
    Ok(json(StatusCode::OK, body))
}

pub async fn list_for_droplet(
    State(app): AppState,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let id = int_id(&id)?;
    list_actions(&app, &q, Some(id), &format!("/v2/droplets/{id}/actions"))
}

pub async fn list(State(app): AppState, q: Query) -> ApiResult<Response> {
    list_actions(&app, &q, None, "/v2/actions")
}

pub async fn get(State(app): AppState, Path(aid): Path<String>) -> ApiResult<Response> {
    let aid = int_id(&aid)?;
    app.with_store(|s| {
        let a = s.state.actions.get(&aid).ok_or_else(ApiError::not_found)?;
        Ok(json(StatusCode::OK, json!({"action": views::action(a)})))
    })
}

pub async fn get_for_droplet(
    State(app): AppState,
    Path((id, aid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (id, aid) = (int_id(&id)?, int_id(&aid)?);
    app.with_store(|s| {
        let a = s
            .state
            .actions
            .get(&aid)
            .filter(|a| a.droplet_id == id)
            .ok_or_else(ApiError::not_found)?;
        Ok(json(StatusCode::OK, json!({"action": views::action(a)})))
    })
}
