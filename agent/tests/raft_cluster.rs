//! Raft clusters of 3 and 5 agents in one process over real gRPC:
//! formation, replication, leader loss, restart with persisted state, and a
//! partitioned minority that cannot commit.

mod raft_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use infra_agent::consensus::{ConsensusConfig, ConsensusError};
use infra_agent::state::Response;
use infra_proto::v1::RaftMessage;
use infra_proto::v1::raft_client::RaftClient;
use raft_support::{Cluster, event, wait_for};

const LONG: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_restart_with_state() {
    let mut c = Cluster::new(3, ConsensusConfig::default()).await;
    c.form().await;
    let m = c.node(0).metrics();
    assert_eq!(m.voters.len(), 3);
    assert!(m.learners.is_empty());

    // Writes on the leader replicate to every node.
    for i in 0..5 {
        let resp = c.node(0).write(event(&format!("w{i}"))).await.unwrap();
        assert_eq!(resp, Response::Applied);
    }
    wait_for("w4 on all nodes", LONG, || async {
        (0..3).all(|i| c.has_event(i, "w4")).then_some(())
    })
    .await;

    // A follower refuses writes and names the leader.
    let err = c.node(1).write(event("nope")).await.unwrap_err();
    let not_leader = err.not_leader().expect("NotLeader");
    assert_eq!(not_leader.leader.as_ref(), Some(&c.infos[0]));
    assert_eq!(not_leader.leader_addr(), Some(c.infos[0].addr.as_str()));
    assert_eq!(not_leader.leader_id, Some(c.infos[0].id()));
    assert_eq!(c.node(1).leader().as_ref(), Some(&c.infos[0]));
    assert!(matches!(
        c.node(1).read_state(true).await,
        Err(ConsensusError::NotLeader(_))
    ));
    // The gRPC service refuses payload versions it does not know.
    let mut client = RaftClient::connect(format!("http://{}", c.infos[1].addr))
        .await
        .unwrap();
    let status = client
        .vote(RaftMessage {
            version: 99,
            payload: b"{}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("version 99"), "{status:?}");

    let linear = c.node(0).read_state(true).await.unwrap();
    assert!(linear.events.iter().any(|e| e.message == "w4"));

    // Kill the leader: the survivors elect a new one that accepts writes.
    let term_before = c.node(1).metrics().term;
    let persisted_index = c.node(0).metrics().last_log_index;
    let killed = Instant::now();
    c.stop(0).await;
    c.write_via(&[1, 2], event("after-failover"), LONG).await;
    let failover = killed.elapsed();
    println!("failover (3 nodes): new leader accepted a write after {failover:?}");
    let leader = c.wait_leader_among(&[1, 2]).await;
    assert!(c.node(leader).metrics().term > term_before);

    // Restart the old leader on the same data dir, cut off at first: its
    // log and membership come from its own disk.
    c.isolate(&[0]);
    c.start(0).await;
    wait_for("node0 loads its log", LONG, || async {
        let m = c.node(0).metrics();
        (m.last_log_index >= persisted_index && m.voters.len() == 3).then_some(())
    })
    .await;
    // Its committed entries are re-applied from its own disk, before any
    // leader contact.
    wait_for("node0 re-applies its committed log", LONG, || async {
        c.has_event(0, "w4").then_some(())
    })
    .await;
    assert!(!c.node(0).bootstrap().await.unwrap(), "already initialized");
    // Reconnected, it rejoins as a follower and catches up.
    c.heal();
    wait_for("node0 caught up", LONG, || async {
        c.has_event(0, "after-failover").then_some(())
    })
    .await;
    let m0 = c.node(0).metrics();
    assert_eq!(m0.leader, Some(c.infos[leader].id()));
    assert!(m0.term > term_before, "persisted vote/term moved forward");
    assert_eq!(c.node(0).local_state(), c.node(leader).local_state());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_member_is_idempotent_and_follows_a_moved_node() {
    let mut c = Cluster::new(4, ConsensusConfig::default()).await;
    for i in 0..4 {
        c.start(i).await;
    }
    c.node(0).bootstrap().await.unwrap();
    c.wait_leader_among(&[0]).await;
    for i in 1..4 {
        let voter = i < 3;
        c.node(0)
            .add_member(c.infos[i].clone(), voter)
            .await
            .unwrap();
        // Repeating the join changes nothing.
        c.node(0)
            .add_member(c.infos[i].clone(), voter)
            .await
            .unwrap();
    }
    let m = c.node(0).metrics();
    let ids: Vec<u64> = c.infos.iter().map(|n| n.id()).collect();
    let id = |i: usize| ids[i];
    assert_eq!(m.voters, BTreeSet::from([id(0), id(1), id(2)]));
    assert_eq!(m.learners, BTreeSet::from([id(3)]));

    // Node 2 comes back on a new address with its old disk (restored
    // droplet, new IP): the leader learns the address and replicates to it.
    c.stop(2).await;
    c.node(0).write(event("while-away")).await.unwrap();
    c.move_node(2).await;
    c.start(2).await;
    c.node(0)
        .add_member(c.infos[2].clone(), true)
        .await
        .unwrap();
    assert_eq!(c.node(0).metrics().nodes[&id(2)], c.infos[2]);
    wait_for("moved node catches up", LONG, || async {
        c.has_event(2, "while-away").then_some(())
    })
    .await;
    assert_eq!(c.node(0).metrics().voters.len(), 3);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_isolated_minority_cannot_commit() {
    let mut c = Cluster::new(5, ConsensusConfig::default()).await;
    c.form().await;
    let all = [0, 1, 2, 3, 4];
    let leader = c.wait_leader_among(&all).await;
    c.node(leader).write(event("before")).await.unwrap();
    wait_for("before on all", LONG, || async {
        (0..5).all(|i| c.has_event(i, "before")).then_some(())
    })
    .await;

    // Isolate the leader with one follower: a minority of 2 of 5.
    let minority = [leader, (leader + 1) % 5];
    let majority: Vec<usize> = all.into_iter().filter(|i| !minority.contains(i)).collect();
    c.isolate(&minority);
    let stuck = tokio::time::timeout(
        Duration::from_secs(2),
        c.node(leader).write(event("minority")),
    );
    match stuck.await {
        Err(_) => {}
        Ok(Err(e)) => println!("minority write failed as expected: {e}"),
        Ok(Ok(r)) => panic!("a minority committed a write: {r:?}"),
    }
    // The majority elects a leader among itself and commits.
    c.write_via(&majority, event("majority"), LONG).await;
    for i in minority {
        assert!(!c.has_event(i, "majority"));
        assert!(!c.has_event(i, "minority"));
    }

    // Heal: everyone converges on the majority's history.
    c.heal();
    wait_for("convergence", LONG, || async {
        (0..5).all(|i| c.has_event(i, "majority")).then_some(())
    })
    .await;
    let leader = c.wait_leader_among(&[0, 1, 2, 3, 4]).await;
    let final_write = c.write_via(&[leader], event("healed"), LONG).await;
    assert_eq!(final_write, Response::Applied);
    wait_for("healed on all", LONG, || async {
        (0..5).all(|i| c.has_event(i, "healed")).then_some(())
    })
    .await;
    for i in 0..5 {
        assert!(
            !c.has_event(i, "minority"),
            "node{i} applied an uncommitted write"
        );
        assert_eq!(c.node(i).local_state(), c.node(leader).local_state());
    }

    // Demote two voters (never the leader) to learners: they still
    // receive every write.
    let leader = c.wait_leader_among(&[0, 1, 2, 3, 4]).await;
    let others: Vec<usize> = (0..5).filter(|&i| i != leader).collect();
    let voter_idx = [leader, others[0], others[1]];
    let voters: BTreeSet<u64> = voter_idx.iter().map(|&i| c.infos[i].id()).collect();
    c.node(leader).change_voters(voters.clone()).await.unwrap();
    let m = c.node(leader).metrics();
    assert_eq!(m.voters, voters);
    let learner_idx = [others[2], others[3]];
    let learners: BTreeSet<u64> = learner_idx.iter().map(|&i| c.infos[i].id()).collect();
    assert_eq!(m.learners, learners);
    c.write_via(&[leader], event("to-learners"), LONG).await;
    wait_for("learners get writes", LONG, || async {
        learner_idx
            .iter()
            .all(|&i| c.has_event(i, "to-learners"))
            .then_some(())
    })
    .await;
    // Remove one learner from the cluster entirely.
    c.node(leader)
        .remove_nodes(BTreeSet::from([c.infos[learner_idx[1]].id()]))
        .await
        .unwrap();
    let m = c.node(leader).metrics();
    assert!(!m.nodes.contains_key(&c.infos[learner_idx[1]].id()));
    assert_eq!(m.nodes.len(), 4);
    c.shutdown().await;
}
