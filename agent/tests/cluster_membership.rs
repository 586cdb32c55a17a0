//! Three in-process agents: gossip converges, typed node info propagates,
//! Control.Status serves the snapshot over mTLS, and a clean leave is
//! reported as `left`, never as a failure.

mod common;

use std::time::Duration;

use common::{Cluster, holds_for, wait_for};
use infra_agent::membership::Presence;
use infra_proto::v1::StatusRequest;
use infra_proto::v1::control_client::ControlClient;
use tonic::transport::Endpoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_converge_and_report_status() {
    let mut cluster = Cluster::start(3, 20).await;
    cluster.converge(3, Duration::from_secs(10)).await;

    // Typed info arrived intact.
    let view = cluster.node(0).view().borrow().clone();
    let n2 = &view.members["n2"];
    assert_eq!(n2.info.grpc_addr, cluster.nodes[2].config.grpc_advertise);
    assert_eq!(n2.gossip_addr, cluster.nodes[2].config.gossip_advertise);
    assert_eq!(n2.info.role, "web");
    assert!(n2.info.generation > 0);

    // Every node gets monitors from the ring assignment once all are known.
    wait_for("monitor assignment", Duration::from_secs(5), || {
        cluster
            .node(1)
            .status()
            .members
            .iter()
            .all(|m| m.monitors.len() == 2)
    })
    .await;

    // Control.Status over mTLS with an infractl client certificate.
    let tls = cluster.pki.client("infractl").client_config();
    let channel = Endpoint::from_shared(format!(
        "https://{}",
        cluster.nodes[1].config.grpc_advertise
    ))
    .unwrap()
    .tls_config(tls)
    .unwrap()
    .connect()
    .await
    .unwrap();
    let reply = ControlClient::new(channel)
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&reply.status_json).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["node"], "n1");
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["state"] == "alive"), "{json}");
    assert_eq!(json["confirmed_failures"].as_array().unwrap().len(), 0);

    // Clean leave of n2: others see it as left and never confirm a failure.
    let leaving = cluster.nodes[2].node.take().unwrap();
    cluster.nodes[2].shutdown.cancel();
    leaving.wait().await.unwrap();
    wait_for("n2 seen as left", Duration::from_secs(5), || {
        let v = cluster.node(0).view().borrow().clone();
        v.members["n2"].info.presence == Presence::Left
    })
    .await;
    let no_failure = holds_for(Duration::from_secs(3), || {
        (0..2).all(|i| cluster.node(i).confirmed().borrow().is_empty())
    })
    .await;
    assert!(no_failure, "a clean leave was confirmed as a failure");
    let status = cluster.node(0).status();
    let n2 = status.members.iter().find(|m| m.name == "n2").unwrap();
    assert_eq!(format!("{:?}", n2.state), "Left");
    cluster.stop_all().await;
}
