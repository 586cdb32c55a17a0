mod cloud;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "infractl", about = "Operate the self-healing personal cloud")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read-only DigitalOcean views (DO_TOKEN, DO_API_URL).
    Cloud {
        #[command(subcommand)]
        cmd: cloud::CloudCmd,
        #[arg(long, value_enum, global = true, default_value_t = cloud::OutputFormat::Text)]
        output: cloud::OutputFormat,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Cloud { cmd, output } => cloud::run(cmd, output).await,
    }
}
