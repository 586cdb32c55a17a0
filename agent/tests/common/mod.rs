//! In-process cluster harness: N agents in one runtime on 127.0.0.x
//! loopback addresses, sharing a fresh CA and gossip key in a temp dir.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use infra_agent::config::{AgentConfig, RawConfig};
use infra_agent::fault::FaultSwitch;
use infra_agent::membership::GossipKey;
use infra_agent::node::{NodeDeps, RunningNode, start};
use infra_agent::tls::{Ca, IssuedCert, TlsMaterial, write_private};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A free TCP port and a free UDP port on `ip` (bound then released).
pub fn free_ports(ip: IpAddr) -> (u16, u16) {
    let tcp = std::net::TcpListener::bind((ip, 0)).unwrap();
    let udp = std::net::UdpSocket::bind((ip, 0)).unwrap();
    (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    )
}

pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub key_file: PathBuf,
}

impl Pki {
    pub fn new(cluster_id: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(cluster_id).unwrap();
        ca.write(dir.path()).unwrap();
        let key_file = dir.path().join("gossip.key");
        write_private(&key_file, GossipKey::generate().to_hex().as_bytes()).unwrap();
        Pki { dir, ca, key_file }
    }

    pub fn client(&self, name: &str) -> TlsMaterial {
        TlsMaterial {
            ca_cert_pem: self.ca.cert_pem().to_string(),
            identity: self.ca.issue_client(name).unwrap(),
        }
    }

    pub fn node_cert(&self, name: &str, ip: IpAddr) -> IssuedCert {
        self.ca.issue_node(name, &[ip.to_string()]).unwrap()
    }
}

pub struct TestNode {
    pub config: AgentConfig,
    pub fault: FaultSwitch,
    pub shutdown: CancellationToken,
    pub node: Option<RunningNode>,
}

pub struct Cluster {
    pub pki: Pki,
    pub nodes: Vec<TestNode>,
}

/// A config for node `name` on `ip`, seeded by `seed` (None: the first
/// node, which [`TestNode::start_with`] initializes).
pub fn node_config(pki: &Pki, name: &str, ip: Ipv4Addr, seed: Option<SocketAddr>) -> AgentConfig {
    let ipaddr = IpAddr::V4(ip);
    let (grpc, gossip) = free_ports(ipaddr);
    let dir = pki.dir.path();
    let data_dir = dir.join(name);
    std::fs::create_dir_all(&data_dir).unwrap();
    let (cert, key) = pki.node_cert(name, ipaddr).write(dir, name).unwrap();
    AgentConfig::from_raw(RawConfig {
        node_name: Some(name.into()),
        cluster_id: Some("test".into()),
        data_dir: Some(data_dir),
        grpc_listen: Some(format!("{ip}:{grpc}")),
        gossip_listen: Some(format!("{ip}:{gossip}")),
        seeds: seed.map(|s| vec![s.to_string()]),
        gossip_interval_ms: Some(200),
        ca_cert: Some(dir.join("ca.pem")),
        node_cert: Some(cert),
        node_key: Some(key),
        gossip_key_file: Some(pki.key_file.clone()),
        ..RawConfig::default()
    })
    .unwrap()
}

impl Cluster {
    /// Starts `n` agents on 127.0.0.`base`.. `base+n-1`.
    pub async fn start(n: usize, base: u8) -> Cluster {
        let pki = Pki::new("test");
        let mut nodes: Vec<TestNode> = Vec::new();
        for i in 0..n {
            let ip = Ipv4Addr::new(127, 0, 0, base + i as u8);
            let seed = nodes.first().map(|n| n.config.gossip_advertise);
            let config = node_config(&pki, &format!("n{i}"), ip, seed);
            nodes.push(TestNode::start(config).await);
        }
        Cluster { pki, nodes }
    }

    pub fn node(&self, i: usize) -> &RunningNode {
        self.nodes[i].node.as_ref().expect("node running")
    }

    /// Waits until every running node sees all `n` members live.
    pub async fn converge(&self, n: usize, deadline: Duration) {
        wait_for("membership convergence", deadline, || {
            self.nodes
                .iter()
                .filter_map(|t| t.node.as_ref())
                .all(|node| {
                    let view = node.view().borrow().clone();
                    view.members.len() == n && view.members.values().all(|m| m.live)
                })
        })
        .await;
    }

    /// Waits until every one of the first `n` agents sees every member with
    /// `monitors` monitors (the full ring assignment is in force).
    pub async fn wait_ring(&self, n: usize, monitors: usize) {
        wait_for("full ring assignment", Duration::from_secs(5), || {
            (0..n).all(|i| {
                self.node(i)
                    .status()
                    .members
                    .iter()
                    .all(|m| m.monitors.len() == monitors)
            })
        })
        .await;
    }

    pub async fn stop_all(&mut self) {
        for t in &mut self.nodes {
            if let Some(node) = t.node.take() {
                node.kill().await;
            }
        }
    }
}

impl TestNode {
    pub async fn start(config: AgentConfig) -> TestNode {
        TestNode::start_with(config, NodeDeps::default()).await
    }

    pub async fn start_with(config: AgentConfig, deps: NodeDeps) -> TestNode {
        let fault = deps.fault.clone();
        let shutdown = CancellationToken::new();
        let node = start(config.clone(), deps, shutdown.clone()).await.unwrap();
        // A node without seeds is the first one: the harness forms the
        // cluster with it, as `infractl orchestrate` does (a restarted one
        // keeps its Raft state and is not initialized again).
        if config.seeds.is_empty() && !node.consensus().is_initialized().await.unwrap() {
            node.initialize(&config.cluster_id).await.unwrap();
        }
        TestNode {
            config,
            fault,
            shutdown,
            node: Some(node),
        }
    }
}

/// Polls `cond` every 20 ms until it holds; panics after `deadline`.
pub async fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    loop {
        interval.tick().await;
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
    }
}

/// Checks `cond` every 20 ms for `period`; returns false at the first miss.
pub async fn holds_for(period: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    while start.elapsed() < period {
        interval.tick().await;
        if !cond() {
            return false;
        }
    }
    true
}

pub fn data_dir(config: &AgentConfig) -> &Path {
    &config.data_dir
}
