//! Planner unit tests on the reference example: master + hostomatic (2 web
//! droplets, 2 web services, 2 workers) + digitalpixo (1 web droplet).

use indexmap::IndexMap;
use serde_json::json;

use super::ports::hash_based_port;
use super::*;
use crate::spec::{
    DeploymentConfig, DropletSpec, InfrastructureSpec, ProjectDeployment, ProjectSpec, Role,
    ServiceKind, ServiceSpec,
};

fn service(kind: ServiceKind) -> ServiceSpec {
    ServiceSpec {
        kind,
        containerfile_path: "Dockerfile".into(),
        command: (kind == ServiceKind::Worker).then(|| "run".into()),
        secrets: vec![],
        environment: IndexMap::new(),
        port: None,
        health_path: None,
    }
}

fn project(web_droplets: u32, size: &str) -> ProjectSpec {
    ProjectSpec {
        environments: vec!["prod".into(), "uat".into()],
        web_droplets,
        web_droplet_spec: size.into(),
        region: None,
        domains: IndexMap::new(),
    }
}

fn reference() -> Spec {
    let master = DropletSpec {
        size: "s-2vcpu-4gb".into(),
        region: "lon1".into(),
        role: Role::Master,
    };
    let services = IndexMap::from([
        ("backend".to_string(), service(ServiceKind::Web)),
        ("frontend".to_string(), service(ServiceKind::Web)),
        ("worker_email".to_string(), service(ServiceKind::Worker)),
        ("scheduler".to_string(), service(ServiceKind::Worker)),
    ]);
    Spec {
        infrastructure: InfrastructureSpec {
            droplets: IndexMap::from([("master".to_string(), master)]),
            projects: IndexMap::from([
                ("hostomatic".to_string(), project(2, "s-2vcpu-4gb")),
                ("digitalpixo".to_string(), project(1, "s-1vcpu-1gb")),
            ]),
        },
        deployment: DeploymentConfig {
            projects: IndexMap::from([("hostomatic".to_string(), ProjectDeployment { services })]),
            ..DeploymentConfig::default()
        },
    }
}

fn applied(spec: &Spec) -> Topology {
    let empty = Topology::default();
    plan(spec, &empty, &PlanOptions::default()).apply(&empty)
}

#[test]
fn reference_droplets_services_ports() {
    let t = desired(&reference(), &Topology::default());
    let names: Vec<&str> = t.droplets.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "digitalpixo-web1",
            "hostomatic-web1",
            "hostomatic-web2",
            "master"
        ]
    );
    let web2 = &t.droplets["hostomatic-web2"];
    assert_eq!(
        (web2.size.as_str(), web2.region.as_str(), web2.role),
        ("s-2vcpu-4gb", "lon1", Role::Web)
    );
    assert_eq!(t.droplets["digitalpixo-web1"].size, "s-1vcpu-1gb");

    assert_eq!(
        t.services.len(),
        8,
        "hostomatic: 2 envs x 4 services; digitalpixo has none"
    );
    let both = vec!["hostomatic-web1".to_string(), "hostomatic-web2".to_string()];
    for env in ["prod", "uat"] {
        let backend = &t.services[&format!("hostomatic-{env}-backend")];
        let frontend = &t.services[&format!("hostomatic-{env}-frontend")];
        assert_eq!(backend.droplets, both);
        assert_eq!(frontend.droplets, both);
        assert_eq!(
            backend.port,
            Some(hash_based_port("hostomatic", env, 8000, 1000))
        );
        assert_eq!(
            frontend.port,
            Some(hash_based_port("hostomatic", env, 9000, 1000))
        );
        for worker in ["worker_email", "scheduler"] {
            let w = &t.services[&format!("hostomatic-{env}-{worker}")];
            assert_eq!(
                (w.kind, w.port, w.droplets.len()),
                (ServiceKind::Worker, None, 1)
            );
            assert!(both.contains(&w.droplets[0]));
        }
    }
    assert_ne!(
        t.services["hostomatic-prod-backend"].port,
        t.services["hostomatic-uat-backend"].port
    );

    for (name, d) in &t.droplets {
        assert_eq!(d.monitors.len(), 2, "{name}");
        assert!(!d.monitors.contains(name));
    }
    let voters: Vec<&str> = t
        .droplets
        .iter()
        .filter(|(_, d)| d.voter)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(voters, ["digitalpixo-web1", "hostomatic-web1", "master"]);
}

#[test]
fn reference_plan_text_and_json() {
    let p = plan(&reference(), &Topology::default(), &PlanOptions::default());
    let text = p.render_text();
    assert!(
        text.starts_with("+ create droplet digitalpixo-web1 (s-1vcpu-1gb, lon1)\n"),
        "{text}"
    );
    assert!(text.contains("\n+ create droplet hostomatic-web2 (s-2vcpu-4gb, lon1)\n"));
    let port = hash_based_port("hostomatic", "prod", 8000, 1000);
    assert!(text.contains(&format!(
        "+ create service hostomatic-prod-backend (web, port {port} on hostomatic-web1, hostomatic-web2)\n"
    )));
    assert!(text.contains("+ promote voter master\n"));
    assert!(text.ends_with(
        "\nPlan: 19 to create, 0 to change, 0 to destroy.\nDroplets: 4 to create, 0 to change, 0 to destroy.\n"
    ));
    assert!(!text.contains("WARNING"));

    let v: serde_json::Value = serde_json::from_str(&p.render_json()).unwrap();
    assert_eq!(
        v["summary"],
        json!({"create": 19, "update": 0, "delete": 0})
    );
    assert_eq!(
        v["changes"][0],
        json!({"action": "create", "kind": "droplet", "name": "digitalpixo-web1",
               "details": {"size": "s-1vcpu-1gb", "region": "lon1", "role": "web", "project": "digitalpixo"}})
    );
    let kinds: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "service").count(), 8);
    assert_eq!(kinds.iter().filter(|k| **k == "monitor").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "voter").count(), 3);
    assert!(
        p.render_json()
            .starts_with(r#"{"changes":[{"action":"create","kind":"droplet","name":"#)
    );
}

#[test]
fn applied_plan_converges() {
    let spec = reference();
    let state = applied(&spec);
    assert_eq!(state, desired(&spec, &Topology::default()));
    let again = plan(&spec, &state, &PlanOptions::default());
    assert!(again.is_empty(), "{}", again.render_text());
    assert!(again.render_text().starts_with("No changes."));
    assert_eq!(
        again.render_json(),
        r#"{"changes":[],"summary":{"create":0,"update":0,"delete":0}}"#
    );
}

#[test]
fn resizing_the_master_is_an_update() {
    let mut spec = reference();
    let state = applied(&spec);
    spec.infrastructure.droplets["master"].size = "s-4vcpu-8gb".into();
    let p = plan(&spec, &state, &PlanOptions::default());
    assert_eq!(p.changes.len(), 1);
    let text = p.render_text();
    assert!(
        text.starts_with("~ update droplet master (size s-2vcpu-4gb -> s-4vcpu-8gb)\n"),
        "{text}"
    );
    assert!(text.contains("Plan: 0 to create, 1 to change, 0 to destroy."));
    let v = p.to_json();
    assert_eq!(
        v["changes"][0]["details"],
        json!({"size": {"from": "s-2vcpu-4gb", "to": "s-4vcpu-8gb"}})
    );
    let mut with_ip = state.clone();
    with_ip.droplets.get_mut("master").unwrap().ip = Some("192.0.2.1".into());
    let after = plan(&spec, &with_ip, &PlanOptions::default()).apply(&with_ip);
    assert_eq!(
        after.droplets["master"].ip.as_deref(),
        Some("192.0.2.1"),
        "resize keeps the IP"
    );
    assert_eq!(after.droplets["master"].size, "s-4vcpu-8gb");
}

#[test]
fn removing_a_project_is_blocked_without_allow_destroy() {
    let mut spec = reference();
    let state = applied(&spec);
    spec.infrastructure.projects.shift_remove("digitalpixo");
    let p = plan(&spec, &state, &PlanOptions::default());
    let delete = p.changes.iter().find(|c| c.kind == Kind::Droplet).unwrap();
    assert_eq!(
        (delete.action, delete.name.as_str(), delete.blocked),
        (Action::Delete, "digitalpixo-web1", true)
    );
    let text = p.render_text();
    assert!(
        text.contains("- destroy droplet digitalpixo-web1 (s-1vcpu-1gb, lon1) [BLOCKED]\n"),
        "{text}"
    );
    assert!(text.contains("!! BLOCKED: DROPLET DIGITALPIXO-WEB1 WOULD BE DESTROYED"));
    assert!(text.contains("WARNING: 1 droplet would be destroyed; re-run with --allow-destroy"));
    let v = p.to_json();
    assert_eq!(v["changes"][0]["blocked"], json!(true));
    assert_eq!(v["summary"]["blocked"], json!(1));
    assert_eq!(
        v["summary"]["delete"].as_u64().unwrap() as usize,
        p.summary().delete
    );

    let kept = p.apply(&state);
    assert!(
        kept.droplets.contains_key("digitalpixo-web1"),
        "blocked destroy not applied"
    );
    assert!(!kept.droplets["digitalpixo-web1"].voter);
    let again = plan(&spec, &kept, &PlanOptions::default());
    assert!(
        again.is_converged() && again.changes.len() == 1,
        "{}",
        again.render_text()
    );

    let allowed = PlanOptions {
        allow_destroy: true,
        ..PlanOptions::default()
    };
    let p = plan(&spec, &state, &allowed);
    assert!(p.changes.iter().all(|c| !c.blocked));
    assert!(
        p.render_text()
            .contains("!! WARNING: DROPLET DIGITALPIXO-WEB1 AND ALL ITS DATA WILL BE DESTROYED")
    );
    let gone = p.apply(&state);
    assert!(!gone.droplets.contains_key("digitalpixo-web1"));
    assert!(plan(&spec, &gone, &allowed).is_empty());
}

#[test]
fn region_change_is_a_blocked_replace() {
    let mut spec = reference();
    let state = applied(&spec);
    spec.infrastructure.projects["digitalpixo"].region = Some("ams3".into());
    let p = plan(&spec, &state, &PlanOptions::default());
    let c = &p.changes[0];
    assert_eq!(
        (c.action, c.blocked, c.destroys_droplet()),
        (Action::Update, true, true)
    );
    assert!(
        p.render_text()
            .starts_with("-/+ replace droplet digitalpixo-web1 (region lon1 -> ams3) [BLOCKED]\n")
    );
    assert_eq!(p.apply(&state).droplets["digitalpixo-web1"].region, "lon1");
}

#[test]
fn scaling_up_keeps_ports_and_worker_placements() {
    let mut spec = reference();
    let state = applied(&spec);
    spec.infrastructure.projects["hostomatic"].web_droplets = 3;
    let next = desired(&spec, &state);
    for (name, s) in &state.services {
        let n = &next.services[name];
        assert_eq!(n.port, s.port, "{name}");
        if s.kind == ServiceKind::Worker {
            assert_eq!(n.droplets, s.droplets, "{name}");
        } else {
            assert_eq!(n.droplets.len(), 3);
        }
    }
    let p = plan(&spec, &state, &PlanOptions::default());
    assert!(
        p.render_text()
            .contains("+ create droplet hostomatic-web3 (s-2vcpu-4gb, lon1)\n")
    );
    assert_eq!(
        p.summary_of(Some(Kind::Service)).update,
        4,
        "the 4 web services gain a droplet"
    );
    let update = p
        .changes
        .iter()
        .find(|c| c.name == "hostomatic-prod-backend")
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(update.details_json()),
        json!({"droplets": {"from": ["hostomatic-web1", "hostomatic-web2"],
                            "to": ["hostomatic-web1", "hostomatic-web2", "hostomatic-web3"]}})
    );
}

#[test]
fn force_replaces_everything_only_with_allow_destroy() {
    let spec = reference();
    let state = applied(&spec);
    let force = PlanOptions {
        force: true,
        allow_destroy: false,
    };
    let p = plan(&spec, &state, &force);
    assert_eq!(p.summary().blocked, 4);
    assert_eq!(p.summary().update, 8, "services are redeployed");
    let p = plan(
        &spec,
        &state,
        &PlanOptions {
            force: true,
            allow_destroy: true,
        },
    );
    assert_eq!(p.summary().update, 12);
    assert!(
        p.render_text()
            .contains("~ update service hostomatic-prod-backend (redeploy)\n")
    );
}

#[test]
fn project_without_web_droplets_runs_on_master() {
    let mut spec = reference();
    spec.infrastructure.projects["hostomatic"].web_droplets = 0;
    let t = desired(&spec, &Topology::default());
    assert_eq!(
        t.services["hostomatic-prod-backend"].droplets,
        vec!["master".to_string()]
    );
    assert_eq!(
        t.services["hostomatic-prod-scheduler"].droplets,
        vec!["master".to_string()]
    );
}
