//! `infractl sim kill NAME`: a simulated hardware failure of a droplet of
//! the local cloud (`infractl up`): its process is SIGKILLed through the
//! simulator's admin endpoint while the API keeps reporting it active.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};

use crate::context::Context;
use crate::output::OutputFormat;

/// The admin URL that kills droplet `name` (id or name) of the sim at `api_url`.
pub fn kill_url(api_url: &str, name: &str) -> String {
    format!(
        "{}/_sim/droplets/{name}/kill",
        api_url.trim_end_matches('/')
    )
}

pub async fn kill(config_dir: &Path, name: &str, out: OutputFormat) -> anyhow::Result<()> {
    let context = Context::load(config_dir)?
        .ok_or_else(|| anyhow!("no local cloud here: run `infractl up` first"))?;
    let response = reqwest::Client::new()
        .post(kill_url(&context.api_url, name))
        .send()
        .await
        .with_context(|| format!("the simulator at {} does not answer", context.api_url))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        bail!("no droplet named {name} in the local cloud");
    }
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("unexpected answer ({status}) from the simulator"))?;
    if !status.is_success() {
        bail!("the simulator refused ({status}): {body}");
    }
    match out {
        OutputFormat::Json => println!("{body}"),
        OutputFormat::Text if body["killed"] == true => println!("killed {name}"),
        OutputFormat::Text => println!("{name} was not running"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn kill_url_joins_without_double_slashes() {
        assert_eq!(
            super::kill_url("http://127.0.0.1:9/", "web1"),
            "http://127.0.0.1:9/_sim/droplets/web1/kill"
        );
    }
}
