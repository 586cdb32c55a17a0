//! `NotifyBundle`: the notification configs and the secrets they name, as
//! shipped to every orchestrating droplet (user-data files next to the CA
//! key and the API token), so whichever agent leads can notify.
//! `infractl` builds it from its config directory and its environment.

use std::collections::BTreeMap;
use std::path::Path;

use super::{ConfigError, EMAIL_CONFIG_FILE, EmailConfig, SMS_CONFIG_FILE, SmsConfig};
use crate::provider::Secret;

/// File of the bundle holding the secrets (`NAME=value` lines, mode 0600).
pub const SECRETS_FILE: &str = "secrets.env";

/// The configs (checked JSON text) and the secret values by variable name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NotifyBundle {
    pub email_json: Option<String>,
    pub sms_json: Option<String>,
    pub secrets: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for NotifyBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyBundle")
            .field("email", &self.email_json.is_some())
            .field("sms", &self.sms_json.is_some())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn read_opt(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::Read {
            file: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

impl NotifyBundle {
    /// The bundle of the configs in `dir` (infractl's config directory),
    /// with the secrets of the enabled channels read through `lookup`
    /// (the caller's environment). `None` without any config file.
    pub fn from_caller(
        dir: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<NotifyBundle>, ConfigError> {
        let mut bundle = NotifyBundle::default();
        let email_path = dir.join(EMAIL_CONFIG_FILE);
        if let Some(text) = read_opt(&email_path)? {
            let file = email_path.display().to_string();
            let config = EmailConfig::parse(&file, &text)?;
            if config.enabled
                && let (Some(var), Some(p)) =
                    (&config.smtp.password_env, config.password(&file, &lookup)?)
            {
                bundle.secrets.insert(var.clone(), p);
            }
            bundle.email_json = Some(text);
        }
        let sms_path = dir.join(SMS_CONFIG_FILE);
        if let Some(text) = read_opt(&sms_path)? {
            let file = sms_path.display().to_string();
            let config = SmsConfig::parse(&file, &text)?;
            if config.enabled {
                let token = config.auth_token(&file, &lookup)?;
                let var = config.twilio_in(&file)?.auth_token_env.clone();
                bundle.secrets.insert(var, token);
            }
            bundle.sms_json = Some(text);
        }
        Ok((bundle.email_json.is_some() || bundle.sms_json.is_some()).then_some(bundle))
    }

    /// The bundle written in `dir` (an agent's notify directory), if any.
    pub fn load(dir: &Path) -> Result<Option<NotifyBundle>, ConfigError> {
        let mut bundle = NotifyBundle {
            email_json: read_opt(&dir.join(EMAIL_CONFIG_FILE))?,
            sms_json: read_opt(&dir.join(SMS_CONFIG_FILE))?,
            secrets: BTreeMap::new(),
        };
        if let Some(text) = read_opt(&dir.join(SECRETS_FILE))? {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let Some((name, value)) = line.split_once('=') else {
                    return Err(ConfigError::Parse {
                        file: dir.join(SECRETS_FILE).display().to_string(),
                        field: "(line)".into(),
                        reason: "expected NAME=value".into(),
                    });
                };
                bundle
                    .secrets
                    .insert(name.trim().to_string(), Secret::new(value));
            }
        }
        Ok((bundle.email_json.is_some() || bundle.sms_json.is_some()).then_some(bundle))
    }

    /// The files to write into a notify directory: `(name, content)`.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let mut files = Vec::new();
        if let Some(t) = &self.email_json {
            files.push((EMAIL_CONFIG_FILE, t.clone()));
        }
        if let Some(t) = &self.sms_json {
            files.push((SMS_CONFIG_FILE, t.clone()));
        }
        if !self.secrets.is_empty() {
            let lines: String = self
                .secrets
                .iter()
                .map(|(k, v)| format!("{k}={}\n", v.expose()))
                .collect();
            files.push((SECRETS_FILE, lines));
        }
        files
    }

    /// A secret by variable name: the bundle's, else `env`'s.
    pub fn lookup<'a>(
        &'a self,
        env: impl Fn(&str) -> Option<String> + 'a,
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            self.secrets
                .get(name)
                .map(|s| s.expose().to_string())
                .or_else(|| env(name))
        }
    }
}
