//! `cluster-bench`: end-to-end figures of the agent cluster with real
//! `infra-agent` processes on 127.0.0.x (Raft included).
//!
//! - `detect`: SIGKILL a follower → its failure committed in the Raft log
//!   (seen in the leader's status); the victim is restarted between trials.
//! - `failover`: SIGKILL the leader → a new leader has committed an entry
//!   of its own term (it accepts writes); the old leader is restarted.
//! - `footprint`: an idle cluster for `--window-secs`: RSS (VmRSS), CPU
//!   (utime+stime) and read/write syscall bytes (`/proc/<pid>/io`
//!   rchar+wchar: TCP and files, not UDP sendto/recvfrom) per agent, and
//!   each agent's own traffic counters (status `traffic`): gossip bytes,
//!   health calls (probes, indirect probes, votes) and Raft RPCs.
//! - `soak`: one agent (round robin) SIGSTOPped for 1 s every
//!   `--freeze-every-secs`; counts failures committed (expected 0).
//! - `lossy-soak`: the soak under packet loss. With `--netns-loss PCT`
//!   (root): real agent processes in a private network namespace whose
//!   loopback drops PCT % of all packets at random (nftables, see
//!   `netns`), the freezes by SIGSTOP as in `soak`. Without it: in-process
//!   agents (real gRPC, gossip and Raft over loopback), `--loss` of every
//!   gossip datagram and outgoing RPC lost at random by the fault switch,
//!   which also does the 1 s freezes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod netns;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use infra_agent::local_cluster::ProcessCluster;
use infra_proto::v1::StatusRequest;
use infra_proto::v1::control_client::ControlClient;
use serde_json::Value;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Detect,
    Failover,
    Footprint,
    Soak,
    LossySoak,
}

#[derive(Parser)]
#[command(about = "Cluster benchmarks with real agent processes")]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value_t = 5)]
    agents: usize,
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Footprint measurement window.
    #[arg(long, default_value_t = 30)]
    window_secs: u64,
    /// Soak duration.
    #[arg(long, default_value_t = 600)]
    soak_secs: u64,
    #[arg(long, default_value_t = 60)]
    freeze_every_secs: u64,
    #[arg(long, default_value_t = 1000)]
    freeze_ms: u64,
    /// Share of messages lost in `lossy-soak` (in-process fault switch).
    #[arg(long, default_value_t = 0.05)]
    loss: f64,
    /// `lossy-soak` with real packet loss: agent processes in a private
    /// network namespace dropping this percentage of packets (needs root).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..100))]
    netns_loss: Option<u32>,
    /// The infra-agent binary (default: next to this one).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// First loopback address octet: agents use 127.0.0.BASE..
    #[arg(long, default_value_t = 160)]
    base: u8,
}

/// Removes the cluster directory even on error.
struct DirGuard(PathBuf);
impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Bench {
    cluster: ProcessCluster,
    clients: Vec<ControlClient<Channel>>,
    _dir: DirGuard,
}

impl Bench {
    async fn start(args: &Args, binary: &Path, run: usize) -> anyhow::Result<Bench> {
        let dir = std::env::temp_dir().join(format!("cluster-bench-{}-{run}", std::process::id()));
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
        let mut bench = Bench {
            cluster,
            clients,
            _dir: guard,
        };
        bench.settled(args.agents, Duration::from_secs(90)).await?;
        Ok(bench)
    }

    async fn status(&mut self, i: usize) -> Option<Value> {
        let reply = self.clients[i].status(StatusRequest {}).await.ok()?;
        serde_json::from_str(&reply.into_inner().status_json).ok()
    }

    /// Waits until agent 0's view shows all `n` members alive, one leader
    /// and the planner's voter count, and every agent agrees on the leader.
    async fn settled(&mut self, n: usize, deadline: Duration) -> anyhow::Result<Value> {
        let voters = infra_agent::plan::voters::voter_count(n);
        let end = Instant::now() + deadline;
        loop {
            if Instant::now() > end {
                bail!("cluster did not settle in {deadline:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut leader = None;
            let mut ok = true;
            let mut first = Value::Null;
            for i in 0..n {
                let Some(s) = self.status(i).await else {
                    ok = false;
                    break;
                };
                let alive = s["members"]
                    .as_array()
                    .is_some_and(|ms| ms.len() == n && ms.iter().all(|m| m["state"] == "alive"));
                let l = s["leader"].as_str().map(str::to_string);
                if !alive
                    || l.is_none()
                    || s["voters"].as_array().map(Vec::len) != Some(voters)
                    || s["learners"].as_array().map(Vec::len) != Some(n - voters)
                    || (leader.is_some() && leader != l)
                {
                    ok = false;
                    break;
                }
                leader = l;
                if i == 0 {
                    first = s;
                }
            }
            if ok {
                return Ok(first);
            }
        }
    }
}

fn index_of(name: &str) -> usize {
    name.trim_start_matches('n').parse().unwrap_or(0)
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(what: &str, mut ms: Vec<u128>) {
    ms.sort_unstable();
    println!(
        "| {what:<44} | {:>6} | {:>7} | {:>7} | {:>7} |",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(0)
    );
}

fn header() {
    println!(
        "| {:<44} | {:>6} | {:>7} | {:>7} | {:>7} |",
        "measure", "trials", "p50 ms", "p99 ms", "max ms"
    );
    println!("|{:-<46}|{:->8}|{:->9}|{:->9}|{:->9}|", "", "", "", "", "");
}

fn committed(s: &Value, name: &str) -> Option<u64> {
    s["failures"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["generation"].as_u64())
}

fn generation_of(s: &Value, name: &str) -> Option<u64> {
    s["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["generation"].as_u64())
}

/// A fresh cluster per trial: a restarted victim keeps its open recovery
/// in the replicated state (closing it is the recovery saga's job), which
/// blocks a second failure of the same name.
async fn detect(args: &Args, binary: &Path) -> anyhow::Result<()> {
    let mut times = Vec::new();
    for trial in 0..args.trials {
        let mut bench = Bench::start(args, binary, trial).await?;
        let b = &mut bench;
        let s = b.settled(args.agents, Duration::from_secs(60)).await?;
        let leader = s["leader"].as_str().context("leader")?.to_string();
        let li = index_of(&leader);
        // Round robin over the followers.
        let followers: Vec<usize> = (0..args.agents).filter(|&i| i != li).collect();
        let victim = followers[trial % followers.len()];
        let name = format!("n{victim}");
        let generation = generation_of(&s, &name).context("victim generation")?;
        let killed = Instant::now();
        b.cluster.kill(victim);
        loop {
            if killed.elapsed() > Duration::from_secs(20) {
                bail!("trial {trial}: failure of {name} not committed in 20 s");
            }
            if let Some(s) = b.status(li).await
                && committed(&s, &name).is_some_and(|g| g >= generation)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(killed.elapsed().as_millis());
    }
    header();
    summary(
        &format!("SIGKILL -> failure committed (N={})", args.agents),
        times,
    );
    Ok(())
}

async fn failover(args: &Args, b: &mut Bench) -> anyhow::Result<()> {
    let mut times = Vec::new();
    for trial in 0..args.trials {
        let s = b.settled(args.agents, Duration::from_secs(60)).await?;
        let old = s["leader"].as_str().context("leader")?.to_string();
        let oi = index_of(&old);
        let term = s["term"].as_u64().unwrap_or(0);
        let commit = (0..args.agents).filter(|&i| i != oi).collect::<Vec<_>>();
        let mut before = 0;
        for &i in &commit {
            if let Some(s) = b.status(i).await {
                before = before.max(s["commit_index"].as_u64().unwrap_or(0));
            }
        }
        let killed = Instant::now();
        b.cluster.kill(oi);
        'wait: loop {
            if killed.elapsed() > Duration::from_secs(20) {
                bail!("trial {trial}: no new leader in 20 s");
            }
            for &i in &commit {
                if let Some(s) = b.status(i).await
                    && s["leader"] == s["node"]
                    && s["term"].as_u64().unwrap_or(0) > term
                    && s["commit_index"].as_u64().unwrap_or(0) > before
                {
                    break 'wait;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(killed.elapsed().as_millis());
        b.cluster.spawn(oi)?;
    }
    header();
    summary(
        &format!("SIGKILL leader -> new leader commits (N={})", args.agents),
        times,
    );
    Ok(())
}

/// A `/proc/<pid>/status` field in kB (`VmRSS:`, `RssAnon:`).
fn proc_status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} of {pid}"))
}

fn proc_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 overall (11 and 12 after the name).
    let rest = &text[text.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn proc_io_bytes(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let get = |k: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(get("rchar:") + get("wchar:"))
}

async fn footprint(args: &Args, b: &mut Bench) -> anyhow::Result<()> {
    let pids: Vec<u32> = (0..args.agents)
        .map(|i| b.cluster.pid(i).context("agent not running"))
        .collect::<anyhow::Result<_>>()?;
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu0: Vec<u64> = pids
        .iter()
        .map(|&p| proc_cpu_ticks(p))
        .collect::<Result<_, _>>()?;
    let io0: Vec<u64> = pids
        .iter()
        .map(|&p| proc_io_bytes(p))
        .collect::<Result<_, _>>()?;
    let traffic0 = traffic_of(b, args.agents).await?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.window_secs)).await;
    let secs = t0.elapsed().as_secs_f64();
    let traffic1 = traffic_of(b, args.agents).await?;
    let mut rows = Vec::new();
    for (k, &p) in pids.iter().enumerate() {
        let cpu = (proc_cpu_ticks(p)? - cpu0[k]) as f64 / ticks_per_sec / secs * 100.0;
        let io = (proc_io_bytes(p)? - io0[k]) as f64 / secs / 1024.0;
        let mb = |field| proc_status_kb(p, field).map(|kb| kb as f64 / 1024.0);
        rows.push((mb("VmRSS:")?, cpu, io, mb("RssAnon:")?));
    }
    type Row = (f64, f64, f64, f64);
    let avg = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
    let max = |f: fn(&Row) -> f64| rows.iter().map(f).fold(0.0, f64::max);
    println!("idle footprint, N={}, window {secs:.0} s", args.agents);
    println!("| per agent            |    avg |    max |");
    println!("|----------------------|--------|--------|");
    println!(
        "| RSS (MB)             | {:>6.1} | {:>6.1} |",
        avg(|r| r.0),
        max(|r| r.0)
    );
    println!(
        "|  of which private   | {:>6.1} | {:>6.1} |",
        avg(|r| r.3),
        max(|r| r.3)
    );
    println!(
        "| CPU (% of one core)  | {:>6.2} | {:>6.2} |",
        avg(|r| r.1),
        max(|r| r.1)
    );
    println!(
        "| I/O bytes (KB/s)     | {:>6.1} | {:>6.1} |",
        avg(|r| r.2),
        max(|r| r.2)
    );
    let rate = |class: &str, k: usize| -> f64 {
        let total = |t: &Value| {
            t[class]["sent"].as_u64().unwrap_or(0) + t[class]["received"].as_u64().unwrap_or(0)
        };
        total(&traffic1[k]).saturating_sub(total(&traffic0[k])) as f64 / secs / 1024.0
    };
    let n = args.agents as f64;
    let classes = ["gossip", "health", "raft"];
    let per: Vec<Vec<f64>> = classes
        .iter()
        .map(|c| (0..args.agents).map(|k| rate(c, k)).collect())
        .collect();
    let avg_of = |v: &[f64]| v.iter().sum::<f64>() / n;
    let max_of = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "traffic per agent (KB/s, sent+received; gRPC counted after TLS on the connections the agent opens)"
    );
    println!("| class                              |    avg |    max |");
    println!("|------------------------------------|--------|--------|");
    println!(
        "| gossip (UDP payload)               | {:>6.2} | {:>6.2} |",
        avg_of(&per[0]),
        max_of(&per[0])
    );
    println!(
        "| probes+votes, calls it makes       | {:>6.2} | {:>6.2} |",
        avg_of(&per[1]),
        max_of(&per[1])
    );
    println!(
        "| probes+votes, both ends (2 x avg)  | {:>6.2} |        |",
        2.0 * avg_of(&per[1])
    );
    println!(
        "| gossip + probes (both ends)        | {:>6.2} |        |",
        avg_of(&per[0]) + 2.0 * avg_of(&per[1])
    );
    println!(
        "| Raft, RPCs it sends (leader = max) | {:>6.2} | {:>6.2} |",
        avg_of(&per[2]),
        max_of(&per[2])
    );
    Ok(())
}

/// The `traffic` counters of every agent's status.
async fn traffic_of(b: &mut Bench, n: usize) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    for i in 0..n {
        let s = b
            .status(i)
            .await
            .with_context(|| format!("status of n{i}"))?;
        out.push(s["traffic"].clone());
    }
    Ok(out)
}

async fn soak(args: &Args, b: &mut Bench) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(args.soak_secs);
    let mut freezes = 0;
    let mut failed = BTreeSet::new();
    let mut confirmed = BTreeSet::new();
    let mut next_freeze = Instant::now() + Duration::from_secs(args.freeze_every_secs);
    while Instant::now() < end {
        if Instant::now() >= next_freeze {
            let victim = freezes % args.agents;
            b.cluster.signal(victim, "STOP")?;
            tokio::time::sleep(Duration::from_millis(args.freeze_ms)).await;
            b.cluster.signal(victim, "CONT")?;
            freezes += 1;
            next_freeze += Duration::from_secs(args.freeze_every_secs);
        }
        for i in 0..args.agents {
            if let Some(s) = b.status(i).await {
                for f in s["failures"].as_array().into_iter().flatten() {
                    if let Some(n) = f["name"].as_str() {
                        failed.insert(n.to_string());
                    }
                }
                for c in s["confirmed_failures"].as_array().into_iter().flatten() {
                    if let Some(n) = c["target"].as_str() {
                        confirmed.insert(n.to_string());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "soak {} s, N={}: {freezes} freezes of {} ms, failures committed: {} {:?}, \
         confirmed by any aggregator: {} {:?}",
        args.soak_secs,
        args.agents,
        args.freeze_ms,
        failed.len(),
        failed,
        confirmed.len(),
        confirmed
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.agents < 3 {
        bail!("--agents must be at least 3");
    }
    if args.netns_loss.is_some() {
        if !matches!(args.mode, Mode::LossySoak) {
            bail!("--netns-loss goes with --mode lossy-soak");
        }
        // Before any thread exists: they all inherit the namespace.
        netns::enter()?;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary dir")?
            .join("infra-agent"),
    };
    let one = || Bench::start(&args, &binary, 0);
    match args.mode {
        Mode::Detect => detect(&args, &binary).await,
        Mode::Failover => failover(&args, &mut one().await?).await,
        Mode::Footprint => footprint(&args, &mut one().await?).await,
        Mode::Soak => soak(&args, &mut one().await?).await,
        Mode::LossySoak => match args.netns_loss {
            Some(pct) => netns_soak(&args, &mut one().await?, pct).await,
            None => lossy_soak(&args).await,
        },
    }
}

/// `soak` in the private namespace, once the cluster has settled without
/// loss: turns the loss on, checks the rate with UDP datagrams, then soaks.
async fn netns_soak(args: &Args, b: &mut Bench, pct: u32) -> anyhow::Result<()> {
    netns::set_loss(pct)?;
    let (sent, received) = tokio::task::spawn_blocking(|| netns::measure_loss(4000)).await??;
    println!(
        "netns loss {pct}% (nftables, private namespace): {sent} UDP datagrams sent, \
         {received} received, {:.2}% lost",
        100.0 * (sent - received) as f64 / sent as f64
    );
    soak(args, b).await
}

/// In-process agents sharing a fresh CA; `--loss` on every link, one agent
/// paused for `--freeze-ms` every `--freeze-every-secs`.
async fn lossy_soak(args: &Args) -> anyhow::Result<()> {
    use infra_agent::config::{AgentConfig, RawConfig};
    use infra_agent::fault::FaultSwitch;
    use infra_agent::membership::GossipKey;
    use infra_agent::node::{NodeDeps, start};
    use infra_agent::tls::{Ca, write_private};
    use std::net::Ipv4Addr;
    use tokio_util::sync::CancellationToken;

    infra_agent::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("cluster-bench-lossy-{}", std::process::id()));
    let _guard = DirGuard(dir.clone());
    std::fs::create_dir_all(&dir)?;
    let ca = Ca::create("bench")?;
    ca.write(&dir)?;
    let key_file = dir.join("gossip.key");
    write_private(&key_file, GossipKey::generate().to_hex().as_bytes())?;
    let shutdown = CancellationToken::new();
    let mut nodes = Vec::new();
    let mut faults = Vec::new();
    let mut seed = None;
    for i in 0..args.agents {
        let name = format!("n{i}");
        let ip = Ipv4Addr::new(127, 0, 0, args.base + i as u8);
        let tcp = std::net::TcpListener::bind((ip, 0))?.local_addr()?.port();
        let udp = std::net::UdpSocket::bind((ip, 0))?.local_addr()?.port();
        let (cert, key) = ca
            .issue_node(&name, &[ip.to_string()])?
            .write(&dir, &name)?;
        let config = AgentConfig::from_raw(RawConfig {
            node_name: Some(name.clone()),
            cluster_id: Some("bench".into()),
            data_dir: Some(dir.join(&name)),
            grpc_listen: Some(format!("{ip}:{tcp}")),
            gossip_listen: Some(format!("{ip}:{udp}")),
            seeds: seed.map(|s: std::net::SocketAddr| vec![s.to_string()]),
            ca_cert: Some(dir.join("ca.pem")),
            node_cert: Some(cert),
            node_key: Some(key),
            gossip_key_file: Some(key_file.clone()),
            ..RawConfig::default()
        })?;
        std::fs::create_dir_all(&config.data_dir)?;
        let first = seed.is_none();
        seed.get_or_insert(config.gossip_advertise);
        let fault = FaultSwitch::default();
        let deps = NodeDeps {
            fault: fault.clone(),
            ..NodeDeps::default()
        };
        let cluster_id = config.cluster_id.clone();
        let node = start(config, deps, shutdown.clone()).await?;
        if first {
            node.initialize(&cluster_id).await?;
        }
        nodes.push(node);
        faults.push(fault);
    }
    // Settle without loss, then turn it on everywhere.
    let voters = infra_agent::plan::voters::voter_count(args.agents);
    let settle = Instant::now();
    while !nodes.iter().all(|n| {
        let m = n.consensus().metrics();
        m.nodes.len() == args.agents && m.voters.len() == voters && m.uniform && m.leader.is_some()
    }) {
        if settle.elapsed() > Duration::from_secs(60) {
            bail!("in-process cluster did not settle in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for f in &faults {
        f.set_loss(args.loss);
    }
    let end = Instant::now() + Duration::from_secs(args.soak_secs);
    let mut next_freeze = Instant::now() + Duration::from_secs(args.freeze_every_secs);
    let mut freezes = 0;
    let mut failed = BTreeSet::new();
    let mut confirmed_anywhere = BTreeSet::new();
    while Instant::now() < end {
        if Instant::now() >= next_freeze {
            let victim = freezes % args.agents;
            faults[victim].set_paused(true);
            tokio::time::sleep(Duration::from_millis(args.freeze_ms)).await;
            faults[victim].set_paused(false);
            freezes += 1;
            next_freeze += Duration::from_secs(args.freeze_every_secs);
        }
        for n in &nodes {
            failed.extend(n.consensus().local_state().failures.into_keys());
            confirmed_anywhere.extend(n.confirmed().borrow().iter().map(|c| c.target.clone()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "lossy soak {} s, N={} in process, loss {:.0}% on every link: {freezes} freezes of {} ms, \
         failures committed: {} {:?}, confirmed by any aggregator: {} {:?}",
        args.soak_secs,
        args.agents,
        args.loss * 100.0,
        args.freeze_ms,
        failed.len(),
        failed,
        confirmed_anywhere.len(),
        confirmed_anywhere
    );
    for n in nodes {
        n.kill().await;
    }
    Ok(())
}
