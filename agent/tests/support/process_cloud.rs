//! A local cloud of real `infra-agent` processes behind infra-sim (instant
//! profile): the CA and a client certificate, the master droplet created
//! with its user-data and initialized (`Initialize`, as the first `infractl
//! orchestrate` does), and a control client to its agent; plus the
//! ApplySpec and Status calls the tests and the heal benchmark make.
//! Shared by `tests/orchestrate_sim.rs` and `benches/heal.rs`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
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
use infra_proto::v1::control_client::ControlClient;
use infra_proto::v1::{ApplySpecRequest, InitializeRequest};
use infra_sim::{Backing, ProcessBacking, Profile, Sim, SimConfig, SimHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

pub const TOKEN: &str = "e2e-token";
pub const CLUSTER: &str = "e2e";

/// The running cloud; dropping it stops the simulator (and with it every
/// droplet's agent process).
pub struct ProcessCloud {
    sim: Option<SimHandle>,
    pub provider: DoClient,
    pub tls: TlsMaterial,
    /// The master agent's control client.
    pub client: ControlClient<Channel>,
    pub shutdown: CancellationToken,
}

impl Drop for ProcessCloud {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl ProcessCloud {
    pub fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("the sim runs until stop")
    }

    /// Starts the simulator with droplets backed by `infra-agent run`
    /// processes under `dir`, creates the master and waits until its agent
    /// answers.
    pub async fn start(dir: &Path, agent_bin: PathBuf) -> ProcessCloud {
        ProcessCloud::start_with(dir, agent_bin, None).await
    }

    /// [`ProcessCloud::start`] with a notifications bundle shipped to the
    /// master (as `infractl orchestrate` ships it).
    pub async fn start_with(
        dir: &Path,
        agent_bin: PathBuf,
        notify: Option<&NotifyBundle>,
    ) -> ProcessCloud {
        infra_agent::tls::install_crypto_provider();
        let shutdown = CancellationToken::new();
        let sim = Sim::start(
            SimConfig {
                profile: Profile::Instant,
                backing: Backing::Process(ProcessBacking {
                    command: agent_bin,
                    args: vec!["run".into()],
                    base_dir: dir.join("cloud"),
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
        let ca = Ca::create(CLUSTER).unwrap();
        let pki = dir.join("pki");
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
                cluster_id: CLUSTER.into(),
                role: "master".into(),
                project: None,
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
        let master = match notify {
            Some(bundle) => master.with_notify(bundle),
            None => master,
        };
        let created = provider
            .create_droplets(&CreateDroplets {
                names: vec!["master".into()],
                region: "lon1".into(),
                size: "s-2vcpu-4gb".into(),
                image: ImageRef::Slug("ubuntu-24-04-x64".into()),
                ssh_keys: vec![],
                tags: vec![SYSTEM_TAG.into(), cluster_tag(CLUSTER)],
                user_data: Some(master.user_data().unwrap()),
                vpc_uuid: None,
                ipv6: false,
                monitoring: false,
                operation_id: Some(
                    OperationId::new(create_operation_id(CLUSTER, "master", 1)).unwrap(),
                ),
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

        let start = Instant::now();
        let client = loop {
            if let Some(c) = control(&addr, &tls).await {
                break c;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the master agent at {addr} never answered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // infractl orchestrate's next act: form the cluster, once.
        let mut client = client;
        let formed = client
            .initialize(InitializeRequest {
                cluster_id: CLUSTER.into(),
            })
            .await
            .expect("the master forms the cluster")
            .into_inner();
        assert!(formed.formed, "a new master forms a new cluster");
        ProcessCloud {
            sim: Some(sim),
            provider,
            tls,
            client,
            shutdown,
        }
    }

    /// Sends ApplySpec and returns (progress messages, final result JSON).
    pub async fn apply(&mut self, infra: &str) -> (Vec<String>, serde_json::Value) {
        let mut stream = self
            .client
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
                let result = serde_json::from_str(&p.result_json).expect("result is JSON");
                return (messages, result);
            }
        }
        panic!("ApplySpec did not finish: {messages:#?}");
    }

    /// The master agent's status JSON, `None` while it does not answer.
    pub async fn status(&self) -> Option<serde_json::Value> {
        let mut client = self.client.clone();
        let reply = client
            .status(infra_proto::v1::StatusRequest {})
            .await
            .ok()?
            .into_inner();
        serde_json::from_str(&reply.status_json).ok()
    }

    /// Stops the simulator and waits until the droplet processes are gone.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let sim = self.sim.take().expect("the sim runs until stop");
        tokio::time::timeout(Duration::from_secs(30), sim.join())
            .await
            .expect("sim stops and kills the droplet processes");
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

/// The generation of `name` while it is an alive member.
pub fn generation(status: &serde_json::Value, name: &str) -> Option<u64> {
    status["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name && m["state"] == "alive")?["generation"]
        .as_u64()
}
