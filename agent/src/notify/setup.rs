//! `NotifySetup`: the channels an agent builds from the bundle in its
//! notification directory (`notify/` beside its CA key), with the SMTP
//! password and the Twilio token from the bundle's `secrets.env` or, failing
//! that, the agent's environment.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Channel, ConfigError, EMAIL_CONFIG_FILE, EmailConfig, EmailNotifier, NotifyBundle,
    SMS_CONFIG_FILE, SendError, SmsConfig, SmsNotifier,
};

/// Directory, beside the agent's CA key, holding the bundle.
pub const NOTIFY_DIR: &str = "notify";
/// Environment variable overriding Twilio's base URL (local trials, tests).
pub const TWILIO_BASE_URL_ENV: &str = "INFRA_TWILIO_BASE_URL";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Channel(#[from] SendError),
}

/// The enabled channels and what the heartbeat needs.
pub struct NotifySetup {
    pub channels: Vec<Arc<dyn Channel>>,
    pub subject_prefix: String,
    /// Heartbeat e-mail interval; `None` without e-mail or with interval 0.
    pub heartbeat: Option<Duration>,
}

impl std::fmt::Debug for NotifySetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<_> = self.channels.iter().map(|c| c.kind()).collect();
        f.debug_struct("NotifySetup")
            .field("channels", &kinds)
            .field("heartbeat", &self.heartbeat)
            .finish()
    }
}

impl NotifySetup {
    /// Reads the bundle in `dir` (configs and `secrets.env`); `None` when
    /// no channel is enabled. `env` reads environment variables, consulted
    /// for secrets the bundle lacks.
    pub fn from_dir(
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<NotifySetup>, SetupError> {
        match NotifyBundle::load(dir)? {
            Some(bundle) => Self::from_bundle(&bundle, dir, env),
            None => Ok(None),
        }
    }

    /// The channels of `bundle` (as found in `dir`, for error messages).
    pub fn from_bundle(
        bundle: &NotifyBundle,
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<NotifySetup>, SetupError> {
        let lookup = bundle.lookup(env);
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        let mut subject_prefix = String::new();
        let mut heartbeat = None;
        if let Some(text) = &bundle.email_json {
            let file = dir.join(EMAIL_CONFIG_FILE).display().to_string();
            let config = EmailConfig::parse(&file, text)?;
            if config.enabled {
                let password = config.password(&file, &lookup)?;
                channels.push(Arc::new(EmailNotifier::new(&config, password)?));
                subject_prefix = config.subject_prefix.clone();
                heartbeat = (config.heartbeat_interval_minutes > 0).then(|| {
                    Duration::from_secs(u64::from(config.heartbeat_interval_minutes) * 60)
                });
            }
        }
        if let Some(text) = &bundle.sms_json {
            let file = dir.join(SMS_CONFIG_FILE).display().to_string();
            let config = SmsConfig::parse(&file, text)?;
            if config.enabled {
                let token = config.auth_token(&file, &lookup)?;
                let base = lookup(TWILIO_BASE_URL_ENV);
                let twilio = config.twilio_in(&file)?;
                channels.push(Arc::new(SmsNotifier::new(
                    twilio,
                    &config.to,
                    token,
                    base.as_deref(),
                )?));
            }
        }
        if channels.is_empty() {
            return Ok(None);
        }
        Ok(Some(NotifySetup {
            channels,
            subject_prefix,
            heartbeat,
        }))
    }
}
