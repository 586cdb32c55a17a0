//! The nginx manager against a real nginx (Debian's): routing with prefix
//! stripping, reloads that switch backends, a rejected config that keeps the
//! old one, rate limiting and per-domain servers. Backends are tiny HTTP
//! servers in this process. Fails under CI=true without nginx.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use infra_agent::deploy::cutover::{TrafficSwitch, http_get};
use infra_agent::lb::{LbConfig, LbError, Nginx, Route};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP backend answering `<name> path=<path>` to every request.
struct Backend {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    async fn start(name: &'static str) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&buf);
                let path = req.split_whitespace().nth(1).unwrap_or("?").to_string();
                let body = format!("{name} path={path}\n");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            }
        });
        Backend { addr, task }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn config(listen: SocketAddr, backend: SocketAddr) -> LbConfig {
    let mut cfg = LbConfig::new(listen);
    cfg.worker_processes = "1".into();
    cfg.rate_per_second = 1000;
    cfg.burst = 1000;
    cfg.routes = vec![
        Route {
            project: "hostomatic".into(),
            env: "prod".into(),
            service: "backend".into(),
            backends: vec![backend],
        },
        Route {
            project: "hostomatic".into(),
            env: "prod".into(),
            service: "worker".into(),
            backends: vec![],
        },
    ];
    cfg
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get(addr, path, Duration::from_secs(5)).await.unwrap()
}

#[tokio::test]
async fn routes_strip_prefix_and_switch_on_reload() {
    if !nginx_available() {
        return;
    }
    let (a, b) = (Backend::start("A").await, Backend::start("B").await);
    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::new(NGINX, prefix.path());
    let listen = local(free_port());
    nginx.start(&config(listen, a.addr)).await.unwrap();

    assert_eq!(
        get(listen, "/health").await,
        (200, "ok generation=1\n".into())
    );
    let (code, body) = get(listen, "/hostomatic/prod/backend/health").await;
    assert_eq!((code, body.as_str()), (200, "A path=/health\n"));
    let (_, body) = get(listen, "/hostomatic/prod/backend/api/v1?q=1").await;
    assert_eq!(body, "A path=/api/v1?q=1\n");
    assert_eq!(get(listen, "/hostomatic/prod/worker/x").await.0, 503);
    assert_eq!(get(listen, "/other/prod/backend/health").await.0, 404);

    // Switch through the TrafficSwitch the cutover uses.
    let started = std::time::Instant::now();
    nginx
        .switch_to("hostomatic-prod-backend", b.addr)
        .await
        .unwrap();
    eprintln!(
        "switch (write + nginx -t + reload + visible): {:?}",
        started.elapsed()
    );
    assert_eq!(nginx.generation(), 2);
    let (_, body) = get(listen, "/hostomatic/prod/backend/health").await;
    assert_eq!(body, "B path=/health\n");
    let err = nginx.switch_to("nope-prod-web", b.addr).await.unwrap_err();
    assert!(err.contains("no route for upstream nope-prod-web"), "{err}");
    nginx.stop().await.unwrap();
    assert!(
        http_get(listen, "/health", Duration::from_secs(1))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rejected_config_keeps_the_old_one() {
    if !nginx_available() {
        return;
    }
    let a = Backend::start("A").await;
    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::new(NGINX, prefix.path());
    let listen = local(free_port());
    let good = config(listen, a.addr);
    nginx.start(&good).await.unwrap();
    let before = std::fs::read_to_string(nginx.conf_path()).unwrap();

    let mut bad = good.clone();
    bad.worker_processes = "bogus".into();
    let err = nginx.apply(&bad).await.unwrap_err();
    assert!(matches!(err, LbError::Check { .. }), "{err}");
    assert!(err.to_string().contains("worker_processes"), "{err}");
    assert_eq!(std::fs::read_to_string(nginx.conf_path()).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(prefix.path().join("conf"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["nginx.conf"]);
    assert_eq!(nginx.config(), Some(good.clone()));
    assert_eq!(get(listen, "/health").await.1, "ok generation=1\n");
    assert_eq!(get(listen, "/hostomatic/prod/backend/x").await.0, 200);

    // A later good config still applies.
    assert_eq!(nginx.apply(&good).await.unwrap(), 2);
    nginx.stop().await.unwrap();
}

#[tokio::test]
async fn rate_limit_and_domains() {
    if !nginx_available() {
        return;
    }
    let a = Backend::start("A").await;
    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::new(NGINX, prefix.path());
    let listen = local(free_port());
    let mut cfg = config(listen, a.addr);
    cfg.rate_per_second = 1;
    cfg.burst = 0;
    cfg.domains.insert(
        ("hostomatic".into(), "prod".into()),
        "hostomatic.example.test".into(),
    );
    nginx.start(&cfg).await.unwrap();

    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(get(listen, "/hostomatic/prod/backend/x").await.0);
    }
    assert_eq!(codes[0], 200, "{codes:?}");
    assert!(codes.contains(&429), "no request was limited: {codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 429), "{codes:?}");

    // The domain's server routes /<service>/ (allow the limiter a token).
    let body = poll("domain route", Duration::from_secs(5), || async {
        let mut s = tokio::net::TcpStream::connect(listen).await.ok()?;
        s.write_all(b"GET /backend/ping HTTP/1.0\r\nHost: hostomatic.example.test\r\n\r\n")
            .await
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        out.starts_with("HTTP/1.1 200").then_some(out)
    })
    .await;
    assert!(body.ends_with("A path=/ping\n"), "{body}");
    nginx.stop().await.unwrap();
}

#[tokio::test]
async fn dropping_the_manager_stops_master_and_workers() {
    if !nginx_available() {
        return;
    }
    let a = Backend::start("A").await;
    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::new(NGINX, prefix.path());
    let listen = local(free_port());
    nginx.start(&config(listen, a.addr)).await.unwrap();
    // A reload leaves old workers shutting down next to new ones.
    nginx
        .switch_to("hostomatic-prod-backend", a.addr)
        .await
        .unwrap();
    let master = nginx.master_pid().unwrap();
    drop(nginx);
    // With no process left holding it, the port refuses connections.
    poll("nginx gone", Duration::from_secs(10), || async {
        let gone = !std::path::Path::new(&format!("/proc/{master}")).exists()
            && tokio::net::TcpStream::connect(listen).await.is_err();
        gone.then_some(())
    })
    .await;
}
