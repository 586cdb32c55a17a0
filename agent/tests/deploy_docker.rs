//! Deploy building blocks against the real Docker engine: git-derived
//! version tags, image build from a clone, save/remove/load, web and worker
//! containers, secrets as tmpfs-backed files that never show in inspect or
//! logs. Needs Docker and busybox-static (fails under CI=true without them).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::TryStreamExt;
use infra_agent::deploy::cutover::http_get;
use infra_agent::deploy::{SecretValue, UatTag, git, resolve_secrets};
use infra_agent::runtime::{
    BuildRequest, ContainerRuntime, ContainerSpec, PortPublish, ServiceLabels,
};
use infra_agent::spec::GitConfig;
use support::*;

fn labels(service: &str, tag: &str) -> ServiceLabels {
    ServiceLabels {
        project: "hostomatic".into(),
        environment: "uat".into(),
        service: service.into(),
        tag: tag.into(),
    }
}

#[tokio::test]
async fn version_tag_build_save_and_load() {
    let id = test_id("ver");
    let secrets_root = secrets_root(&id);
    let Some(rt) = docker(&secrets_root).await else {
        return;
    };
    let image_repo = format!("infra-test-{id}");
    let mut guard = Cleanup {
        runtime: rt.clone(),
        id: id.clone(),
        images: vec![],
        secrets_root,
    };

    // A project repository with release tags.
    let origins = tempfile::tempdir().unwrap();
    let origin = origins.path().join("hostomatic");
    std::fs::create_dir(&origin).unwrap();
    support::git(&origin, &["init", "-q", "-b", "main"]);
    busybox_context(&origin, "v1", &id);
    support::git(&origin, &["add", "-A"]);
    support::git(&origin, &["commit", "-qm", "first"]);
    for t in ["v1.1.0", "v1.2.0", "v1.10.0-rc1", "nightly"] {
        support::git(&origin, &["tag", t]);
    }
    let work = tempfile::tempdir().unwrap();
    let clone_dir = work.path().join("hostomatic");
    let git_config = GitConfig {
        base_url: origins.path().to_string_lossy().into_owned(),
        url_pattern: "{base_url}/{project}".into(),
    };
    git::clone_project(&git_config, "hostomatic", "main", &clone_dir)
        .await
        .unwrap();
    let url = git_config.repo_url("hostomatic");
    let tags = git::tags(&clone_dir).await.unwrap();
    let now = chrono::Utc::now();
    let tag = UatTag::for_deploy(tags.iter().map(String::as_str), now).to_string();
    assert_eq!(
        tag,
        format!("v1.2.0-uat-{}", now.format("%Y%m%d-%H%M")),
        "tags: {tags:?}"
    );
    let written = git::write_tag(&clone_dir, &tag).await.unwrap();
    assert_eq!(written, git::TagWritten::Pushed);
    assert!(
        support::git(&origin, &["tag", "--list"])
            .lines()
            .any(|l| l == tag)
    );
    // An origin that refuses the push keeps the tag local, with the reason.
    let hook = origin.join(".git/hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho read-only origin >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    match git::write_tag(&clone_dir, "v1.2.0-uat-20000101-0000")
        .await
        .unwrap()
    {
        git::TagWritten::LocalOnly { reason } => {
            assert!(reason.contains("read-only origin"), "{reason}")
        }
        other => panic!("push to a refusing origin: {other:?}"),
    }
    assert!(
        git::tags(&clone_dir)
            .await
            .unwrap()
            .contains(&"v1.2.0-uat-20000101-0000".to_string())
    );
    let missing = git::clone(&url, "no-such-branch", &work.path().join("x")).await;
    assert!(missing.unwrap_err().to_string().contains("no-such-branch"));

    // Build from the clone.
    let image = format!("{image_repo}:{tag}");
    guard.images.push(image.clone());
    let started = std::time::Instant::now();
    let image_id = rt
        .build_image(&BuildRequest {
            context_dir: clone_dir.clone(),
            containerfile: "Containerfile".into(),
            tag: image.clone(),
            labels: BTreeMap::from([("infra.test".into(), id.clone())]),
        })
        .await
        .unwrap();
    eprintln!("build took {:?}", started.elapsed());
    assert!(image_id.starts_with("sha256:"), "{image_id}");
    let info = rt.inspect_image(&image).await.unwrap();
    assert_eq!(info.id, image_id);
    assert_eq!(info.labels.get("infra.test"), Some(&id));

    // Registry-less delivery: save, remove, load.
    let saved: Vec<bytes::Bytes> = rt
        .save_image(&image)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let size: usize = saved.iter().map(|b| b.len()).sum();
    eprintln!("saved image: {size} bytes");
    rt.remove_image(&image).await.unwrap();
    assert!(!rt.image_exists(&image).await.unwrap());
    assert!(!rt.image_exists(&image_id).await.unwrap());
    let stream = futures::stream::iter(saved.into_iter().map(Ok));
    let loaded = rt.load_image(Box::pin(stream)).await.unwrap();
    assert!(loaded.iter().any(|l| l.contains(&tag)), "{loaded:?}");
    assert_eq!(rt.inspect_image(&image).await.unwrap().id, image_id);

    // A containerfile outside the context is refused before any build.
    let err = rt
        .build_image(&BuildRequest {
            context_dir: clone_dir.clone(),
            containerfile: "../Containerfile".into(),
            tag: format!("{image_repo}:bad"),
            labels: BTreeMap::new(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("containerfile_path"), "{err}");
}

#[tokio::test]
async fn web_and_worker_with_secret_files() {
    let id = test_id("run");
    let secrets_root = secrets_root(&id);
    let Some(rt) = docker(&secrets_root).await else {
        return;
    };
    let image = format!("infra-test-{id}:v1");
    let _guard = Cleanup {
        runtime: rt.clone(),
        id: id.clone(),
        images: vec![image.clone()],
        secrets_root: secrets_root.clone(),
    };
    let ctx = tempfile::tempdir().unwrap();
    busybox_context(ctx.path(), "v1", &id);
    rt.build_image(&BuildRequest {
        context_dir: ctx.path().into(),
        containerfile: "Containerfile".into(),
        tag: image.clone(),
        labels: BTreeMap::new(),
    })
    .await
    .unwrap();

    let password = format!("pw-{}", id.chars().rev().collect::<String>());
    let env_vars = BTreeMap::from([("HOSTOMATIC_UAT_DB_PASSWORD".to_string(), password.clone())]);
    let secrets =
        resolve_secrets("hostomatic", "uat", &["db_password".to_string()], &env_vars).unwrap();
    let port = free_port();
    let web = ContainerSpec {
        name: format!("hostomatic-uat-web-{id}"),
        image: image.clone(),
        labels: labels("web", "v1"),
        extra_labels: BTreeMap::from([("infra.test".into(), id.clone())]),
        command: None,
        env: BTreeMap::from([("APP_MODE".into(), "uat".into())]),
        publish: Some(PortPublish {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: port,
            container_port: 8000,
        }),
        secrets,
        init: true,
    };
    assert!(
        !format!("{web:?}").contains(&password),
        "spec Debug leaks the secret"
    );
    rt.run(&web).await.unwrap();
    let worker = ContainerSpec {
        name: format!("hostomatic-uat-worker-{id}"),
        command: Some(
            [
                "/bin/busybox",
                "sh",
                "-c",
                "while true; do echo worker tick; sleep 0.2; done",
            ]
            .map(String::from)
            .to_vec(),
        ),
        labels: labels("worker", "v1"),
        publish: None,
        secrets: BTreeMap::from([("api_key".to_string(), SecretValue::new("k-123"))]),
        ..web.clone()
    };
    rt.run(&worker).await.unwrap();

    let body = poll("web health", Duration::from_secs(20), || async {
        match http_get(local(port), "/health", Duration::from_secs(1)).await {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    })
    .await;
    assert_eq!(body.trim(), "ok");
    poll("worker log", Duration::from_secs(20), || async {
        let logs = rt.logs_tail(&worker.name, 5).await.unwrap();
        logs.contains("worker tick").then_some(())
    })
    .await;

    // The secret is a file in the container, read-only, on a tmpfs.
    let read = exec_output(
        &rt,
        &web.name,
        &["/bin/busybox", "cat", "/run/secrets/db_password"],
    )
    .await;
    assert_eq!(read, password);
    let mounts = exec_output(&rt, &web.name, &["/bin/busybox", "cat", "/proc/mounts"]).await;
    let line = mounts
        .lines()
        .find(|l| l.contains(" /run/secrets "))
        .expect(&mounts);
    assert!(line.contains(" ro,") || line.contains(" ro "), "{line}");
    let write = exec_output(
        &rt,
        &web.name,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "echo x > /run/secrets/db_password",
        ],
    )
    .await;
    assert!(write.contains("Read-only"), "{write}");
    let secrets_fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&secrets_root)
        .output()
        .unwrap();
    let fs_type = String::from_utf8_lossy(&secrets_fs.stdout)
        .trim()
        .to_string();
    assert_eq!(fs_type, "tmpfs", "secret files must live on a tmpfs");
    let env = exec_output(&rt, &web.name, &["/bin/busybox", "env"]).await;
    assert!(
        env.contains("APP_MODE=uat") && !env.contains(&password),
        "{env}"
    );

    // Never in inspect output or logs.
    for name in [&web.name, &worker.name] {
        let raw = rt.client().inspect_container(name, None).await.unwrap();
        let json = serde_json::to_string(&raw).unwrap();
        assert!(
            !json.contains(&password) && !json.contains("k-123"),
            "inspect leaks a secret"
        );
        let logs = rt.logs_tail(name, 1000).await.unwrap();
        assert!(!logs.contains(&password) && !logs.contains("k-123"));
    }

    // Listing by label, labels and published port as inspected.
    let mine = BTreeMap::from([
        ("infra.test".to_string(), id.clone()),
        ("infra.managed".to_string(), "true".to_string()),
    ]);
    let listed = rt.list(&mine).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let w = listed.iter().find(|c| c.name == web.name).unwrap();
    assert!(w.running);
    assert_eq!(w.labels["infra.service"], "web");
    assert_eq!(w.labels["infra.project"], "hostomatic");
    assert_eq!(w.ports, vec![(8000, "127.0.0.1".to_string(), port)]);
    let only_workers = BTreeMap::from([
        ("infra.test".to_string(), id.clone()),
        ("infra.service".to_string(), "worker".to_string()),
    ]);
    assert_eq!(rt.list(&only_workers).await.unwrap().len(), 1);
    let restart = rt
        .client()
        .inspect_container(&web.name, None)
        .await
        .unwrap();
    let policy = restart
        .host_config
        .unwrap()
        .restart_policy
        .unwrap()
        .name
        .unwrap();
    assert_eq!(policy.to_string(), "unless-stopped");

    // Stop + remove: gone, with its secret files.
    rt.stop(&web.name, Duration::from_secs(1)).await.unwrap();
    assert!(!rt.inspect(&web.name).await.unwrap().unwrap().running);
    rt.remove(&web.name).await.unwrap();
    assert_eq!(rt.inspect(&web.name).await.unwrap(), None);
    assert!(!secrets_root.join(&web.name).exists());
    rt.remove(&web.name).await.unwrap();
}
