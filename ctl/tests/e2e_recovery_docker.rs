//! A recovered droplet runs the live release again, end to end: infra-sim
//! with real `infra-agent` processes (master + two web droplets), the real
//! `infractl`, the local Docker engine and the leader's nginx. After a
//! deploy, a web droplet that is not the leader is killed and its service
//! containers are removed from Docker (in the local cloud every droplet
//! shares one engine and the kill only stops the agent process, so this is
//! what a droplet rebuilt from a base image, or one that lost its
//! containers, looks like). When its recovery is `done`, the containers of
//! the live tag run again on that droplet, started by its own agent, with
//! the sealed secret, and nginx routes to the recovered web container.
//! Needs Docker, busybox-static and nginx: skips with a message without
//! them, fails under CI=true.

mod cloud;
mod docker_env;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use cloud::Cloud;
use docker_env::{available, body_is, get, git, remove_project};
use serde_json::{Value, json};

/// Removes the project's containers and images (also after a failure).
struct Guard {
    project: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        remove_project(&self.project);
    }
}

/// The project's containers labelled with `droplet` (all states).
async fn containers_on(docker: &Docker, project: &str, droplet: &str) -> Vec<ContainerSummary> {
    let filters = HashMap::from([(
        "label",
        vec![
            format!("infra.project={project}"),
            format!("infra.droplet={droplet}"),
        ],
    )]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker.list_containers(Some(opts)).await.unwrap()
}

fn label<'a>(c: &'a ContainerSummary, key: &str) -> &'a str {
    c.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
        .unwrap_or_default()
}

fn recovery<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["recoveries"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
}

fn started_at(s: &Value, name: &str) -> u64 {
    recovery(s, name)
        .and_then(|r| r["started_at"].as_u64())
        .unwrap_or(0)
}

/// Every `nginx.conf` under `dir`.
fn nginx_confs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(nginx_confs(&path));
        } else if path.file_name().is_some_and(|n| n == "nginx.conf") {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_droplet_runs_the_live_release_again() {
    if !available() {
        return;
    }
    let docker = Docker::connect_with_local_defaults().expect("docker engine");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let project = format!("rec{:x}", nanos & 0xffffff);
    let _guard = Guard {
        project: project.clone(),
    };
    let c = Cloud::start().await;
    let root = c.path().to_path_buf();

    // The project's repository: busybox httpd serving /health.
    let origins = root.join("git");
    let origin = origins.join(&project);
    std::fs::create_dir_all(origin.join("www")).unwrap();
    std::fs::copy("/bin/busybox", origin.join("busybox")).unwrap();
    std::fs::write(origin.join("www/health"), "ok\n").unwrap();
    std::fs::write(
        origin.join("Containerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY www /www\n\
         CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-qm", "v1"]);
    git(&origin, &["tag", "v1.0.0"]);

    let config = root.join("config");
    let infra = json!({"infrastructure_spec": {
        "droplets": {"master": {"size": "s-1vcpu-1gb", "region": "lon1", "role": "master"}},
        "projects": {project.clone(): {"environments": ["uat"], "web_droplets": 2,
                                        "web_droplet_spec": "s-1vcpu-1gb"}}}});
    let deployment = json!({
        "git_config": {"base_url": origins.to_string_lossy(), "url_pattern": "{base_url}/{project}"},
        "projects": {project.clone(): {"services": {
            "web": {"containerfile_path": "Containerfile", "secrets": ["api_key"], "port": 8000},
            "worker": {"type": "worker", "containerfile_path": "Containerfile",
                       "command": "while true; do sleep 1; done"}}}}});
    for (file, value) in [
        ("infrastructure.json", infra),
        ("deployment_config.json", deployment),
    ] {
        std::fs::write(config.join(file), value.to_string()).unwrap();
    }
    let (ok, out, err) = c.infractl(&["orchestrate"]).await;
    assert!(ok, "orchestrate:\n{out}\n{err}");

    // deploy-uat with a secret (sealed in the state by the leader).
    let secret = format!("rec-secret-{nanos}");
    let deployed = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_infractl"))
            .current_dir(&root)
            .env_remove("DO_TOKEN")
            .env_remove("INFRA_ENDPOINT")
            .env("API_KEY", &secret)
            .args(["-o", "json", "deploy-uat", &project])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("deploy-uat finishes within 240 s")
    .expect("infractl runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr),
    );
    assert!(deployed.status.success(), "deploy-uat:\n{stdout}\n{stderr}");
    let uat: Value = serde_json::from_str(&stdout).unwrap();
    let tag = uat["tag"].as_str().unwrap().to_string();
    let lb: SocketAddr = uat["load_balancer"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let health = format!("/{project}/uat/web/health");

    // The victim: a web droplet that does not lead (its nginx stays up).
    let status = c.status().await.expect("status");
    let leader = status["leader"].as_str().expect("a leader").to_string();
    let victim = [1, 2]
        .map(|n| format!("{project}-web{n}"))
        .into_iter()
        .find(|d| *d != leader)
        .unwrap();
    let since = started_at(&status, &victim);

    // Killed, and its containers lost.
    let (ok, out, err) = c.infractl(&["sim", "kill", &victim]).await;
    assert!(ok, "sim kill: {out}{err}");
    let lost = containers_on(&docker, &project, &victim).await;
    let services: BTreeSet<String> = lost
        .iter()
        .map(|c| label(c, "infra.service").to_string())
        .collect();
    assert!(services.contains("web"), "web ran on {victim}: {lost:?}");
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    for gone in &lost {
        docker
            .remove_container(gone.id.as_deref().unwrap(), Some(rm.clone()))
            .await
            .unwrap();
    }
    assert!(containers_on(&docker, &project, &victim).await.is_empty());

    // The recovery: done, with the live tag running on the droplet again.
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(240);
    let mut last = Value::Null;
    loop {
        if let Some(s) = c.status().await {
            let done = recovery(&s, &victim)
                .is_some_and(|r| r["step"] == "done" && started_at(&s, &victim) > since);
            if done {
                break;
            }
            let failed = recovery(&s, &victim).is_some_and(|r| r["step"] == "failed");
            assert!(!failed, "recovery of {victim} failed: {s:#}");
            last = s;
        }
        assert!(
            Instant::now() < deadline,
            "recovery of {victim} not done; last status: {last:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let recovered_after = killed.elapsed();
    let back = containers_on(&docker, &project, &victim).await;
    let mut web = None;
    for service in &services {
        let running: Vec<_> = back
            .iter()
            .filter(|c| {
                label(c, "infra.service") == service
                    && c.state.as_ref().is_some_and(|s| s.to_string() == "running")
            })
            .collect();
        assert_eq!(running.len(), 1, "{service} on {victim}: {back:?}");
        let c = running[0];
        assert_eq!(label(c, "infra.tag"), tag, "{service}: the live tag");
        assert_eq!(label(c, "infra.agent"), victim, "started by its agent");
        assert_eq!(label(c, "infra.environment"), "uat");
        if service == "web" {
            web = Some(c.clone());
        }
    }
    let web = web.unwrap();
    let id = web.id.as_deref().unwrap();
    assert_eq!(
        docker_env::docker(&["exec", id, "cat", "/run/secrets/api_key"]),
        secret,
        "the sealed secret, opened by the leader"
    );
    // Its published port answers the health path, and the leader's nginx
    // routes to it.
    let port = web
        .ports
        .as_ref()
        .and_then(|p| p.iter().find_map(|p| Some((p.ip.clone()?, p.public_port?))))
        .expect("a published port");
    let addr = SocketAddr::new(port.0.parse().unwrap(), port.1);
    loop {
        let answer = get(addr, "/health");
        let in_nginx = nginx_confs(&root.join(".infra/cloud"))
            .iter()
            .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains(&addr.to_string())));
        if body_is(&answer, "ok\n") && in_nginx && body_is(&get(lb, &health), "ok\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{victim}'s web at {addr}: {answer:?}, in nginx: {in_nginx}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "FIGURES: {victim} killed -> recovery done with {} container(s) of {tag} in {} ms",
        services.len(),
        recovered_after.as_millis()
    );

    let (ok, out, err) = c.infractl(&["-o", "json", "status"]).await;
    assert!(ok, "{err}");
    assert!(!out.contains(&secret), "secret in status");

    c.stop().await;
}
