//! Image delivery without a registry. The receiving side is an
//! [`ImageLoader`] (every agent serves it through the `Images` gRPC
//! service; [`EngineLoader`] `docker load`s into the agent's engine and
//! checks the id). The sending side is [`push_image`], which streams
//! `docker save` from the leader's engine to a droplet's agent over mTLS
//! (driven by [`AgentRuntime`](super::agent_runtime::AgentRuntime)).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use infra_proto::v1::ImageChunk;
use infra_proto::v1::images_client::ImagesClient;
use tonic::transport::Channel;

use crate::runtime::{ByteStream, ContainerRuntime, RuntimeError};

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

/// [`ImageLoader`] on the agent's engine (in an agent: its
/// [`LocalEngine`](crate::runtime::LocalEngine)).
pub struct EngineLoader {
    pub engine: Arc<dyn ContainerRuntime>,
}

#[async_trait]
impl ImageLoader for EngineLoader {
    async fn load(&self, expected: &str, data: ByteStream) -> Result<String, DeliveryError> {
        self.engine.load_image(data).await?;
        let id = self.engine.inspect_image(expected).await?.id;
        if id != expected && !expected.starts_with(&id) {
            return Err(DeliveryError::Mismatch {
                expected: expected.into(),
                loaded: id,
            });
        }
        Ok(id)
    }
}

/// Why a push failed: the saved image could not be read, or the agent
/// refused it (its status).
#[derive(Debug)]
pub enum PushFailure {
    Read(String),
    Refused(tonic::Status),
}

/// Streams `data` (the `docker save` tar of `image`) to the agent behind
/// `channel`; returns the image's id there.
pub async fn push_image(
    channel: Channel,
    image: &str,
    data: ByteStream,
) -> Result<String, PushFailure> {
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
        return Err(PushFailure::Read(e));
    }
    let reply = reply.map_err(PushFailure::Refused)?;
    Ok(reply.into_inner().image_id)
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
