//! Deploys carried out by the cluster, end to end: infra-sim with real
//! `infra-agent` processes behind the droplets (master + two web
//! droplets), the real `infractl` binary, the local Docker engine and the
//! leader's own nginx. deploy-uat goes through an agent that is not the
//! leader (forwarded), each droplet's agent is asked for the images (and
//! would get them pushed through its `Images` gRPC service; here they share
//! one engine), every service container is started by the agent of the
//! droplet it is placed on (its `infra.agent` label names that droplet, also
//! for the containers a new leader starts), traffic through nginx reaches
//! the service, a rolling
//! redeploy under a bounded request loop loses no request, deploy-prod
//! runs UAT's image ids, reproduce checks out a release read from the
//! replicated state, rollback puts the previous release back, a
//! killed web droplet is recovered and the leader's balancer re-renders
//! with its new address, a new leader (the first one killed) starts and
//! records its own balancer serving every live release without any
//! deploy, then rolls back with the replicated releases and sealed
//! secrets, a deploy whose leader is killed mid-way is reported
//! interrupted and converged back to the live release, and the
//! secret is readable in the container but absent from `docker inspect`,
//! status, output and every file of the droplets (Raft log, snapshots).
//! Needs Docker, busybox-static and nginx: skips with a message without
//! them, fails under CI=true.

mod docker_env;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use docker_env::{available, body_is, docker, get, git, remove_project};
use infra_sim::{Backing, ProcessBacking, Profile, Sim, SimConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "e2e-deploy-token";

fn agent_binary() -> PathBuf {
    let agent = Path::new(env!("CARGO_BIN_EXE_infractl")).with_file_name("infra-agent");
    assert!(
        agent.exists(),
        "{} is missing: build it with `cargo build -p infra-agent`",
        agent.display()
    );
    agent
}

/// Removes the project's containers and images; stops the simulator (which
/// kills the droplet processes, and with the leader its nginx).
struct Guard {
    project: String,
    stop: CancellationToken,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop.cancel();
        remove_project(&self.project);
    }
}

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Checks that every container of `project` was started by the agent of
/// the droplet it is placed on (`infra.agent` = `infra.droplet`); returns
/// how many there are.
fn started_by_their_droplets(project: &str) -> usize {
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=infra.project={project}"),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    for id in &ids {
        let labels = docker(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"infra.droplet\"}} {{index .Config.Labels \"infra.agent\"}}",
            id,
        ]);
        let (droplet, agent) = labels.trim().split_once(' ').unwrap_or_default();
        assert!(
            droplet.starts_with(&format!("{project}-web")) && agent == droplet,
            "container {id} on `{droplet}` was started by agent `{agent}`"
        );
    }
    ids.len()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(ty) = entry.file_type() else { continue };
        if ty.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if ty.is_file()
            && std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            found.push(path);
        }
    }
    found
}

/// The last lines of every droplet's output (for failure reports).
fn droplet_logs(root: &Path) -> String {
    let mut text = String::new();
    let dir = root.join(".infra/cloud/droplets");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let log = std::fs::read_to_string(entry.path().join("output.log")).unwrap_or_default();
        // Up to a backtrace (the error and its causes, not the frames).
        let lines: Vec<&str> = log
            .lines()
            .take_while(|l| !l.to_lowercase().starts_with("stack backtrace"))
            .collect();
        text.push_str(&format!("--- {}\n", entry.path().display()));
        text.push_str(&lines[lines.len().saturating_sub(15)..].join("\n"));
        text.push('\n');
    }
    text
}

/// The rendered nginx.conf of the balancer listening on `lb` (under the
/// droplets' data directories).
fn lb_conf(root: &Path, lb: SocketAddr) -> Option<String> {
    fn walk(dir: &Path, want: &str) -> Option<String> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if let Some(found) = walk(&path, want) {
                    return Some(found);
                }
            } else if path.ends_with("lb/conf/nginx.conf") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if text.contains(want) {
                    return Some(text);
                }
            }
        }
        None
    }
    walk(&root.join(".infra/cloud/droplets"), &format!("listen {lb}"))
}

/// The `server` lines of upstream `name` in an nginx.conf.
fn upstream_servers(conf: &str, name: &str) -> Vec<String> {
    let Some(start) = conf.find(&format!("upstream {name} {{")) else {
        return Vec::new();
    };
    let block = &conf[start..];
    let block = &block[..block.find('}').unwrap_or(block.len())];
    block
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// A member's (generation, droplet IP, alive voter) from a status document.
fn member(status: &Value, name: &str) -> Option<(u64, String, bool)> {
    let m = status["members"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)?;
    let addr: SocketAddr = m["grpc_addr"].as_str()?.parse().ok()?;
    Some((
        m["generation"].as_u64()?,
        addr.ip().to_string(),
        m["state"] == "alive" && m["voter"] == true,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_through_a_follower_redeploy_promote_rollback_and_keep_the_secret() {
    if !available() {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let project = format!("e2e{:x}", nanos & 0xffffff);
    let root = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let _guard = Guard {
        project: project.clone(),
        stop: stop.clone(),
    };
    let sim = Sim::start(
        SimConfig {
            profile: Profile::Instant,
            backing: Backing::Process(ProcessBacking {
                command: agent_binary(),
                args: vec!["run".into()],
                base_dir: root.path().join(".infra/cloud"),
            }),
            tokens: vec![TOKEN.into()],
            ..SimConfig::default()
        },
        stop.clone(),
    )
    .await
    .expect("sim starts");

    // The project's repository: busybox httpd serving /health and /version.
    let origins = root.path().join("git");
    let origin = origins.join(&project);
    std::fs::create_dir_all(origin.join("www")).unwrap();
    std::fs::copy("/bin/busybox", origin.join("busybox")).unwrap();
    std::fs::write(origin.join("www/health"), "ok\n").unwrap();
    std::fs::write(origin.join("www/version"), "v1\n").unwrap();
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
    git(&origin, &["tag", "v1.2.0"]);

    let secret = format!("e2e-secret-{nanos}");
    let infractl = |args: Vec<String>| {
        let root = root.path().to_path_buf();
        let secret = secret.clone();
        async move {
            let out = tokio::time::timeout(
                Duration::from_secs(240),
                tokio::process::Command::new(env!("CARGO_BIN_EXE_infractl"))
                    .current_dir(&root)
                    .env_remove("DO_TOKEN")
                    .env_remove("INFRA_ENDPOINT")
                    .env_remove("INFRA_CONFIG_DIR")
                    .env("API_KEY", &secret)
                    .args(&args)
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "infractl {args:?} did not finish within 240 s; droplet logs:\n{}",
                    droplet_logs(&root)
                )
            })
            .expect("infractl runs");
            let run = Run {
                ok: out.status.success(),
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            assert!(
                !run.stdout.contains(&secret) && !run.stderr.contains(&secret),
                "secret printed by infractl {args:?}"
            );
            run
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let run = infractl(args(&["init"])).await;
    assert!(run.ok, "init: {}", run.stderr);
    let config = root.path().join("config");
    let infra = json!({"infrastructure_spec": {
        "droplets": {"master": {"size": "s-1vcpu-1gb", "region": "lon1", "role": "master"}},
        "projects": {project.clone(): {"environments": ["prod", "uat"], "web_droplets": 2,
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
    let context = json!({
        "version": 1, "api_url": sim.base_url(), "token": TOKEN, "endpoints": [],
        "pki_dir": config.join("pki"),
    });
    std::fs::create_dir_all(root.path().join(".infra")).unwrap();
    std::fs::write(root.path().join(".infra/context.json"), context.to_string()).unwrap();
    let run = infractl(args(&["orchestrate"])).await;
    assert!(run.ok, "orchestrate:\n{}\n{}", run.stdout, run.stderr);

    // A member that is not the leader.
    let run = infractl(args(&["-o", "json", "status"])).await;
    assert!(run.ok, "status: {}", run.stderr);
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    let leader = status["leader"].as_str().expect("a leader").to_string();
    let follower = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] != leader.as_str())
        .expect("a follower")["grpc_addr"]
        .as_str()
        .unwrap()
        .to_string();

    // The follower knows the leader (it joined moments ago).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = infractl(args(&["-o", "json", "status", "--endpoint", &follower])).await;
        let known = serde_json::from_str::<Value>(&run.stdout)
            .is_ok_and(|s| s["leader"].as_str() == Some(leader.as_str()));
        if known {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{follower} does not know the leader: {}",
            run.stdout
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // deploy-uat through the follower.
    let started = Instant::now();
    let deploy_started_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap();
    let run = infractl(args(&[
        "-o",
        "json",
        "deploy-uat",
        &project,
        "--endpoint",
        &follower,
    ]))
    .await;
    assert!(run.ok, "deploy-uat:\n{}\n{}", run.stdout, run.stderr);
    let first_deploy = started.elapsed();
    assert!(run.stderr.contains("==> building web"), "{}", run.stderr);
    // Each droplet's agent is asked for the images: a droplet that lacks
    // one gets it over gRPC (save -> mTLS -> load, id checked; covered by
    // the agent's images/containers tests), not through a registry. In the
    // local cloud the droplets share the leader's engine, which has it.
    for n in [1, 2] {
        let pushed = format!("==> delivering web image to {project}-web{n}");
        let there = format!("==> web image already on {project}-web{n}");
        assert!(
            run.stderr.contains(&pushed) || run.stderr.contains(&there),
            "{}",
            run.stderr
        );
    }
    // Web on both droplets, the worker on one: each started by the agent
    // of its droplet.
    assert_eq!(started_by_their_droplets(&project), 3);
    // A successful deploy snapshots the droplets that run the project.
    let snap_line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("==> snapshots after the deploy:"))
        .unwrap_or_else(|| panic!("no snapshot step: {}", run.stderr));
    for n in [1, 2] {
        assert!(
            snap_line.contains(&format!("{project}-web{n}-")),
            "{snap_line}"
        );
    }
    let snapshot_actions = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status < 300)
        .filter(|r| {
            r.request_body
                .as_ref()
                .is_some_and(|b| b["type"] == "snapshot")
        })
        .filter(|r| r.at_unix_ms >= deploy_started_ms)
        .count();
    assert!(
        snapshot_actions >= 2,
        "snapshot actions after the deploy: {snapshot_actions}"
    );
    let uat1: Value = serde_json::from_str(&run.stdout).unwrap();
    let tag1 = uat1["tag"].as_str().unwrap().to_string();
    assert!(tag1.starts_with("v1.2.0-uat-"), "{tag1}");
    let lb: SocketAddr = uat1["load_balancer"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let uat_path = format!("/{project}/uat/web/version");
    assert!(
        body_is(&get(lb, &uat_path), "v1\n"),
        "{:?}",
        get(lb, &uat_path)
    );

    // Status names the balancer and the live release.
    let run = infractl(args(&["-o", "json", "status", "--endpoint", &follower])).await;
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["load_balancer"], format!("http://{lb}").as_str());
    assert_eq!(status["releases"][format!("{project}/uat")], tag1.as_str());
    let run = infractl(args(&["status"])).await;
    assert!(
        run.stdout.contains(&format!("load balancer: http://{lb}")),
        "{}",
        run.stdout
    );

    // The secret: a file in the container, not in its config.
    let web = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=infra.project={project}"),
        "--filter",
        "label=infra.environment=uat",
        "--filter",
        "label=infra.service=web",
    ]);
    let web: Vec<&str> = web.split_whitespace().collect();
    assert_eq!(web.len(), 2, "one web container per droplet: {web:?}");
    for id in &web {
        assert_eq!(docker(&["exec", id, "cat", "/run/secrets/api_key"]), secret);
        assert!(
            !docker(&["inspect", id]).contains(&secret),
            "secret in docker inspect"
        );
    }

    // v2 (a new release version), rolled out under a bounded request loop.
    std::fs::write(origin.join("www/version"), "v2\n").unwrap();
    git(&origin, &["commit", "-qam", "v2"]);
    git(&origin, &["tag", "v1.3.0"]);
    let stop_loop = Arc::new(AtomicBool::new(false));
    let looping = {
        let (stop_loop, path) = (stop_loop.clone(), uat_path.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed, mut v2) = (0u32, Vec::new(), 0u32);
            let deadline = Instant::now() + Duration::from_secs(240);
            while !stop_loop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let answer = get(lb, &path);
                if body_is(&answer, "v1\n") || body_is(&answer, "v2\n") {
                    ok += 1;
                    v2 += u32::from(body_is(&answer, "v2\n"));
                } else {
                    failed.push(answer.unwrap_or_else(|| "no answer".into()));
                }
                // A steady client below the balancer's per-client rate
                // limit (50 r/s, burst 100): 40 requests a second.
                std::thread::sleep(Duration::from_millis(25));
            }
            (ok, failed, v2)
        })
    };
    let run = infractl(args(&["-o", "json", "deploy-uat", &project])).await;
    stop_loop.store(true, Ordering::SeqCst);
    let (ok, failed, v2) = looping.join().unwrap();
    assert!(run.ok, "deploy-uat v2:\n{}\n{}", run.stdout, run.stderr);
    let uat2: Value = serde_json::from_str(&run.stdout).unwrap();
    let tag2 = uat2["tag"].as_str().unwrap().to_string();
    assert!(tag2.starts_with("v1.3.0-uat-"), "{tag2}");
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        ok + failed.len() as u32,
        &failed[..failed.len().min(3)]
    );
    assert!(v2 > 0 && ok > 20, "the loop ran ({ok} ok, {v2} from v2)");
    assert!(body_is(&get(lb, &uat_path), "v2\n"));
    eprintln!(
        "FIGURES: first deploy-uat {} ms (build {} ms, rollout {} ms); redeploy build {} ms, \
         rollout {} ms; requests during the rolling redeploy: {ok} ok, {} failed",
        first_deploy.as_millis(),
        uat1["build_ms"],
        uat1["rollout_ms"],
        uat2["build_ms"],
        uat2["rollout_ms"],
        failed.len()
    );

    // Prod runs the very images UAT ran for the tag.
    let run = infractl(args(&[
        "-o",
        "json",
        "deploy-prod",
        &project,
        "--tag",
        &tag2,
    ]))
    .await;
    assert!(run.ok, "deploy-prod:\n{}\n{}", run.stdout, run.stderr);
    let prod: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(prod["env"], "prod");
    assert_eq!(prod["images"], uat2["images"], "prod runs uat's image ids");
    assert_eq!(prod["build_ms"], 0);
    assert!(body_is(
        &get(lb, &format!("/{project}/prod/web/version")),
        "v2\n"
    ));

    // Reproduce reads the release from the cluster's replicated state (no
    // local release log exists here) and checks out that exact source.
    assert!(!root.path().join(".infra/releases.json").exists());
    let repro = root.path().join("repro");
    let run = infractl(args(&[
        "-o",
        "json",
        "reproduce",
        &tag1,
        "--dir",
        &repro.to_string_lossy(),
    ]))
    .await;
    assert!(run.ok, "reproduce:\n{}\n{}", run.stdout, run.stderr);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(repro.join("infra-deploy.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["tag"], tag1.as_str(), "{manifest}");
    assert_eq!(manifest["images"], uat1["images"], "{manifest}");
    assert_eq!(
        std::fs::read_to_string(repro.join(&project).join("www/version")).unwrap(),
        "v1\n",
        "the source of {tag1}, not of main"
    );
    let unknown = format!("v9.9.9-uat-{nanos}");
    let run = infractl(args(&[
        "reproduce",
        &unknown,
        "--dir",
        &repro.to_string_lossy(),
    ]))
    .await;
    assert_eq!(run.code, Some(2), "unknown tag: {}", run.stderr);
    assert!(
        run.stderr.contains(&unknown) && run.stderr.contains(&tag1) && run.stderr.contains(&tag2),
        "names the tag and the known ones: {}",
        run.stderr
    );

    // Rollback of uat: back to v1 at once, with the stored (sealed) secret.
    let run = infractl(args(&[
        "-o",
        "json",
        "rollback",
        &project,
        "uat",
        "--endpoint",
        &follower,
    ]))
    .await;
    assert!(run.ok, "rollback:\n{}\n{}", run.stdout, run.stderr);
    let back: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(back["tag"], tag1.as_str());
    assert_eq!(back["images"], uat1["images"]);
    assert!(body_is(&get(lb, &uat_path), "v1\n"));
    // The rollback sent no secret: the leader opened the sealed one.
    let web = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=infra.project={project}"),
        "--filter",
        "label=infra.environment=uat",
        "--filter",
        "label=infra.service=web",
    ]);
    for id in web.split_whitespace() {
        assert_eq!(docker(&["exec", id, "cat", "/run/secrets/api_key"]), secret);
    }
    let run = infractl(args(&["-o", "json", "status"])).await;
    assert!(!run.stdout.contains(&secret), "secret in status");
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["releases"][format!("{project}/uat")], tag1.as_str());
    assert_eq!(status["releases"][format!("{project}/prod")], tag2.as_str());

    // A web droplet (neither the leader nor the follower we talk to) is
    // killed: once its failure is confirmed the leader's balancer drops its
    // backend (traffic keeps flowing through the other one) and renders it
    // back, at the recovered droplet's address, once it is recovered.
    let victim = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .find(|n| {
            *n != leader
                && n.contains("-web")
                && member(&status, n)
                    .is_some_and(|(_, ip, _)| !follower.starts_with(&format!("{ip}:")))
        })
        .expect("a third web droplet")
        .to_string();
    let (old_gen, old_ip, _) = member(&status, &victim).unwrap();
    let upstream = format!("{project}-uat-web");
    let servers = || upstream_servers(&lb_conf(root.path(), lb).unwrap_or_default(), &upstream);
    let on =
        |servers: &[String], ip: &str| servers.iter().any(|b| b.starts_with(&format!("{ip}:")));
    let before = servers();
    assert!(on(&before, &old_ip), "{victim} ({old_ip}) in {before:?}");
    let run = infractl(args(&["sim", "kill", &victim])).await;
    assert!(run.ok, "sim kill: {}", run.stderr);
    let killed_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = servers();
        if !now.is_empty() && !on(&now, &old_ip) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{victim}'s backend never left the balancer: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dropped_in = killed_at.elapsed();
    assert!(
        body_is(&get(lb, &uat_path), "v1\n"),
        "traffic while {victim} is down: {:?}",
        get(lb, &uat_path)
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let new_ip = loop {
        let run = infractl(args(&["-o", "json", "status", "--endpoint", &follower])).await;
        let back = serde_json::from_str::<Value>(&run.stdout)
            .ok()
            .and_then(|s| member(&s, &victim))
            .filter(|(g, _, alive)| *g > old_gen && *alive);
        if let Some((_, ip, _)) = back {
            break ip;
        }
        assert!(
            Instant::now() < deadline,
            "{victim} not recovered: {}\n{}",
            run.stdout,
            droplet_logs(root.path())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let now = servers();
        if on(&now, &new_ip) {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the balancer was not re-rendered for {victim} at {new_ip}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let back_in = killed_at.elapsed();
    assert_eq!(after.len(), before.len(), "{before:?} -> {after:?}");
    assert!(
        body_is(&get(lb, &uat_path), "v1\n"),
        "traffic after the recovery: {:?}",
        get(lb, &uat_path)
    );
    eprintln!(
        "FIGURES: {victim} killed -> backend dropped in {} ms, recovered and rendered back in {} ms",
        dropped_in.as_millis(),
        back_in.as_millis()
    );

    // The leader dies: a new one knows the releases and the sealed
    // secrets, and its own nginx serves every live release at once.
    let run = infractl(args(&["sim", "kill", &leader])).await;
    assert!(run.ok, "sim kill: {}", run.stderr);
    let deadline = Instant::now() + Duration::from_secs(90);
    let new_leader = loop {
        let run = infractl(args(&["-o", "json", "status", "--endpoint", &follower])).await;
        let now = serde_json::from_str::<Value>(&run.stdout)
            .ok()
            .and_then(|s| s["leader"].as_str().map(str::to_string));
        if let Some(name) = now.filter(|n| *n != leader) {
            break name;
        }
        assert!(Instant::now() < deadline, "no new leader: {}", run.stdout);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Without any deploy or rollback, the new leader records its own
    // balancer and serves every live release through it.
    let elected = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    let lb2: SocketAddr = loop {
        let run = infractl(args(&["-o", "json", "status", "--endpoint", &follower])).await;
        let url = serde_json::from_str::<Value>(&run.stdout)
            .ok()
            .and_then(|s| s["load_balancer"].as_str().map(str::to_string))
            .filter(|u| *u != format!("http://{lb}"));
        if let Some(url) = url {
            break url.trim_start_matches("http://").parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{new_leader} recorded no balancer: {}",
            run.stdout
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let serving_in = elected.elapsed();
    assert!(
        body_is(&get(lb2, &uat_path), "v1\n"),
        "uat through {new_leader}'s balancer: {:?}",
        get(lb2, &uat_path)
    );
    assert!(
        body_is(&get(lb2, &format!("/{project}/prod/web/version")), "v2\n"),
        "prod through {new_leader}'s balancer"
    );
    eprintln!(
        "FIGURES: new leader elected -> its balancer recorded and serving in {} ms",
        serving_in.as_millis()
    );
    let run = infractl(args(&[
        "-o",
        "json",
        "rollback",
        &project,
        "uat",
        "--to",
        &tag2,
        "--endpoint",
        &follower,
    ]))
    .await;
    assert!(
        run.ok,
        "rollback on {new_leader}:\n{}\n{}",
        run.stdout, run.stderr
    );
    let again: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(again["tag"], tag2.as_str());
    assert_eq!(again["images"], uat2["images"]);
    assert_eq!(again["load_balancer"], format!("http://{lb2}").as_str());
    assert_ne!(lb2, lb, "the new leader runs its own balancer");
    assert!(
        body_is(&get(lb2, &uat_path), "v2\n"),
        "{:?}",
        get(lb2, &uat_path)
    );
    let prod_path = format!("/{project}/prod/web/version");
    assert!(
        body_is(&get(lb2, &prod_path), "v2\n"),
        "prod routed from the state: {:?}",
        get(lb2, &prod_path)
    );
    let web = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=infra.project={project}"),
        "--filter",
        "label=infra.environment=uat",
        "--filter",
        "label=infra.service=web",
    ]);
    for id in web.split_whitespace() {
        assert_eq!(docker(&["exec", id, "cat", "/run/secrets/api_key"]), secret);
    }

    // The new leader's containers too: started by their droplets' agents.
    assert!(started_by_their_droplets(&project) >= 3);

    // A deploy interrupted by a leader change: once every member is back
    // (the first leader is recovered), a v3 deploy starts and its leader
    // is killed mid-way. The next leader reports the deploy interrupted,
    // converges the droplets back to the live release (tag2, v2) and marks
    // it done, without any command from us.
    let deadline = Instant::now() + Duration::from_secs(180);
    let members: Vec<(String, String)> = loop {
        let run = infractl(args(&["-o", "json", "status", "--endpoint", &follower])).await;
        let s = serde_json::from_str::<Value>(&run.stdout).unwrap_or(Value::Null);
        let all: Vec<(String, String)> = s["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["state"] == "alive" && m["voter"] == true)
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or_default().to_string(),
                    m["grpc_addr"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if all.len() == 3 && s["leader"].as_str() == Some(new_leader.as_str()) {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster is not whole again: {}",
            run.stdout
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let survivor = members
        .iter()
        .find(|(name, _)| *name != new_leader)
        .map(|(_, addr)| addr.clone())
        .unwrap();
    std::fs::write(origin.join("www/version"), "v3\n").unwrap();
    git(&origin, &["commit", "-qam", "v3"]);
    git(&origin, &["tag", "v1.4.0"]);
    let deploy = tokio::spawn(infractl(args(&[
        "-o",
        "json",
        "deploy-uat",
        &project,
        "--endpoint",
        &survivor,
    ])));
    let key = format!("{project}/uat");
    let deploy_of = |s: &Value| {
        s["deploys"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["target"] == key.as_str())
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = infractl(args(&["-o", "json", "status", "--endpoint", &survivor])).await;
        let running = serde_json::from_str::<Value>(&run.stdout)
            .ok()
            .and_then(|s| deploy_of(&s))
            .is_some_and(|d| d["action"] == "deploy-uat" && d["finished_at"].is_null());
        if running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the v3 deploy never started: {}",
            run.stdout
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = infractl(args(&["sim", "kill", &new_leader])).await;
    assert!(run.ok, "sim kill: {}", run.stderr);
    let interrupted_at = Instant::now();
    let cut = deploy.await.unwrap();
    assert!(
        !cut.ok,
        "the deploy whose leader died fails: {}",
        cut.stdout
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let (done, lb3) = loop {
        let run = infractl(args(&["-o", "json", "status", "--endpoint", &survivor])).await;
        let s = serde_json::from_str::<Value>(&run.stdout).unwrap_or(Value::Null);
        let done =
            deploy_of(&s).filter(|d| d["interrupted"] == true && !d["finished_at"].is_null());
        if let (Some(done), Some(lb3)) = (done, s["load_balancer"].as_str()) {
            break (done, lb3.trim_start_matches("http://").to_string());
        }
        assert!(
            Instant::now() < deadline,
            "the interrupted deploy was not converged: {}\n{}",
            run.stdout,
            droplet_logs(root.path())
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let converged_in = interrupted_at.elapsed();
    assert_eq!(
        done["outcome"],
        format!("interrupted; converged back to {tag2}").as_str(),
        "{done}"
    );
    let run = infractl(args(&["-o", "json", "status", "--endpoint", &survivor])).await;
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        status["releases"][&key],
        tag2.as_str(),
        "the live release stays"
    );
    let lb3: SocketAddr = lb3.parse().unwrap();
    assert!(
        body_is(&get(lb3, &uat_path), "v2\n"),
        "the droplets run the live release again: {:?}",
        get(lb3, &uat_path)
    );
    eprintln!(
        "FIGURES: deploy interrupted by a leader kill -> converged back to the live release in {} ms",
        converged_in.as_millis()
    );

    // Never plaintext in any droplet file: Raft log, snapshots, logs.
    let leaked = files_containing(&root.path().join(".infra/cloud"), secret.as_bytes());
    assert!(leaked.is_empty(), "secret in {leaked:?}");
    let sealed_somewhere = files_containing(&root.path().join(".infra/cloud"), b"store_secrets");
    assert!(
        !sealed_somewhere.is_empty(),
        "the sealed secrets are in the Raft files"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), sim.join())
        .await
        .expect("sim stops and kills the droplet processes");
}
