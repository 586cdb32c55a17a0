//! Security of the agent's two channels: gRPC requires a client certificate
//! from the cluster CA (mutual TLS), and gossip drops forged, replayed and
//! stale datagrams (counted) without disturbing membership. Also zombie
//! protection: a newer generation of a node stops the older instance.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Cluster, Pki, TestNode, node_config, wait_for};
use infra_agent::membership::{AuthStats, Authenticator, GossipKey};
use infra_agent::node::NodeError;
use infra_agent::tls::{Ca, TlsMaterial};
use infra_proto::v1::ProbeRequest;
use infra_proto::v1::health_client::HealthClient;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

async fn probe_with(addr: std::net::SocketAddr, tls: ClientTlsConfig) -> Result<String, String> {
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    HealthClient::new(channel)
        .probe(ProbeRequest {
            from: "test".into(),
            seq: 1,
        })
        .await
        .map(|r| r.into_inner().node)
        .map_err(|s| format!("rpc: {s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refuses_clients_without_a_cluster_certificate() {
    let mut cluster = Cluster::start(1, 50).await;
    let addr = cluster.nodes[0].config.grpc_advertise;
    let ca_pem = cluster.pki.ca.cert_pem().to_string();

    // A certificate of the cluster CA works.
    let good = cluster.pki.client("infractl").client_config();
    assert_eq!(probe_with(addr, good).await.unwrap(), "n0");

    // A certificate from another CA is refused.
    let rogue_ca = Ca::create("test").unwrap();
    let rogue = TlsMaterial {
        ca_cert_pem: ca_pem.clone(),
        identity: rogue_ca.issue_client("infractl").unwrap(),
    };
    let err = probe_with(addr, rogue.client_config()).await.unwrap_err();
    eprintln!("other CA: {err}");

    // No client certificate at all is refused.
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca_pem))
        .domain_name(infra_agent::tls::CLUSTER_DNS_NAME);
    let err = probe_with(addr, anonymous).await.unwrap_err();
    eprintln!("no client cert: {err}");

    // A server outside the cluster is not trusted by our clients either.
    let stranger = TlsMaterial {
        ca_cert_pem: rogue_ca.cert_pem().to_string(),
        identity: rogue_ca.issue_client("infractl").unwrap(),
    };
    assert!(probe_with(addr, stranger.client_config()).await.is_err());
    cluster.stop_all().await;
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_stale_gossip_is_dropped_and_counted() {
    let mut cluster = Cluster::start(2, 60).await;
    cluster.converge(2, Duration::from_secs(10)).await;
    let target = cluster.nodes[0].config.gossip_advertise;
    let before = cluster.node(0).auth_counts();
    assert!(before.accepted > 0, "real gossip is accepted");

    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stats = Arc::new(AuthStats::default());
    let wrong_key = Authenticator::new(&GossipKey::generate(), 10_000, stats.clone());
    let real_key = GossipKey::load(&cluster.pki.key_file).unwrap();
    let insider = Authenticator::new(&real_key, 10_000, stats);

    attacker
        .send_to(b"plain chitchat-looking junk", target)
        .await
        .unwrap();
    let forged = wrong_key.seal(b"forged", unix_ms(), 1);
    attacker.send_to(&forged, target).await.unwrap();
    let sealed = insider.seal(b"captured", unix_ms(), 2);
    attacker.send_to(&sealed, target).await.unwrap();
    attacker.send_to(&sealed, target).await.unwrap(); // replay
    let stale = insider.seal(b"old", unix_ms() - 60_000, 3);
    attacker.send_to(&stale, target).await.unwrap();

    wait_for("drops counted", Duration::from_secs(5), || {
        let c = cluster.node(0).auth_counts();
        c.forged >= before.forged + 2 && c.replayed > before.replayed && c.stale > before.stale
    })
    .await;
    let after = cluster.node(0).auth_counts();
    assert_eq!(after.forged - before.forged, 2, "{after:?}");
    assert_eq!(after.replayed - before.replayed, 1, "{after:?}");
    assert_eq!(after.stale - before.stale, 1, "{after:?}");

    // Membership is untouched: still exactly the two real members, live.
    let view = cluster.node(0).view().borrow().clone();
    assert_eq!(view.members.keys().collect::<Vec<_>>(), vec!["n0", "n1"]);
    assert!(view.members.values().all(|m| m.live));
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_generation_stops_the_zombie() {
    let pki = Pki::new("test");
    let ip = |x| Ipv4Addr::new(127, 0, 0, x);
    let seed = TestNode::start(node_config(&pki, "n0", ip(70), None)).await;
    let seed_addr = seed.config.gossip_advertise;
    let mut old = TestNode::start(node_config(&pki, "n1", ip(71), Some(seed_addr))).await;
    let old_node = old.node.take().unwrap();
    let old_generation = old_node.status().generation;
    let zombie = tokio::spawn(old_node.wait());

    // The same node restarts elsewhere (same name and data dir).
    let mut config = node_config(&pki, "n1", ip(72), Some(seed_addr));
    config.data_dir = old.config.data_dir.clone();
    let new = TestNode::start(config).await;
    assert!(new.node.as_ref().unwrap().status().generation > old_generation);

    let result = tokio::time::timeout(Duration::from_secs(10), zombie)
        .await
        .expect("zombie stopped in time")
        .unwrap();
    assert!(
        matches!(result, Err(NodeError::Zombie(ref n)) if n == "n1"),
        "{result:?}"
    );
    for mut t in [seed, new] {
        t.node.take().unwrap().kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_observer_itself_may_report_a_failure() {
    use infra_proto::v1::FailureReport;

    let mut cluster = Cluster::start(1, 75).await;
    let addr = cluster.nodes[0].config.grpc_advertise;
    let report = |observer: &str| FailureReport {
        observer: observer.into(),
        target: "n0".into(),
        target_generation: 1,
        at_ms: unix_ms(),
        observer_sees_down: 0,
    };
    let connect = |tls: ClientTlsConfig| async move {
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        HealthClient::new(channel)
    };
    // infractl's certificate cannot vote as a node.
    let mut ctl = connect(cluster.pki.client("infractl").client_config()).await;
    let status = ctl.report_failure(report("web1")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // web1's certificate can vote as web1 (not counted: it monitors nothing).
    let mut web1 = connect(cluster.pki.client("web1").client_config()).await;
    let ack = web1
        .report_failure(report("web1"))
        .await
        .unwrap()
        .into_inner();
    assert!(!ack.accepted);
    // ...but not as anyone else.
    let status = web1.report_failure(report("web2")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_service_is_served_over_mtls_only() {
    use std::sync::atomic::{AtomicBool, Ordering};

    use infra_agent::node::NodeDeps;
    use infra_proto::v1::RaftMessage;
    use infra_proto::v1::raft_client::RaftClient;

    let pki = Pki::new("test");
    let config = node_config(&pki, "n0", Ipv4Addr::new(127, 0, 0, 77), None);
    let addr = config.grpc_advertise;
    let hooked = Arc::new(AtomicBool::new(false));
    let seen = hooked.clone();
    let deps = NodeDeps {
        extra_services: vec![Box::new(move |_routes| {
            seen.store(true, Ordering::SeqCst);
        })],
        ..NodeDeps::default()
    };
    let mut node = TestNode::start_with(config, deps).await;
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(pki.client("n1").client_config())
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(hooked.load(Ordering::SeqCst), "extra service hooks run");
    // The agent's own Raft service answers a cluster member: a payload
    // that is not a Raft message is refused by the service itself.
    let err = RaftClient::new(channel)
        .vote(RaftMessage {
            version: 1,
            payload: b"ping".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    // Without a cluster certificate the extra service is refused too.
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.ca.cert_pem()))
        .domain_name(infra_agent::tls::CLUSTER_DNS_NAME);
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(anonymous)
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = channel {
        let r = RaftClient::new(channel)
            .vote(RaftMessage {
                version: 1,
                payload: vec![],
            })
            .await;
        assert!(r.is_err());
    }
    node.node.take().unwrap().kill().await;
}
