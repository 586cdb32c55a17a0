//! [`AgentRuntime`]: a droplet's container runtime as the leader's deploy
//! pipeline sees it. Container operations and image queries are RPCs to
//! the droplet agent's `Containers` and `Images` gRPC services (mutual
//! TLS), which run them on that droplet's own engine; an image reaches the
//! droplet by `PushImage` of the leader's `docker save` stream. Images are
//! built and saved on the leader (the pipeline's `builder`), never through
//! a droplet. Secret values travel only inside the mTLS `Run` call.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use infra_proto::v1::containers_client::ContainersClient;
use infra_proto::v1::images_client::ImagesClient;
use infra_proto::v1::{
    ContainerRef, ImageRef, ListContainersRequest, LogsTailRequest, StopContainerRequest,
};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use super::delivery::{PushFailure, push_image};
use crate::api::containers::MAX_LOG_LINES;
use crate::api::containers_wire::{image_from_wire, info_from_wire, spec_to_wire};
use crate::runtime::{
    BuildRequest, ByteStream, ContainerInfo, ContainerRuntime, ContainerSpec, ImageInfo,
    RuntimeError,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a container or image call (the engine's own time).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The runtime of the droplet whose agent serves gRPC at `agent`.
pub struct AgentRuntime {
    agent: String,
    tls: ClientTlsConfig,
    channel: tokio::sync::OnceCell<Channel>,
    /// Image asked about last by `image_exists` and missing on the droplet
    /// (what `load_image` pushes).
    pending: Mutex<Option<String>>,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRuntime")
            .field("agent", &self.agent)
            .finish()
    }
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}

impl AgentRuntime {
    /// `agent` is the droplet agent's gRPC address (`ip:port`); nothing is
    /// connected before the first call.
    pub fn new(agent: impl Into<String>, tls: ClientTlsConfig) -> Self {
        AgentRuntime {
            agent: agent.into(),
            tls,
            channel: tokio::sync::OnceCell::new(),
            pending: Mutex::new(None),
        }
    }

    /// The agent's gRPC address.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    async fn channel(&self) -> Result<Channel, RuntimeError> {
        let unreachable = |e: String| RuntimeError::Connect(format!("agent {}: {e}", self.agent));
        self.channel
            .get_or_try_init(|| async {
                Endpoint::from_shared(format!("https://{}", self.agent))
                    .map_err(|e| unreachable(e.to_string()))?
                    .tls_config(self.tls.clone())
                    .map_err(|e| unreachable(e.to_string()))?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .connect()
                    .await
                    .map_err(|e| unreachable(format!("connect: {e}")))
            })
            .await
            .cloned()
    }

    /// The error of call `op` on `target` that the agent answered `status`.
    fn failed(&self, op: &'static str, target: &str) -> impl FnOnce(Status) -> RuntimeError {
        let (agent, target) = (self.agent.clone(), target.to_string());
        move |status| {
            let message = format!("agent {agent}: {}", status.message());
            match status.code() {
                Code::Unavailable => RuntimeError::Connect(message),
                _ => RuntimeError::Engine {
                    op,
                    target,
                    message,
                },
            }
        }
    }

    async fn containers(&self) -> Result<ContainersClient<Channel>, RuntimeError> {
        Ok(ContainersClient::new(self.channel().await?))
    }

    async fn images(&self) -> Result<ImagesClient<Channel>, RuntimeError> {
        Ok(ImagesClient::new(self.channel().await?))
    }

    fn on_leader(&self, op: &'static str, target: &str) -> RuntimeError {
        RuntimeError::Engine {
            op,
            target: target.into(),
            message: format!(
                "images are built and saved on the leader's engine, not through agent {}",
                self.agent
            ),
        }
    }

    /// Streams `data` (holding `image`) to the agent; returns its id there.
    pub async fn push(&self, image: &str, data: ByteStream) -> Result<String, RuntimeError> {
        let channel = self.channel().await?;
        push_image(channel, image, data)
            .await
            .map_err(|failure| match failure {
                PushFailure::Read(e) => RuntimeError::Engine {
                    op: "push image",
                    target: image.into(),
                    message: format!("reading the saved image for agent {}: {e}", self.agent),
                },
                PushFailure::Refused(status) => self.failed("push image", image)(status),
            })
    }
}

#[async_trait]
impl ContainerRuntime for AgentRuntime {
    async fn build_image(&self, req: &BuildRequest) -> Result<String, RuntimeError> {
        Err(self.on_leader("build image", &req.tag))
    }
    /// Asks the agent; a missing image becomes the one the next
    /// `load_image` pushes.
    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        let exists = self
            .images()
            .await?
            .image_exists(request(
                ImageRef {
                    image: image.into(),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(self.failed("inspect image", image))?
            .into_inner()
            .exists;
        if !exists {
            *self.pending.lock().expect("pending") = Some(image.to_string());
        }
        Ok(exists)
    }
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError> {
        let info = self
            .images()
            .await?
            .inspect_image(request(
                ImageRef {
                    image: image.into(),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(self.failed("inspect image", image))?;
        Ok(image_from_wire(info.into_inner()))
    }
    async fn save_image(&self, image: &str) -> Result<ByteStream, RuntimeError> {
        Err(self.on_leader("save image", image))
    }
    /// Pushes the stream as the image `image_exists` last found missing.
    async fn load_image(&self, data: ByteStream) -> Result<Vec<String>, RuntimeError> {
        let image = self
            .pending
            .lock()
            .expect("pending")
            .take()
            .ok_or_else(|| RuntimeError::Engine {
                op: "push image",
                target: self.agent.clone(),
                message: "no missing image named (by image_exists) before the push".into(),
            })?;
        let id = self.push(&image, data).await?;
        if id != image && !image.starts_with(&id) {
            return Err(RuntimeError::Engine {
                op: "push image",
                target: image,
                message: format!("agent {} loaded `{id}`", self.agent),
            });
        }
        Ok(vec![id])
    }
    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.images()
            .await?
            .remove_image(request(
                ImageRef {
                    image: image.into(),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(self.failed("remove image", image))?;
        Ok(())
    }
    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let reply = self
            .containers()
            .await?
            .run(request(spec_to_wire(spec), CALL_TIMEOUT))
            .await
            .map_err(self.failed("run container", &spec.name))?;
        Ok(reply.into_inner().id)
    }
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        let req = StopContainerRequest {
            name: name.into(),
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        };
        self.containers()
            .await?
            .stop(request(req, grace.saturating_add(CALL_TIMEOUT)))
            .await
            .map_err(self.failed("stop container", name))?;
        Ok(())
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.containers()
            .await?
            .remove(request(ContainerRef { name: name.into() }, CALL_TIMEOUT))
            .await
            .map_err(self.failed("remove container", name))?;
        Ok(())
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let req = ListContainersRequest {
            labels: labels.clone().into_iter().collect(),
        };
        let reply = self
            .containers()
            .await?
            .list(request(req, CALL_TIMEOUT))
            .await
            .map_err(self.failed("list containers", "<labels>"))?;
        reply
            .into_inner()
            .containers
            .into_iter()
            .map(|c| {
                info_from_wire(c).map_err(|message| RuntimeError::Engine {
                    op: "list containers",
                    target: self.agent.clone(),
                    message,
                })
            })
            .collect()
    }
    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, RuntimeError> {
        if lines == 0 {
            return Ok(String::new());
        }
        let req = LogsTailRequest {
            name: name.into(),
            lines: u32::try_from(lines)
                .unwrap_or(MAX_LOG_LINES)
                .min(MAX_LOG_LINES),
        };
        let reply = self
            .containers()
            .await?
            .logs_tail(request(req, CALL_TIMEOUT))
            .await
            .map_err(self.failed("container logs", name))?;
        Ok(reply.into_inner().text)
    }
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        let reply = self
            .containers()
            .await?
            .inspect(request(ContainerRef { name: name.into() }, CALL_TIMEOUT))
            .await
            .map_err(self.failed("inspect container", name))?;
        reply
            .into_inner()
            .container
            .map(info_from_wire)
            .transpose()
            .map_err(|message| RuntimeError::Engine {
                op: "inspect container",
                target: name.into(),
                message,
            })
    }
}
