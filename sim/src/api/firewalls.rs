//! `/v2/firewalls` and `/v2/droplets/{id}/firewalls`.

use super::{AppState, Query, int_id, json, no_content, parse, valid_tag_name};
use crate::error::{ApiError, ApiResult};
use crate::model::Firewall;
use crate::pagination::{Page, paginate};
use crate::server::App;
use crate::store::Store;
use crate::timing::Op;
use crate::views;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, Default)]
struct Rules {
    #[serde(default)]
    inbound_rules: Option<Vec<Value>>,
    #[serde(default)]
    outbound_rules: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct FirewallBody {
    name: String,
    #[serde(flatten)]
    rules: Rules,
    #[serde(default)]
    droplet_ids: Option<Vec<u64>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

fn valid_name(n: &str) -> bool {
    n.len() >= 2
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn valid_ports(p: &str) -> bool {
    let port = |s: &str| s.parse::<u16>().is_ok_and(|n| n >= 1);
    p == "all"
        || p == "0"
        || port(p)
        || p.split_once('-').is_some_and(|(a, b)| {
            port(a) && port(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok()
        })
}

fn check_rules(rules: &[Value], field: &str, target: &str) -> ApiResult<()> {
    for (i, r) in rules.iter().enumerate() {
        let bad = |m: String| ApiError::unprocessable(format!("{field}[{i}]: {m}"));
        let proto = r.get("protocol").and_then(Value::as_str).unwrap_or("");
        if !["tcp", "udp", "icmp"].contains(&proto) {
            return Err(bad(format!(
                "protocol must be tcp, udp or icmp, got {proto:?}"
            )));
        }
        match r.get("ports").and_then(Value::as_str) {
            Some(p) if !valid_ports(p) => return Err(bad(format!("invalid ports {p:?}"))),
            None if proto != "icmp" => return Err(bad("ports is required".into())),
            _ => {}
        }
        if !r.get(target).is_some_and(Value::is_object) {
            return Err(bad(format!("{target} is required")));
        }
    }
    Ok(())
}

fn validate(s: &mut Store, rules: &Rules, droplets: &[u64], tags: &[String]) -> ApiResult<()> {
    check_rules(
        rules.inbound_rules.as_deref().unwrap_or(&[]),
        "inbound_rules",
        "sources",
    )?;
    check_rules(
        rules.outbound_rules.as_deref().unwrap_or(&[]),
        "outbound_rules",
        "destinations",
    )?;
    if let Some(d) = droplets.iter().find(|d| !s.state.droplets.contains_key(d)) {
        return Err(ApiError::unprocessable(format!(
            "droplet_ids: droplet {d} does not exist"
        )));
    }
    if let Some(t) = tags.iter().find(|t| !valid_tag_name(t)) {
        return Err(ApiError::unprocessable(format!(
            "tags: invalid tag name {t:?}"
        )));
    }
    for t in tags {
        s.state.tags.insert(t.clone());
    }
    Ok(())
}

fn settle(s: &mut Store, fw_index: usize) {
    let due = chrono::Duration::from_std(s.timing.duration(Op::Firewall)).unwrap_or_default();
    let fw = &mut s.state.firewalls[fw_index];
    fw.status = "waiting".into();
    fw.settles_at = Some(chrono::Utc::now() + due);
    s.touch();
}

fn index(s: &Store, fid: &str) -> ApiResult<usize> {
    s.state
        .firewalls
        .iter()
        .position(|f| f.id == fid)
        .ok_or_else(ApiError::not_found)
}

fn uuid() -> String {
    let h = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

pub async fn list(State(app): AppState, q: Query) -> ApiResult<Response> {
    let page = Page::from_query(&q)?;
    let items = app.with_store(|s| s.state.firewalls.iter().map(views::firewall).collect());
    Ok(json(
        StatusCode::OK,
        paginate("firewalls", items, page, &app.base_url, "/v2/firewalls", &q),
    ))
}

pub async fn list_for_droplet(
    State(app): AppState,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let id = int_id(&id)?;
    let page = Page::from_query(&q)?;
    let items = app.with_store(|s| {
        let d = s.state.droplets.get(&id).ok_or_else(ApiError::not_found)?;
        Ok(s.state
            .firewalls
            .iter()
            .filter(|f| f.droplet_ids.contains(&id) || f.tags.iter().any(|t| d.tags.contains(t)))
            .map(views::firewall)
            .collect())
    })?;
    let path = format!("/v2/droplets/{id}/firewalls");
    Ok(json(
        StatusCode::OK,
        paginate("firewalls", items, page, &app.base_url, &path, &q),
    ))
}

fn write(app: &App, fid: Option<&str>, body: &[u8]) -> ApiResult<Response> {
    let b: FirewallBody = parse(body)?;
    if !valid_name(&b.name) {
        return Err(ApiError::unprocessable(format!(
            "name {:?} is invalid",
            b.name
        )));
    }
    let droplets = b.droplet_ids.clone().unwrap_or_default();
    let tags = b.tags.clone().unwrap_or_default();
    app.with_store(|s| {
        validate(s, &b.rules, &droplets, &tags)?;
        let fw = Firewall {
            id: fid.map_or_else(uuid, str::to_string),
            name: b.name.clone(),
            status: "waiting".into(),
            created_at: chrono::Utc::now(),
            inbound_rules: b.rules.inbound_rules.clone().unwrap_or_default(),
            outbound_rules: b.rules.outbound_rules.clone().unwrap_or_default(),
            droplet_ids: droplets,
            tags,
            settles_at: None,
        };
        let (i, status) = match fid {
            Some(fid) => {
                let i = index(s, fid)?;
                let created_at = s.state.firewalls[i].created_at;
                s.state.firewalls[i] = Firewall { created_at, ..fw };
                (i, StatusCode::OK)
            }
            None => {
                if fw.inbound_rules.is_empty() && fw.outbound_rules.is_empty() {
                    return Err(ApiError::unprocessable(
                        "at least one of inbound_rules or outbound_rules is required",
                    ));
                }
                s.state.firewalls.push(fw);
                (s.state.firewalls.len() - 1, StatusCode::ACCEPTED)
            }
        };
        settle(s, i);
        Ok(json(
            status,
            json!({"firewall": views::firewall(&s.state.firewalls[i])}),
        ))
    })
}

pub async fn create(State(app): AppState, body: Bytes) -> ApiResult<Response> {
    write(&app, None, &body)
}

pub async fn update(
    State(app): AppState,
    Path(fid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    write(&app, Some(&fid), &body)
}

pub async fn get(State(app): AppState, Path(fid): Path<String>) -> ApiResult<Response> {
    app.with_store(|s| {
        let i = index(s, &fid)?;
        Ok(json(
            StatusCode::OK,
            json!({"firewall": views::firewall(&s.state.firewalls[i])}),
        ))
    })
}

pub async fn delete(State(app): AppState, Path(fid): Path<String>) -> ApiResult<Response> {
    app.with_store(|s| {
        let i = index(s, &fid)?;
        s.state.firewalls.remove(i);
        s.touch();
        Ok(no_content())
    })
}

/// Applies a change to one firewall after validation, then marks it `waiting`.
fn modify(
    app: &App,
    fid: &str,
    f: impl FnOnce(&mut Store, usize) -> ApiResult<()>,
) -> ApiResult<Response> {
    app.with_store(|s| {
        let i = index(s, fid)?;
        f(s, i)?;
        settle(s, i);
        Ok(no_content())
    })
}

pub async fn add_rules(
    State(app): AppState,
    Path(fid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let r: Rules = parse(&body)?;
    modify(&app, &fid, |s, i| {
        validate(s, &r, &[], &[])?;
        let fw = &mut s.state.firewalls[i];
        fw.inbound_rules.extend(r.inbound_rules.unwrap_or_default());
        fw.outbound_rules
            .extend(r.outbound_rules.unwrap_or_default());
        Ok(())
    })
}

pub async fn remove_rules(
    State(app): AppState,
    Path(fid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let r: Rules = parse(&body)?;
    modify(&app, &fid, |s, i| {
        let fw = &mut s.state.firewalls[i];
        let inbound = r.inbound_rules.unwrap_or_default();
        let outbound = r.outbound_rules.unwrap_or_default();
        fw.inbound_rules.retain(|x| !inbound.contains(x));
        fw.outbound_rules.retain(|x| !outbound.contains(x));
        Ok(())
    })
}

#[derive(Deserialize)]
struct DropletIds {
    droplet_ids: Vec<u64>,
}

#[derive(Deserialize)]
struct Tags {
    tags: Vec<String>,
}

pub async fn add_droplets(
    State(app): AppState,
    Path(fid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let b: DropletIds = parse(&body)?;
    modify(&app, &fid, |s, i| {
        validate(s, &Rules::default(), &b.droplet_ids, &[])?;
        let fw = &mut s.state.firewalls[i];
        for d in b.droplet_ids {
            if !fw.droplet_ids.contains(&d) {
                fw.droplet_ids.push(d);
            }
        }
        Ok(())
    })
}

pub async fn remove_droplets(
    State(app): AppState,
    Path(fid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let b: DropletIds = parse(&body)?;
    modify(&app, &fid, |s, i| {
        s.state.firewalls[i]
            .droplet_ids
            .retain(|d| !b.droplet_ids.contains(d));
        Ok(())
    })
}

pub async fn add_tags(
    State(app): AppState,
    Path(fid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let b: Tags = parse(&body)?;
    modify(&app, &fid, |s, i| {
        validate(s, &Rules::default(), &[], &b.tags)?;
        let fw = &mut s.state.firewalls[i];
        for t in b.tags {
            if !fw.tags.contains(&t) {
                fw.tags.push(t);
            }
        }
        Ok(())
    })
}

pub async fn remove_tags(
    State(app): AppState,
    Path(fid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let b: Tags = parse(&body)?;
    modify(&app, &fid, |s, i| {
        s.state.firewalls[i].tags.retain(|t| !b.tags.contains(t));
        Ok(())
    })
}
