//! A droplet's containers run by its own agent: two real agents (in
//! process, mutual TLS) serve the `Containers` and `Images` services, and
//! [`AgentRuntime`] (the leader's side) drives them. With the Docker
//! engine: an image pushed to an agent that lacks it is loaded there; a
//! busybox web container started through agent n0 and a worker through n1
//! each carry `infra.agent=<that agent>`; inspect, HTTP through the
//! published port, the secret file (absent from `docker inspect`), logs,
//! list by labels, stop and remove all go through the agents. Without the
//! engine: a client certificate of another CA is refused, and a garbage
//! spec gets InvalidArgument naming the field. Needs Docker and
//! busybox-static for the first test (skips with a message, fails under
//! CI=true).

mod common;
mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Pki, TestNode, node_config};
use futures::StreamExt;
use infra_agent::deploy::SecretValue;
use infra_agent::deploy::agent_runtime::AgentRuntime;
use infra_agent::deploy::cutover::http_get;
use infra_agent::node::NodeDeps;
use infra_agent::runtime::{
    BuildRequest, ByteStream, ContainerRuntime, ContainerSpec, LABEL_AGENT, LocalEngine,
    PortPublish, ServiceLabels,
};
use infra_agent::tls::{Ca, TlsMaterial};
use infra_proto::v1 as wire;
use infra_proto::v1::containers_client::ContainersClient;
use support::{Cleanup, busybox_context, docker, free_port, poll, secrets_root, test_id};
use tonic::transport::{ClientTlsConfig, Endpoint};

/// Agents `n0`, `n1`, ... on 127.0.0.`base`.., their engine's secret files
/// under `secrets`; killed on drop.
struct Agents(Vec<TestNode>);

impl Agents {
    async fn start(pki: &Pki, n: u8, base: u8, secrets: &Path) -> Agents {
        let mut nodes = Vec::new();
        for i in 0..n {
            let config = node_config(
                pki,
                &format!("n{i}"),
                Ipv4Addr::new(127, 0, 0, base + i),
                None,
            );
            let deps = NodeDeps {
                engine: Some(Arc::new(LocalEngine::new(secrets))),
                ..NodeDeps::default()
            };
            nodes.push(TestNode::start_with(config, deps).await);
        }
        Agents(nodes)
    }

    fn addr(&self, i: usize) -> String {
        self.0[i].config.grpc_advertise.to_string()
    }

    async fn stop(mut self) {
        for t in &mut self.0 {
            if let Some(node) = t.node.take() {
                tokio::time::timeout(Duration::from_secs(30), node.kill())
                    .await
                    .expect("agent stops");
            }
        }
    }
}

fn spec(id: &str, name: &str, image: &str, service: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: image.into(),
        labels: ServiceLabels {
            project: "infratest".into(),
            environment: "uat".into(),
            service: service.into(),
            tag: "v1".into(),
        },
        extra_labels: BTreeMap::from([("infra.test".to_string(), id.to_string())]),
        command: None,
        env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
        publish: None,
        secrets: BTreeMap::new(),
        init: true,
    }
}

async fn docker_cli(args: &[&str]) -> String {
    let out = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_run_through_their_agent_over_mtls() {
    let id = test_id("containers");
    let root = secrets_root(&id);
    let Some(rt) = docker(&root).await else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    busybox_context(ctx.path(), "v1", &id);
    let tag = format!("infra-test-{id}:v1");
    let _cleanup = Cleanup {
        runtime: rt.clone(),
        id: id.clone(),
        images: vec![tag.clone()],
        secrets_root: root.clone(),
    };
    let image = rt
        .build_image(&BuildRequest {
            context_dir: ctx.path().into(),
            containerfile: "Containerfile".into(),
            tag: tag.clone(),
            labels: BTreeMap::new(),
        })
        .await
        .unwrap();
    // Keep the saved image and remove it, so that the agent lacks it.
    let saved: Vec<_> = rt.save_image(&tag).await.unwrap().collect().await;
    rt.remove_image(&image).await.unwrap();

    let pki = Pki::new("test");
    let agents = Agents::start(&pki, 2, 190, &root).await;
    let tls = pki.client("leader").client_config();
    let n0 = AgentRuntime::new(agents.addr(0), tls.clone());
    let n1 = AgentRuntime::new(agents.addr(1), tls.clone());

    // Delivery: missing on the agent, pushed, then there with the same id.
    assert!(!n0.image_exists(&image).await.unwrap(), "removed above");
    let data: ByteStream = Box::pin(futures::stream::iter(saved));
    let started = tokio::time::Instant::now();
    assert_eq!(n0.load_image(data).await.unwrap(), vec![image.clone()]);
    eprintln!("pushed through n0 in {} ms", started.elapsed().as_millis());
    assert!(n0.image_exists(&image).await.unwrap());
    assert_eq!(n1.inspect_image(&image).await.unwrap().id, image);

    // A web container through n0, a worker through n1.
    let web_name = format!("web-{id}");
    let worker_name = format!("worker-{id}");
    let port = free_port();
    let secret = format!("secret-{id}");
    let mut web = spec(&id, &web_name, &image, "web");
    web.publish = Some(PortPublish {
        host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        host_port: port,
        container_port: 8000,
    });
    web.secrets = BTreeMap::from([("api_key".to_string(), SecretValue::new(secret.clone()))]);
    let mut worker = spec(&id, &worker_name, &image, "worker");
    worker.command = Some(vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo started-$GREETING; while true; do sleep 1; done".into(),
    ]);
    let started = tokio::time::Instant::now();
    let web_id = n0.run(&web).await.unwrap();
    eprintln!("run through n0 in {} ms", started.elapsed().as_millis());
    n1.run(&worker).await.unwrap();

    let info = n0.inspect(&web_name).await.unwrap().expect("web exists");
    assert_eq!(info.id, web_id);
    assert!(info.running, "{info:?}");
    assert_eq!(info.labels[LABEL_AGENT], "n0", "started by n0");
    assert_eq!(info.labels["infra.service"], "web");
    assert_eq!(info.ports, vec![(8000, "127.0.0.1".to_string(), port)]);
    let info = n1.inspect(&worker_name).await.unwrap().expect("worker");
    assert_eq!(info.labels[LABEL_AGENT], "n1", "started by n1");
    assert!(n0.inspect("absent-container").await.unwrap().is_none());

    let addr = support::local(port);
    poll("web answers", Duration::from_secs(20), || async {
        match http_get(addr, "/version", Duration::from_secs(2)).await {
            Ok((200, body)) if body == "v1\n" => Some(()),
            _ => None,
        }
    })
    .await;
    let read = docker_cli(&["exec", &web_name, "cat", "/run/secrets/api_key"]).await;
    assert_eq!(read, secret, "the secret file reached the container");
    let inspect = docker_cli(&["inspect", &web_name]).await;
    assert!(inspect.contains(&web_name) && !inspect.contains(&secret));

    let logs = poll("worker logs", Duration::from_secs(20), || async {
        let text = n1.logs_tail(&worker_name, 10).await.unwrap();
        text.contains("started-hello").then_some(text)
    })
    .await;
    assert!(!logs.contains(&secret));

    // List by labels: both (one engine here), or only what n1 started.
    let mine = BTreeMap::from([("infra.test".to_string(), id.clone())]);
    let all = n0.list(&mine).await.unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec![web_name.as_str(), worker_name.as_str()]);
    let mut by_n1 = mine.clone();
    by_n1.insert(LABEL_AGENT.into(), "n1".into());
    let listed = n0.list(&by_n1).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, worker_name);

    // Stop (grace honoured by the init), then remove with the secret files.
    let started = tokio::time::Instant::now();
    n0.stop(&web_name, Duration::from_secs(5)).await.unwrap();
    eprintln!("stop through n0 in {} ms", started.elapsed().as_millis());
    assert!(!n0.inspect(&web_name).await.unwrap().unwrap().running);
    assert!(root.join(&web_name).join("api_key").exists());
    n0.remove(&web_name).await.unwrap();
    n1.remove(&worker_name).await.unwrap();
    n1.remove(&worker_name).await.unwrap();
    assert!(n0.inspect(&web_name).await.unwrap().is_none());
    assert!(n1.inspect(&worker_name).await.unwrap().is_none());
    assert!(!root.join(&web_name).exists(), "secret files removed");
    n1.remove_image(&image).await.unwrap();
    assert!(!n0.image_exists(&image).await.unwrap());

    agents.stop().await;
}

/// A raw `Containers` client with `tls`.
async fn client(
    addr: &str,
    tls: ClientTlsConfig,
) -> Result<ContainersClient<tonic::transport::Channel>, String> {
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(ContainersClient::new(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_clients_are_refused_and_garbage_specs_name_the_field() {
    let id = test_id("containers-refuse");
    let root = secrets_root(&id);
    let pki = Pki::new("test");
    let agents = Agents::start(&pki, 1, 195, &root).await;
    let addr = agents.addr(0);
    let tls = pki.client("leader").client_config();

    // Validation happens before any engine work: no Docker needed.
    let garbage = wire::ContainerSpec {
        name: "../etc".into(),
        image: "sha256:abc".into(),
        ..wire::ContainerSpec::default()
    };
    let mut good = client(&addr, tls.clone()).await.unwrap();
    let err = good.run(garbage.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("`name`"), "{}", err.message());

    // Through AgentRuntime: the field reaches the caller's error.
    let rt = AgentRuntime::new(addr.clone(), tls.clone());
    let mut bad = spec(&id, "web", "sha256:abc", "web");
    bad.publish = Some(PortPublish {
        host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        host_port: 0,
        container_port: 8000,
    });
    let err = rt.run(&bad).await.unwrap_err().to_string();
    assert!(
        err.contains("`publish.host_port`") && err.contains(&addr),
        "{err}"
    );
    let err = rt
        .stop("web one", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`name`"), "{err}");
    let err = rt.stop("web", Duration::from_secs(7200)).await.unwrap_err();
    assert!(err.to_string().contains("`grace_ms`"), "{err}");
    let err = rt.inspect_image("").await.unwrap_err();
    assert!(err.to_string().contains("`image`"), "{err}");

    // A client certificate of another CA never reaches the handler (the
    // same garbage spec would be answered InvalidArgument).
    let rogue_ca = Ca::create("test").unwrap();
    let rogue = TlsMaterial {
        ca_cert_pem: pki.ca.cert_pem().to_string(),
        identity: rogue_ca.issue_client("leader").unwrap(),
    };
    let refused = match client(&addr, rogue.client_config()).await {
        Err(e) => e,
        Ok(mut c) => {
            let err = c.run(garbage).await.unwrap_err();
            assert_ne!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
            format!("{err:?}")
        }
    };
    eprintln!("other CA: {refused}");
    let rogue_rt = AgentRuntime::new(addr.clone(), rogue.client_config());
    assert!(rogue_rt.inspect("web").await.is_err());

    agents.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}
