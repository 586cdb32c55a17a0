//! Real `infra-agent` processes with Raft on 127.0.0.x: SIGKILL the
//! leader → the survivors elect a new one and commit the old leader's
//! failure; restarted with its data dir, the old leader rejoins the group
//! with its replicated state.

use std::path::Path;
use std::time::Duration;

use infra_agent::local_cluster::ProcessCluster;
use serde_json::Value;
use tokio::time::Instant;

/// Polls agent `i`'s status until `cond` holds; panics at the deadline.
async fn until(
    cluster: &ProcessCluster,
    i: usize,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last = Value::Null;
    loop {
        tick.tick().await;
        if let Ok(s) = cluster.status(i).await {
            if cond(&s) {
                return s;
            }
            last = s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what} on n{i}; last status: {last:#}"
        );
    }
}

fn failed(s: &Value, name: &str) -> bool {
    s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_elects_a_new_one_and_the_old_one_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_infra-agent"));
    let mut cluster = ProcessCluster::start(binary, dir.path(), 3, 150).unwrap();
    cluster.initialize().await.unwrap();

    let formed = until(&cluster, 0, "a 3-voter group", |s| {
        s["leader"].is_string() && s["voters"].as_array().unwrap().len() == 3
    })
    .await;
    let old: String = formed["leader"].as_str().unwrap().to_string();
    let old_i: usize = old.trim_start_matches('n').parse().unwrap();
    let old_term = formed["term"].as_u64().unwrap();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != old_i).collect();
    for &i in &survivors {
        until(&cluster, i, "the same leader", |s| {
            s["leader"] == old.as_str()
        })
        .await;
    }

    cluster.kill(old_i);
    let mut new_leader = String::new();
    for &i in &survivors {
        let s = until(
            &cluster,
            i,
            "a new leader and the old one's failure committed",
            |s| {
                s["leader"].is_string()
                    && s["leader"] != old.as_str()
                    && s["term"].as_u64().unwrap() > old_term
                    && failed(s, &old)
            },
        )
        .await;
        let l = s["leader"].as_str().unwrap().to_string();
        if new_leader.is_empty() {
            new_leader = l;
        } else {
            assert_eq!(new_leader, l, "survivors agree on the leader");
        }
    }
    let committed = cluster.status(survivors[0]).await.unwrap()["commit_index"]
        .as_u64()
        .unwrap();

    // Restart the old leader with the same data dir: it rejoins with its log.
    cluster.spawn(old_i).unwrap();
    let back = until(&cluster, old_i, "rejoined with the replicated state", |s| {
        s["leader"] == new_leader.as_str()
            && s["commit_index"].as_u64().unwrap() >= committed
            && failed(s, &old)
    })
    .await;
    assert!(
        back["voters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == old.as_str())
    );
}
