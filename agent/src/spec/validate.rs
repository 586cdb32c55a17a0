//! Semantic checks of the typed config: pure functions that collect every
//! problem as an [`Issue`] (field path, bad value, rule) instead of stopping
//! at the first. The loader turns issues into located [`SpecError`]s.
//!
//! [`SpecError`]: super::SpecError

use std::collections::{BTreeMap, HashSet};

use super::locate::{index, join};
use super::model::*;
use super::rules::*;

/// One broken rule, not yet tied to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Field path in the file, e.g. `infrastructure_spec.projects.x.web_droplets`.
    pub path: String,
    /// The bad value, rendered as in JSON (`0`, `"Bad_Name"`).
    pub value: String,
    pub rule: String,
}

/// Renders a string value as JSON would.
pub fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

#[derive(Default)]
pub(crate) struct Issues(pub Vec<Issue>);

impl Issues {
    pub fn push(&mut self, path: String, value: String, rule: impl Into<String>) {
        self.0.push(Issue {
            path,
            value,
            rule: rule.into(),
        });
    }
    pub fn check(&mut self, ok: bool, path: &str, value: &str, rule: &str) {
        if !ok {
            self.push(path.to_string(), quoted(value), rule);
        }
    }
}

const DNS_RULE: &str =
    "must be a DNS label: lowercase letters, digits and inner '-', at most 63 characters";
const SERVICE_RULE: &str =
    "must be lowercase letters, digits and inner '-' or '_', at most 63 characters";

/// Checks `infrastructure.json`: the master, every project, and the
/// droplet names built from them.
pub fn check_infrastructure(file: &InfrastructureFile) -> Vec<Issue> {
    let mut out = Issues::default();
    let spec = &file.infrastructure_spec;
    let droplets = "infrastructure_spec.droplets";
    match spec.droplets.get(MASTER) {
        None => out.push(
            droplets.into(),
            "{}".into(),
            "must declare the \"master\" droplet (size, region, role \"master\")",
        ),
        Some(m) => out.check(
            m.role == Role::Master,
            &join(&join(droplets, MASTER), "role"),
            m.role.as_str(),
            "the master droplet must have role \"master\"",
        ),
    }
    for (name, d) in &spec.droplets {
        let p = join(droplets, name);
        out.check(
            name == MASTER,
            &p,
            name,
            "only \"master\" may be declared here; web droplets come from projects.<name>.web_droplets",
        );
        check_size(&mut out, &join(&p, "size"), &d.size);
        check_region(&mut out, &join(&p, "region"), &d.region);
    }
    // `<project>-<env>` names a runtime section and a k8s namespace.
    let mut envs: BTreeMap<String, String> = BTreeMap::new();
    for (name, project) in &spec.projects {
        check_project(&mut out, name, project);
        let mut seen = HashSet::new();
        for (i, env) in project.environments.iter().enumerate() {
            let path = index(
                &join(&join("infrastructure_spec.projects", name), "environments"),
                i,
            );
            let key = format!("{name}-{env}");
            // A repeated environment is reported by check_project.
            if !seen.insert(env) {
                continue;
            }
            if let Some(other) = envs.insert(key.clone(), path.clone()) {
                out.push(
                    path,
                    quoted(&key),
                    format!("<project>-<env> collides with {other}"),
                );
            }
        }
    }
    for (name, d) in &file.droplets {
        let p = join("droplets", name);
        out.check(
            is_do_hostname(name),
            &p,
            name,
            "must be a valid droplet name",
        );
        if let Some(ip) = &d.ip {
            out.check(
                ip.parse::<std::net::IpAddr>().is_ok(),
                &join(&p, "ip"),
                ip,
                "must be an IP address",
            );
        }
    }
    out.0
}

fn check_project(out: &mut Issues, name: &str, p: &ProjectSpec) {
    let path = join("infrastructure_spec.projects", name);
    out.check(
        is_dns_label(name),
        &path,
        name,
        &format!("project name {DNS_RULE}"),
    );
    if is_dns_label(name) {
        let longest = web_droplet_name(name, p.web_droplets.clamp(1, MAX_WEB_DROPLETS));
        out.check(
            is_do_hostname(&longest),
            &path,
            &longest,
            "droplet names built from the project name must be valid hostnames of at most 63 characters",
        );
    }
    let envs = join(&path, "environments");
    if p.environments.is_empty() {
        out.push(
            envs.clone(),
            "[]".into(),
            "must list at least one environment",
        );
    }
    let mut seen = HashSet::new();
    for (i, env) in p.environments.iter().enumerate() {
        let ep = index(&envs, i);
        out.check(
            is_dns_label(env),
            &ep,
            env,
            &format!("environment {DNS_RULE}"),
        );
        out.check(seen.insert(env), &ep, env, "environments must be unique");
    }
    let wd = join(&path, "web_droplets");
    if !(1..=MAX_WEB_DROPLETS).contains(&p.web_droplets) {
        out.push(
            wd,
            p.web_droplets.to_string(),
            format!("must be between 1 and {MAX_WEB_DROPLETS}"),
        );
    }
    check_size(out, &join(&path, "web_droplet_spec"), &p.web_droplet_spec);
    if let Some(r) = &p.region {
        check_region(out, &join(&path, "region"), r);
    }
    for (env, domain) in &p.domains {
        let dp = join(&join(&path, "domains"), env);
        out.check(
            p.environments.contains(env),
            &dp,
            env,
            "domains are keyed by one of the project's environments",
        );
        out.check(
            is_do_hostname(domain) && domain.contains('.'),
            &dp,
            domain,
            "must be a domain name such as app.example.com",
        );
    }
}

fn check_size(out: &mut Issues, path: &str, size: &str) {
    out.check(
        is_size_slug(size),
        path,
        size,
        "must be a DigitalOcean size slug such as s-2vcpu-4gb, s-1vcpu-512mb-10gb or c-4",
    );
}

fn check_region(out: &mut Issues, path: &str, region: &str) {
    out.check(
        is_region_slug(region),
        path,
        region,
        "must be a DigitalOcean region slug such as lon1 or nyc3",
    );
}

/// Checks `deployment_config.json` on its own.
pub fn check_deployment(d: &DeploymentConfig) -> Vec<Issue> {
    let mut out = Issues::default();
    let g = &d.git_config;
    out.check(
        g.url_pattern.contains("{project}"),
        "git_config.url_pattern",
        &g.url_pattern,
        "must contain the {project} placeholder",
    );
    if let Some(bad) = unknown_placeholder(&g.url_pattern) {
        out.push(
            "git_config.url_pattern".into(),
            quoted(&g.url_pattern),
            format!("unknown placeholder {{{bad}}}; only {{base_url}} and {{project}} exist"),
        );
    }
    if g.url_pattern.contains("{base_url}") {
        out.check(
            !g.base_url.trim().is_empty() && !g.base_url.contains(char::is_whitespace),
            "git_config.base_url",
            &g.base_url,
            "must be a URL without spaces (url_pattern uses {base_url})",
        );
    }
    for (pname, project) in &d.projects {
        let pp = join("projects", pname);
        out.check(
            is_dns_label(pname),
            &pp,
            pname,
            &format!("project name {DNS_RULE}"),
        );
        for (sname, s) in &project.services {
            check_service(&mut out, &join(&join(&pp, "services"), sname), sname, s);
        }
    }
    out.0
}

fn unknown_placeholder(pattern: &str) -> Option<String> {
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let name = &after[..end];
        if name != "project" && name != "base_url" {
            return Some(name.to_string());
        }
        rest = &after[end + 1..];
    }
    None
}

fn check_service(out: &mut Issues, path: &str, name: &str, s: &ServiceSpec) {
    out.check(
        is_service_label(name),
        path,
        name,
        &format!("service name {SERVICE_RULE}"),
    );
    let cf = join(path, "containerfile_path");
    let cf_ok = !s.containerfile_path.trim().is_empty()
        && !s.containerfile_path.starts_with('/')
        && !s.containerfile_path.split('/').any(|c| c == "..");
    out.check(
        cf_ok,
        &cf,
        &s.containerfile_path,
        "must be a path inside the repository (relative, no '..')",
    );
    match s.kind {
        ServiceKind::Worker => {
            let cmd_ok = s.command.as_deref().is_some_and(|c| !c.trim().is_empty());
            if !cmd_ok {
                let value = s.command.as_deref().map_or("null".into(), quoted);
                out.push(join(path, "command"), value, "a worker needs a command");
            }
            if let Some(port) = s.port {
                out.push(
                    join(path, "port"),
                    port.to_string(),
                    "workers take no traffic; remove port",
                );
            }
            if let Some(h) = &s.health_path {
                out.push(
                    join(path, "health_path"),
                    quoted(h),
                    "workers take no traffic; remove health_path",
                );
            }
        }
        ServiceKind::Web => {
            if s.port == Some(0) {
                out.push(
                    join(path, "port"),
                    "0".into(),
                    "must be between 1 and 65535",
                );
            }
            if let Some(h) = &s.health_path {
                out.check(
                    h.starts_with('/') && !h.contains(char::is_whitespace),
                    &join(path, "health_path"),
                    h,
                    "must start with '/' and contain no spaces",
                );
            }
        }
    }
    let mut seen = HashSet::new();
    for (i, secret) in s.secrets.iter().enumerate() {
        let sp = index(&join(path, "secrets"), i);
        out.check(
            is_identifier(secret),
            &sp,
            secret,
            "secret names must be identifiers: letters, digits and '_', not starting with a digit",
        );
        out.check(
            seen.insert(secret),
            &sp,
            secret,
            "secret names must be unique",
        );
    }
    for key in s.environment.keys() {
        out.check(
            is_identifier(key),
            &join(&join(path, "environment"), key),
            key,
            "environment variable names must be identifiers: letters, digits and '_'",
        );
    }
}

/// Checks `deployment_config.json` against the infrastructure spec: every
/// project exists there, and every container name
/// `<project>-<env>-<service>` is a valid hostname and unique in DNS form.
pub fn check_cross(infra: &InfrastructureSpec, d: &DeploymentConfig) -> Vec<Issue> {
    let mut out = Issues::default();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (pname, project) in &d.projects {
        let pp = join("projects", pname);
        let Some(ip) = infra.projects.get(pname) else {
            let known: Vec<&str> = infra.projects.keys().map(String::as_str).collect();
            let hint = match super::error::closest(pname, known.iter().copied()) {
                Some(s) => format!(" (did you mean {s:?}?)"),
                None => String::new(),
            };
            out.push(
                pp,
                quoted(pname),
                format!(
                    "not declared in infrastructure.json infrastructure_spec.projects{hint}; declared: {}",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            );
            continue;
        };
        // Bad project or service names are reported on their own.
        let services = project.services.keys().filter(|s| is_service_label(s));
        for sname in services.take_while(|_| is_dns_label(pname)) {
            let sp = join(&join(&pp, "services"), sname);
            // One error per service, for its first bad environment.
            for env in &ip.environments {
                let full = dns_label(&service_name(pname, env, sname));
                if !(is_do_hostname(&full) && full.len() <= MAX_DNS_LABEL) {
                    out.push(
                        sp.clone(),
                        quoted(&full),
                        "container name <project>-<env>-<service> must be a valid hostname of at most 63 characters",
                    );
                    break;
                } else if let Some(other) = names.insert(full.clone(), sp.clone()) {
                    out.push(
                        sp.clone(),
                        quoted(&full),
                        format!("container name collides with the one built from {other}"),
                    );
                    break;
                }
            }
        }
    }
    out.0
}
