//! The DigitalOcean client (`infra_agent::provider::DoClient`) over HTTP
//! against the simulator (`infra-sim`), every exchange checked against the
//! OpenAPI subset in tests/data/do_api_subset.json.

#[path = "support/do_spec.rs"]
mod do_spec;
// Shared helpers; not every one is used by this test binary.
#[allow(dead_code)]
#[path = "support/sim_env.rs"]
mod sim_env;

use infra_agent::provider::{
    ActionStatus, CloudProvider, DropletAction, DropletStatus, FirewallRule, FirewallSpec,
    ImageRef, OperationId, Protocol, RuleTargets, SshKeyRef,
};
use infra_sim::{Fault, Profile};
use sim_env::{SimEnv, TOKEN, create_req, target};

#[tokio::test]
async fn account_ssh_keys_and_tags() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    let account = c.account().await.unwrap();
    assert!(!account.email.is_empty());
    assert_eq!(account.status, "active");
    let rl = c.rate_limit().expect("rate-limit headers parsed");
    assert!(rl.limit >= rl.remaining && rl.limit > 0, "{rl:?}");

    let pk = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx8Uu5m0mT1d1f3eVZ4gqK1xqkQv1bqvQ9XJz7h0bKD test@example";
    let key = c.create_ssh_key("ops", pk).await.unwrap();
    assert_eq!(key.name, "ops");
    assert!(!key.fingerprint.is_empty());
    let keys = c.list_ssh_keys().await.unwrap();
    assert!(keys.iter().any(|k| k.id == key.id && k.public_key == pk));

    let tag = c.create_tag("env:prod").await.unwrap();
    assert_eq!(tag.name, "env:prod");
    let mut req = create_req(&["tagged-1"]);
    req.ssh_keys = vec![
        SshKeyRef::Id(key.id),
        SshKeyRef::Fingerprint(key.fingerprint.clone()),
    ];
    let created = c.create_droplets(&req).await.unwrap();
    let id = created.droplets[0].id;
    c.tag_droplets("env:prod", &[id]).await.unwrap();
    let listed = c.list_droplets(Some("env:prod")).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id]);
    assert!(listed[0].tags.contains(&"env:prod".to_string()));
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn droplet_lifecycle_actions_snapshots_images() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    let op = OperationId::new("fence:7").unwrap();
    let mut req = create_req(&["app-1"]);
    req.operation_id = Some(op.clone());
    req.vpc_uuid = Some("5a4981aa-9653-4bd1-bef5-d6bff52042e4".into());
    let created = c.create_droplets(&req).await.unwrap();
    assert_eq!(created.operation_id, op);
    assert_eq!(created.droplets.len(), 1);
    assert_eq!(created.action_ids.len(), 1);
    let d0 = &created.droplets[0];
    assert!(
        d0.tags.contains(&"infra-op:fence:7".to_string()),
        "{:?}",
        d0.tags
    );
    let done = c.wait_action(created.action_ids[0]).await.unwrap();
    assert_eq!(done.status, ActionStatus::Completed);

    let d = c.get_droplet(d0.id).await.unwrap();
    assert_eq!(d.status, DropletStatus::Active);
    assert!(d.public_ipv4.is_some() && d.private_ipv4.is_some(), "{d:?}");
    assert_ne!(d.public_ipv4, d.private_ipv4);
    assert_eq!(d.size_slug, "s-1vcpu-1gb");
    assert_eq!(d.region, "nyc3");
    assert_eq!(
        d.vpc_uuid.as_deref(),
        Some("5a4981aa-9653-4bd1-bef5-d6bff52042e4")
    );

    let steps = [
        (DropletAction::PowerOff, DropletStatus::Off),
        (DropletAction::PowerOn, DropletStatus::Active),
        (DropletAction::Shutdown, DropletStatus::Off),
        (DropletAction::PowerOn, DropletStatus::Active),
        (DropletAction::Reboot, DropletStatus::Active),
        (
            DropletAction::Rebuild {
                image: ImageRef::Slug("ubuntu-24-04-x64".into()),
            },
            DropletStatus::Active,
        ),
    ];
    for (action, status) in steps {
        let a = c.droplet_action(d.id, &action).await.unwrap();
        assert_eq!(a.kind, action.kind());
        let a = c.wait_action(a.id).await.unwrap();
        assert_eq!(a.status, ActionStatus::Completed, "{action:?}");
        assert_eq!(
            c.get_droplet(d.id).await.unwrap().status,
            status,
            "{action:?}"
        );
    }

    let snap = DropletAction::Snapshot {
        name: "app-1-snap".into(),
    };
    let a = c.droplet_action(d.id, &snap).await.unwrap();
    c.wait_action(a.id).await.unwrap();
    let mine = c.list_droplet_snapshots(d.id).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].name, "app-1-snap");
    assert_eq!(mine[0].droplet_id, Some(d.id));
    let all = c.list_snapshots().await.unwrap();
    assert!(
        all.iter()
            .any(|s| s.id == mine[0].id && s.droplet_id == Some(d.id))
    );
    let images = c.list_private_images().await.unwrap();
    assert!(
        images.iter().any(|i| i.id == mine[0].id && !i.public),
        "{images:?}"
    );
    assert!(
        c.get_droplet(d.id)
            .await
            .unwrap()
            .snapshot_ids
            .contains(&mine[0].id)
    );

    let actions = c.list_droplet_actions(d.id).await.unwrap();
    assert!(actions.iter().any(|a| a.kind == "create"));
    assert!(actions.iter().any(|a| a.kind == "snapshot"));

    // Restore: a new droplet from the snapshot's image id.
    let mut restore = create_req(&["app-1-restored"]);
    restore.image = ImageRef::Id(mine[0].id);
    let restored = c.create_droplets(&restore).await.unwrap();
    c.wait_action(restored.action_ids[0]).await.unwrap();
    let r = c.get_droplet(restored.droplets[0].id).await.unwrap();
    assert_eq!(r.image_id, Some(mine[0].id));
    assert_eq!(r.status, DropletStatus::Active);

    c.delete_snapshot(mine[0].id).await.unwrap();
    assert!(c.list_droplet_snapshots(d.id).await.unwrap().is_empty());
    c.delete_droplet(d.id).await.unwrap();
    let gone = c.get_droplet(d.id).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    assert_eq!(gone.api_id(), Some("not_found"));
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn multi_create_and_delete_by_tag() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    let names: Vec<String> = (0..12).map(|i| format!("batch-{i}")).collect();
    let mut req = create_req(&[]);
    req.names = names.clone();
    req.tags = vec!["batch".into()];
    let created = c.create_droplets(&req).await.unwrap();
    assert_eq!(created.droplets.len(), 12);
    assert_eq!(created.action_ids.len(), 12);
    assert_eq!(env.count("POST", "/v2/droplets"), 2, "10 names per request");
    for id in &created.action_ids {
        c.wait_action(*id).await.unwrap();
    }
    assert_eq!(c.list_droplets(Some("batch")).await.unwrap().len(), 12);
    c.delete_droplets_by_tag("batch").await.unwrap();
    assert!(c.list_droplets(Some("batch")).await.unwrap().is_empty());
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

#[tokio::test]
async fn pagination_follows_next_links_past_200() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    let names: Vec<String> = (0..205).map(|i| format!("p-{i}")).collect();
    let mut req = create_req(&[]);
    req.names = names;
    c.create_droplets(&req).await.unwrap();
    env.sim().clear_requests();
    let all = c.list_droplets(None).await.unwrap();
    assert_eq!(all.len(), 205);
    let mut ids: Vec<u64> = all.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 205, "no droplet twice");
    let lists: Vec<_> = env
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/droplets")
        .collect();
    assert_eq!(lists.len(), 2, "two pages of 200: {lists:?}");
    for r in &lists {
        assert!(
            r.query.as_deref().unwrap_or("").contains("per_page=200"),
            "{r:?}"
        );
    }
    env.assert_bodies_match_spec();
    env.shutdown().await;
}

fn rule(protocol: Protocol, ports: &str, addr: &str) -> FirewallRule {
    FirewallRule {
        protocol,
        ports: ports.into(),
        targets: RuleTargets {
            addresses: vec![addr.into()],
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn firewall_create_get_replace_and_rules() {
    let env = SimEnv::start(Profile::Instant, &[]).await;
    let c = env.client(TOKEN);
    let created = c.create_droplets(&create_req(&["fw-1"])).await.unwrap();
    let did = created.droplets[0].id;
    let spec = FirewallSpec {
        name: "web-fw".into(),
        inbound: vec![rule(Protocol::Tcp, "22", "0.0.0.0/0")],
        outbound: vec![rule(Protocol::Tcp, "all", "0.0.0.0/0")],
        droplet_ids: vec![did],
        tags: vec![],
    };
    let fw = c.create_firewall(&spec).await.unwrap();
    assert_eq!(fw.spec.name, "web-fw");
    assert_eq!(fw.spec.droplet_ids, vec![did]);
    let got = c.get_firewall(&fw.id).await.unwrap();
    assert_eq!(got.spec.inbound, spec.inbound);

    let mut replaced = spec.clone();
    replaced.inbound = vec![rule(Protocol::Tcp, "443", "0.0.0.0/0")];
    let after = c.update_firewall(&fw.id, &replaced).await.unwrap();
    assert_eq!(after.spec.inbound, replaced.inbound);

    let extra = rule(Protocol::Udp, "8000-9000", "10.0.0.0/8");
    c.add_firewall_rules(&fw.id, std::slice::from_ref(&extra), &[])
        .await
        .unwrap();
    let got = c.get_firewall(&fw.id).await.unwrap();
    assert!(got.spec.inbound.contains(&extra), "{:?}", got.spec.inbound);
    c.remove_firewall_rules(&fw.id, std::slice::from_ref(&extra), &[])
        .await
        .unwrap();
    let got = c.get_firewall(&fw.id).await.unwrap();
    assert_eq!(got.spec.inbound, replaced.inbound);

    env.sim().add_fault(Fault::DropResponse {
        target: target("POST", "/v2/firewalls"),
        count: 1,
    });
    let mut second = spec.clone();
    second.name = "db-fw".into();
    let fw2 = c.create_firewall(&second).await.unwrap();
    assert_eq!(fw2.spec.name, "db-fw");
    assert_eq!(
        env.count("POST", "/v2/firewalls"),
        2,
        "one per firewall, none repeated"
    );
    env.assert_bodies_match_spec();
    env.shutdown().await;
}
