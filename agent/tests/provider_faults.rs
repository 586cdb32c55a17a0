//! The DigitalOcean client against the simulator under faults: 429 with
//! `retry-after`, 5xx retries, lost create answers, errored actions, a wrong
//! token, pending events and client-side pacing. Every exchange is checked
//! against the OpenAPI subset.

#[path = "support/do_spec.rs"]
mod do_spec;
#[path = "support/sim_env.rs"]
mod sim_env;

use std::time::{Duration, Instant};

use infra_agent::provider::{
    ActionStatus, CloudProvider, DropletAction, DropletStatus, OperationId, ProviderError,
};
use infra_sim::{Fault, Profile, SimConfig};
use sim_env::{SimEnv, TOKEN, create_req, target};

#[tokio::test]
async fn status_429_waits_for_retry_after() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    env.sim().add_fault(Fault::Status {
        target: target("GET", "/v2/account"),
        status: 429,
        count: 1,
        retry_after_secs: Some(1),
    });
    let start = Instant::now();
    c.account().await.unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(950), "waited only {took:?}");
    let statuses: Vec<u16> = env.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200]);
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    env.sim().add_fault(Fault::Status {
        target: target("GET", "/v2/account"),
        status: 503,
        count: 2,
        retry_after_secs: None,
    });
    c.account().await.unwrap();
    assert_eq!(env.count("GET", "/v2/account"), 3);

    env.sim().clear_requests();
    env.sim().add_fault(Fault::Status {
        target: target("GET", "/v2/account"),
        status: 500,
        count: 10,
        retry_after_secs: None,
    });
    let e = c.account().await.unwrap_err();
    assert!(
        matches!(e, ProviderError::RetriesExhausted { attempts: 5, .. }),
        "{e}"
    );
    assert_eq!(e.status(), Some(500));
    assert_eq!(env.count("GET", "/v2/account"), 5, "1 try + 4 retries");
    env.sim().reset_faults();

    env.sim().clear_requests();
    env.sim().add_fault(Fault::Status {
        target: target("GET", "/v2/account"),
        status: 501,
        count: 1,
        retry_after_secs: None,
    });
    let e = c.account().await.unwrap_err();
    assert_eq!(e.status(), Some(501));
    assert_eq!(env.count("GET", "/v2/account"), 1, "501 is not retried");
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn dropped_create_response_still_makes_exactly_one_droplet() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    env.sim().add_fault(Fault::DropResponse {
        target: target("POST", "/v2/droplets"),
        count: 1,
    });
    let mut req = create_req(&["once-1"]);
    req.operation_id = Some(OperationId::new("op-once").unwrap());
    let created = c.create_droplets(&req).await.unwrap();
    assert_eq!(created.droplets.len(), 1);
    assert_eq!(created.droplets[0].name, "once-1");
    assert_eq!(created.action_ids.len(), 1, "create action recovered");
    let all = c.list_droplets(None).await.unwrap();
    assert_eq!(all.len(), 1, "exactly one droplet: {all:?}");
    assert_eq!(env.count("POST", "/v2/droplets"), 1, "no second POST");
    c.wait_action(created.action_ids[0]).await.unwrap();

    // The same operation again (a new leader resuming the saga): no new droplet, no POST.
    let again = c.create_droplets(&req).await.unwrap();
    assert_eq!(again.droplets.len(), 1);
    assert_eq!(again.droplets[0].id, created.droplets[0].id);
    assert_eq!(again.action_ids, created.action_ids);
    assert_eq!(env.count("POST", "/v2/droplets"), 1, "repeat made no POST");

    // A multi-create whose answer is lost twice: still three droplets in total.
    env.sim().add_fault(Fault::DropResponse {
        target: target("POST", "/v2/droplets"),
        count: 2,
    });
    let created = c
        .create_droplets(&create_req(&["m-1", "m-2", "m-3"]))
        .await
        .unwrap();
    assert_eq!(created.droplets.len(), 3);
    assert_eq!(c.list_droplets(None).await.unwrap().len(), 4);
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn errored_action_is_a_typed_error() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    let created = c.create_droplets(&create_req(&["err-1"])).await.unwrap();
    c.wait_action(created.action_ids[0]).await.unwrap();
    env.sim().add_fault(Fault::ActionError {
        action_type: "snapshot".into(),
        count: 1,
    });
    let id = created.droplets[0].id;
    let a = c
        .droplet_action(id, &DropletAction::Snapshot { name: "s".into() })
        .await
        .unwrap();
    match c.wait_action(a.id).await.unwrap_err() {
        ProviderError::ActionErrored {
            action_id, kind, ..
        } => {
            assert_eq!((action_id, kind.as_str()), (a.id, "snapshot"));
        }
        e => panic!("expected ActionErrored, got {e}"),
    }
    assert_eq!(
        c.get_action(a.id).await.unwrap().status,
        ActionStatus::Errored
    );
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn wrong_token_is_a_typed_401_without_the_token() {
    let env = SimEnv::start(Profile::Instant, &["the-right-token"]).await;
    let c = env.client("wrong-token-abc123");
    let e = c.account().await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert_eq!(e.api_id(), Some("unauthorized"));
    match &e {
        ProviderError::Api { request_id, .. } => assert!(request_id.is_some()),
        other => panic!("{other}"),
    }
    assert!(!e.to_string().contains("wrong-token-abc123"));
    assert!(!format!("{e:?}").contains("wrong-token-abc123"));
    assert!(!format!("{c:?}").contains("wrong-token-abc123"));
    assert_eq!(env.count("GET", "/v2/account"), 1, "401 is not retried");
    let ok = env.client("the-right-token");
    ok.account().await.unwrap();
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn action_during_pending_event_waits_then_succeeds() {
    let env = SimEnv::start_with(SimConfig {
        profile: Profile::Fast,
        time_scale: 4.0,
        ..SimConfig::default()
    })
    .await;
    let c = env.client(TOKEN);
    let created = c.create_droplets(&create_req(&["busy-1"])).await.unwrap();
    let id = created.droplets[0].id;
    // The create is still running: the API answers 422 pending event first.
    let a = c
        .droplet_action(id, &DropletAction::PowerOff)
        .await
        .unwrap();
    let statuses: Vec<u16> = env
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == format!("/v2/droplets/{id}/actions"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses.first(), Some(&422), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&201), "{statuses:?}");
    let create = c.get_action(created.action_ids[0]).await.unwrap();
    assert_eq!(
        create.status,
        ActionStatus::Completed,
        "waited for the create"
    );
    c.wait_action(a.id).await.unwrap();
    assert_eq!(c.get_droplet(id).await.unwrap().status, DropletStatus::Off);
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn client_pacer_spreads_a_burst() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let mut cfg = sim_env::fast_config(&env.sim().base_url(), TOKEN);
    cfg.burst_limit = 10;
    cfg.burst_window = Duration::from_millis(400);
    let c = infra_agent::provider::DoClient::new(cfg).unwrap();
    let start = Instant::now();
    for _ in 0..25 {
        c.account().await.unwrap();
    }
    let took = start.elapsed();
    // 25 requests at 10 per 400 ms need at least two full windows.
    assert!(
        took >= Duration::from_millis(800),
        "burst not paced: {took:?}"
    );
    assert_eq!(env.count("GET", "/v2/account"), 25);
    // Arrival times at the server jitter with scheduling; allow 150 ms of it.
    let burst = env.max_in_window(Duration::from_millis(250));
    assert!(burst <= 10, "{burst} requests arrived within 250 ms");
    env.shutdown().await;
}

#[tokio::test]
async fn create_that_times_out_still_makes_exactly_one_droplet() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let mut cfg = sim_env::fast_config(&env.sim().base_url(), TOKEN);
    cfg.request_timeout = Duration::from_millis(300);
    let c = infra_agent::provider::DoClient::new(cfg).unwrap();
    env.sim().add_fault(Fault::Latency {
        target: target("POST", "/v2/droplets"),
        ms: 1_000,
        count: Some(1),
    });
    let created = c.create_droplets(&create_req(&["slow-1"])).await.unwrap();
    assert_eq!(created.droplets.len(), 1);
    // The first POST timed out on our side; whether the simulator carried it out
    // or not, there is exactly one droplet and it is the one returned.
    let all = c.list_droplets(None).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, created.droplets[0].id);
    let looked = env.requests().iter().any(|r| {
        r.method == "GET"
            && r.path == "/v2/droplets"
            && r.query
                .as_deref()
                .unwrap_or("")
                .contains("tag_name=infra-op")
    });
    assert!(looked, "listed by the operation tag before retrying");
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn waiting_for_a_slow_action_hits_its_deadline() {
    let env = SimEnv::start(Profile::Realistic, &[]).await;
    let mut cfg = sim_env::fast_config(&env.sim().base_url(), TOKEN);
    cfg.poll.timeout = Duration::from_millis(300);
    let c = infra_agent::provider::DoClient::new(cfg).unwrap();
    let created = c.create_droplets(&create_req(&["slow-2"])).await.unwrap();
    let start = Instant::now();
    match c.wait_action(created.action_ids[0]).await.unwrap_err() {
        ProviderError::Timeout { what, .. } => assert!(what.contains("create"), "{what}"),
        e => panic!("expected Timeout, got {e}"),
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let polls = env
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/actions/"))
        .count();
    assert!((2..=15).contains(&polls), "polls back off: {polls}");
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn connection_refused_is_retried_then_a_typed_transport_error() {
    // A port that was just free: nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = sim_env::fast_config(&format!("http://127.0.0.1:{port}"), "secret-token-xyz");
    let c = infra_agent::provider::DoClient::new(cfg).unwrap();
    let start = Instant::now();
    let e = c.account().await.unwrap_err();
    match &e {
        ProviderError::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 5);
            assert!(
                matches!(
                    **last,
                    ProviderError::Transport {
                        ambiguous: false,
                        ..
                    }
                ),
                "{last:?}"
            );
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert!(!e.to_string().contains("secret-token-xyz"));
    // 4 backoffs of at least min_wait (5 ms) each.
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[tokio::test]
async fn dropped_action_response_does_not_start_a_second_snapshot() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    let created = c.create_droplets(&create_req(&["snap-1"])).await.unwrap();
    c.wait_action(created.action_ids[0]).await.unwrap();
    let id = created.droplets[0].id;
    let path = format!("/v2/droplets/{id}/actions");
    env.sim().add_fault(Fault::DropResponse {
        target: target("POST", &path),
        count: 1,
    });
    let snap = DropletAction::Snapshot {
        name: "only-once".into(),
    };
    let a = c.droplet_action(id, &snap).await.unwrap();
    assert_eq!(a.kind, "snapshot");
    c.wait_action(a.id).await.unwrap();
    assert_eq!(env.count("POST", &path), 1, "adopted, not re-posted");
    let snaps = c.list_droplet_snapshots(id).await.unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn connection_closed_after_create_still_makes_exactly_one_droplet() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    env.sim().add_fault(Fault::Reset {
        target: target("POST", "/v2/droplets"),
        count: 1,
        executed: true,
    });
    let created = c
        .create_droplets(&create_req(&["reset-1", "reset-2"]))
        .await
        .unwrap();
    let mut names: Vec<&str> = created.droplets.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["reset-1", "reset-2"]);
    assert_eq!(created.action_ids.len(), 2);
    let all = c.list_droplets(None).await.unwrap();
    assert_eq!(all.len(), 2, "exactly the two droplets: {all:?}");
    // The connection was closed without an answer: the create is not repeated.
    let posts = env
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/droplets" && r.status < 300)
        .count();
    assert!(posts <= 1, "{posts} successful POSTs");

    // Closed before executing: the retry creates it, still once.
    env.sim().add_fault(Fault::Reset {
        target: target("POST", "/v2/droplets"),
        count: 1,
        executed: false,
    });
    let created = c.create_droplets(&create_req(&["reset-3"])).await.unwrap();
    assert_eq!(created.droplets.len(), 1);
    assert_eq!(c.list_droplets(None).await.unwrap().len(), 3);
    env.assert_bodies_match_spec();
    env.shutdown().await;
}
