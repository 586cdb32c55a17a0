//! gRPC clients of the Health service over mutual TLS: the production
//! [`Prober`] and the vote broadcaster.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use infra_proto::v1::health_client::HealthClient;
use infra_proto::v1::{FailureReport, ProbeRequest, ProbeViaRequest};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::{Aggregator, ProbeAnswer, ProbeError, Prober, VoteSink};
use crate::fault::FaultSwitch;
use crate::membership::{MembershipView, Presence};
use crate::quorum::Vote;
use crate::traffic::{Class, Traffic, counted_channel};

/// Health clients with one lazily connected channel per peer address.
pub struct GrpcProber {
    from: String,
    fault: FaultSwitch,
    tls: ClientTlsConfig,
    channels: Mutex<HashMap<SocketAddr, Channel>>,
    seq: AtomicU64,
    traffic: Option<Arc<Traffic>>,
}

impl GrpcProber {
    pub fn new(from: String, tls: ClientTlsConfig) -> GrpcProber {
        GrpcProber::with_fault(from, tls, FaultSwitch::default())
    }

    /// A prober whose calls fail while `fault` isolates the agent.
    pub fn with_fault(from: String, tls: ClientTlsConfig, fault: FaultSwitch) -> GrpcProber {
        GrpcProber {
            from,
            fault,
            tls,
            channels: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            traffic: None,
        }
    }

    /// Counts the bytes of every call in `traffic.health`.
    pub fn with_traffic(mut self, traffic: Arc<Traffic>) -> GrpcProber {
        self.traffic = Some(traffic);
        self
    }

    fn client(&self, addr: SocketAddr) -> Result<HealthClient<Channel>, ProbeError> {
        if self.fault.is_isolated() || self.fault.loses() {
            return Err(ProbeError::Failed {
                addr,
                reason: "isolated or lost by fault injection".into(),
            });
        }
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = channels.get(&addr) {
            return Ok(HealthClient::new(ch.clone()));
        }
        let failed = |reason: String| ProbeError::Failed { addr, reason };
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| failed(e.to_string()))?
            .tls_config(self.tls.clone())
            .map_err(|e| failed(e.to_string()))?;
        let connect_timeout = Duration::from_secs(2);
        let channel = match &self.traffic {
            Some(t) => counted_channel(endpoint, connect_timeout, t, Class::Health),
            None => endpoint
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .connect_lazy(),
        };
        channels.insert(addr, channel.clone());
        Ok(HealthClient::new(channel))
    }

    /// Sends one failure report; returns whether the receiver counted it.
    pub async fn report(
        &self,
        addr: SocketAddr,
        vote: &Vote,
        timeout: Duration,
    ) -> Result<bool, ProbeError> {
        let mut client = self.client(addr)?;
        let req = FailureReport {
            observer: vote.observer.clone(),
            target: vote.target.clone(),
            target_generation: vote.target_generation,
            at_ms: vote.at_ms,
            observer_sees_down: vote.observer_sees_down,
        };
        match tokio::time::timeout(timeout, client.report_failure(req)).await {
            Err(_) => Err(ProbeError::Timeout { addr, timeout }),
            Ok(Err(status)) => Err(ProbeError::Failed {
                addr,
                reason: status.message().to_string(),
            }),
            Ok(Ok(reply)) => Ok(reply.into_inner().accepted),
        }
    }
}

#[async_trait]
impl Prober for GrpcProber {
    async fn probe(&self, addr: SocketAddr, timeout: Duration) -> Result<ProbeAnswer, ProbeError> {
        let mut client = self.client(addr)?;
        let req = ProbeRequest {
            from: self.from.clone(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        match tokio::time::timeout(timeout, client.probe(req)).await {
            Err(_) => Err(ProbeError::Timeout { addr, timeout }),
            Ok(Err(status)) => Err(ProbeError::Failed {
                addr,
                reason: status.message().to_string(),
            }),
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                Ok(ProbeAnswer {
                    node: reply.node,
                    generation: reply.generation,
                })
            }
        }
    }

    async fn probe_via(
        &self,
        helper: SocketAddr,
        target: &str,
        target_addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Option<u64>, ProbeError> {
        let mut client = self.client(helper)?;
        let req = ProbeViaRequest {
            from: self.from.clone(),
            target: target.to_string(),
            target_addr: target_addr.to_string(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        };
        // The helper needs the whole timeout for its own probe.
        let outer = timeout * 2;
        match tokio::time::timeout(outer, client.probe_via(req)).await {
            Err(_) => Err(ProbeError::Timeout {
                addr: helper,
                timeout: outer,
            }),
            Ok(Err(status)) => Err(ProbeError::Failed {
                addr: helper,
                reason: status.message().to_string(),
            }),
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                Ok(reply.reachable.then_some(reply.target_generation))
            }
        }
    }
}

/// Casts each vote to the local aggregator and, over gRPC, to every other
/// known member that has not left, so every agent reaches the same verdict.
/// Once Raft is integrated, a leader-only sink replaces this.
pub struct BroadcastVotes {
    pub me: String,
    pub local: Arc<Aggregator>,
    pub clients: Arc<GrpcProber>,
    pub view: watch::Receiver<Arc<MembershipView>>,
    pub timeout: Duration,
}

#[async_trait]
impl VoteSink for BroadcastVotes {
    async fn cast(&self, vote: Vote) {
        if let Err(reason) = self.local.record_vote(vote.clone()) {
            tracing::debug!(?reason, target = %vote.target, "own vote not counted");
        }
        let peers: Vec<SocketAddr> = self
            .view
            .borrow()
            .members
            .values()
            .filter(|m| m.name != self.me && m.name != vote.target)
            .filter(|m| m.live && m.info.presence == Presence::Up)
            .map(|m| m.info.grpc_addr)
            .collect();
        let mut sends = JoinSet::new();
        for addr in peers {
            let clients = self.clients.clone();
            let vote = vote.clone();
            let timeout = self.timeout;
            sends.spawn(async move { (addr, clients.report(addr, &vote, timeout).await) });
        }
        while let Some(done) = sends.join_next().await {
            if let Ok((addr, Err(err))) = done {
                tracing::debug!(%addr, %err, "vote not delivered");
            }
        }
    }
}

/// Where the current Raft leader's gRPC endpoint is; consensus provides it.
pub trait LeaderLookup: Send + Sync + 'static {
    fn leader(&self) -> Option<SocketAddr>;
}

/// A leader published on a watch channel (`None` while there is none).
impl LeaderLookup for watch::Receiver<Option<SocketAddr>> {
    fn leader(&self) -> Option<SocketAddr> {
        *self.borrow()
    }
}

/// Sends each vote to the current leader only (the recovery leader decides).
pub struct LeaderVotes {
    pub leader: Arc<dyn LeaderLookup>,
    pub clients: Arc<GrpcProber>,
    pub timeout: Duration,
}

#[async_trait]
impl VoteSink for LeaderVotes {
    async fn cast(&self, vote: Vote) {
        let Some(addr) = self.leader.leader() else {
            tracing::warn!(target_node = %vote.target, "no leader known: vote not sent");
            return;
        };
        match self.clients.report(addr, &vote, self.timeout).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(%addr, target_node = %vote.target, "leader did not count the vote")
            }
            Err(err) => tracing::warn!(%addr, %err, "vote not delivered to the leader"),
        }
    }
}

/// Unix milliseconds now.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
