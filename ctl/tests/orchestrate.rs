//! `infractl orchestrate`, `cleanup --dry-run` and `sim kill` (the real
//! binary) against infra-sim with real `infra-agent` processes behind the
//! droplets. The agent binary is the one built beside `infractl`
//! (`cargo build -p infra-agent`; `scripts/test` builds the workspace).

use std::path::{Path, PathBuf};
use std::time::Duration;

use infra_sim::{Backing, ProcessBacking, Profile, Sim, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "ctl-e2e-token";

struct StopSim(CancellationToken);

impl Drop for StopSim {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn agent_binary() -> PathBuf {
    let infractl = Path::new(env!("CARGO_BIN_EXE_infractl"));
    let agent = infractl.with_file_name("infra-agent");
    assert!(
        agent.exists(),
        "{} is missing: build it with `cargo build -p infra-agent`",
        agent.display()
    );
    agent
}

async fn infractl(root: &Path, args: &[&str]) -> (bool, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_infractl"))
            .current_dir(root)
            .env_remove("DO_TOKEN")
            .env_remove("INFRA_ENDPOINT")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("infractl finishes within 180 s")
    .expect("infractl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn posts(sim: &SimHandle) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrate_twice_cleanup_dry_run_and_sim_kill() {
    let root = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let _stop = StopSim(shutdown.clone());
    let sim = Sim::start(
        SimConfig {
            profile: Profile::Instant,
            backing: Backing::Process(ProcessBacking {
                command: agent_binary(),
                args: vec!["run".into()],
                base_dir: root.path().join(".infra/cloud"),
            }),
            tokens: vec![TOKEN.into()],
            ..SimConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .expect("sim starts");

    let (ok, _, err) = infractl(root.path(), &["init"]).await;
    assert!(ok, "init: {err}");
    std::fs::create_dir_all(root.path().join(".infra")).unwrap();
    let context = serde_json::json!({
        "version": 1,
        "api_url": sim.base_url(),
        "token": TOKEN,
        "endpoints": [],
        "pki_dir": root.path().join("config/pki"),
    });
    std::fs::write(root.path().join(".infra/context.json"), context.to_string()).unwrap();

    let (ok, out, err) = infractl(root.path(), &["orchestrate"]).await;
    assert!(ok, "orchestrate failed:\n{out}\n{err}");
    assert!(out.contains("3 created, 1 adopted"), "{out}");
    assert_eq!(
        posts(&sim).iter().filter(|p| *p == "/v2/droplets").count(),
        4,
        "four creates: {:?}",
        posts(&sim)
    );
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join(".infra/context.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["endpoints"].as_array().unwrap().len(), 1, "{saved}");
    assert!(
        !std::fs::read_to_string(root.path().join(".infra/context.json"))
            .unwrap()
            .is_empty()
    );
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN), "token leaked");

    sim.clear_requests();
    let (ok, out, err) = infractl(root.path(), &["orchestrate"]).await;
    assert!(ok, "second orchestrate failed:\n{out}\n{err}");
    assert!(out.contains("0 created, 0 adopted"), "{out}");
    assert!(
        posts(&sim).is_empty(),
        "no POST on a re-run: {:?}",
        posts(&sim)
    );

    let (ok, out, err) = infractl(root.path(), &["cleanup", "--dry-run"]).await;
    assert!(ok, "cleanup failed:\n{out}\n{err}");
    assert!(out.contains("(dry run)"), "{out}");
    assert!(
        sim.requests().iter().all(|r| r.method != "DELETE"),
        "a dry run deletes nothing"
    );

    let (ok, out, err) = infractl(root.path(), &["sim", "kill", "hostomatic-web1"]).await;
    assert!(ok, "sim kill failed:\n{out}\n{err}");
    assert_eq!(out.trim(), "killed hostomatic-web1");
    let (ok, _, err) = infractl(root.path(), &["sim", "kill", "nope"]).await;
    assert!(!ok && err.contains("no droplet named nope"), "{err}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), sim.join())
        .await
        .expect("sim stops and kills the droplet processes");
}
