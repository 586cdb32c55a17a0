//! Raft under a lossy transport: with a fifth of all RPCs dropped (and the
//! leader killed midway), writes still commit, every node converges, and no
//! term ever has two leaders.

mod raft_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_agent::consensus::ConsensusConfig;
use openraft::ServerState;
use raft_support::{Cluster, event, wait_for};

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_links_keep_safety_and_progress() {
    let mut c = Cluster::new(5, ConsensusConfig::default()).await;
    c.form().await;
    let all: Vec<usize> = (0..5).collect();

    // Record, for every term, which nodes ever claimed leadership.
    let leaders: Arc<Mutex<BTreeMap<u64, Vec<u64>>>> = Arc::default();
    let watchers: Vec<_> = c
        .running()
        .map(|(_, n)| {
            let mut rx = n.raft_metrics();
            let leaders = leaders.clone();
            tokio::spawn(async move {
                loop {
                    {
                        let m = rx.borrow_and_update();
                        if m.state == ServerState::Leader {
                            let mut l = leaders.lock().unwrap();
                            let ids = l.entry(m.current_term).or_default();
                            if !ids.contains(&m.id) {
                                ids.push(m.id);
                            }
                        }
                    }
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();

    c.set_loss(20);
    for i in 0..15 {
        c.write_via(&all, event(&format!("lossy{i}")), LONG).await;
    }
    // Kill the leader while links are lossy: an election under loss.
    let old_leader = c.wait_leader_among(&all).await;
    c.stop(old_leader).await;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != old_leader).collect();
    for i in 15..30 {
        c.write_via(&survivors, event(&format!("lossy{i}")), LONG)
            .await;
    }
    c.start(old_leader).await;
    wait_for("all nodes have every write", LONG, || async {
        (0..5)
            .all(|n| (0..30).all(|i| c.has_event(n, &format!("lossy{i}"))))
            .then_some(())
    })
    .await;
    c.set_loss(0);

    let leader = c.wait_leader_among(&all).await;
    wait_for("identical states", LONG, || async {
        all.iter()
            .all(|&n| c.node(n).local_state() == c.node(leader).local_state())
            .then_some(())
    })
    .await;
    c.shutdown().await;
    for w in watchers {
        w.await.unwrap();
    }
    let leaders = leaders.lock().unwrap();
    println!("leaders per term under 20% loss: {leaders:?}");
    assert!(leaders.len() >= 2, "the leader kill must cause an election");
    for (term, ids) in leaders.iter() {
        assert_eq!(ids.len(), 1, "term {term} had leaders {ids:?}");
    }
}
