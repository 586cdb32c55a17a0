//! Snapshots, retention and cleanup against the real infra-sim.

mod recovery_env;

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use infra_agent::provider::CloudProvider;
use infra_agent::recovery::{
    Deletion, KnownState, SYSTEM_TAG, apply_retention, parse_snapshot_name, run_cleanup,
    snapshot_droplet, snapshot_name,
};
use recovery_env::*;

fn at(minute: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 3, minute, 0).unwrap()
}

#[tokio::test]
async fn scheduled_snapshot_is_named_after_the_droplet_and_time() {
    let env = Env::start().await;
    let id = env.droplet("shop-web1", &[]).await;
    let now = Utc::now();
    let run = snapshot_droplet(&env.client, "shop-web1", id, now)
        .await
        .unwrap();
    assert_eq!(run.name, snapshot_name("shop-web1", now));
    let snaps = env.client.list_droplet_snapshots(id).await.unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].name, run.name);
    let (droplet, when) = parse_snapshot_name(&snaps[0].name).unwrap();
    assert_eq!(droplet, "shop-web1");
    assert!((now - when).num_seconds() < 60);
    env.stop().await;
}

#[tokio::test]
async fn retention_deletes_only_beyond_n_and_only_that_droplets() {
    let env = Env::start().await;
    let web1 = env.droplet("web1", &[]).await;
    let web2 = env.droplet("web2", &[]).await;
    let mut web1_snaps = Vec::new();
    for m in 0..5 {
        web1_snaps.push(env.snapshot(web1, &snapshot_name("web1", at(m))).await);
    }
    let web2_snaps = [
        env.snapshot(web2, &snapshot_name("web2", at(0))).await,
        env.snapshot(web2, &snapshot_name("web2", at(1))).await,
    ];
    let golden = env.snapshot(web1, "golden").await;
    env.sim().clear_requests();

    let deleted = apply_retention(&env.client, "web1", 3).await.unwrap();
    let ids: Vec<u64> = deleted.iter().map(|s| s.id).collect();
    assert_eq!(ids, web1_snaps[..2].to_vec(), "the two oldest of web1");
    let expected: Vec<String> = ids.iter().map(|i| format!("/v2/snapshots/{i}")).collect();
    assert_eq!(deletes(&env.requests()), expected);
    let left: BTreeSet<u64> = env
        .client
        .list_snapshots()
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    let mut want: BTreeSet<u64> = web1_snaps[2..].iter().copied().collect();
    want.extend(web2_snaps);
    want.insert(golden);
    assert_eq!(left, want);

    // Applying it again deletes nothing.
    env.sim().clear_requests();
    assert!(
        apply_retention(&env.client, "web1", 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(deletes(&env.requests()).is_empty());
    env.stop().await;
}

#[tokio::test]
async fn cleanup_dry_run_deletes_nothing_and_a_real_run_exactly_the_list() {
    let env = Env::start().await;
    let web1 = env.droplet("web1", &[]).await;
    let stray = env.droplet("stray", &[]).await;
    let in_saga = env.droplet("web9", &["infra-fence:7-70"]).await;
    let foreign = env.droplet_tagged("foreign", &["someone-else"]).await;
    let mut snaps = Vec::new();
    for m in 0..4 {
        snaps.push(env.snapshot(web1, &snapshot_name("web1", at(m))).await);
    }
    let known = KnownState {
        droplet_ids: BTreeSet::from([web1]),
        open_saga_tags: BTreeSet::from(["infra-fence:7-70".to_string()]),
    };
    env.sim().clear_requests();

    let dry = run_cleanup(&env.client, SYSTEM_TAG, &known, 3, true)
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert!(dry.deleted.is_empty());
    assert_eq!(
        dry.planned,
        vec![
            Deletion::Droplet {
                id: stray,
                name: "stray".into()
            },
            Deletion::Snapshot {
                id: snaps[0],
                name: snapshot_name("web1", at(0))
            },
        ]
    );
    let reqs = env.requests();
    assert!(
        reqs.iter().all(|r| r.method == "GET"),
        "dry run only reads: {:?}",
        deletes(&reqs)
    );

    let real = run_cleanup(&env.client, SYSTEM_TAG, &known, 3, false)
        .await
        .unwrap();
    assert_eq!(real.planned, dry.planned);
    assert_eq!(real.deleted, real.planned);
    let mut dels = deletes(&env.requests());
    dels.sort();
    let mut want = vec![
        format!("/v2/droplets/{stray}"),
        format!("/v2/snapshots/{}", snaps[0]),
    ];
    want.sort();
    assert_eq!(dels, want);
    let ids: BTreeSet<u64> = env
        .client
        .list_droplets(None)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, BTreeSet::from([web1, in_saga, foreign]));
    assert_eq!(env.client.list_snapshots().await.unwrap().len(), 3);
    env.stop().await;
}

#[tokio::test]
async fn schedule_snapshots_only_due_droplets_and_keeps_the_newest_n() {
    let env = Env::start().await;
    let web1 = env.droplet("web1", &[]).await;
    let web2 = env.droplet("web2", &[]).await;
    // web1 was snapshotted three times already, the last one just now; web2 never.
    let mut old = Vec::new();
    for m in 0..3 {
        old.push(env.snapshot(web1, &snapshot_name("web1", at(m))).await);
    }
    let policy = infra_agent::recovery::RecoveryPolicy::default();
    let now = Utc::now();
    let runs = infra_agent::recovery::run_snapshot_schedule(
        &env.client,
        &[("web1", web1), ("web2", web2)],
        &policy,
        now,
    )
    .await
    .unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec![snapshot_name("web2", now)], "web1 is not due");

    // A day later both are due; web1 then has 4 and retention drops its oldest.
    env.sim().clear_requests();
    let later = now + chrono::Duration::days(1);
    let runs = infra_agent::recovery::run_snapshot_schedule(
        &env.client,
        &[("web1", web1), ("web2", web2)],
        &policy,
        later,
    )
    .await
    .unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        deletes(&env.requests()),
        vec![format!("/v2/snapshots/{}", old[0])]
    );
    let left = env.client.list_droplet_snapshots(web1).await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|s| s.id != old[0]));
    env.stop().await;
}
