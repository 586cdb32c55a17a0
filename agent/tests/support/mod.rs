//! Shared helpers of the Docker and nginx integration tests: environment
//! gating (fail under CI=true, skip with a message otherwise), a busybox
//! image context, free ports, polling, and a Drop guard that removes every
//! container and image a test labelled `infra.test=<id>`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::TryStreamExt;
use infra_agent::runtime::{ContainerRuntime, DockerRuntime};

pub const NGINX: &str = "/usr/sbin/nginx";
pub const BUSYBOX: &str = "/bin/busybox";

/// True when `what` is available. When it is not: panics under `CI=true`,
/// otherwise prints why the test is skipped and returns false.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required when CI=true but is not available (run scripts/setup)");
    }
    eprintln!("SKIPPED: {what} is not available on this machine");
    false
}

pub fn nginx_available() -> bool {
    require("nginx", Path::new(NGINX).exists())
}

/// Connects to the engine, or `None` (skip) when it is unreachable.
pub async fn docker(secrets_root: &Path) -> Option<DockerRuntime> {
    let rt = DockerRuntime::connect(secrets_root).await;
    if let Err(e) = &rt {
        eprintln!("docker: {e}");
    }
    if require("a Docker engine", rt.is_ok())
        && require("busybox-static", Path::new(BUSYBOX).exists())
    {
        rt.ok()
    } else {
        None
    }
}

/// The host directory for a test's secret files: on the `/dev/shm` tmpfs.
pub fn secrets_root(id: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(format!("infra-test-secrets-{id}"))
}

/// A unique id for labels and names.
pub fn test_id(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}-{}-{nanos:x}", std::process::id())
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes a build context: static busybox (applets linked in /bin),
/// `/www/health`, `/www/version`
/// and a Containerfile running `httpd -f -p 8000 -h /www`.
pub fn busybox_context(dir: &Path, version: &str, test_label: &str) {
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::copy(BUSYBOX, dir.join("busybox")).unwrap();
    std::fs::write(dir.join("www/health"), "ok\n").unwrap();
    std::fs::write(dir.join("www/version"), format!("{version}\n")).unwrap();
    std::fs::write(
        dir.join("Containerfile"),
        format!(
            "FROM scratch\nCOPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY www /www\n\
             LABEL infra.test=\"{test_label}\"\n\
             CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/www\"]\n"
        ),
    )
    .unwrap();
}

/// Runs `git` in `dir`, panicking with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=infra test",
            "-c",
            "user.email=test@infra.invalid",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes everything labelled `infra.test=<id>` (containers, their secret
/// files, images) when dropped, even if the test panicked.
pub struct Cleanup {
    pub runtime: DockerRuntime,
    pub id: String,
    pub images: Vec<String>,
    pub secrets_root: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let rt = self.runtime.clone();
        let id = self.id.clone();
        let images = self.images.clone();
        std::thread::scope(|s| {
            s.spawn(|| {
                let tokio = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                tokio.block_on(async {
                    let labels = BTreeMap::from([("infra.test".to_string(), id.clone())]);
                    for c in rt.list(&labels).await.unwrap_or_default() {
                        if let Err(e) = rt.remove(&c.name).await {
                            eprintln!("cleanup: {e}");
                        }
                    }
                    for image in &images {
                        if let Err(e) = rt.remove_image(image).await {
                            eprintln!("cleanup: {e}");
                        }
                    }
                });
            });
        });
        let _ = std::fs::remove_dir_all(&self.secrets_root);
    }
}

/// Runs `cmd` inside container `name`; returns its stdout and stderr.
pub async fn exec_output(rt: &DockerRuntime, name: &str, cmd: &[&str]) -> String {
    let exec = rt
        .client()
        .create_exec(
            name,
            CreateExecOptions {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let StartExecResults::Attached { output, .. } =
        rt.client().start_exec(&exec.id, None).await.unwrap()
    else {
        panic!("exec not attached");
    };
    let chunks: Vec<_> = output.try_collect().await.unwrap();
    chunks.into_iter().map(|c| c.to_string()).collect()
}
