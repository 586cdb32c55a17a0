//! [`LocalEngine`]: this machine's Docker (or Podman) engine, connected on
//! first use, so an agent starts (and serves everything else) while its
//! engine is not up yet. The agent's `Images` and `Containers` services run
//! on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    BuildRequest, ByteStream, ContainerInfo, ContainerRuntime, ContainerSpec, DEFAULT_SECRETS_ROOT,
    DockerRuntime, ImageInfo, RuntimeError,
};

/// The local engine, connected (with its secrets root) on first use; a
/// failed connection is retried by the next call.
#[derive(Debug)]
pub struct LocalEngine {
    secrets_root: PathBuf,
    engine: tokio::sync::OnceCell<DockerRuntime>,
}

impl Default for LocalEngine {
    fn default() -> Self {
        LocalEngine::new(DEFAULT_SECRETS_ROOT)
    }
}

impl LocalEngine {
    pub fn new(secrets_root: impl Into<PathBuf>) -> Self {
        LocalEngine {
            secrets_root: secrets_root.into(),
            engine: tokio::sync::OnceCell::new(),
        }
    }

    async fn get(&self) -> Result<&DockerRuntime, RuntimeError> {
        self.engine
            .get_or_try_init(|| DockerRuntime::connect(self.secrets_root.clone()))
            .await
    }
}

#[async_trait]
impl ContainerRuntime for LocalEngine {
    async fn build_image(&self, req: &BuildRequest) -> Result<String, RuntimeError> {
        self.get().await?.build_image(req).await
    }
    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        self.get().await?.image_exists(image).await
    }
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError> {
        self.get().await?.inspect_image(image).await
    }
    async fn save_image(&self, image: &str) -> Result<ByteStream, RuntimeError> {
        self.get().await?.save_image(image).await
    }
    async fn load_image(&self, data: ByteStream) -> Result<Vec<String>, RuntimeError> {
        self.get().await?.load_image(data).await
    }
    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError> {
        self.get().await?.remove_image(image).await
    }
    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.get().await?.run(spec).await
    }
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.get().await?.stop(name, grace).await
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.get().await?.remove(name).await
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.get().await?.list(labels).await
    }
    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, RuntimeError> {
        self.get().await?.logs_tail(name, lines).await
    }
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        self.get().await?.inspect(name).await
    }
}
