//! Delivery channels beyond the in-app store. [`WebhookChannel`] POSTs each
//! notification as JSON to a URL, signed with HMAC-SHA256 so the receiver can
//! check it came from IMAS, with the notification's idempotency key in a header
//! so the receiver can drop a repeat. A failed delivery is an error: the worker
//! reports it to the queue, which retries with backoff; the engine records each
//! successful channel delivery, so a retry never sends twice through a channel
//! that already succeeded.

#[cfg(feature = "email")]
pub use email::EmailChannel;
#[cfg(feature = "webhook")]
pub use webhook::{KEY_HEADER, SIGNATURE_HEADER, WebhookChannel};

#[cfg(feature = "webhook")]
mod webhook {
    use std::fmt;
    use std::time::Duration;

    use async_trait::async_trait;
    use hmac::{Hmac, Mac};
    use imas_core::model::Notification;
    use imas_core::ports::Channel;
    use imas_core::{Error, Result};
    use sha2::Sha256;

    /// The header carrying `sha256=<hex HMAC of the body>`.
    pub const SIGNATURE_HEADER: &str = "x-imas-signature";
    /// The header carrying the notification's idempotency key.
    pub const KEY_HEADER: &str = "idempotency-key";

    /// Posts notifications to a webhook URL.
    #[derive(Clone)]
    pub struct WebhookChannel {
        client: reqwest::Client,
        url: String,
        secret: Vec<u8>,
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
        /// A channel posting to `url` (http or https), signing with `secret` (at
        /// least 16 bytes), giving up on one attempt after `timeout`.
        pub fn new(url: &str, secret: &[u8], timeout: Duration) -> Result<Self> {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::config(
                    "IMAS_WEBHOOK_URL",
                    "expected an http:// or https:// URL",
                ));
            }
            if secret.len() < 16 {
                return Err(Error::config(
                    "IMAS_WEBHOOK_SECRET",
                    "expected at least 16 bytes",
                ));
            }
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| Error::backend("webhook", e))?;
            Ok(Self {
                client,
                url: url.to_string(),
                secret: secret.to_vec(),
            })
        }

        /// `sha256=<hex>` of `body` under `secret`, as sent in [`SIGNATURE_HEADER`].
        pub fn signature(secret: &[u8], body: &[u8]) -> String {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            mac.update(body);
            let digest = mac.finalize().into_bytes();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256={hex}")
        }
    }

    #[async_trait]
    impl Channel for WebhookChannel {
        fn name(&self) -> &'static str {
            "webhook"
        }

        async fn deliver(&self, n: &Notification) -> Result<()> {
            let body = serde_json::to_vec(n).map_err(|e| Error::backend("serde_json", e))?;
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, Self::signature(&self.secret, &body))
                .header(KEY_HEADER, &n.key)
                .body(body)
                .send()
                .await
                .map_err(|e| Error::backend("webhook", e))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(Error::backend(
                    "webhook",
                    format!("the endpoint answered {}", response.status()),
                ))
            }
        }
    }
}

#[cfg(feature = "email")]
mod email {
    use std::fmt;
    use std::sync::Arc;

    use async_trait::async_trait;
    use imas_core::model::Notification;
    use imas_core::ports::{Channel, Store};
    use imas_core::{Error, Result};
    use lettre::message::Mailbox;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    /// Emails each notification to its recipient's address over SMTP. The
    /// notification's idempotency key becomes the Message-ID, so a mail system
    /// can drop a repeat.
    pub struct EmailChannel {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        users: Arc<dyn Store>,
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
        /// `user:password@` for authentication) from the address `from`, looking
        /// recipients up in `users`.
        pub fn new(smtp_url: &str, from: &str, users: Arc<dyn Store>) -> Result<Self> {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
                .map_err(|e| {
                    Error::config("IMAS_SMTP_URL", format!("expected smtp://host:port ({e})"))
                })?
                .build();
            let from = from.parse::<Mailbox>().map_err(|e| {
                Error::config("IMAS_SMTP_FROM", format!("expected an email address ({e})"))
            })?;
            Ok(Self {
                transport,
                from,
                users,
            })
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

        async fn deliver(&self, n: &Notification) -> Result<()> {
            // A recipient that no longer exists gets nothing (and nothing retries).
            let Some(user) = self.users.get_user(n.user).await? else {
                return Ok(());
            };
            let to = format!(
                "{} <{}>",
                user.name.replace(['<', '>', '"'], ""),
                user.email
            )
            .parse::<Mailbox>()
            .map_err(|e| Error::backend("email", format!("recipient address: {e}")))?;
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
                .map_err(|e| Error::backend("email", e))?;
            self.transport
                .send(mail)
                .await
                .map_err(|e| Error::backend("email", e))?;
            Ok(())
        }
    }
}
