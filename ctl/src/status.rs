//! `infractl status`: the cluster as one agent sees it. JSON output is the
//! agent's status document as is (the scripts' contract: `leader`, `term`,
//! `commit_index`, `members`, `failures`, `recoveries`, `voters`,
//! `learners`, `suspicions`, `load_balancer`, `releases`); text output is a table of members under a
//! leader/term line.

use std::path::Path;

use anyhow::Context as _;
use infra_proto::v1::StatusRequest;
use serde_json::Value;

use crate::client;
use crate::output::{OutputFormat, print_json};

pub async fn run(
    config_dir: &Path,
    endpoint: Option<&str>,
    pki: Option<&Path>,
    out: OutputFormat,
) -> anyhow::Result<()> {
    let target = client::resolve(config_dir, endpoint, pki)?;
    let mut control = client::connect(&target).await?;
    let reply = control
        .status(StatusRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("cluster unreachable: status call failed: {}", s.message()))?
        .into_inner();
    let status: Value =
        serde_json::from_str(&reply.status_json).context("agent sent invalid status JSON")?;
    crate::context::remember_members(config_dir, &status);
    match out {
        OutputFormat::Json => print_json(&status)?,
        OutputFormat::Text => print!("{}", render(&status)),
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Left-aligned columns separated by three spaces, like kubectl.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// The text form of a status document.
pub fn render(s: &Value) -> String {
    let mut out = format!(
        "leader: {}   term: {}   commit index: {}   (answered by {})\n\n",
        text(&s["leader"]),
        text(&s["term"]),
        text(&s["commit_index"]),
        text(&s["node"]),
    );
    let empty = Vec::new();
    let members = s["members"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            let monitors: Vec<String> = m["monitors"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(text)
                .collect();
            let raft = if m["voter"] == true {
                "voter"
            } else {
                "learner"
            };
            vec![
                text(&m["name"]),
                text(&m["role"]),
                text(&m["state"]).to_uppercase(),
                raft.to_string(),
                text(&m["generation"]),
                text(&m["grpc_addr"]),
                if monitors.is_empty() {
                    "-".into()
                } else {
                    monitors.join(",")
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &["NAME", "ROLE", "STATE", "RAFT", "GEN", "GRPC", "MONITORS"],
        &rows,
    ));
    let failures = s["failures"].as_array().unwrap_or(&empty);
    if !failures.is_empty() {
        out.push_str("\nconfirmed failures:\n");
        let rows: Vec<Vec<String>> = failures
            .iter()
            .map(|f| {
                vec![
                    text(&f["name"]),
                    text(&f["generation"]),
                    text(&f["confirmed_at"]),
                ]
            })
            .collect();
        out.push_str(&table(&["NAME", "GEN", "CONFIRMED_AT_MS"], &rows));
    }
    let recoveries = s["recoveries"].as_array().unwrap_or(&empty);
    if !recoveries.is_empty() {
        out.push_str("\nrecoveries:\n");
        let rows: Vec<Vec<String>> = recoveries
            .iter()
            .map(|r| {
                vec![
                    text(&r["name"]),
                    text(&r["step"]),
                    text(&r["started_at"]),
                    text(&r["finished_at"]),
                ]
            })
            .collect();
        out.push_str(&table(
            &["NAME", "STEP", "STARTED_AT_MS", "FINISHED_AT_MS"],
            &rows,
        ));
    }
    if let Some(lb) = s["load_balancer"].as_str() {
        out.push_str(&format!("\nload balancer: {lb}\n"));
    }
    if let Some(releases) = s["releases"].as_object().filter(|r| !r.is_empty()) {
        out.push_str("\nreleases:\n");
        let rows: Vec<Vec<String>> = releases
            .iter()
            .map(|(key, tag)| vec![key.clone(), text(tag)])
            .collect();
        out.push_str(&table(&["PROJECT/ENV", "LIVE"], &rows));
    }
    let suspicions = s["suspicions"].as_array().unwrap_or(&empty);
    if !suspicions.is_empty() {
        let names: Vec<String> = suspicions.iter().map(|x| text(&x["target"])).collect();
        out.push_str(&format!(
            "\nsuspected by {}: {}\n",
            text(&s["node"]),
            names.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_leader_line_and_member_table() {
        let s = serde_json::json!({
            "node": "n1", "leader": "n0", "term": 4, "commit_index": 17,
            "members": [
                {"name": "n0", "role": "web", "state": "alive", "voter": true,
                 "generation": 2, "grpc_addr": "127.0.0.1:7400", "monitors": ["n1", "n2"]},
                {"name": "n2", "role": "web", "state": "failed", "voter": false,
                 "generation": 1, "grpc_addr": "127.0.0.3:7400", "monitors": []}
            ],
            "failures": [{"name": "n2", "generation": 1, "confirmed_at": 99}],
            "recoveries": [], "suspicions": [],
            "load_balancer": "http://127.0.0.2:7480",
            "releases": {"shop/uat": "v1.0.0-uat-20261125-1200"}
        });
        let text = render(&s);
        assert!(text.starts_with("leader: n0   term: 4   commit index: 17   (answered by n1)"));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[2].starts_with("NAME   ROLE   STATE    RAFT"),
            "{text}"
        );
        assert!(
            lines[3].contains("ALIVE") && lines[3].ends_with("n1,n2"),
            "{text}"
        );
        assert!(
            lines[4].contains("FAILED") && lines[4].contains("learner"),
            "{text}"
        );
        assert!(
            text.contains("confirmed failures:\nNAME   GEN   CONFIRMED_AT_MS\nn2     1     99"),
            "{text}"
        );
        assert!(
            text.contains("\nload balancer: http://127.0.0.2:7480\n"),
            "{text}"
        );
        assert!(
            text.contains("shop/uat      v1.0.0-uat-20261125-1200"),
            "{text}"
        );
    }
}
