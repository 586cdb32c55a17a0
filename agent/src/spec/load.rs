//! Reading the config files: JSON parsing with field paths and positions,
//! then every semantic check, reported together as [`SpecErrors`].

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::error::{SpecError, SpecErrorKind, SpecErrors, closest};
use super::locate::{JsonIndex, index, join};
use super::model::*;
use super::notify_config::{EmailConfig, SmsConfig, check_email, check_sms};
use super::validate::{Issue, check_cross, check_deployment, check_infrastructure};

pub const INFRASTRUCTURE_FILE: &str = "infrastructure.json";
pub const DEPLOYMENT_FILE: &str = "deployment_config.json";
pub const EMAIL_FILE: &str = "email_config.json";
pub const SMS_FILE: &str = "sms_config.json";
pub const PROJECTS_CSV_FILE: &str = "projects.csv";

/// Every config file of a config directory, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    pub dir: PathBuf,
    pub infrastructure: InfrastructureFile,
    pub deployment: DeploymentConfig,
    pub email: Option<EmailConfig>,
    pub sms: Option<SmsConfig>,
    /// The texts as read, e.g. to send to an agent, which checks them again
    /// with [`parse_spec`] and reports positions in the user's files.
    pub infrastructure_text: String,
    pub deployment_text: Option<String>,
}

impl LoadedConfig {
    /// The desired state the planner consumes.
    pub fn spec(&self) -> Spec {
        Spec {
            infrastructure: self.infrastructure.infrastructure_spec.clone(),
            deployment: self.deployment.clone(),
        }
    }

    pub fn infrastructure_path(&self) -> PathBuf {
        self.dir.join(INFRASTRUCTURE_FILE)
    }
}

/// Loads `config_dir`: `infrastructure.json` is required;
/// `deployment_config.json` defaults to no services; the email and SMS
/// configs are optional. Problems in every file are reported together.
pub fn load_dir(config_dir: &Path) -> Result<LoadedConfig, SpecErrors> {
    let mut errors = SpecErrors::default();
    let infra_path = config_dir.join(INFRASTRUCTURE_FILE);
    let infra_text = match std::fs::read_to_string(&infra_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let hint = "run `infractl init` to create example config files".to_string();
            errors.0.push(SpecError::new(
                &infra_path,
                "",
                SpecErrorKind::NotFound { hint },
            ));
            None
        }
        Err(e) => {
            errors.0.push(SpecError::io(&infra_path, "read", &e));
            None
        }
    };
    let deploy_path = config_dir.join(DEPLOYMENT_FILE);
    let deploy_text = read_optional(&deploy_path, &mut errors);
    let spec = infra_text
        .as_deref()
        .map(|text| parse_spec(text, &infra_path, deploy_text.as_deref(), &deploy_path));
    let email = read_optional(&config_dir.join(EMAIL_FILE), &mut errors)
        .map(|t| parse_email(&t, &config_dir.join(EMAIL_FILE)));
    let sms = read_optional(&config_dir.join(SMS_FILE), &mut errors)
        .map(|t| parse_sms(&t, &config_dir.join(SMS_FILE)));
    let spec = collect(spec, &mut errors);
    let email = collect(email, &mut errors);
    let sms = collect(sms, &mut errors);
    match (spec, infra_text) {
        (Some((infrastructure, deployment)), Some(infrastructure_text)) if errors.is_empty() => {
            Ok(LoadedConfig {
                dir: config_dir.to_path_buf(),
                infrastructure,
                deployment,
                email,
                sms,
                infrastructure_text,
                deployment_text: deploy_text,
            })
        }
        _ => Err(errors),
    }
}

fn collect<T>(r: Option<Result<T, SpecErrors>>, errors: &mut SpecErrors) -> Option<T> {
    match r {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            errors.0.extend(e);
            None
        }
        None => None,
    }
}

fn read_optional(path: &Path, errors: &mut SpecErrors) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            errors.0.push(SpecError::io(path, "read", &e));
            None
        }
    }
}

/// Parses and validates both spec files given as text (e.g. received over
/// gRPC); `deployment_text` `None` means the default deployment config.
/// `*_file` only names the files in messages.
pub fn parse_spec(
    infra_text: &str,
    infra_file: &Path,
    deployment_text: Option<&str>,
    deployment_file: &Path,
) -> Result<(InfrastructureFile, DeploymentConfig), SpecErrors> {
    let (infra, mut errors) = parse_collect(infra_text, infra_file, check_infrastructure);
    let (deploy, deploy_errors) = match deployment_text {
        Some(t) => parse_collect(t, deployment_file, check_deployment),
        None => (Some(DeploymentConfig::default()), SpecErrors::default()),
    };
    errors.0.extend(deploy_errors);
    match (infra, deploy) {
        (Some(i), Some(d)) => {
            // Cross-file checks run even when each file has its own errors.
            let issues = check_cross(&i.infrastructure_spec, &d);
            errors.0.extend(located(
                deployment_file,
                deployment_text.unwrap_or(""),
                issues,
            ));
            errors.into_result((i, d))
        }
        _ => Err(errors),
    }
}

/// Parses and validates `infrastructure.json` text.
pub fn parse_infrastructure(text: &str, file: &Path) -> Result<InfrastructureFile, SpecErrors> {
    parse_checked(text, file, check_infrastructure)
}

/// Parses and validates `deployment_config.json` text on its own (see
/// [`parse_spec`] for the checks against the infrastructure spec).
pub fn parse_deployment(text: &str, file: &Path) -> Result<DeploymentConfig, SpecErrors> {
    parse_checked(text, file, check_deployment)
}

pub fn parse_email(text: &str, file: &Path) -> Result<EmailConfig, SpecErrors> {
    parse_checked(text, file, check_email)
}

pub fn parse_sms(text: &str, file: &Path) -> Result<SmsConfig, SpecErrors> {
    parse_checked(text, file, check_sms)
}

fn parse_checked<T: DeserializeOwned>(
    text: &str,
    file: &Path,
    check: fn(&T) -> Vec<Issue>,
) -> Result<T, SpecErrors> {
    match parse_collect(text, file, check) {
        (Some(v), errors) => errors.into_result(v),
        (None, errors) => Err(errors),
    }
}

/// The value if the text deserializes, and every error found.
fn parse_collect<T: DeserializeOwned>(
    text: &str,
    file: &Path,
    check: fn(&T) -> Vec<Issue>,
) -> (Option<T>, SpecErrors) {
    match parse_json(text, file) {
        Ok(v) => {
            let errors = located(file, text, check(&v));
            (Some(v), errors)
        }
        Err(e) => (None, e.into()),
    }
}

/// Turns issues into errors located in `text`.
pub fn located(file: &Path, text: &str, issues: Vec<Issue>) -> SpecErrors {
    if issues.is_empty() {
        return SpecErrors::default();
    }
    let idx = JsonIndex::new(text);
    SpecErrors(
        issues
            .into_iter()
            .map(|i| {
                let e = SpecError::invalid(file, i.path.clone(), i.value, i.rule);
                match idx.locate(&i.path) {
                    Some(p) => e.at(p.line, p.column),
                    None => e,
                }
            })
            .collect(),
    )
}

/// Deserializes JSON, reporting the field path, line and column of the
/// first problem, with a "did you mean" for unknown names.
pub fn parse_json<T: DeserializeOwned>(text: &str, file: &Path) -> Result<T, SpecError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let err = match result {
        Ok(v) => match de.end() {
            Ok(()) => return Ok(v),
            Err(e) => return Err(json_error(file, String::new(), &e)),
        },
        Err(e) => e,
    };
    let mut path = String::new();
    for seg in err.path().iter() {
        use serde_path_to_error::Segment;
        path = match seg {
            Segment::Seq { index: i } => index(&path, *i),
            Segment::Map { key } => join(&path, key),
            Segment::Enum { variant } => join(&path, variant),
            Segment::Unknown => path,
        };
    }
    Err(json_error(file, path, err.inner()))
}

fn json_error(file: &Path, path: String, e: &serde_json::Error) -> SpecError {
    let mut msg = e.to_string();
    if e.line() > 0 {
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        if let Some(stripped) = msg.strip_suffix(&suffix) {
            msg = stripped.to_string();
        }
    }
    for (rust, human) in [
        ("expected u16", "expected a whole number from 0 to 65535"),
        (
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        ),
    ] {
        if let Some(stripped) = msg.strip_suffix(rust) {
            msg = format!("{stripped}{human}");
        }
    }
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        msg = format!("missing field {field:?}");
    }
    let kind = match e.classify() {
        serde_json::error::Category::Data => unknown_name(&msg).unwrap_or(SpecErrorKind::Data(msg)),
        _ => SpecErrorKind::Syntax(msg),
    };
    let err = SpecError::new(file, path, kind);
    if e.line() > 0 {
        err.at(e.line(), e.column())
    } else {
        err
    }
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" (or
/// "unknown variant ...") into a structured error with a suggestion.
fn unknown_name(msg: &str) -> Option<SpecErrorKind> {
    let what = if msg.starts_with("unknown field") {
        "field"
    } else if msg.starts_with("unknown variant") {
        "value"
    } else {
        return None;
    };
    let mut ticks = msg.split('`').skip(1).step_by(2);
    let name = ticks.next()?.to_string();
    let expected: Vec<String> = ticks.map(str::to_string).collect();
    let suggestion = closest(&name, expected.iter().map(String::as_str));
    Some(SpecErrorKind::Unknown {
        what,
        name,
        suggestion,
        expected,
    })
}
