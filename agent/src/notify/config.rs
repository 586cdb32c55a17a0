//! Typed, versioned parsing of `email_config.json` and `sms_config.json`:
//! every error names the file, the field and the offending value; secrets
//! are never in the files (only the names of the variables holding them).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::provider::Secret;

/// The config format version both files carry.
pub const NOTIFY_CONFIG_VERSION: u32 = 1;
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

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption (loopback relays and tests only).
    None,
}

/// The `smtp` object of `email_config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Login name; no authentication when absent.
    #[serde(default)]
    pub username: Option<String>,
    /// Name of the environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

/// `email_config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub version: u32,
    pub enabled: bool,
    pub smtp: SmtpConfig,
    /// `Name <address>` or a bare address.
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub subject_prefix: String,
    /// Minutes between heartbeat e-mails; 0 turns them off.
    #[serde(default)]
    pub heartbeat_interval_minutes: u64,
}

/// The `twilio` object of `sms_config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub from: String,
    /// Name of the environment variable holding the auth token.
    pub auth_token_env: String,
}

/// The SMS providers supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    Twilio,
}

/// `sms_config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    pub version: u32,
    pub enabled: bool,
    pub provider: SmsProvider,
    pub twilio: TwilioConfig,
    pub to: Vec<String>,
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

fn check_version(file: &str, version: u32) -> Result<(), ConfigError> {
    if version == NOTIFY_CONFIG_VERSION {
        return Ok(());
    }
    Err(invalid(
        file,
        "version",
        &version.to_string(),
        &format!("expected {NOTIFY_CONFIG_VERSION}"),
    ))
}

fn check_env_name(file: &str, field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        return Ok(());
    }
    Err(invalid(
        file,
        field,
        name,
        "expected an environment variable name (A-Z, 0-9, _)",
    ))
}

/// Whether `s` is an e-mail address or `Name <address>` lettre accepts.
fn is_mailbox(s: &str) -> bool {
    s.parse::<lettre::message::Mailbox>().is_ok()
}

/// E.164: `+` then 8 to 15 digits.
fn is_e164(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
}

impl EmailConfig {
    /// Parses and checks the text of `file`.
    pub fn parse(file: &str, text: &str) -> Result<EmailConfig, ConfigError> {
        let c: EmailConfig = parse(file, text)?;
        check_version(file, c.version)?;
        if c.smtp.host.trim().is_empty() {
            return Err(invalid(
                file,
                "smtp.host",
                &c.smtp.host,
                "expected a host name",
            ));
        }
        if c.smtp.port == 0 {
            return Err(invalid(file, "smtp.port", "0", "expected a port 1-65535"));
        }
        if let Some(name) = &c.smtp.password_env {
            check_env_name(file, "smtp.password_env", name)?;
            if c.smtp.username.is_none() {
                return Err(invalid(
                    file,
                    "smtp.username",
                    "null",
                    "expected a login name when smtp.password_env is set",
                ));
            }
        }
        if !is_mailbox(&c.from) {
            return Err(invalid(
                file,
                "from",
                &c.from,
                "expected `Name <address>` or an address",
            ));
        }
        if c.enabled && c.to.is_empty() {
            return Err(invalid(file, "to", "[]", "expected at least one address"));
        }
        for (i, to) in c.to.iter().enumerate() {
            if !is_mailbox(to) {
                return Err(invalid(
                    file,
                    &format!("to[{i}]"),
                    to,
                    "expected an e-mail address",
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
    /// Parses and checks the text of `file`.
    pub fn parse(file: &str, text: &str) -> Result<SmsConfig, ConfigError> {
        let c: SmsConfig = parse(file, text)?;
        check_version(file, c.version)?;
        let sid = &c.twilio.account_sid;
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
        if !is_e164(&c.twilio.from) {
            return Err(invalid(
                file,
                "twilio.from",
                &c.twilio.from,
                "expected an E.164 number (+ and 8-15 digits)",
            ));
        }
        check_env_name(file, "twilio.auth_token_env", &c.twilio.auth_token_env)?;
        if c.enabled && c.to.is_empty() {
            return Err(invalid(file, "to", "[]", "expected at least one number"));
        }
        for (i, to) in c.to.iter().enumerate() {
            if !is_e164(to) {
                return Err(invalid(
                    file,
                    &format!("to[{i}]"),
                    to,
                    "expected an E.164 number (+ and 8-15 digits)",
                ));
            }
        }
        Ok(c)
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
        resolve(
            file,
            "twilio.auth_token_env",
            &self.twilio.auth_token_env,
            lookup,
        )
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
