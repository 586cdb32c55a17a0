//! `infractl cloud`: read-only views of the DigitalOcean account (token check,
//! droplets, snapshots) through the agent's `provider` client.

use anyhow::Context as _;
use clap::Subcommand;
use infra_agent::provider::{
    Account, CloudProvider, DoClient, DoConfig, Droplet, RateLimit, Secret, Snapshot,
};
use serde_json::json;

use std::path::Path;

use crate::context::Context;
use crate::output::OutputFormat;

/// Version of the JSON documents printed with `--output json`.
const OUTPUT_VERSION: u32 = 1;

#[derive(Debug, Subcommand)]
pub enum CloudCmd {
    /// Checks the token (DO_TOKEN) against the API (DO_API_URL): account, status, rate-limit budget.
    Check,
    /// Lists droplets, optionally only those with a tag.
    Droplets {
        #[arg(long)]
        tag: Option<String>,
    },
    /// Lists droplet snapshots.
    Snapshots,
}

/// Runs a `cloud` subcommand with the client configured from the
/// environment (`DO_TOKEN`, `DO_API_URL`) or, when `DO_TOKEN` is unset, from
/// the local context that `infractl up` wrote next to `config_dir`.
pub async fn run(cmd: CloudCmd, config_dir: &Path, output: OutputFormat) -> anyhow::Result<()> {
    let cfg = provider_config(config_dir)?;
    let client = DoClient::new(cfg).context("cannot build the DigitalOcean client")?;
    let text = run_with(&client, cmd, output).await?;
    print!("{text}");
    Ok(())
}

/// The DigitalOcean client configuration: environment first, then context.
pub fn provider_config(config_dir: &Path) -> anyhow::Result<DoConfig> {
    if std::env::var_os("DO_TOKEN").is_none()
        && let Some(ctx) = Context::load(config_dir)?
    {
        return Ok(DoConfig::new(ctx.api_url, Secret::new(ctx.token)));
    }
    DoConfig::from_env().context("cannot configure the DigitalOcean client")
}

/// Runs a `cloud` subcommand against `provider` and returns what to print.
pub async fn run_with(
    provider: &dyn CloudProvider,
    cmd: CloudCmd,
    output: OutputFormat,
) -> anyhow::Result<String> {
    match cmd {
        CloudCmd::Check => {
            let account = match provider.account().await {
                Ok(a) => a,
                Err(e) if e.status() == Some(401) => {
                    return Err(
                        anyhow::Error::new(e).context("token: INVALID (DO_TOKEN was rejected)")
                    );
                }
                Err(e) => return Err(anyhow::Error::new(e).context("cannot read the account")),
            };
            Ok(check_output(&account, provider.rate_limit(), output))
        }
        CloudCmd::Droplets { tag } => {
            let droplets = provider
                .list_droplets(tag.as_deref())
                .await
                .context("cannot list droplets")?;
            Ok(match output {
                OutputFormat::Json => json_doc(json!({ "droplets": droplets })),
                OutputFormat::Text => droplet_table(&droplets),
            })
        }
        CloudCmd::Snapshots => {
            let snaps = provider
                .list_snapshots()
                .await
                .context("cannot list snapshots")?;
            Ok(match output {
                OutputFormat::Json => json_doc(json!({ "snapshots": snaps })),
                OutputFormat::Text => snapshot_table(&snaps),
            })
        }
    }
}

fn json_doc(mut v: serde_json::Value) -> String {
    if let Some(m) = v.as_object_mut() {
        m.insert("version".into(), json!(OUTPUT_VERSION));
    }
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn check_output(account: &Account, rate: Option<RateLimit>, output: OutputFormat) -> String {
    match output {
        OutputFormat::Json => json_doc(json!({
            "token_valid": true,
            "account": account,
            "rate_limit": rate,
        })),
        OutputFormat::Text => {
            let budget = match rate {
                Some(r) => format!("{} of {} requests left this hour", r.remaining, r.limit),
                None => "unknown (no rate-limit headers)".into(),
            };
            format!(
                "token:      valid\naccount:    {} ({})\nstatus:     {}{}\nrate limit: {budget}\n",
                account.email,
                account.uuid,
                account.status,
                if account.status_message.is_empty() {
                    String::new()
                } else {
                    format!(" - {}", account.status_message)
                },
            )
        }
    }
}

/// Left-aligned columns separated by two spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub fn droplet_table(droplets: &[Droplet]) -> String {
    let ip = |a: Option<std::net::Ipv4Addr>| a.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = droplets
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.id.to_string(),
                serde_json::to_value(d.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                ip(d.public_ipv4),
                ip(d.private_ipv4),
                d.size_slug.clone(),
                d.region.clone(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "ID",
            "STATUS",
            "PUBLIC-IP",
            "PRIVATE-IP",
            "SIZE",
            "REGION",
        ],
        &rows,
    )
}

pub fn snapshot_table(snaps: &[Snapshot]) -> String {
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.id.to_string(),
                s.droplet_id
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                format!("{:.2}", s.size_gigabytes),
                s.regions.join(","),
                s.created_at.to_rfc3339(),
            ]
        })
        .collect();
    table(
        &["NAME", "ID", "DROPLET", "SIZE-GB", "REGIONS", "CREATED"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use infra_agent::provider::DropletStatus;

    fn droplet(name: &str, id: u64, public: Option<&str>) -> Droplet {
        Droplet {
            id,
            name: name.into(),
            status: DropletStatus::Active,
            size_slug: "s-1vcpu-1gb".into(),
            region: "nyc3".into(),
            public_ipv4: public.map(|p| p.parse().unwrap()),
            private_ipv4: Some("10.10.0.5".parse().unwrap()),
            tags: vec![],
            snapshot_ids: vec![],
            image_id: None,
            vpc_uuid: None,
            created_at: "2026-11-25T08:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn droplet_table_aligns_columns_and_dashes_missing_ips() {
        let t = droplet_table(&[
            droplet("master", 1, Some("127.0.0.10")),
            droplet("blog-web1", 22, None),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("NAME       ID  STATUS  PUBLIC-IP"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("master     1   active  127.0.0.10"),
            "{t}"
        );
        assert!(lines[2].contains("blog-web1  22  active  -"), "{t}");
        assert!(lines[2].ends_with("s-1vcpu-1gb  nyc3"), "{t}");
    }

    #[test]
    fn json_output_is_versioned() {
        let v: serde_json::Value =
            serde_json::from_str(&json_doc(json!({"droplets": []}))).unwrap();
        assert_eq!(v["version"], 1);
    }

    mod against_sim {
        use super::super::*;
        use infra_agent::provider::{CreateDroplets, DropletAction, ImageRef, Secret};
        use infra_sim::{Sim, SimConfig};
        use tokio_util::sync::CancellationToken;

        struct Guard(CancellationToken);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.cancel();
            }
        }

        #[tokio::test]
        async fn check_droplets_and_snapshots_through_the_simulator() {
            let cancel = CancellationToken::new();
            let _guard = Guard(cancel.clone());
            let sim = Sim::start(SimConfig::default(), cancel.clone())
                .await
                .unwrap();
            let client = DoClient::new(DoConfig::new(sim.base_url(), Secret::new("t"))).unwrap();
            let created = client
                .create_droplets(&CreateDroplets {
                    names: vec!["master".into(), "blog-web1".into()],
                    region: "nyc3".into(),
                    size: "s-1vcpu-1gb".into(),
                    image: ImageRef::Slug("ubuntu-24-04-x64".into()),
                    ssh_keys: vec![],
                    tags: vec!["blog".into()],
                    user_data: None,
                    vpc_uuid: None,
                    ipv6: false,
                    monitoring: false,
                    operation_id: None,
                })
                .await
                .unwrap();
            let id = created.droplets[0].id;
            let snap = DropletAction::Snapshot {
                name: "master-snap".into(),
            };
            let a = client.droplet_action(id, &snap).await.unwrap();
            client.wait_action(a.id).await.unwrap();

            let check = run_with(&client, CloudCmd::Check, OutputFormat::Text)
                .await
                .unwrap();
            assert!(check.contains("token:      valid"), "{check}");
            assert!(check.contains("requests left this hour"), "{check}");

            let table = run_with(
                &client,
                CloudCmd::Droplets { tag: None },
                OutputFormat::Text,
            )
            .await
            .unwrap();
            assert_eq!(table.lines().count(), 3, "{table}");
            assert!(
                table.contains("master") && table.contains("blog-web1"),
                "{table}"
            );
            assert!(table.contains("10.10."), "private IPs shown: {table}");

            let cmd = CloudCmd::Droplets {
                tag: Some("nope".into()),
            };
            let json = run_with(&client, cmd, OutputFormat::Json).await.unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(v["droplets"], serde_json::json!([]));

            let snaps = run_with(&client, CloudCmd::Snapshots, OutputFormat::Json)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&snaps).unwrap();
            assert_eq!(v["snapshots"][0]["name"], "master-snap");
            assert_eq!(v["snapshots"][0]["droplet_id"], id);
            cancel.cancel();
            sim.join().await;
        }
    }
}
