//! Real `infra-agent` processes on 127.0.0.x: a 1 s SIGSTOP is never
//! confirmed, a SIGKILLed agent is confirmed failed by the survivors, and
//! SIGTERM makes an agent leave cleanly (exit 0, shown as `left`); each
//! agent's status counts its gossip, probe and Raft bytes.

use std::path::Path;
use std::time::Duration;

use infra_agent::local_cluster::{ProcessCluster, confirmed_targets, members_in_state};
use tokio::time::Instant;

/// Polls every agent in `nodes` until `cond` holds for all; panics at the deadline.
async fn wait_all(
    cluster: &ProcessCluster,
    nodes: &[usize],
    what: &str,
    deadline: Duration,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let mut ok = true;
        for &i in nodes {
            match cluster.status(i).await {
                Ok(s) if cond(&s) => {}
                _ => ok = false,
            }
        }
        if ok {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?}: {what}"
        );
    }
}

/// Asserts no agent in `nodes` confirms a failure during `period`; returns
/// the members any of them reported as suspect meanwhile.
async fn none_confirmed_for(
    cluster: &ProcessCluster,
    nodes: &[usize],
    period: Duration,
) -> Vec<String> {
    let mut suspects = Vec::new();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while start.elapsed() < period {
        tick.tick().await;
        for &i in nodes {
            if let Ok(s) = cluster.status(i).await {
                assert!(confirmed_targets(&s).is_empty(), "false failure: {s}");
                suspects.extend(members_in_state(&s, "suspect"));
            }
        }
    }
    suspects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_processes_freeze_kill_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_infra-agent"));
    let mut cluster = ProcessCluster::start(binary, dir.path(), 4, 80).unwrap();
    cluster.initialize().await.unwrap();
    let all = [0, 1, 2, 3];
    wait_all(
        &cluster,
        &all,
        "4 members alive with monitors",
        Duration::from_secs(20),
        |s| {
            let members = s["members"].as_array().map(Vec::len).unwrap_or(0);
            let monitored = s["members"].as_array().is_some_and(|ms| {
                ms.iter()
                    .all(|m| m["monitors"].as_array().map(Vec::len) == Some(3))
            });
            members == 4 && members_in_state(s, "alive").len() == 4 && monitored
        },
    )
    .await;

    // Every agent counts its gossip and probe bytes; once a leader is
    // elected (elections are staggered: it may not be yet), some agent has
    // sent Raft heartbeats.
    for i in all {
        let s = cluster.status(i).await.unwrap();
        let t = &s["traffic"];
        for class in ["gossip", "health"] {
            for dir in ["sent", "received"] {
                assert!(t[class][dir].as_u64() > Some(0), "n{i} {class} {dir}: {t}");
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut raft_sent = 0;
        for i in all {
            let s = cluster.status(i).await.unwrap();
            raft_sent += s["traffic"]["raft"]["sent"].as_u64().unwrap_or(0);
        }
        if raft_sent > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no Raft bytes counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGSTOP n1 for 1 s: suspected, never confirmed.
    cluster.signal(1, "STOP").unwrap();
    let suspects = none_confirmed_for(&cluster, &[0, 2, 3], Duration::from_secs(1)).await;
    assert!(
        suspects.contains(&"n1".to_string()),
        "the freeze went unnoticed: {suspects:?}"
    );
    cluster.signal(1, "CONT").unwrap();
    none_confirmed_for(&cluster, &all, Duration::from_secs(3)).await;
    wait_all(
        &cluster,
        &all,
        "all alive after the freeze",
        Duration::from_secs(5),
        |s| members_in_state(s, "alive").len() == 4,
    )
    .await;

    // kill -9 n3: the survivors' quorum confirms it.
    let killed = Instant::now();
    cluster.kill(3);
    wait_all(
        &cluster,
        &[0, 1, 2],
        "n3 confirmed failed",
        Duration::from_secs(8),
        |s| {
            confirmed_targets(s) == vec!["n3".to_string()]
                && members_in_state(s, "failed") == vec!["n3"]
        },
    )
    .await;
    eprintln!(
        "SIGKILL -> confirmed on all survivors: {:?}",
        killed.elapsed()
    );

    // SIGTERM n2: clean exit, seen as left, not failed.
    cluster.signal(2, "TERM").unwrap();
    let status = tokio::task::block_in_place(|| cluster.wait_exit(2, Duration::from_secs(10)))
        .expect("n2 exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    wait_all(&cluster, &[0, 1], "n2 left", Duration::from_secs(5), |s| {
        members_in_state(s, "left") == vec!["n2"]
            && !confirmed_targets(s).contains(&"n2".to_string())
    })
    .await;
}
