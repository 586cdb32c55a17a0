//! A cluster of real `infra-agent` processes on loopback addresses: writes
//! the PKI, gossip key and one TOML config per agent into a directory,
//! spawns the binaries, reads their status over mTLS, and delivers signals
//! (SIGKILL, SIGSTOP/SIGCONT). Used by the multi-process tests and the
//! detection benchmark; every child is killed when the cluster is dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use infra_proto::v1::control_client::ControlClient;
use infra_proto::v1::{InitializeRequest, StatusRequest};
use tonic::transport::{Channel, Endpoint};

use crate::membership::GossipKey;
use crate::tls::{Ca, TlsMaterial, write_private};

/// The cluster id (and CA name) of a local cluster.
pub const CLUSTER_ID: &str = "local";

/// How long [`ProcessCluster::initialize`] waits for agent 0.
pub const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("status of {node} unavailable: {reason}")]
    Status { node: String, reason: String },
    #[error("signal {signal} to {node} failed")]
    Signal { node: String, signal: &'static str },
}

/// One agent process.
#[derive(Debug)]
pub struct AgentProcess {
    pub name: String,
    pub grpc: SocketAddr,
    pub gossip: SocketAddr,
    pub config: PathBuf,
    child: Option<Child>,
}

/// Real agent processes; dropped → all killed.
pub struct ProcessCluster {
    binary: PathBuf,
    pub agents: Vec<AgentProcess>,
    client: TlsMaterial,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LocalClusterError + '_ {
    move |source| LocalClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn free_ports(ip: Ipv4Addr) -> std::io::Result<(u16, u16)> {
    let tcp = TcpListener::bind((ip, 0))?;
    let udp = UdpSocket::bind((ip, 0))?;
    Ok((tcp.local_addr()?.port(), udp.local_addr()?.port()))
}

impl ProcessCluster {
    /// Writes everything into `dir` and starts `n` agents on 127.0.0.`base`
    /// upwards; the others join through agent 0, which [`initialize`]
    /// makes the first member.
    ///
    /// [`initialize`]: ProcessCluster::initialize
    pub fn start(
        binary: &Path,
        dir: &Path,
        n: usize,
        base: u8,
    ) -> Result<ProcessCluster, LocalClusterError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ca = Ca::create(CLUSTER_ID)?;
        ca.write(dir)?;
        let key_file = dir.join("gossip.key");
        write_private(&key_file, GossipKey::generate().to_hex().as_bytes())?;
        let mut agents: Vec<AgentProcess> = Vec::new();
        for i in 0..n {
            let name = format!("n{i}");
            let ip = Ipv4Addr::new(127, 0, 0, base + i as u8);
            let (grpc, gossip) = free_ports(ip).map_err(io_err(dir))?;
            let (cert, key) = ca.issue_node(&name, &[ip.to_string()])?.write(dir, &name)?;
            let seed = agents.first().map(|a| a.gossip);
            let config = dir.join(format!("{name}.toml"));
            let text = format!(
                "version = 1\nnode_name = \"{name}\"\ncluster_id = \"{CLUSTER_ID}\"\n\
                 data_dir = {data:?}\ngrpc_listen = \"{ip}:{grpc}\"\n\
                 gossip_listen = \"{ip}:{gossip}\"\n\
                 seeds = [{seeds}]\nca_cert = {ca:?}\nnode_cert = {cert:?}\n\
                 node_key = {key:?}\ngossip_key_file = {gk:?}\n",
                data = dir.join(&name).display().to_string(),
                seeds = seed.map(|s| format!("\"{s}\"")).unwrap_or_default(),
                ca = dir.join("ca.pem").display().to_string(),
                cert = cert.display().to_string(),
                key = key.display().to_string(),
                gk = key_file.display().to_string(),
            );
            std::fs::write(&config, text).map_err(io_err(&config))?;
            agents.push(AgentProcess {
                name,
                grpc: (ip, grpc).into(),
                gossip: (ip, gossip).into(),
                config,
                child: None,
            });
        }
        let client = TlsMaterial {
            ca_cert_pem: ca.cert_pem().to_string(),
            identity: ca.issue_client("infractl")?,
        };
        let mut cluster = ProcessCluster {
            binary: binary.to_path_buf(),
            agents,
            client,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        Ok(cluster)
    }

    /// (Re)starts agent `i` from its config.
    pub fn spawn(&mut self, i: usize) -> Result<(), LocalClusterError> {
        let agent = &mut self.agents[i];
        let child = Command::new(&self.binary)
            .args(["run", "--config"])
            .arg(&agent.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| LocalClusterError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        agent.child = Some(child);
        Ok(())
    }

    /// A Control client to agent `i` (mTLS, the operator's certificate).
    async fn control(
        &self,
        i: usize,
        timeout: Duration,
    ) -> Result<ControlClient<Channel>, LocalClusterError> {
        let agent = &self.agents[i];
        let err = |reason: String| LocalClusterError::Status {
            node: agent.name.clone(),
            reason,
        };
        let channel = Endpoint::from_shared(format!("https://{}", agent.grpc))
            .map_err(|e| err(e.to_string()))?
            .tls_config(self.client.client_config())
            .map_err(|e| err(e.to_string()))?
            .connect_timeout(Duration::from_millis(500))
            .timeout(timeout)
            .connect()
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(ControlClient::new(channel))
    }

    /// Forms the cluster: `Initialize` on agent 0, as the first `infractl
    /// orchestrate` does, retried until agent 0 answers (at most
    /// [`INITIALIZE_TIMEOUT`]). The other agents join it on their own.
    pub async fn initialize(&self) -> Result<(), LocalClusterError> {
        let start = tokio::time::Instant::now();
        loop {
            let attempt = async {
                let mut client = self.control(0, Duration::from_secs(15)).await?;
                client
                    .initialize(InitializeRequest {
                        cluster_id: CLUSTER_ID.into(),
                    })
                    .await
                    .map_err(|s| LocalClusterError::Status {
                        node: self.agents[0].name.clone(),
                        reason: s.message().to_string(),
                    })
            };
            match attempt.await {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() >= INITIALIZE_TIMEOUT => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The status JSON of agent `i` (Control.Status over mTLS).
    pub async fn status(&self, i: usize) -> Result<serde_json::Value, LocalClusterError> {
        let agent = &self.agents[i];
        let err = |reason: String| LocalClusterError::Status {
            node: agent.name.clone(),
            reason,
        };
        let reply = self
            .control(i, Duration::from_secs(1))
            .await?
            .status(StatusRequest {})
            .await
            .map_err(|s| err(s.message().to_string()))?;
        serde_json::from_str(&reply.into_inner().status_json).map_err(|e| err(e.to_string()))
    }

    /// Client TLS (an `infractl` certificate of this cluster's CA).
    pub fn client_tls(&self) -> tonic::transport::ClientTlsConfig {
        self.client.client_config()
    }

    /// Process id of agent `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.agents[i].child.as_ref().map(|c| c.id())
    }

    /// SIGKILL agent `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.agents[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` ("STOP", "CONT", "TERM") to agent `i`.
    pub fn signal(&self, i: usize, signal: &'static str) -> Result<(), LocalClusterError> {
        let agent = &self.agents[i];
        let failed = || LocalClusterError::Signal {
            node: agent.name.clone(),
            signal,
        };
        let pid = agent.child.as_ref().ok_or_else(failed)?.id();
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok { Ok(()) } else { Err(failed()) }
    }

    /// Waits for agent `i` to exit (after SIGTERM); `None` on timeout.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.agents[i].child.as_mut()?;
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                self.agents[i].child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for i in 0..self.agents.len() {
            let _ = self.signal(i, "CONT");
            self.kill(i);
        }
    }
}

/// Names of members in `status` with the given state.
pub fn members_in_state(status: &serde_json::Value, state: &str) -> Vec<String> {
    status["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["state"] == state)
                .filter_map(|m| m["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Targets of the confirmed failures in `status`.
pub fn confirmed_targets(status: &serde_json::Value) -> Vec<String> {
    status["confirmed_failures"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["target"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
