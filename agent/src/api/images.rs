//! Images service handler: turns the `PushImage` chunk stream into a byte
//! stream for the [`ImageLoader`] and its answer into the reply; answers
//! `ImageExists`, `InspectImage` and `RemoveImage` from the agent's local
//! engine.

use std::sync::Arc;

use futures::StreamExt;
use infra_proto::v1::images_server::Images;
use infra_proto::v1::{
    ImageChunk, ImageExistsReply, ImageInfo, ImageRef, PushImageReply, RemoveImageReply,
};
use tonic::{Request, Response, Status, Streaming};

use super::containers_wire::{image, image_to_wire};
use super::error::ApiError;
use crate::deploy::delivery::{DeliveryError, ImageLoader};
use crate::runtime::{ByteStream, ContainerRuntime, RuntimeError};

pub struct ImagesApi {
    pub loader: Arc<dyn ImageLoader>,
    /// The agent's local engine (image queries and removal).
    pub engine: Arc<dyn ContainerRuntime>,
}

#[tonic::async_trait]
impl Images for ImagesApi {
    async fn push_image(
        &self,
        request: Request<Streaming<ImageChunk>>,
    ) -> Result<Response<PushImageReply>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks
            .message()
            .await?
            .ok_or(ApiError::from(DeliveryError::NoImage))?;
        if first.image.is_empty() {
            return Err(ApiError::from(DeliveryError::NoImage).into());
        }
        let head =
            futures::stream::once(futures::future::ready(Ok(bytes::Bytes::from(first.data))));
        let rest = chunks.map(|c| {
            c.map(|c| bytes::Bytes::from(c.data))
                .map_err(|s| RuntimeError::Engine {
                    op: "receive image",
                    target: "<stream>".into(),
                    message: s.message().to_string(),
                })
        });
        let data: ByteStream = Box::pin(head.chain(rest));
        let image_id = self
            .loader
            .load(&first.image, data)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(PushImageReply { image_id }))
    }

    async fn image_exists(
        &self,
        request: Request<ImageRef>,
    ) -> Result<Response<ImageExistsReply>, Status> {
        let req = request.into_inner();
        image("image", &req.image)?;
        let exists = self
            .engine
            .image_exists(&req.image)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ImageExistsReply { exists }))
    }

    async fn inspect_image(
        &self,
        request: Request<ImageRef>,
    ) -> Result<Response<ImageInfo>, Status> {
        let req = request.into_inner();
        image("image", &req.image)?;
        let info = self
            .engine
            .inspect_image(&req.image)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(image_to_wire(info)))
    }

    async fn remove_image(
        &self,
        request: Request<ImageRef>,
    ) -> Result<Response<RemoveImageReply>, Status> {
        let req = request.into_inner();
        image("image", &req.image)?;
        tracing::info!(image = %req.image, "removing an image");
        self.engine
            .remove_image(&req.image)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(RemoveImageReply {}))
    }
}
