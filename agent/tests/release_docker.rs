//! A project's releases end to end on one droplet: deploy a web service and
//! a worker at two tags (web through nginx), keep the release history, roll
//! back to the previous release, and refuse a worker that does not stay up.
//! Needs Docker, busybox-static and nginx (fails under CI=true without them).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use infra_agent::deploy::SecretValue;
use infra_agent::deploy::cutover::{Cutover, CutoverConfig, CutoverError, HttpProbe, http_get};
use infra_agent::deploy::releases::Releases;
use infra_agent::deploy::rollout::{RolloutReport, roll_out};
use infra_agent::deploy::service::{Placement, container_spec, image_ref};
use infra_agent::lb::{LbConfig, Nginx, Route};
use infra_agent::runtime::{BuildRequest, ContainerRuntime, ContainerSpec, DockerRuntime};
use infra_agent::spec::{ServiceKind, ServiceSpec};
use support::*;

const T1: &str = "v1.0.0-uat-20261125-0900";
const T2: &str = "v1.1.0-uat-20261125-0910";

fn service(kind: ServiceKind, command: Option<&str>) -> ServiceSpec {
    ServiceSpec {
        kind,
        containerfile_path: "Containerfile".into(),
        command: command.map(String::from),
        secrets: vec!["api_key".into()],
        environment: Default::default(),
        port: Some(8000),
        health_path: None,
    }
}

struct Project<'a> {
    id: &'a str,
    name: String,
    rt: &'a DockerRuntime,
}

impl Project<'_> {
    fn spec(&self, svc: &str, s: &ServiceSpec, tag: &str, port: u16) -> ContainerSpec {
        let at = Placement {
            project: &self.name,
            env: "uat",
            service: svc,
            tag,
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: port,
        };
        let secrets = BTreeMap::from([("api_key".to_string(), SecretValue::new("k"))]);
        let mut c = container_spec(s, &at, secrets);
        c.extra_labels.insert("infra.test".into(), self.id.into());
        c
    }

    async fn build(&self, svc: &str, tag: &str, version: &str) -> String {
        let ctx = tempfile::tempdir().unwrap();
        busybox_context(ctx.path(), version, self.id);
        let image = image_ref(&self.name, svc, tag);
        self.rt
            .build_image(&BuildRequest {
                context_dir: ctx.path().into(),
                containerfile: "Containerfile".into(),
                tag: image.clone(),
                labels: BTreeMap::new(),
            })
            .await
            .unwrap();
        image
    }
}

#[tokio::test]
async fn deploy_two_releases_and_roll_back() {
    if !nginx_available() {
        return;
    }
    let id = test_id("rel");
    let Some(rt) = docker(&secrets_root(&id)).await else {
        return;
    };
    let mut guard = Cleanup {
        runtime: rt.clone(),
        id: id.clone(),
        images: vec![],
        secrets_root: secrets_root(&id),
    };
    let p = Project {
        id: &id,
        name: id.clone(),
        rt: &rt,
    };
    for (tag, version) in [(T1, "v1"), (T2, "v2")] {
        guard.images.push(p.build("web", tag, version).await);
        guard.images.push(p.build("worker", tag, version).await);
    }

    let prefix = tempfile::tempdir().unwrap();
    let nginx = Nginx::new(NGINX, prefix.path());
    let listen = local(free_port());
    let mut cfg = LbConfig::new(listen);
    cfg.worker_processes = "1".into();
    cfg.routes = vec![Route {
        project: p.name.clone(),
        env: "uat".into(),
        service: "web".into(),
        backends: vec![],
    }];
    nginx.start(&cfg).await.unwrap();
    let upstream = format!("{}-uat-web", p.name);
    let path = format!("/{}/uat/web/version", p.name);
    assert_eq!(
        http_get(listen, &path, Duration::from_secs(5))
            .await
            .unwrap()
            .0,
        503
    );

    let parts = Cutover {
        runtime: &rt,
        probe: &HttpProbe {
            timeout: Duration::from_secs(1),
        },
        switch: &nginx,
        config: CutoverConfig {
            health_timeout: Duration::from_secs(20),
            poll_interval: Duration::from_millis(100),
            drain: Duration::from_millis(300),
            stop_grace: Duration::from_secs(2),
            log_lines: 10,
        },
    };
    let web = service(ServiceKind::Web, None);
    let worker = service(
        ServiceKind::Worker,
        Some("while true; do echo tick; sleep 0.2; done"),
    );
    let settle = Duration::from_millis(500);
    let mut releases = Releases::new();
    let (port_a, port_b) = (free_port(), free_port());
    let mut live: BTreeMap<&str, String> = BTreeMap::new();

    for (tag, port) in [(T1, port_a), (T2, port_b)] {
        for (name, s) in [("web", &web), ("worker", &worker)] {
            let c = p.spec(name, s, tag, port);
            let old = live.get(name).cloned();
            roll_out(
                &parts,
                s.kind,
                &upstream,
                &c,
                "/health",
                old.as_deref(),
                settle,
            )
            .await
            .unwrap();
            live.insert(name, c.name.clone());
        }
        releases.record(&p.name, "uat", tag, tag);
        let body = http_get(listen, &path, Duration::from_secs(5))
            .await
            .unwrap()
            .1;
        assert_eq!(body.trim(), if tag == T1 { "v1" } else { "v2" });
    }
    let mine = BTreeMap::from([("infra.test".to_string(), id.clone())]);
    let running: Vec<String> = rt
        .list(&mine)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(running.len(), 2, "old containers left: {running:?}");
    assert!(running.iter().all(|n| n.ends_with(T2)), "{running:?}");

    // Roll back to the previous release.
    let target = releases
        .rollback_target(&p.name, "uat", None)
        .unwrap()
        .tag
        .clone();
    assert_eq!(target, T1);
    for (name, s) in [("web", &web), ("worker", &worker)] {
        let c = p.spec(name, s, &target, port_a);
        let old = live.get(name).cloned();
        let report = roll_out(
            &parts,
            s.kind,
            &upstream,
            &c,
            "/health",
            old.as_deref(),
            settle,
        )
        .await
        .unwrap();
        match report {
            RolloutReport::Web(r) => assert!(r.replaced.unwrap().ends_with(T2)),
            RolloutReport::Worker { replaced, .. } => assert!(replaced.unwrap().ends_with(T2)),
        }
        live.insert(name, c.name.clone());
    }
    releases.set_live(&p.name, "uat", &target);
    let body = http_get(listen, &path, Duration::from_secs(5))
        .await
        .unwrap()
        .1;
    assert_eq!(body.trim(), "v1");
    assert_eq!(releases.live(&p.name, "uat").unwrap().tag, T1);

    // A worker that exits at once is refused; the live worker keeps running.
    let crashing = service(
        ServiceKind::Worker,
        Some("echo 'cannot connect to queue'; exit 3"),
    );
    let c = p.spec("worker", &crashing, T2, 0);
    let err = roll_out(
        &parts,
        ServiceKind::Worker,
        &upstream,
        &c,
        "/health",
        live.get("worker").map(String::as_str),
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CutoverError::Unhealthy { .. }), "{err}");
    assert!(err.to_string().contains("cannot connect to queue"), "{err}");
    assert_eq!(rt.inspect(&c.name).await.unwrap(), None);
    assert!(rt.inspect(&live["worker"]).await.unwrap().unwrap().running);
    nginx.stop().await.unwrap();
}
