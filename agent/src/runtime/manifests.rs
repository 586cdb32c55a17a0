//! Manifests for `infractl render`: Kubernetes (Namespace, a Deployment per
//! web and worker service, a Service per web service) and a docker-compose
//! file for one project+environment, rendered from templates/ (pure).

use serde::Serialize;

use crate::deploy::service::image_ref;
use crate::spec::{DeploymentConfig, ServiceKind};

const NAMESPACE: &str = include_str!("../../../templates/k8s-namespace.yaml.tera");
const DEPLOYMENT: &str = include_str!("../../../templates/k8s-deployment.yaml.tera");
const SERVICE: &str = include_str!("../../../templates/k8s-service.yaml.tera");
const COMPOSE: &str = include_str!("../../../templates/docker-compose.yml.tera");

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid {field} `{value}`: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("project `{0}` is not in deployment_config.json")]
    UnknownProject(String),
    #[error("rendering {template} failed: {message}")]
    Render {
        template: &'static str,
        message: String,
    },
}

/// One service of the project+environment, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceManifest {
    pub name: String,
    pub kind: ServiceKind,
    pub image: String,
    pub containerfile_path: String,
    pub command: Option<String>,
    pub environment: Vec<(String, String)>,
    /// Secret names (values are never rendered).
    pub secrets: Vec<String>,
    pub container_port: u16,
    /// Host port published by docker-compose (web only).
    pub host_port: u16,
    pub health_path: String,
    pub replicas: u32,
}

/// The project+environment to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderInput {
    pub project: String,
    pub env: String,
    pub services: Vec<ServiceManifest>,
}

impl RenderInput {
    /// The services of `project` in `cfg` at release `tag`, each with
    /// `replicas` replicas; `host_port(service)` is the port a web service
    /// is published on by docker-compose.
    pub fn from_deployment(
        cfg: &DeploymentConfig,
        project: &str,
        env: &str,
        tag: &str,
        replicas: u32,
        host_port: impl Fn(&str) -> u16,
    ) -> Result<RenderInput, ManifestError> {
        let p = cfg
            .projects
            .get(project)
            .ok_or_else(|| ManifestError::UnknownProject(project.into()))?;
        let services = p
            .services
            .iter()
            .map(|(name, s)| ServiceManifest {
                name: name.clone(),
                kind: s.kind,
                image: image_ref(project, name, tag),
                containerfile_path: s.containerfile_path.clone(),
                command: s.command.clone(),
                environment: s
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                secrets: s.secrets.clone(),
                container_port: s.container_port(),
                host_port: host_port(name),
                health_path: s.health_path().into(),
                replicas,
            })
            .collect();
        Ok(RenderInput {
            project: project.into(),
            env: env.into(),
            services,
        })
    }
}

/// A rendered file: name and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub file_name: String,
    pub content: String,
}

#[derive(Serialize)]
struct Kv {
    key: String,
    value: String,
}

#[derive(Serialize)]
struct SvcView {
    name: String,
    full_name: String,
    kind: &'static str,
    web: bool,
    image_q: String,
    containerfile_q: String,
    command_q: Option<String>,
    env: Vec<Kv>,
    labels: Vec<Kv>,
    secrets: Vec<String>,
    container_port: u16,
    host_ip: &'static str,
    host_port: u16,
    health_path_q: String,
    health_url_q: String,
    replicas: u32,
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

fn check(
    field: &'static str,
    value: &str,
    ok: fn(char) -> bool,
    reason: &'static str,
) -> Result<(), ManifestError> {
    if !value.is_empty() && value.len() <= 63 && value.chars().all(ok) {
        Ok(())
    } else {
        Err(ManifestError::Invalid {
            field,
            value: value.into(),
            reason,
        })
    }
}

fn dns(field: &'static str, v: &str) -> Result<(), ManifestError> {
    check(
        field,
        v,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
        "use a-z, 0-9 and '-' (at most 63)",
    )
}

fn view(input: &RenderInput, s: &ServiceManifest) -> Result<SvcView, ManifestError> {
    dns("service", &s.name)?;
    for name in &s.secrets {
        check(
            "secret",
            name,
            |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
            "use letters, digits, '-', '_', '.'",
        )?;
    }
    for (k, _) in &s.environment {
        check(
            "environment variable",
            k,
            |c| c.is_ascii_alphanumeric() || c == '_',
            "use letters, digits and '_'",
        )?;
    }
    if !s.health_path.starts_with('/') {
        return Err(ManifestError::Invalid {
            field: "health_path",
            value: s.health_path.clone(),
            reason: "must start with '/'",
        });
    }
    let full_name = crate::spec::service_name(&input.project, &input.env, &s.name);
    let label = |k: &str, v: &str| Kv {
        key: k.into(),
        value: q(v),
    };
    Ok(SvcView {
        name: s.name.clone(),
        kind: s.kind.as_str(),
        web: s.kind == ServiceKind::Web,
        image_q: q(&s.image),
        containerfile_q: q(&s.containerfile_path),
        command_q: s.command.as_deref().map(q),
        env: s
            .environment
            .iter()
            .cloned()
            .chain(
                s.secrets
                    .iter()
                    .map(|n| crate::deploy::service::secret_file_var(n)),
            )
            .map(|(k, v)| Kv {
                key: k,
                value: q(&v),
            })
            .collect(),
        labels: vec![
            label("infra.managed", "true"),
            label("infra.project", &input.project),
            label("infra.environment", &input.env),
            label("infra.service", &s.name),
        ],
        secrets: s.secrets.clone(),
        container_port: s.container_port,
        host_ip: "127.0.0.1",
        host_port: s.host_port,
        health_path_q: q(&s.health_path),
        health_url_q: q(&format!(
            "http://127.0.0.1:{}{}",
            s.container_port, s.health_path
        )),
        replicas: s.replicas,
        full_name,
    })
}

fn render_one(
    template: &'static str,
    text: &str,
    ctx: &tera::Context,
) -> Result<String, ManifestError> {
    let err = |e: tera::Error| ManifestError::Render {
        template,
        message: format!("{e:?}"),
    };
    let mut tera = tera::Tera::default();
    tera.add_raw_template(template, text).map_err(err)?;
    tera.render(template, ctx).map_err(err)
}

fn base_context(input: &RenderInput) -> Result<tera::Context, ManifestError> {
    dns("project", &input.project)?;
    dns("environment", &input.env)?;
    let mut ctx = tera::Context::new();
    ctx.insert("project", &input.project);
    ctx.insert("env", &input.env);
    ctx.insert("project_q", &q(&input.project));
    ctx.insert("env_q", &q(&input.env));
    ctx.insert("namespace", &format!("{}-{}", input.project, input.env));
    Ok(ctx)
}

/// Kubernetes manifests: `namespace.yaml`, `<service>-deployment.yaml` for
/// every service and `<service>-service.yaml` for web services.
pub fn render_k8s(input: &RenderInput) -> Result<Vec<Manifest>, ManifestError> {
    let ctx = base_context(input)?;
    let mut out = vec![Manifest {
        file_name: "namespace.yaml".into(),
        content: render_one("k8s-namespace.yaml", NAMESPACE, &ctx)?,
    }];
    for s in &input.services {
        let v = view(input, s)?;
        let mut c = ctx.clone();
        c.insert("s", &v);
        out.push(Manifest {
            file_name: format!("{}-deployment.yaml", s.name),
            content: render_one("k8s-deployment.yaml", DEPLOYMENT, &c)?,
        });
        if v.web {
            out.push(Manifest {
                file_name: format!("{}-service.yaml", s.name),
                content: render_one("k8s-service.yaml", SERVICE, &c)?,
            });
        }
    }
    Ok(out)
}

/// `docker-compose.yml` for the project+environment.
pub fn render_compose(input: &RenderInput) -> Result<Manifest, ManifestError> {
    let mut ctx = base_context(input)?;
    let views = input
        .services
        .iter()
        .map(|s| view(input, s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut secrets: Vec<String> = views.iter().flat_map(|v| v.secrets.clone()).collect();
    secrets.sort();
    secrets.dedup();
    let up = |s: &str| s.to_ascii_uppercase().replace('-', "_");
    let hint = format!("{}_{}_<NAME>", up(&input.project), up(&input.env));
    ctx.insert("services", &views);
    ctx.insert("secrets", &secrets);
    ctx.insert("env_var_hint", &hint);
    Ok(Manifest {
        file_name: "docker-compose.yml".into(),
        content: render_one("docker-compose.yml", COMPOSE, &ctx)?,
    })
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
