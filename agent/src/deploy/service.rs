//! How one service of a project+environment becomes a container: image
//! reference, container name, labels, command, environment and secrets
//! (pure mapping from the spec to a [`ContainerSpec`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::deploy::SecretValue;
use crate::runtime::{ContainerSpec, PortPublish, ServiceLabels};
use crate::spec::{ServiceKind, ServiceSpec, service_name};

/// The local image reference of a service release: `<project>-<service>:<tag>`.
pub fn image_ref(project: &str, service: &str, tag: &str) -> String {
    format!("{project}-{service}:{tag}")
}

/// The container name of a release: `<project>-<env>-<service>-<tag>`, so
/// old and new containers of a cutover can run side by side.
pub fn container_name(project: &str, env: &str, service: &str, tag: &str) -> String {
    format!("{}-{tag}", service_name(project, env, service))
}

/// A shell-form command (`/bin/sh -c <command>`), as the spec's `command`
/// is one string.
pub fn shell_command(command: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), command.into()]
}

/// The host port for a new web container: a cutover runs the new container
/// beside the old one, so releases alternate between the service's two
/// ports (`primary`, `alternate`), starting on `primary`.
pub fn next_host_port(primary: u16, alternate: u16, current: Option<u16>) -> u16 {
    if current == Some(primary) {
        alternate
    } else {
        primary
    }
}

/// The environment variable telling a program where secret `name` is:
/// `<NAME>_FILE=/run/secrets/<name>` (the value itself is only in the file).
pub fn secret_file_var(name: &str) -> (String, String) {
    let var = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect::<String>();
    (
        format!("{var}_FILE"),
        format!("{}/{name}", crate::runtime::SECRETS_DIR),
    )
}

/// Where a release runs.
#[derive(Debug, Clone)]
pub struct Placement<'a> {
    pub project: &'a str,
    pub env: &'a str,
    pub service: &'a str,
    pub tag: &'a str,
    /// Address and host port to publish a web service on.
    pub host_ip: IpAddr,
    pub host_port: u16,
}

/// The container of `spec` at `at`, with resolved `secrets`.
pub fn container_spec(
    spec: &ServiceSpec,
    at: &Placement<'_>,
    secrets: BTreeMap<String, SecretValue>,
) -> ContainerSpec {
    let web = spec.kind == ServiceKind::Web;
    ContainerSpec {
        name: container_name(at.project, at.env, at.service, at.tag),
        image: image_ref(at.project, at.service, at.tag),
        labels: ServiceLabels {
            project: at.project.into(),
            environment: at.env.into(),
            service: at.service.into(),
            tag: at.tag.into(),
        },
        extra_labels: BTreeMap::new(),
        command: spec.command.as_deref().map(shell_command),
        env: spec
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(secrets.keys().map(|name| secret_file_var(name)))
            .collect(),
        publish: web.then_some(PortPublish {
            host_ip: at.host_ip,
            host_port: at.host_port,
            container_port: spec.container_port(),
        }),
        secrets,
        init: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ServiceKind, command: Option<&str>) -> ServiceSpec {
        ServiceSpec {
            kind,
            containerfile_path: "Containerfile".into(),
            command: command.map(String::from),
            secrets: vec!["db_password".into()],
            environment: [("MODE".to_string(), "prod".to_string())]
                .into_iter()
                .collect(),
            port: Some(9000),
            health_path: None,
        }
    }

    fn at() -> Placement<'static> {
        Placement {
            project: "shop",
            env: "prod",
            service: "api",
            tag: "v1.2.0-uat-20261125-0907",
            host_ip: "10.0.0.5".parse().unwrap(),
            host_port: 20123,
        }
    }

    #[test]
    fn web_service_publishes_its_port() {
        let secrets = BTreeMap::from([("db_password".to_string(), SecretValue::new("x"))]);
        let c = container_spec(&spec(ServiceKind::Web, None), &at(), secrets);
        assert_eq!(c.name, "shop-prod-api-v1.2.0-uat-20261125-0907");
        assert_eq!(c.image, "shop-api:v1.2.0-uat-20261125-0907");
        let p = c.publish.unwrap();
        assert_eq!((p.host_port, p.container_port), (20123, 9000));
        assert_eq!(p.host_ip.to_string(), "10.0.0.5");
        assert_eq!(c.command, None);
        assert_eq!(c.env["MODE"], "prod");
        assert_eq!(c.labels.to_map()["infra.environment"], "prod");
        assert!(c.secrets.contains_key("db_password"));
        assert_eq!(c.env["DB_PASSWORD_FILE"], "/run/secrets/db_password");
        assert!(!c.env.values().any(|v| v == "x"), "secret value in env");
        crate::runtime::check_name("container name", &c.name).unwrap();
    }

    #[test]
    fn releases_alternate_between_two_ports() {
        assert_eq!(next_host_port(20001, 30001, None), 20001);
        assert_eq!(next_host_port(20001, 30001, Some(20001)), 30001);
        assert_eq!(next_host_port(20001, 30001, Some(30001)), 20001);
        // A container found on an unexpected port moves back to primary.
        assert_eq!(next_host_port(20001, 30001, Some(1234)), 20001);
    }

    #[test]
    fn worker_runs_its_command_without_port() {
        let c = container_spec(
            &spec(ServiceKind::Worker, Some("python worker.py --queue mail")),
            &at(),
            BTreeMap::new(),
        );
        assert_eq!(c.publish, None);
        assert_eq!(
            c.command.unwrap(),
            ["/bin/sh", "-c", "python worker.py --queue mail"]
        );
    }
}
