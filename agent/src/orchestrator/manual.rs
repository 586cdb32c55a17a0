//! A recovery started by an operator (`infractl recover NAME`): commits the
//! request, then follows the recovery through the replicated state until
//! the leader's saga runner has finished it.

use std::time::Duration;

use tokio::time::Instant;

use super::MembershipJoins;
use crate::api::handler::{ControlError, Outcome, ProgressSink, Recover};
use crate::consensus::Consensus;
use crate::state::{ClusterState, Command, RecoveryPhase, Response};

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// What an operator sees of a recovery: `None` while it runs, else its end.
fn finished(state: &ClusterState, name: &str, started_at_ms: u64) -> Option<RecoveryPhase> {
    let r = state.recoveries.get(name)?;
    (r.started_at_ms >= started_at_ms && !r.is_open()).then(|| r.phase.clone())
}

/// Opens the manual recovery of `req.droplet` and streams its phases until it
/// is done, failed, or `wait` has passed.
pub async fn recover(
    consensus: &Consensus,
    joins: &MembershipJoins,
    req: Recover,
    wait: Duration,
    progress: &ProgressSink,
) -> Result<Outcome, ControlError> {
    let name = req.droplet.trim().to_string();
    if name.is_empty() {
        return Err(ControlError::Invalid("droplet: must not be empty".into()));
    }
    let command = Command::RequestRecovery {
        name: name.clone(),
        generation: joins.generation_of(&name).unwrap_or(0),
        force: req.force,
        at_ms: now_ms(),
    };
    let fencing = match consensus.write(command).await {
        Ok(Response::Recovery { fencing, opened }) => {
            if opened {
                progress.step(format!(
                    "recovery of {name} opened (fencing token {fencing})"
                ));
            } else {
                progress.step(format!(
                    "a recovery of {name} is already running (fencing token {fencing}); following it"
                ));
            }
            fencing
        }
        Ok(Response::Rejected { reason }) => return Err(ControlError::Invalid(reason)),
        Ok(other) => return Err(ControlError::Failed(format!("unexpected answer {other:?}"))),
        Err(e) => return Err(ControlError::Failed(e.to_string())),
    };
    let started_at_ms = consensus
        .local_state()
        .recoveries
        .get(&name)
        .map(|r| r.started_at_ms)
        .unwrap_or(0);
    let mut applied = consensus.subscribe_applied();
    let deadline = Instant::now() + wait;
    let mut reported = 0;
    loop {
        let state = consensus.local_state();
        if let Some(r) = state.recoveries.get(&name) {
            for (phase, _) in r.history.iter().skip(reported) {
                progress.step(format!("{name}: {phase}"));
            }
            reported = reported.max(r.history.len());
        }
        match finished(&state, &name, started_at_ms) {
            Some(RecoveryPhase::Done) => {
                let d = state.droplets.get(&name);
                let ip = d.and_then(|d| d.ip.clone()).unwrap_or_default();
                return Ok(Outcome {
                    message: format!("{name} recovered (fencing token {fencing}) at {ip}"),
                    result: serde_json::to_value(state.recoveries.get(&name)).ok(),
                });
            }
            Some(RecoveryPhase::Failed { reason }) => {
                let hint = if reason.contains("flapping") {
                    "; `infractl recover --force` clears the flapping flag"
                } else {
                    ""
                };
                return Err(ControlError::Failed(format!(
                    "recovery of {name} failed: {reason}{hint}"
                )));
            }
            _ => {}
        }
        tokio::select! {
            changed = applied.changed() => {
                if changed.is_err() {
                    return Err(ControlError::Failed("the agent is shutting down".into()));
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(ControlError::Failed(format!(
                    "recovery of {name} still running after {wait:?}; follow it with `infractl status`"
                )));
            }
        }
    }
}
