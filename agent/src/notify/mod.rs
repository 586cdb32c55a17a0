//! Operator notifications: typed configs (`email_config.json`,
//! `sms_config.json`), pure rendering of messages, the e-mail (SMTP) and
//! SMS (Twilio) channels, the non-blocking fan-out and the leader's
//! heartbeat e-mails.

mod bundle;
mod config;
mod email;
mod fanout;
mod heartbeat;
mod message;
mod setup;
mod sms;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod message_tests;

use async_trait::async_trait;

pub use bundle::{NotifyBundle, SECRETS_FILE};
pub use config::{
    ConfigError, EMAIL_CONFIG_FILE, EmailConfig, NOTIFY_CONFIG_VERSION, SMS_CONFIG_FILE, SmsConfig,
    SmsProvider, SmtpConfig, TlsMode, TwilioConfig,
};
pub use email::{EmailNotifier, SMTP_TIMEOUT};
pub use fanout::{Audience, Counters, Fanout, QUEUE_CAPACITY, Retry};
pub use heartbeat::{run_heartbeats, summarize};
pub use message::{
    DeployConfirmation, HeartbeatSummary, LiveRelease, Message, RecoveryLine, render_deploy,
    render_heartbeat, render_notice,
};
pub use setup::{NOTIFY_DIR, NotifySetup, SetupError, TWILIO_BASE_URL_ENV};
pub use sms::{SMS_MAX_CHARS, SMS_TIMEOUT, SmsNotifier, TWILIO_BASE_URL};

/// The kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Email,
    Sms,
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
        })
    }
}

/// A send that failed; never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{channel}: {reason}")]
pub struct SendError {
    pub channel: ChannelKind,
    pub reason: String,
    /// Retrying will not help (bad address, rejected credentials).
    pub permanent: bool,
}

/// One way of reaching operators.
#[async_trait]
pub trait Channel: Send + Sync {
    fn kind(&self) -> ChannelKind;
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}
