//! Tests of the atomic edits of `infrastructure.json` on real files.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::edit::{to_pretty_json, write_atomic};
use super::examples::example;
use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    path: PathBuf,
    original: String,
}

impl Fixture {
    /// A file with the runtime sections the system writes, then the spec.
    fn new() -> Self {
        let spec: Value = serde_json::from_str(example(INFRASTRUCTURE_FILE).unwrap()).unwrap();
        let v = json!({
            "droplets": {
                "master": {"ip": "10.0.0.1", "size": "s-2vcpu-4gb", "region": "lon1", "role": "master",
                           "monitors": ["hostomatic-web1"]},
                "hostomatic-web1": {"ip": "10.0.0.2", "size": "s-2vcpu-4gb", "region": "lon1",
                                    "role": "web", "project": "hostomatic"}
            },
            "projects": {
                "hostomatic-prod": {
                    "backend": {"type": "web", "port": 8001, "assigned_droplets": ["hostomatic-web1"]},
                    "worker_email": {"type": "worker", "assigned_droplets": ["hostomatic-web1"]}
                }
            },
            "infrastructure_spec": spec["infrastructure_spec"].clone()
        });
        Self::with_text(to_pretty_json(&v))
    }

    fn with_text(original: String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INFRASTRUCTURE_FILE);
        std::fs::write(&path, &original).unwrap();
        Fixture {
            dir,
            path,
            original,
        }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }

    fn load(&self) -> InfrastructureFile {
        parse_infrastructure(&self.text(), &self.path).unwrap()
    }

    /// The file is unchanged and no temporary file was left behind.
    #[track_caller]
    fn assert_untouched(&self) {
        assert_eq!(self.text(), self.original);
        let names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [INFRASTRUCTURE_FILE], "leftover files");
    }
}

fn before_spec(text: &str) -> &str {
    &text[..text.find("\"infrastructure_spec\"").unwrap()]
}

#[test]
fn add_then_remove_round_trips_byte_for_byte() {
    let f = Fixture::new();
    let envs = vec!["prod".to_string()];
    add_project(&f.path, "newapp", &envs, 3, "s-1vcpu-1gb").unwrap();
    let after = f.text();
    assert!(after.ends_with("}\n") && !after.ends_with("\n\n"));
    // The runtime sections are byte-for-byte what they were.
    assert_eq!(before_spec(&after), before_spec(&f.original));
    let file = f.load();
    let names: Vec<&str> = file
        .infrastructure_spec
        .projects
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["hostomatic", "digitalpixo", "newapp"]);
    let p = &file.infrastructure_spec.projects["newapp"];
    assert_eq!(
        (
            p.environments.as_slice(),
            p.web_droplets,
            p.web_droplet_spec.as_str()
        ),
        (envs.as_slice(), 3, "s-1vcpu-1gb")
    );
    let removed = remove_project(&f.path, "newapp").unwrap();
    assert_eq!(&removed, p);
    assert_eq!(f.text(), f.original);
}

#[test]
fn scale_changes_only_the_count_and_keeps_key_order() {
    // Keys in an unusual order: spec first, master's fields reversed.
    let text = "{\n  \"infrastructure_spec\": {\n    \"projects\": {\n      \"hostomatic\": {\n        \"web_droplet_spec\": \"s-2vcpu-4gb\",\n        \"web_droplets\": 2,\n        \"environments\": [\n          \"prod\"\n        ]\n      }\n    },\n    \"droplets\": {\n      \"master\": {\n        \"role\": \"master\",\n        \"region\": \"lon1\",\n        \"size\": \"s-2vcpu-4gb\"\n      }\n    }\n  },\n  \"droplets\": {\n    \"master\": {\n      \"size\": \"s-2vcpu-4gb\",\n      \"region\": \"lon1\",\n      \"role\": \"master\"\n    }\n  }\n}\n";
    let f = Fixture::with_text(text.to_string());
    assert_eq!(scale(&f.path, "hostomatic", 5).unwrap(), 2);
    assert_eq!(
        f.text(),
        text.replacen("\"web_droplets\": 2", "\"web_droplets\": 5", 1)
    );
    let f = Fixture::new();
    scale(&f.path, "digitalpixo", 4).unwrap();
    assert_eq!(
        f.text(),
        f.original
            .replacen("\"web_droplets\": 1", "\"web_droplets\": 4", 1)
    );
}

#[test]
fn failed_edits_leave_the_file_untouched() {
    let f = Fixture::new();
    let prod = vec!["prod".to_string()];
    let cases: Vec<(Result<(), SpecErrors>, &str)> = vec![
        (
            scale(&f.path, "hostomatic", 0).map(drop),
            "infractl-test: infrastructure_spec.projects.hostomatic.web_droplets: 0 is invalid: must be between 1 and 50",
        ),
        (
            scale(&f.path, "hostomatic", 51).map(drop),
            "web_droplets: 51 is invalid",
        ),
        (
            scale(&f.path, "hostomatik", 3).map(drop),
            "infrastructure_spec.projects: unknown project \"hostomatik\" (did you mean \"hostomatic\"?); known projects: hostomatic, digitalpixo",
        ),
        (
            remove_project(&f.path, "nope").map(drop),
            "unknown project \"nope\"; known projects: hostomatic, digitalpixo",
        ),
        (
            add_project(&f.path, "hostomatic", &prod, 1, "s-1vcpu-1gb"),
            "infrastructure_spec.projects: project \"hostomatic\" already exists",
        ),
        (
            add_project(&f.path, "Bad_Name", &prod, 1, "s-1vcpu-1gb"),
            "infrastructure_spec.projects.Bad_Name: \"Bad_Name\" is invalid",
        ),
        (
            add_project(&f.path, "x", &[], 1, "s-1vcpu-1gb"),
            "infrastructure_spec.projects.x.environments: [] is invalid",
        ),
        (
            add_project(&f.path, "x", &prod, 1, "big"),
            "infrastructure_spec.projects.x.web_droplet_spec: \"big\" is invalid",
        ),
    ];
    let file = f.path.display().to_string();
    for (result, want) in cases {
        let err = result.unwrap_err();
        let msg = err.to_string();
        let want = want.replace("infractl-test", &file);
        assert!(msg.contains(&want), "{msg}\n  lacks {want}");
        // Positions would point into text that was never written.
        assert!(err.iter().all(|e| e.line.is_none()), "{msg}");
        f.assert_untouched();
    }
}

#[test]
fn an_invalid_file_is_not_edited() {
    let mut v: Value = serde_json::from_str(example(INFRASTRUCTURE_FILE).unwrap()).unwrap();
    v["infrastructure_spec"]["projects"]["hostomatic"]["web_droplet"] = json!(2);
    let f = Fixture::with_text(to_pretty_json(&v));
    let err = scale(&f.path, "digitalpixo", 2).unwrap_err();
    assert!(
        err.to_string().contains("did you mean \"web_droplets\""),
        "{err}"
    );
    f.assert_untouched();
    let missing = f.dir.path().join("none.json");
    let err = scale(&missing, "x", 2).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read", missing.display()))
    );
}

#[test]
fn atomic_write_replaces_content_and_keeps_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.json");
    std::fs::write(&p, "old").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    write_atomic(&p, b"new").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let err = write_atomic(&dir.path().join("no/such/dir/f"), b"x").unwrap_err();
    assert!(err.to_string().contains("cannot write"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn csv_import_writes_a_loadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = import_projects_csv(
        example(PROJECTS_CSV_FILE).unwrap(),
        Path::new("projects.csv"),
        &CsvImportOptions::default(),
    )
    .unwrap();
    let path = dir.path().join(INFRASTRUCTURE_FILE);
    write_infrastructure(&path, &out.file).unwrap();
    let loaded = load_dir(dir.path()).unwrap();
    assert_eq!(loaded.infrastructure, out.file);
    assert_eq!(
        loaded.infrastructure.infrastructure_spec.projects["hostomatic"].web_droplets,
        3
    );
}

#[test]
fn add_project_creates_the_projects_section() {
    let text = "{\n  \"infrastructure_spec\": {\n    \"droplets\": {\n      \"master\": {\n        \"size\": \"s-1vcpu-1gb\",\n        \"region\": \"nyc3\",\n        \"role\": \"master\"\n      }\n    }\n  }\n}\n";
    let f = Fixture::with_text(text.to_string());
    add_project(&f.path, "first", &["uat".to_string()], 1, "c-2").unwrap();
    let after = f.text();
    assert!(after.starts_with(&text[..text.rfind("\n    }\n  }\n}").unwrap()]));
    let p = &f.load().infrastructure_spec.projects["first"];
    assert_eq!((p.web_droplets, p.web_droplet_spec.as_str()), (1, "c-2"));
}
