//! Containers service handler: the leader's deploy pipeline runs this
//! droplet's containers through it. Decodes (and validates) the request,
//! stamps every container it starts with `infra.agent=<this agent>`, and
//! calls the agent's local [`ContainerRuntime`]. Secret values are passed
//! on, never logged.

use std::sync::Arc;
use std::time::Duration;

use infra_proto::v1::containers_server::Containers;
use infra_proto::v1::{
    ContainerAck, ContainerRef, ContainerSpec, InspectContainerReply, ListContainersReply,
    ListContainersRequest, LogsTailReply, LogsTailRequest, RunContainerReply, StopContainerRequest,
};
use tonic::{Request, Response, Status};

use super::containers_wire::{info_to_wire, labels, name, spec_from_wire};
use super::error::ApiError;
use crate::runtime::{ContainerRuntime, LABEL_AGENT};

/// Longest stop grace a caller may ask for.
pub const MAX_STOP_GRACE: Duration = Duration::from_secs(3600);
/// Most log lines a caller may ask for.
pub const MAX_LOG_LINES: u32 = 10_000;

pub struct ContainersApi {
    /// This agent's name (= its droplet's), stamped on what it starts.
    pub node_name: String,
    pub engine: Arc<dyn ContainerRuntime>,
}

#[tonic::async_trait]
impl Containers for ContainersApi {
    async fn run(
        &self,
        request: Request<ContainerSpec>,
    ) -> Result<Response<RunContainerReply>, Status> {
        let mut spec = spec_from_wire(request.into_inner())?;
        spec.extra_labels
            .insert(LABEL_AGENT.to_string(), self.node_name.clone());
        tracing::info!(container = %spec.name, image = %spec.image, "starting a container");
        let id = self.engine.run(&spec).await.map_err(ApiError::from)?;
        Ok(Response::new(RunContainerReply { id }))
    }

    async fn stop(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<ContainerAck>, Status> {
        let req = request.into_inner();
        name("name", &req.name)?;
        let grace = Duration::from_millis(req.grace_ms);
        if grace > MAX_STOP_GRACE {
            return Err(ApiError::InvalidArgument {
                field: "grace_ms",
                reason: format!("at most {} ms", MAX_STOP_GRACE.as_millis()),
            }
            .into());
        }
        tracing::info!(container = %req.name, ?grace, "stopping a container");
        self.engine
            .stop(&req.name, grace)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ContainerAck {}))
    }

    async fn remove(
        &self,
        request: Request<ContainerRef>,
    ) -> Result<Response<ContainerAck>, Status> {
        let req = request.into_inner();
        name("name", &req.name)?;
        tracing::info!(container = %req.name, "removing a container");
        self.engine
            .remove(&req.name)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ContainerAck {}))
    }

    async fn inspect(
        &self,
        request: Request<ContainerRef>,
    ) -> Result<Response<InspectContainerReply>, Status> {
        let req = request.into_inner();
        name("name", &req.name)?;
        let found = self
            .engine
            .inspect(&req.name)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(InspectContainerReply {
            container: found.map(info_to_wire),
        }))
    }

    async fn list(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersReply>, Status> {
        let req = request.into_inner();
        labels("labels", &req.labels)?;
        let filter = req.labels.into_iter().collect();
        let found = self.engine.list(&filter).await.map_err(ApiError::from)?;
        Ok(Response::new(ListContainersReply {
            containers: found.into_iter().map(info_to_wire).collect(),
        }))
    }

    async fn logs_tail(
        &self,
        request: Request<LogsTailRequest>,
    ) -> Result<Response<LogsTailReply>, Status> {
        let req = request.into_inner();
        name("name", &req.name)?;
        if req.lines == 0 || req.lines > MAX_LOG_LINES {
            return Err(ApiError::InvalidArgument {
                field: "lines",
                reason: format!("{} is not in 1-{MAX_LOG_LINES}", req.lines),
            }
            .into());
        }
        let text = self
            .engine
            .logs_tail(&req.name, req.lines as usize)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(LogsTailReply { text }))
    }
}
