//! Self-healing end to end with the real binaries: infra-sim with one
//! `infra-agent` process per droplet, `infractl orchestrate`, then
//! - a killed web droplet is rebuilt from its snapshot, twice in a row
//!   (the second time its restored Raft log is older than the leader's view);
//! - `infractl recover NAME --yes` runs the same saga by hand;
//! - the leader killed while a recovery runs: the new leader finishes that
//!   saga with exactly one rebuild, and recovers the old leader too.

mod cloud;

use std::time::Duration;

use cloud::{Cloud, infractl_run};
use infra_sim::faults::Fault;
use serde_json::Value;
use tokio::time::Instant;

/// Polls `infractl status` until `pred` holds.
async fn wait_for(
    c: &Cloud,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    loop {
        if let Some(s) = c.status().await {
            if pred(&s) {
                return s;
            }
            last = s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last status: {last:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn member<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["members"].as_array()?.iter().find(|m| m["name"] == name)
}

fn recovery<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["recoveries"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
}

fn started_at(s: &Value, name: &str) -> u64 {
    recovery(s, name)
        .and_then(|r| r["started_at"].as_u64())
        .unwrap_or(0)
}

/// A recovery of `name` that started after `after_ms` is done, and its new
/// incarnation is alive.
fn recovered(s: &Value, name: &str, after_ms: u64) -> bool {
    recovery(s, name).is_some_and(|r| r["step"] == "done" && started_at(s, name) > after_ms)
        && member(s, name).is_some_and(|m| m["state"] == "alive")
}

fn all_alive(s: &Value, n: usize) -> bool {
    let members = s["members"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    !s["leader"].is_null() && members.len() == n && members.iter().all(|m| m["state"] == "alive")
}

/// Droplet ids by name, from the sim's create responses.
fn droplet_id(c: &Cloud, name: &str) -> u64 {
    c.sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/droplets")
        .filter_map(|r| r.response_body.as_ref())
        .find(|b| b["droplet"]["name"] == name)
        .and_then(|b| b["droplet"]["id"].as_u64())
        .unwrap_or_else(|| panic!("no create of {name} recorded"))
}

fn rebuilds_of(c: &Cloud, id: u64) -> usize {
    let path = format!("/v2/droplets/{id}/actions");
    c.sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == path && r.status < 300)
        .filter(|r| {
            r.request_body
                .as_ref()
                .is_some_and(|b| b["type"] == "rebuild")
        })
        .count()
}

fn creates_of(c: &Cloud, name: &str) -> usize {
    c.sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/droplets")
        .filter(|r| r.request_body.as_ref().is_some_and(|b| b["name"] == name))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_droplets_come_back_repeatedly_by_hand_and_across_a_leader_change() {
    let c = Cloud::start().await;
    let (ok, out, err) = c.infractl(&["orchestrate"]).await;
    assert!(ok, "orchestrate failed:\n{out}\n{err}");
    let minute = Duration::from_secs(60);
    let s = wait_for(&c, "4 live members", minute, |s| all_alive(s, 4)).await;
    let web1_id = droplet_id(&c, "hostomatic-web1");
    // Every droplet gets its first snapshot as soon as it runs.
    let (ok, out, err) = c.infractl(&["-o", "json", "cloud", "snapshots"]).await;
    let deadline = Instant::now() + minute;
    let mut snapshots = (ok, out, err);
    while !snapshots.1.contains("hostomatic-web1-") || !snapshots.1.contains("master-") {
        assert!(
            Instant::now() < deadline,
            "no first snapshots: {snapshots:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        snapshots = c.infractl(&["-o", "json", "cloud", "snapshots"]).await;
    }

    // Killed twice: rebuilt from its snapshot both times.
    let mut since = started_at(&s, "hostomatic-web1");
    for round in 1..=2 {
        let (ok, out, err) = c.infractl(&["sim", "kill", "hostomatic-web1"]).await;
        assert!(ok, "sim kill: {out}{err}");
        let s = wait_for(
            &c,
            &format!("recovery {round} of hostomatic-web1"),
            minute,
            |s| recovered(s, "hostomatic-web1", since) && all_alive(s, 4),
        )
        .await;
        since = started_at(&s, "hostomatic-web1");
        assert_eq!(rebuilds_of(&c, web1_id), round, "one rebuild per recovery");
    }
    assert_eq!(
        creates_of(&c, "hostomatic-web1"),
        1,
        "rebuilt in place, never re-created"
    );

    // By hand: confirmation required, unknown names refused, then the saga.
    let r = infractl_run(c.path(), &["recover", "digitalpixo-web1"]).await;
    assert_eq!(r.code, Some(2), "no --yes without a terminal: {}", r.err);
    assert!(r.err.contains("--yes"), "{}", r.err);
    let r = infractl_run(c.path(), &["recover", "nope", "--yes"]).await;
    assert!(!r.ok && r.err.contains("unknown droplet"), "{}", r.err);
    let r = infractl_run(c.path(), &["recover", "digitalpixo-web1", "--yes"]).await;
    assert!(r.ok, "recover failed:\n{}\n{}", r.out, r.err);
    assert!(r.out.contains("digitalpixo-web1 recovered"), "{}", r.out);
    assert!(
        r.out.contains("restoring"),
        "phases are streamed: {}",
        r.out
    );
    let s = wait_for(&c, "4 live members after recover", minute, |s| {
        all_alive(s, 4)
    })
    .await;

    // The leader dies while it recovers hostomatic-web2: slow action polls
    // keep the saga in its rebuild long enough to kill the leader there.
    let leader = s["leader"].as_str().unwrap().to_string();
    let victim = "hostomatic-web2";
    assert_ne!(leader, victim);
    let victim_id = droplet_id(&c, victim);
    let since = started_at(&s, victim);
    c.sim.add_fault(
        serde_json::from_value::<Fault>(serde_json::json!({
            "kind": "latency", "method": "GET", "path": "/v2/actions/", "ms": 1500
        }))
        .unwrap(),
    );
    let (ok, out, err) = c.infractl(&["sim", "kill", victim]).await;
    assert!(ok, "sim kill: {out}{err}");
    wait_for(&c, "the rebuild of the victim to start", minute, |s| {
        recovery(s, victim).is_some_and(|r| r["step"] == "restoring")
            && started_at(s, victim) > since
    })
    .await;
    let (ok, out, err) = c.infractl(&["sim", "kill", &leader]).await;
    assert!(ok, "sim kill leader: {out}{err}");
    c.sim.reset_faults();
    let s = wait_for(
        &c,
        "a new leader that finished both recoveries",
        2 * minute,
        |s| {
            s["leader"].as_str().is_some_and(|l| l != leader)
                && recovered(s, victim, since)
                && recovery(s, &leader).is_some_and(|r| r["step"] == "done")
                && all_alive(s, 4)
        },
    )
    .await;
    assert_eq!(
        rebuilds_of(&c, victim_id),
        1,
        "the new leader resumed the saga: exactly one rebuild of {victim}"
    );
    assert_eq!(creates_of(&c, victim), 1, "{victim} was never re-created");
    assert!(s["failures"].as_array().is_some_and(|f| !f.is_empty()));
    c.stop().await;
}
