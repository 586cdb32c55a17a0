//! In-process Raft clusters over real gRPC on 127.0.0.x, with a
//! link-cutting channel factory for partitions. Shared by the raft_* tests.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infra_agent::api::raft::RaftService;
use infra_agent::consensus::{
    ChannelError, ChannelFactory, Consensus, ConsensusConfig, NodeInfo, PlainChannels,
};
use infra_agent::state::{Command, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

/// Directed links that are cut: (from addr, to addr), plus a loss rate
/// applied to every RPC (deterministic pseudo-random sequence).
#[derive(Default)]
pub struct Partition {
    cut: Mutex<HashSet<(String, String)>>,
    loss_percent: AtomicU64,
    rpc_count: AtomicU64,
}

impl Partition {
    fn is_cut(&self, from: &str, to: &str) -> bool {
        let loss = self.loss_percent.load(Ordering::Relaxed);
        if loss > 0 {
            // SplitMix64 over the RPC counter: reproducible, well spread.
            let mut z = self
                .rpc_count
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            if (z ^ (z >> 31)) % 100 < loss {
                return true;
            }
        }
        let cut = self.cut.lock().unwrap();
        cut.contains(&(from.to_string(), to.to_string()))
    }
}

/// Plain channels whose links can be cut by the shared [`Partition`].
pub struct FaultyChannels {
    me: String,
    partition: Arc<Partition>,
}

impl ChannelFactory for FaultyChannels {
    fn channel(&self, addr: &str) -> Result<Channel, ChannelError> {
        PlainChannels.channel(addr)
    }

    fn link_up(&self, addr: &str) -> bool {
        !self.partition.is_cut(&self.me, addr)
    }
}

pub struct Node {
    pub consensus: Consensus,
    token: CancellationToken,
    server: JoinHandle<()>,
}

pub struct Cluster {
    _root: tempfile::TempDir,
    pub infos: Vec<NodeInfo>,
    dirs: Vec<PathBuf>,
    pub nodes: Vec<Option<Node>>,
    pub config: ConsensusConfig,
    partition: Arc<Partition>,
}

/// Polls `cond` every 10 ms until it returns `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn event(msg: &str) -> Command {
    Command::RecordEvent {
        message: msg.to_string(),
        at_ms: 1,
    }
}

impl Cluster {
    /// Reserves addresses and data dirs for `n` nodes; nothing runs yet.
    pub async fn new(n: usize, config: ConsensusConfig) -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut infos = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..n {
            // Learn a free port on this node's own loopback address.
            let l = TcpListener::bind(format!("127.0.0.{}:0", i + 2))
                .await
                .unwrap();
            infos.push(NodeInfo::new(
                format!("node{i}"),
                l.local_addr().unwrap().to_string(),
            ));
            dirs.push(root.path().join(format!("node{i}")));
        }
        Self {
            _root: root,
            infos,
            dirs,
            nodes: (0..n).map(|_| None).collect(),
            config,
            partition: Arc::new(Partition::default()),
        }
    }

    /// Gives stopped node `i` a new address (as a droplet restored with a
    /// new IP), keeping its name and data dir.
    pub async fn move_node(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "stop node{i} first");
        let l = TcpListener::bind(format!("127.0.0.{}:0", i + 20))
            .await
            .unwrap();
        self.infos[i].addr = l.local_addr().unwrap().to_string();
    }

    /// Starts (or restarts) node `i` with its data dir and gRPC server.
    pub async fn start(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node{i} already running");
        let info = self.infos[i].clone();
        let token = CancellationToken::new();
        let channels = Arc::new(FaultyChannels {
            me: info.addr.clone(),
            partition: self.partition.clone(),
        });
        let consensus = Consensus::start(
            info.clone(),
            &self.dirs[i],
            &self.config,
            channels,
            token.child_token(),
        )
        .await
        .unwrap();
        let listener = bind_retry(&info.addr).await;
        let service = RaftService::new(&consensus).into_server();
        let stop = token.clone();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), stop.cancelled())
                .await
                .unwrap();
        });
        self.nodes[i] = Some(Node {
            consensus,
            token,
            server,
        });
    }

    /// Stops node `i` (Raft and its server), keeping its data dir.
    pub async fn stop(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("node running");
        node.token.cancel();
        // Two handles wait together: both return once Raft is down.
        let other = node.consensus.clone();
        tokio::join!(node.consensus.stopped(), other.stopped());
        let running = node.consensus.raft_metrics().borrow().running_state.clone();
        assert!(running.is_err(), "node{i} still running after stopped()");
        let mut server = node.server;
        if tokio::time::timeout(Duration::from_secs(3), &mut server)
            .await
            .is_err()
        {
            server.abort();
            let _ = server.await;
        }
    }

    pub fn node(&self, i: usize) -> &Consensus {
        &self.nodes[i].as_ref().expect("node running").consensus
    }

    pub fn running(&self) -> impl Iterator<Item = (usize, &Consensus)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, &n.consensus)))
    }

    /// Starts all nodes, bootstraps node 0, adds the rest as learners and
    /// promotes everyone to voter.
    pub async fn form(&mut self) {
        for i in 0..self.infos.len() {
            self.start(i).await;
        }
        assert!(self.node(0).bootstrap().await.unwrap());
        self.wait_leader_among(&[0]).await;
        for i in 1..self.infos.len() {
            self.node(0)
                .add_learner(self.infos[i].clone())
                .await
                .unwrap();
        }
        let voters: BTreeSet<u64> = self.infos.iter().map(|n| n.id()).collect();
        self.node(0).change_voters(voters.clone()).await.unwrap();
        assert_eq!(self.node(0).metrics().voters, voters);
    }

    pub fn index_of(&self, id: u64) -> usize {
        self.infos
            .iter()
            .position(|n| n.id() == id)
            .expect("known id")
    }

    /// Waits until one of `among` is leader in its own view; returns its index.
    pub async fn wait_leader_among(&self, among: &[usize]) -> usize {
        let views: Vec<String> = self
            .running()
            .map(|(i, n)| {
                let m = n.metrics();
                format!(
                    "node{i}: {:?} term {} leader {:?}",
                    m.state, m.term, m.leader
                )
            })
            .collect();
        let what = format!("a leader among {among:?} (at start: {views:?})");
        wait_for(&what, Duration::from_secs(10), || async {
            among.iter().copied().find(|&i| {
                self.nodes[i].as_ref().is_some_and(|n| {
                    let m = n.consensus.metrics();
                    m.leader == Some(m.id) && m.state == openraft::ServerState::Leader
                })
            })
        })
        .await
    }

    /// Writes through whichever running node in `among` accepts the write,
    /// retrying NotLeader/timeouts until `timeout`. An attempt that timed
    /// out may still commit later, so a command can apply more than once:
    /// use it only with commands where that is harmless.
    pub async fn write_via(&self, among: &[usize], cmd: Command, timeout: Duration) -> Response {
        wait_for("a successful write", timeout, || async {
            for &i in among {
                let Some(n) = self.nodes[i].as_ref() else {
                    continue;
                };
                let m = n.consensus.metrics();
                if m.leader != Some(m.id) {
                    continue;
                }
                let w = tokio::time::timeout(
                    Duration::from_millis(500),
                    n.consensus.write(cmd.clone()),
                );
                if let Ok(Ok(resp)) = w.await {
                    return Some(resp);
                }
            }
            None
        })
        .await
    }

    /// Cuts every link between `group` and the other nodes, both ways.
    pub fn isolate(&self, group: &[usize]) {
        let mut cut = self.partition.cut.lock().unwrap();
        for &a in group {
            for b in 0..self.infos.len() {
                if !group.contains(&b) {
                    let (x, y) = (self.infos[a].addr.clone(), self.infos[b].addr.clone());
                    cut.insert((x.clone(), y.clone()));
                    cut.insert((y, x));
                }
            }
        }
    }

    /// Drops `percent` % of all RPCs (0 turns loss off).
    pub fn set_loss(&self, percent: u64) {
        self.partition
            .loss_percent
            .store(percent, Ordering::Relaxed);
    }

    pub fn heal(&self) {
        self.partition.cut.lock().unwrap().clear();
    }

    /// Whether node `i`'s state has an event with message `msg`.
    pub fn has_event(&self, i: usize, msg: &str) -> bool {
        self.nodes[i].as_ref().is_some_and(|n| {
            n.consensus
                .local_state()
                .events
                .iter()
                .any(|e| e.message == msg)
        })
    }

    /// Stops every running node.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // On a panic mid-test: stop Raft and the servers of any running node.
        for n in self.nodes.iter().flatten() {
            n.token.cancel();
            n.server.abort();
        }
    }
}

async fn bind_retry(addr: &str) -> TcpListener {
    wait_for("the node's port", Duration::from_secs(5), || async {
        TcpListener::bind(addr).await.ok()
    })
    .await
}

/// p-th percentile (0..=100) of `samples` in milliseconds.
pub fn percentile(samples: &[Duration], p: usize) -> u128 {
    let mut v: Vec<u128> = samples.iter().map(|d| d.as_millis()).collect();
    v.sort_unstable();
    let idx = ((v.len() - 1) * p).div_ceil(100);
    v[idx]
}
