//! Secret resolution: a service's secret names resolved from the caller's
//! environment, and the redacting [`SecretValue`] wrapper that carries them.

use std::collections::BTreeMap;
use std::fmt;

/// A secret's value. Its `Debug` and `Display` never show the value; read it
/// on purpose with [`SecretValue::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The plain value, for writing it where it belongs (a secret file).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret no candidate variable provides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret `{name}` of {project}/{env} is not set; tried environment variables {}", tried.join(", "))]
pub struct MissingSecret {
    pub project: String,
    pub env: String,
    pub name: String,
    pub tried: Vec<String>,
}

/// The environment variables that may hold secret `name` of `project`/`env`,
/// most specific first: `<PROJECT>_<ENV>_<NAME>`, `<ENV>_<NAME>`, `<NAME>`.
/// Dashes and dots become underscores, everything is upper case.
pub fn candidate_vars(project: &str, env: &str, name: &str) -> Vec<String> {
    let norm = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    let (p, e, n) = (norm(project), norm(env), norm(name));
    vec![format!("{p}_{e}_{n}"), format!("{e}_{n}"), n]
}

/// Resolves every name in `names` from `vars` (first candidate wins). Returns
/// the secrets keyed by their (original) name, or the first missing one.
pub fn resolve_secrets<'a>(
    project: &str,
    env: &str,
    names: impl IntoIterator<Item = &'a String>,
    vars: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, SecretValue>, MissingSecret> {
    let mut out = BTreeMap::new();
    for name in names {
        let tried = candidate_vars(project, env, name);
        match tried.iter().find_map(|v| vars.get(v)) {
            Some(value) => {
                out.insert(name.clone(), SecretValue::new(value.clone()));
            }
            None => {
                return Err(MissingSecret {
                    project: project.into(),
                    env: env.into(),
                    name: name.clone(),
                    tried,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn most_specific_variable_wins() {
        let names = vec!["db_password".to_string()];
        let all = vars(&[
            ("DB_PASSWORD", "generic"),
            ("PROD_DB_PASSWORD", "env"),
            ("HOSTOMATIC_PROD_DB_PASSWORD", "project"),
        ]);
        let got = resolve_secrets("hostomatic", "prod", &names, &all).unwrap();
        assert_eq!(got["db_password"].expose(), "project");

        let env_only = vars(&[("DB_PASSWORD", "generic"), ("PROD_DB_PASSWORD", "env")]);
        let got = resolve_secrets("hostomatic", "prod", &names, &env_only).unwrap();
        assert_eq!(got["db_password"].expose(), "env");

        let generic = vars(&[("DB_PASSWORD", "generic"), ("UAT_DB_PASSWORD", "other env")]);
        let got = resolve_secrets("hostomatic", "prod", &names, &generic).unwrap();
        assert_eq!(got["db_password"].expose(), "generic");
    }

    #[test]
    fn other_project_or_env_never_matches() {
        let names = vec!["api_key".to_string()];
        let all = vars(&[("OTHER_PROD_API_KEY", "x"), ("UAT_API_KEY", "y")]);
        let err = resolve_secrets("shop", "prod", &names, &all).unwrap_err();
        assert_eq!(
            err.tried,
            vec!["SHOP_PROD_API_KEY", "PROD_API_KEY", "API_KEY"]
        );
        let msg = err.to_string();
        assert!(
            msg.contains("api_key") && msg.contains("SHOP_PROD_API_KEY, PROD_API_KEY, API_KEY")
        );
    }

    #[test]
    fn dashes_become_underscores() {
        assert_eq!(
            candidate_vars("my-app", "uat", "stripe.key"),
            vec!["MY_APP_UAT_STRIPE_KEY", "UAT_STRIPE_KEY", "STRIPE_KEY"]
        );
    }

    #[test]
    fn value_is_redacted_in_debug_and_display() {
        let s = SecretValue::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        let map: BTreeMap<_, _> = [("k".to_string(), s)].into();
        assert!(!format!("{map:?}").contains("hunter2"));
    }
}
