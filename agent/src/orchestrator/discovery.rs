//! Peer discovery through the cloud API: an agent that holds the API token
//! and was given no seeds (the master, created first, whose user-data can
//! never change) finds the other droplets of its cluster by their cluster
//! tag. A rebuilt master thus rejoins the existing cluster instead of
//! waiting alone.

use std::time::Duration;

use super::cluster_tag;
use crate::provider::{CloudProvider, Droplet, DropletStatus};

/// How long discovery keeps trying while the API fails (an empty answer
/// is final: a brand new master has no peers).
const DISCOVERY_DEADLINE: Duration = Duration::from_secs(30);
const DISCOVERY_RETRY: Duration = Duration::from_secs(2);

/// Gossip seeds (`IP:gossip_port`) of the active droplets other than `me`
/// (pure).
pub fn seeds_from(droplets: &[Droplet], me: &str, gossip_port: u16) -> Vec<String> {
    let mut seeds: Vec<String> = droplets
        .iter()
        .filter(|d| d.name != me && d.status == DropletStatus::Active)
        .filter_map(|d| d.public_ipv4)
        .map(|ip| format!("{ip}:{gossip_port}"))
        .collect();
    seeds.sort();
    seeds.dedup();
    seeds
}

/// The seeds of `me` in cluster `cluster_id`, from the droplets tagged with
/// the cluster's tag. Retries while the API fails, up to a deadline; then
/// gives up with no seeds (logged).
pub async fn discover_seeds(
    provider: &dyn CloudProvider,
    cluster_id: &str,
    me: &str,
    gossip_port: u16,
) -> Vec<String> {
    let tag = cluster_tag(cluster_id);
    let start = tokio::time::Instant::now();
    loop {
        match provider.list_droplets(Some(&tag)).await {
            Ok(droplets) => {
                let seeds = seeds_from(&droplets, me, gossip_port);
                tracing::info!(?seeds, "seeds discovered through the cloud API");
                return seeds;
            }
            Err(e) if start.elapsed() >= DISCOVERY_DEADLINE => {
                tracing::warn!(error = %e, "cannot discover peers through the cloud API; starting without seeds");
                return Vec::new();
            }
            Err(e) => {
                tracing::debug!(error = %e, "peer discovery failed; retrying");
                tokio::time::sleep(DISCOVERY_RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn droplet(name: &str, ip: Option<[u8; 4]>, status: DropletStatus) -> Droplet {
        Droplet {
            id: 1,
            name: name.into(),
            status,
            size_slug: "s-1vcpu-1gb".into(),
            region: "lon1".into(),
            public_ipv4: ip.map(Into::into),
            private_ipv4: None,
            tags: vec![],
            snapshot_ids: vec![],
            image_id: None,
            vpc_uuid: None,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn seeds_are_the_other_active_droplets() {
        let droplets = [
            droplet("master", Some([10, 0, 0, 2]), DropletStatus::Active),
            droplet("web1", Some([10, 0, 0, 3]), DropletStatus::Active),
            droplet("web2", Some([10, 0, 0, 4]), DropletStatus::Off),
            droplet("web3", None, DropletStatus::Active),
        ];
        assert_eq!(
            seeds_from(&droplets, "master", 7401),
            vec!["10.0.0.3:7401".to_string()]
        );
        assert!(seeds_from(&droplets[..1], "master", 7401).is_empty());
    }
}
