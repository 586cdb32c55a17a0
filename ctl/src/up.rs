//! `infractl up` / `infractl down`: a whole cluster on this machine. `up`
//! starts `infra-sim` (process backing: one `infra-agent` per droplet) in
//! the background in its own process group, writes the context file, runs
//! `init` when config/ is missing and `orchestrate`, then prints the
//! status. `down` stops the simulator (which kills every droplet process)
//! and removes `.infra/`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use tokio::time::Instant;

use crate::context::{CONTEXT_VERSION, Context, context_dir};
use crate::output::OutputFormat;

const SIM_START_TIMEOUT: Duration = Duration::from_secs(20);
const SIM_STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A binary installed next to `infractl`.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot locate infractl")?;
    let path = me.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found next to infractl (build it: cargo build -p {name})",
            path.display()
        );
    }
    Ok(path)
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

/// Starts the simulator in the background and returns (pid, api url).
async fn start_sim(infra: &Path, token: &str) -> anyhow::Result<(u32, String)> {
    let sim = sibling("infra-sim")?;
    let agent = sibling("infra-agent")?;
    let out_path = infra.join("sim.out");
    let log = std::fs::File::create(infra.join("sim.log"))?;
    let out = std::fs::File::create(&out_path)?;
    let child = std::process::Command::new(sim)
        .args(["serve", "--backing", "process", "--command"])
        .arg(&agent)
        .args([
            "--arg",
            "run",
            "--profile",
            "fast",
            "--port",
            "0",
            "--base-dir",
        ])
        .arg(infra.join("cloud"))
        .args(["--state"])
        .arg(infra.join("sim-state.json"))
        .args(["--token", token])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start infra-sim")?;
    let pid = child.id();
    // The sim outlives this command: it is stopped by `infractl down`.
    drop(child);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        if let Some(url) = text
            .lines()
            .find_map(|l| l.strip_prefix("infra-sim listening on "))
        {
            return Ok((pid, url.trim().to_string()));
        }
        if !alive(pid) {
            bail!(
                "infra-sim exited at start; see {}",
                infra.join("sim.log").display()
            );
        }
        if start.elapsed() > SIM_START_TIMEOUT {
            bail!("infra-sim did not start within {SIM_START_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `infractl up [--foreground]`.
pub async fn up(config_dir: &Path, foreground: bool, out: OutputFormat) -> anyhow::Result<()> {
    if let Some(ctx) = Context::load(config_dir)?
        && ctx.sim_pid.is_some_and(alive)
    {
        bail!(
            "the local cloud is already up (infra-sim pid {}); `infractl down` stops it",
            ctx.sim_pid.unwrap_or_default()
        );
    }
    if !config_dir.join("infrastructure.json").exists() {
        crate::offline::init(config_dir, None, false, out).map_err(|e| anyhow!("{e}"))?;
    }
    let pki = config_dir.join("pki");
    crate::offline::ensure_pki(&pki)?;
    let infra = context_dir(config_dir);
    std::fs::create_dir_all(&infra)
        .with_context(|| format!("cannot create {}", infra.display()))?;
    let token = random_token()?;
    let (pid, api_url) = start_sim(&infra, &token).await?;
    println!("local cloud: infra-sim pid {pid} at {api_url}");
    Context {
        version: CONTEXT_VERSION,
        api_url,
        token,
        endpoints: Vec::new(),
        pki_dir: pki,
        state_dir: Some(infra.join("cloud")),
        sim_pid: Some(pid),
    }
    .save(config_dir)?;
    crate::orchestrate::orchestrate(config_dir, false, false, out).await?;
    crate::status::run(config_dir, None, None, out)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    if foreground {
        println!("running in the foreground; Ctrl-C stops the local cloud");
        tokio::signal::ctrl_c().await?;
        down(config_dir).await?;
    }
    Ok(())
}

/// `infractl down`.
pub async fn down(config_dir: &Path) -> anyhow::Result<()> {
    let infra = context_dir(config_dir);
    if let Some(pid) = Context::load(config_dir)?.and_then(|c| c.sim_pid)
        && alive(pid)
    {
        signal(pid, "TERM")?;
        let start = Instant::now();
        while alive(pid) && start.elapsed() < SIM_STOP_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(pid) {
            // Its whole process group: the sim and any droplet left.
            signal(pid, "KILL")?;
        }
        println!("stopped infra-sim (pid {pid})");
    }
    if infra.exists() {
        std::fs::remove_dir_all(&infra)
            .with_context(|| format!("cannot remove {}", infra.display()))?;
        println!("removed {}", infra.display());
    }
    Ok(())
}

/// Sends SIG`name` to the process group led by `pid` (kill(1)).
fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg("--")
        .arg(format!("-{pid}"))
        .status()
        .context("cannot run kill")?;
    if !status.success() && alive(pid) {
        bail!("cannot signal infra-sim (pid {pid})");
    }
    Ok(())
}
