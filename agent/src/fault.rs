//! Fault injection switch: freezes an agent in place (its gossip, probes
//! and probe answers stall) without stopping it, the in-process stand-in
//! for a SIGSTOP. Tests and benches flip it; production never does.

use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable pause switch shared by one agent's components.
#[derive(Debug, Clone)]
pub struct FaultSwitch {
    paused: Arc<watch::Sender<bool>>,
}

impl Default for FaultSwitch {
    fn default() -> Self {
        FaultSwitch {
            paused: Arc::new(watch::channel(false).0),
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
}
