//! Health-gated cutover with real containers behind a real nginx: a rolling
//! replacement under a bounded request loop sees zero failed requests, and a
//! release that never gets healthy leaves the old one serving. Needs Docker,
//! busybox-static and nginx (fails under CI=true without them).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use infra_agent::deploy::cutover::{Cutover, CutoverConfig, CutoverError, HttpProbe, http_get};
use infra_agent::lb::{LbConfig, Nginx, Route};
use infra_agent::runtime::{
    BuildRequest, ContainerRuntime, ContainerSpec, DockerRuntime, PortPublish, ServiceLabels,
};
use support::*;

const UPSTREAM: &str = "hostomatic-uat-web";
const PATH: &str = "/hostomatic/uat/web/version";

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    v1: AtomicU64,
    v2: AtomicU64,
}

/// Request loop through nginx until `stop` (bounded in count and time).
async fn load(listen: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) -> Vec<String> {
    let mut failures = Vec::new();
    let started = Instant::now();
    for _ in 0..50_000 {
        if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(90) {
            break;
        }
        match http_get(listen, PATH, Duration::from_secs(5)).await {
            Ok((200, body)) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                match body.trim() {
                    "v1" => tally.v1.fetch_add(1, Ordering::Relaxed),
                    "v2" => tally.v2.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
            }
            other => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                failures.push(format!("{other:?}"));
            }
        }
    }
    failures
}

async fn build(rt: &DockerRuntime, id: &str, version: &str) -> String {
    let ctx = tempfile::tempdir().unwrap();
    busybox_context(ctx.path(), version, id);
    let tag = format!("infra-test-{id}:{version}");
    rt.build_image(&BuildRequest {
        context_dir: ctx.path().into(),
        containerfile: "Containerfile".into(),
        tag: tag.clone(),
        labels: BTreeMap::new(),
    })
    .await
    .unwrap();
    tag
}

fn web(id: &str, image: &str, slot: &str, port: u16) -> ContainerSpec {
    ContainerSpec {
        name: format!("hostomatic-uat-web-{slot}-{id}"),
        image: image.into(),
        labels: ServiceLabels {
            project: "hostomatic".into(),
            environment: "uat".into(),
            service: "web".into(),
            tag: image.rsplit(':').next().unwrap().into(),
        },
        extra_labels: BTreeMap::from([("infra.test".into(), id.into())]),
        command: None,
        env: BTreeMap::new(),
        publish: Some(PortPublish {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: port,
            container_port: 8000,
        }),
        secrets: BTreeMap::new(),
        init: true,
    }
}

#[tokio::test]
async fn rolling_cutover_through_nginx_loses_no_request() {
    if !nginx_available() {
        return;
    }
    let id = test_id("cut");
    let Some(rt) = docker(&secrets_root(&id)).await else {
        return;
    };
    let mut guard = Cleanup {
        runtime: rt.clone(),
        id: id.clone(),
        images: vec![],
        secrets_root: secrets_root(&id),
    };
    let v1 = build(&rt, &id, "v1").await;
    let v2 = build(&rt, &id, "v2").await;
    guard.images.extend([v1.clone(), v2.clone()]);

    // Old release on port A, behind nginx.
    let (port_a, port_b) = (free_port(), free_port());
    let old = web(&id, &v1, "a", port_a);
    rt.run(&old).await.unwrap();
    poll("old container healthy", Duration::from_secs(20), || async {
        matches!(
            http_get(local(port_a), "/health", Duration::from_secs(1)).await,
            Ok((200, _))
        )
        .then_some(())
    })
    .await;
    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::new(NGINX, prefix.path());
    let listen = local(free_port());
    let mut cfg = LbConfig::new(listen);
    cfg.worker_processes = "1".into();
    cfg.rate_per_second = 100_000;
    cfg.burst = 100_000;
    cfg.routes = vec![Route {
        project: "hostomatic".into(),
        env: "uat".into(),
        service: "web".into(),
        backends: vec![local(port_a)],
    }];
    nginx.start(&cfg).await.unwrap();
    let (code, body) = http_get(listen, "/hostomatic/uat/web/health", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((code, body.trim()), (200, "ok"));

    let cutover = Cutover {
        runtime: &rt,
        probe: &HttpProbe {
            timeout: Duration::from_secs(1),
        },
        switch: &nginx,
        config: CutoverConfig {
            health_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            drain: Duration::from_secs(1),
            stop_grace: Duration::from_secs(2),
            log_lines: 20,
        },
    };

    // Rolling replacement v1 -> v2 under two request loops.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..2 {
        loops.spawn(load(listen, stop.clone(), tally.clone()));
    }
    poll("traffic on v1", Duration::from_secs(10), || async {
        (tally.v1.load(Ordering::Relaxed) >= 50).then_some(())
    })
    .await;
    let new = web(&id, &v2, "b", port_b);
    let started = Instant::now();
    let report = cutover
        .run(UPSTREAM, &new, "/health", Some(&old.name))
        .await
        .unwrap();
    let cutover_time = started.elapsed();
    let v2_before = tally.v2.load(Ordering::Relaxed);
    poll("traffic on v2", Duration::from_secs(10), || async {
        (tally.v2.load(Ordering::Relaxed) >= v2_before + 50).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    while let Some(f) = loops.join_next().await {
        failures.extend(f.unwrap());
    }
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "rolling cutover: total {cutover_time:?} (new healthy after {:?}, {} probes, drain 1 s); \
         requests ok={ok} failed={failed} v1={} v2={}",
        report.healthy_after,
        report.probes,
        tally.v1.load(Ordering::Relaxed),
        tally.v2.load(Ordering::Relaxed),
    );
    assert_eq!(failed, 0, "failed requests during cutover: {failures:?}");
    assert_eq!(
        rt.inspect(&old.name).await.unwrap(),
        None,
        "old container left"
    );
    assert_eq!(report.replaced.as_deref(), Some(old.name.as_str()));

    // A broken release never gets healthy: the old (v2) one keeps serving.
    let mut broken = web(&id, &v2, "c", port_a);
    broken.command = Some(
        [
            "/bin/busybox",
            "sh",
            "-c",
            "echo broken release starting; echo 'fatal: DATABASE_URL is not set' >&2; \
             exec /bin/busybox httpd -f -p 8000 -h /nonexistent",
        ]
        .map(String::from)
        .to_vec(),
    );
    let strict = Cutover {
        config: CutoverConfig {
            health_timeout: Duration::from_secs(3),
            ..cutover.config
        },
        ..cutover
    };
    let generation = nginx.generation();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let looping = tokio::spawn(load(listen, stop.clone(), tally.clone()));
    let started = Instant::now();
    let err = strict
        .run(UPSTREAM, &broken, "/health", Some(&new.name))
        .await
        .unwrap_err();
    let failed_after = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let failures = looping.await.unwrap();
    eprintln!("broken release rejected after {failed_after:?}: {err}");
    assert!(matches!(err, CutoverError::Unhealthy { .. }), "{err}");
    assert!(err.to_string().contains("DATABASE_URL is not set"), "{err}");
    assert_eq!(failures, Vec::<String>::new());
    assert!(tally.v2.load(Ordering::Relaxed) > 0);
    assert_eq!(nginx.generation(), generation, "nginx was switched");
    assert_eq!(rt.inspect(&broken.name).await.unwrap(), None);
    assert!(rt.inspect(&new.name).await.unwrap().unwrap().running);
    let (_, body) = http_get(listen, PATH, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(body.trim(), "v2");
    nginx.stop().await.unwrap();
}
