//! `infractl deploy-uat`, `deploy-prod`, `reproduce` and `render` as an
//! operator runs them: the real binary, a git repository the test creates,
//! the local Docker engine and an nginx under `.infra/lb/`. Needs Docker,
//! the docker CLI, busybox-static and nginx (fails under CI=true without
//! them, says why it skips otherwise). Everything is removed on drop.

mod docker_env;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use docker_env::{available, git, remove_project};
use serde_json::{Value, json};

/// Removes the project's containers and images and stops the nginx.
struct Guard {
    project: String,
    lb_prefix: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        remove_project(&self.project);
        let _ = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(&self.lb_prefix)
            .args(["-c", "conf/nginx.conf", "-s", "stop"])
            .output();
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn deploy_uat_prod_reproduce_and_render() {
    if !available() {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let project = format!("cli{}x{nanos:x}", std::process::id());
    let root = tempfile::tempdir().unwrap();
    let _guard = Guard {
        project: project.clone(),
        lb_prefix: root.path().join(".infra/lb"),
    };

    // The project's repository.
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

    // Config: one project, two web droplets, a web service and a worker.
    let config = root.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
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
    let lb_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lb = SocketAddr::from(([127, 0, 0, 1], lb_port));
    let secret = format!("cli-secret-{nanos}");
    let infractl = |args: &[&str], with_secret: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_infractl"));
        cmd.current_dir(root.path())
            .env_remove("INFRA_CONFIG_DIR")
            .env_remove("API_KEY")
            .env("INFRACTL_LB_LISTEN", lb.to_string())
            .args(args);
        if with_secret {
            cmd.env("API_KEY", &secret);
        }
        let out = cmd.output().unwrap();
        let run = Run {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        };
        assert!(
            !run.stdout.contains(&secret) && !run.stderr.contains(&secret),
            "secret printed"
        );
        run
    };

    // A missing secret: exit 1 naming the variables tried.
    let run = infractl(&["deploy-uat", &project], false);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("API_KEY"), "{}", run.stderr);

    let run = infractl(&["deploy-uat", &project], true);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("==> building web"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("deployed {project} to uat: v1.2.0-uat-"))
    );
    let answer = get(lb, &format!("/{project}/uat/web/version"));
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("v1\n"),
        "{answer}"
    );

    // From a local checkout (same source; the release is rolled or kept).
    let origin_arg = origin.to_string_lossy().into_owned();
    let run = infractl(
        &[
            "deploy-uat",
            &project,
            "--local",
            "--project-path",
            &origin_arg,
        ],
        true,
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("==> using local checkout"),
        "{}",
        run.stdout
    );
    // Nothing older to roll back to in prod yet: a clear error.
    let run = infractl(&["rollback", &project, "prod"], true);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("no releases"), "{}", run.stderr);

    let run = infractl(&["-o", "json", "deploy-prod", &project], true);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let prod: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(prod["env"], "prod");
    let tag = prod["tag"].as_str().unwrap().to_string();
    assert!(tag.starts_with("v1.2.0-uat-"), "{tag}");
    let releases: Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join(".infra/releases.json")).unwrap(),
    )
    .unwrap();
    let uat_images = &releases["records"][format!("{project}/uat/{tag}")]["images"];
    assert_eq!(&prod["images"], uat_images, "prod runs uat's image ids");
    let answer = get(lb, &format!("/{project}/prod/web/version"));
    assert!(answer.ends_with("v1\n"), "{answer}");

    let run = infractl(&["reproduce", &tag, "--dir", "repro"], false);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join("repro/infra-deploy.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["tag"], tag.as_str());
    assert!(
        root.path()
            .join("repro")
            .join(&project)
            .join("Containerfile")
            .exists()
    );

    let run = infractl(&["render", "k8s", &project, "prod", "--out", "k8s"], false);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(root.path().join("k8s")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
        kinds.push(format!("{}:{name}", doc["kind"].as_str().unwrap()));
        if doc["kind"] == "Deployment" {
            let image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap();
            assert!(image.ends_with(&tag), "{image}");
        }
    }
    kinds.sort();
    let deployments = kinds
        .iter()
        .filter(|k| k.starts_with("Deployment:"))
        .count();
    let services: Vec<&String> = kinds.iter().filter(|k| k.starts_with("Service:")).collect();
    assert_eq!(deployments, 2, "{kinds:?}");
    assert_eq!(services.len(), 1, "{kinds:?}");
    assert!(services[0].contains("web"), "{kinds:?}");

    let run = infractl(&["render", "compose", &project, "uat"], false);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let compose: serde_norway::Value = serde_norway::from_str(&run.stdout).unwrap();
    assert!(
        compose["services"].as_mapping().unwrap().len() == 2,
        "{}",
        run.stdout
    );
}
