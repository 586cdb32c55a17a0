//! Runs the real `infractl` binary on good and bad config directories and
//! checks its output, its exit code and what it leaves on disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn infractl(dir: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_infractl"))
        .current_dir(dir)
        .env_remove("INFRA_CONFIG_DIR")
        .args(args)
        .output()
        .expect("infractl runs");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let run = infractl(dir, args);
    assert_eq!(
        run.code, 0,
        "infractl {args:?} failed: {}{}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// A fresh directory with `infractl init` done.
fn initialised() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(dir.path(), &["init"]);
    dir
}

fn infra_path(dir: &Path) -> PathBuf {
    dir.join("config/infrastructure.json")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("readable")
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

#[test]
fn init_writes_examples_and_never_overwrites_without_force() {
    let dir = initialised();
    for f in [
        "infrastructure.json",
        "deployment_config.json",
        "email_config.json",
        "sms_config.json",
    ] {
        assert!(dir.path().join("config").join(f).is_file(), "{f} written");
    }
    assert!(dir.path().join("templates/nginx.conf.tera").is_file());
    std::fs::write(infra_path(dir.path()), "{ \"mine\": 1 }").unwrap();
    let again = infractl(dir.path(), &["init"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(
        read(&infra_path(dir.path())),
        "{ \"mine\": 1 }",
        "user file kept"
    );
    ok(dir.path(), &["init", "--force"]);
    ok(dir.path(), &["validate"]);
}

#[test]
fn plan_of_the_example_creates_master_and_three_web_droplets() {
    let dir = initialised();
    let text = ok(dir.path(), &["plan"]);
    for line in [
        "+ create droplet master (s-2vcpu-4gb, lon1)",
        "+ create droplet hostomatic-web1 (s-2vcpu-4gb, lon1)",
        "+ create droplet hostomatic-web2 (s-2vcpu-4gb, lon1)",
        "+ create droplet digitalpixo-web1 (s-1vcpu-1gb, lon1)",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let json: Value = serde_json::from_str(&ok(dir.path(), &["plan", "--output", "json"])).unwrap();
    let changes = json["changes"].as_array().unwrap();
    let creates = changes.iter().filter(|c| c["action"] == "create").count();
    assert_eq!(json["summary"]["create"], creates);
    assert_eq!(json["summary"]["delete"], 0);
    let summary = format!("Plan: {creates} to create, 0 to change, 0 to destroy.");
    assert!(text.contains(&summary), "missing {summary:?} in\n{text}");
    let droplets = changes.iter().filter(|c| c["kind"] == "droplet").count();
    assert_eq!(droplets, 4);
    // Same input, byte-identical output.
    assert_eq!(text, ok(dir.path(), &["plan"]));
}

/// Writes the planned runtime view into infrastructure.json, as orchestrate
/// does once the droplets exist.
fn record_as_built(dir: &Path) {
    let export: Value = serde_json::from_str(&ok(dir, &["state", "export"])).unwrap();
    let mut file: serde_json::Map<String, Value> =
        serde_json::from_str(&read(&infra_path(dir))).unwrap();
    file.insert("droplets".into(), export["droplets"].clone());
    file.insert("projects".into(), export["projects"].clone());
    write_json(&infra_path(dir), &Value::Object(file));
}

#[test]
fn built_state_plans_nothing_and_removal_is_blocked_without_allow_destroy() {
    let dir = initialised();
    record_as_built(dir.path());
    let json: Value = serde_json::from_str(&ok(dir.path(), &["plan", "-o", "json"])).unwrap();
    assert_eq!(json["changes"].as_array().unwrap().len(), 0, "{json}");

    let text = ok(dir.path(), &["remove-project", "digitalpixo"]);
    assert!(text.contains("destroy droplet digitalpixo-web1"), "{text}");
    assert!(text.contains("--allow-destroy"), "{text}");
    let deploy = read(&dir.path().join("config/deployment_config.json"));
    assert!(!deploy.contains("\"digitalpixo\""), "services removed too");
    let allowed = ok(dir.path(), &["plan", "--allow-destroy", "-o", "json"]);
    let json: Value = serde_json::from_str(&allowed).unwrap();
    assert!(
        json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["action"] == "delete"
                && c["kind"] == "droplet"
                && c["name"] == "digitalpixo-web1"),
        "{json}"
    );
}

#[test]
fn add_project_and_scale_edit_the_spec_and_print_the_plan() {
    let dir = initialised();
    let before = read(&infra_path(dir.path()));
    let text = ok(
        dir.path(),
        &["add-project", "myapp", "prod,uat", "2", "s-2vcpu-4gb"],
    );
    assert!(
        text.contains("+ create droplet myapp-web2 (s-2vcpu-4gb, lon1)"),
        "{text}"
    );
    let after = read(&infra_path(dir.path()));
    // Key order kept: the existing projects still come first, in order.
    let h = after.find("\"hostomatic\"").unwrap();
    let d = after.find("\"digitalpixo\"").unwrap();
    let m = after.find("\"myapp\"").unwrap();
    assert!(h < d && d < m, "{after}");
    assert!(before.len() < after.len());

    let text = ok(dir.path(), &["scale", "hostomatic", "3"]);
    assert!(text.contains("+ create droplet hostomatic-web3"), "{text}");
}

#[test]
fn bad_edits_exit_2_and_leave_the_file_untouched() {
    let dir = initialised();
    let before = read(&infra_path(dir.path()));

    let run = infractl(dir.path(), &["scale", "hostomatc", "3"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown project \"hostomatc\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hostomatic"),
        "suggests the known name: {}",
        run.stderr
    );

    let run = infractl(
        dir.path(),
        &["add-project", "my_app", "prod", "1", "s-1vcpu-1gb"],
    );
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("my_app"), "{}", run.stderr);

    let run = infractl(
        dir.path(),
        &["add-project", "shop", "prod,prod", "1", "s-1vcpu-1gb"],
    );
    assert_eq!(run.code, 2, "duplicate environments: {}", run.stderr);

    let run = infractl(dir.path(), &["scale", "hostomatic", "0"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("web_droplets"), "{}", run.stderr);

    assert_eq!(
        read(&infra_path(dir.path())),
        before,
        "nothing half-written"
    );
}

#[test]
fn validation_errors_name_file_position_field_and_hint() {
    let dir = initialised();
    let text = read(&infra_path(dir.path())).replacen("\"web_droplets\"", "\"web_droplet\"", 1);
    std::fs::write(infra_path(dir.path()), text).unwrap();
    let run = infractl(dir.path(), &["validate"]);
    assert_eq!(run.code, 2);
    let err = run.stderr;
    assert!(err.contains("infrastructure.json:"), "{err}");
    assert!(err.contains("did you mean \"web_droplets\""), "{err}");
    // file:line:column
    let located = err.lines().any(|l| {
        l.split("infrastructure.json:").nth(1).is_some_and(|rest| {
            let mut parts = rest.split(':');
            parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
                && parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
        })
    });
    assert!(located, "line:column in {err}");
}

#[test]
fn missing_config_and_bad_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = infractl(dir.path(), &["plan"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("infractl init"), "{}", run.stderr);

    let run = infractl(dir.path(), &["plan", "--no-such-flag"]);
    assert_eq!(run.code, 2);
    let run = infractl(dir.path(), &["plan", "--output", "yaml"]);
    assert_eq!(run.code, 2);
}

#[test]
fn import_csv_takes_the_largest_master_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("projects.csv");
    std::fs::write(
        &csv,
        "Project,Servers,MasterSpec,WebSpec\nhostomatic,3,s-2vcpu-4gb,s-2vcpu-4gb\ndigitalpixo,1,s-1vcpu-1gb,s-1vcpu-1gb\n",
    )
    .unwrap();
    let text = ok(dir.path(), &["import-csv", "projects.csv"]);
    assert!(text.contains("s-2vcpu-4gb"), "{text}");
    assert!(text.to_lowercase().contains("master"), "the note: {text}");
    assert!(text.contains("+ create droplet hostomatic-web3"), "{text}");
    let file: Value = serde_json::from_str(&read(&infra_path(dir.path()))).unwrap();
    assert_eq!(
        file["infrastructure_spec"]["droplets"]["master"]["size"],
        "s-2vcpu-4gb"
    );
    assert_eq!(
        file["infrastructure_spec"]["projects"]["hostomatic"]["web_droplets"],
        3
    );

    // A second import does not replace the file without --force.
    let run = infractl(dir.path(), &["import-csv", "projects.csv"]);
    assert_eq!(run.code, 2, "{}", run.stderr);

    std::fs::write(
        &csv,
        "Project,Servers,MasterSpec,WebSpec\nshop,zero,s-1vcpu-1gb,s-1vcpu-1gb\n",
    )
    .unwrap();
    let run = infractl(dir.path(), &["import-csv", "projects.csv", "--force"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("projects.csv"), "{}", run.stderr);
    assert!(run.stderr.contains("zero"), "{}", run.stderr);
}

#[test]
fn config_dir_comes_from_flag_or_environment() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["--config", "elsewhere/cfg", "init"]);
    assert!(
        dir.path()
            .join("elsewhere/cfg/infrastructure.json")
            .is_file()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_infractl"))
        .current_dir(dir.path())
        .env("INFRA_CONFIG_DIR", "elsewhere/cfg")
        .args(["validate"])
        .output()
        .unwrap();
    assert!(out.status.success());
}
