//! Rendering a plan as a Terraform-like text diff for people; byte-identical
//! for the same plan.

use std::fmt::Write as _;

use super::{Action, Change, Detail, DropletFields, Kind, Plan};
use crate::topology::ServiceState;

impl Plan {
    /// The human diff, one line per change, destroys flagged in upper case,
    /// then the summary lines: `Plan:` counts every change (droplets,
    /// services, monitors, voters; blocked ones separately), `Droplets:`
    /// counts droplet changes only, and a warning names the number of
    /// droplet destructions that need `--allow-destroy`.
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
