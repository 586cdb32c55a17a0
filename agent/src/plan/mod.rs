//! The planner: compares the spec's target topology with the current one
//! and lists the changes (droplets, services, monitors, Raft voters) as a
//! deterministic [`Plan`], rendered as a Terraform-like diff or JSON.
//!
//! Pure functions over plain values: no I/O, no clocks, no randomness, so the
//! same input always yields byte-identical output. See the submodules for
//! the rules: [`ports`] (hash-based host ports), [`placement`] (web services
//! everywhere, workers by rendezvous hashing), [`monitors`] (who probes
//! whom), [`voters`] (the Raft voter set).
//!
//! Droplet destruction (a removed droplet, or a replacement forced by a
//! region/role change or `force`) only happens with
//! [`PlanOptions::allow_destroy`]; otherwise the change stays in the plan,
//! marked `blocked`, and [`Plan::apply`] skips it.

mod apply;
mod desired;
mod diff;
pub mod hash;
mod json;
pub mod monitors;
pub mod placement;
pub mod ports;
mod render;
mod runtime_view;
pub mod voters;

#[cfg(test)]
mod tests;

pub use desired::{FALLBACK_REGION, desired};
pub use runtime_view::{RuntimeDroplets, RuntimeProjects, topology_to_runtime};

use serde::Serialize;

use crate::spec::{Role, Spec};
use crate::topology::{ServiceState, Topology};

/// How the planner may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanOptions {
    /// Allow destroying droplets (removed ones and replacements).
    pub allow_destroy: bool,
    /// Re-create every droplet and redeploy every service that stays.
    pub force: bool,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// What a change is about. Plans list droplets first, then services,
/// monitors and voters (the order a runner applies them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Droplet,
    Service,
    /// The set of droplets probing the named droplet.
    Monitor,
    /// The named droplet's Raft membership (create = promote to voter,
    /// delete = demote to learner).
    Voter,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Droplet => "droplet",
            Kind::Service => "service",
            Kind::Monitor => "monitor",
            Kind::Voter => "voter",
        }
    }
}

/// The planned fields of a droplet (IP, monitors and voting are separate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropletFields {
    pub role: Role,
    pub project: Option<String>,
    pub size: String,
    pub region: String,
}

/// What exactly changes, before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    Droplet {
        before: Option<DropletFields>,
        after: Option<DropletFields>,
        /// The droplet is destroyed and re-created (region/role change or `force`).
        replace: bool,
    },
    Service {
        before: Option<ServiceState>,
        after: Option<ServiceState>,
        /// Redeploy although nothing changed (`force`).
        redeploy: bool,
    },
    Monitors {
        before: Vec<String>,
        after: Vec<String>,
    },
    Voter {
        voter: bool,
    },
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    pub name: String,
    pub detail: Detail,
    /// A droplet destruction the options do not allow: shown, never applied.
    pub blocked: bool,
}

impl Change {
    /// Whether applying this change destroys a droplet.
    pub fn destroys_droplet(&self) -> bool {
        match &self.detail {
            Detail::Droplet { replace, .. } => self.action == Action::Delete || *replace,
            _ => false,
        }
    }
}

/// Counts of a plan's changes; blocked changes are only counted in `blocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub blocked: usize,
}

/// The ordered list of changes from the current to the desired topology.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Sorted by kind, then name.
    pub changes: Vec<Change>,
}

impl Plan {
    /// Counts over all changes, or only those of `kind`.
    pub fn summary_of(&self, kind: Option<Kind>) -> Summary {
        let mut s = Summary::default();
        for c in self
            .changes
            .iter()
            .filter(|c| kind.is_none_or(|k| c.kind == k))
        {
            let slot = match (c.blocked, c.action) {
                (true, _) => &mut s.blocked,
                (false, Action::Create) => &mut s.create,
                (false, Action::Update) => &mut s.update,
                (false, Action::Delete) => &mut s.delete,
            };
            *slot += 1;
        }
        s
    }

    /// Counts over all changes.
    pub fn summary(&self) -> Summary {
        self.summary_of(None)
    }

    /// No change at all, not even a blocked one.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Nothing [`Plan::apply`] would do (blocked changes aside).
    pub fn is_converged(&self) -> bool {
        self.changes.iter().all(|c| c.blocked)
    }

    /// Blocked changes that would destroy a droplet.
    pub fn blocked_destroys(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.blocked && c.destroys_droplet())
    }
}

/// The changes that take `current` to what `spec` asks for.
pub fn plan(spec: &Spec, current: &Topology, opts: &PlanOptions) -> Plan {
    let target = desired(spec, current);
    diff::diff(current, target, opts)
}
