//! `/v2/account` and `/v2/account/keys`.

use super::{AppState, Query, json, no_content, parse};
use crate::error::{ApiError, ApiResult};
use crate::fingerprint::ssh_fingerprint;
use crate::model::SshKey;
use crate::pagination::{Page, paginate};
use crate::views;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

/// The account's droplet limit (creates beyond it get 422).
pub const DROPLET_LIMIT: usize = 500;

pub async fn get_account(_: AppState) -> Response {
    json(
        StatusCode::OK,
        json!({"account": {
            "droplet_limit": DROPLET_LIMIT,
            "floating_ip_limit": 3,
            "email": "sim@example.com",
            "name": "Simulated Account",
            "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            "email_verified": true,
            "status": "active",
            "status_message": "",
        }}),
    )
}

fn find_key<'a>(keys: impl Iterator<Item = &'a SshKey>, ident: &str) -> Option<u64> {
    let mut keys = keys;
    keys.find(|k| k.id.to_string() == ident || k.fingerprint == ident)
        .map(|k| k.id)
}

pub async fn list_keys(axum::extract::State(app): AppState, q: Query) -> ApiResult<Response> {
    let page = Page::from_query(&q)?;
    let items = app.with_store(|s| s.state.ssh_keys.values().map(views::ssh_key).collect());
    Ok(json(
        StatusCode::OK,
        paginate(
            "ssh_keys",
            items,
            page,
            &app.base_url,
            "/v2/account/keys",
            &q,
        ),
    ))
}

#[derive(Deserialize)]
struct KeyBody {
    name: String,
    public_key: String,
}

pub async fn create_key(axum::extract::State(app): AppState, body: Bytes) -> ApiResult<Response> {
    let b: KeyBody = parse(&body)?;
    if b.name.trim().is_empty() {
        return Err(ApiError::unprocessable("name is required"));
    }
    let fingerprint = ssh_fingerprint(&b.public_key).ok_or_else(|| {
        ApiError::unprocessable(
            "Key invalid type, we support 'ssh-rsa', 'ssh-ed25519', 'ecdsa-sha2-*'",
        )
    })?;
    app.with_store(|s| {
        if s.state
            .ssh_keys
            .values()
            .any(|k| k.fingerprint == fingerprint)
        {
            return Err(ApiError::unprocessable(
                "SSH Key is already in use on your account",
            ));
        }
        let id = s.state.next_key_id;
        s.state.next_key_id += 1;
        let key = SshKey {
            id,
            name: b.name,
            public_key: b.public_key.trim().to_string(),
            fingerprint,
        };
        let v = views::ssh_key(&key);
        s.state.ssh_keys.insert(id, key);
        s.touch();
        Ok(json(StatusCode::CREATED, json!({"ssh_key": v})))
    })
}

pub async fn get_key(
    axum::extract::State(app): AppState,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    app.with_store(|s| {
        let id = find_key(s.state.ssh_keys.values(), &ident).ok_or_else(ApiError::not_found)?;
        Ok(json(
            StatusCode::OK,
            json!({"ssh_key": views::ssh_key(&s.state.ssh_keys[&id])}),
        ))
    })
}

#[derive(Deserialize)]
struct UpdateKey {
    name: String,
}

pub async fn update_key(
    axum::extract::State(app): AppState,
    Path(ident): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let b: UpdateKey = parse(&body)?;
    app.with_store(|s| {
        let id = find_key(s.state.ssh_keys.values(), &ident).ok_or_else(ApiError::not_found)?;
        let key = s
            .state
            .ssh_keys
            .get_mut(&id)
            .ok_or_else(ApiError::not_found)?;
        key.name = b.name;
        let v = views::ssh_key(key);
        s.touch();
        Ok(json(StatusCode::OK, json!({"ssh_key": v})))
    })
}

pub async fn delete_key(
    axum::extract::State(app): AppState,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    app.with_store(|s| {
        let id = find_key(s.state.ssh_keys.values(), &ident).ok_or_else(ApiError::not_found)?;
        s.state.ssh_keys.remove(&id);
        s.touch();
        Ok(no_content())
    })
}

/// Resolves `ssh_keys` entries (int id or fingerprint) to key ids.
pub fn resolve_keys(
    keys: &std::collections::BTreeMap<u64, SshKey>,
    wanted: &[serde_json::Value],
) -> ApiResult<Vec<u64>> {
    wanted
        .iter()
        .map(|w| {
            let ident = match w {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                other => {
                    return Err(ApiError::unprocessable(format!(
                        "ssh_keys: invalid entry {other}"
                    )));
                }
            };
            find_key(keys.values(), &ident).ok_or_else(|| {
                ApiError::unprocessable(format!("ssh_keys: no SSH key {ident:?} on this account"))
            })
        })
        .collect()
}
