//! `EmailNotifier`: sends a [`Message`] over SMTP with `lettre`
//! (STARTTLS, implicit TLS or plain), authenticated when a login is set.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Channel, ChannelKind, EmailConfig, Message, SendError, TlsMode};
use crate::provider::Secret;

/// How long one SMTP exchange may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The e-mail channel.
pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// Kept only to scrub it from error texts.
    password: Option<Secret>,
}

impl std::fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

fn err(reason: impl Into<String>, permanent: bool) -> SendError {
    SendError {
        channel: ChannelKind::Email,
        reason: reason.into(),
        permanent,
    }
}

impl EmailNotifier {
    /// The notifier of a checked config; `password` comes from
    /// [`EmailConfig::password`].
    pub fn new(config: &EmailConfig, password: Option<Secret>) -> Result<EmailNotifier, SendError> {
        let host = config.smtp.host.as_str();
        let builder = match config.smtp.tls {
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| err(format!("smtp {host}: {e}"), true))?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| err(format!("smtp {host}: {e}"), true))?,
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder.port(config.smtp.port).timeout(Some(SMTP_TIMEOUT));
        if let (Some(user), Some(pass)) = (&config.smtp.username, &password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        let mailbox = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|e| err(format!("address `{s}`: {e}"), true))
        };
        Ok(EmailNotifier {
            transport: builder.build(),
            from: mailbox(&config.from)?,
            to: config
                .to
                .iter()
                .map(|t| mailbox(t))
                .collect::<Result<_, _>>()?,
            password,
        })
    }

    fn scrub(&self, text: String) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.expose(), "<redacted>"),
            _ => text,
        }
    }
}

#[async_trait]
impl Channel for EmailNotifier {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(message.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let email = builder
            .body(message.body.clone())
            .map_err(|e| err(format!("cannot build the message: {e}"), true))?;
        self.transport.send(email).await.map(|_| ()).map_err(|e| {
            let permanent = e.is_permanent();
            err(self.scrub(format!("smtp: {e}")), permanent)
        })
    }
}
