//! Loading `email_config.json` and `sms_config.json` for sending. The file
//! model and its checks are [`crate::spec::notify_config`] (the same ones
//! `infractl validate` runs); this adds errors that name the file, the
//! checks sending needs beyond them, and the secrets the `*_env` fields
//! name (never in the files themselves).

use std::path::Path;

use crate::provider::Secret;
pub use crate::spec::notify_config::{
    EmailConfig, NOTIFY_CONFIG_VERSION, SmsConfig, SmsProvider, SmtpConfig, TlsMode, TwilioConfig,
};
use crate::spec::notify_config::{check_email, check_sms};
use crate::spec::validate::Issue;

/// File name of the e-mail config.
pub const EMAIL_CONFIG_FILE: &str = "email_config.json";
/// File name of the SMS config.
pub const SMS_CONFIG_FILE: &str = "sms_config.json";

/// Why a notification config is unusable. Never shows a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: field `{field}`: {reason}")]
    Parse {
        file: String,
        field: String,
        reason: String,
    },
    #[error("{file}: field `{field}` has invalid value `{value}`: {expected}")]
    Invalid {
        file: String,
        field: String,
        value: String,
        expected: String,
    },
    #[error("{file}: environment variable {var} (named by field `{field}`) is not set or empty")]
    MissingSecret {
        file: String,
        field: String,
        var: String,
    },
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        ConfigError::Parse {
            file: file.to_string(),
            field: if field == "." { "(root)".into() } else { field },
            reason: e.into_inner().to_string(),
        }
    })
}

fn invalid(file: &str, field: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        file: file.into(),
        field: field.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

/// The first issue the spec's checks found, as this file's error.
fn first_issue(file: &str, issues: Vec<Issue>) -> Result<(), ConfigError> {
    match issues.into_iter().next() {
        None => Ok(()),
        Some(i) => Err(ConfigError::Invalid {
            file: file.into(),
            field: i.path,
            value: i.value,
            expected: i.rule,
        }),
    }
}

/// Whether lettre accepts `s` as a mailbox (`Name <address>` or an address).
fn is_mailbox(s: &str) -> bool {
    s.parse::<lettre::message::Mailbox>().is_ok()
}

impl EmailConfig {
    /// Parses and checks the text of `file`.
    pub fn parse(file: &str, text: &str) -> Result<EmailConfig, ConfigError> {
        let c: EmailConfig = parse(file, text)?;
        first_issue(file, check_email(&c))?;
        let addresses = std::iter::once(("from".to_string(), &c.from)).chain(
            c.to.iter()
                .enumerate()
                .map(|(i, a)| (format!("to[{i}]"), a)),
        );
        for (field, address) in addresses {
            if !is_mailbox(address) {
                return Err(invalid(
                    file,
                    &field,
                    address,
                    "expected an address the mailer accepts",
                ));
            }
        }
        Ok(c)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<EmailConfig, ConfigError> {
        let text = read(path)?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The SMTP password from the environment (`lookup` is `std::env::var`
    /// in production), or `None` without authentication.
    pub fn password(
        &self,
        file: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, ConfigError> {
        let Some(var) = &self.smtp.password_env else {
            return Ok(None);
        };
        resolve(file, "smtp.password_env", var, lookup).map(Some)
    }
}

impl SmsConfig {
    /// Parses and checks the text of `file`: only Twilio sends today.
    pub fn parse(file: &str, text: &str) -> Result<SmsConfig, ConfigError> {
        let c: SmsConfig = parse(file, text)?;
        first_issue(file, check_sms(&c))?;
        let sid = &c.twilio_in(file)?.account_sid;
        if !(sid.starts_with("AC")
            && sid.len() == 34
            && sid[2..].chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(invalid(
                file,
                "twilio.account_sid",
                sid,
                "expected `AC` followed by 32 letters or digits",
            ));
        }
        Ok(c)
    }

    /// The Twilio settings; an error for another provider.
    pub fn twilio_in(&self, file: &str) -> Result<&TwilioConfig, ConfigError> {
        match (&self.provider, &self.twilio) {
            (SmsProvider::Twilio, Some(t)) => Ok(t),
            _ => Err(invalid(
                file,
                "provider",
                &format!("{:?}", self.provider).to_lowercase(),
                "SMS are sent through `twilio` (with a `twilio` section) only",
            )),
        }
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<SmsConfig, ConfigError> {
        let text = read(path)?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The Twilio auth token from the environment.
    pub fn auth_token(
        &self,
        file: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Secret, ConfigError> {
        let var = &self.twilio_in(file)?.auth_token_env;
        resolve(file, "twilio.auth_token_env", var, lookup)
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn resolve(
    file: &str,
    field: &str,
    var: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    match lookup(var) {
        Some(v) if !v.is_empty() => Ok(Secret::new(v)),
        _ => Err(ConfigError::MissingSecret {
            file: file.into(),
            field: field.into(),
            var: var.into(),
        }),
    }
}
