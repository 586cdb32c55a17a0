//! Self-healing benchmark: infra-sim (instant profile) with real agent
//! processes; SIGKILL a web droplet's agent N times (`HEAL_TRIALS`, default
//! 10) and time kill → failure committed → replacement joined (recovery
//! `done` with a newer agent generation). Prints each trial and a summary.
//! Run: `cargo bench -p infra-agent --bench heal` (or `cargo test
//! -p infra-agent --bench heal` for a debug build).

#[path = "../tests/support/process_cloud.rs"]
mod process_cloud;

use std::path::Path;
use std::time::Duration;

use process_cloud::{ProcessCloud, generation};
use tokio::time::Instant;

fn main() {
    // The agents inherit it from the simulator: more recoveries per hour
    // than the default flapping limit of 3.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("INFRA_AGENT_MAX_RECOVERIES", "100") };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    // Test runners list tests first: this benchmark has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let trials: usize = std::env::var("HEAL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::Builder::new()
        .prefix("heal-")
        .disable_cleanup(std::env::var_os("HEAL_KEEP").is_some())
        .tempdir()
        .unwrap();
    eprintln!("work dir {}", dir.path().display());
    let mut cloud = ProcessCloud::start(
        dir.path(),
        Path::new(env!("CARGO_BIN_EXE_infra-agent")).to_path_buf(),
    )
    .await;

    let infra = infra_agent::spec::examples::example("infrastructure.json").unwrap();
    let (_, result) = cloud.apply(infra).await;
    assert_eq!(result["adopted"], serde_json::json!(["master"]), "{result}");
    assert_eq!(result["created"].as_array().unwrap().len(), 3, "{result}");
    let mut totals = Vec::new();
    for trial in 1..=trials {
        let webs = ["hostomatic-web1", "hostomatic-web2", "digitalpixo-web1"];
        let web: &str = webs[(trial - 1) % webs.len()];
        let before = cloud.status().await.expect("status");
        let old = generation(&before, web).expect("web droplet alive");
        let killed = Instant::now();
        let killed_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
        cloud.sim().kill_droplet(web).unwrap();
        let mut confirmed: Option<Duration> = None;
        let done = loop {
            let s = cloud.status().await;
            if let Some(s) = &s {
                if confirmed.is_none()
                    && s["failures"].as_array().is_some_and(|f| {
                        f.iter()
                            .any(|f| f["name"] == web && f["generation"].as_u64() == Some(old))
                    })
                {
                    confirmed = Some(killed.elapsed());
                }
                let rec = s["recoveries"]
                    .as_array()
                    .and_then(|r| r.iter().find(|r| r["name"] == web).cloned());
                if let Some(r) = rec
                    && r["step"] == "done"
                    && r["started_at"].as_u64().is_some_and(|t| t >= killed_ms)
                    && generation(s, web).is_some_and(|g| g > old)
                {
                    break (killed.elapsed(), r);
                }
            }
            assert!(
                killed.elapsed() < Duration::from_secs(120),
                "trial {trial}: not recovered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let (total, r) = done;
        let saga_ms = r["finished_at"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(r["started_at"].as_u64().unwrap_or(0));
        let detect = confirmed.unwrap_or(total);
        println!(
            "trial {trial:2}: kill->failure committed {:6.0} ms, saga (confirmed->done) {saga_ms:5} ms, kill->replacement joined {:6.0} ms",
            detect.as_secs_f64() * 1000.0,
            total.as_secs_f64() * 1000.0
        );
        totals.push(total.as_secs_f64() * 1000.0);
    }
    totals.sort_by(f64::total_cmp);
    let mean = totals.iter().sum::<f64>() / totals.len() as f64;
    println!(
        "kill->replacement joined over {} trials: min {:.0} ms, median {:.0} ms, mean {:.0} ms, max {:.0} ms",
        totals.len(),
        totals[0],
        totals[totals.len() / 2],
        mean,
        totals[totals.len() - 1]
    );
    cloud.stop().await;
}
