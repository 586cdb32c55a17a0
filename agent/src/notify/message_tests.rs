//! Unit tests of message rendering, the retry schedule and the heartbeat summary.

use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::*;
use crate::recovery::{Fence, Notice, Replacement, SagaOutcome, SourceImage};

fn recovered() -> Notice {
    Notice::Recovered(SagaOutcome {
        droplet: "blog-web1".into(),
        generation: 3,
        droplet_id: 4242,
        ip: Some("10.0.0.7".parse().unwrap()),
        replacement: Replacement::Create {
            image: SourceImage::Snapshot { id: 77 },
        },
        fence: Fence::Destroyed,
        old_destroyed: true,
    })
}

#[test]
fn a_recovery_notice_names_droplet_method_and_ip() {
    let m = render_notice("[infra]", &recovered());
    assert_eq!(m.subject, "[infra] Recovered droplet blog-web1");
    assert!(
        m.body
            .contains("replaced by a new droplet from snapshot 77"),
        "{}",
        m.body
    );
    assert!(m.body.contains("New droplet id: 4242"));
    assert!(m.body.contains("Generation: 3"));
    assert!(m.body.contains("IP: 10.0.0.7"));
    assert_eq!(
        m.sms_text(),
        "[infra] Recovered droplet blog-web1: Droplet blog-web1 failed and was recovered automatically."
    );
}

#[test]
fn flapping_and_manual_notices_tell_the_operator_what_to_run() {
    let m = render_notice(
        "",
        &Notice::Flapping {
            droplet: "master".into(),
            count: 3,
        },
    );
    assert_eq!(m.subject, "Droplet master is flapping: left down");
    assert!(m.body.contains("3 times") && m.body.contains("infractl recover master"));
    let m = render_notice(
        "[x]",
        &Notice::ManualRecoveryNeeded {
            droplet: "web2".into(),
            cluster_size: 2,
        },
    );
    assert_eq!(m.subject, "[x] Manual recovery needed for web2");
    assert!(m.body.contains("only 2 droplets") && m.body.contains("infractl recover web2"));
}

#[test]
fn a_heartbeat_lists_members_leader_recoveries_and_releases() {
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    let s = HeartbeatSummary {
        cluster_id: "c1".into(),
        at,
        window_minutes: 15,
        alive: vec!["master".into(), "blog-web1".into()],
        failed: vec!["blog-web2".into()],
        leader: Some("master".into()),
        recoveries: vec![RecoveryLine {
            droplet: "blog-web1".into(),
            at,
        }],
        releases: vec![LiveRelease {
            project: "blog".into(),
            env: "prod".into(),
            tag: "v7".into(),
        }],
    };
    let m = render_heartbeat("[infra]", &s);
    assert_eq!(m.subject, "[infra] Heartbeat c1: 2 alive, 1 failed");
    for line in [
        "Leader: master",
        "Members alive (2): master, blog-web1",
        "Members failed (1): blog-web2",
        "Recoveries in the last 15 minutes: 1",
        "  - blog-web1 at 2026-11-25T12:00:00+00:00",
        "  - blog/prod: v7",
    ] {
        assert!(m.body.contains(line), "missing {line:?} in\n{}", m.body);
    }
    let healthy = HeartbeatSummary {
        failed: vec![],
        leader: None,
        ..s
    };
    let m = render_heartbeat("", &healthy);
    assert_eq!(m.subject, "Heartbeat c1: 2 alive, healthy");
    assert!(m.body.contains("Leader: none") && m.body.contains("Members failed (0): none"));
}

#[test]
fn a_deploy_confirmation_names_project_env_and_tag() {
    let m = render_deploy(
        "[infra]",
        &DeployConfirmation {
            project: "blog".into(),
            env: "prod".into(),
            tag: "v8".into(),
        },
    );
    assert_eq!(m.subject, "[infra] Deployed blog/prod v8");
    assert_eq!(m.body, "Release v8 of project blog is live in prod.\n");
}

#[test]
fn backoff_doubles_and_is_capped() {
    let r = Retry {
        attempts: 5,
        first_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(5),
    };
    let got: Vec<_> = (1..=4).map(|n| r.backoff(n).as_secs()).collect();
    assert_eq!(got, vec![2, 4, 5, 5]);
}

#[test]
fn the_summary_reads_failures_recoveries_and_live_releases() {
    use crate::state::{ClusterState, ConfirmedFailure, Recovery, RecoveryPhase};
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
    let ms = |m: i64| (now - chrono::Duration::minutes(m)).timestamp_millis() as u64;
    let mut st = ClusterState::default();
    let fail = |name: &str, generation| ConfirmedFailure {
        name: name.into(),
        generation,
        confirmed_at_ms: ms(30),
        term: 1,
    };
    let rec: Recovery = serde_json::from_value(serde_json::json!({
        "name": "web1", "generation": 1, "phase": {"step": "done"}, "started_at_ms": ms(12),
        "finished_at_ms": ms(10), "fencing": {"term": 1, "index": 1}, "history": []
    }))
    .unwrap_or_else(|e| panic!("recovery json: {e}"));
    st.failures.insert("web1".into(), fail("web1", 1));
    st.failures.insert("web2".into(), fail("web2", 1));
    let mut old = rec.clone();
    old.name = "web3".into();
    old.finished_at_ms = Some(ms(60));
    st.failures.insert("web3".into(), fail("web3", 1));
    st.recoveries.insert("web1".into(), rec);
    st.recoveries.insert("web3".into(), old);
    assert_eq!(st.recoveries["web1"].phase, RecoveryPhase::Done);
    st.live_releases.insert("blog/prod".into(), "v2".into());
    let s = summarize("c1", &st, Some("master".into()), now, 15);
    assert_eq!(s.failed, vec!["web2"]);
    assert_eq!(s.alive, vec!["web1", "web3"]);
    assert_eq!(s.recoveries.len(), 1);
    assert_eq!(s.recoveries[0].droplet, "web1");
    assert_eq!(
        s.releases,
        vec![LiveRelease {
            project: "blog".into(),
            env: "prod".into(),
            tag: "v2".into()
        }]
    );
}
