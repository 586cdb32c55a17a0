//! Bearer auth (401) and rate limits (headers, burst 429 with retry-after).

mod common;

use common::{TOKEN, TestSim};
use infra_sim::{RateLimitConfig, SimConfig};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn unauthorized_without_or_with_wrong_token() {
    let sim = TestSim::start(SimConfig {
        tokens: vec![TOKEN.to_string()],
        ..SimConfig::default()
    })
    .await;
    for token in [None, Some("wrong"), Some("")] {
        let r = sim.call_with(Method::GET, "/v2/account", None, token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(r.body["id"], "unauthorized");
        assert_eq!(r.body["message"], "Unable to authenticate you.");
        assert!(r.header("ratelimit-limit").is_some());
        assert!(r.header("x-request-id").is_some());
    }
    let r = sim.get("/v2/account").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["account"]["droplet_limit"].as_u64().unwrap() >= 250);
}

#[tokio::test]
async fn burst_limit_answers_429_with_retry_after() {
    let sim = TestSim::start(SimConfig {
        rate_limit: RateLimitConfig {
            per_hour: 100,
            per_minute: 3,
        },
        ..SimConfig::default()
    })
    .await;
    for i in 0..3u32 {
        let r = sim.get("/v2/account").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("ratelimit-limit").as_deref(), Some("100"));
        assert_eq!(
            r.header("ratelimit-remaining"),
            Some((100 - i - 1).to_string())
        );
        let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            reset > now + 3500 && reset <= now + 3601,
            "{reset} vs {now}"
        );
    }
    let r = sim.get("/v2/droplets").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["id"], "too_many_requests");
    assert_eq!(r.body["message"], "API Rate limit exceeded.");
    assert_eq!(r.header("ratelimit-remaining").as_deref(), Some("0"));
    let retry: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another token has its own budget.
    let other = sim
        .call_with(Method::GET, "/v2/account", None, Some("other"))
        .await;
    assert_eq!(other.status, StatusCode::OK);
}
