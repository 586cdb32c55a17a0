//! The chitchat `Transport` that authenticates every gossip datagram.
//!
//! chitchat does not expose its envelope encoding, so each socket owns a
//! private loopback codec: a chitchat `UdpSocket` and a raw socket on
//! 127.0.0.1 that bounce envelopes to bytes (outgoing) and bytes to envelopes
//! (incoming). Only authenticated bytes ever reach chitchat's decoder.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket as ChitchatUdp};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::auth::{AuthStats, Authenticator, GossipKey};
use crate::fault::FaultSwitch;
use crate::traffic::Traffic;

const MAX_DATAGRAM: usize = 65_507;
/// How far a datagram's timestamp may be from our clock.
pub const DEFAULT_AUTH_WINDOW_MS: u64 = 10_000;
const CODEC_TIMEOUT: Duration = Duration::from_millis(500);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Opens authenticated gossip sockets.
pub struct AuthTransport {
    key: GossipKey,
    window_ms: u64,
    stats: Arc<AuthStats>,
    fault: FaultSwitch,
    traffic: Arc<Traffic>,
}

impl AuthTransport {
    pub fn new(key: GossipKey, stats: Arc<AuthStats>, fault: FaultSwitch) -> AuthTransport {
        AuthTransport {
            key,
            window_ms: DEFAULT_AUTH_WINDOW_MS,
            stats,
            fault,
            traffic: Arc::default(),
        }
    }

    /// Counts the datagrams' bytes in `traffic.gossip`.
    pub fn with_traffic(mut self, traffic: Arc<Traffic>) -> AuthTransport {
        self.traffic = traffic;
        self
    }
}

#[async_trait]
impl Transport for AuthTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let net = UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind gossip socket {listen_addr}/UDP"))?;
        let loopback: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
        let codec = ChitchatUdp::open(loopback).await?;
        let raw = UdpSocket::bind(loopback).await?;
        Ok(Box::new(AuthSocket {
            net,
            codec_addr: codec.local_addr()?,
            raw_addr: raw.local_addr()?,
            codec,
            raw,
            auth: Authenticator::new(&self.key, self.window_ms, self.stats.clone()),
            buf: vec![0; MAX_DATAGRAM],
            pending: None,
            fault: self.fault.clone(),
            traffic: self.traffic.clone(),
        }))
    }
}

struct AuthSocket {
    net: UdpSocket,
    codec: ChitchatUdp,
    codec_addr: SocketAddr,
    raw: UdpSocket,
    raw_addr: SocketAddr,
    auth: Authenticator,
    buf: Vec<u8>,
    /// An authenticated payload handed to the codec and not yet decoded:
    /// its real sender, size and a decode deadline.
    pending: Option<(SocketAddr, usize, Instant)>,
    fault: FaultSwitch,
    traffic: Arc<Traffic>,
}

impl AuthSocket {
    async fn encode(&mut self, envelope: ChitchatEnvelope) -> anyhow::Result<Vec<u8>> {
        self.codec.send(self.raw_addr, envelope).await?;
        let deadline = Instant::now() + CODEC_TIMEOUT;
        loop {
            let (n, from) = tokio::time::timeout_at(deadline, self.raw.recv_from(&mut self.buf))
                .await
                .context("gossip codec did not answer")??;
            if from == self.codec_addr {
                return Ok(self.buf[..n].to_vec());
            }
        }
    }
}

#[async_trait]
impl Socket for AuthSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.net.local_addr()?)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let payload = self.encode(envelope).await?;
        if self.fault.drops_gossip() {
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let packet = self.auth.seal(&payload, unix_ms(), rand::random());
        match self.net.send_to(&packet, to).await {
            Ok(num_bytes_sent) => {
                self.traffic.gossip.add_sent(num_bytes_sent);
                Ok(SendOutcome { num_bytes_sent })
            }
            // An unreachable peer is not a broken socket.
            Err(err) => {
                tracing::debug!(%to, %err, "gossip send failed");
                Ok(SendOutcome { num_bytes_sent: 0 })
            }
        }
    }

    /// Cancel-safe: an authenticated payload already handed to the codec is
    /// remembered in `pending` and picked up by the next call.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            if let Some((from, n, deadline)) = self.pending {
                match tokio::time::timeout_at(deadline, self.codec.recv()).await {
                    Ok(Ok(out)) => {
                        self.pending = None;
                        if out.from_addr != self.raw_addr {
                            continue;
                        }
                        return Ok(RecvOutcome {
                            from_addr: from,
                            envelope: out.envelope,
                            num_bytes_received: n,
                        });
                    }
                    Ok(Err(err)) => return Err(err),
                    // Authenticated but undecodable: drop it.
                    Err(_) => {
                        self.pending = None;
                        continue;
                    }
                }
            }
            let (n, from) = match self.net.recv_from(&mut self.buf).await {
                Ok(r) => r,
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    continue;
                }
                Err(err) => return Err(err).context("gossip recv failed"),
            };
            self.traffic.gossip.add_received(n);
            if self.fault.drops_gossip() {
                continue;
            }
            let payload = match self.auth.open(&self.buf[..n], unix_ms()) {
                Ok(payload) => payload.to_vec(),
                Err(reason) => {
                    tracing::debug!(%from, ?reason, "dropped gossip datagram");
                    continue;
                }
            };
            self.pending = Some((from, n, Instant::now() + CODEC_TIMEOUT));
            if let Err(err) = self.raw.send_to(&payload, self.codec_addr).await {
                // Loopback hiccup (e.g. ENOBUFS): lose this datagram only.
                tracing::debug!(%err, "gossip codec hand-off failed");
                self.pending = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chitchat::{ChitchatMessage, ProtocolVersion};

    use super::*;

    fn envelope() -> ChitchatEnvelope {
        ChitchatEnvelope {
            version: ProtocolVersion::V0,
            message: ChitchatMessage::BadCluster,
        }
    }

    fn transport(key: &GossipKey) -> (AuthTransport, Arc<AuthStats>) {
        let stats = Arc::new(AuthStats::default());
        let t = AuthTransport::new(key.clone(), stats.clone(), FaultSwitch::default());
        (t, stats)
    }

    #[tokio::test]
    async fn envelopes_roundtrip_and_foreign_keys_are_dropped() {
        let key = GossipKey::generate();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (ta, _) = transport(&key);
        let (tb, stats_b) = transport(&key);
        let (tc, _) = transport(&GossipKey::generate());
        let mut a = ta.open(any).await.unwrap();
        let mut b = tb.open(any).await.unwrap();
        let mut c = tc.open(any).await.unwrap();
        let b_addr = b.local_addr().unwrap();

        // A foreign key is dropped; recv keeps waiting (and is cancellable).
        c.send(b_addr, envelope()).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(200), b.recv()).await;
        assert!(waited.is_err(), "forged datagram delivered");
        assert_eq!(stats_b.counts().forged, 1);

        // The cluster key goes through, attributed to the real sender.
        let sent = a.send(b_addr, envelope()).await.unwrap();
        assert!(sent.num_bytes_sent > 0);
        let got = tokio::time::timeout(Duration::from_secs(2), b.recv())
            .await
            .expect("delivered")
            .unwrap();
        assert_eq!(got.envelope, envelope());
        assert_eq!(got.from_addr, a.local_addr().unwrap());
        assert_eq!(stats_b.counts().accepted, 1);
    }
}
