//! Process-backed droplets: a tiny shell command per droplet, killed/restarted by actions,
//! data copied by snapshots and restored into new droplets.

mod common;

use common::{TestSim, wait_for};
use infra_sim::{Backing, ProcessBacking, SimConfig};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCRIPT: &str = r#"#!/bin/sh
echo "$INFRA_SIM_DROPLET_NAME $INFRA_SIM_ADDR $INFRA_SIM_DROPLET_ID" >> "$INFRA_SIM_DATA_DIR/boots"
cp "$INFRA_SIM_USER_DATA_FILE" "$INFRA_SIM_DATA_DIR/user_data_seen"
echo "$INFRA_SIM_API_URL" > "$INFRA_SIM_DATA_DIR/../api_url"
echo $$ > "$INFRA_SIM_DATA_DIR/../pid"
trap 'echo bye >> "$INFRA_SIM_DATA_DIR/terminated"; exit 0' TERM
sleep 300 &
wait $!
"#;

fn alive(pid: u32) -> bool {
    // A zombie (state Z) counts as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

struct Env {
    _dir: tempfile::TempDir,
    base: PathBuf,
    cfg: SimConfig,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake-agent.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let base = dir.path().join("cloud");
    let cfg = SimConfig {
        backing: Backing::Process(ProcessBacking {
            command: script,
            args: vec![],
            base_dir: base.clone(),
        }),
        ..SimConfig::default()
    };
    Env {
        _dir: dir,
        base,
        cfg,
    }
}

impl Env {
    fn droplet_dir(&self, id: u64) -> PathBuf {
        self.base.join("droplets").join(id.to_string())
    }

    /// Waits until the droplet's process wrote a new pid (different from `old`) and is alive.
    async fn wait_pid(&self, id: u64, old: Option<u32>) -> u32 {
        let pid_file = self.droplet_dir(id).join("pid");
        wait_for(Duration::from_secs(10), || async {
            let pid: u32 = read(&pid_file)?.trim().parse().ok()?;
            (Some(pid) != old && alive(pid)).then_some(pid)
        })
        .await
        .unwrap_or_else(|| panic!("droplet {id} process did not start"))
    }
}

async fn wait_dead(pid: u32) {
    let dead = wait_for(Duration::from_secs(10), || async {
        (!alive(pid)).then_some(())
    })
    .await;
    assert!(dead.is_some(), "process {pid} still alive");
}

async fn act(sim: &TestSim, id: u64, body: serde_json::Value) {
    let r = sim.post(&format!("/v2/droplets/{id}/actions"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        sim.wait_action(r.body["action"]["id"].as_u64().unwrap())
            .await,
        "completed"
    );
}

#[tokio::test]
async fn processes_follow_the_droplet_lifecycle() {
    let env = env();
    let sim = TestSim::start(env.cfg.clone()).await;
    let r = sim
        .post(
            "/v2/droplets",
            json!({"name": "node-a", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "user_data": "#cloud-config\nhello: 1\n"}),
        )
        .await;
    let id = r.body["droplet"]["id"].as_u64().unwrap();
    let d = sim.wait_status(id, "active").await;
    let pid = env.wait_pid(id, None).await;
    let data = env.droplet_dir(id).join("data");
    assert_eq!(sim.handle().droplet_data_dir(id), Some(data.clone()));
    let ip = d["networks"]["v4"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        read(&data.join("boots")).unwrap(),
        format!("node-a {ip} {id}\n")
    );
    assert_eq!(
        read(&data.join("user_data_seen")).unwrap(),
        "#cloud-config\nhello: 1\n"
    );
    assert_eq!(
        read(&env.droplet_dir(id).join("api_url")).unwrap().trim(),
        sim.base
    );

    // power_off kills it; power_on restarts it.
    act(&sim, id, json!({"type": "power_off"})).await;
    wait_dead(pid).await;
    assert_eq!(
        sim.get(&format!("/v2/droplets/{id}")).await.body["droplet"]["status"],
        "off"
    );
    act(&sim, id, json!({"type": "power_on"})).await;
    let pid = env.wait_pid(id, Some(pid)).await;
    assert_eq!(read(&data.join("boots")).unwrap().lines().count(), 2);

    // shutdown sends SIGTERM (the script's trap runs); power_on starts it again.
    act(&sim, id, json!({"type": "shutdown"})).await;
    wait_dead(pid).await;
    assert_eq!(read(&data.join("terminated")).unwrap(), "bye\n");
    assert_eq!(
        sim.get(&format!("/v2/droplets/{id}")).await.body["droplet"]["status"],
        "off"
    );
    act(&sim, id, json!({"type": "power_on"})).await;
    let pid = env.wait_pid(id, Some(pid)).await;
    assert_eq!(read(&data.join("boots")).unwrap().lines().count(), 3);

    // Snapshot copies the data dir; a droplet created from it starts with that data.
    act(&sim, id, json!({"type": "snapshot", "name": "snap"})).await;
    let snaps = sim.get(&format!("/v2/droplets/{id}/snapshots")).await;
    let snap_id = snaps.body["snapshots"][0]["id"].as_u64().unwrap();
    assert!(
        env.base
            .join("snapshots")
            .join(snap_id.to_string())
            .join("boots")
            .exists()
    );
    let copy = sim.create_droplet("node-b", json!(snap_id)).await;
    let copy_d = sim.wait_status(copy, "active").await;
    let copy_pid = env.wait_pid(copy, None).await;
    let copy_ip = copy_d["networks"]["v4"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(copy_ip, ip);
    let boots = read(&env.droplet_dir(copy).join("data").join("boots")).unwrap();
    assert_eq!(boots.lines().count(), 4, "{boots}");
    assert!(boots.lines().last().unwrap().starts_with("node-b "));

    // Hardware failure: killed, API still active; reboot brings it back.
    assert!(sim.handle().kill_droplet("node-a").unwrap());
    wait_dead(pid).await;
    assert_eq!(
        sim.get(&format!("/v2/droplets/{id}")).await.body["droplet"]["status"],
        "active"
    );
    act(&sim, id, json!({"type": "reboot"})).await;
    let pid = env.wait_pid(id, Some(pid)).await;

    // Rebuild from the snapshot replaces the data (back to 3 boots + this one), same address.
    act(&sim, id, json!({"type": "rebuild", "image": snap_id})).await;
    let pid = env.wait_pid(id, Some(pid)).await;
    assert_eq!(read(&data.join("boots")).unwrap().lines().count(), 4);
    let d = sim.get(&format!("/v2/droplets/{id}")).await.body["droplet"].clone();
    assert_eq!(d["networks"]["v4"][0]["ip_address"], ip.as_str());

    // Delete kills it and removes its directory.
    assert_eq!(
        sim.delete(&format!("/v2/droplets/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    wait_dead(pid).await;
    assert!(!env.droplet_dir(id).exists());

    // Shutdown kills the rest.
    sim.stop().await;
    wait_dead(copy_pid).await;
}

#[tokio::test]
async fn restart_from_state_file_restarts_processes() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        state_file: Some(dir.path().join("state.json")),
        ..env.cfg.clone()
    };
    let sim = TestSim::start(cfg.clone()).await;
    let id = sim
        .create_droplet("persist", json!("ubuntu-24-04-x64"))
        .await;
    sim.wait_status(id, "active").await;
    let pid = env.wait_pid(id, None).await;
    sim.stop().await;
    wait_dead(pid).await;

    let sim = TestSim::start(cfg).await;
    let pid2 = env.wait_pid(id, Some(pid)).await;
    let boots = read(&env.droplet_dir(id).join("data").join("boots")).unwrap();
    assert_eq!(boots.lines().count(), 2);
    sim.stop().await;
    wait_dead(pid2).await;
}
