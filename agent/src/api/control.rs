//! Control service handlers. `Status` answers from this agent's view (its
//! gossip members, health and applied Raft state); `Join` and the calls
//! that change the cloud run on the Raft leader: a follower forwards them
//! (see `forward`), the leader hands them to its [`ControlHandler`].

use std::net::SocketAddr;
use std::sync::Arc;

use infra_proto::v1::control_server::Control;
use infra_proto::v1::{
    AddProjectRequest, ApplySpecRequest, CleanupRequest, DeployRequest, InitializeReply,
    InitializeRequest, JoinReply, JoinRequest, RecoverRequest, RemoveProjectRequest,
    RollbackRequest, ScaleRequest, StatusReply, StatusRequest,
};
use tonic::{Request, Response, Status};

use super::error::{ApiError, required};
use super::forward::{self, ProgressStream, Target, streamed};
use super::handler::{self as h, ControlHandler};
use crate::consensus::NodeInfo;
use crate::membership::MembershipView;
use crate::node::{ClusterLink, StatusSource, formation};

pub struct ControlApi {
    pub node_name: String,
    pub status: Arc<StatusSource>,
    pub link: ClusterLink,
    /// Gossip members (`Initialize` refuses when others of the cluster live).
    pub view: tokio::sync::watch::Receiver<Arc<MembershipView>>,
    pub handler: Arc<dyn ControlHandler>,
}

type Streamed = Result<Response<ProgressStream>, Status>;

#[tonic::async_trait]
impl Control for ControlApi {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let status_json = serde_json::to_string(&self.status.snapshot()).map_err(ApiError::from)?;
        Ok(Response::new(StatusReply { status_json }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        // Only the agent itself may ask to join under its name (a forwarded
        // call was checked by the agent that forwarded it).
        if !request.metadata().contains_key(forward::FORWARDED_BY) {
            let name = &request.get_ref().name;
            let is_node = request
                .peer_certs()
                .as_ref()
                .and_then(|c| c.first())
                .is_some_and(|c| crate::tls::cert_is_for_name(c, name));
            if !is_node {
                return Err(ApiError::NotTheNode(name.clone()).into());
            }
        }
        match forward::target(&self.link, &self.node_name, &request)? {
            Target::Leader(mut client) => {
                client
                    .join(forward::outgoing(&self.node_name, request))
                    .await
            }
            Target::Local => {
                let req = request.into_inner();
                required("name", &req.name)?;
                let addr: SocketAddr =
                    req.grpc_addr
                        .parse()
                        .map_err(|_| ApiError::InvalidArgument {
                            field: "grpc_addr",
                            reason: format!("`{}` is not IP:PORT", req.grpc_addr),
                        })?;
                let voter = self
                    .link
                    .admit(NodeInfo::new(req.name, addr.to_string()))
                    .await
                    .map_err(ApiError::from)?;
                Ok(Response::new(JoinReply {
                    leader: self.node_name.clone(),
                    voter,
                }))
            }
        }
    }

    async fn initialize(
        &self,
        request: Request<InitializeRequest>,
    ) -> Result<Response<InitializeReply>, Status> {
        // Forming a cluster is an operator's act: a node certificate (any
        // droplet's agent) may not ask for it.
        let operator = request
            .peer_certs()
            .as_ref()
            .and_then(|c| c.first())
            .is_some_and(|c| !crate::tls::cert_is_node(c));
        if !operator {
            return Err(ApiError::NotAnOperator("Initialize").into());
        }
        let req = request.into_inner();
        required("cluster_id", &req.cluster_id)?;
        let formed = formation::initialize(
            &self.link,
            &self.view,
            &req.cluster_id,
            crate::node::now_ms(),
        )
        .await
        .map_err(ApiError::from)?;
        Ok(Response::new(InitializeReply {
            leader: formed.leader,
            formed: formed.new,
            term: formed.term,
        }))
    }

    type ApplySpecStream = ProgressStream;
    async fn apply_spec(&self, request: Request<ApplySpecRequest>) -> Streamed {
        let handler = self.handler.clone();
        streamed(
            &self.link,
            &self.node_name,
            request,
            |mut c, r| async move { c.apply_spec(r).await },
            |r, sink| async move {
                let req = h::ApplySpec {
                    infrastructure_json: r.infrastructure_json,
                    deployment_json: r.deployment_json,
                    force: r.force,
                    allow_destroy: r.allow_destroy,
                };
                handler.apply_spec(req, sink).await
            },
        )
        .await
    }

    type ScaleStream = ProgressStream;
    async fn scale(&self, request: Request<ScaleRequest>) -> Streamed {
        let handler = self.handler.clone();
        streamed(
            &self.link,
            &self.node_name,
            request,
            |mut c, r| async move { c.scale(r).await },
            |r, sink| async move {
                let req = h::Scale {
                    project: r.project,
                    web_droplets: r.web_droplets,
                };
                handler.scale(req, sink).await
            },
        )
        .await
    }

    type AddProjectStream = ProgressStream;
    async fn add_project(&self, request: Request<AddProjectRequest>) -> Streamed {
        let handler = self.handler.clone();
        streamed(
            &self.link,
            &self.node_name,
            request,
            |mut c, r| async move { c.add_project(r).await },
            |r, sink| async move {
                let req = h::AddProject {
                    name: r.name,
                    environments: r.environments,
                    web_droplets: r.web_droplets,
                    size: r.size,
                };
                handler.add_project(req, sink).await
            },
        )
        .await
    }

    type RemoveProjectStream = ProgressStream;
    async fn remove_project(&self, request: Request<RemoveProjectRequest>) -> Streamed {
        let handler = self.handler.clone();
        streamed(
            &self.link,
            &self.node_name,
            request,
            |mut c, r| async move { c.remove_project(r).await },
            |r, sink| async move {
                let req = h::RemoveProject {
                    name: r.name,
                    allow_destroy: r.allow_destroy,
                };
                handler.remove_project(req, sink).await
            },
        )
        .await
    }

    type RecoverStream = ProgressStream;
    async fn recover(&self, request: Request<RecoverRequest>) -> Streamed {
        let handler = self.handler.clone();
        streamed(
            &self.link,
            &self.node_name,
            request,
            |mut c, r| async move { c.recover(r).await },
            |r, sink| async move {
                let req = h::Recover {
                    droplet: r.droplet,
                    force: r.force,
                };
                handler.recover(req, sink).await
            },
        )
        .await
    }

    type DeployStream = ProgressStream;
    async fn deploy(&self, request: Request<DeployRequest>) -> Streamed {
        let handler = self.handler.clone();
        streamed(
            &self.link,
            &self.node_name,
            request,
            |mut c, r| async move { c.deploy(r).await },
            |r, sink| async move {
                let req = h::Deploy {
                    project: r.project,
                    environment: r.environment,
                    branch: r.branch,
                    tag: r.tag,
                    local: r.local,
                    project_path: r.project_path,
                    secrets: r.secrets.into_iter().collect(),
                    deployment_json: r.deployment_json,
                };
                handler.deploy(req, sink).await
            },
        )
        .await
    }

    type RollbackStream = ProgressStream;
    async fn rollback(&self, request: Request<RollbackRequest>) -> Streamed {
        let handler = self.handler.clone();
        streamed(
            &self.link,
            &self.node_name,
            request,
            |mut c, r| async move { c.rollback(r).await },
            |r, sink| async move {
                let req = h::Rollback {
                    project: r.project,
                    environment: r.environment,
                    to_tag: r.to_tag,
                    deployment_json: r.deployment_json,
                };
                handler.rollback(req, sink).await
            },
        )
        .await
    }

    type CleanupStream = ProgressStream;
    async fn cleanup(&self, request: Request<CleanupRequest>) -> Streamed {
        let handler = self.handler.clone();
        streamed(
            &self.link,
            &self.node_name,
            request,
            |mut c, r| async move { c.cleanup(r).await },
            |r, sink| async move {
                handler
                    .cleanup(h::Cleanup { dry_run: r.dry_run }, sink)
                    .await
            },
        )
        .await
    }
}
