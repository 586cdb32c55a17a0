//! Unit tests of the rendered manifests, parsed back as YAML.

use super::*;
use serde_norway::Value;

fn input() -> RenderInput {
    RenderInput {
        project: "hostomatic".into(),
        env: "prod".into(),
        services: vec![
            ServiceManifest {
                name: "backend".into(),
                kind: ServiceKind::Web,
                image: "hostomatic-backend:v1.2.0-uat-20261125-0907".into(),
                containerfile_path: "backend/Containerfile".into(),
                command: None,
                environment: vec![
                    ("LOG_LEVEL".into(), "info".into()),
                    ("GREETING".into(), "say \"hi\": yes # not a comment".into()),
                ],
                secrets: vec!["db_password".into()],
                container_port: 8000,
                host_port: 20345,
                health_path: "/health".into(),
                replicas: 2,
            },
            ServiceManifest {
                name: "emails".into(),
                kind: ServiceKind::Worker,
                image: "hostomatic-emails:v1".into(),
                containerfile_path: "Containerfile".into(),
                command: Some("python -m worker --queue 'mail'".into()),
                environment: vec![],
                secrets: vec!["db_password".into(), "smtp_key".into()],
                container_port: 8000,
                host_port: 0,
                health_path: "/health".into(),
                replicas: 1,
            },
        ],
    }
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

#[test]
fn k8s_has_namespace_deployments_and_web_service_only() {
    let files = render_k8s(&input()).unwrap();
    let names: Vec<&str> = files.iter().map(|m| m.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "namespace.yaml",
            "backend-deployment.yaml",
            "backend-service.yaml",
            "emails-deployment.yaml"
        ]
    );
    let ns = yaml(&files[0].content);
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["metadata"]["name"], "hostomatic-prod");

    let web = yaml(&files[1].content);
    assert_eq!(web["kind"], "Deployment");
    assert_eq!(web["metadata"]["name"], "hostomatic-prod-backend");
    assert_eq!(web["metadata"]["namespace"], "hostomatic-prod");
    assert_eq!(web["spec"]["replicas"], 2);
    let c = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "hostomatic-backend:v1.2.0-uat-20261125-0907");
    assert_eq!(c["ports"][0]["containerPort"], 8000);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["env"][1]["value"], "say \"hi\": yes # not a comment");
    assert_eq!(c["volumeMounts"][0]["mountPath"], "/run/secrets");
    let vol = &web["spec"]["template"]["spec"]["volumes"][0]["secret"];
    assert_eq!(vol["secretName"], "hostomatic-prod-backend-secrets");
    assert_eq!(
        web["spec"]["selector"]["matchLabels"]["app"],
        web["spec"]["template"]["metadata"]["labels"]["app"]
    );
    assert_eq!(web["metadata"]["labels"]["infra.managed"], "true");

    let svc = yaml(&files[2].content);
    assert_eq!(svc["kind"], "Service");
    assert_eq!(svc["spec"]["selector"]["app"], "hostomatic-prod-backend");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8000);

    let worker = yaml(&files[3].content);
    let c = &worker["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"][2], "python -m worker --queue 'mail'");
    assert!(c.get("ports").is_none());
    // Secrets: only where the files are, never their values.
    assert_eq!(c["env"][0]["name"], "DB_PASSWORD_FILE");
    assert_eq!(c["env"][1]["name"], "SMTP_KEY_FILE");
    assert_eq!(c["env"][1]["value"], "/run/secrets/smtp_key");
}

#[test]
fn compose_has_services_ports_and_file_secrets() {
    let m = render_compose(&input()).unwrap();
    assert_eq!(m.file_name, "docker-compose.yml");
    let doc = yaml(&m.content);
    assert_eq!(doc["name"], "hostomatic-prod");
    let web = &doc["services"]["hostomatic-prod-backend"];
    assert_eq!(web["restart"], "unless-stopped");
    assert_eq!(web["ports"][0], "127.0.0.1:20345:8000");
    assert_eq!(web["build"]["dockerfile"], "backend/Containerfile");
    assert_eq!(web["environment"]["LOG_LEVEL"], "info");
    assert_eq!(web["secrets"][0], "db_password");
    assert_eq!(
        web["environment"]["DB_PASSWORD_FILE"],
        "/run/secrets/db_password"
    );
    let worker = &doc["services"]["hostomatic-prod-emails"];
    assert!(worker.get("ports").is_none());
    assert_eq!(worker["command"][2], "python -m worker --queue 'mail'");
    assert_eq!(doc["secrets"]["smtp_key"]["file"], "./secrets/smtp_key");
    assert_eq!(doc["secrets"].as_mapping().unwrap().len(), 2);
    assert!(m.content.contains("HOSTOMATIC_PROD_<NAME>"));
}

#[test]
fn bad_names_are_rejected_with_the_field() {
    let mut i = input();
    i.project = "Host Omatic".into();
    let err = render_k8s(&i).unwrap_err().to_string();
    assert!(err.contains("project `Host Omatic`"), "{err}");

    let mut i = input();
    i.services[0]
        .environment
        .push(("BAD KEY: x".into(), "v".into()));
    let err = render_compose(&i).unwrap_err().to_string();
    assert!(err.contains("environment variable"), "{err}");

    let mut i = input();
    i.services[1].secrets.push("../etc".into());
    assert!(render_k8s(&i).is_err());
}

#[test]
fn input_from_deployment_config() {
    let cfg: crate::spec::DeploymentConfig = serde_json::from_value(serde_json::json!({
        "projects": {"shop": {"services": {
            "web": {"type": "web", "containerfile_path": "Dockerfile", "secrets": ["db_password"]},
            "mailer": {"type": "worker", "containerfile_path": "Dockerfile", "command": "run-mailer"}
        }}}
    }))
    .unwrap();
    let input =
        RenderInput::from_deployment(&cfg, "shop", "uat", "v0.1.0-uat-20261125-0900", 1, |s| {
            if s == "web" { 20001 } else { 0 }
        })
        .unwrap();
    assert_eq!(input.services.len(), 2);
    assert_eq!(input.services[0].image, "shop-web:v0.1.0-uat-20261125-0900");
    assert_eq!(input.services[0].host_port, 20001);
    assert_eq!(input.services[1].command.as_deref(), Some("run-mailer"));
    let files = render_k8s(&input).unwrap();
    assert_eq!(files.len(), 4);
    let err = RenderInput::from_deployment(&cfg, "nope", "uat", "t", 1, |_| 0).unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");
}
