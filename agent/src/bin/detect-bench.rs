//! `detect-bench`: failure-detection benchmark with real agent processes.
//!
//! Kill trials: start N agents on 127.0.0.x, wait until they converge,
//! SIGKILL one, and time kill → confirmed failure on the first and on all
//! survivors. Freeze trials: SIGSTOP one agent for 1 s, SIGCONT, and watch
//! 3 s for false confirmations. Prints p50/p99 (ms).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use infra_agent::local_cluster::{ProcessCluster, confirmed_targets, members_in_state};
use infra_proto::v1::StatusRequest;
use infra_proto::v1::control_client::ControlClient;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
#[command(about = "Measure kill -> confirmed failure with real agent processes")]
struct Args {
    #[arg(long, default_value_t = 5)]
    agents: usize,
    #[arg(long, default_value_t = 10)]
    trials: usize,
    #[arg(long, default_value_t = 5)]
    freeze_trials: usize,
    /// The infra-agent binary (default: next to this one).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// How long each freeze (SIGSTOP → SIGCONT) lasts, in ms.
    #[arg(long, default_value_t = 1000)]
    freeze_ms: u64,
    /// Soak: one cluster, a freeze every 4 s (round robin) for this many
    /// seconds, counting false confirmations. 0 = no soak.
    #[arg(long, default_value_t = 0)]
    soak_secs: u64,
    /// First loopback address octet: agents use 127.0.0.BASE..
    #[arg(long, default_value_t = 100)]
    base: u8,
}

/// Removes the trial directory even on error.
struct DirGuard(PathBuf);
impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn status(client: &mut ControlClient<Channel>) -> Option<serde_json::Value> {
    let reply = client.status(StatusRequest {}).await.ok()?;
    serde_json::from_str(&reply.into_inner().status_json).ok()
}

struct Trial {
    cluster: ProcessCluster,
    clients: Vec<ControlClient<Channel>>,
    _dir: DirGuard,
}

async fn start(args: &Args, binary: &Path, trial: usize) -> anyhow::Result<Trial> {
    let dir = std::env::temp_dir().join(format!("detect-bench-{}-{trial}", std::process::id()));
    let guard = DirGuard(dir.clone());
    let cluster = ProcessCluster::start(binary, &dir, args.agents, args.base)?;
    cluster.initialize().await?;
    let mut clients = Vec::new();
    for a in &cluster.agents {
        let ch = Endpoint::from_shared(format!("https://{}", a.grpc))?
            .tls_config(cluster.client_tls())?
            .timeout(Duration::from_millis(500))
            .connect_lazy();
        clients.push(ControlClient::new(ch));
    }
    let monitors = 3.min(args.agents - 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    'wait: loop {
        if Instant::now() > deadline {
            bail!("cluster did not converge in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for c in clients.iter_mut() {
            let Some(s) = status(c).await else {
                continue 'wait;
            };
            let ready = members_in_state(&s, "alive").len() == args.agents
                && s["members"].as_array().is_some_and(|ms| {
                    ms.iter()
                        .all(|m| m["monitors"].as_array().map(Vec::len) == Some(monitors))
                });
            if !ready {
                continue 'wait;
            }
        }
        break;
    }
    Ok(Trial {
        cluster,
        clients,
        _dir: guard,
    })
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.agents < 3 {
        bail!("--agents must be at least 3 (a quorum needs 2 monitors)");
    }
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no exe dir")?
            .join("infra-agent"),
    };
    let (mut first, mut all) = (Vec::new(), Vec::new());
    for trial in 0..args.trials {
        let mut t = start(&args, &binary, trial).await?;
        let victim = 1 + trial % (args.agents - 1);
        let name = format!("n{victim}");
        let killed = Instant::now();
        t.cluster.kill(victim);
        let mut first_ms = None;
        let deadline = killed + Duration::from_secs(15);
        loop {
            if Instant::now() > deadline {
                bail!("trial {trial}: {name} not confirmed within 15 s");
            }
            let mut confirmed = 0;
            for (i, c) in t.clients.iter_mut().enumerate() {
                if i == victim {
                    continue;
                }
                if status(c)
                    .await
                    .is_some_and(|s| confirmed_targets(&s).contains(&name))
                {
                    confirmed += 1;
                }
            }
            let elapsed = killed.elapsed().as_millis();
            if confirmed > 0 && first_ms.is_none() {
                first_ms = Some(elapsed);
            }
            if confirmed == args.agents - 1 {
                first.push(first_ms.unwrap_or(elapsed));
                all.push(elapsed);
                println!(
                    "kill trial {trial}: first {} ms, all {elapsed} ms",
                    first_ms.unwrap_or(elapsed)
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut false_confirms = 0;
    for trial in 0..args.freeze_trials {
        let mut t = start(&args, &binary, args.trials + trial).await?;
        let victim = 1 + trial % (args.agents - 1);
        t.cluster.signal(victim, "STOP")?;
        tokio::time::sleep(Duration::from_millis(args.freeze_ms)).await;
        t.cluster.signal(victim, "CONT")?;
        let until = Instant::now() + Duration::from_secs(3);
        let mut confirmed = false;
        while Instant::now() < until && !confirmed {
            for c in t.clients.iter_mut() {
                confirmed |= status(c)
                    .await
                    .is_some_and(|s| !confirmed_targets(&s).is_empty());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false_confirms += usize::from(confirmed);
        println!("freeze trial {trial}: confirmed = {confirmed}");
    }
    let soak = if args.soak_secs > 0 {
        Some(soak(&args, &binary).await?)
    } else {
        None
    };
    first.sort_unstable();
    all.sort_unstable();
    println!(
        "N={} kills={} first survivor p50={} p99={} ms; all survivors p50={} p99={} ms; \
         {} ms SIGSTOP then confirmed: {}/{} trials",
        args.agents,
        args.trials,
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        args.freeze_ms,
        false_confirms,
        args.freeze_trials
    );
    if let Some((freezes, falses)) = soak {
        println!(
            "soak {} s: {freezes} freezes of {} ms, false confirmations: {falses}",
            args.soak_secs, args.freeze_ms
        );
    }
    Ok(())
}

/// One cluster; every 4 s one agent (round robin) freezes for
/// `freeze_ms`. Returns (freezes, agents ever confirmed failed).
async fn soak(args: &Args, binary: &Path) -> anyhow::Result<(usize, usize)> {
    let mut t = start(args, binary, 10_000).await?;
    let end = Instant::now() + Duration::from_secs(args.soak_secs);
    let mut freezes = 0;
    let mut confirmed = std::collections::BTreeSet::new();
    while Instant::now() < end {
        let victim = freezes % args.agents;
        t.cluster.signal(victim, "STOP")?;
        tokio::time::sleep(Duration::from_millis(args.freeze_ms)).await;
        t.cluster.signal(victim, "CONT")?;
        freezes += 1;
        let next = Instant::now() + Duration::from_secs(4);
        while Instant::now() < next {
            for c in t.clients.iter_mut() {
                if let Some(s) = status(c).await {
                    confirmed.extend(confirmed_targets(&s));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok((freezes, confirmed.len()))
}
