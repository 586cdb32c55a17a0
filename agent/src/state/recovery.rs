//! The recovery part of the state machine: confirmed failures open a
//! recovery under a fencing token, and its steps must present that token.

use super::{
    ClusterState, ConfirmedFailure, DropletStatus, FencingToken, Recovery, RecoveryPhase, Response,
    rejected,
};

impl ClusterState {
    pub(super) fn confirm_failure(
        &mut self,
        name: &str,
        generation: u64,
        at_ms: u64,
        token: FencingToken,
    ) -> Response {
        if !self.droplets.contains_key(name) && !self.topology.droplets.contains_key(name) {
            return rejected(format!("droplet {name}: unknown droplet"));
        }
        if let Some(record) = self
            .droplets
            .get(name)
            .filter(|r| generation < r.generation)
        {
            return rejected(format!(
                "droplet {name}: failure of generation {generation} is stale (current generation {})",
                record.generation
            ));
        }
        if let Some(open) = self.open_recovery(name) {
            if open.generation == generation {
                return Response::Recovery {
                    fencing: open.fencing,
                    opened: false,
                };
            }
            return rejected(format!(
                "droplet {name}: a recovery of generation {} is still open",
                open.generation
            ));
        }
        if self
            .recoveries
            .get(name)
            .is_some_and(|r| r.generation >= generation)
        {
            return rejected(format!(
                "droplet {name}: generation {generation} was already recovered"
            ));
        }
        self.failures.insert(
            name.to_string(),
            ConfirmedFailure {
                name: name.to_string(),
                generation,
                confirmed_at_ms: at_ms,
                term: token.term,
            },
        );
        self.open(name, generation, at_ms, token, false);
        let msg = format!("failure of {name} generation {generation} confirmed (fencing {token})");
        self.event(token.index, at_ms, msg);
        Response::Recovery {
            fencing: token,
            opened: true,
        }
    }

    /// An operator asked for `name` to be recovered (`infractl recover`):
    /// opens a manual recovery of its current incarnation (idempotent while
    /// one is open). `force` forgets the earlier recoveries, which clears
    /// the flapping flag.
    pub(super) fn request_recovery(
        &mut self,
        name: &str,
        seen_generation: u64,
        force: bool,
        at_ms: u64,
        token: FencingToken,
    ) -> Response {
        let Some(generation) = self
            .droplets
            .get(name)
            .map(|r| r.generation.max(seen_generation))
            .or_else(|| self.topology.droplets.get(name).map(|_| seen_generation))
        else {
            return rejected(format!("droplet {name}: unknown droplet"));
        };
        if let Some(open) = self.open_recovery(name) {
            return Response::Recovery {
                fencing: open.fencing,
                opened: false,
            };
        }
        if force && let Some(r) = self.recoveries.get_mut(name) {
            r.earlier_starts_ms.clear();
            r.started_at_ms = 0;
        }
        self.open(name, generation, at_ms, token, true);
        let how = if force { ", flapping flag cleared" } else { "" };
        let msg = format!(
            "operator requested recovery of {name} generation {generation} (fencing {token}{how})"
        );
        self.event(token.index, at_ms, msg);
        Response::Recovery {
            fencing: token,
            opened: true,
        }
    }

    /// Opens the recovery of `name`, keeping the start times of the earlier ones.
    fn open(&mut self, name: &str, generation: u64, at_ms: u64, token: FencingToken, manual: bool) {
        let mut earlier_starts_ms = self
            .recoveries
            .get(name)
            .map(|r| {
                let mut starts = r.earlier_starts_ms.clone();
                if r.started_at_ms > 0 {
                    starts.push(r.started_at_ms);
                }
                starts
            })
            .unwrap_or_default();
        let excess = earlier_starts_ms
            .len()
            .saturating_sub(super::MAX_RECOVERY_HISTORY);
        earlier_starts_ms.drain(..excess);
        self.recoveries.insert(
            name.to_string(),
            Recovery {
                name: name.to_string(),
                generation,
                phase: RecoveryPhase::Confirmed,
                started_at_ms: at_ms,
                finished_at_ms: None,
                fencing: token,
                history: vec![(RecoveryPhase::Confirmed.name().to_string(), at_ms)],
                saga: None,
                earlier_starts_ms,
                manual,
            },
        );
        if let Some(record) = self.droplets.get_mut(name) {
            // Monitors may have seen a newer incarnation than recorded.
            record.generation = record.generation.max(generation);
            record.status = DropletStatus::Failed;
            record.updated_at_ms = at_ms;
        }
    }

    pub(super) fn recovery_step(
        &mut self,
        name: &str,
        fencing: FencingToken,
        phase: &RecoveryPhase,
        at_ms: u64,
        log_index: u64,
    ) -> Response {
        let Some(recovery) = self.recoveries.get_mut(name) else {
            return rejected(format!("droplet {name}: no recovery"));
        };
        if fencing != recovery.fencing {
            return rejected(format!(
                "droplet {name}: fencing token {fencing} does not match the recovery's {}",
                recovery.fencing
            ));
        }
        if &recovery.phase == phase {
            return Response::Unchanged;
        }
        if !recovery.is_open() {
            return rejected(format!(
                "droplet {name}: recovery already finished ({})",
                recovery.phase.name()
            ));
        }
        recovery.phase = phase.clone();
        recovery.history.push((phase.name().to_string(), at_ms));
        if phase.is_terminal() {
            recovery.finished_at_ms = Some(at_ms);
        }
        let generation = recovery.generation;
        if let Some(record) = self.droplets.get_mut(name) {
            record.updated_at_ms = at_ms;
            match phase {
                RecoveryPhase::Restoring { .. } => record.status = DropletStatus::Recovering,
                RecoveryPhase::Restored { provider_id, ip } => {
                    record.provider_id = Some(*provider_id);
                    record.ip = Some(ip.clone());
                    record.generation = record.generation.max(generation + 1);
                    record.status = DropletStatus::Recovering;
                }
                RecoveryPhase::Done => record.status = DropletStatus::Active,
                _ => {}
            }
        }
        let msg = format!("recovery of {name}: {}", phase.name());
        self.event(log_index, at_ms, msg);
        Response::Applied
    }

    /// Stores the saga record of the open recovery of `name` if `fencing`
    /// is the recovery's current token.
    pub(super) fn save_saga(
        &mut self,
        name: &str,
        fencing: FencingToken,
        record: &str,
    ) -> Response {
        let Some(recovery) = self.recoveries.get_mut(name) else {
            return rejected(format!("droplet {name}: no recovery"));
        };
        if fencing != recovery.fencing {
            return rejected(format!(
                "droplet {name}: fencing token {fencing} does not match the recovery's {}",
                recovery.fencing
            ));
        }
        if !recovery.is_open() {
            return rejected(format!("droplet {name}: recovery already finished"));
        }
        if recovery.saga.as_deref() == Some(record) {
            return Response::Unchanged;
        }
        recovery.saga = Some(record.to_string());
        Response::Applied
    }
}
