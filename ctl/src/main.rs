//! `infractl`: the operator's CLI. `main` parses arguments and hands each
//! subcommand to its module; exit codes: 0 ok, 1 runtime failure, 2 usage or
//! validation error.

mod client;
mod cloud;
mod context;
mod deploy;
mod deploy_cluster;
mod exit;
mod local_lb;
mod offline;
mod orchestrate;
mod output;
mod recover;
mod render;
mod sim;
mod status;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exit::CliError;
use crate::output::OutputFormat;

#[derive(Parser, Debug)]
#[command(
    name = "infractl",
    version,
    about = "Operate the self-healing personal cloud"
)]
struct Cli {
    /// Directory holding infrastructure.json, deployment_config.json, ...
    #[arg(
        long,
        global = true,
        env = "INFRA_CONFIG_DIR",
        default_value = "config"
    )]
    config: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write example config/ and templates/ (never overwrites without --force).
    Init {
        #[arg(long)]
        force: bool,
        /// Where to write the templates (default: next to the config directory).
        #[arg(long)]
        templates: Option<PathBuf>,
    },
    /// Check every config file and report all problems.
    Validate,
    /// Show what orchestrate would change, Terraform style.
    Plan {
        /// Show destroys as allowed instead of blocked.
        #[arg(long)]
        allow_destroy: bool,
    },
    /// Convert a v1 projects.csv into infrastructure.json.
    ImportCsv {
        file: PathBuf,
        /// Region for the droplets (the CSV has none).
        #[arg(long, default_value = "lon1")]
        region: String,
        /// Replace an existing infrastructure.json.
        #[arg(long)]
        force: bool,
    },
    /// Add a project: `infractl add-project myapp prod,uat 2 s-2vcpu-4gb`.
    AddProject {
        name: String,
        /// Comma-separated environments, e.g. prod,uat
        environments: String,
        web_droplets: u32,
        size: String,
    },
    /// Set the number of web droplets of a project.
    Scale { project: String, web_droplets: u32 },
    /// Remove a project from the spec (its droplets are destroyed by the next orchestrate with --allow-destroy).
    RemoveProject { name: String },
    /// Read-only views of the cloud account (DO_TOKEN, DO_API_URL).
    #[command(subcommand)]
    Cloud(cloud::CloudCmd),
    /// Inspect state.
    #[command(subcommand)]
    State(StateCmd),
    /// Issue an agent's node certificate from the cluster CA (config/pki).
    IssueNodeCert {
        name: String,
        /// IP addresses the agent is reached at (repeatable).
        #[arg(long = "ip")]
        ips: Vec<String>,
    },
    /// Show the cluster: leader, term, members, failures, recoveries.
    Status {
        /// An agent's gRPC address (HOST:PORT); default: INFRA_ENDPOINT,
        /// then the context file's endpoints.
        #[arg(long)]
        endpoint: Option<String>,
        /// Directory with ca.pem, client.pem, client.key.
        #[arg(long)]
        pki: Option<PathBuf>,
    },
    #[command(flatten)]
    Deploy(deploy::DeployCmd),
    /// Render Kubernetes manifests or a docker-compose file.
    #[command(subcommand)]
    Render(render::RenderCmd),
    /// Apply the spec to the cloud through the cluster's leader (the first
    /// run creates the master droplet), streaming progress.
    Orchestrate {
        /// Allow replacing droplets whose size/region changed.
        #[arg(long)]
        force: bool,
        /// Allow destroying droplets the spec no longer has.
        #[arg(long)]
        allow_destroy: bool,
    },
    /// Delete leftover droplets and old snapshots the cluster does not know.
    Cleanup {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the recovery saga for droplet NAME now (power off, rebuild from
    /// its latest snapshot, rejoin), through the cluster's leader.
    Recover {
        name: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Clear the flapping flag of a droplet recovered too often.
        #[arg(long)]
        force: bool,
    },
    /// The local cloud of `infractl up`.
    #[command(subcommand)]
    Sim(SimCmd),
    /// Start a whole cluster on this machine: infra-sim with one agent
    /// process per droplet, then orchestrate the spec.
    Up {
        /// Stay in the foreground; Ctrl-C stops the local cloud.
        #[arg(long)]
        foreground: bool,
    },
    /// Stop the local cloud (every droplet process) and remove .infra/.
    Down,
}

#[derive(Subcommand, Debug)]
enum SimCmd {
    /// SIGKILL a droplet's agent (simulated hardware failure).
    Kill { name: String },
}

#[derive(Subcommand, Debug)]
enum StateCmd {
    /// Print the runtime view (droplets and projects) in the reference format.
    Export,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("INFRACTL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Runs an async command on a runtime of its own; offline commands need none.
fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    Ok(runtime.block_on(f)?)
}

fn run(cli: Cli) -> Result<(), CliError> {
    let dir = cli.config.as_path();
    let out = cli.output;
    match cli.command {
        Command::Init { force, templates } => offline::init(dir, templates.as_deref(), force, out),
        Command::Validate => offline::validate(dir, out),
        Command::Plan { allow_destroy } => offline::plan(dir, allow_destroy, out),
        Command::ImportCsv {
            file,
            region,
            force,
        } => offline::import_csv(dir, &file, &region, force, out),
        Command::AddProject {
            name,
            environments,
            web_droplets,
            size,
        } => offline::add_project(dir, &name, &environments, web_droplets, &size, out),
        Command::Scale {
            project,
            web_droplets,
        } => offline::scale(dir, &project, web_droplets, out),
        Command::RemoveProject { name } => offline::remove_project(dir, &name, out),
        Command::State(StateCmd::Export) => offline::state_export(dir, out),
        Command::Cloud(cmd) => block_on(cloud::run(cmd, dir, out)),
        Command::IssueNodeCert { name, ips } => offline::issue_node(dir, &name, &ips, out),
        Command::Orchestrate {
            force,
            allow_destroy,
        } => block_on(orchestrate::orchestrate(dir, force, allow_destroy, out)),
        Command::Cleanup { dry_run } => block_on(orchestrate::cleanup(dir, dry_run, out)),
        Command::Recover { name, yes, force } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)?;
            runtime.block_on(recover::recover(dir, &name, yes, force, out))
        }
        Command::Sim(SimCmd::Kill { name }) => block_on(sim::kill(dir, &name, out)),
        Command::Up { foreground } => block_on(up::up(dir, foreground, out)),
        Command::Down => block_on(up::down(dir)),
        Command::Status { endpoint, pki } => {
            block_on(status::run(dir, endpoint.as_deref(), pki.as_deref(), out))
        }
        Command::Deploy(cmd) => block_on(deploy::run(cmd, dir, out)),
        Command::Render(cmd) => block_on(render::run(cmd, dir, out)),
    }
}
