//! `config/email_config.json` and `config/sms_config.json`: where alerts go.
//! Credentials are never stored in these files, only the names of the
//! environment variables that hold them.

use serde::{Deserialize, Serialize};

use super::locate::index;
use super::rules::{is_do_hostname, is_identifier};
use super::validate::{Issue, Issues, quoted};

/// Version of the email and SMS config formats.
pub const NOTIFY_CONFIG_VERSION: u32 = 1;

fn default_version() -> u32 {
    NOTIFY_CONFIG_VERSION
}
fn yes() -> bool {
    true
}
fn default_heartbeat() -> u32 {
    15
}
fn default_subject_prefix() -> String {
    "[infra]".into()
}

/// `config/email_config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default = "default_version")]
    pub version: u32,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub smtp: SmtpConfig,
    /// Sender, `alerts@example.com` or `Infra Alerts <alerts@example.com>`.
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Minutes between heartbeat emails; 0 turns heartbeats off.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Name of the environment variable holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host.
    None,
}

/// `config/sms_config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    #[serde(default = "default_version")]
    pub version: u32,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub provider: SmsProvider,
    /// Settings of the `twilio` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twilio: Option<TwilioConfig>,
    /// Settings of the `webhook` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    /// Recipients in E.164 form (`+447700900123`).
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    /// A Twilio-compatible REST API.
    Twilio,
    /// A JSON POST to any URL.
    Webhook,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    pub account_sid: String,
    /// Sender number in E.164 form.
    pub from: String,
    /// Name of the environment variable holding the auth token.
    pub auth_token_env: String,
    /// API base URL; defaults to Twilio's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Name of the environment variable holding a bearer token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
}

/// Checks an email config.
pub fn check_email(c: &EmailConfig) -> Vec<Issue> {
    let mut out = Issues::default();
    check_version(&mut out, c.version);
    let h = &c.smtp.host;
    out.check(
        is_do_hostname(h) || h.parse::<std::net::IpAddr>().is_ok(),
        "smtp.host",
        h,
        "must be a host name or IP address",
    );
    if c.smtp.port == 0 {
        out.push(
            "smtp.port".into(),
            "0".into(),
            "must be between 1 and 65535",
        );
    }
    if c.smtp.username.is_some() != c.smtp.password_env.is_some() {
        let (path, value) = if c.smtp.username.is_some() {
            ("smtp.password_env", "a missing password_env")
        } else {
            ("smtp.username", "a missing username")
        };
        out.push(
            path.into(),
            value.into(),
            "username and password_env go together: set both or neither",
        );
    }
    if let Some(env) = &c.smtp.password_env {
        check_env_name(&mut out, "smtp.password_env", env);
    }
    out.check(
        is_email(&c.from),
        "from",
        &c.from,
        "must be an email address, optionally as \"Name <address>\"",
    );
    check_recipients(&mut out, &c.to, is_email, "must be an email address");
    if c.heartbeat_interval_minutes > 24 * 60 {
        out.push(
            "heartbeat_interval_minutes".into(),
            c.heartbeat_interval_minutes.to_string(),
            "must be between 0 (off) and 1440 (a day)",
        );
    }
    out.0
}

/// Checks an SMS config.
pub fn check_sms(c: &SmsConfig) -> Vec<Issue> {
    let mut out = Issues::default();
    check_version(&mut out, c.version);
    match c.provider {
        SmsProvider::Twilio => match &c.twilio {
            None => out.push(
                "provider".into(),
                quoted("twilio"),
                "provider \"twilio\" needs a \"twilio\" section",
            ),
            Some(t) => {
                out.check(
                    !t.account_sid.trim().is_empty(),
                    "twilio.account_sid",
                    &t.account_sid,
                    "must not be empty",
                );
                out.check(
                    is_phone(&t.from),
                    "twilio.from",
                    &t.from,
                    "must be a phone number in E.164 form (+447700900123)",
                );
                check_env_name(&mut out, "twilio.auth_token_env", &t.auth_token_env);
                if let Some(base) = &t.api_base {
                    check_url(&mut out, "twilio.api_base", base);
                }
            }
        },
        SmsProvider::Webhook => match &c.webhook {
            None => out.push(
                "provider".into(),
                quoted("webhook"),
                "provider \"webhook\" needs a \"webhook\" section",
            ),
            Some(w) => {
                check_url(&mut out, "webhook.url", &w.url);
                if let Some(env) = &w.token_env {
                    check_env_name(&mut out, "webhook.token_env", env);
                }
            }
        },
    }
    check_recipients(
        &mut out,
        &c.to,
        is_phone,
        "must be a phone number in E.164 form (+447700900123)",
    );
    out.0
}

fn check_version(out: &mut Issues, v: u32) {
    if v != NOTIFY_CONFIG_VERSION {
        out.push(
            "version".into(),
            v.to_string(),
            format!("this version of infractl reads version {NOTIFY_CONFIG_VERSION}"),
        );
    }
}

/// The value is not echoed: a user who put the secret itself here must not
/// see it again in a terminal or a log.
fn check_env_name(out: &mut Issues, path: &str, name: &str) {
    if !is_identifier(name) {
        out.push(
            path.into(),
            "the value (hidden, it may be a secret)".into(),
            "must name an environment variable (letters, digits, '_'); the secret itself is never stored in the file",
        );
    }
}

fn check_url(out: &mut Issues, path: &str, u: &str) {
    let ok = url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
    out.check(ok, path, u, "must be an http:// or https:// URL");
}

fn check_recipients(out: &mut Issues, to: &[String], ok: fn(&str) -> bool, rule: &str) {
    if to.is_empty() {
        out.push("to".into(), "[]".into(), "must list at least one recipient");
    }
    for (i, r) in to.iter().enumerate() {
        out.check(ok(r), &index("to", i), r, rule);
        if to[..i].contains(r) {
            out.push(index("to", i), quoted(r), "recipients must be unique");
        }
    }
}

/// `user@host.tld` or `Name <user@host.tld>`.
pub fn is_email(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(i), Some(inner)) => &inner[i + 1..],
        (None, None) => s,
        _ => return false,
    };
    let Some((local, domain)) = addr.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains(|c: char| c.is_whitespace() || c == '@')
        && domain.contains('.')
        && is_do_hostname(domain)
}

/// E.164: `+` then 7 to 15 digits, not starting with 0.
pub fn is_phone(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&d.len()) && d.bytes().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
}
