//! The managed containers running on the cluster's droplets, gathered from
//! each droplet's own runtime (in a cluster: an RPC to its agent). The
//! load balancer's routes are rendered from them.

use std::collections::BTreeMap;

use crate::deploy::pipeline::{Droplet, LABEL_DROPLET};
use crate::runtime::{ContainerInfo, LABEL_MANAGED, RuntimeError};

/// What [`running_containers`] found.
#[derive(Debug, Default)]
pub struct Running {
    /// The managed containers (running or not) placed on the droplets,
    /// by droplet name order.
    pub containers: Vec<ContainerInfo>,
    /// Droplets whose runtime did not answer (e.g. a dead agent).
    pub unreachable: Vec<(String, RuntimeError)>,
}

/// Lists every droplet's managed containers labelled with that droplet
/// (where engines are shared, as in the local cloud, each container is
/// counted once), asking all droplets at once. A droplet that does not
/// answer is reported, not fatal.
pub async fn running_containers(droplets: &BTreeMap<String, Droplet>) -> Running {
    let asks = droplets.values().map(|d| async move {
        let labels = BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_DROPLET.to_string(), d.name.clone()),
        ]);
        (d.name.clone(), d.runtime.list(&labels).await)
    });
    let mut out = Running::default();
    for (name, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok(found) => out.containers.extend(found),
            Err(e) => out.unreachable.push((name, e)),
        }
    }
    out
}
