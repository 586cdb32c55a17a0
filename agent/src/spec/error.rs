//! Errors about the user's config files: each names the file, the line and
//! column where known, the field path, the bad value and the rule broken.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file.
///
/// Displays as `file[:line:column]: [field.path: ]what is wrong`, e.g.
/// `config/infrastructure.json:12:24: infrastructure_spec.projects.hostomatic.web_droplets: 0 is invalid: must be between 1 and 50`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    /// The file as the caller named it (e.g. `config/infrastructure.json`).
    pub file: PathBuf,
    /// 1-based line, when the format has one and it is known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Field path such as `infrastructure_spec.projects.hostomatic.web_droplets`;
    /// empty for whole-file problems.
    pub path: String,
    /// Boxed to keep `Result<_, SpecError>` small.
    pub kind: Box<SpecErrorKind>,
}

/// What is wrong, without the location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecErrorKind {
    #[error("cannot {action}: {message}")]
    Io {
        action: &'static str,
        message: String,
    },
    #[error("file not found; {hint}")]
    NotFound { hint: String },
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// A type mismatch or missing field reported by the deserializer.
    #[error("{0}")]
    Data(String),
    /// An unknown field name or enum value, with the closest known one.
    #[error("unknown {what} {name:?}{}", did_you_mean(suggestion.as_deref(), expected))]
    Unknown {
        /// `field` or `value`.
        what: &'static str,
        name: String,
        suggestion: Option<String>,
        expected: Vec<String>,
    },
    /// A value that breaks a rule.
    #[error("{value} is invalid: {rule}")]
    Invalid { value: String, rule: String },
    #[error("already exists; use --force to overwrite")]
    AlreadyExists,
    #[error("unknown project {name:?}{}", known_projects(suggestion.as_deref(), known))]
    UnknownProject {
        name: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    #[error("project {name:?} already exists")]
    ProjectExists { name: String },
    #[error("CSV: {0}")]
    Csv(String),
}

fn did_you_mean(suggestion: Option<&str>, expected: &[String]) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None if expected.is_empty() => String::new(),
        None => format!(" (expected one of: {})", expected.join(", ")),
    }
}

fn known_projects(suggestion: Option<&str>, known: &[String]) -> String {
    let mut out = String::new();
    if let Some(s) = suggestion {
        out.push_str(&format!(" (did you mean {s:?}?)"));
    }
    if known.is_empty() {
        out.push_str("; there are no projects");
    } else {
        out.push_str(&format!("; known projects: {}", known.join(", ")));
    }
    out
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl SpecError {
    /// An error about `file` at field `path`, with no line/column yet.
    pub fn new(file: &Path, path: impl Into<String>, kind: SpecErrorKind) -> Self {
        SpecError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            path: path.into(),
            kind: Box::new(kind),
        }
    }

    /// A rule violation: `value` (already rendered, e.g. `0` or `"Bad"`) breaks `rule`.
    pub fn invalid(
        file: &Path,
        path: impl Into<String>,
        value: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Self::new(
            file,
            path,
            SpecErrorKind::Invalid {
                value: value.into(),
                rule: rule.into(),
            },
        )
    }

    pub fn io(file: &Path, action: &'static str, err: &std::io::Error) -> Self {
        Self::new(
            file,
            "",
            SpecErrorKind::Io {
                action,
                message: err.to_string(),
            },
        )
    }

    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

/// The closest candidate to `name` (Jaro-Winkler), if it is close enough to
/// be a plausible typo.
pub fn closest<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(name, c);
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Several problems, displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<SpecError> for SpecErrors {
    fn from(e: SpecError) -> Self {
        SpecErrors(vec![e])
    }
}

impl SpecErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, SpecError> {
        self.0.iter()
    }
    /// `Ok(value)` when there are no errors.
    pub fn into_result<T>(self, value: T) -> Result<T, SpecErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl IntoIterator for SpecErrors {
    type Item = SpecError;
    type IntoIter = std::vec::IntoIter<SpecError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_file_position_path_value_and_rule() {
        let e = SpecError::invalid(
            Path::new("config/infrastructure.json"),
            "infrastructure_spec.projects.hostomatic.web_droplets",
            "0",
            "must be between 1 and 50",
        )
        .at(12, 24);
        assert_eq!(
            e.to_string(),
            "config/infrastructure.json:12:24: infrastructure_spec.projects.hostomatic.web_droplets: 0 is invalid: must be between 1 and 50"
        );
    }

    #[test]
    fn unknown_field_suggests_the_closest_name() {
        let expected = ["environments", "web_droplets", "web_droplet_spec"];
        let kind = SpecErrorKind::Unknown {
            what: "field",
            name: "web_droplet".into(),
            suggestion: closest("web_droplet", expected),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        };
        let e = SpecError::new(Path::new("c.json"), "a.b", kind).at(3, 5);
        assert_eq!(
            e.to_string(),
            "c.json:3:5: a.b: unknown field \"web_droplet\" (did you mean \"web_droplets\"?)"
        );
        assert_eq!(closest("zzzz", expected), None);
    }

    #[test]
    fn errors_display_one_per_line() {
        let a = SpecError::new(Path::new("a"), "", SpecErrorKind::AlreadyExists);
        let b = SpecError::invalid(Path::new("b"), "x", "1", "r");
        let s = SpecErrors(vec![a, b]).to_string();
        assert_eq!(
            s,
            "a: already exists; use --force to overwrite\nb: x: 1 is invalid: r"
        );
    }
}
