//! `infractl orchestrate`, `cleanup --dry-run` and `sim kill` (the real
//! binary) against infra-sim with real `infra-agent` processes behind the
//! droplets. The agent binary is the one built beside `infractl`
//! (`cargo build -p infra-agent`; `scripts/test` builds the workspace).

mod cloud;

use cloud::{Cloud, TOKEN, posts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrate_twice_cleanup_dry_run_and_sim_kill() {
    let c = Cloud::start().await;
    let (root, sim) = (&c.root, &c.sim);
    let infractl = cloud::infractl;
    let (ok, out, err) = infractl(root.path(), &["orchestrate"]).await;
    assert!(ok, "orchestrate failed:\n{out}\n{err}");
    assert!(out.contains("3 created, 1 adopted"), "{out}");
    assert_eq!(
        posts(sim).iter().filter(|p| *p == "/v2/droplets").count(),
        4,
        "four creates: {:?}",
        posts(sim)
    );
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join(".infra/context.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        saved["endpoints"].as_array().unwrap().len(),
        4,
        "every agent is an endpoint: {saved}"
    );
    assert!(
        !std::fs::read_to_string(root.path().join(".infra/context.json"))
            .unwrap()
            .is_empty()
    );
    assert!(!out.contains(TOKEN) && !err.contains(TOKEN), "token leaked");

    sim.clear_requests();
    let (ok, out, err) = infractl(root.path(), &["orchestrate"]).await;
    assert!(ok, "second orchestrate failed:\n{out}\n{err}");
    assert!(out.contains("0 created, 0 adopted"), "{out}");
    assert!(
        posts(sim).is_empty(),
        "no POST on a re-run: {:?}",
        posts(sim)
    );

    let (ok, out, err) = infractl(root.path(), &["cleanup", "--dry-run"]).await;
    assert!(ok, "cleanup failed:\n{out}\n{err}");
    assert!(out.contains("(dry run)"), "{out}");
    assert!(
        sim.requests().iter().all(|r| r.method != "DELETE"),
        "a dry run deletes nothing"
    );

    let (ok, out, err) = infractl(root.path(), &["sim", "kill", "hostomatic-web1"]).await;
    assert!(ok, "sim kill failed:\n{out}\n{err}");
    assert_eq!(out.trim(), "killed hostomatic-web1");
    let (ok, _, err) = infractl(root.path(), &["sim", "kill", "nope"]).await;
    assert!(!ok && err.contains("no droplet named nope"), "{err}");

    c.stop().await;
}
