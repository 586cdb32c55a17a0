//! `Fanout`: queues messages on a bounded channel and sends each to every
//! channel of its audience from one owned task, with bounded retries and
//! backoff. Callers (the recovery saga) never wait on SMTP or HTTP: a full
//! queue drops the message (counted, logged).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Channel, ChannelKind, DeployConfirmation, Message, render_deploy, render_notice};
use crate::recovery::{Notice, Notifier};

/// Messages waiting to be sent before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 64;

/// Who receives a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every channel (recovery notices).
    All,
    /// E-mail only (heartbeats, deploy confirmations).
    Email,
}

impl Audience {
    fn includes(self, kind: ChannelKind) -> bool {
        match self {
            Audience::All => true,
            Audience::Email => kind == ChannelKind::Email,
        }
    }
}

/// How often a failed send is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// Wait before attempt `n + 1` (n >= 1): doubling, capped.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What the fan-out did so far.
#[derive(Debug, Default)]
pub struct Counters {
    /// Deliveries to one channel that succeeded.
    pub sent: AtomicU64,
    /// Deliveries given up after the retries.
    pub failed: AtomicU64,
    /// Messages dropped because the queue was full or closed.
    pub dropped: AtomicU64,
}

impl Counters {
    /// `(sent, failed, dropped)`.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// The sending side; cheap to clone. Implements [`Notifier`].
#[derive(Clone)]
pub struct Fanout {
    tx: mpsc::Sender<(Audience, Message)>,
    counters: Arc<Counters>,
    subject_prefix: String,
}

impl Fanout {
    /// Starts the sending task over `channels`; it stops when `shutdown`
    /// is cancelled or every [`Fanout`] is dropped. The caller joins it.
    pub fn start(
        channels: Vec<Arc<dyn Channel>>,
        retry: Retry,
        subject_prefix: String,
        shutdown: CancellationToken,
    ) -> (Fanout, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(channels, retry, rx, counters.clone(), shutdown));
        (
            Fanout {
                tx,
                counters,
                subject_prefix,
            },
            task,
        )
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn subject_prefix(&self) -> &str {
        &self.subject_prefix
    }

    /// Queues `message` for `audience` without waiting; `false` when it was dropped.
    pub fn send(&self, audience: Audience, message: Message) -> bool {
        match self.tx.try_send((audience, message)) {
            Ok(()) => true,
            Err(e) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                let (_, m) = e.into_inner();
                tracing::warn!(subject = %m.subject, "notification dropped: queue full or closed");
                false
            }
        }
    }

    /// Queues the confirmation of a finished deploy (e-mail only).
    pub fn deployed(&self, deploy: &DeployConfirmation) -> bool {
        self.send(Audience::Email, render_deploy(&self.subject_prefix, deploy))
    }
}

#[async_trait]
impl Notifier for Fanout {
    async fn notify(&self, notice: &Notice) {
        self.send(Audience::All, render_notice(&self.subject_prefix, notice));
    }
}

async fn run(
    channels: Vec<Arc<dyn Channel>>,
    retry: Retry,
    mut rx: mpsc::Receiver<(Audience, Message)>,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) {
    loop {
        let (audience, message) = tokio::select! {
            _ = shutdown.cancelled() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        let sends = channels
            .iter()
            .filter(|c| audience.includes(c.kind()))
            .map(|c| deliver(c.as_ref(), &message, &retry, &counters, &shutdown));
        futures::future::join_all(sends).await;
    }
}

async fn deliver(
    channel: &dyn Channel,
    message: &Message,
    retry: &Retry,
    counters: &Counters,
    shutdown: &CancellationToken,
) {
    let mut attempt = 1;
    loop {
        match channel.send(message).await {
            Ok(()) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(channel = %channel.kind(), subject = %message.subject, "notification sent");
                return;
            }
            Err(e) if e.permanent || attempt >= retry.attempts => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, attempt, subject = %message.subject, "notification not sent");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, "notification failed, will retry");
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ = tokio::time::sleep(retry.backoff(attempt)) => {}
                }
                attempt += 1;
            }
        }
    }
}
