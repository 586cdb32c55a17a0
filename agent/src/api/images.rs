//! Images service handler: turns the `PushImage` chunk stream into a byte
//! stream for the [`ImageLoader`] and its answer into the reply.

use std::sync::Arc;

use futures::StreamExt;
use infra_proto::v1::images_server::Images;
use infra_proto::v1::{ImageChunk, PushImageReply};
use tonic::{Request, Response, Status, Streaming};

use super::error::ApiError;
use crate::deploy::delivery::{DeliveryError, ImageLoader};
use crate::runtime::{ByteStream, RuntimeError};

pub struct ImagesApi {
    pub loader: Arc<dyn ImageLoader>,
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
}
