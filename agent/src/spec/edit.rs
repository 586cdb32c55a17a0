//! Atomic edits of `infrastructure.json` (add, scale, remove a project):
//! the file is edited as a JSON value so key order and every other section
//! stay as they were, the result is validated, then written to a temporary
//! file in the same directory, fsynced and renamed over the original. Any
//! error leaves the file untouched.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{SpecError, SpecErrorKind, SpecErrors, closest};
use super::load::parse_infrastructure;
use super::model::{InfrastructureFile, ProjectSpec};

const PROJECTS: &str = "infrastructure_spec.projects";

/// Adds project `name` with its environments, web droplet count and size.
pub fn add_project(
    path: &Path,
    name: &str,
    environments: &[String],
    web_droplets: u32,
    web_droplet_spec: &str,
) -> Result<(), SpecErrors> {
    edit(path, |root, _| {
        let projects = projects_mut(root, path)?;
        if projects.contains_key(name) {
            let kind = SpecErrorKind::ProjectExists { name: name.into() };
            return Err(SpecError::new(path, PROJECTS, kind));
        }
        let spec = ProjectSpec {
            environments: environments.to_vec(),
            web_droplets,
            web_droplet_spec: web_droplet_spec.to_string(),
            region: None,
            domains: Default::default(),
        };
        let value = serde_json::to_value(&spec).expect("a project spec serializes");
        projects.insert(name.to_string(), value);
        Ok(())
    })
}

/// Sets the number of web droplets of `project`; returns the previous count.
pub fn scale(path: &Path, project: &str, web_droplets: u32) -> Result<u32, SpecErrors> {
    edit(path, |root, current| {
        let previous = known_project(path, current, project)?.web_droplets;
        let p = projects_mut(root, path)?
            .get_mut(project)
            .and_then(Value::as_object_mut)
            .expect("validated project is an object");
        p.insert("web_droplets".into(), Value::from(web_droplets));
        Ok(previous)
    })
}

/// Removes `project`; returns what its spec was.
pub fn remove_project(path: &Path, project: &str) -> Result<ProjectSpec, SpecErrors> {
    edit(path, |root, current| {
        let removed = known_project(path, current, project)?.clone();
        projects_mut(root, path)?.shift_remove(project);
        Ok(removed)
    })
}

/// Serializes `file`, validates it and writes it atomically to `path`
/// (e.g. the result of a CSV import).
pub fn write_infrastructure(path: &Path, file: &InfrastructureFile) -> Result<(), SpecErrors> {
    let text = to_pretty_json(file);
    parse_infrastructure(&text, path).map_err(without_positions)?;
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// JSON with 2-space indentation and a trailing newline.
pub fn to_pretty_json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("config values serialize");
    s.push('\n');
    s
}

fn edit<T>(
    path: &Path,
    change: impl FnOnce(&mut Value, &InfrastructureFile) -> Result<T, SpecError>,
) -> Result<T, SpecErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError::io(path, "read", &e))?;
    let current = parse_infrastructure(&text, path)?;
    let mut root: Value = serde_json::from_str(&text).expect("validated text is JSON");
    let out = change(&mut root, &current)?;
    let new_text = to_pretty_json(&root);
    // Positions would point into text that was never written.
    parse_infrastructure(&new_text, path).map_err(without_positions)?;
    write_atomic(path, new_text.as_bytes())?;
    Ok(out)
}

fn without_positions(mut errors: SpecErrors) -> SpecErrors {
    for e in &mut errors.0 {
        e.line = None;
        e.column = None;
    }
    errors
}

fn projects_mut<'a>(
    root: &'a mut Value,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, SpecError> {
    let not_object = || SpecError::invalid(path, "", "the document", "must be a JSON object");
    let spec = root
        .as_object_mut()
        .ok_or_else(not_object)?
        .entry("infrastructure_spec")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(not_object)?;
    spec.entry("projects")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(not_object)
}

fn known_project<'a>(
    path: &Path,
    file: &'a InfrastructureFile,
    name: &str,
) -> Result<&'a ProjectSpec, SpecError> {
    let projects = &file.infrastructure_spec.projects;
    projects.get(name).ok_or_else(|| {
        let kind = SpecErrorKind::UnknownProject {
            name: name.into(),
            suggestion: closest(name, projects.keys().map(String::as_str)),
            known: projects.keys().cloned().collect(),
        };
        SpecError::new(path, PROJECTS, kind)
    })
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same
/// directory is written, fsynced and renamed over `path`, then the
/// directory is fsynced. The original's permissions are kept.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SpecError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SpecError::io(path, "write", &e)
    })
}
