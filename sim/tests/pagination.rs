//! Pagination over 250 droplets: absolute `links.pages`, `meta.total`, following `next`.

mod common;

use common::TestSim;
use infra_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;

#[tokio::test]
async fn pages_over_250_droplets_have_absolute_links_and_total() {
    let sim = TestSim::start(SimConfig::default()).await;
    for batch in 0..25 {
        let names: Vec<String> = (0..10).map(|i| format!("node-{batch}-{i}")).collect();
        let r = sim
            .post(
                "/v2/droplets",
                json!({"names": names, "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "tags": ["fleet"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }

    // Default page size 20: 13 pages.
    let first = sim.get("/v2/droplets").await;
    assert_eq!(first.body["meta"]["total"], 250);
    assert_eq!(first.body["droplets"].as_array().unwrap().len(), 20);
    let pages = &first.body["links"]["pages"];
    assert!(pages.get("first").is_none() && pages.get("prev").is_none());
    let last = pages["last"].as_str().unwrap();
    assert!(
        last.starts_with(&format!("{}/v2/droplets?", sim.base)),
        "{last}"
    );
    assert!(last.contains("page=13"), "{last}");

    // Follow `next` with per_page=100 and the tag filter kept.
    let mut url = format!("{}/v2/droplets?tag_name=fleet&per_page=100", sim.base);
    let mut ids = BTreeSet::new();
    let mut pages_seen = 0;
    loop {
        pages_seen += 1;
        assert!(pages_seen <= 5, "too many pages");
        let path = url
            .strip_prefix(&sim.base)
            .expect("absolute link on this sim")
            .to_string();
        let r = sim.get(&path).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["meta"]["total"], 250);
        for d in r.body["droplets"].as_array().unwrap() {
            ids.insert(d["id"].as_u64().unwrap());
        }
        let pages = r.body["links"]["pages"].clone();
        if pages_seen > 1 {
            assert!(pages["first"].as_str().unwrap().contains("tag_name=fleet"));
            assert!(pages["prev"].is_string());
        }
        match pages.get("next").and_then(|n| n.as_str()) {
            Some(next) => url = next.to_string(),
            None => {
                assert!(pages.get("last").is_none());
                break;
            }
        }
    }
    assert_eq!(pages_seen, 3);
    assert_eq!(ids.len(), 250);

    // per_page above 200 is capped; a single page answers `links: {}`.
    let r = sim.get("/v2/droplets?per_page=1000").await;
    assert_eq!(r.body["droplets"].as_array().unwrap().len(), 200);
    let r = sim.get("/v2/droplets?name=node-3-3").await;
    assert_eq!(r.body["links"], json!({}));
    assert_eq!(r.body["meta"]["total"], 1);
    let r = sim.get("/v2/droplets?per_page=0").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
