//! End to end through infra-sim with real `infra-agent` processes behind
//! the droplets: the master is created with bootstrap user-data, its agent
//! answers ApplySpec over mTLS, creates the other droplets (whose agents
//! configure themselves from their user-data and join), and a second
//! ApplySpec makes no create request; a droplet killed with SIGKILL is
//! confirmed failed and replaced exactly once, its new agent joined.
//! With python3-aiosmtpd, the master ships with an e-mail config (as
//! `infractl orchestrate` ships it): the voters it creates get it too, and
//! the recovery is mailed to a real SMTP server.

use std::path::Path;
use std::time::Duration;

use infra_agent::bootstrap::{NodeBootstrap, NodeParams};
use infra_agent::membership::GossipKey;
use infra_agent::notify::NotifyBundle;
use infra_agent::orchestrator::{cluster_tag, create_operation_id};
use infra_agent::provider::{
    CloudProvider, CreateDroplets, DoClient, DoConfig, ImageRef, OperationId, PollPolicy, Secret,
};
use infra_agent::recovery::SYSTEM_TAG;
use infra_agent::tls::{Ca, TlsMaterial};
use infra_proto::v1::ApplySpecRequest;
use infra_proto::v1::control_client::ControlClient;
use infra_sim::{Backing, ProcessBacking, Profile, Sim, SimConfig};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const TOKEN: &str = "e2e-token";

mod notify_support;

/// The bundle `infractl` would ship for an e-mail config pointing at `sink`.
fn notify_bundle(sink: &notify_support::SmtpSink) -> NotifyBundle {
    let dir = tempfile::tempdir().unwrap();
    let config = sink.config("INFRA_SMTP_PASSWORD");
    std::fs::write(
        dir.path().join("email_config.json"),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();
    NotifyBundle::from_caller(dir.path(), |v| {
        (v == "INFRA_SMTP_PASSWORD").then(|| notify_support::PASSWORD.to_string())
    })
    .unwrap()
    .expect("a bundle")
}

/// Files named `name` under `dir`, recursively.
fn count_files(dir: &Path, name: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p, name)
            } else {
                usize::from(p.file_name().is_some_and(|n| n == name))
            }
        })
        .sum()
}

struct StopSim(CancellationToken);

impl Drop for StopSim {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn control(addr: &str, tls: &TlsMaterial) -> Option<ControlClient<Channel>> {
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .ok()?
        .tls_config(tls.client_config())
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    Some(ControlClient::new(channel))
}

/// Sends ApplySpec and returns (progress messages, final result JSON).
async fn apply(client: &mut ControlClient<Channel>, infra: &str) -> (Vec<String>, String) {
    let mut stream = client
        .apply_spec(ApplySpecRequest {
            infrastructure_json: infra.to_string(),
            deployment_json: String::new(),
            force: false,
            allow_destroy: false,
        })
        .await
        .expect("ApplySpec accepted")
        .into_inner();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let next = tokio::time::timeout(Duration::from_secs(120), stream.message())
            .await
            .expect("progress within 120 s")
            .expect("stream ok");
        let Some(p) = next else { break };
        messages.push(p.message.clone());
        if p.done {
            assert!(!p.failed, "ApplySpec failed: {messages:#?}");
            return (messages, p.result_json);
        }
    }
    panic!("ApplySpec did not finish: {messages:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrate_creates_the_cluster_a_rerun_creates_nothing_and_a_killed_droplet_is_replaced_once()
 {
    infra_agent::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let _stop = StopSim(shutdown.clone());
    let sim = Sim::start(
        SimConfig {
            profile: Profile::Instant,
            backing: Backing::Process(ProcessBacking {
                command: Path::new(env!("CARGO_BIN_EXE_infra-agent")).to_path_buf(),
                args: vec!["run".into()],
                base_dir: dir.path().join("cloud"),
            }),
            tokens: vec![TOKEN.into()],
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("sim starts");
    let mut cfg = DoConfig::new(sim.base_url(), Secret::new(TOKEN));
    cfg.poll = PollPolicy {
        min: Duration::from_millis(10),
        max: Duration::from_millis(100),
        timeout: Duration::from_secs(30),
    };
    let provider = DoClient::new(cfg).unwrap();

    // infractl's part: the CA, a client certificate, the master droplet.
    let ca = Ca::create("e2e").unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    ca.write(&pki).unwrap();
    ca.issue_client("infractl")
        .unwrap()
        .write(&pki, "client")
        .unwrap();
    let tls = TlsMaterial::load(
        &pki.join("ca.pem"),
        &pki.join("client.pem"),
        &pki.join("client.key"),
    )
    .unwrap();
    // Ports unlikely to collide with other tests' agents on 127.0.0.x.
    let grpc_port = 20_000 + (std::process::id() % 20_000) as u16;
    let master = NodeBootstrap::issue(
        NodeParams {
            node_name: "master".into(),
            cluster_id: "e2e".into(),
            role: "master".into(),
            project: None,
            bootstrap: true,
            seeds: vec![],
            grpc_port,
            gossip_port: grpc_port + 1,
        },
        &ca,
        &GossipKey::generate(),
    )
    .unwrap()
    .with_ca_key(&ca)
    .with_api_token(Secret::new(TOKEN));
    let sink = notify_support::SmtpSink::start();
    let master = match &sink {
        Some(sink) => master.with_notify(&notify_bundle(sink)),
        None => master,
    };
    let created = provider
        .create_droplets(&CreateDroplets {
            names: vec!["master".into()],
            region: "lon1".into(),
            size: "s-2vcpu-4gb".into(),
            image: ImageRef::Slug("ubuntu-24-04-x64".into()),
            ssh_keys: vec![],
            tags: vec![SYSTEM_TAG.into(), cluster_tag("e2e")],
            user_data: Some(master.user_data().unwrap()),
            vpc_uuid: None,
            ipv6: false,
            monitoring: false,
            operation_id: Some(OperationId::new(create_operation_id("e2e", "master", 1)).unwrap()),
        })
        .await
        .unwrap();
    for a in &created.action_ids {
        provider.wait_action(*a).await.unwrap();
    }
    let ip = provider
        .get_droplet(created.droplets[0].id)
        .await
        .unwrap()
        .public_ipv4
        .expect("master address");
    let addr = format!("{ip}:{grpc_port}");

    // Wait until the master's agent answers.
    let start = Instant::now();
    let mut client = loop {
        if let Some(c) = control(&addr, &tls).await {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the master agent at {addr} never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let infra = infra_agent::spec::examples::example("infrastructure.json").unwrap();
    let started = Instant::now();
    let (messages, result) = apply(&mut client, infra).await;
    eprintln!("first apply took {:?}", started.elapsed());
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["adopted"], serde_json::json!(["master"]), "{result}");
    assert_eq!(result["created"].as_array().unwrap().len(), 3, "{result}");
    assert!(
        messages.iter().any(|m| m.starts_with("join:")),
        "{messages:#?}"
    );
    let droplets = provider
        .list_droplets(Some(&cluster_tag("e2e")))
        .await
        .unwrap();
    assert_eq!(droplets.len(), 4);
    if sink.is_some() {
        let shipped = count_files(&dir.path().join("cloud"), "email_config.json");
        assert!(shipped >= 2, "the e-mail config reached {shipped} droplets");
    }

    // Second run: nothing created.
    sim.clear_requests();
    let (_, again) = apply(&mut client, infra).await;
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["created"], serde_json::json!([]), "{again}");
    let posts: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect();
    assert!(posts.is_empty(), "no create on a re-run: {posts:?}");

    // kill -9 a web droplet's agent (the API keeps saying active): the
    // leader confirms the failure and replaces it exactly once.
    let status = |client: ControlClient<Channel>| async move {
        let mut client = client;
        let reply = client
            .status(infra_proto::v1::StatusRequest {})
            .await
            .ok()?
            .into_inner();
        serde_json::from_str::<serde_json::Value>(&reply.status_json).ok()
    };
    let member_generation = |s: &serde_json::Value, name: &str| {
        s["members"].as_array().and_then(|m| {
            m.iter()
                .find(|m| m["name"] == name && m["state"] == "alive")
                .and_then(|m| m["generation"].as_u64())
        })
    };
    const WEB: &str = "hostomatic-web1";
    let before = status(client.clone()).await.expect("status");
    let old_generation = member_generation(&before, WEB).expect("web1 is a live member");
    sim.clear_requests();
    let killed = Instant::now();
    sim.kill_droplet(WEB).unwrap();
    let mut last = serde_json::Value::Null;
    let recovered = loop {
        if let Some(s) = status(client.clone()).await {
            let done = s["recoveries"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["name"] == WEB && r["step"] == "done"));
            if done && member_generation(&s, WEB).is_some_and(|g| g > old_generation) {
                break s;
            }
            last = s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "{WEB} was not recovered; last status: {last:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("kill -> replacement joined: {:?}", killed.elapsed());
    let replacements: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.status < 300)
        .filter(|r| {
            r.path == "/v2/droplets"
                || r.request_body
                    .as_ref()
                    .is_some_and(|b| b["type"] == "rebuild" || b["type"] == "restore")
        })
        .map(|r| r.path)
        .collect();
    assert_eq!(
        replacements.len(),
        1,
        "exactly one create/rebuild: {replacements:?}"
    );
    assert!(
        recovered["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == WEB),
        "the failure was committed: {recovered:#}"
    );

    if let Some(sink) = &sink {
        let deadline = Instant::now() + Duration::from_secs(60);
        let subject = format!("[infra] Recovered droplet {WEB}");
        loop {
            let mails = sink.messages();
            if mails.iter().any(|m| m["subject"] == subject.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no recovery e-mail; got {mails:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), sim.join())
        .await
        .expect("sim stops and kills the droplet processes");
}
