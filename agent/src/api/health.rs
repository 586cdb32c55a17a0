//! Health service handlers: Probe, ProbeVia and ReportFailure.

use std::sync::Arc;
use std::time::Duration;

use infra_proto::v1::health_server::Health;
use infra_proto::v1::{
    FailureReport, FailureReportAck, ProbeReply, ProbeRequest, ProbeViaReply, ProbeViaRequest,
};
use tonic::{Request, Response, Status};

use super::error::{ApiError, required};
use crate::fault::FaultSwitch;
use crate::health::{Aggregator, Prober};
use crate::quorum::Vote;

/// Longest indirect probe a peer may ask for.
const MAX_PROBE_VIA_TIMEOUT: Duration = Duration::from_secs(10);

pub struct HealthApi {
    pub node_name: String,
    pub generation: u64,
    pub prober: Arc<dyn Prober>,
    pub aggregator: Arc<Aggregator>,
    pub fault: FaultSwitch,
}

#[tonic::async_trait]
impl Health for HealthApi {
    async fn probe(&self, request: Request<ProbeRequest>) -> Result<Response<ProbeReply>, Status> {
        self.fault.wait_unpaused().await;
        if self.fault.is_isolated() {
            return Err(ApiError::Isolated.into());
        }
        Ok(Response::new(ProbeReply {
            node: self.node_name.clone(),
            generation: self.generation,
            seq: request.into_inner().seq,
        }))
    }

    async fn probe_via(
        &self,
        request: Request<ProbeViaRequest>,
    ) -> Result<Response<ProbeViaReply>, Status> {
        self.fault.wait_unpaused().await;
        if self.fault.is_isolated() {
            return Err(ApiError::Isolated.into());
        }
        let req = request.into_inner();
        required("target", &req.target)?;
        let addr = req
            .target_addr
            .parse()
            .map_err(|_| ApiError::InvalidArgument {
                field: "target_addr",
                reason: format!("`{}` is not IP:PORT", req.target_addr),
            })?;
        let timeout = Duration::from_millis(req.timeout_ms.into()).min(MAX_PROBE_VIA_TIMEOUT);
        let reply = match self.prober.probe(addr, timeout).await {
            Ok(answer) if answer.node == req.target => ProbeViaReply {
                reachable: true,
                target_generation: answer.generation,
            },
            // Someone else answers at that address: the target is not there.
            Ok(_) | Err(_) => ProbeViaReply {
                reachable: false,
                target_generation: 0,
            },
        };
        Ok(Response::new(reply))
    }

    async fn report_failure(
        &self,
        request: Request<FailureReport>,
    ) -> Result<Response<FailureReportAck>, Status> {
        if self.fault.is_isolated() {
            return Err(ApiError::Isolated.into());
        }
        let certs = request.peer_certs();
        let req = request.into_inner();
        required("observer", &req.observer)?;
        required("target", &req.target)?;
        // Only the observer itself may cast its vote.
        let is_observer = certs
            .as_ref()
            .and_then(|c| c.first())
            .is_some_and(|c| crate::tls::cert_is_for_name(c, &req.observer));
        if !is_observer {
            return Err(ApiError::NotTheObserver(req.observer).into());
        }
        let vote = Vote {
            observer: req.observer,
            target: req.target,
            target_generation: req.target_generation,
            at_ms: req.at_ms,
            observer_sees_down: req.observer_sees_down,
        };
        let accepted = match self.aggregator.record_vote(vote) {
            Ok(()) => true,
            Err(reason) => {
                tracing::debug!(error = %ApiError::VoteRejected(reason), "failure report not counted");
                false
            }
        };
        Ok(Response::new(FailureReportAck { accepted }))
    }
}
