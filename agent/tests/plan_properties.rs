//! Property tests of the planner over random valid specs: convergence,
//! determinism, port uniqueness, stability when a project is added, monitor
//! and voter invariants.

use std::collections::{BTreeMap, HashSet};

use indexmap::IndexMap;
use infra_agent::plan::{PlanOptions, desired, monitors::MAX_WATCHED, plan, voters::voter_count};
use infra_agent::spec::{
    DeploymentConfig, DropletSpec, InfrastructureSpec, ProjectDeployment, ProjectSpec, Role,
    ServiceKind, ServiceSpec, Spec,
};
use infra_agent::topology::Topology;
use proptest::prelude::*;
use proptest::sample::subsequence;

const PROJECTS: [&str; 10] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
];
const ENVS: [&str; 3] = ["prod", "uat", "test"];
const SERVICES: [&str; 6] = ["api", "web", "admin", "mail", "cron", "media"];
const REGIONS: [&str; 3] = ["lon1", "nyc3", "ams3"];

/// One project as generated: name, envs, web droplets, region, services (name, is_worker).
type GenProject = (
    String,
    Vec<String>,
    u32,
    Option<String>,
    Vec<(String, bool)>,
);

fn gen_project(name: &'static str) -> impl Strategy<Value = GenProject> {
    (
        subsequence(ENVS.to_vec(), 1..=3),
        1u32..=5,
        proptest::option::of(proptest::sample::select(REGIONS.to_vec())),
        subsequence(SERVICES.to_vec(), 1..=5),
        proptest::collection::vec(any::<bool>(), 5),
    )
        .prop_map(move |(envs, web, region, services, workers)| {
            let services = services
                .into_iter()
                .zip(workers)
                .map(|(s, w)| (s.to_string(), w))
                .collect();
            let envs = envs.into_iter().map(str::to_string).collect();
            (
                name.to_string(),
                envs,
                web,
                region.map(str::to_string),
                services,
            )
        })
}

fn gen_projects(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<GenProject>> {
    subsequence(PROJECTS.to_vec(), range)
        .prop_flat_map(|names| names.into_iter().map(gen_project).collect::<Vec<_>>())
}

fn service(worker: bool) -> ServiceSpec {
    ServiceSpec {
        kind: if worker {
            ServiceKind::Worker
        } else {
            ServiceKind::Web
        },
        containerfile_path: "Dockerfile".into(),
        command: worker.then(|| "run".into()),
        secrets: vec![],
        environment: IndexMap::new(),
        port: None,
        health_path: None,
    }
}

fn build(projects: &[GenProject]) -> Spec {
    let master = DropletSpec {
        size: "s-2vcpu-4gb".into(),
        region: "lon1".into(),
        role: Role::Master,
    };
    let mut infra = InfrastructureSpec {
        droplets: IndexMap::from([("master".to_string(), master)]),
        ..Default::default()
    };
    let mut deployment = DeploymentConfig::default();
    for (name, envs, web, region, services) in projects {
        let p = ProjectSpec {
            environments: envs.clone(),
            web_droplets: *web,
            web_droplet_spec: "s-1vcpu-1gb".into(),
            region: region.clone(),
            domains: IndexMap::new(),
        };
        infra.projects.insert(name.clone(), p);
        let services = services
            .iter()
            .map(|(s, w)| (s.clone(), service(*w)))
            .collect();
        deployment
            .projects
            .insert(name.clone(), ProjectDeployment { services });
    }
    Spec {
        infrastructure: infra,
        deployment,
    }
}

fn applied(spec: &Spec, current: &Topology, opts: &PlanOptions) -> Topology {
    plan(spec, current, opts).apply(current)
}

fn check_ports(t: &Topology) -> Result<(), TestCaseError> {
    let mut used: BTreeMap<&str, HashSet<u16>> = BTreeMap::new();
    for (name, s) in &t.services {
        match s.kind {
            ServiceKind::Worker => {
                prop_assert_eq!(s.port, None);
                prop_assert_eq!(s.droplets.len(), 1, "worker {} on one droplet", name);
            }
            ServiceKind::Web => {
                let port = s.port.expect("web service has a port");
                prop_assert!((1024..=65535).contains(&port));
                for d in &s.droplets {
                    prop_assert!(
                        used.entry(d).or_default().insert(port),
                        "port {} twice on {}",
                        port,
                        d
                    );
                }
            }
        }
        for d in &s.droplets {
            prop_assert!(
                t.droplets.contains_key(d),
                "{} placed on unknown {}",
                name,
                d
            );
        }
    }
    Ok(())
}

fn check_members(t: &Topology) -> Result<(), TestCaseError> {
    let n = t.droplets.len();
    let mut watching: BTreeMap<&str, u32> = BTreeMap::new();
    for (name, d) in &t.droplets {
        prop_assert!(!d.monitors.contains(name), "{} monitors itself", name);
        let expected = if n >= 3 { 2 } else { n - 1 };
        prop_assert_eq!(d.monitors.len(), expected, "monitors of {}", name);
        for m in &d.monitors {
            prop_assert!(t.droplets.contains_key(m));
            *watching.entry(m).or_default() += 1;
        }
    }
    prop_assert!(
        watching.values().all(|&w| w <= MAX_WATCHED),
        "load {:?}",
        watching
    );
    let voters: Vec<&String> = t
        .droplets
        .iter()
        .filter(|(_, d)| d.voter)
        .map(|(n, _)| n)
        .collect();
    prop_assert_eq!(voters.len(), voter_count(n));
    prop_assert!(voters.len() <= 5 && voters.len() % 2 == 1);
    prop_assert!(voters.iter().any(|v| v.as_str() == "master"));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn plan_apply_plan_is_empty(projects in gen_projects(1..=8)) {
        let spec = build(&projects);
        let state = applied(&spec, &Topology::default(), &PlanOptions::default());
        prop_assert_eq!(&state, &desired(&spec, &Topology::default()));
        let again = plan(&spec, &state, &PlanOptions::default());
        prop_assert!(again.is_empty(), "{}", again.render_text());
        check_ports(&state)?;
        check_members(&state)?;
    }

    #[test]
    fn output_is_byte_identical(projects in gen_projects(1..=8)) {
        let spec = build(&projects);
        let a = plan(&spec, &Topology::default(), &PlanOptions::default());
        let b = plan(&spec.clone(), &Topology::default(), &PlanOptions::default());
        prop_assert_eq!(a.render_text(), b.render_text());
        prop_assert_eq!(a.render_json(), b.render_json());
    }

    #[test]
    fn adding_a_project_keeps_ports_and_placements(projects in gen_projects(2..=8)) {
        let (last, first) = projects.split_last().unwrap();
        let before = applied(&build(first), &Topology::default(), &PlanOptions::default());
        let after = desired(&build(&projects), &before);
        for (name, s) in &before.services {
            let now = &after.services[name];
            prop_assert_eq!(now.port, s.port, "port of {}", name);
            prop_assert_eq!(&now.droplets, &s.droplets, "placement of {}", name);
        }
        for (name, d) in &before.droplets {
            prop_assert_eq!(&after.droplets[name].ip, &d.ip);
        }
        let first_web = format!("{}-web1", last.0);
        prop_assert!(after.droplets.contains_key(&first_web));
        check_ports(&after)?;
        check_members(&after)?;
    }

    #[test]
    fn any_change_converges(from in gen_projects(1..=6), to in gen_projects(1..=6)) {
        let start = applied(&build(&from), &Topology::default(), &PlanOptions::default());
        let spec = build(&to);
        // Without --allow-destroy only blocked destroys remain.
        let cautious = applied(&spec, &start, &PlanOptions::default());
        let left = plan(&spec, &cautious, &PlanOptions::default());
        prop_assert!(left.is_converged(), "{}", left.render_text());
        prop_assert!(left.changes.iter().all(|c| c.destroys_droplet()));
        check_ports(&desired(&spec, &cautious))?;
        // With it, everything converges and the result is the spec's topology.
        let allow = PlanOptions { allow_destroy: true, ..PlanOptions::default() };
        let done = applied(&spec, &start, &allow);
        let again = plan(&spec, &done, &allow);
        prop_assert!(again.is_empty(), "{}", again.render_text());
        let fresh = desired(&spec, &Topology::default());
        prop_assert!(done.droplets.keys().eq(fresh.droplets.keys()));
        check_ports(&done)?;
        check_members(&done)?;
    }
}
