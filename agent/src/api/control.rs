//! Control service handlers. `Status` serializes the node's status
//! snapshot; the other calls arrive with later work and answer
//! `unimplemented` ("not available yet: <call>") until then.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use infra_proto::v1::control_server::Control;
use infra_proto::v1::{
    AddProjectRequest, ApplySpecRequest, CleanupRequest, DeployRequest, Progress, RecoverRequest,
    RemoveProjectRequest, RollbackRequest, ScaleRequest, StatusReply, StatusRequest,
};
use tonic::{Request, Response, Status};

use super::error::ApiError;
use crate::node::StatusSource;

type ProgressStream = Pin<Box<dyn Stream<Item = Result<Progress, Status>> + Send>>;

pub struct ControlApi {
    pub status: Arc<StatusSource>,
}

fn not_yet(call: &'static str) -> Result<Response<ProgressStream>, Status> {
    Err(ApiError::NotAvailableYet(call).into())
}

#[tonic::async_trait]
impl Control for ControlApi {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let status_json = serde_json::to_string(&self.status.snapshot()).map_err(ApiError::from)?;
        Ok(Response::new(StatusReply { status_json }))
    }

    type ApplySpecStream = ProgressStream;
    async fn apply_spec(
        &self,
        _: Request<ApplySpecRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        not_yet("ApplySpec")
    }

    type ScaleStream = ProgressStream;
    async fn scale(&self, _: Request<ScaleRequest>) -> Result<Response<ProgressStream>, Status> {
        not_yet("Scale")
    }

    type AddProjectStream = ProgressStream;
    async fn add_project(
        &self,
        _: Request<AddProjectRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        not_yet("AddProject")
    }

    type RemoveProjectStream = ProgressStream;
    async fn remove_project(
        &self,
        _: Request<RemoveProjectRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        not_yet("RemoveProject")
    }

    type RecoverStream = ProgressStream;
    async fn recover(
        &self,
        _: Request<RecoverRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        not_yet("Recover")
    }

    type DeployStream = ProgressStream;
    async fn deploy(&self, _: Request<DeployRequest>) -> Result<Response<ProgressStream>, Status> {
        not_yet("Deploy")
    }

    type RollbackStream = ProgressStream;
    async fn rollback(
        &self,
        _: Request<RollbackRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        not_yet("Rollback")
    }

    type CleanupStream = ProgressStream;
    async fn cleanup(
        &self,
        _: Request<CleanupRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        not_yet("Cleanup")
    }
}
