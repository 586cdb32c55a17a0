//! End to end through infra-sim with real `infra-agent` processes behind
//! the droplets: the master is created with bootstrap user-data, its agent
//! answers ApplySpec over mTLS, creates the other droplets (whose agents
//! configure themselves from their user-data and join), and a second
//! ApplySpec makes no create request; a droplet killed with SIGKILL is
//! confirmed failed and replaced exactly once, its new agent joined.
//! With python3-aiosmtpd, the master ships with an e-mail config (as
//! `infractl orchestrate` ships it): the voters it creates get it too, and
//! the recovery is mailed to a real SMTP server.

mod notify_support;
#[path = "support/process_cloud.rs"]
mod process_cloud;

use std::path::Path;
use std::time::Duration;

use infra_agent::notify::NotifyBundle;
use infra_agent::orchestrator::cluster_tag;
use infra_agent::provider::CloudProvider;
use process_cloud::{CLUSTER, ProcessCloud, generation};
use tokio::time::Instant;

/// The bundle `infractl` would ship for an e-mail config pointing at `sink`.
fn notify_bundle(sink: &notify_support::SmtpSink) -> NotifyBundle {
    let dir = tempfile::tempdir().unwrap();
    let config = sink.config("INFRA_SMTP_PASSWORD");
    std::fs::write(
        dir.path().join("email_config.json"),
        serde_json::to_string(&config).unwrap(),
    )
    .unwrap();
    NotifyBundle::from_caller(dir.path(), |v| {
        (v == "INFRA_SMTP_PASSWORD").then(|| notify_support::PASSWORD.to_string())
    })
    .unwrap()
    .expect("a bundle")
}

/// Files named `name` under `dir`, recursively.
fn count_files(dir: &Path, name: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p, name)
            } else {
                usize::from(p.file_name().is_some_and(|n| n == name))
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrate_creates_the_cluster_a_rerun_creates_nothing_and_a_killed_droplet_is_replaced_once()
 {
    let dir = tempfile::tempdir().unwrap();
    let sink = notify_support::SmtpSink::start();
    let bundle = sink.as_ref().map(notify_bundle);
    let mut cloud = ProcessCloud::start_with(
        dir.path(),
        Path::new(env!("CARGO_BIN_EXE_infra-agent")).to_path_buf(),
        bundle.as_ref(),
    )
    .await;

    let infra = infra_agent::spec::examples::example("infrastructure.json").unwrap();
    let started = Instant::now();
    let (messages, result) = cloud.apply(infra).await;
    eprintln!("first apply took {:?}", started.elapsed());
    assert_eq!(result["adopted"], serde_json::json!(["master"]), "{result}");
    assert_eq!(result["created"].as_array().unwrap().len(), 3, "{result}");
    assert!(
        messages.iter().any(|m| m.starts_with("join:")),
        "{messages:#?}"
    );
    let droplets = cloud
        .provider
        .list_droplets(Some(&cluster_tag(CLUSTER)))
        .await
        .unwrap();
    assert_eq!(droplets.len(), 4);
    if sink.is_some() {
        let shipped = count_files(&dir.path().join("cloud"), "email_config.json");
        assert!(shipped >= 2, "the e-mail config reached {shipped} droplets");
    }

    // Second run: nothing created.
    cloud.sim().clear_requests();
    let (_, again) = cloud.apply(infra).await;
    assert_eq!(again["created"], serde_json::json!([]), "{again}");
    let posts: Vec<_> = cloud
        .sim()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect();
    assert!(posts.is_empty(), "no create on a re-run: {posts:?}");

    // kill -9 a web droplet's agent (the API keeps saying active): the
    // leader confirms the failure and replaces it exactly once.
    const WEB: &str = "hostomatic-web1";
    let before = cloud.status().await.expect("status");
    let old_generation = generation(&before, WEB).expect("web1 is a live member");
    cloud.sim().clear_requests();
    let killed = Instant::now();
    cloud.sim().kill_droplet(WEB).unwrap();
    let mut last = serde_json::Value::Null;
    let recovered = loop {
        if let Some(s) = cloud.status().await {
            let done = s["recoveries"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["name"] == WEB && r["step"] == "done"));
            if done && generation(&s, WEB).is_some_and(|g| g > old_generation) {
                break s;
            }
            last = s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "{WEB} was not recovered; last status: {last:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("kill -> replacement joined: {:?}", killed.elapsed());
    let replacements: Vec<_> = cloud
        .sim()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.status < 300)
        .filter(|r| {
            r.path == "/v2/droplets"
                || r.request_body
                    .as_ref()
                    .is_some_and(|b| b["type"] == "rebuild" || b["type"] == "restore")
        })
        .map(|r| r.path)
        .collect();
    assert_eq!(
        replacements.len(),
        1,
        "exactly one create/rebuild: {replacements:?}"
    );
    assert!(
        recovered["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == WEB),
        "the failure was committed: {recovered:#}"
    );

    if let Some(sink) = &sink {
        let deadline = Instant::now() + Duration::from_secs(60);
        let subject = format!("[infra] Recovered droplet {WEB}");
        loop {
            let mails = sink.messages();
            if mails.iter().any(|m| m["subject"] == subject.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no recovery e-mail; got {mails:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    cloud.stop().await;
}
