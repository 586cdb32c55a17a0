//! Image delivery without a registry. The receiving side is an
//! [`ImageLoader`] (every agent serves it through the `Images` gRPC
//! service; [`EngineLoader`] `docker load`s into the local engine and
//! checks the id). The sending side is [`PushingRuntime`]: the container
//! runtime of a droplet as the leader's pipeline sees it, which delivers
//! images by streaming `docker save` to that droplet's agent over mTLS.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use infra_proto::v1::ImageChunk;
use infra_proto::v1::images_client::ImagesClient;
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::runtime::{
    BuildRequest, ByteStream, ContainerInfo, ContainerRuntime, ContainerSpec, DEFAULT_SECRETS_ROOT,
    DockerRuntime, ImageInfo, RuntimeError,
};

/// Why an image was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the image stream names no image (first chunk must carry `image`)")]
    NoImage,
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("loaded image `{loaded}` is not the pushed `{expected}`")]
    Mismatch { expected: String, loaded: String },
}

/// Loads a pushed image into this agent's engine.
#[async_trait]
pub trait ImageLoader: Send + Sync {
    /// Loads the `docker save` stream `data` that holds `expected`;
    /// returns the id the engine reports for it.
    async fn load(&self, expected: &str, data: ByteStream) -> Result<String, DeliveryError>;
}

/// [`ImageLoader`] on the local Docker engine (connected on first use).
#[derive(Default)]
pub struct EngineLoader {
    engine: tokio::sync::OnceCell<DockerRuntime>,
}

#[async_trait]
impl ImageLoader for EngineLoader {
    async fn load(&self, expected: &str, data: ByteStream) -> Result<String, DeliveryError> {
        let engine = self
            .engine
            .get_or_try_init(|| DockerRuntime::connect(DEFAULT_SECRETS_ROOT))
            .await?;
        engine.load_image(data).await?;
        let id = engine.inspect_image(expected).await?.id;
        if id != expected && !expected.starts_with(&id) {
            return Err(DeliveryError::Mismatch {
                expected: expected.into(),
                loaded: id,
            });
        }
        Ok(id)
    }
}

/// A droplet's runtime whose image delivery goes to its agent's `Images`
/// service; everything else is `inner` (in the local cloud, the engine
/// every droplet shares).
pub struct PushingRuntime {
    pub inner: Arc<dyn ContainerRuntime>,
    /// The droplet agent's gRPC address (`ip:port`).
    pub agent: String,
    pub tls: ClientTlsConfig,
    /// Image asked about last by `image_exists` (what `load_image` pushes).
    pending: Mutex<Option<String>>,
    /// Images delivered to this agent by this runtime.
    delivered: Mutex<BTreeSet<String>>,
}

impl PushingRuntime {
    pub fn new(inner: Arc<dyn ContainerRuntime>, agent: String, tls: ClientTlsConfig) -> Self {
        PushingRuntime {
            inner,
            agent,
            tls,
            pending: Mutex::new(None),
            delivered: Mutex::new(BTreeSet::new()),
        }
    }

    fn push_err(&self, message: String) -> RuntimeError {
        RuntimeError::Engine {
            op: "push image",
            target: self.agent.clone(),
            message,
        }
    }

    /// Streams `data` (holding `image`) to the agent; returns its id there.
    pub async fn push(&self, image: &str, data: ByteStream) -> Result<String, RuntimeError> {
        let channel = Endpoint::from_shared(format!("https://{}", self.agent))
            .map_err(|e| self.push_err(e.to_string()))?
            .tls_config(self.tls.clone())
            .map_err(|e| self.push_err(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| self.push_err(format!("connect: {e}")))?;
        let failure: Arc<Mutex<Option<String>>> = Arc::default();
        let stream = Chunks {
            first: Some(ImageChunk {
                image: image.to_string(),
                data: Vec::new(),
            }),
            data,
            failure: failure.clone(),
        };
        let reply = ImagesClient::new(channel).push_image(stream).await;
        if let Some(e) = failure.lock().expect("push failure").take() {
            return Err(self.push_err(format!("reading the saved image: {e}")));
        }
        let id = reply.map_err(|s| self.push_err(s.message().to_string()))?;
        Ok(id.into_inner().image_id)
    }
}

/// The `PushImage` request stream: the image name, then the tar's bytes;
/// a read error ends the stream and is kept in `failure`.
struct Chunks {
    first: Option<ImageChunk>,
    data: ByteStream,
    failure: Arc<Mutex<Option<String>>>,
}

impl futures::Stream for Chunks {
    type Item = ImageChunk;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ImageChunk>> {
        use std::task::Poll;
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        match self.data.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(ImageChunk {
                image: String::new(),
                data: bytes.to_vec(),
            })),
            Poll::Ready(Some(Err(e))) => {
                *self.failure.lock().expect("push failure") = Some(e.to_string());
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[async_trait]
impl ContainerRuntime for PushingRuntime {
    async fn build_image(&self, req: &BuildRequest) -> Result<String, RuntimeError> {
        self.inner.build_image(req).await
    }
    /// Whether this runtime delivered `image` already; otherwise it becomes
    /// the image the next `load_image` pushes.
    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        if self.delivered.lock().expect("delivered").contains(image) {
            return Ok(true);
        }
        *self.pending.lock().expect("pending") = Some(image.to_string());
        Ok(false)
    }
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError> {
        self.inner.inspect_image(image).await
    }
    async fn save_image(&self, image: &str) -> Result<ByteStream, RuntimeError> {
        self.inner.save_image(image).await
    }
    async fn load_image(&self, data: ByteStream) -> Result<Vec<String>, RuntimeError> {
        let image = self
            .pending
            .lock()
            .expect("pending")
            .take()
            .ok_or_else(|| self.push_err("no image named before the push".into()))?;
        let id = self.push(&image, data).await?;
        if id != image && !image.starts_with(&id) {
            return Err(self.push_err(format!("the agent loaded `{id}`, not `{image}`")));
        }
        self.delivered.lock().expect("delivered").insert(image);
        Ok(vec![id])
    }
    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.delivered.lock().expect("delivered").remove(image);
        self.inner.remove_image(image).await
    }
    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.inner.run(spec).await
    }
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.inner.stop(name, grace).await
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.inner.remove(name).await
    }
    async fn list(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.inner.list(labels).await
    }
    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, RuntimeError> {
        self.inner.logs_tail(name, lines).await
    }
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.inner.inspect(name).await
    }
}
