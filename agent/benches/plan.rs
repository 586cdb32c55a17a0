//! Planner benchmark: N projects × 3 environments × 5 services (3 web + 2
//! workers) on 3 web droplets each, planned from an empty topology and from
//! the applied one (the steady state: an empty plan). Measured twice: wall
//! time (`plan`) and this thread's CPU time (`plan_cpu`, from
//! `/proc/thread-self/schedstat`), which stays meaningful on a loaded machine.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use indexmap::IndexMap;
use infra_agent::plan::{PlanOptions, plan};
use infra_agent::spec::{
    DeploymentConfig, DropletSpec, InfrastructureSpec, ProjectDeployment, ProjectSpec, Role,
    ServiceKind, ServiceSpec, Spec,
};
use infra_agent::topology::Topology;

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

fn spec(projects: usize) -> Spec {
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
    let services: IndexMap<String, ServiceSpec> = [
        ("api", ServiceKind::Web),
        ("web", ServiceKind::Web),
        ("admin", ServiceKind::Web),
        ("mail", ServiceKind::Worker),
        ("cron", ServiceKind::Worker),
    ]
    .into_iter()
    .map(|(name, kind)| (name.to_string(), service(kind)))
    .collect();
    for i in 0..projects {
        let name = format!("project{i:04}");
        let p = ProjectSpec {
            environments: vec!["prod".into(), "uat".into(), "test".into()],
            web_droplets: 3,
            web_droplet_spec: "s-1vcpu-1gb".into(),
            region: None,
            domains: IndexMap::new(),
        };
        infra.projects.insert(name.clone(), p);
        deployment.projects.insert(
            name,
            ProjectDeployment {
                services: services.clone(),
            },
        );
    }
    Spec {
        infrastructure: infra,
        deployment,
    }
}

/// CPU time consumed by the calling thread (Linux).
fn thread_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat (Linux)");
    let nanos = stat.split_whitespace().next().and_then(|n| n.parse().ok());
    Duration::from_nanos(nanos.expect("schedstat: first field is CPU time in ns"))
}

/// Criterion measurement of the benchmark thread's CPU time.
struct ThreadCpuTime(WallTime);

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

fn bench_wall(c: &mut Criterion) {
    bench_plan(c, "plan");
}

fn bench_cpu(c: &mut Criterion<ThreadCpuTime>) {
    bench_plan(c, "plan_cpu");
}

fn bench_plan<M: Measurement>(c: &mut Criterion<M>, name: &str) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    let opts = PlanOptions::default();
    for projects in [100usize, 500, 2000] {
        let spec = spec(projects);
        let empty = Topology::default();
        let applied = plan(&spec, &empty, &opts).apply(&empty);
        assert!(plan(&spec, &applied, &opts).is_empty());
        group.bench_with_input(
            BenchmarkId::new("from_empty", projects),
            &spec,
            |b, spec| b.iter(|| plan(black_box(spec), black_box(&empty), &opts)),
        );
        group.bench_with_input(
            BenchmarkId::new("from_applied", projects),
            &spec,
            |b, spec| b.iter(|| plan(black_box(spec), black_box(&applied), &opts)),
        );
        group.bench_with_input(
            BenchmarkId::new("from_empty_render_json", projects),
            &spec,
            |b, spec| {
                b.iter(|| {
                    plan(black_box(spec), black_box(&empty), &opts)
                        .render_json()
                        .len()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(wall, bench_wall);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime(WallTime));
    targets = bench_cpu
}
criterion_main!(wall, cpu);
