//! Delivery channels beyond the in-app store. [`WebhookChannel`] POSTs each
//! notification as JSON to a URL, signed as Standard Webhooks prescribes
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), so the receiver
//! can check it came from IMAS, reject a replay, and drop a repeat by its id
//! (the notification's idempotency key). A failed delivery is an error: the
//! worker reports it to the queue, which retries with backoff; a delivery that
//! can never succeed ([`imas_core::Error::Undeliverable`]: a webhook answering
//! 4xx other than 408/429, an invalid email address, an SMTP permanent
//! rejection) is dead-lettered at once. The engine records each successful
//! channel delivery, so a retry never sends twice through a channel that
//! already succeeded.

#[cfg(feature = "email")]
pub use email::EmailChannel;
#[cfg(feature = "webhook")]
pub use webhook::{ID_HEADER, SECRET_PREFIX, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel};

#[cfg(feature = "webhook")]
mod webhook {
    use std::fmt;
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use hmac::{Hmac, Mac};
    use imas_core::model::Notification;
    use imas_core::ports::{Channel, Clock, Recipient, SystemClock};
    use imas_core::{Error, Result};
    use sha2::Sha256;

    /// Standard Webhooks: the message id, here the notification's idempotency
    /// key (the same on every retry, so a receiver can drop a repeat).
    pub const ID_HEADER: &str = "webhook-id";
    /// Standard Webhooks: when the call was signed, in seconds since the epoch.
    pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
    /// Standard Webhooks: `v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`.
    pub const SIGNATURE_HEADER: &str = "webhook-signature";
    /// The prefix of a secret given in the Standard Webhooks form (`whsec_`
    /// then the key in base64).
    pub const SECRET_PREFIX: &str = "whsec_";

    /// Posts notifications to a webhook URL, signed as Standard Webhooks
    /// (<https://www.standardwebhooks.com/>) prescribes.
    #[derive(Clone)]
    pub struct WebhookChannel {
        client: reqwest::Client,
        url: String,
        key: Vec<u8>,
        clock: Arc<dyn Clock>,
    }

    impl fmt::Debug for WebhookChannel {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("WebhookChannel")
                .field("url", &self.url)
                .field("secret", &"<redacted>")
                .finish()
        }
    }

    impl WebhookChannel {
        /// A channel posting to `url` (http or https), signing with `secret`,
        /// giving up on one attempt after `timeout`. The secret is either
        /// `whsec_<base64>` (the Standard Webhooks form: the HMAC key is the
        /// decoded bytes) or any other text, used as it is; either way the key
        /// is at least 16 bytes.
        pub fn new(url: &str, secret: &[u8], timeout: Duration) -> Result<Self> {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::config("url", "expected an http:// or https:// URL"));
            }
            let key = Self::signing_key(secret)?;
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| Error::backend("webhook", e))?;
            Ok(Self {
                client,
                url: url.to_string(),
                key,
                clock: Arc::new(SystemClock),
            })
        }

        /// The clock that stamps `webhook-timestamp` (default: the system's).
        pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
            self.clock = clock;
            self
        }

        /// The HMAC key of a configured secret: the base64 after `whsec_`, or
        /// the secret's own bytes.
        pub fn signing_key(secret: &[u8]) -> Result<Vec<u8>> {
            let key = match secret.strip_prefix(SECRET_PREFIX.as_bytes()) {
                Some(encoded) => BASE64.decode(encoded).map_err(|e| {
                    Error::config(
                        "secret",
                        format!("expected base64 after {SECRET_PREFIX} ({e})"),
                    )
                })?,
                None => secret.to_vec(),
            };
            if key.len() < 16 {
                return Err(Error::config(
                    "secret",
                    "expected a key of at least 16 bytes",
                ));
            }
            Ok(key)
        }

        /// The `webhook-signature` value of one call: `v1,` then the base64 of
        /// the HMAC-SHA256 under `key` of `{id}.{timestamp}.{body}`.
        pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        }
    }

    /// Whether an answer means the endpoint will never take this call: a 4xx
    /// other than 408 (timeout) and 429 (too many requests).
    fn refused_for_good(status: reqwest::StatusCode) -> bool {
        status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS
    }

    #[async_trait]
    impl Channel for WebhookChannel {
        fn name(&self) -> &'static str {
            "webhook"
        }

        async fn deliver(&self, n: &Notification, _to: Option<&Recipient>) -> Result<()> {
            let body = serde_json::to_vec(n).map_err(|e| Error::backend("serde_json", e))?;
            let timestamp = self.clock.now().timestamp();
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(ID_HEADER, &n.key)
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    Self::signature(&self.key, &n.key, timestamp, &body),
                )
                .body(body)
                .send()
                .await
                .map_err(|e| Error::backend("webhook", e))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else if refused_for_good(status) {
                Err(Error::undeliverable(
                    "webhook",
                    format!("the endpoint answered {status}"),
                ))
            } else {
                Err(Error::backend(
                    "webhook",
                    format!("the endpoint answered {status}"),
                ))
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_4xx_but_408_and_429_is_for_good() {
            for (code, permanent) in [
                (400, true),
                (401, true),
                (404, true),
                (410, true),
                (422, true),
                (408, false),
                (429, false),
                (500, false),
                (503, false),
                (302, false),
            ] {
                let status = reqwest::StatusCode::from_u16(code).expect("status");
                assert_eq!(refused_for_good(status), permanent, "{code}");
            }
        }

        #[test]
        fn secrets_in_both_forms() {
            let raw = WebhookChannel::signing_key(b"a raw secret of some length").expect("raw");
            assert_eq!(raw, b"a raw secret of some length");
            let encoded = format!("whsec_{}", BASE64.encode([7u8; 24]));
            let key = WebhookChannel::signing_key(encoded.as_bytes()).expect("whsec");
            assert_eq!(key, [7u8; 24]);
            assert!(WebhookChannel::signing_key(b"whsec_not base64!").is_err());
            assert!(WebhookChannel::signing_key(b"short").is_err());
            let short = format!("whsec_{}", BASE64.encode([1u8; 8]));
            assert!(WebhookChannel::signing_key(short.as_bytes()).is_err());
        }
    }
}

#[cfg(feature = "email")]
mod email {
    use std::fmt;

    use async_trait::async_trait;
    use imas_core::model::Notification;
    use imas_core::ports::{Channel, Recipient};
    use imas_core::{Error, Result};
    use lettre::message::Mailbox;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    /// Emails each notification to its recipient's address over SMTP. The
    /// notification's idempotency key becomes the Message-ID, so a mail system
    /// can drop a repeat.
    pub struct EmailChannel {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    }

    impl fmt::Debug for EmailChannel {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("EmailChannel")
                .field("from", &self.from.to_string())
                .finish_non_exhaustive()
        }
    }

    impl EmailChannel {
        /// A channel sending through `smtp_url` (`smtp://host:port` in clear,
        /// `smtp://host?tls=required` with STARTTLS, `smtps://host` with TLS;
        /// `user:password@` for authentication) from the address `from`, to the
        /// address of the recipient the engine hands over.
        pub fn new(smtp_url: &str, from: &str) -> Result<Self> {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
                .map_err(|e| Error::config("smtp_url", format!("expected smtp://host:port ({e})")))?
                .build();
            let from = from
                .parse::<Mailbox>()
                .map_err(|e| Error::config("from", format!("expected an email address ({e})")))?;
            Ok(Self { transport, from })
        }
    }

    fn message_id(key: &str) -> String {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '.'
                }
            })
            .collect();
        format!("<{safe}@imas>")
    }

    #[async_trait]
    impl Channel for EmailChannel {
        fn name(&self) -> &'static str {
            "email"
        }

        async fn deliver(&self, n: &Notification, to: Option<&Recipient>) -> Result<()> {
            // A recipient that does not exist gets nothing (and nothing retries).
            let Some(user) = to else {
                return Ok(());
            };
            let to = format!(
                "{} <{}>",
                user.name.replace(['<', '>', '"'], ""),
                user.email
            )
            .parse::<Mailbox>()
            .map_err(|e| Error::undeliverable("email", format!("recipient address: {e}")))?;
            let subject: String = format!("[IMAS {}] {}", n.kind.as_str(), n.message)
                .chars()
                .take(120)
                .collect();
            let mut body = n.message.clone();
            if let Some(incident) = n.incident_id {
                body.push_str(&format!("\n\nIncident: {incident}\n"));
            }
            let mail = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(subject)
                .message_id(Some(message_id(&n.key)))
                .body(body)
                .map_err(|e| Error::undeliverable("email", e.to_string()))?;
            self.transport.send(mail).await.map_err(|e| {
                if e.is_permanent() {
                    // A 5xx answer (e.g. the recipient refused): no retry helps.
                    Error::undeliverable("email", e.to_string())
                } else {
                    Error::backend("email", e)
                }
            })?;
            Ok(())
        }
    }
}
