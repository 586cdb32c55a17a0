//! Commands that work on the config files alone, with no cluster: init,
//! validate, plan, import-csv, add-project, scale, remove-project and
//! state export.

use std::path::Path;

use anyhow::Context;
use infra_agent::plan::{self, Plan, PlanOptions};
use infra_agent::spec::{self, LoadedConfig, SpecErrorKind, SpecErrors};
use infra_agent::topology::Topology;
use serde_json::json;

use crate::exit::CliError;
use crate::output::{OutputFormat, print_json};

/// Spec errors are the user's to fix (exit 2), unless reading or writing
/// a file failed (exit 1).
fn spec_error(errors: SpecErrors) -> CliError {
    let io = errors
        .iter()
        .any(|e| matches!(*e.kind, SpecErrorKind::Io { .. }));
    let count = errors.len();
    let mut text = errors.to_string();
    if count > 1 {
        text.push_str(&format!("\n{count} problems found"));
    }
    if io {
        CliError::Runtime(anyhow::anyhow!(text))
    } else {
        CliError::Invalid(text)
    }
}

fn load(dir: &Path) -> Result<LoadedConfig, CliError> {
    spec::load_dir(dir).map_err(spec_error)
}

/// The current topology as recorded in infrastructure.json's runtime sections.
pub fn current_topology(config: &LoadedConfig) -> Topology {
    let projects: Vec<&str> = config
        .infrastructure
        .infrastructure_spec
        .projects
        .keys()
        .map(String::as_str)
        .collect();
    Topology::from_runtime(
        &config.infrastructure.droplets,
        &config.infrastructure.projects,
        &projects,
    )
}

pub fn init(
    dir: &Path,
    templates: Option<&Path>,
    force: bool,
    out: OutputFormat,
) -> Result<(), CliError> {
    let templates = match templates {
        Some(t) => t.to_path_buf(),
        None => dir
            .parent()
            .map(|p| p.join("templates"))
            .unwrap_or_else(|| "templates".into()),
    };
    let pki = ensure_pki(&dir.join("pki")).map_err(CliError::Runtime)?;
    let written = spec::write_examples(dir, &templates, force).map_err(|e| {
        if matches!(*e.kind, SpecErrorKind::AlreadyExists) {
            CliError::Invalid(e.to_string())
        } else {
            CliError::Runtime(e.into())
        }
    })?;
    match out {
        OutputFormat::Json => print_json(&json!({ "written": written, "pki": pki }))?,
        OutputFormat::Text => {
            for path in written.iter().chain(&pki) {
                println!("wrote {}", path.display());
            }
            println!(
                "Next: edit {}/infrastructure.json, then run `infractl plan`.",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Cluster id the CA made by `infractl init` is named for.
pub const CLUSTER_ID: &str = "infra";

/// Creates the cluster CA, an `infractl` client certificate and the gossip
/// key in `pki` (all 0600), each only if missing. Returns what it wrote.
pub fn ensure_pki(pki: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use infra_agent::membership::GossipKey;
    use infra_agent::tls::{Ca, write_private};
    std::fs::create_dir_all(pki).with_context(|| format!("create {}", pki.display()))?;
    let mut written = Vec::new();
    let (ca_pem, ca_key) = (pki.join("ca.pem"), pki.join("ca.key"));
    let ca = if ca_pem.exists() && ca_key.exists() {
        Ca::load(&ca_pem, &ca_key, CLUSTER_ID)?
    } else {
        let ca = Ca::create(CLUSTER_ID)?;
        let (c, k) = ca.write(pki)?;
        written.extend([c, k]);
        ca
    };
    if !pki.join("client.pem").exists() || !pki.join("client.key").exists() {
        let (c, k) = ca.issue_client("infractl")?.write(pki, "client")?;
        written.extend([c, k]);
    }
    let gossip = pki.join("gossip.key");
    if !gossip.exists() {
        write_private(&gossip, GossipKey::generate().to_hex().as_bytes())?;
        written.push(gossip);
    }
    Ok(written)
}

/// Issues a node certificate `<pki>/<name>.pem` + `.key` (0600) from the
/// CA that `infractl init` created, valid for `name` and the `ips`.
pub fn issue_node(
    dir: &Path,
    name: &str,
    ips: &[String],
    out: OutputFormat,
) -> Result<(), CliError> {
    use infra_agent::tls::Ca;
    if name.is_empty() || name.contains('/') {
        return Err(CliError::invalid(format!("invalid node name `{name}`")));
    }
    for ip in ips {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| CliError::invalid(format!("--ip `{ip}` is not an IP address")))?;
    }
    let pki = dir.join("pki");
    let (ca_pem, ca_key) = (pki.join("ca.pem"), pki.join("ca.key"));
    if !ca_pem.exists() {
        return Err(CliError::invalid(format!(
            "no CA in {}: run `infractl init` first",
            pki.display()
        )));
    }
    let ca = Ca::load(&ca_pem, &ca_key, CLUSTER_ID).map_err(anyhow::Error::from)?;
    let (cert, key) = ca
        .issue_node(name, ips)
        .and_then(|c| c.write(&pki, name))
        .map_err(anyhow::Error::from)?;
    match out {
        OutputFormat::Json => print_json(&json!({ "cert": cert, "key": key }))?,
        OutputFormat::Text => println!("wrote {} and {}", cert.display(), key.display()),
    }
    Ok(())
}

pub fn validate(dir: &Path, out: OutputFormat) -> Result<(), CliError> {
    let config = load(dir)?;
    let spec = config.spec();
    let services: usize = spec
        .deployment
        .projects
        .values()
        .map(|p| p.services.len())
        .sum();
    let projects = spec.infrastructure.projects.len();
    match out {
        OutputFormat::Json => print_json(&json!({
            "valid": true,
            "projects": projects,
            "services": services,
            "email": config.email.is_some(),
            "sms": config.sms.is_some(),
        }))?,
        OutputFormat::Text => println!(
            "{} is valid: {projects} project(s), {services} service definition(s)",
            dir.display()
        ),
    }
    Ok(())
}

pub fn plan(dir: &Path, allow_destroy: bool, out: OutputFormat) -> Result<(), CliError> {
    let config = load(dir)?;
    print_plan(&config, allow_destroy, out)
}

fn print_plan(
    config: &LoadedConfig,
    allow_destroy: bool,
    out: OutputFormat,
) -> Result<(), CliError> {
    let current = current_topology(config);
    let opts = PlanOptions {
        allow_destroy,
        force: false,
    };
    let plan: Plan = plan::plan(&config.spec(), &current, &opts);
    match out {
        OutputFormat::Json => println!("{}", plan.render_json()),
        OutputFormat::Text => print!("{}", plan.render_text()),
    }
    Ok(())
}

pub fn import_csv(
    dir: &Path,
    file: &Path,
    region: &str,
    force: bool,
    out: OutputFormat,
) -> Result<(), CliError> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let opts = spec::CsvImportOptions {
        region: region.to_string(),
        ..Default::default()
    };
    let import = spec::import_projects_csv(&text, file, &opts).map_err(spec_error)?;
    let target = dir.join(spec::INFRASTRUCTURE_FILE);
    if target.exists() && !force {
        return Err(CliError::invalid(format!(
            "{}: already exists; use --force to replace it with the import",
            target.display()
        )));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    spec::write_infrastructure(&target, &import.file).map_err(spec_error)?;
    if out == OutputFormat::Text {
        println!(
            "imported {} project(s) from {} into {}",
            import.file.infrastructure_spec.projects.len(),
            file.display(),
            target.display()
        );
        for note in &import.notes {
            println!("note: {note}");
        }
        println!();
    }
    let config = load(dir)?;
    if out == OutputFormat::Json {
        let current = current_topology(&config);
        let plan = plan::plan(&config.spec(), &current, &PlanOptions::default());
        return Ok(print_json(&json!({
            "written": target,
            "notes": import.notes,
            "plan": plan.to_json(),
        }))?);
    }
    print_plan(&config, false, out)
}

fn infrastructure_path(dir: &Path) -> std::path::PathBuf {
    dir.join(spec::INFRASTRUCTURE_FILE)
}

/// Runs an edit of infrastructure.json, then prints the resulting plan.
fn edit_then_plan(
    dir: &Path,
    out: OutputFormat,
    what: String,
    edit: impl FnOnce(&Path) -> Result<(), SpecErrors>,
) -> Result<(), CliError> {
    // Validate the whole directory first so a broken file is reported as such.
    load(dir)?;
    edit(&infrastructure_path(dir)).map_err(spec_error)?;
    if out == OutputFormat::Text {
        println!("{what}\n");
    }
    let config = load(dir)?;
    print_plan(&config, false, out)
}

pub fn add_project(
    dir: &Path,
    name: &str,
    environments: &str,
    web_droplets: u32,
    size: &str,
    out: OutputFormat,
) -> Result<(), CliError> {
    let envs: Vec<String> = environments
        .split(',')
        .map(|e| e.trim().to_string())
        .collect();
    edit_then_plan(dir, out, format!("added project {name}"), |path| {
        spec::add_project(path, name, &envs, web_droplets, size)
    })
}

pub fn scale(
    dir: &Path,
    project: &str,
    web_droplets: u32,
    out: OutputFormat,
) -> Result<(), CliError> {
    load(dir)?;
    let previous =
        spec::scale(&infrastructure_path(dir), project, web_droplets).map_err(spec_error)?;
    if out == OutputFormat::Text {
        println!("scaled {project}: {previous} -> {web_droplets} web droplet(s)\n");
    }
    let config = load(dir)?;
    print_plan(&config, false, out)
}

pub fn remove_project(dir: &Path, name: &str, out: OutputFormat) -> Result<(), CliError> {
    let config = load(dir)?;
    if !config
        .infrastructure
        .infrastructure_spec
        .projects
        .contains_key(name)
    {
        // Let the spec module phrase the error (with the known projects).
        spec::remove_project(&infrastructure_path(dir), name).map_err(spec_error)?;
    }
    // The services go first: a project with no services is valid, services
    // of an unknown project are not, so a failure between the two writes
    // leaves valid files.
    remove_deployment_project(&dir.join(spec::DEPLOYMENT_FILE), name)?;
    spec::remove_project(&infrastructure_path(dir), name).map_err(spec_error)?;
    if out == OutputFormat::Text {
        println!(
            "removed project {name} from the spec; its droplets are destroyed only by `infractl orchestrate --allow-destroy`\n"
        );
    }
    let config = load(dir)?;
    print_plan(&config, false, out)
}

/// Drops `projects.<name>` from deployment_config.json, atomically, keeping
/// everything else byte for byte in order.
fn remove_deployment_project(path: &Path, name: &str) -> Result<(), CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display()).into()),
    };
    let mut root: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let removed = root
        .get_mut("projects")
        .and_then(serde_json::Value::as_object_mut)
        .and_then(|projects| projects.shift_remove(name))
        .is_some();
    if removed {
        let new_text = spec::edit::to_pretty_json(&root);
        spec::parse_deployment(&new_text, path).map_err(spec_error)?;
        spec::write_atomic(path, new_text.as_bytes())
            .map_err(|e| spec_error(SpecErrors(vec![e])))?;
    }
    Ok(())
}

/// The runtime view in the reference's JSON format (an export is JSON
/// whatever `--output` says).
pub fn state_export(dir: &Path, _out: OutputFormat) -> Result<(), CliError> {
    let config = load(dir)?;
    let current = current_topology(&config);
    let desired = plan::desired(&config.spec(), &current);
    let (droplets, projects) = plan::topology_to_runtime(&desired);
    print_json(&json!({ "droplets": droplets, "projects": projects }))?;
    Ok(())
}
