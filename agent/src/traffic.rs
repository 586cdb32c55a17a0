//! Byte counters per traffic class and a counting TCP connector for tonic
//! channels, so that the footprint of gossip, health probes and Raft can be
//! measured separately on a running agent (status JSON `traffic`).
//!
//! gRPC bytes are counted on the connections this agent opens (client
//! side), after TLS: what goes over the wire minus TCP/IP headers. The
//! server side of the same connections is counted by the peer that opened
//! them, so the cluster-wide sum counts every byte once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::codegen::Service;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

/// Bytes sent and received by one traffic class.
#[derive(Debug, Default)]
pub struct ByteCounter {
    sent: AtomicU64,
    received: AtomicU64,
}

impl ByteCounter {
    pub fn add_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn counts(&self) -> ByteCounts {
        ByteCounts {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        }
    }
}

/// A plain copy of a [`ByteCounter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ByteCounts {
    pub sent: u64,
    pub received: u64,
}

/// The counters of one agent.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Authenticated gossip datagrams on the gossip socket (UDP payload).
    pub gossip: ByteCounter,
    /// Health calls this agent makes: probes, indirect probes, votes.
    pub health: ByteCounter,
    /// Raft RPCs this agent sends (and control calls it forwards).
    pub raft: ByteCounter,
}

/// What the status reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficCounts {
    pub gossip: ByteCounts,
    pub health: ByteCounts,
    pub raft: ByteCounts,
}

impl Traffic {
    pub fn counts(&self) -> TrafficCounts {
        TrafficCounts {
            gossip: self.gossip.counts(),
            health: self.health.counts(),
            raft: self.raft.counts(),
        }
    }
}

/// A TCP stream that adds what it reads and writes to a counter.
pub struct CountingStream {
    inner: TcpStream,
    counter: Arc<dyn AsRef<ByteCounter> + Send + Sync>,
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        (*self.counter).as_ref().add_received(n);
        res
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &res {
            (*self.counter).as_ref().add_sent(*n);
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Which counter of a shared [`Traffic`] a connector feeds.
#[derive(Clone, Copy, Debug)]
pub enum Class {
    Health,
    Raft,
}

struct Picked(Arc<Traffic>, Class);

impl AsRef<ByteCounter> for Picked {
    fn as_ref(&self) -> &ByteCounter {
        match self.1 {
            Class::Health => &self.0.health,
            Class::Raft => &self.0.raft,
        }
    }
}

/// A tonic connector: plain TCP (no delay), counted; TLS goes on top.
#[derive(Clone)]
pub struct CountingConnector {
    counter: Arc<dyn AsRef<ByteCounter> + Send + Sync>,
}

impl CountingConnector {
    pub fn new(traffic: Arc<Traffic>, class: Class) -> Self {
        Self {
            counter: Arc::new(Picked(traffic, class)),
        }
    }
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TokioIo<CountingStream>>> + Send>>;

impl Service<Uri> for CountingConnector {
    type Response = TokioIo<CountingStream>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let counter = self.counter.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
            let port = uri.port_u16().unwrap_or(443);
            let inner = TcpStream::connect((host, port)).await?;
            inner.set_nodelay(true)?;
            Ok(TokioIo::new(CountingStream { inner, counter }))
        })
    }
}

/// A lazily connected channel whose bytes go to `class` of `traffic`.
pub fn counted_channel(
    endpoint: Endpoint,
    connect_timeout: Duration,
    traffic: &Arc<Traffic>,
    class: Class,
) -> Channel {
    endpoint
        .connect_timeout(connect_timeout)
        .connect_with_connector_lazy(CountingConnector::new(traffic.clone(), class))
}
