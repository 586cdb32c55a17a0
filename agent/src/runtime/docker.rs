//! [`DockerRuntime`]: the container runtime over the Docker Engine API
//! (bollard), also serving Podman's Docker-compatible socket.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, Mount, MountType, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, ImportImageOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::{StreamExt, TryStreamExt};

use super::secret_files::SecretFiles;
use super::{
    BuildRequest, ByteStream, ContainerInfo, ContainerRuntime, ContainerSpec, ImageInfo,
    RuntimeError, SECRETS_DIR, check_name, context_tar,
};

/// Longest wait for the engine's answer to start: loading a large image or
/// uploading a large build context answers only when done (bollard's
/// default is 2 minutes).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Recommended secrets root: on the `/dev/shm` tmpfs.
pub const DEFAULT_SECRETS_ROOT: &str = "/dev/shm/infra-secrets";

/// The Docker (or Podman) engine reached through `DOCKER_HOST` or the
/// default local socket.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    secrets: SecretFiles,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("secrets", &self.secrets)
            .finish()
    }
}

fn engine(op: &'static str, target: &str) -> impl FnOnce(bollard::errors::Error) -> RuntimeError {
    let target = target.to_string();
    move |e| RuntimeError::Engine {
        op,
        target,
        message: e.to_string(),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerRuntime {
    /// Connects with `Docker::connect_with_local_defaults` (honours
    /// `DOCKER_HOST=unix://...`) and negotiates the API version (Docker 20.10
    /// speaks 1.41). Secret files live under `secrets_root/<container>/`,
    /// which should be on a tmpfs ([`DEFAULT_SECRETS_ROOT`]).
    pub async fn connect(secrets_root: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| RuntimeError::Connect(e.to_string()))?
            .with_timeout(ENGINE_TIMEOUT)
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::Connect(e.to_string()))?;
        docker
            .ping()
            .await
            .map_err(|e| RuntimeError::Connect(e.to_string()))?;
        Ok(DockerRuntime {
            docker,
            secrets: SecretFiles::new(secrets_root),
        })
    }

    /// The underlying client (tests use it for `exec` and inspection).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn create_body(&self, spec: &ContainerSpec, secrets: Option<&PathBuf>) -> ContainerCreateBody {
        let mut labels: HashMap<String, String> = spec.extra_labels.clone().into_iter().collect();
        labels.extend(spec.labels.to_map());
        let mut host = HostConfig {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            init: spec.init.then_some(true),
            ..Default::default()
        };
        let mut exposed = None;
        if let Some(p) = spec.publish {
            let key = format!("{}/tcp", p.container_port);
            exposed = Some(vec![key.clone()]);
            host.port_bindings = Some(HashMap::from([(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(p.host_ip.to_string()),
                    host_port: Some(p.host_port.to_string()),
                }]),
            )]));
        }
        if let Some(dir) = secrets {
            host.mounts = Some(vec![Mount {
                target: Some(SECRETS_DIR.into()),
                source: Some(dir.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            }]);
        }
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.command.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            exposed_ports: exposed,
            host_config: Some(host),
            ..Default::default()
        }
    }
}

fn info_from_inspect(c: ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.unwrap_or_default();
    let config = c.config.unwrap_or_default();
    let mut ports = Vec::new();
    for (key, bindings) in c.network_settings.and_then(|n| n.ports).unwrap_or_default() {
        let Some(cport) = key.split('/').next().and_then(|p| p.parse().ok()) else {
            continue;
        };
        for b in bindings.unwrap_or_default() {
            if let Some(hport) = b.host_port.and_then(|p| p.parse().ok()) {
                ports.push((cport, b.host_ip.unwrap_or_default(), hport));
            }
        }
    }
    ports.sort();
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c.name.unwrap_or_default().trim_start_matches('/').into(),
        image: c.image.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        running: state.running.unwrap_or(false),
        ports,
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn build_image(&self, req: &BuildRequest) -> Result<String, RuntimeError> {
        let ctx = context_tar(&req.context_dir, &req.containerfile)?;
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile(&req.containerfile)
            .t(&req.tag)
            .rm(true)
            .forcerm(true)
            .labels(&req.labels.clone().into_iter().collect::<HashMap<_, _>>())
            .build();
        let body = bollard::body_try_stream(ctx.stream);
        let mut out = self.docker.build_image(opts, None, Some(body));
        let mut tail: Vec<String> = Vec::new();
        let mut failure = None;
        while let Some(item) = out.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = info.stream {
                        tail.push(line.trim_end().to_string());
                    }
                    if let Some(err) = info.error_detail.and_then(|d| d.message) {
                        failure = Some(err);
                    }
                }
                Err(e) => failure = Some(e.to_string()),
            }
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
        let written = ctx.writer.await;
        if let Some(message) = failure {
            return Err(RuntimeError::Build {
                tag: req.tag.clone(),
                message: format!("{message}\n{}", tail.join("\n")),
            });
        }
        match written {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(RuntimeError::Io {
                    context: format!("read build context {}", req.context_dir.display()),
                    source,
                });
            }
            Err(e) => {
                return Err(RuntimeError::Build {
                    tag: req.tag.clone(),
                    message: format!("context writer task failed: {e}"),
                });
            }
        }
        Ok(self.inspect_image(&req.tag).await?.id)
    }

    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(engine("inspect image", image)(e)),
        }
    }

    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError> {
        let i = self
            .docker
            .inspect_image(image)
            .await
            .map_err(engine("inspect image", image))?;
        Ok(ImageInfo {
            id: i.id.unwrap_or_default(),
            tags: i.repo_tags.unwrap_or_default(),
            labels: i
                .config
                .and_then(|c| c.labels)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
    }

    async fn save_image(&self, image: &str) -> Result<ByteStream, RuntimeError> {
        // Fail early with a clear error instead of inside the stream.
        self.inspect_image(image).await?;
        let image = image.to_string();
        let stream = self
            .docker
            .export_image(&image)
            .map_err(move |e| engine("save image", &image)(e));
        Ok(Box::pin(stream))
    }

    async fn load_image(&self, data: ByteStream) -> Result<Vec<String>, RuntimeError> {
        let body = bollard::body_try_stream(data.map_err(|e| std::io::Error::other(e.to_string())));
        let mut out = self.docker.import_image(
            ImportImageOptionsBuilder::default().quiet(true).build(),
            body,
            None,
        );
        let mut loaded = Vec::new();
        while let Some(item) = out.next().await {
            let info = item.map_err(engine("load image", "<stream>"))?;
            let text = info.stream.or(info.status).unwrap_or_default();
            for prefix in ["Loaded image ID: ", "Loaded image: "] {
                if let Some(rest) = text.trim().strip_prefix(prefix) {
                    loaded.push(rest.to_string());
                }
            }
        }
        Ok(loaded)
    }

    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError> {
        let opts = RemoveImageOptionsBuilder::default().force(true).build();
        match self.docker.remove_image(image, Some(opts), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine("remove image", image)(e)),
        }
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        check_name("container name", &spec.name)?;
        let secrets = if spec.secrets.is_empty() {
            None
        } else {
            Some(self.secrets.write(&spec.name, &spec.secrets)?)
        };
        let body = self.create_body(spec, secrets.as_ref());
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let created = self.docker.create_container(Some(opts), body).await;
        let id = match created {
            Ok(r) => r.id,
            Err(e) => {
                if secrets.is_some() {
                    let _ = self.secrets.remove(&spec.name);
                }
                return Err(engine("create container", &spec.name)(e));
            }
        };
        if let Err(e) = self.docker.start_container(&id, None).await {
            let _ = self.remove(&spec.name).await;
            return Err(engine("start container", &spec.name)(e));
        }
        Ok(id)
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError> {
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let opts = StopContainerOptionsBuilder::default().t(secs).build();
        match self.docker.stop_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(engine("stop container", name)(e)),
        }
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let result = match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine("remove container", name)(e)),
        };
        if check_name("container name", name).is_ok() {
            self.secrets.remove(name)?;
        }
        result
    }

    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let filters = HashMap::from([(
            "label",
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let found = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine("list containers", "<labels>"))?;
        let mut out = Vec::new();
        for c in found {
            if let Some(id) = c.id
                && let Some(info) = self.inspect(&id).await?
            {
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, RuntimeError> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let chunks: Vec<_> = self
            .docker
            .logs(name, Some(opts))
            .try_collect()
            .await
            .map_err(engine("container logs", name))?;
        Ok(chunks
            .into_iter()
            .map(|c| String::from_utf8_lossy(&c.into_bytes()).into_owned())
            .collect())
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        match self.docker.inspect_container(name, None).await {
            Ok(c) => Ok(Some(info_from_inspect(c))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine("inspect container", name)(e)),
        }
    }
}
