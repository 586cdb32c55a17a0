//! `NotifySetup`: the channels an agent builds from the configs in its
//! notification directory (`<data_dir>/notify/`), with the SMTP password
//! and the Twilio token read from the agent's environment.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Channel, ConfigError, EMAIL_CONFIG_FILE, EmailConfig, EmailNotifier, SMS_CONFIG_FILE,
    SendError, SmsConfig, SmsNotifier,
};

/// Directory under the agent's data directory holding the configs.
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
    /// Reads the configs present in `dir`; `None` when no channel is
    /// enabled. `lookup` reads environment variables.
    pub fn from_dir(
        dir: &Path,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<NotifySetup>, SetupError> {
        let mut channels: Vec<Arc<dyn Channel>> = Vec::new();
        let mut subject_prefix = String::new();
        let mut heartbeat = None;
        let email_path = dir.join(EMAIL_CONFIG_FILE);
        if email_path.exists() {
            let config = EmailConfig::load(&email_path)?;
            if config.enabled {
                let file = email_path.display().to_string();
                let password = config.password(&file, &lookup)?;
                channels.push(Arc::new(EmailNotifier::new(&config, password)?));
                subject_prefix = config.subject_prefix.clone();
                heartbeat = (config.heartbeat_interval_minutes > 0)
                    .then(|| Duration::from_secs(config.heartbeat_interval_minutes * 60));
            }
        }
        let sms_path = dir.join(SMS_CONFIG_FILE);
        if sms_path.exists() {
            let config = SmsConfig::load(&sms_path)?;
            if config.enabled {
                let file = sms_path.display().to_string();
                let token = config.auth_token(&file, &lookup)?;
                let base = lookup(TWILIO_BASE_URL_ENV);
                channels.push(Arc::new(SmsNotifier::new(&config, token, base.as_deref())?));
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
