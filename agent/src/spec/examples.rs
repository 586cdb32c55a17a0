//! The example config files and templates that `infractl init` writes,
//! embedded from the repository's `config/` and `templates/` directories.

use std::path::{Path, PathBuf};

use super::edit::write_atomic;
use super::error::{SpecError, SpecErrorKind};

/// Example files of `config/`: (file name, contents).
pub const EXAMPLE_CONFIG: &[(&str, &str)] = &[
    (
        "infrastructure.json",
        include_str!("../../../config/infrastructure.json"),
    ),
    (
        "deployment_config.json",
        include_str!("../../../config/deployment_config.json"),
    ),
    (
        "email_config.json",
        include_str!("../../../config/email_config.json"),
    ),
    (
        "sms_config.json",
        include_str!("../../../config/sms_config.json"),
    ),
    ("projects.csv", include_str!("../../../config/projects.csv")),
];

/// Templates of `templates/`: (file name, contents).
pub const EXAMPLE_TEMPLATES: &[(&str, &str)] = &[
    (
        "nginx.conf.tera",
        include_str!("../../../templates/nginx.conf.tera"),
    ),
    (
        "docker-compose.yml.tera",
        include_str!("../../../templates/docker-compose.yml.tera"),
    ),
    (
        "k8s-namespace.yaml.tera",
        include_str!("../../../templates/k8s-namespace.yaml.tera"),
    ),
    (
        "k8s-deployment.yaml.tera",
        include_str!("../../../templates/k8s-deployment.yaml.tera"),
    ),
    (
        "k8s-service.yaml.tera",
        include_str!("../../../templates/k8s-service.yaml.tera"),
    ),
    (
        "agent.service",
        include_str!("../../../templates/agent.service"),
    ),
    (
        "cloud-init.yaml.tera",
        include_str!("../../../templates/cloud-init.yaml.tera"),
    ),
    (
        "email-alert.txt.tera",
        include_str!("../../../templates/email-alert.txt.tera"),
    ),
    (
        "service.env.tera",
        include_str!("../../../templates/service.env.tera"),
    ),
];

/// Contents of the embedded example `name` (config file or template).
pub fn example(name: &str) -> Option<&'static str> {
    EXAMPLE_CONFIG
        .iter()
        .chain(EXAMPLE_TEMPLATES)
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
}

/// Writes every example config file into `config_dir` and every template
/// into `templates_dir`, creating the directories, and returns the paths
/// written. Without `force`, nothing is written if any target exists; the
/// error names the first one.
pub fn write_examples(
    config_dir: &Path,
    templates_dir: &Path,
    force: bool,
) -> Result<Vec<PathBuf>, SpecError> {
    let targets: Vec<(PathBuf, &str)> = EXAMPLE_CONFIG
        .iter()
        .map(|(n, c)| (config_dir.join(n), *c))
        .chain(
            EXAMPLE_TEMPLATES
                .iter()
                .map(|(n, c)| (templates_dir.join(n), *c)),
        )
        .collect();
    if let Some((p, _)) = targets.iter().find(|(p, _)| !force && p.exists()) {
        return Err(SpecError::new(p, "", SpecErrorKind::AlreadyExists));
    }
    for dir in [config_dir, templates_dir] {
        std::fs::create_dir_all(dir).map_err(|e| SpecError::io(dir, "create directory", &e))?;
    }
    let mut written = Vec::with_capacity(targets.len());
    for (path, contents) in targets {
        write_atomic(&path, contents.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load::*;

    #[test]
    fn embedded_examples_validate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        let tpl = dir.path().join("templates");
        let written = write_examples(&cfg, &tpl, false).unwrap();
        assert_eq!(
            written.len(),
            EXAMPLE_CONFIG.len() + EXAMPLE_TEMPLATES.len()
        );
        let loaded = load_dir(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let spec = loaded.spec();
        assert_eq!(spec.infrastructure.projects.len(), 2);
        assert_eq!(spec.infrastructure.projects["hostomatic"].web_droplets, 2);
        assert_eq!(
            spec.infrastructure.droplets[crate::spec::MASTER].size,
            "s-2vcpu-4gb"
        );
        let services = &spec.deployment.projects["hostomatic"].services;
        let names: Vec<&str> = services.keys().map(String::as_str).collect();
        assert_eq!(names, ["backend", "frontend", "worker_email", "scheduler"]);
        assert!(loaded.email.is_some() && loaded.sms.is_some());
        // The example CSV imports into a valid file too.
        let csv = example(PROJECTS_CSV_FILE).unwrap();
        let imported = crate::spec::csv_import::import_projects_csv(
            csv,
            Path::new("projects.csv"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(imported.file.infrastructure_spec.projects.len(), 2);
    }

    #[test]
    fn templates_compile_and_render() {
        let mut tera = tera::Tera::default();
        for (name, text) in EXAMPLE_TEMPLATES {
            if name.ends_with(".tera") {
                tera.add_raw_template(name, text)
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            }
        }
        // nginx, compose and k8s templates are rendered and tested by the
        // `lb` and `runtime::manifests` modules, with their own contexts.
        const OWNED_ELSEWHERE: [&str; 5] = [
            "nginx.conf.tera",
            "docker-compose.yml.tera",
            "k8s-deployment.yaml.tera",
            "k8s-namespace.yaml.tera",
            "k8s-service.yaml.tera",
        ];
        // Every template renders with the context its header documents.
        let ctx = tera::Context::from_serialize(&serde_json::json!({
            "project": "hostomatic", "environment": "prod", "service": "backend",
            "namespace": "hostomatic-prod", "name": "hostomatic-prod-backend",
            "image": "hostomatic-backend:v1.0.0-uat-20261125-0930", "replicas": 2,
            "kind": "web", "command": ["python", "app.py"], "container_port": 8000,
            "health_path": "/health", "port": 80,
            "env": [{"name": "MODE", "value": "prod"}],
            "secrets": [{"name": "DB_PASSWORD", "secret": "hostomatic-prod", "key": "db_password"}],
            "secret_names": ["db_password"],
            "services": [{"name": "hostomatic-prod-backend", "image": "img:1", "kind": "web",
                          "command": null, "host_port": 8123, "container_port": 8000,
                          "env_file": "/etc/infra/env/b.env", "secrets_dir": "/run/infra/secrets/b"}],
            "upstreams": [], "sites": [],
            "droplet_name": "hostomatic-web1", "role": "web",
            "agent_url": "http://127.0.0.1:1/agent", "agent_sha256": "00",
            "agent_toml": "[agent]\nname = \"hostomatic-web1\"", "agent_unit": "[Unit]",
            "ssh_authorized_keys": ["ssh-ed25519 AAAA test"],
            "subject_prefix": "[infra]", "event": "droplet_failed", "severity": "critical",
            "summary": "hostomatic-web1 is down", "at": "2026-11-25T09:30:00Z",
            "cluster_leader": "master", "details": ["3 of 3 monitors agree"],
            "droplets": [{"name": "hostomatic-web1", "ip": "10.0.0.2", "role": "web", "status": "down"}],
        }))
        .unwrap();
        let mut out = std::collections::BTreeMap::new();
        for (name, _) in EXAMPLE_TEMPLATES
            .iter()
            .filter(|(n, _)| n.ends_with(".tera") && !OWNED_ELSEWHERE.contains(n))
        {
            let text = tera
                .render(name, &ctx)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            out.insert(*name, text);
        }
        let init = &out["cloud-init.yaml.tera"];
        assert!(
            init.starts_with("#cloud-config\n")
                && init.contains("      name = \"hostomatic-web1\""),
            "{init}"
        );
        assert!(out["service.env.tera"].contains("DB_PASSWORD_FILE=/run/secrets/db_password"));
        assert!(
            out["email-alert.txt.tera"]
                .starts_with("Subject: [infra] CRITICAL: hostomatic-web1 is down")
        );
    }

    #[test]
    fn never_overwrites_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        let tpl = dir.path().join("templates");
        std::fs::create_dir_all(&cfg).unwrap();
        let mine = cfg.join("email_config.json");
        std::fs::write(&mine, "mine").unwrap();
        let err = write_examples(&cfg, &tpl, false).unwrap_err();
        assert_eq!(err.file, mine);
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read_to_string(&mine).unwrap(), "mine");
        assert!(
            !cfg.join("infrastructure.json").exists(),
            "wrote before checking"
        );
        write_examples(&cfg, &tpl, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(&mine).unwrap(),
            example(EMAIL_FILE).unwrap()
        );
    }
}
