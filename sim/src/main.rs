//! `infra-sim serve`: runs the local DigitalOcean API v2 simulator on 127.0.0.1.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use infra_sim::{Backing, ProcessBacking, Profile, RateLimitConfig, Sim, SimConfig};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "infra-sim",
    about = "Local DigitalOcean API v2 compatible cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    Instant,
    Fast,
    Realistic,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackingArg {
    None,
    Process,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until SIGTERM or Ctrl-C.
    Serve {
        /// Port on 127.0.0.1 (0 = ephemeral).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// State file (versioned JSON); kept in memory when absent.
        #[arg(long = "state")]
        state: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "fast")]
        profile: ProfileArg,
        /// Divides every simulated duration.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        #[arg(long, value_enum, default_value = "none")]
        backing: BackingArg,
        /// Program started per droplet with --backing process.
        #[arg(long, default_value = "infra-agent")]
        command: PathBuf,
        /// Arguments for --command.
        #[arg(long = "arg", allow_hyphen_values = true)]
        args: Vec<String>,
        /// Directory for droplet data and snapshots with --backing process.
        #[arg(long, default_value = "infra-sim-data")]
        base_dir: PathBuf,
        /// Accepted bearer token (repeatable); any non-empty token when none is given.
        #[arg(
            long = "token",
            env = "INFRA_SIM_TOKENS",
            value_delimiter = ',',
            hide_env_values = true
        )]
        tokens: Vec<String>,
        #[arg(long, default_value_t = 250)]
        rate_per_minute: u32,
        #[arg(long, default_value_t = 5000)]
        rate_per_hour: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Command::Serve {
        port,
        state,
        profile,
        time_scale,
        backing,
        command,
        args,
        base_dir,
        tokens,
        rate_per_minute,
        rate_per_hour,
    } = Cli::parse().command;
    let backing = match backing {
        BackingArg::None => Backing::None,
        BackingArg::Process => Backing::Process(ProcessBacking {
            command,
            args,
            base_dir: std::path::absolute(&base_dir)
                .with_context(|| format!("--base-dir {}", base_dir.display()))?,
        }),
    };
    let cfg = SimConfig {
        port,
        state_file: state,
        profile: match profile {
            ProfileArg::Instant => Profile::Instant,
            ProfileArg::Fast => Profile::Fast,
            ProfileArg::Realistic => Profile::Realistic,
        },
        time_scale,
        backing,
        tokens,
        rate_limit: RateLimitConfig {
            per_hour: rate_per_hour,
            per_minute: rate_per_minute,
        },
    };
    let shutdown = CancellationToken::new();
    let handle = Sim::start(cfg, shutdown.clone())
        .await
        .context("starting infra-sim")?;
    println!("infra-sim listening on {}", handle.base_url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
    handle.join().await;
    Ok(())
}
