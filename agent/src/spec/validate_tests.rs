//! Tests of every validation rule through the public parse functions: each
//! bad value must produce an error naming the file, position, path, value
//! and rule; each good value must pass.

use std::path::Path;

use serde_json::{Value, json};

use super::edit::to_pretty_json;
use super::examples::example;
use super::*;

const INFRA: &str = "config/infrastructure.json";
const DEPLOY: &str = "config/deployment_config.json";

pub(super) fn example_value(name: &str) -> Value {
    serde_json::from_str(example(name).unwrap()).unwrap()
}

fn rename(obj: &mut Value, from: &str, to: &str) {
    let map = obj.as_object_mut().unwrap();
    let v = map.shift_remove(from).unwrap();
    map.insert(to.to_string(), v);
}

fn infra(v: &Value) -> Result<InfrastructureFile, SpecErrors> {
    parse_infrastructure(&to_pretty_json(v), Path::new(INFRA))
}

/// Parses both files as `load_dir` would.
fn both(i: &Value, d: &Value) -> Result<(InfrastructureFile, DeploymentConfig), SpecErrors> {
    parse_spec(
        &to_pretty_json(i),
        Path::new(INFRA),
        Some(&to_pretty_json(d)),
        Path::new(DEPLOY),
    )
}

/// Asserts that exactly one error has `path` and that it shows the file, a
/// line:column, the value and the rule.
#[track_caller]
pub(super) fn assert_error(errors: &SpecErrors, file: &str, path: &str, value: &str, rule: &str) {
    let hits: Vec<&SpecError> = errors.iter().filter(|e| e.path == path).collect();
    assert_eq!(hits.len(), 1, "want one error at {path}, got:\n{errors}");
    let e = hits[0];
    let text = e.to_string();
    assert!(
        e.line.is_some() && e.column.is_some(),
        "no position: {text}"
    );
    let prefix = format!("{file}:{}:{}: {path}: ", e.line.unwrap(), e.column.unwrap());
    assert!(text.starts_with(&prefix), "{text} !~ {prefix}");
    assert!(
        text.contains(&format!("{value} is invalid")),
        "{text} lacks {value}"
    );
    assert!(text.contains(rule), "{text} lacks {rule}");
}

#[track_caller]
fn infra_error(mutate: impl FnOnce(&mut Value), path: &str, value: &str, rule: &str) {
    let mut v = example_value(INFRASTRUCTURE_FILE);
    mutate(&mut v);
    let errors = infra(&v).unwrap_err();
    assert_error(&errors, INFRA, path, value, rule);
}

#[track_caller]
fn deploy_error(mutate: impl FnOnce(&mut Value), path: &str, value: &str, rule: &str) {
    let i = example_value(INFRASTRUCTURE_FILE);
    let mut d = example_value(DEPLOYMENT_FILE);
    mutate(&mut d);
    let errors = both(&i, &d).unwrap_err();
    assert_error(&errors, DEPLOY, path, value, rule);
}

const H: &str = "infrastructure_spec.projects.hostomatic";

#[test]
fn web_droplets_bounds() {
    for (n, ok) in [(0, false), (1, true), (50, true), (51, false)] {
        let mut v = example_value(INFRASTRUCTURE_FILE);
        v["infrastructure_spec"]["projects"]["hostomatic"]["web_droplets"] = json!(n);
        match infra(&v) {
            Ok(_) => assert!(ok, "{n} accepted"),
            Err(e) => {
                assert!(!ok, "{n} rejected: {e}");
                let path = format!("{H}.web_droplets");
                assert_error(&e, INFRA, &path, &n.to_string(), "must be between 1 and 50");
                // The position points at the value in the pretty-printed text.
                assert_eq!((e.0[0].line, e.0[0].column), (Some(16), Some(25)), "{e}");
            }
        }
    }
}

#[test]
fn project_and_environment_names() {
    infra_error(
        |v| {
            rename(&mut v[INFRA_SPEC]["projects"], "hostomatic", "Bad_Name");
        },
        "infrastructure_spec.projects.Bad_Name",
        "\"Bad_Name\"",
        "project name must be a DNS label",
    );
    let long = "a".repeat(60);
    infra_error(
        |v| {
            rename(&mut v[INFRA_SPEC]["projects"], "hostomatic", &long);
        },
        &format!("infrastructure_spec.projects.{long}"),
        &format!("\"{long}-web2\""),
        "valid hostnames of at most 63 characters",
    );
    let envs = format!("{H}.environments");
    infra_error(
        |v| v[INFRA_SPEC]["projects"]["hostomatic"]["environments"] = json!([]),
        &envs,
        "[]",
        "at least one environment",
    );
    infra_error(
        |v| v[INFRA_SPEC]["projects"]["hostomatic"]["environments"] = json!(["prod", "prod"]),
        &format!("{envs}[1]"),
        "\"prod\"",
        "must be unique",
    );
    infra_error(
        |v| v[INFRA_SPEC]["projects"]["hostomatic"]["environments"] = json!(["prod", "U A T"]),
        &format!("{envs}[1]"),
        "\"U A T\"",
        "environment must be a DNS label",
    );
}

const INFRA_SPEC: &str = "infrastructure_spec";

#[test]
fn sizes_regions_and_master() {
    infra_error(
        |v| v[INFRA_SPEC]["projects"]["hostomatic"]["web_droplet_spec"] = json!("big"),
        &format!("{H}.web_droplet_spec"),
        "\"big\"",
        "size slug",
    );
    infra_error(
        |v| v[INFRA_SPEC]["droplets"]["master"]["region"] = json!("London"),
        "infrastructure_spec.droplets.master.region",
        "\"London\"",
        "region slug",
    );
    infra_error(
        |v| v[INFRA_SPEC]["droplets"]["master"]["role"] = json!("web"),
        "infrastructure_spec.droplets.master.role",
        "\"web\"",
        "must have role \"master\"",
    );
    infra_error(
        |v| v[INFRA_SPEC]["droplets"] = json!({}),
        "infrastructure_spec.droplets",
        "{}",
        "must declare the \"master\" droplet",
    );
    infra_error(
        |v| {
            v[INFRA_SPEC]["droplets"]["web9"] =
                json!({"size": "c-2", "region": "lon1", "role": "web"})
        },
        "infrastructure_spec.droplets.web9",
        "\"web9\"",
        "only \"master\" may be declared here",
    );
    infra_error(
        |v| v[INFRA_SPEC]["projects"]["hostomatic"]["domains"] = json!({"test": "app.example.com"}),
        &format!("{H}.domains.test"),
        "\"test\"",
        "keyed by one of the project's environments",
    );
    infra_error(
        |v| {
            v[INFRA_SPEC]["projects"]["digitalpixo"]["environments"] = json!(["prod"]);
            v[INFRA_SPEC]["projects"]["hostomatic-prod"] =
                v[INFRA_SPEC]["projects"]["digitalpixo"].clone();
            v[INFRA_SPEC]["projects"]["hostomatic"]["environments"] = json!(["prod-prod"]);
        },
        "infrastructure_spec.projects.hostomatic-prod.environments[0]",
        "\"hostomatic-prod-prod\"",
        "<project>-<env> collides with infrastructure_spec.projects.hostomatic.environments[0]",
    );
}

#[test]
fn all_semantic_errors_are_collected() {
    let mut v = example_value(INFRASTRUCTURE_FILE);
    let p = &mut v[INFRA_SPEC]["projects"];
    p["hostomatic"]["web_droplets"] = json!(0);
    p["hostomatic"]["web_droplet_spec"] = json!("huge");
    p["digitalpixo"]["environments"] = json!([]);
    v[INFRA_SPEC]["droplets"]["master"]["size"] = json!("tiny");
    let errors = infra(&v).unwrap_err();
    assert_eq!(errors.len(), 4, "{errors}");
    assert_eq!(errors.to_string().lines().count(), 4);
}

#[test]
fn unknown_fields_and_values_suggest_the_right_name() {
    let text = "{\n  \"infrastructure_spec\": {\n    \"droplets\": {},\n    \"projects\": {\n      \"h\": {\n        \"environments\": [\"prod\"],\n        \"web_droplet\": 2\n      }\n    }\n  }\n}\n";
    let e = parse_infrastructure(text, Path::new(INFRA)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config/infrastructure.json:7:21: infrastructure_spec.projects.h.web_droplet: unknown field \"web_droplet\" (did you mean \"web_droplets\"?)"
    );
    let e =
        parse_deployment(r#"{"deployment_platform": "kubernets"}"#, Path::new(DEPLOY)).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "deployment_platform: unknown value \"kubernets\" (did you mean \"kubernetes\"?)"
        ),
        "{e}"
    );
    let e = parse_deployment(r#"{"zzz": 1}"#, Path::new(DEPLOY)).unwrap_err();
    assert!(
        e.to_string()
            .contains("(expected one of: deployment_platform, git_config, projects)"),
        "{e}"
    );
}

#[test]
fn syntax_and_type_errors_have_positions() {
    let e =
        parse_infrastructure("{\n  \"infrastructure_spec\": {},\n}", Path::new(INFRA)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("config/infrastructure.json:3:1: invalid JSON: trailing comma"),
        "{e}"
    );
    let mut v = example_value(INFRASTRUCTURE_FILE);
    v[INFRA_SPEC]["projects"]["hostomatic"]["web_droplets"] = json!("2");
    let e = infra(&v).unwrap_err();
    assert!(e.to_string().contains(":16:27: "), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("{H}.web_droplets: invalid type: string \"2\"")),
        "{e}"
    );
    let mut v = example_value(INFRASTRUCTURE_FILE);
    v[INFRA_SPEC]["projects"]["hostomatic"]
        .as_object_mut()
        .unwrap()
        .remove("web_droplet_spec");
    let e = infra(&v).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("{H}: missing field \"web_droplet_spec\"")),
        "{e}"
    );
}

fn svc<'a>(d: &'a mut Value, s: &str) -> &'a mut Value {
    &mut d["projects"]["hostomatic"]["services"][s]
}

const S: &str = "projects.hostomatic.services";

#[test]
fn service_rules() {
    deploy_error(
        |d| {
            svc(d, "scheduler")
                .as_object_mut()
                .unwrap()
                .remove("command");
        },
        &format!("{S}.scheduler.command"),
        "null",
        "a worker needs a command",
    );
    deploy_error(
        |d| svc(d, "backend")["port"] = json!(0),
        &format!("{S}.backend.port"),
        "0",
        "between 1 and 65535",
    );
    deploy_error(
        |d| svc(d, "backend")["health_path"] = json!("health"),
        &format!("{S}.backend.health_path"),
        "\"health\"",
        "must start with '/'",
    );
    deploy_error(
        |d| svc(d, "backend")["secrets"] = json!(["db-password"]),
        &format!("{S}.backend.secrets[0]"),
        "\"db-password\"",
        "secret names must be identifiers",
    );
    deploy_error(
        |d| svc(d, "backend")["environment"] = json!({"A-B": "1"}),
        &format!("{S}.backend.environment.A-B"),
        "\"A-B\"",
        "environment variable names must be identifiers",
    );
    deploy_error(
        |d| svc(d, "backend")["containerfile_path"] = json!("../x/Dockerfile"),
        &format!("{S}.backend.containerfile_path"),
        "\"../x/Dockerfile\"",
        "inside the repository",
    );
    deploy_error(
        |d| svc(d, "worker_email")["port"] = json!(8000),
        &format!("{S}.worker_email.port"),
        "8000",
        "workers take no traffic",
    );
    deploy_error(
        |d| {
            rename(
                &mut d["projects"]["hostomatic"]["services"],
                "backend",
                "Back End",
            );
        },
        &format!("{S}.Back End"),
        "\"Back End\"",
        "service name must be lowercase",
    );
    let long = "s".repeat(50);
    deploy_error(
        |d| {
            rename(
                &mut d["projects"]["hostomatic"]["services"],
                "backend",
                &long,
            );
        },
        &format!("{S}.{long}"),
        &format!("\"hostomatic-prod-{long}\""),
        "at most 63 characters",
    );
}

#[test]
fn cross_file_and_git_rules() {
    deploy_error(
        |d| {
            rename(&mut d["projects"], "hostomatic", "hostomatik");
        },
        "projects.hostomatik",
        "\"hostomatik\"",
        "not declared in infrastructure.json infrastructure_spec.projects (did you mean \"hostomatic\"?); declared: hostomatic, digitalpixo",
    );
    deploy_error(
        |d| d["git_config"]["url_pattern"] = json!("{base_url}/app.git"),
        "git_config.url_pattern",
        "\"{base_url}/app.git\"",
        "must contain the {project} placeholder",
    );
    deploy_error(
        |d| d["git_config"]["url_pattern"] = json!("{base_url}/{projet}/{project}.git"),
        "git_config.url_pattern",
        "\"{base_url}/{projet}/{project}.git\"",
        "unknown placeholder {projet}",
    );
    // `worker_email` and `worker-email` are the same container in DNS form.
    deploy_error(
        |d| svc(d, "worker-email")["containerfile_path"] = json!("w/Dockerfile"),
        &format!("{S}.worker-email"),
        "\"hostomatic-prod-worker-email\"",
        "collides with the one built from projects.hostomatic.services.worker_email",
    );
}

#[test]
fn deployment_defaults_and_good_values() {
    let (_, d) = parse_spec(
        example(INFRASTRUCTURE_FILE).unwrap(),
        Path::new(INFRA),
        None,
        Path::new(DEPLOY),
    )
    .unwrap();
    assert_eq!(d, DeploymentConfig::default());
    let mut dv = example_value(DEPLOYMENT_FILE);
    svc(&mut dv, "backend")["port"] = json!(65535);
    svc(&mut dv, "backend")["health_path"] = json!("/healthz?full=1");
    let (_, d) = both(&example_value(INFRASTRUCTURE_FILE), &dv).unwrap();
    let b = &d.projects["hostomatic"].services["backend"];
    assert_eq!(
        (b.container_port(), b.health_path()),
        (65535, "/healthz?full=1")
    );
    assert_eq!(
        d.git_config.repo_url("hostomatic"),
        "https://github.com/yourorg/hostomatic.git"
    );
}
