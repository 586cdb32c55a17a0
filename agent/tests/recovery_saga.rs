//! The recovery saga against the real infra-sim: rebuild in place, replacement
//! when the rebuild fails, base image when there is no snapshot, and a leader
//! that dies mid-saga.

mod recovery_env;

use std::time::Instant;

use async_trait::async_trait;
use infra_agent::provider::{CloudProvider, DropletStatus};
use infra_agent::recovery::{
    Fence, MemorySagaLog, Notice, Progress, RecoveryError, Replacement, SagaLog, SagaLogError,
    SagaRecord, SourceImage, Step, run_saga,
};
use infra_sim::Fault;
use recovery_env::*;

/// A leader that loses its log (and so stops) right after a step of kind `step` ran.
struct DiesAfter<'a> {
    inner: &'a MemorySagaLog,
    step: Step,
}

#[async_trait]
impl SagaLog for DiesAfter<'_> {
    async fn commit(&self, record: &SagaRecord) -> Result<(), SagaLogError> {
        if record.at == Some((self.step, Progress::Finished)) {
            return Err(SagaLogError::Unavailable("leader lost its quorum".into()));
        }
        self.inner.commit(record).await
    }
}

fn steps_committed(log: &MemorySagaLog) -> Vec<(Step, Progress)> {
    log.records().iter().filter_map(|r| r.at).collect()
}

#[tokio::test]
async fn droplet_with_snapshot_is_rebuilt_in_place() {
    let env = Env::start().await;
    let old = env.droplet("web1", &[]).await;
    let snap = env.snapshot(old, &now_name("web1")).await;
    let ip_before = env.client.get_droplet(old).await.unwrap().public_ipv4;
    let fx = Fixture::new();
    fx.joins.mark_joined("web1", 5);
    env.sim().clear_requests();

    let started = Instant::now();
    let out = run_saga(saga("web1", 4, old, token(3, 17)), fx.ctx(&env, &fx.log))
        .await
        .expect("saga succeeds");
    eprintln!(
        "saga (rebuild in place, instant profile): {:?}",
        started.elapsed()
    );

    assert_eq!(out.droplet_id, old, "rebuilt in place");
    assert_eq!(out.generation, 5);
    assert_eq!(out.fence, Fence::PoweredOff);
    assert_eq!(
        out.replacement,
        Replacement::RebuildInPlace {
            droplet_id: old,
            image: SourceImage::Snapshot { id: snap }
        }
    );
    let d = env.client.get_droplet(old).await.unwrap();
    assert_eq!(d.status, DropletStatus::Active);
    assert_eq!(d.image_id, Some(snap));
    assert_eq!(d.public_ipv4, ip_before, "keeps its IP");
    assert_eq!(out.ip, ip_before);
    assert!(
        d.tags.contains(&"infra-fence:3-17".to_string()),
        "{:?}",
        d.tags
    );

    let reqs = env.requests();
    assert_eq!(actions(&reqs, "power_off"), 1);
    assert_eq!(actions(&reqs, "rebuild"), 1);
    assert_eq!(creates(&reqs), 0);
    assert!(deletes(&reqs).is_empty(), "{:?}", deletes(&reqs));
    let power_off_at = reqs.iter().position(|r| {
        r.request_body
            .as_ref()
            .is_some_and(|b| b["type"] == "power_off")
    });
    let rebuild_at = reqs.iter().position(|r| {
        r.request_body
            .as_ref()
            .is_some_and(|b| b["type"] == "rebuild")
    });
    assert!(power_off_at < rebuild_at, "fenced before the rebuild");

    // Each step committed before and after it ran, in order.
    let expected: Vec<_> = Step::ALL
        .iter()
        .flat_map(|s| [(*s, Progress::Started), (*s, Progress::Finished)])
        .collect();
    assert_eq!(steps_committed(&fx.log), expected);
    let e = fx.effects.state();
    assert_eq!(
        e.journal,
        vec![
            "remove_target web1",
            "forget_incarnation web1",
            "place_services web1 5",
            "add_target web1"
        ]
    );
    assert_eq!(
        e.placements["web1"],
        (5, false),
        "from a snapshot: no redeploy"
    );
    assert_eq!(e.targets["web1"], ip_before);
    assert_eq!(fx.notifier.notices(), vec![Notice::Recovered(out)]);
    env.stop().await;
}

#[tokio::test]
async fn failed_rebuild_creates_a_replacement_and_destroys_the_old_droplet() {
    let env = Env::start().await;
    let old = env.droplet("web1", &[]).await;
    let snap = env.snapshot(old, &now_name("web1")).await;
    env.sim().add_fault(Fault::ActionError {
        action_type: "rebuild".into(),
        count: 1,
    });
    let fx = Fixture::new();
    fx.joins.mark_joined("web1", 2);
    env.sim().clear_requests();

    let out = run_saga(saga("web1", 1, old, token(1, 5)), fx.ctx(&env, &fx.log))
        .await
        .expect("saga succeeds");

    assert_ne!(out.droplet_id, old);
    assert_eq!(
        out.replacement,
        Replacement::Create {
            image: SourceImage::Snapshot { id: snap }
        }
    );
    assert!(out.old_destroyed);
    let new = env.client.get_droplet(out.droplet_id).await.unwrap();
    assert_eq!(
        (new.name.as_str(), new.status),
        ("web1", DropletStatus::Active)
    );
    assert_eq!(new.image_id, Some(snap));
    assert!(new.tags.contains(&"infra-fence:1-5".to_string()));
    assert!(new.tags.contains(&"infra-op:fence:1-5".to_string()));
    assert!(
        env.client
            .get_droplet(old)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let reqs = env.requests();
    assert_eq!((creates(&reqs), actions(&reqs, "rebuild")), (1, 1));
    assert_eq!(deletes(&reqs), vec![format!("/v2/droplets/{old}")]);
    env.stop().await;
}

#[tokio::test]
async fn no_snapshot_and_failed_power_off_destroy_then_create_from_base_image() {
    let env = Env::start().await;
    let old = env.droplet("web2", &[]).await;
    env.sim().add_fault(Fault::ActionError {
        action_type: "power_off".into(),
        count: 1,
    });
    let fx = Fixture::new();
    fx.joins.mark_joined("web2", 1);
    env.sim().clear_requests();

    let out = run_saga(saga("web2", 0, old, token(2, 2)), fx.ctx(&env, &fx.log))
        .await
        .expect("saga succeeds");

    assert_eq!(out.fence, Fence::Destroyed);
    assert_eq!(
        out.replacement,
        Replacement::Create {
            image: SourceImage::Base {
                slug: BASE_IMAGE.into()
            }
        }
    );
    assert!(
        !out.old_destroyed,
        "fencing already destroyed it; step g has nothing to do"
    );
    let reqs = env.requests();
    assert_eq!(
        deletes(&reqs),
        vec![format!("/v2/droplets/{old}")],
        "destroyed once"
    );
    assert_eq!(creates(&reqs), 1);
    assert_eq!(
        fx.effects.state().placements["web2"],
        (1, true),
        "base image: redeploy"
    );
    env.stop().await;
}

/// Runs a saga whose leader dies right after step c, then resumes it from the log's
/// last record with a new leader's token: still exactly one create or rebuild.
async fn leader_dies_after_replace(rebuild_fails: bool) {
    let env = Env::start().await;
    let old = env.droplet("web1", &[]).await;
    env.snapshot(old, &now_name("web1")).await;
    if rebuild_fails {
        env.sim().add_fault(Fault::ActionError {
            action_type: "rebuild".into(),
            count: 1,
        });
    }
    let fx = Fixture::new();
    fx.joins.mark_joined("web1", 8);
    env.sim().clear_requests();

    let dying = DiesAfter {
        inner: &fx.log,
        step: Step::Replace,
    };
    let err = run_saga(saga("web1", 7, old, token(4, 40)), fx.ctx(&env, &dying))
        .await
        .expect_err("the old leader stops");
    assert!(
        matches!(
            err,
            RecoveryError::Log {
                step: Step::Replace,
                ..
            }
        ),
        "{err}"
    );
    let mut last = fx.log.last("web1").expect("records");
    assert_eq!(last.at, Some((Step::Replace, Progress::Started)));
    assert_eq!(
        creates(&env.requests()) + actions(&env.requests(), "rebuild"),
        if rebuild_fails { 2 } else { 1 }
    );

    last.take_over(token(5, 51)).unwrap();
    let out = run_saga(last, fx.ctx(&env, &fx.log))
        .await
        .expect("the new leader finishes");
    let reqs = env.requests();
    assert_eq!(actions(&reqs, "rebuild"), 1, "never rebuilt twice");
    assert_eq!(
        creates(&reqs),
        usize::from(rebuild_fails),
        "never created twice"
    );
    let named: Vec<_> = env
        .client
        .list_droplets(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.name == "web1")
        .collect();
    assert_eq!(named.len(), 1, "one droplet carries the name: {named:?}");
    assert_eq!(named[0].id, out.droplet_id);
    assert_eq!(named[0].status, DropletStatus::Active);
    // Step c is finished under the new token; it was not started again.
    let after: Vec<_> = fx
        .log
        .records()
        .into_iter()
        .filter(|r| r.token == token(5, 51))
        .filter_map(|r| r.at)
        .collect();
    assert_eq!(after.first(), Some(&(Step::Replace, Progress::Finished)));
    // The old leader can no longer commit.
    let mut stale = fx.log.last("web1").unwrap();
    stale.token = token(4, 40);
    assert!(matches!(
        fx.log.commit(&stale).await,
        Err(SagaLogError::Stale { .. })
    ));
    env.stop().await;
}

#[tokio::test]
async fn leader_dies_mid_saga_rebuild_is_not_repeated() {
    leader_dies_after_replace(false).await;
}

#[tokio::test]
async fn leader_dies_mid_saga_create_is_not_repeated() {
    leader_dies_after_replace(true).await;
}

/// The leader crashes (its task is dropped) while the rebuild action is still running at
/// the provider (fast profile: actions take time); the next leader adopts that action.
#[tokio::test]
async fn leader_crashes_during_a_running_rebuild_and_the_next_adopts_it() {
    let env = Env::start_with(infra_sim::SimConfig {
        profile: infra_sim::Profile::Fast,
        time_scale: 4.0,
        ..infra_sim::SimConfig::default()
    })
    .await;
    let old = env.droplet("web1", &[]).await;
    let snap = env.snapshot(old, &now_name("web1")).await;
    let fx = Fixture::new();
    fx.joins.mark_joined("web1", 3);
    env.sim().clear_requests();

    let started = std::time::Instant::now();
    let crashed_at = {
        let run = run_saga(saga("web1", 2, old, token(6, 60)), fx.ctx(&env, &fx.log));
        tokio::pin!(run);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            tokio::select! {
                r = &mut run => panic!("the saga ended before the crash point: {r:?}"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
            }
            if actions(&env.requests(), "rebuild") == 1 {
                break started.elapsed();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no rebuild within 20 s"
            );
        }
    };
    let mut last = fx.log.last("web1").unwrap();
    assert_eq!(last.at, Some((Step::Replace, Progress::Started)));
    let running = env.client.list_droplet_actions(old).await.unwrap();
    assert!(
        running
            .iter()
            .any(|a| a.kind == "rebuild"
                && a.status == infra_agent::provider::ActionStatus::InProgress),
        "the crash happened while the rebuild ran: {running:?}"
    );

    last.take_over(token(7, 61)).unwrap();
    let out = run_saga(last, fx.ctx(&env, &fx.log))
        .await
        .expect("resumes");
    eprintln!(
        "saga (fast profile x4): crash after {crashed_at:?}, total {:?}",
        started.elapsed()
    );
    assert_eq!(out.droplet_id, old);
    let reqs = env.requests();
    assert_eq!(
        actions(&reqs, "rebuild"),
        1,
        "the running rebuild was adopted"
    );
    assert_eq!(actions(&reqs, "power_off"), 1);
    assert_eq!(creates(&reqs), 0);
    let d = env.client.get_droplet(old).await.unwrap();
    assert_eq!((d.status, d.image_id), (DropletStatus::Active, Some(snap)));
    env.stop().await;
}

/// A create that ends `errored` is destroyed, the saga stops at step c, and a rerun
/// creates again: the broken droplet is never adopted.
#[tokio::test]
async fn errored_create_is_destroyed_and_never_adopted() {
    let env = Env::start().await;
    let gone = env.droplet("web1", &[]).await;
    env.snapshot(gone, &now_name("web1")).await;
    env.client.delete_droplet(gone).await.unwrap();
    env.sim().add_fault(Fault::ActionError {
        action_type: "create".into(),
        count: 1,
    });
    let fx = Fixture::new();
    fx.joins.mark_joined("web1", 1);
    env.sim().clear_requests();
    let s = infra_agent::recovery::SagaRecord::open(
        "web1",
        0,
        None,
        template(),
        token(2, 20),
        chrono::Utc::now(),
    );
    let err = run_saga(s, fx.ctx(&env, &fx.log))
        .await
        .expect_err("create errors");
    assert!(
        matches!(
            err,
            RecoveryError::Provider {
                step: Step::Replace,
                ..
            }
        ),
        "{err}"
    );
    let reqs = env.requests();
    assert_eq!(creates(&reqs), 1);
    assert_eq!(deletes(&reqs).len(), 1, "the broken droplet is destroyed");

    let mut last = fx.log.last("web1").unwrap();
    assert_eq!(last.at, Some((Step::Replace, Progress::Started)));
    last.take_over(token(2, 21)).unwrap();
    let out = run_saga(last, fx.ctx(&env, &fx.log)).await.expect("rerun");
    assert_eq!(out.fence, Fence::AlreadyGone);
    assert_eq!(creates(&env.requests()), 2);
    let named: Vec<_> = env
        .client
        .list_droplets(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.name == "web1")
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(
        (named[0].id, named[0].status),
        (out.droplet_id, DropletStatus::Active)
    );
    env.stop().await;
}
