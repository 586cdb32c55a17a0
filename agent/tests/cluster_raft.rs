//! Raft inside the agent, in process: agents join through any peer, a
//! killed follower's failure is confirmed by quorum and committed in Raft
//! (read through Control.Status on another agent), a killed leader is
//! replaced and control calls are forwarded to the new leader from every
//! survivor, short freezes and minority partitions commit nothing, and a
//! client certificate from another CA is refused.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Cluster, Pki, TestNode, holds_for, node_config, wait_for};
use infra_agent::api::handler::{self as h, ControlError, ControlHandler, Outcome, ProgressSink};
use infra_agent::node::NodeDeps;
use infra_agent::tls::TlsMaterial;
use infra_proto::v1::control_client::ControlClient;
use infra_proto::v1::{ScaleRequest, StatusRequest};
use serde_json::Value;
use tonic::transport::Endpoint;

/// Answers Scale with the name of the agent that ran it.
struct NamedHandler(String);

#[async_trait]
impl ControlHandler for NamedHandler {
    async fn apply_spec(&self, _: h::ApplySpec, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("ApplySpec"))
    }
    async fn scale(&self, req: h::Scale, progress: ProgressSink) -> Result<Outcome, ControlError> {
        progress.step(format!("scaling {} on {}", req.project, self.0));
        Ok(Outcome {
            message: self.0.clone(),
            result: Some(serde_json::json!({ "web_droplets": req.web_droplets })),
        })
    }
    async fn add_project(
        &self,
        _: h::AddProject,
        _: ProgressSink,
    ) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("AddProject"))
    }
    async fn remove_project(
        &self,
        _: h::RemoveProject,
        _: ProgressSink,
    ) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("RemoveProject"))
    }
    async fn recover(&self, _: h::Recover, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Recover"))
    }
    async fn deploy(&self, _: h::Deploy, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Deploy"))
    }
    async fn rollback(&self, _: h::Rollback, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Rollback"))
    }
    async fn cleanup(&self, _: h::Cleanup, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Cleanup"))
    }
}

/// `n` agents on 127.0.0.`base`.., each with a [`NamedHandler`].
async fn start(n: usize, base: u8) -> Cluster {
    let pki = Pki::new("test");
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..n {
        let ip = Ipv4Addr::new(127, 0, 0, base + i as u8);
        let seed = nodes.first().map(|n| n.config.gossip_advertise);
        let name = format!("n{i}");
        let config = node_config(&pki, &name, ip, seed);
        let deps = NodeDeps {
            control: Some(Arc::new(NamedHandler(name))),
            ..NodeDeps::default()
        };
        nodes.push(TestNode::start_with(config, deps).await);
    }
    Cluster { pki, nodes }
}

fn running(cluster: &Cluster) -> Vec<usize> {
    (0..cluster.nodes.len())
        .filter(|&i| cluster.nodes[i].node.is_some())
        .collect()
}

/// The leader every running agent agrees on, once all `members` are in
/// the Raft group with the planner's number of voters.
fn agreed_leader(cluster: &Cluster, members: usize) -> Option<String> {
    let want_voters = infra_agent::plan::voters::voter_count(members);
    let mut leader = None;
    for i in running(cluster) {
        let m = cluster.node(i).consensus().metrics();
        if m.nodes.len() != members || m.voters.len() != want_voters || !m.uniform {
            return None;
        }
        let name = m
            .leader
            .and_then(|id| m.nodes.get(&id))
            .map(|n| n.name.clone())?;
        if leader.get_or_insert(name.clone()) != &name {
            return None;
        }
    }
    leader
}

async fn formed(cluster: &Cluster, members: usize) -> String {
    wait_for("Raft group formed", Duration::from_secs(30), || {
        agreed_leader(cluster, members).is_some()
    })
    .await;
    agreed_leader(cluster, members).unwrap()
}

fn index_of(name: &str) -> usize {
    name.trim_start_matches('n').parse().unwrap()
}

async fn client(
    addr: SocketAddr,
    tls: &TlsMaterial,
) -> Result<ControlClient<tonic::transport::Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls.client_config())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    Ok(ControlClient::new(channel))
}

async fn status(cluster: &Cluster, i: usize) -> Value {
    let tls = cluster.pki.client("infractl");
    let mut c = client(cluster.nodes[i].config.grpc_advertise, &tls)
        .await
        .unwrap();
    let reply = c.status(StatusRequest {}).await.unwrap().into_inner();
    serde_json::from_str(&reply.status_json).unwrap()
}

fn committed_failure(status: &Value, name: &str) -> bool {
    status["failures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == name)
}

/// Polls Status on agent `i` until `cond` holds.
async fn status_until(cluster: &Cluster, i: usize, what: &str, cond: impl Fn(&Value) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let s = status(cluster, i).await;
        if cond(&s) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last status of n{i}: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn killed_follower_is_committed(n: usize, base: u8) {
    let mut cluster = start(n, base).await;
    let leader = formed(&cluster, n).await;
    let victim = (0..n).rev().find(|&i| format!("n{i}") != leader).unwrap();
    let victim_name = format!("n{victim}");
    cluster.nodes[victim].node.take().unwrap().kill().await;

    let observer = (0..n)
        .find(|&i| i != victim && format!("n{i}") != leader)
        .unwrap();
    status_until(&cluster, observer, "failure committed", |s| {
        committed_failure(s, &victim_name)
    })
    .await;
    let s = status(&cluster, observer).await;
    let member = s["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == victim_name.as_str())
        .unwrap();
    assert_eq!(member["state"], "failed");
    assert_eq!(s["leader"], leader.as_str());
    // Exactly the victim: no survivor was accused.
    assert_eq!(s["failures"].as_array().unwrap().len(), 1, "{s:#}");
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_follower_is_committed_with_three() {
    killed_follower_is_committed(3, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_follower_is_committed_with_five() {
    killed_follower_is_committed(5, 70).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_follower_is_committed_with_seven() {
    killed_follower_is_committed(7, 80).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_calls_are_forwarded_with_three() {
    killed_leader_is_replaced(3, 130).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_calls_are_forwarded_with_five() {
    killed_leader_is_replaced(5, 90).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_is_replaced_and_calls_are_forwarded_with_seven() {
    killed_leader_is_replaced(7, 140).await;
}

/// Kills the leader of `n` agents; every survivor then reports the new
/// leader in Status and forwards a Scale call to it.
async fn killed_leader_is_replaced(n: usize, base: u8) {
    let mut cluster = start(n, base).await;
    let old = formed(&cluster, n).await;
    let old_index = index_of(&old);
    let old_term = cluster.node(old_index).consensus().metrics().term;
    cluster.nodes[old_index].node.take().unwrap().kill().await;

    let mut new_leader = String::new();
    wait_for("new leader", Duration::from_secs(10), || {
        let leaders: Vec<Option<String>> = running(&cluster)
            .into_iter()
            .map(|i| {
                let m = cluster.node(i).consensus().metrics();
                m.leader
                    .filter(|_| m.term > old_term)
                    .and_then(|id| m.nodes.get(&id))
                    .map(|n| n.name.clone())
            })
            .collect();
        match leaders.first() {
            Some(Some(l)) if *l != old && leaders.iter().all(|x| x.as_deref() == Some(l)) => {
                new_leader = l.clone();
                true
            }
            _ => false,
        }
    })
    .await;

    let tls = cluster.pki.client("infractl");
    for i in running(&cluster) {
        let s = status(&cluster, i).await;
        assert_eq!(s["leader"], new_leader.as_str(), "status of n{i}");
        assert!(s["term"].as_u64().unwrap() > old_term);
        // A call that only the leader runs, sent to every survivor.
        let mut c = client(cluster.nodes[i].config.grpc_advertise, &tls)
            .await
            .unwrap();
        let mut stream = c
            .scale(ScaleRequest {
                project: "shop".into(),
                web_droplets: 2,
            })
            .await
            .unwrap()
            .into_inner();
        let step = stream.message().await.unwrap().unwrap();
        assert_eq!(step.message, format!("scaling shop on {new_leader}"));
        let last = stream.message().await.unwrap().unwrap();
        assert!(last.done && !last.failed);
        assert_eq!(last.message, new_leader, "answered through n{i}");
        assert_eq!(last.result_json, r#"{"web_droplets":2}"#);
        assert!(stream.message().await.unwrap().is_none());
    }
    // The dead leader's failure is committed by the new leader.
    let survivor = running(&cluster)[0];
    status_until(&cluster, survivor, "old leader's failure committed", |s| {
        committed_failure(s, &old)
    })
    .await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_shorter_than_the_window_commits_nothing() {
    let n = 3;
    let mut cluster = start(n, 100).await;
    let leader = formed(&cluster, n).await;
    let frozen = (0..n).find(|&i| format!("n{i}") != leader).unwrap();
    // Default suspicion window: 2 s; freeze for 1 s.
    cluster.nodes[frozen].fault.set_paused(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.nodes[frozen].fault.set_paused(false);
    let quiet = holds_for(Duration::from_secs(4), || {
        running(&cluster).into_iter().all(|i| {
            cluster
                .node(i)
                .consensus()
                .local_state()
                .failures
                .is_empty()
        })
    })
    .await;
    assert!(quiet, "a 1 s freeze must not be committed as a failure");
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_partition_commits_nothing() {
    let n = 5;
    let mut cluster = start(n, 110).await;
    let leader = formed(&cluster, n).await;
    // Cut off two agents including the leader: a minority.
    let other = (0..n).find(|&i| format!("n{i}") != leader).unwrap();
    let minority = [index_of(&leader), other];
    let lead = index_of(&leader);
    wait_for(
        "every agent applied the whole log",
        Duration::from_secs(10),
        || {
            let last = cluster.node(lead).consensus().metrics().last_log_index;
            (0..n).all(|i| cluster.node(i).consensus().metrics().last_applied == last)
        },
    )
    .await;
    let before: Vec<u64> = minority
        .iter()
        .map(|&i| {
            cluster
                .node(i)
                .consensus()
                .metrics()
                .last_applied
                .unwrap_or(0)
        })
        .collect();
    for &i in &minority {
        cluster.nodes[i].fault.set_isolated(true);
    }
    // The majority elects a leader and commits the minority's failure...
    let majority: Vec<usize> = (0..n).filter(|i| !minority.contains(i)).collect();
    wait_for(
        "majority commits the partitioned agents' failure",
        Duration::from_secs(15),
        || {
            majority.iter().all(|&i| {
                let f = cluster.node(i).consensus().local_state().failures;
                minority.iter().all(|m| f.contains_key(&format!("n{m}")))
            })
        },
    )
    .await;
    // ...while the minority commits nothing at all.
    for (k, &i) in minority.iter().enumerate() {
        let m = cluster.node(i).consensus().metrics();
        assert_eq!(
            m.last_applied.unwrap_or(0),
            before[k],
            "n{i} applied entries while cut off"
        );
        assert!(
            cluster
                .node(i)
                .consensus()
                .local_state()
                .failures
                .is_empty()
        );
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_another_ca_is_refused() {
    let mut cluster = start(3, 120).await;
    formed(&cluster, 3).await;
    let stranger = Pki::new("test");
    // Trust the real CA (so the server is accepted) but present a foreign identity.
    let rogue = TlsMaterial {
        ca_cert_pem: cluster.pki.ca.cert_pem().to_string(),
        identity: stranger.ca.issue_client("infractl").unwrap(),
    };
    let addr = cluster.nodes[1].config.grpc_advertise;
    let refused = match client(addr, &rogue).await {
        Err(_) => true,
        Ok(mut c) => c.status(StatusRequest {}).await.is_err(),
    };
    assert!(refused, "a foreign client certificate must be refused");
    // The cluster's own client certificate works.
    assert_eq!(status(&cluster, 1).await["node"], "n1");
    // ...but it may not make someone else join the Raft group.
    let mut c = client(addr, &cluster.pki.client("infractl")).await.unwrap();
    let err = c
        .join(infra_proto::v1::JoinRequest {
            version: 1,
            name: "n9".into(),
            grpc_addr: "127.0.0.99:7400".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    let members = cluster.node(1).consensus().metrics().nodes.len();
    assert_eq!(members, 3);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_follow_the_replicated_topology() {
    use infra_agent::spec::Role;
    use infra_agent::state::Command;
    use infra_agent::topology::{DropletState, Topology};

    let n = 3;
    let mut cluster = start(n, 150).await;
    let leader = formed(&cluster, n).await;
    // Before any topology: the gossip ring (each watched by the 2 others).
    wait_for("ring assignment", Duration::from_secs(10), || {
        cluster
            .node(0)
            .status()
            .members
            .iter()
            .all(|m| m.monitors.len() == 2)
    })
    .await;
    let mut topology = Topology::default();
    for (name, monitors) in [("n0", vec!["n1"]), ("n1", vec!["n2"]), ("n2", vec!["n0"])] {
        topology.droplets.insert(
            name.to_string(),
            DropletState {
                role: Role::Web,
                project: None,
                size: "s-1vcpu-1gb".into(),
                region: "lon1".into(),
                ip: None,
                monitors: monitors.into_iter().map(String::from).collect(),
                voter: true,
            },
        );
    }
    cluster
        .node(index_of(&leader))
        .consensus()
        .write(Command::SetTopology { topology, at_ms: 1 })
        .await
        .unwrap();
    wait_for(
        "monitors from the topology on every agent",
        Duration::from_secs(10),
        || {
            (0..n).all(|i| {
                let s = cluster.node(i).status();
                let of = |name: &str| {
                    s.members
                        .iter()
                        .find(|m| m.name == name)
                        .map(|m| m.monitors.clone())
                };
                of("n0") == Some(vec!["n1".to_string()])
                    && of("n1") == Some(vec!["n2".to_string()])
                    && of("n2") == Some(vec!["n0".to_string()])
            })
        },
    )
    .await;
    cluster.stop_all().await;
}
