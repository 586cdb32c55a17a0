//! The deploy pipeline end to end against the real Docker engine and nginx:
//! a project repository with a web service (busybox httpd) and a worker,
//! deployed to uat on two local droplets (127.x addresses), redeployed
//! while a request loop runs through nginx (zero failures), a broken
//! release that leaves the old one serving, promotion to prod with the
//! exact image ids, rollback, and a secret that only shows inside the
//! container. Prints the deploy timings (benchmark). Needs Docker,
//! busybox-static and nginx (fails under CI=true without them).

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeZone;
use infra_agent::deploy::cutover::{CutoverConfig, HttpProbe, http_get};
use infra_agent::deploy::pipeline::{
    DeployOutcome, Droplet, Pipeline, PipelineConfig, PipelineError, Progress, Source,
    alternate_port,
};
use infra_agent::deploy::release_log::{DeployManifest, LocalReleaseLog, ReleaseLog};
use infra_agent::deploy::reproduce::reproduce;
use infra_agent::lb::{LbConfig, Nginx};
use infra_agent::runtime::ContainerRuntime;
use infra_agent::spec::{DeploymentConfig, ServiceKind, service_name};
use infra_agent::topology::{ServiceState, Topology};
use support::*;

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Progress for Lines {
    fn step(&self, line: &str) {
        eprintln!("  | {line}");
        self.0.lock().unwrap().push(line.to_string());
    }
}

fn deployment(base: &std::path::Path) -> DeploymentConfig {
    let json = serde_json::json!({
        "git_config": {"base_url": base.to_string_lossy(), "url_pattern": "{base_url}/{project}"},
        "projects": {"PROJECT": {"services": {
            "web": {"type": "web", "containerfile_path": "Containerfile", "secrets": ["api_key"],
                    "port": 8000, "health_path": "/health"},
            "worker": {"type": "worker", "containerfile_path": "Containerfile",
                       "command": "while true; do echo tick; sleep 0.2; done"}
        }}}
    });
    serde_json::from_value(json).unwrap()
}

fn topology(project: &str, droplets: &[&str], ports: &BTreeMap<&str, u16>) -> Topology {
    let mut t = Topology::default();
    for env in ["uat", "prod"] {
        for (service, kind) in [("web", ServiceKind::Web), ("worker", ServiceKind::Worker)] {
            t.services.insert(
                service_name(project, env, service),
                ServiceState {
                    project: project.into(),
                    environment: env.into(),
                    service: service.into(),
                    kind,
                    port: (kind == ServiceKind::Web).then(|| ports[env]),
                    droplets: droplets.iter().map(|d| d.to_string()).collect(),
                },
            );
        }
    }
    t
}

fn commit_version(origin: &std::path::Path, id: &str, version: &str, healthy: bool) {
    busybox_context(origin, version, id);
    if !healthy {
        std::fs::remove_file(origin.join("www/health")).unwrap();
    }
    support::git(origin, &["add", "-A"]);
    support::git(origin, &["commit", "-qm", version]);
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get(addr, path, Duration::from_secs(5)).await.unwrap()
}

fn web_addrs(out: &DeployOutcome) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = out
        .containers
        .iter()
        .filter(|c| c.1 == "web")
        .filter_map(|c| c.3)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uat_prod_redeploy_broken_release_and_rollback() {
    if !nginx_available() {
        return;
    }
    let id = test_id("pipe");
    let Some(rt) = docker(&secrets_root(&id)).await else {
        return;
    };
    let project = id.clone();
    let mut guard = Cleanup {
        runtime: rt.clone(),
        id: id.clone(),
        images: vec![],
        secrets_root: secrets_root(&id),
    };
    let stamps = [(10, 0), (10, 5), (10, 10), (10, 15), (10, 20), (10, 25)];
    let tags: Vec<String> = stamps
        .iter()
        .map(|(h, m)| format!("v1.2.0-uat-20261125-{h:02}{m:02}"))
        .collect();
    for t in &tags {
        for s in ["web", "worker"] {
            guard.images.push(format!("{project}-{s}:{t}"));
        }
    }

    // The project's repository: release tag v1.2.0.
    let origins = tempfile::tempdir().unwrap();
    let origin = origins.path().join(&project);
    std::fs::create_dir(&origin).unwrap();
    support::git(&origin, &["init", "-q", "-b", "main"]);
    commit_version(&origin, &id, "v1", true);
    support::git(&origin, &["tag", "v1.2.0"]);

    // Two droplets on their own loopback addresses, one shared engine.
    let net = 100 + (std::process::id() % 150) as u8;
    let addr = |host: u8| IpAddr::from([127, 77, net, host]);
    let shared: Arc<dyn ContainerRuntime> = Arc::new(rt.clone());
    let droplets: BTreeMap<String, Droplet> = [("web1", 2), ("web2", 3)]
        .into_iter()
        .map(|(n, h)| {
            let d = Droplet {
                name: n.into(),
                address: addr(h),
                runtime: shared.clone(),
            };
            (n.to_string(), d)
        })
        .collect();
    let ports = BTreeMap::from([("uat", free_port()), ("prod", free_port())]);
    let topo = topology(&project, &["web1", "web2"], &ports);
    let mut config = deployment(origins.path());
    let svc = config.projects.shift_remove("PROJECT").unwrap();
    config.projects.insert(project.clone(), svc);

    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::new(NGINX, prefix.path());
    let listen = local(free_port());
    let mut lb = LbConfig::new(listen);
    lb.worker_processes = "1".into();
    lb.rate_per_second = 10_000;
    lb.burst = 10_000;
    nginx.start(&lb).await.unwrap();

    let releases = LocalReleaseLog::in_memory();
    let progress = Lines::default();
    let work = tempfile::tempdir().unwrap();
    let pipeline = Pipeline {
        deployment: &config,
        topology: &topo,
        droplets: &droplets,
        builder: &rt,
        lb: &nginx,
        releases: &releases,
        probe: &HttpProbe {
            timeout: Duration::from_secs(1),
        },
        progress: &progress,
        config: PipelineConfig {
            cutover: CutoverConfig {
                health_timeout: Duration::from_secs(4),
                poll_interval: Duration::from_millis(100),
                drain: Duration::from_millis(500),
                stop_grace: Duration::from_secs(2),
                log_lines: 10,
            },
            worker_settle: Duration::from_millis(500),
            work_dir: work.path().into(),
            extra_labels: BTreeMap::from([("infra.test".to_string(), id.clone())]),
        },
    };
    let secret = format!("s3cret-{}", id.chars().rev().collect::<String>());
    let mut vars = BTreeMap::from([("API_KEY".to_string(), secret.clone())]);
    let at = |i: usize| {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 25, stamps[i].0, stamps[i].1, 30)
            .unwrap()
    };
    let main = Source::Git {
        branch: "main".into(),
    };

    // A missing secret fails before anything is built, naming the variables.
    let err = pipeline
        .deploy_uat(&project, &main, &BTreeMap::new(), at(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PipelineError::Secret(_)) && err.to_string().contains("API_KEY"),
        "{err}"
    );

    // 1. UAT from git: tag from v1.2.0, pushed to origin, both droplets serve.
    let uat1 = pipeline
        .deploy_uat(&project, &main, &vars, at(0))
        .await
        .unwrap();
    eprintln!(
        "deploy-uat #1: build {} ms, deploy (excluding build) {} ms",
        uat1.build_ms, uat1.rollout_ms
    );
    assert_eq!(uat1.tag, tags[0]);
    assert!(support::git(&origin, &["tag", "--list"]).contains(&tags[0]));
    let backends = web_addrs(&uat1);
    assert_eq!(
        backends.iter().map(|a| a.ip()).collect::<Vec<_>>(),
        [addr(2), addr(3)]
    );
    let route = nginx.config().unwrap().routes;
    let uat_upstream = format!("{project}-uat-web");
    let r = route.iter().find(|r| r.upstream() == uat_upstream).unwrap();
    assert_eq!(r.backends, backends);
    for b in &backends {
        assert_eq!(get(*b, "/version").await, (200, "v1\n".to_string()));
    }
    let uat_path = format!("/{project}/uat/web/version");
    assert_eq!(get(listen, &uat_path).await, (200, "v1\n".into()));
    let workers = rt
        .list(&BTreeMap::from([
            ("infra.test".to_string(), id.clone()),
            ("infra.service".to_string(), "worker".to_string()),
        ]))
        .await
        .unwrap();
    assert_eq!(workers.iter().filter(|c| c.running).count(), 2);

    // The secret: a file in the container, never in inspect, logs, progress.
    let web1 = &uat1
        .containers
        .iter()
        .find(|c| c.0 == "web1" && c.1 == "web")
        .unwrap()
        .2;
    let read = exec_output(&rt, web1, &["/bin/busybox", "cat", "/run/secrets/api_key"]).await;
    assert_eq!(read, secret);
    let inspect = rt.client().inspect_container(web1, None).await.unwrap();
    assert!(!serde_json::to_string(&inspect).unwrap().contains(&secret));
    assert!(!rt.logs_tail(web1, 1000).await.unwrap().contains(&secret));
    assert!(!format!("{uat1:?}").contains(&secret));

    // 2. Rolling redeploy of a new commit under a steady request loop.
    commit_version(&origin, &id, "v2", true);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Four clients, each a bounded loop until the deploy is done.
    let mut loopers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (stop, ok, failed, path) = (stop.clone(), ok.clone(), failed.clone(), uat_path.clone());
        loopers.spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match http_get(listen, &path, Duration::from_secs(5)).await {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        errors.push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        });
    }
    let redeploy = pipeline.deploy_uat(&project, &main, &vars, at(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    while let Some(e) = loopers.join_next().await {
        errors.extend(e.unwrap());
    }
    let uat2 = redeploy.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "rolling redeploy: build {} ms, deploy (excluding build) {} ms; requests ok {ok}, failed {failed}",
        uat2.build_ms, uat2.rollout_ms
    );
    assert_eq!(failed, 0, "failed requests during the redeploy: {errors:?}");
    assert!(ok > 20, "the request loop ran only {ok} requests");
    assert_eq!(get(listen, &uat_path).await, (200, "v2\n".into()));
    assert_ne!(web_addrs(&uat2), backends, "ports alternate");

    // 3. A release whose health never passes: old one keeps serving.
    commit_version(&origin, &id, "v3", false);
    let err = pipeline
        .deploy_uat(&project, &main, &vars, at(2))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, PipelineError::Rollout { .. }) && text.contains("never became healthy"),
        "{text}"
    );
    assert!(text.contains("Last log lines"), "{text}");
    assert_eq!(get(listen, &uat_path).await, (200, "v2\n".into()));
    let live = releases.live(&project, "uat").await.unwrap().unwrap();
    assert_eq!(live.tag, tags[1]);

    // 3b. A release that cannot start on the second droplet (its next host
    // port is taken): the first droplet goes back, both serve v2.
    commit_version(&origin, &id, "v4", true);
    let current = web_addrs(&uat2);
    let primary = ports["uat"];
    let next = if current[1].port() == primary {
        alternate_port(primary)
    } else {
        primary
    };
    let blocker = std::net::TcpListener::bind(SocketAddr::new(addr(3), next)).unwrap();
    let err = pipeline
        .deploy_uat(&project, &main, &vars, at(3))
        .await
        .unwrap_err();
    drop(blocker);
    assert!(
        matches!(&err, PipelineError::Rollout { droplet, .. } if droplet == "web2"),
        "{err}"
    );
    let route = nginx.config().unwrap().routes;
    let r = route.iter().find(|r| r.upstream() == uat_upstream).unwrap();
    assert_eq!(r.backends.len(), 2);
    for b in &r.backends {
        assert_eq!(get(*b, "/version").await, (200, "v2\n".to_string()), "{b}");
    }
    let uat_running: Vec<_> = rt
        .list(&BTreeMap::from([
            ("infra.test".to_string(), id.clone()),
            ("infra.environment".to_string(), "uat".to_string()),
        ]))
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.running)
        .collect();
    assert_eq!(uat_running.len(), 4, "{uat_running:?}");
    assert!(uat_running.iter().all(|c| c.labels["infra.tag"] == tags[1]));

    // The same minute's tag with other images is refused, nothing changes.
    let err = pipeline
        .deploy_uat(&project, &main, &vars, at(1))
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::TagTaken { .. }), "{err}");
    assert_eq!(get(listen, &uat_path).await, (200, "v2\n".into()));

    // 4. Prod: the newest uat release, exact image ids, never rebuilt.
    let bogus = "v9.9.9-uat-20261125-0000";
    let err = pipeline
        .deploy_prod(&project, Some(bogus), &vars)
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::NotInUat { .. }), "{err}");
    vars.insert("PROD_API_KEY".into(), format!("{secret}-prod"));
    let prod = pipeline.deploy_prod(&project, None, &vars).await.unwrap();
    eprintln!("deploy-prod: {} ms (no build)", prod.rollout_ms);
    assert_eq!(prod.tag, tags[1]);
    assert_eq!(prod.images, uat2.images);
    assert_eq!(prod.build_ms, 0);
    let prod_path = format!("/{project}/prod/web/version");
    assert_eq!(get(listen, &prod_path).await, (200, "v2\n".into()));
    for (_, service, name, _) in &prod.containers {
        let c = rt.client().inspect_container(name, None).await.unwrap();
        assert_eq!(c.image.as_ref(), Some(&uat2.images[service]), "{name}");
    }
    let prod_web = &prod.containers.iter().find(|c| c.1 == "web").unwrap().2;
    let read = exec_output(
        &rt,
        prod_web,
        &["/bin/busybox", "cat", "/run/secrets/api_key"],
    )
    .await;
    assert_eq!(read, format!("{secret}-prod"), "env-specific secret wins");

    // 5. Rollback uat to the previous release, at once, no rebuild.
    let back = pipeline
        .rollback(&project, "uat", None, &vars)
        .await
        .unwrap();
    assert_eq!(back.tag, tags[0]);
    assert_eq!(back.images, uat1.images);
    assert_eq!(get(listen, &uat_path).await, (200, "v1\n".into()));
    assert_eq!(get(listen, &prod_path).await, (200, "v2\n".into()));
    assert_eq!(
        releases.live(&project, "uat").await.unwrap().unwrap().tag,
        tags[0]
    );
    // Running containers: one web + one worker per droplet per env.
    let running = rt
        .list(&BTreeMap::from([("infra.test".to_string(), id.clone())]))
        .await
        .unwrap();
    assert_eq!(
        running.iter().filter(|c| c.running).count(),
        8,
        "{running:?}"
    );

    // Reproduce the prod tag: the same commit, with the manifest beside it.
    let rec = releases.live(&project, "prod").await.unwrap().unwrap();
    let out = tempfile::tempdir().unwrap();
    let done = reproduce(
        &config.git_config,
        &rec,
        &config.projects[&project],
        out.path(),
    )
    .await
    .unwrap();
    assert_eq!(Some(done.commit.clone()), uat2.commit);
    assert_eq!(
        std::fs::read_to_string(done.checkout.join("www/version")).unwrap(),
        "v2\n"
    );
    let manifest: DeployManifest =
        serde_json::from_str(&std::fs::read_to_string(&done.manifest).unwrap()).unwrap();
    assert_eq!(manifest.version, 1);
    assert_eq!(
        (manifest.tag, manifest.images),
        (tags[1].clone(), uat2.images.clone())
    );
    assert_eq!(manifest.services.len(), 2);

    // Keep 3: two more uat releases prune the oldest (tags[0]) and its
    // images; prod's images (tags[1]) stay, and prod is untouched.
    for (i, v) in [(4, "v5"), (5, "v6")] {
        commit_version(&origin, &id, v, true);
        pipeline
            .deploy_uat(&project, &main, &vars, at(i))
            .await
            .unwrap();
    }
    let kept: Vec<String> = releases
        .history(&project, "uat")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.tag)
        .collect();
    assert_eq!(kept, [tags[5].clone(), tags[4].clone(), tags[1].clone()]);
    for image in uat1.images.values() {
        assert!(
            !rt.image_exists(image).await.unwrap(),
            "pruned {image} kept"
        );
    }
    for image in uat2.images.values() {
        assert!(
            rt.image_exists(image).await.unwrap(),
            "prod's {image} pruned"
        );
    }
    assert_eq!(releases.history(&project, "prod").await.unwrap().len(), 1);
    assert_eq!(get(listen, &prod_path).await, (200, "v2\n".into()));
    assert_eq!(get(listen, &uat_path).await, (200, "v6\n".into()));

    let lines = progress.0.lock().unwrap().join("\n");
    assert!(!lines.contains(&secret), "progress leaks the secret");
    assert!(lines.contains("rolling out web"), "{lines}");
    nginx.stop().await.unwrap();
}
