//! Self-healing benchmark: infra-sim (instant profile) with real agent
//! processes; SIGKILL a web droplet's agent N times (`HEAL_TRIALS`, default
//! 10) and time kill → failure committed → replacement joined (recovery
//! `done` with a newer agent generation). Prints each trial and a summary.
//! Run: `cargo bench -p infra-agent --bench heal` (or `cargo test
//! -p infra-agent --bench heal` for a debug build).

use std::path::Path;
use std::time::Duration;

use infra_agent::bootstrap::{NodeBootstrap, NodeParams};
use infra_agent::membership::GossipKey;
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

async fn status(client: &ControlClient<Channel>) -> Option<serde_json::Value> {
    let mut client = client.clone();
    let reply = client
        .status(infra_proto::v1::StatusRequest {})
        .await
        .ok()?
        .into_inner();
    serde_json::from_str(&reply.status_json).ok()
}

fn generation(s: &serde_json::Value, name: &str) -> Option<u64> {
    s["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name && m["state"] == "alive")?["generation"]
        .as_u64()
}

fn main() {
    // The agents inherit it from the simulator: more recoveries per hour
    // than the default flapping limit of 3.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("INFRA_AGENT_MAX_RECOVERIES", "100") };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    // Test runners list tests first: this benchmark has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let trials: usize = std::env::var("HEAL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    infra_agent::tls::install_crypto_provider();
    let dir = tempfile::Builder::new()
        .prefix("heal-")
        .disable_cleanup(std::env::var_os("HEAL_KEEP").is_some())
        .tempdir()
        .unwrap();
    eprintln!("work dir {}", dir.path().display());
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
    let (_, result) = apply(&mut client, infra).await;
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["adopted"], serde_json::json!(["master"]), "{result}");
    assert_eq!(result["created"].as_array().unwrap().len(), 3, "{result}");
    let mut totals = Vec::new();
    for trial in 1..=trials {
        let webs = ["hostomatic-web1", "hostomatic-web2", "digitalpixo-web1"];
        let web: &str = webs[(trial - 1) % webs.len()];
        let before = status(&client).await.expect("status");
        let old = generation(&before, web).expect("web droplet alive");
        let killed = Instant::now();
        let killed_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
        sim.kill_droplet(web).unwrap();
        let mut confirmed: Option<Duration> = None;
        let done = loop {
            let s = status(&client).await;
            if let Some(s) = &s {
                if confirmed.is_none()
                    && s["failures"].as_array().is_some_and(|f| {
                        f.iter()
                            .any(|f| f["name"] == web && f["generation"].as_u64() == Some(old))
                    })
                {
                    confirmed = Some(killed.elapsed());
                }
                let rec = s["recoveries"]
                    .as_array()
                    .and_then(|r| r.iter().find(|r| r["name"] == web).cloned());
                if let Some(r) = rec
                    && r["step"] == "done"
                    && r["started_at"].as_u64().is_some_and(|t| t >= killed_ms)
                    && generation(s, web).is_some_and(|g| g > old)
                {
                    break (killed.elapsed(), r);
                }
            }
            assert!(
                killed.elapsed() < Duration::from_secs(120),
                "trial {trial}: not recovered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (total, r) = done;
        let saga_ms = r["finished_at"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(r["started_at"].as_u64().unwrap_or(0));
        let detect = confirmed.unwrap_or(total);
        println!(
            "trial {trial:2}: kill->failure committed {:6.0} ms, saga (confirmed->done) {saga_ms:5} ms, kill->replacement joined {:6.0} ms",
            detect.as_secs_f64() * 1000.0,
            total.as_secs_f64() * 1000.0
        );
        totals.push(total.as_secs_f64() * 1000.0);
    }
    totals.sort_by(f64::total_cmp);
    let mean = totals.iter().sum::<f64>() / totals.len() as f64;
    println!(
        "kill->replacement joined over {} trials: min {:.0} ms, median {:.0} ms, mean {:.0} ms, max {:.0} ms",
        totals.len(),
        totals[0],
        totals[totals.len() / 2],
        mean,
        totals[totals.len() - 1]
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), sim.join()).await;
}
