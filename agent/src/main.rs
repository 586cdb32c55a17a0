//! `infra-agent`: the droplet agent binary. Parses flags, sets up tracing,
//! and runs the node until SIGTERM/SIGINT (clean leave) or a fatal error.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use infra_agent::bootstrap::{SimEnv, config_from_sim_env};
use infra_agent::config::{AgentConfig, RawConfig};
use infra_agent::orchestrator::LeaderSetup;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "infra-agent", version, about = "The infra droplet agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run {
        /// Agent config file (TOML); every field can also come from
        /// INFRA_AGENT_* variables or the flags below.
        #[arg(long, env = "INFRA_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// Build the config from the simulator's INFRA_SIM_* variables and
        /// the droplet's user-data (the default when INFRA_SIM_USER_DATA_FILE
        /// is set and no --config is given).
        #[arg(long)]
        from_sim_env: bool,
        #[command(flatten)]
        overrides: RawConfig,
    },
}

/// glibc malloc arenas when `MALLOC_ARENA_MAX` is not set: by default
/// glibc gives threads up to 8 arenas per core, each keeping its own free
/// pages, which is most of the difference in RSS between a busy agent (the
/// Raft leader) and an idle one.
const MALLOC_ARENAS: i32 = 2;

fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    // Worker threads: tokio's default (one per core, or TOKIO_WORKER_THREADS).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let Command::Run {
        config,
        from_sim_env,
        overrides,
    } = Cli::parse().command;
    let lookup = |k: &str| std::env::var(k).ok();
    let (config, api_url) = if from_sim_env || (config.is_none() && SimEnv::present(lookup)) {
        let env = SimEnv::from_lookup(lookup)?;
        let config =
            config_from_sim_env(&env).context("cannot configure the agent from the simulator")?;
        (config, env.api_url)
    } else {
        (AgentConfig::load(config.as_deref(), overrides)?, None)
    };
    let leader = LeaderSetup::from_files(&config, api_url.as_deref())
        .context("cannot set up the orchestrator")?;
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install SIGTERM handler")?;
    let node = infra_agent::orchestrator::run_agent(config, leader, shutdown);
    tokio::pin!(node);
    let result = tokio::select! {
        r = &mut node => r,
        _ = async {
            tokio::select! {
                _ = sigterm.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        } => {
            tracing::info!("signal received: leaving the cluster");
            signals.cancel();
            node.await
        }
    };
    match result {
        Err(err @ infra_agent::node::NodeError::Zombie(_)) => {
            tracing::error!(%err, "exiting without restart");
            std::process::exit(infra_agent::node::ZOMBIE_EXIT_CODE);
        }
        other => other.context("agent failed"),
    }
}
