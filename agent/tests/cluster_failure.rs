//! Failure detection end to end, in process: a crashed agent is confirmed
//! failed by the survivors' quorum within the deadline; an agent frozen for
//! less than the suspicion window is suspected but never confirmed.

mod common;

use std::time::Duration;

use common::{Cluster, holds_for, wait_for};
use infra_agent::node::MemberState;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_is_confirmed_by_quorum_of_five() {
    let mut cluster = Cluster::start(5, 30).await;
    cluster.converge(5, Duration::from_secs(15)).await;
    cluster.wait_ring(5, 3).await;

    let victim = cluster.nodes[3].node.take().unwrap();
    let victim_generation = victim.status().generation;
    let killed_at = Instant::now();
    victim.kill().await;

    let survivors = [0, 1, 2, 4];
    let took = wait_for("quorum confirms n3", Duration::from_secs(6), || {
        survivors.iter().all(|&i| {
            cluster
                .node(i)
                .confirmed()
                .borrow()
                .iter()
                .any(|c| c.target == "n3" && c.target_generation == victim_generation)
        })
    })
    .await;
    eprintln!(
        "kill -> confirmed on all survivors: {:?}",
        killed_at.elapsed()
    );
    assert!(took < Duration::from_secs(6));

    for &i in &survivors {
        let status = cluster.node(i).status();
        let c = status
            .confirmed_failures
            .iter()
            .find(|c| c.target == "n3")
            .unwrap();
        assert!(
            c.voters.len() >= 2,
            "a majority of n3's 3 monitors: {:?}",
            c.voters
        );
        let n3 = status.members.iter().find(|m| m.name == "n3").unwrap();
        assert_eq!(n3.state, MemberState::Failed);
        // Nobody else is confirmed.
        assert_eq!(
            status.confirmed_failures.len(),
            1,
            "{:?}",
            status.confirmed_failures
        );
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_freeze_is_never_confirmed() {
    let mut cluster = Cluster::start(3, 40).await;
    cluster.converge(3, Duration::from_secs(10)).await;
    cluster.wait_ring(3, 2).await;

    // Freeze n1 (no gossip, no probe answers, no probing) for 1 s.
    cluster.nodes[1].fault.set_paused(true);
    let frozen_at = Instant::now();
    wait_for("n1 suspected", Duration::from_secs(2), || {
        cluster
            .node(0)
            .status()
            .suspicions
            .iter()
            .any(|s| s.target == "n1")
    })
    .await;
    let remaining = Duration::from_secs(1).saturating_sub(frozen_at.elapsed());
    let quiet = holds_for(remaining, || {
        (0..3).all(|i| cluster.node(i).confirmed().borrow().is_empty())
    })
    .await;
    cluster.nodes[1].fault.set_paused(false);
    assert!(quiet, "confirmed during the freeze");

    // The suspicion is refuted, and nothing gets confirmed afterwards.
    wait_for("suspicion of n1 refuted", Duration::from_secs(3), || {
        cluster.node(0).status().suspicions.is_empty()
    })
    .await;
    let quiet = holds_for(Duration::from_secs(3), || {
        (0..3).all(|i| cluster.node(i).confirmed().borrow().is_empty())
    })
    .await;
    assert!(quiet, "a 1 s freeze was confirmed as a failure");
    let status = cluster.node(2).status();
    assert!(
        status.members.iter().all(|m| m.state == MemberState::Alive),
        "{status:?}"
    );
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_go_to_the_leader_only_with_a_leader_sink() {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use common::{Pki, TestNode, node_config};
    use infra_agent::health::{GrpcProber, LeaderVotes};
    use infra_agent::node::NodeDeps;

    let pki = Pki::new("test");
    let configs: Vec<_> = (0..4u8)
        .scan(None, |seed, i| {
            let c = node_config(
                &pki,
                &format!("n{i}"),
                Ipv4Addr::new(127, 0, 0, 90 + i),
                *seed,
            );
            seed.get_or_insert(c.gossip_advertise);
            Some(c)
        })
        .collect();
    // The "leader" is n0, as consensus would publish it.
    let (_leader_tx, leader_rx) = tokio::sync::watch::channel(Some(configs[0].grpc_advertise));
    let mut nodes = Vec::new();
    for c in configs {
        let clients = Arc::new(GrpcProber::new(
            c.node_name.clone(),
            pki.client(&c.node_name).client_config(),
        ));
        let deps = NodeDeps {
            vote_sink: Some(Arc::new(LeaderVotes {
                leader: Arc::new(leader_rx.clone()),
                clients,
                timeout: Duration::from_millis(500),
            })),
            ..NodeDeps::default()
        };
        nodes.push(TestNode::start_with(c, deps).await);
    }
    let mut cluster = Cluster { pki, nodes };
    cluster.converge(4, Duration::from_secs(15)).await;
    cluster.wait_ring(4, 3).await;

    cluster.nodes[3].node.take().unwrap().kill().await;
    wait_for("leader confirms n3", Duration::from_secs(6), || {
        cluster
            .node(0)
            .confirmed()
            .borrow()
            .iter()
            .any(|c| c.target == "n3")
    })
    .await;
    let voters = &cluster.node(0).status().confirmed_failures[0].voters;
    assert!(voters.len() >= 2, "{voters:?}");
    // Followers received no votes, so they confirm nothing themselves.
    for i in [1, 2] {
        assert!(cluster.node(i).confirmed().borrow().is_empty());
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_agent_is_confirmed_without_stretching_the_observers() {
    let mut cluster = Cluster::start(4, 100).await;
    cluster.converge(4, Duration::from_secs(15)).await;
    cluster.wait_ring(4, 3).await;

    // A hung agent (probes time out instead of being refused) for good.
    let hung_at = Instant::now();
    cluster.nodes[2].fault.set_paused(true);
    wait_for("quorum confirms hung n2", Duration::from_secs(6), || {
        [0, 1, 3].iter().all(|&i| {
            cluster
                .node(i)
                .confirmed()
                .borrow()
                .iter()
                .any(|c| c.target == "n2")
        })
    })
    .await;
    eprintln!("hang -> confirmed on all others: {:?}", hung_at.elapsed());
    for i in [0, 1, 3] {
        assert!(
            !cluster.node(i).status().local.stretched,
            "slow probes of a hung peer are not local trouble"
        );
    }
    cluster.nodes[2].fault.set_paused(false);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_agent_abstains_and_the_majority_confirms_it() {
    let mut cluster = Cluster::start(5, 110).await;
    cluster.converge(5, Duration::from_secs(15)).await;
    cluster.wait_ring(5, 3).await;

    // n4 keeps running but loses the network: it sees all 4 peers down.
    cluster.nodes[4].fault.set_isolated(true);
    let others = [0, 1, 2, 3];
    wait_for(
        "majority confirms isolated n4",
        Duration::from_secs(8),
        || {
            others.iter().all(|&i| {
                cluster
                    .node(i)
                    .confirmed()
                    .borrow()
                    .iter()
                    .any(|c| c.target == "n4")
            })
        },
    )
    .await;
    wait_for("n4 abstains", Duration::from_secs(5), || {
        cluster.node(4).status().local.abstaining
    })
    .await;
    // The isolated agent accuses nobody, and nobody else is confirmed.
    assert!(cluster.node(4).confirmed().borrow().is_empty());
    for &i in &others {
        let confirmed = cluster.node(i).confirmed().borrow().clone();
        assert_eq!(confirmed.len(), 1, "{confirmed:?}");
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_clears_its_confirmed_failure() {
    use common::TestNode;

    let mut cluster = Cluster::start(3, 115).await;
    cluster.converge(3, Duration::from_secs(10)).await;
    cluster.wait_ring(3, 2).await;
    let old = cluster.nodes[2].node.take().unwrap();
    let old_generation = old.status().generation;
    old.kill().await;
    wait_for("n2 confirmed", Duration::from_secs(6), || {
        (0..2).all(|i| {
            cluster
                .node(i)
                .confirmed()
                .borrow()
                .iter()
                .any(|c| c.target == "n2")
        })
    })
    .await;

    // The same droplet comes back (same name, data dir and addresses).
    let config = cluster.nodes[2].config.clone();
    cluster.nodes[2] = TestNode::start(config).await;
    assert!(cluster.node(2).status().generation > old_generation);
    wait_for(
        "confirmation cleared, n2 alive",
        Duration::from_secs(10),
        || {
            (0..2).all(|i| {
                let s = cluster.node(i).status();
                s.confirmed_failures.is_empty()
                    && s.members.iter().all(|m| m.state == MemberState::Alive)
            })
        },
    )
    .await;
    cluster.stop_all().await;
}
