//! `SmsNotifier`: sends a [`Message`] as a text through Twilio's Messages
//! API (`POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, basic auth
//! `sid:token`, form fields `To`, `From`, `Body`), one request per number.

use std::time::Duration;

use async_trait::async_trait;

use super::{Channel, ChannelKind, Message, SendError, TwilioConfig};
use crate::provider::Secret;

/// Twilio's API base URL.
pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";
/// How long one request may take.
pub const SMS_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest text sent (Twilio concatenates up to 1600 characters).
pub const SMS_MAX_CHARS: usize = 1600;

/// The SMS channel.
pub struct SmsNotifier {
    client: reqwest::Client,
    url: String,
    sid: String,
    token: Secret,
    from: String,
    to: Vec<String>,
}

impl std::fmt::Debug for SmsNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsNotifier")
            .field("url", &self.url)
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

fn err(reason: impl Into<String>, permanent: bool) -> SendError {
    SendError {
        channel: ChannelKind::Sms,
        reason: reason.into(),
        permanent,
    }
}

impl SmsNotifier {
    /// The notifier of a checked config against `base` (default
    /// [`TWILIO_BASE_URL`]; tests use a loopback server).
    pub fn new(
        twilio: &TwilioConfig,
        to: &[String],
        token: Secret,
        base: Option<&str>,
    ) -> Result<SmsNotifier, SendError> {
        let base = base
            .or(twilio.api_base.as_deref())
            .unwrap_or(TWILIO_BASE_URL)
            .trim_end_matches('/');
        let sid = twilio.account_sid.clone();
        let client = reqwest::Client::builder()
            .timeout(SMS_TIMEOUT)
            .build()
            .map_err(|e| err(format!("http client: {e}"), true))?;
        Ok(SmsNotifier {
            client,
            url: format!("{base}/2010-04-01/Accounts/{sid}/Messages.json"),
            sid,
            token,
            from: twilio.from.clone(),
            to: to.to_vec(),
        })
    }

    async fn send_one(&self, to: &str, body: &str) -> Result<(), SendError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("To", to)
            .append_pair("From", &self.from)
            .append_pair("Body", body)
            .finish();
        let response = self
            .client
            .post(&self.url)
            .basic_auth(&self.sid, Some(self.token.expose()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            // Without the URL: reqwest errors carry it, and it is harmless,
            // but the text stays short.
            .map_err(|e| err(format!("twilio: {}", e.without_url()), false))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Twilio's error JSON has a `message`; it never echoes the token.
        let text = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let permanent = status.is_client_error() && status.as_u16() != 429;
        Err(err(
            format!("twilio answered {status} for {to}: {detail}")
                .replace(self.token.expose(), "<redacted>"),
            permanent,
        ))
    }
}

#[async_trait]
impl Channel for SmsNotifier {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    /// Sends to every number; the first failure is returned after trying all.
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let text: String = message.sms_text().chars().take(SMS_MAX_CHARS).collect();
        let mut first_error = None;
        for to in &self.to {
            if let Err(e) = self.send_one(to, &text).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
