//! Fault injection switches for tests and benches; production never flips
//! them. *Paused* freezes an agent in place (its gossip, probes and probe
//! answers stall), the in-process stand-in for SIGSTOP. *Isolated* cuts it
//! off the network (gossip dropped, RPCs in and out fail) while it keeps
//! running, the stand-in for a partition.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::sync::watch;

/// Cloneable switches shared by one agent's components.
#[derive(Debug, Clone)]
pub struct FaultSwitch {
    paused: Arc<watch::Sender<bool>>,
    isolated: Arc<AtomicBool>,
    /// Share of messages lost, in parts per million.
    loss_ppm: Arc<AtomicU32>,
}

impl Default for FaultSwitch {
    fn default() -> Self {
        FaultSwitch {
            paused: Arc::new(watch::channel(false).0),
            isolated: Arc::new(AtomicBool::new(false)),
            loss_ppm: Arc::new(AtomicU32::new(0)),
        }
    }
}

impl FaultSwitch {
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Resolves once the agent is not paused (at once if it is not).
    pub async fn wait_unpaused(&self) {
        let mut rx = self.paused.subscribe();
        // The sender lives in self, so the channel cannot close here.
        let _ = rx.wait_for(|paused| !*paused).await;
    }

    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::Relaxed);
    }

    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::Relaxed)
    }

    /// Loses this share (0.0..=1.0) of gossip datagrams and outgoing RPCs,
    /// each independently (the stand-in for packet loss).
    pub fn set_loss(&self, share: f64) {
        let ppm = (share.clamp(0.0, 1.0) * 1_000_000.0) as u32;
        self.loss_ppm.store(ppm, Ordering::Relaxed);
    }

    /// Whether this message is lost (random draw at the configured loss).
    pub fn loses(&self) -> bool {
        let ppm = self.loss_ppm.load(Ordering::Relaxed);
        ppm > 0 && rand::random::<u32>() % 1_000_000 < ppm
    }

    /// Whether gossip datagrams must be dropped.
    pub fn drops_gossip(&self) -> bool {
        self.is_paused() || self.is_isolated() || self.loses()
    }
}

#[cfg(test)]
mod loss_tests {
    use super::*;

    #[test]
    fn loss_share_is_honoured() {
        let f = FaultSwitch::default();
        assert!((0..1000).all(|_| !f.loses() && !f.drops_gossip()));
        f.set_loss(1.0);
        assert!((0..1000).all(|_| f.loses() && f.drops_gossip()));
        f.set_loss(0.05);
        let lost = (0..100_000).filter(|_| f.loses()).count();
        assert!(
            (4_000..6_000).contains(&lost),
            "{lost} of 100000 lost at 5%"
        );
    }
}
