//! A local cloud for CLI tests: infra-sim with one real `infra-agent`
//! process per droplet (the agent binary built beside `infractl`), a
//! config made by `infractl init`, and a context pointing at it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use infra_sim::{Backing, ProcessBacking, Profile, Sim, SimConfig, SimHandle};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "ctl-e2e-token";

/// Cancels the simulator (which kills every droplet process) when dropped;
/// after a panic, with `INFRA_TEST_KEEP=1`, first copies the droplets' logs
/// and data from `dir` to `/tmp/infra-test-keep/` for a post-mortem.
pub struct StopSim(pub CancellationToken, pub PathBuf);

impl Drop for StopSim {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("INFRA_TEST_KEEP").is_some() {
            let to = Path::new("/tmp/infra-test-keep");
            let _ = std::fs::remove_dir_all(to);
            let _ = std::process::Command::new("cp")
                .arg("-a")
                .arg(&self.1)
                .arg(to)
                .status();
        }
        self.0.cancel();
    }
}

pub fn agent_binary() -> PathBuf {
    let infractl = Path::new(env!("CARGO_BIN_EXE_infractl"));
    let agent = infractl.with_file_name("infra-agent");
    assert!(
        agent.exists(),
        "{} is missing: build it with `cargo build -p infra-agent`",
        agent.display()
    );
    agent
}

/// Output of one `infractl` run.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub out: String,
    pub err: String,
}

pub async fn infractl_run(root: &Path, args: &[&str]) -> Run {
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_infractl"))
            .current_dir(root)
            .env_remove("DO_TOKEN")
            .env_remove("INFRA_ENDPOINT")
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("infractl finishes within 180 s")
    .expect("infractl runs");
    Run {
        ok: output.status.success(),
        code: output.status.code(),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub async fn infractl(root: &Path, args: &[&str]) -> (bool, String, String) {
    let r = infractl_run(root, args).await;
    (r.ok, r.out, r.err)
}

pub fn posts(sim: &SimHandle) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path)
        .collect()
}

/// A running local cloud in a temporary directory.
pub struct Cloud {
    // Dropped first: copies the logs (on panic) before `root` is removed.
    _stop: StopSim,
    pub root: TempDir,
    pub sim: SimHandle,
    pub shutdown: CancellationToken,
}

impl Cloud {
    /// Starts the simulator, runs `infractl init` and writes the context.
    pub async fn start() -> Cloud {
        let root = tempfile::tempdir().unwrap();
        let shutdown = CancellationToken::new();
        let stop = StopSim(shutdown.clone(), root.path().join(".infra/cloud"));
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
        Cloud {
            _stop: stop,
            root,
            sim,
            shutdown,
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub async fn infractl(&self, args: &[&str]) -> (bool, String, String) {
        infractl(self.path(), args).await
    }

    /// `infractl status --output json`, if the cluster answered.
    pub async fn status(&self) -> Option<serde_json::Value> {
        let (ok, out, _) = self.infractl(&["--output", "json", "status"]).await;
        if !ok {
            return None;
        }
        serde_json::from_str(&out).ok()
    }

    /// Stops the simulator and waits until every droplet process is gone.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.sim.join())
            .await
            .expect("sim stops and kills the droplet processes");
    }
}
