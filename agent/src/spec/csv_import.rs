//! Import of the v1 `projects.csv` (`Project,Servers,MasterSpec,WebSpec`)
//! into a v2 `infrastructure.json`.

use std::path::Path;

use indexmap::IndexMap;

use super::error::{SpecError, SpecErrorKind, SpecErrors, closest};
use super::load::located;
use super::model::*;
use super::rules::{MAX_WEB_DROPLETS, compare_sizes, is_dns_label, is_size_slug};
use super::validate::{check_infrastructure, quoted};

/// The v1 header, in order.
pub const CSV_HEADER: [&str; 4] = ["Project", "Servers", "MasterSpec", "WebSpec"];

/// What the v1 format does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvImportOptions {
    /// Region of the master (and so of every droplet).
    pub region: String,
    /// Environments of every project.
    pub environments: Vec<String>,
}

impl Default for CsvImportOptions {
    fn default() -> Self {
        CsvImportOptions {
            region: "lon1".into(),
            environments: vec!["prod".into(), "uat".into()],
        }
    }
}

/// The imported file and the decisions the import made for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvImport {
    pub file: InfrastructureFile,
    pub notes: Vec<String>,
}

struct Row {
    project: String,
    servers: u32,
    master: String,
    web: String,
}

/// Converts v1 CSV text into an infrastructure file. The master droplet is
/// shared by all projects, so it gets the largest `MasterSpec` any row asks
/// for (by vCPUs, then memory); the notes say so. Every bad cell is
/// reported, with its line.
pub fn import_projects_csv(
    text: &str,
    file: &Path,
    opts: &CsvImportOptions,
) -> Result<CsvImport, SpecErrors> {
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let csv_err = |e: ::csv::Error| {
        let line = e.position().map(|p| p.line() as usize);
        let mut err = SpecError::new(file, "", SpecErrorKind::Csv(e.to_string()));
        err.line = line;
        err
    };
    let header = reader.headers().map_err(csv_err)?.clone();
    check_header(file, &header)?;
    let mut errors = SpecErrors::default();
    let mut rows: Vec<Row> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let mut bad = |column: &str, value: &str, rule: &str| {
            let mut e = SpecError::invalid(file, column, quoted(value), rule);
            e.line = Some(line);
            errors.0.push(e);
        };
        let (project, servers, master, web) = (&record[0], &record[1], &record[2], &record[3]);
        if !is_dns_label(project) {
            bad(
                "Project",
                project,
                "must be a DNS label: lowercase letters, digits and inner '-'",
            );
        } else if rows.iter().any(|r| r.project == project) {
            bad("Project", project, "appears on an earlier row");
        }
        let n = servers
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_WEB_DROPLETS).contains(n));
        if n.is_none() {
            bad(
                "Servers",
                servers,
                &format!("must be a whole number between 1 and {MAX_WEB_DROPLETS}"),
            );
        }
        for (column, size) in [("MasterSpec", master), ("WebSpec", web)] {
            if !is_size_slug(size) {
                bad(
                    column,
                    size,
                    "must be a DigitalOcean size slug such as s-2vcpu-4gb",
                );
            }
        }
        rows.push(Row {
            project: project.to_string(),
            servers: n.unwrap_or(1),
            master: master.to_string(),
            web: web.to_string(),
        });
    }
    if rows.is_empty() {
        errors.0.push(SpecError::invalid(
            file,
            "",
            "no rows",
            "must list at least one project",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (result, notes) = convert(&rows, opts);
    // Options such as the region are checked here; the text has no positions.
    located(file, "", check_infrastructure(&result)).into_result(CsvImport {
        file: result,
        notes,
    })
}

fn check_header(file: &Path, header: &::csv::StringRecord) -> Result<(), SpecError> {
    let got: Vec<&str> = header.iter().collect();
    let matches = got.len() == CSV_HEADER.len()
        && got
            .iter()
            .zip(CSV_HEADER)
            .all(|(g, e)| g.eq_ignore_ascii_case(e));
    if matches {
        return Ok(());
    }
    let hint = got
        .iter()
        .find(|g| !CSV_HEADER.iter().any(|e| g.eq_ignore_ascii_case(e)))
        .and_then(|g| closest(g, CSV_HEADER).map(|s| format!(" ({g:?}: did you mean {s:?}?)")))
        .unwrap_or_default();
    let mut e = SpecError::invalid(
        file,
        "header",
        quoted(&got.join(",")),
        format!("the v1 header is {}{hint}", CSV_HEADER.join(",")),
    );
    e.line = Some(1);
    Err(e)
}

fn convert(rows: &[Row], opts: &CsvImportOptions) -> (InfrastructureFile, Vec<String>) {
    let mut notes = Vec::new();
    let mut master = &rows[0].master;
    for r in &rows[1..] {
        if compare_sizes(&r.master, master).is_gt() {
            master = &r.master;
        }
    }
    if rows.iter().all(|r| &r.master == master) {
        notes.push(format!("master size {master}: the MasterSpec of every row"));
    } else {
        let asks: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {}", r.project, r.master))
            .collect();
        notes.push(format!(
            "master size {master}: the master is shared by all projects, so it takes the largest MasterSpec any row asks for ({})",
            asks.join(", ")
        ));
    }
    notes.push(
        "each row's Servers became the project's web_droplets; the master is separate".into(),
    );
    notes.push(format!(
        "environments {} for every project (v1 CSV has no environments column)",
        opts.environments.join(",")
    ));
    notes.push(format!(
        "region {} (v1 CSV has no region column)",
        opts.region
    ));
    let mut droplets = IndexMap::new();
    droplets.insert(
        MASTER.to_string(),
        DropletSpec {
            size: master.clone(),
            region: opts.region.clone(),
            role: Role::Master,
        },
    );
    let projects = rows
        .iter()
        .map(|r| {
            let spec = ProjectSpec {
                environments: opts.environments.clone(),
                web_droplets: r.servers,
                web_droplet_spec: r.web.clone(),
                region: None,
                domains: IndexMap::new(),
            };
            (r.project.clone(), spec)
        })
        .collect();
    let file = InfrastructureFile {
        infrastructure_spec: InfrastructureSpec { droplets, projects },
        ..Default::default()
    };
    (file, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(text: &str) -> Result<CsvImport, SpecErrors> {
        import_projects_csv(
            text,
            Path::new("config/projects.csv"),
            &CsvImportOptions::default(),
        )
    }

    #[test]
    fn reference_example_takes_the_largest_master_spec() {
        let text = "Project,Servers,MasterSpec,WebSpec\n\
                    digitalpixo,1,s-1vcpu-1gb,s-1vcpu-1gb\n\
                    hostomatic,3,s-2vcpu-4gb,s-2vcpu-4gb\n\
                    other,2,s-1vcpu-2gb,s-1vcpu-2gb\n";
        let out = import(text).unwrap();
        let spec = &out.file.infrastructure_spec;
        assert_eq!(spec.droplets[MASTER].size, "s-2vcpu-4gb");
        assert_eq!(spec.droplets[MASTER].region, "lon1");
        assert_eq!(spec.droplets[MASTER].role, Role::Master);
        let names: Vec<&str> = spec.projects.keys().map(String::as_str).collect();
        assert_eq!(names, ["digitalpixo", "hostomatic", "other"]);
        let h = &spec.projects["hostomatic"];
        assert_eq!(
            (h.web_droplets, h.web_droplet_spec.as_str()),
            (3, "s-2vcpu-4gb")
        );
        assert_eq!(h.environments, ["prod", "uat"]);
        assert!(
            out.notes[0].contains("largest MasterSpec"),
            "{:?}",
            out.notes
        );
        assert!(
            out.notes[0].contains("digitalpixo s-1vcpu-1gb"),
            "{:?}",
            out.notes
        );
        assert!(out.notes.iter().any(|n| n.contains("region lon1")));
    }

    #[test]
    fn options_set_region_and_environments() {
        let opts = CsvImportOptions {
            region: "nyc3".into(),
            environments: vec!["prod".into()],
        };
        let text = "project,servers,masterspec,webspec\n a , 2 , c-4 , s-1vcpu-1gb \n";
        let out = import_projects_csv(text, Path::new("p.csv"), &opts).unwrap();
        let spec = &out.file.infrastructure_spec;
        assert_eq!(spec.droplets[MASTER].region, "nyc3");
        assert_eq!(spec.projects["a"].environments, ["prod"]);
        assert!(out.notes[0].contains("every row"), "{:?}", out.notes);
        let bad = CsvImportOptions {
            region: "London".into(),
            ..Default::default()
        };
        let err = import_projects_csv(text, Path::new("p.csv"), &bad).unwrap_err();
        assert!(err.to_string().contains("\"London\" is invalid"), "{err}");
    }

    #[test]
    fn every_bad_cell_is_reported_with_its_line() {
        let text = "Project,Servers,MasterSpec,WebSpec\n\
                    Bad_Name,0,s-2vcpu-4gb,huge\n\
                    ok,three,s-1vcpu-1gb,s-1vcpu-1gb\n\
                    ok,1,s-1vcpu-1gb,s-1vcpu-1gb\n";
        let err = import(text).unwrap_err();
        let lines: Vec<String> = err.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 5, "{err}");
        assert!(lines[0].starts_with("config/projects.csv:2: Project: \"Bad_Name\" is invalid"));
        assert!(lines[1].starts_with("config/projects.csv:2: Servers: \"0\" is invalid"));
        assert!(lines[2].starts_with("config/projects.csv:2: WebSpec: \"huge\" is invalid"));
        assert!(lines[3].starts_with("config/projects.csv:3: Servers: \"three\""));
        assert!(lines[4].contains(":4: Project: \"ok\" is invalid: appears on an earlier row"));
    }

    #[test]
    fn bad_header_and_shape() {
        let err = import("Project,Server,MasterSpec,WebSpec\na,1,c-2,c-2\n").unwrap_err();
        assert!(
            err.to_string().contains("did you mean \"Servers\""),
            "{err}"
        );
        let err = import("Project,Servers,MasterSpec,WebSpec\na,1,c-2\n").unwrap_err();
        assert!(
            err.to_string().starts_with("config/projects.csv:2: CSV:"),
            "{err}"
        );
        let err = import("Project,Servers,MasterSpec,WebSpec\n").unwrap_err();
        assert!(err.to_string().contains("at least one project"), "{err}");
    }
}
