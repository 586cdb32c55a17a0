//! What a recovered droplet must run (pure): every service the topology
//! places on it whose project+environment has a live release, at the live
//! tag. Given the containers its runtime lists, each such service is kept
//! (a running container of the live tag), started (none running) or
//! replaced (a running container of another tag).

use crate::deploy::pipeline::LABEL_DROPLET;
use crate::runtime::{ContainerInfo, LABEL_ENV, LABEL_PROJECT, LABEL_SERVICE, LABEL_TAG};
use crate::state::{ClusterState, release_key};

/// What to do about one service on the droplet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A container of the live tag runs: nothing to do.
    Keep { container: String },
    /// No container of the service runs: start the live tag.
    Start,
    /// A container of another tag runs: replace it by the live tag.
    Replace { old: String, old_tag: String },
}

/// One service of a live release placed on the droplet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub project: String,
    pub env: String,
    pub service: String,
    /// The live tag.
    pub tag: String,
    pub action: Action,
}

impl Planned {
    /// Whether anything must be started.
    pub fn needs_work(&self) -> bool {
        !matches!(self.action, Action::Keep { .. })
    }
}

/// The services of live releases placed on `droplet` and what each needs,
/// in topology order; `running` are the droplet's managed containers
/// (others' containers and stopped ones are ignored).
pub fn plan_droplet(
    droplet: &str,
    state: &ClusterState,
    running: &[ContainerInfo],
) -> Vec<Planned> {
    let label = |c: &ContainerInfo, k: &str| c.labels.get(k).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for svc in state.topology.services.values() {
        if !svc.droplets.iter().any(|d| d == droplet) {
            continue;
        }
        let key = release_key(&svc.project, &svc.environment);
        let Some(tag) = state.live_releases.get(&key) else {
            continue;
        };
        let mine: Vec<&ContainerInfo> = running
            .iter()
            .filter(|c| {
                c.running
                    && label(c, LABEL_DROPLET) == droplet
                    && label(c, LABEL_PROJECT) == svc.project
                    && label(c, LABEL_ENV) == svc.environment
                    && label(c, LABEL_SERVICE) == svc.service
            })
            .collect();
        let action = match mine.iter().find(|c| label(c, LABEL_TAG) == *tag) {
            Some(c) => Action::Keep {
                container: c.name.clone(),
            },
            None => match mine.first() {
                Some(c) => Action::Replace {
                    old: c.name.clone(),
                    old_tag: label(c, LABEL_TAG),
                },
                None => Action::Start,
            },
        };
        out.push(Planned {
            project: svc.project.clone(),
            env: svc.environment.clone(),
            service: svc.service.clone(),
            tag: tag.clone(),
            action,
        });
    }
    out
}
