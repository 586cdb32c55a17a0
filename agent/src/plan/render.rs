//! Rendering a plan: a Terraform-like text diff for people and a stable
//! JSON document for machines. Both are byte-identical for the same plan.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::{Action, Change, Detail, DropletFields, Kind, Plan, Summary};
use crate::topology::ServiceState;

impl Plan {
    /// The human diff, one line per change, destroys flagged in upper case,
    /// then the summary lines.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if self.changes.is_empty() {
            out.push_str("No changes. The infrastructure matches the spec.\n");
        }
        for c in &self.changes {
            text_line(c, &mut out);
        }
        let s = self.summary();
        let d = self.summary_of(Some(Kind::Droplet));
        let blocked = if s.blocked > 0 {
            format!(", {} blocked", s.blocked)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\nPlan: {} to create, {} to change, {} to destroy{blocked}.",
            s.create, s.update, s.delete
        );
        let _ = writeln!(
            out,
            "Droplets: {} to create, {} to change, {} to destroy.",
            d.create, d.update, d.delete
        );
        let destroys = self.blocked_destroys().count();
        if destroys > 0 {
            let noun = if destroys == 1 { "droplet" } else { "droplets" };
            let _ = writeln!(
                out,
                "WARNING: {destroys} {noun} would be destroyed; re-run with --allow-destroy to allow it."
            );
        }
        out
    }

    /// `{"changes":[{"action","kind","name","details"[,"blocked":true]}],"summary":{...}}`.
    pub fn to_json(&self) -> Value {
        let changes: Vec<Value> = self.changes.iter().map(change_json).collect();
        let Summary {
            create,
            update,
            delete,
            blocked,
        } = self.summary();
        let mut summary = Map::new();
        summary.insert("create".into(), create.into());
        summary.insert("update".into(), update.into());
        summary.insert("delete".into(), delete.into());
        if blocked > 0 {
            summary.insert("blocked".into(), blocked.into());
        }
        json!({ "changes": changes, "summary": summary })
    }

    /// [`Plan::to_json`] as compact text.
    pub fn render_json(&self) -> String {
        self.to_json().to_string()
    }
}

fn droplet_brief(d: &DropletFields) -> String {
    format!("{}, {}", d.size, d.region)
}

fn service_brief(s: &ServiceState) -> String {
    let on = s.droplets.join(", ");
    match s.port {
        Some(port) => format!("{}, port {port} on {on}", s.kind.as_str()),
        None => format!("{} on {on}", s.kind.as_str()),
    }
}

fn arrow<T: PartialEq + std::fmt::Display>(field: &str, a: T, b: T, parts: &mut Vec<String>) {
    if a != b {
        parts.push(format!("{field} {a} -> {b}"));
    }
}

fn opt(v: Option<u16>) -> String {
    v.map_or_else(|| "none".to_string(), |p| p.to_string())
}

fn text_line(c: &Change, out: &mut String) {
    let name = &c.name;
    let line = match (&c.detail, c.action) {
        (
            Detail::Droplet {
                after: Some(a),
                before: None,
                ..
            },
            _,
        ) => {
            format!("+ create droplet {name} ({})", droplet_brief(a))
        }
        (
            Detail::Droplet {
                before: Some(b),
                after: Some(a),
                replace,
            },
            _,
        ) => {
            let mut parts = Vec::new();
            arrow("size", &b.size, &a.size, &mut parts);
            arrow("region", &b.region, &a.region, &mut parts);
            arrow("role", b.role.as_str(), a.role.as_str(), &mut parts);
            let what = if parts.is_empty() {
                "forced".to_string()
            } else {
                parts.join(", ")
            };
            if *replace {
                format!("-/+ replace droplet {name} ({what})")
            } else {
                format!("~ update droplet {name} ({what})")
            }
        }
        (
            Detail::Droplet {
                before: Some(b), ..
            },
            _,
        ) => format!("- destroy droplet {name} ({})", droplet_brief(b)),
        (Detail::Droplet { .. }, _) => format!("~ droplet {name}"),
        (
            Detail::Service {
                after: Some(a),
                before: None,
                ..
            },
            _,
        ) => {
            format!("+ create service {name} ({})", service_brief(a))
        }
        (
            Detail::Service {
                before: Some(b),
                after: Some(a),
                ..
            },
            _,
        ) => {
            let mut parts = Vec::new();
            arrow("type", b.kind.as_str(), a.kind.as_str(), &mut parts);
            arrow("port", opt(b.port), opt(a.port), &mut parts);
            arrow(
                "droplets",
                format!("[{}]", b.droplets.join(", ")),
                format!("[{}]", a.droplets.join(", ")),
                &mut parts,
            );
            let what = if parts.is_empty() {
                "redeploy".to_string()
            } else {
                parts.join("; ")
            };
            format!("~ update service {name} ({what})")
        }
        (Detail::Service { before, .. }, _) => {
            let brief = before.as_ref().map(service_brief).unwrap_or_default();
            format!("- destroy service {name} ({brief})")
        }
        (Detail::Monitors { before, after }, Action::Create) => {
            let _ = before;
            format!("+ create monitors of {name} (by {})", after.join(", "))
        }
        (Detail::Monitors { before, after }, Action::Update) => {
            format!(
                "~ update monitors of {name} (by {} -> {})",
                before.join(", "),
                after.join(", ")
            )
        }
        (Detail::Monitors { before, .. }, Action::Delete) => {
            format!("- remove monitors of {name} (by {})", before.join(", "))
        }
        (Detail::Voter { .. }, Action::Delete) => format!("- demote voter {name} (to learner)"),
        (Detail::Voter { .. }, _) => format!("+ promote voter {name}"),
    };
    out.push_str(&line);
    if c.blocked {
        out.push_str(" [BLOCKED]");
    }
    out.push('\n');
    if c.destroys_droplet() {
        let upper = name.to_uppercase();
        if c.blocked {
            let _ = writeln!(
                out,
                "  !! BLOCKED: DROPLET {upper} WOULD BE DESTROYED; RE-RUN WITH --allow-destroy"
            );
        } else {
            let _ = writeln!(
                out,
                "  !! WARNING: DROPLET {upper} AND ALL ITS DATA WILL BE DESTROYED"
            );
        }
    }
}

fn droplet_json(d: &DropletFields) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("size".into(), d.size.clone().into());
    m.insert("region".into(), d.region.clone().into());
    m.insert("role".into(), d.role.as_str().into());
    if let Some(p) = &d.project {
        m.insert("project".into(), p.clone().into());
    }
    m
}

fn service_json(s: &ServiceState) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), s.kind.as_str().into());
    if let Some(port) = s.port {
        m.insert("port".into(), port.into());
    }
    m.insert("droplets".into(), s.droplets.clone().into());
    m
}

/// `{field: {"from": a, "to": b}}` for the fields that differ.
fn from_to(before: Map<String, Value>, mut after: Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    let mut keys: Vec<String> = before.keys().cloned().collect();
    keys.extend(after.keys().filter(|k| !before.contains_key(*k)).cloned());
    for k in keys {
        let a = before.get(&k).cloned().unwrap_or(Value::Null);
        let b = after.remove(&k).unwrap_or(Value::Null);
        if a != b {
            m.insert(k, json!({ "from": a, "to": b }));
        }
    }
    m
}

fn details_json(detail: &Detail) -> Map<String, Value> {
    match detail {
        Detail::Droplet {
            before,
            after,
            replace,
        } => {
            let mut m = match (before, after) {
                (Some(b), Some(a)) => from_to(droplet_json(b), droplet_json(a)),
                (Some(d), None) | (None, Some(d)) => droplet_json(d),
                (None, None) => Map::new(),
            };
            if *replace {
                m.insert("replace".into(), true.into());
            }
            m
        }
        Detail::Service {
            before,
            after,
            redeploy,
        } => {
            let mut m = match (before, after) {
                (Some(b), Some(a)) => from_to(service_json(b), service_json(a)),
                (Some(s), None) | (None, Some(s)) => service_json(s),
                (None, None) => Map::new(),
            };
            if *redeploy {
                m.insert("redeploy".into(), true.into());
            }
            m
        }
        Detail::Monitors { before, after } => {
            let mut m = Map::new();
            let value = match (before.is_empty(), after.is_empty()) {
                (true, _) => after.clone().into(),
                (false, true) => before.clone().into(),
                (false, false) => json!({ "from": before, "to": after }),
            };
            m.insert("monitors".into(), value);
            m
        }
        Detail::Voter { voter } => {
            let mut m = Map::new();
            m.insert("voter".into(), (*voter).into());
            m
        }
    }
}

fn change_json(c: &Change) -> Value {
    let mut m = Map::new();
    m.insert("action".into(), c.action.as_str().into());
    m.insert("kind".into(), c.kind.as_str().into());
    m.insert("name".into(), c.name.clone().into());
    m.insert("details".into(), details_json(&c.detail).into());
    if c.blocked {
        m.insert("blocked".into(), true.into());
    }
    Value::Object(m)
}
