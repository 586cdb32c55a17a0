//! Unit tests of the pure recovery policies.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::policy::*;

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
}

fn facts(history: &[DateTime<Utc>]) -> AdmissionFacts<'_> {
    AdmissionFacts {
        quorum_confirmed: true,
        manual: false,
        saga_open: false,
        cluster_size: 5,
        history,
        now: t(10, 0),
    }
}

#[test]
fn admission_requires_quorum_or_operator() {
    let p = RecoveryPolicy::default();
    assert_eq!(admit(&p, &facts(&[])), Admission::Start);
    let f = AdmissionFacts {
        quorum_confirmed: false,
        ..facts(&[])
    };
    assert_eq!(admit(&p, &f), Admission::NotConfirmed);
    let f = AdmissionFacts {
        quorum_confirmed: false,
        manual: true,
        ..facts(&[])
    };
    assert_eq!(admit(&p, &f), Admission::Start);
}

#[test]
fn one_saga_per_droplet() {
    let f = AdmissionFacts {
        saga_open: true,
        manual: true,
        ..facts(&[])
    };
    assert_eq!(
        admit(&RecoveryPolicy::default(), &f),
        Admission::AlreadyRunning
    );
}

#[test]
fn fourth_recovery_within_an_hour_is_flapping() {
    let p = RecoveryPolicy::default();
    let three = [t(9, 10), t(9, 30), t(9, 50)];
    assert_eq!(admit(&p, &facts(&three[..2])), Admission::Start);
    assert_eq!(admit(&p, &facts(&three)), Admission::Flapping { count: 3 });
    // Even an operator cannot restart a flapping droplet by accident.
    let f = AdmissionFacts {
        manual: true,
        ..facts(&three)
    };
    assert_eq!(admit(&p, &f), Admission::Flapping { count: 3 });
    // The oldest one leaves the window exactly one hour later.
    let old = [t(9, 0), t(9, 30), t(9, 50)];
    assert_eq!(admit(&p, &facts(&old)), Admission::Start);
    assert_eq!(recent_recoveries(&old, t(10, 0), Duration::hours(1)), 2);
    // Configurable.
    let p5 = RecoveryPolicy {
        max_recoveries: 5,
        ..RecoveryPolicy::default()
    };
    assert_eq!(admit(&p5, &facts(&three)), Admission::Start);
}

#[test]
fn small_cluster_waits_for_the_operator() {
    let p = RecoveryPolicy::default();
    let f = AdmissionFacts {
        cluster_size: 2,
        ..facts(&[])
    };
    assert_eq!(admit(&p, &f), Admission::ManualOnly { cluster_size: 2 });
    let f = AdmissionFacts {
        cluster_size: 2,
        manual: true,
        ..facts(&[])
    };
    assert_eq!(admit(&p, &f), Admission::Start);
    let f = AdmissionFacts {
        cluster_size: 3,
        ..facts(&[])
    };
    assert_eq!(admit(&p, &f), Admission::Start);
}

#[test]
fn snapshot_schedule() {
    let day = Duration::days(1);
    assert!(snapshot_due(None, t(10, 0), day));
    assert!(!snapshot_due(Some(t(9, 0)), t(10, 0), day));
    assert!(snapshot_due(Some(t(10, 0) - day), t(10, 0), day));
    assert!(snapshot_due(Some(t(9, 0)), t(10, 0), Duration::hours(1)));
}

#[test]
fn snapshot_names_round_trip() {
    let at = Utc.with_ymd_and_hms(2026, 1, 5, 7, 3, 59).unwrap();
    let name = snapshot_name("shop-web1", at);
    assert_eq!(name, "shop-web1-20260105-0703");
    let (d, when) = parse_snapshot_name(&name).unwrap();
    assert_eq!(d, "shop-web1");
    assert_eq!(when, Utc.with_ymd_and_hms(2026, 1, 5, 7, 3, 0).unwrap());
    assert_eq!(parse_snapshot_name("golden"), None);
    assert_eq!(parse_snapshot_name("-20260105-0703"), None);
    assert_eq!(parse_snapshot_name("web-20261305-0703"), None, "month 13");
    assert_eq!(parse_snapshot_name("web-1764000000"), None);
    assert_eq!(parse_snapshot_name("wébé-20260105-0703").unwrap().0, "wébé");
}

fn snap(id: u64, name: &str, at: DateTime<Utc>) -> SnapshotInfo {
    SnapshotInfo {
        id,
        name: name.into(),
        created_at: at,
    }
}

fn snaps() -> Vec<SnapshotInfo> {
    let mut v = Vec::new();
    for (i, m) in [0u32, 10, 20, 30, 40].iter().enumerate() {
        let at = t(8, *m);
        v.push(snap(i as u64 + 1, &snapshot_name("web1", at), at));
        v.push(snap(i as u64 + 11, &snapshot_name("web12", at), at));
    }
    v.push(snap(99, "golden", t(1, 0)));
    v
}

#[test]
fn retention_keeps_the_newest_per_droplet_only() {
    let all = snaps();
    let ids = |v: Vec<&SnapshotInfo>| v.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(retention_deletes(&all, "web1", 3)), vec![1, 2]);
    assert_eq!(ids(retention_deletes(&all, "web12", 3)), vec![11, 12]);
    assert_eq!(ids(retention_deletes(&all, "web1", 5)), Vec::<u64>::new());
    assert_eq!(ids(retention_deletes(&all, "web1", 0)), vec![1, 2, 3, 4, 5]);
    assert_eq!(ids(retention_deletes(&all, "golden", 0)), Vec::<u64>::new());
    assert_eq!(ids(retention_deletes(&all, "web", 0)), Vec::<u64>::new());
}

#[test]
fn cleanup_lists_unknown_system_droplets_and_surplus_snapshots() {
    let d = |id, name: &str, tags: &[&str]| CloudDroplet {
        id,
        name: name.into(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
    };
    let droplets = vec![
        d(1, "web1", &["infra-managed"]),
        d(2, "web1", &["infra-managed", "infra-fence:3-9"]),
        d(3, "stray", &["infra-managed"]),
        d(4, "foreign", &["other"]),
    ];
    let known = KnownState {
        droplet_ids: BTreeSet::from([1]),
        open_saga_tags: BTreeSet::from(["infra-fence:3-9".to_string()]),
    };
    let plan = plan_cleanup("infra-managed", &droplets, &snaps(), &known, 3);
    assert_eq!(
        plan,
        vec![
            Deletion::Droplet {
                id: 3,
                name: "stray".into()
            },
            Deletion::Snapshot {
                id: 1,
                name: "web1-20261125-0800".into()
            },
            Deletion::Snapshot {
                id: 2,
                name: "web1-20261125-0810".into()
            },
            Deletion::Snapshot {
                id: 11,
                name: "web12-20261125-0800".into()
            },
            Deletion::Snapshot {
                id: 12,
                name: "web12-20261125-0810".into()
            },
        ]
    );
}

#[test]
fn scheduled_snapshots_are_due_per_droplet() {
    let all = snaps();
    let latest = latest_snapshots(&all);
    assert_eq!(latest["web1"], t(8, 40));
    assert_eq!(latest["web12"], t(8, 40));
    assert!(!latest.contains_key("golden"));
    let due = snapshots_due(
        &["web1", "web12", "db1"],
        &latest,
        t(9, 0),
        Duration::days(1),
    );
    assert_eq!(due, vec!["db1"]);
    let due = snapshots_due(&["web1", "db1"], &latest, t(9, 40), Duration::hours(1));
    assert_eq!(due, vec!["web1", "db1"]);
}
