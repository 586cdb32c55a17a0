//! Admission and waiting against the real infra-sim: flapping droplets stay
//! down, small clusters and unconfirmed failures are not recovered, and a saga
//! waits for the replacement's agent to join (and resumes at that step).

mod recovery_env;

use infra_agent::recovery::{
    Admission, AdmissionFacts, Notice, Progress, RecoveryError, RecoveryPolicy, RunResult, Step,
    admit_and_run, run_saga,
};
use recovery_env::*;

#[tokio::test]
async fn saga_waits_for_the_agent_to_join_and_resumes_there() {
    let env = Env::start().await;
    let old = env.droplet("web1", &[]).await;
    env.snapshot(old, &now_name("web1")).await;
    let mut fx = Fixture::new();
    fx.timing.join_timeout = std::time::Duration::from_millis(200);
    let err = run_saga(saga("web1", 1, old, token(1, 1)), fx.ctx(&env, &fx.log))
        .await
        .expect_err("the agent never joins");
    assert!(
        matches!(
            err,
            RecoveryError::Timeout {
                step: Step::AwaitJoin,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        fx.effects.state().placements.is_empty(),
        "nothing placed before the join"
    );
    let mut last = fx.log.last("web1").unwrap();
    assert_eq!(last.at, Some((Step::AwaitJoin, Progress::Started)));

    fx.joins.mark_joined("web1", 2);
    env.sim().clear_requests();
    last.take_over(token(1, 9)).unwrap();
    let out = run_saga(last, fx.ctx(&env, &fx.log))
        .await
        .expect("resumes");
    assert_eq!(out.droplet_id, old);
    let reqs = env.requests();
    assert_eq!(
        actions(&reqs, "rebuild") + actions(&reqs, "power_off") + creates(&reqs),
        0
    );
    env.stop().await;
}

#[tokio::test]
async fn fourth_recovery_within_an_hour_is_refused_and_flagged() {
    let env = Env::start().await;
    let id = env.droplet("web1", &[]).await;
    env.snapshot(id, &now_name("web1")).await;
    let fx = Fixture::new();
    let policy = RecoveryPolicy::default();
    let mut history = Vec::new();
    for generation in 0..3u64 {
        fx.joins.mark_joined("web1", generation + 1);
        let facts = AdmissionFacts {
            quorum_confirmed: true,
            manual: false,
            saga_open: false,
            cluster_size: 3,
            history: &history,
            now: chrono::Utc::now(),
        };
        let s = saga("web1", generation, id, token(1, 10 + generation));
        let r = admit_and_run(&policy, &facts, s, fx.ctx(&env, &fx.log))
            .await
            .unwrap();
        assert!(matches!(r, RunResult::Recovered(_)), "{r:?}");
        history.push(facts.now);
    }
    env.sim().clear_requests();
    let facts = AdmissionFacts {
        quorum_confirmed: true,
        manual: false,
        saga_open: false,
        cluster_size: 3,
        history: &history,
        now: chrono::Utc::now(),
    };
    let records = fx.log.records().len();
    let r = admit_and_run(
        &policy,
        &facts,
        saga("web1", 3, id, token(1, 20)),
        fx.ctx(&env, &fx.log),
    )
    .await
    .unwrap();
    assert_eq!(r, RunResult::Refused(Admission::Flapping { count: 3 }));
    assert!(env.requests().is_empty(), "left down: no cloud call");
    assert_eq!(fx.log.records().len(), records, "no saga opened");
    assert_eq!(
        fx.notifier.notices().last(),
        Some(&Notice::Flapping {
            droplet: "web1".into(),
            count: 3
        })
    );
    env.stop().await;
}

#[tokio::test]
async fn small_cluster_and_unconfirmed_failures_are_not_recovered() {
    let env = Env::start().await;
    let id = env.droplet("web1", &[]).await;
    let fx = Fixture::new();
    env.sim().clear_requests();
    let base = AdmissionFacts {
        quorum_confirmed: true,
        manual: false,
        saga_open: false,
        cluster_size: 2,
        history: &[],
        now: chrono::Utc::now(),
    };
    let policy = RecoveryPolicy::default();
    let r = admit_and_run(
        &policy,
        &base,
        saga("web1", 0, id, token(1, 1)),
        fx.ctx(&env, &fx.log),
    )
    .await
    .unwrap();
    assert_eq!(
        r,
        RunResult::Refused(Admission::ManualOnly { cluster_size: 2 })
    );
    let unconfirmed = AdmissionFacts {
        quorum_confirmed: false,
        cluster_size: 5,
        ..base.clone()
    };
    let r = admit_and_run(
        &policy,
        &unconfirmed,
        saga("web1", 0, id, token(1, 2)),
        fx.ctx(&env, &fx.log),
    )
    .await
    .unwrap();
    assert_eq!(r, RunResult::Refused(Admission::NotConfirmed));
    assert!(env.requests().is_empty());
    assert!(fx.log.records().is_empty());
    assert_eq!(
        fx.notifier.notices(),
        vec![Notice::ManualRecoveryNeeded {
            droplet: "web1".into(),
            cluster_size: 2
        }]
    );
    // `infractl recover` on the small cluster.
    fx.joins.mark_joined("web1", 1);
    let manual = AdmissionFacts {
        manual: true,
        ..base
    };
    let r = admit_and_run(
        &policy,
        &manual,
        saga("web1", 0, id, token(1, 3)),
        fx.ctx(&env, &fx.log),
    )
    .await
    .unwrap();
    assert!(matches!(r, RunResult::Recovered(_)), "{r:?}");
    env.stop().await;
}
