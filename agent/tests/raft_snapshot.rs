//! Log compaction: the leader snapshots and purges its log, so a follower
//! that was cut off catches up through InstallSnapshot over gRPC; a
//! restarted node starts from its persisted snapshot.

mod raft_support;

use std::time::Duration;

use infra_agent::consensus::ConsensusConfig;
use raft_support::{Cluster, event, wait_for};

const LONG: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_via_snapshot_and_restarts_from_it() {
    let config = ConsensusConfig {
        snapshot_every: 20,
        logs_kept_after_snapshot: 0,
        ..ConsensusConfig::default()
    };
    let mut c = Cluster::new(3, config).await;
    c.form().await;
    c.node(0).write(event("start")).await.unwrap();
    wait_for("start on all", LONG, || async {
        (0..3).all(|i| c.has_event(i, "start")).then_some(())
    })
    .await;

    c.isolate(&[2]);
    let lag_index = c.node(2).metrics().last_log_index.unwrap();
    for i in 0..60 {
        c.write_via(&[0, 1], event(&format!("e{i}")), LONG).await;
    }
    // The leader compacted past everything node 2 has.
    let leader = c.wait_leader_among(&[0, 1]).await;
    let purged = wait_for("leader purges its log", LONG, || async {
        let purged = c.node(leader).raft_metrics().borrow().purged;
        purged.filter(|p| p.index > lag_index + 20).map(|p| p.index)
    })
    .await;
    assert!(!c.has_event(2, "e59"));

    c.heal();
    wait_for("node2 catches up", LONG, || async {
        c.has_event(2, "e59").then_some(())
    })
    .await;
    let m2 = c.node(2).metrics();
    let snap = m2.snapshot.expect("node2 installed a snapshot");
    assert!(
        snap >= purged,
        "snapshot {snap} must cover the purged log {purged}"
    );
    let leader = c.wait_leader_among(&[0, 1, 2]).await;
    wait_for("identical states", LONG, || async {
        (c.node(2).local_state() == c.node(leader).local_state()).then_some(())
    })
    .await;

    // Restart node 2 cut off from everyone: its state comes from its own
    // snapshot file.
    let snap_before_stop = c.node(2).metrics().snapshot;
    c.stop(2).await;
    c.isolate(&[2]);
    c.start(2).await;
    // Written while node 2 was cut off, so only the snapshot can hold them.
    let restored = c.node(2).local_state();
    assert!(restored.events.iter().any(|e| e.message == "start"));
    assert!(
        restored.events.iter().any(|e| e.index > lag_index),
        "restarted node must load its snapshot"
    );
    wait_for("node2 reports its loaded snapshot", LONG, || async {
        (c.node(2).metrics().snapshot >= snap_before_stop).then_some(())
    })
    .await;
    c.heal();
    c.shutdown().await;
}
