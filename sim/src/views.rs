//! JSON renderings of state objects in the API's response shapes.

use crate::catalog;
use crate::model::{
    Action, Droplet, DropletStatus, Firewall, Snapshot, SshKey, State, addr_ip, private_ip,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn droplet(d: &Droplet) -> Value {
    let size = catalog::size(&d.size_slug)
        .copied()
        .unwrap_or(catalog::SIZES[1]);
    let v4 = if d.status == DropletStatus::New {
        json!([])
    } else {
        let public = addr_ip(d.addr);
        json!([
            {"ip_address": public.to_string(), "netmask": "255.0.0.0", "gateway": "127.0.0.1", "type": "public"},
            {"ip_address": private_ip(d.addr).to_string(), "netmask": "255.255.0.0", "gateway": "10.10.0.1", "type": "private"},
        ])
    };
    let v6 = if d.ipv6 && d.status != DropletStatus::New {
        json!([{"ip_address": format!("2604:a880:400:d1::{:x}", d.addr), "netmask": 64, "gateway": "2604:a880:400:d1::1", "type": "public"}])
    } else {
        json!([])
    };
    let mut features = vec!["private_networking"];
    if d.ipv6 {
        features.push("ipv6");
    }
    if d.monitoring {
        features.push("monitoring");
    }
    if d.backups {
        features.push("backups");
    }
    json!({
        "id": d.id,
        "name": d.name,
        "memory": size.memory,
        "vcpus": size.vcpus,
        "disk": size.disk,
        "disk_info": [{"type": "local", "size": {"amount": size.disk, "unit": "gib"}}],
        "locked": false,
        "status": d.status.as_str(),
        "kernel": null,
        "created_at": ts(d.created_at),
        "features": features,
        "backup_ids": [],
        "next_backup_window": null,
        "snapshot_ids": d.snapshot_ids,
        "image": d.image,
        "volume_ids": [],
        "size": catalog::size_json(&size),
        "size_slug": d.size_slug,
        "networks": {"v4": v4, "v6": v6},
        "region": catalog::region_json(&d.region),
        "tags": d.tags,
        "vpc_uuid": d.vpc_uuid,
    })
}

pub fn action(a: &Action) -> Value {
    json!({
        "id": a.id,
        "status": a.status.as_str(),
        "type": a.kind,
        "started_at": ts(a.started_at),
        "completed_at": a.completed_at.map(ts),
        "resource_id": a.droplet_id,
        "resource_type": "droplet",
        "region": catalog::region_json(&a.region),
        "region_slug": a.region,
    })
}

/// A snapshot as a private image.
pub fn snapshot_image(s: &Snapshot) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "type": "snapshot",
        "distribution": "Unknown",
        "slug": null,
        "public": false,
        "regions": [s.region],
        "created_at": ts(s.created_at),
        "min_disk_size": s.min_disk_size,
        "size_gigabytes": s.size_gigabytes,
        "description": "",
        "tags": s.tags,
        "status": "available",
        "error_message": "",
    })
}

/// A snapshot in `/v2/droplets/{id}/snapshots` (integer id).
pub fn droplet_snapshot(s: &Snapshot) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "type": "snapshot",
        "created_at": ts(s.created_at),
        "regions": [s.region],
        "min_disk_size": s.min_disk_size,
        "size_gigabytes": s.size_gigabytes,
    })
}

/// A snapshot in `/v2/snapshots` (string ids).
pub fn snapshot(s: &Snapshot) -> Value {
    json!({
        "id": s.id.to_string(),
        "name": s.name,
        "created_at": ts(s.created_at),
        "regions": [s.region],
        "resource_id": s.droplet_id.to_string(),
        "resource_type": "droplet",
        "min_disk_size": s.min_disk_size,
        "size_gigabytes": s.size_gigabytes,
        "tags": s.tags,
    })
}

pub fn ssh_key(k: &SshKey) -> Value {
    json!({"id": k.id, "fingerprint": k.fingerprint, "public_key": k.public_key, "name": k.name})
}

pub fn firewall(f: &Firewall) -> Value {
    json!({
        "id": f.id,
        "name": f.name,
        "status": f.status,
        "created_at": ts(f.created_at),
        "pending_changes": [],
        "inbound_rules": f.inbound_rules,
        "outbound_rules": f.outbound_rules,
        "droplet_ids": f.droplet_ids,
        "tags": f.tags,
    })
}

pub fn tag(state: &State, name: &str, base: &str) -> Value {
    let droplets: Vec<&Droplet> = state
        .droplets
        .values()
        .filter(|d| d.tags.iter().any(|t| t == name))
        .collect();
    let images = state
        .snapshots
        .values()
        .filter(|s| s.tags.iter().any(|t| t == name))
        .count();
    let last_droplet = droplets
        .last()
        .map(|d| format!("{base}/v2/droplets/{}", d.id));
    let mut droplet_meta = json!({"count": droplets.len()});
    if let Some(uri) = &last_droplet {
        droplet_meta["last_tagged_uri"] = json!(uri);
    }
    let mut resources = json!({
        "count": droplets.len() + images,
        "droplets": droplet_meta,
        "images": {"count": images},
        "volumes": {"count": 0},
        "volume_snapshots": {"count": 0},
        "databases": {"count": 0},
    });
    if let Some(uri) = last_droplet {
        resources["last_tagged_uri"] = json!(uri);
    }
    json!({"name": name, "resources": resources})
}
