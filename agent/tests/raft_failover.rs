//! Failover time: how long after the leader dies a new leader accepts a
//! write, over repeated kills of the leader (each killed leader is
//! restarted and caught up before the next trial). Prints p50/p99.

mod raft_support;

use std::time::{Duration, Instant};

use infra_agent::consensus::ConsensusConfig;
use raft_support::{Cluster, event, percentile, wait_for};

const TRIALS: usize = 10;
const LONG: Duration = Duration::from_secs(15);

async fn measure(n: usize) {
    let mut c = Cluster::new(n, ConsensusConfig::default()).await;
    c.form().await;
    let all: Vec<usize> = (0..n).collect();
    // Commit latency of sequential writes (log fsync on every node).
    let leader = c.wait_leader_among(&all).await;
    let mut writes = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        c.node(leader).write(event(&format!("w{i}"))).await.unwrap();
        writes.push(t.elapsed());
    }
    let (w50, w99) = (percentile(&writes, 50), percentile(&writes, 99));
    println!("{n} nodes: sequential write commit latency (ms): p50 {w50}, p99 {w99}");
    let mut samples = Vec::new();
    let mut elected = Vec::new();
    for trial in 0..TRIALS {
        let leader = c.wait_leader_among(&all).await;
        c.write_via(&[leader], event(&format!("before{trial}")), LONG)
            .await;
        let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
        let killed = Instant::now();
        c.stop(leader).await;
        c.wait_leader_among(&survivors).await;
        elected.push(killed.elapsed());
        c.write_via(&survivors, event(&format!("after{trial}")), LONG)
            .await;
        samples.push(killed.elapsed());
        // Bring the old leader back and let it catch up.
        c.start(leader).await;
        let msg = format!("after{trial}");
        wait_for("restarted node catches up", LONG, || async {
            c.has_event(leader, &msg).then_some(())
        })
        .await;
    }
    let (p50, p99) = (percentile(&samples, 50), percentile(&samples, 99));
    println!(
        "{n} nodes: new leader elected after (ms): p50 {}, p99 {}",
        percentile(&elected, 50),
        percentile(&elected, 99)
    );
    println!(
        "{n} nodes: first write accepted after (ms) over {TRIALS} kills: p50 {p50}, p99 {p99}"
    );
    println!("{n} nodes: samples {samples:?}");
    // The goal is 1.5 s; the bound leaves room for a loaded 2-core machine.
    assert!(p99 < 3000, "p99 failover {p99} ms");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_time_3_nodes() {
    measure(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_time_5_nodes() {
    measure(5).await;
}
