//! `infractl recover NAME [--yes] [--force]`: asks the cluster's leader to
//! run the recovery saga for one droplet (power off, rebuild from its latest
//! snapshot, rejoin, place, route) and follows it to its end.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::anyhow;
use infra_proto::v1::RecoverRequest;

use crate::client::{connect, resolve};
use crate::exit::CliError;
use crate::orchestrate::stream;
use crate::output::OutputFormat;

/// Whether the operator agreed; without `--yes` an interactive terminal is asked,
/// anything else is refused (a script must say `--yes`).
fn confirmed(name: &str, yes: bool) -> Result<bool, CliError> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::invalid(format!(
            "recover {name} powers the droplet off and rebuilds it from its latest snapshot; \
             pass --yes to confirm"
        )));
    }
    print!("Power off {name} and rebuild it from its latest snapshot? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub async fn recover(
    config_dir: &Path,
    name: &str,
    yes: bool,
    force: bool,
    out: OutputFormat,
) -> Result<(), CliError> {
    if name.trim().is_empty() {
        return Err(CliError::invalid("recover: NAME must not be empty"));
    }
    if !confirmed(name, yes)? {
        return Err(CliError::invalid("recover: not confirmed; nothing done"));
    }
    let target = resolve(config_dir, None, None)?;
    let mut client = connect(&target).await?;
    let progress = client
        .recover(RecoverRequest {
            droplet: name.to_string(),
            force,
        })
        .await
        .map_err(|s| anyhow!("Recover: {}", s.message()))?
        .into_inner();
    stream(progress, out).await?;
    Ok(())
}
