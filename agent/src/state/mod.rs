//! The replicated cluster state: what every agent agrees on through Raft
//! (topology, droplet records, confirmed failures, recoveries, releases,
//! snapshots, events) and the pure, deterministic `apply` of commands.

mod command;
mod recovery;
mod releases;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

pub use command::{
    COMMAND_VERSION, Command, CommandEnvelope, DropletStatus, FencingToken, RecoveryPhase, Response,
};

use crate::topology::Topology;

/// Version of the serialized cluster state.
pub const STATE_VERSION: u32 = 1;
/// Events kept in the audit log; older ones are dropped.
pub const MAX_EVENTS: usize = 256;
/// Releases kept per project environment (for rollbacks).
pub const MAX_RELEASES: usize = 20;
/// Snapshots remembered per droplet.
pub const MAX_SNAPSHOTS: usize = 10;

/// The Raft state machine's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub version: u32,
    pub topology: Topology,
    /// Runtime records by droplet name.
    pub droplets: BTreeMap<String, DropletRecord>,
    /// Latest confirmed failure per droplet name.
    pub failures: BTreeMap<String, ConfirmedFailure>,
    /// Latest recovery (open or closed) per droplet name.
    pub recoveries: BTreeMap<String, Recovery>,
    /// Release history per `<project>/<environment>`, oldest first.
    pub releases: BTreeMap<String, Vec<Release>>,
    /// Known provider snapshots per droplet, oldest first.
    pub snapshots: BTreeMap<String, Vec<SnapshotRecord>>,
    /// Bounded audit log, oldest first.
    pub events: VecDeque<Event>,
    /// Live release tag per `<project>/<environment>` (after a rollback it
    /// is not the newest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub live_releases: BTreeMap<String, String>,
    /// Sealed secrets per `<project>/<environment>`: name -> hex(nonce ||
    /// ciphertext) under the cluster's secrets key; never plaintext.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The load balancer's base URL, once the leader started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<String>,
    /// The latest deploy per `<project>/<environment>` (started, finished).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deploys: BTreeMap<String, DeployRun>,
    /// When and by whom the cluster was formed (`Initialize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formed: Option<Formation>,
}

/// The formation of the cluster, recorded once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Formation {
    pub cluster_id: String,
    pub by: String,
    pub at_ms: u64,
}

/// A deploy or rollback as the leaders recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRun {
    pub action: String,
    /// The deployment config it ran with (to converge it back elsewhere).
    pub deployment_json: String,
    pub started_at_ms: u64,
    /// Its leader was lost before it finished.
    #[serde(default)]
    pub interrupted: bool,
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    #[serde(default)]
    pub outcome: Option<String>,
}

impl Default for ClusterState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            topology: Topology::default(),
            droplets: BTreeMap::new(),
            failures: BTreeMap::new(),
            recoveries: BTreeMap::new(),
            releases: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            events: VecDeque::new(),
            live_releases: BTreeMap::new(),
            secrets: BTreeMap::new(),
            load_balancer: None,
            deploys: BTreeMap::new(),
            formed: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropletRecord {
    pub provider_id: Option<u64>,
    pub ip: Option<String>,
    /// Incarnation: bumped each time the droplet is re-created.
    pub generation: u64,
    pub status: DropletStatus,
    pub updated_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedFailure {
    pub name: String,
    pub generation: u64,
    pub confirmed_at_ms: u64,
    /// Raft term of the leader that committed the confirmation.
    pub term: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub name: String,
    /// Incarnation of the droplet that failed.
    pub generation: u64,
    pub phase: RecoveryPhase,
    pub started_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub fencing: FencingToken,
    /// Phases reached so far with their times, oldest first.
    pub history: Vec<(String, u64)>,
    /// The executor's serialized saga record (`recovery::SagaRecord`, JSON),
    /// committed before and after each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga: Option<String>,
    /// Start times of the earlier recoveries of this droplet (newest last,
    /// at most [`MAX_RECOVERY_HISTORY`]), for the flapping rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_starts_ms: Vec<u64>,
    /// Opened by an operator (`infractl recover`), not by a confirmed failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

/// Earlier recovery start times remembered per droplet.
pub const MAX_RECOVERY_HISTORY: usize = 10;

impl Recovery {
    pub fn is_open(&self) -> bool {
        self.finished_at_ms.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub tag: String,
    /// Image id per service name.
    pub images: BTreeMap<String, String>,
    pub deployed_at_ms: u64,
    /// Commit the images were built from, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub snapshot_id: String,
    pub name: String,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Raft log index of the command that produced the event.
    pub index: u64,
    pub at_ms: u64,
    pub message: String,
}

fn rejected(reason: impl Into<String>) -> Response {
    Response::Rejected {
        reason: reason.into(),
    }
}

/// Key of the release history of a project environment.
pub fn release_key(project: &str, environment: &str) -> String {
    format!("{project}/{environment}")
}

impl ClusterState {
    /// Open recovery of `name`, if any.
    pub fn open_recovery(&self, name: &str) -> Option<&Recovery> {
        self.recoveries.get(name).filter(|r| r.is_open())
    }

    /// The release currently deployed to `project`/`environment` (the
    /// live one after a rollback, else the newest).
    pub fn current_release(&self, project: &str, environment: &str) -> Option<&Release> {
        let key = release_key(project, environment);
        let history = self.releases.get(&key)?;
        match self.live_releases.get(&key) {
            Some(tag) => history.iter().rev().find(|r| &r.tag == tag),
            None => history.last(),
        }
    }

    /// The newest known snapshot of `droplet`.
    pub fn latest_snapshot(&self, droplet: &str) -> Option<&SnapshotRecord> {
        self.snapshots
            .get(droplet)?
            .iter()
            .max_by_key(|s| s.created_at_ms)
    }

    fn event(&mut self, index: u64, at_ms: u64, message: String) {
        self.events.push_back(Event {
            index,
            at_ms,
            message,
        });
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }
    }

    /// Applies the command committed at `log_index` in `term`. Pure and
    /// deterministic: the same commands in the same order give the same state.
    pub fn apply(&mut self, envelope: &CommandEnvelope, log_index: u64, term: u64) -> Response {
        if envelope.version != COMMAND_VERSION {
            return rejected(format!(
                "unsupported command version {} (this agent understands {COMMAND_VERSION})",
                envelope.version
            ));
        }
        let token = FencingToken {
            term,
            index: log_index,
        };
        match &envelope.command {
            Command::FormCluster {
                cluster_id,
                by,
                at_ms,
            } => {
                if let Some(formed) = &self.formed {
                    return rejected(format!(
                        "cluster {} was formed already (by {} at {})",
                        formed.cluster_id, formed.by, formed.at_ms
                    ));
                }
                self.formed = Some(Formation {
                    cluster_id: cluster_id.clone(),
                    by: by.clone(),
                    at_ms: *at_ms,
                });
                self.event(
                    log_index,
                    *at_ms,
                    format!("cluster {cluster_id} formed by {by}"),
                );
                Response::Applied
            }
            Command::SetTopology { topology, at_ms } => {
                if &self.topology == topology {
                    return Response::Unchanged;
                }
                self.topology = topology.clone();
                let msg = format!(
                    "topology set: {} droplets, {} services",
                    topology.droplets.len(),
                    topology.services.len()
                );
                self.event(log_index, *at_ms, msg);
                Response::Applied
            }
            Command::UpsertDroplet {
                name,
                provider_id,
                ip,
                generation,
                status,
                at_ms,
            } => {
                if let Some(old) = self
                    .droplets
                    .get(name)
                    .filter(|o| *generation < o.generation)
                {
                    return rejected(format!(
                        "droplet {name}: generation {generation} is older than recorded {}",
                        old.generation
                    ));
                }
                let record = DropletRecord {
                    provider_id: *provider_id,
                    ip: ip.clone(),
                    generation: *generation,
                    status: *status,
                    updated_at_ms: *at_ms,
                };
                let unchanged = self.droplets.get(name).is_some_and(|old| {
                    old.provider_id == record.provider_id
                        && old.ip == record.ip
                        && old.generation == record.generation
                        && old.status == record.status
                });
                if unchanged {
                    return Response::Unchanged;
                }
                self.droplets.insert(name.clone(), record);
                let msg = format!("droplet {name} generation {generation} is {status:?}");
                self.event(log_index, *at_ms, msg);
                Response::Applied
            }
            Command::RemoveDroplet { name, at_ms } => {
                // Destroyed on purpose: forget its failures and recoveries too
                // (an open recovery ends: its next step is rejected).
                let known = self.droplets.remove(name).is_some()
                    | self.snapshots.remove(name).is_some()
                    | self.failures.remove(name).is_some()
                    | self.recoveries.remove(name).is_some();
                if !known {
                    return Response::Unchanged;
                }
                self.event(log_index, *at_ms, format!("droplet {name} removed"));
                Response::Applied
            }
            Command::ConfirmFailure {
                name,
                generation,
                at_ms,
            } => self.confirm_failure(name, *generation, *at_ms, token),
            Command::SaveSaga {
                name,
                fencing,
                record,
                at_ms: _,
            } => self.save_saga(name, *fencing, record),
            Command::RequestRecovery {
                name,
                generation,
                force,
                at_ms,
            } => self.request_recovery(name, *generation, *force, *at_ms, token),
            Command::TakeOverRecovery { name, at_ms } => {
                let Some(recovery) = self.recoveries.get_mut(name).filter(|r| r.is_open()) else {
                    return rejected(format!("droplet {name}: no open recovery to take over"));
                };
                recovery.fencing = token;
                let msg = format!("recovery of {name} taken over with fencing token {token}");
                self.event(log_index, *at_ms, msg);
                Response::Recovery {
                    fencing: token,
                    opened: false,
                }
            }
            Command::RecoveryStep {
                name,
                fencing,
                phase,
                at_ms,
            } => self.recovery_step(name, *fencing, phase, *at_ms, log_index),
            Command::RecordRelease {
                project,
                environment,
                tag,
                images,
                commit,
                at_ms,
            } => {
                let release = Release {
                    tag: tag.clone(),
                    images: images.clone(),
                    deployed_at_ms: *at_ms,
                    commit: commit.clone(),
                };
                self.record_release(project, environment, release, log_index)
            }
            Command::SetLiveRelease {
                project,
                environment,
                tag,
                at_ms,
            } => self.set_live_release(project, environment, tag, *at_ms, log_index),
            Command::StoreSecrets {
                project,
                environment,
                sealed,
                at_ms,
            } => self.store_secrets(project, environment, sealed, *at_ms, log_index),
            Command::SetLoadBalancer { url, at_ms } => {
                if self.load_balancer.as_ref() == Some(url) {
                    return Response::Unchanged;
                }
                self.load_balancer = Some(url.clone());
                self.event(log_index, *at_ms, format!("load balancer at {url}"));
                Response::Applied
            }
            Command::RecordSnapshot {
                droplet,
                snapshot_id,
                name,
                at_ms,
            } => {
                let list = self.snapshots.entry(droplet.clone()).or_default();
                if list.iter().any(|s| &s.snapshot_id == snapshot_id) {
                    return Response::Unchanged;
                }
                list.push(SnapshotRecord {
                    snapshot_id: snapshot_id.clone(),
                    name: name.clone(),
                    created_at_ms: *at_ms,
                });
                list.sort_by_key(|s| s.created_at_ms);
                if list.len() > MAX_SNAPSHOTS {
                    list.remove(0);
                }
                let msg = format!("snapshot {name} ({snapshot_id}) of {droplet}");
                self.event(log_index, *at_ms, msg);
                Response::Applied
            }
            Command::ForgetSnapshot {
                droplet,
                snapshot_id,
            } => {
                let Some(list) = self.snapshots.get_mut(droplet) else {
                    return Response::Unchanged;
                };
                let before = list.len();
                list.retain(|s| &s.snapshot_id != snapshot_id);
                if list.len() == before {
                    Response::Unchanged
                } else {
                    Response::Applied
                }
            }
            Command::DeployStarted {
                project,
                environment,
                action,
                deployment_json,
                at_ms,
            } => {
                self.deploys.insert(
                    release_key(project, environment),
                    DeployRun {
                        action: action.clone(),
                        deployment_json: deployment_json.clone(),
                        started_at_ms: *at_ms,
                        interrupted: false,
                        finished_at_ms: None,
                        outcome: None,
                    },
                );
                Response::Applied
            }
            Command::DeployInterrupted {
                project,
                environment,
                at_ms,
            } => {
                let key = release_key(project, environment);
                let action = match self.deploys.get_mut(&key) {
                    Some(run) if run.finished_at_ms.is_none() && !run.interrupted => {
                        run.interrupted = true;
                        run.action.clone()
                    }
                    _ => return Response::Unchanged,
                };
                self.event(
                    log_index,
                    *at_ms,
                    format!("{action} of {key} interrupted by a leader change"),
                );
                Response::Applied
            }
            Command::DeployFinished {
                project,
                environment,
                outcome,
                at_ms,
            } => match self.deploys.get_mut(&release_key(project, environment)) {
                Some(run) if run.finished_at_ms.is_none() => {
                    run.finished_at_ms = Some(*at_ms);
                    run.outcome = Some(outcome.clone());
                    Response::Applied
                }
                _ => Response::Unchanged,
            },
            Command::RecordEvent { message, at_ms } => {
                self.event(log_index, *at_ms, message.clone());
                Response::Applied
            }
        }
    }
}
