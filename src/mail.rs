//! Outgoing mail: one `send` over the configured transport (`EMAIL_TRANSPORT`): SMTP through
//! `lettre`, an in-memory outbox for tests, or the log when nothing is configured (so a
//! password-reset link is never silently lost on a development box).

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{EmailTransport, MailConfig, Outbox};

/// One plain-text message.
#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid address: {0}")]
    Address(String),
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// The configured transport.
pub enum Mailer {
    Log,
    Smtp {
        from: String,
        transport: AsyncSmtpTransport<Tokio1Executor>,
    },
    Capture(Outbox),
}

impl Mailer {
    /// Builds the transport from the configuration (no connection is made until a send).
    pub fn new(config: &MailConfig) -> Mailer {
        match &config.transport {
            EmailTransport::Log => Mailer::Log,
            EmailTransport::Capture(outbox) => Mailer::Capture(outbox.clone()),
            EmailTransport::Smtp {
                host,
                port,
                user,
                password,
            } => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(*port);
                if let (Some(user), Some(password)) = (user, password) {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose_secret().to_string(),
                    ));
                }
                Mailer::Smtp {
                    from: config.from.clone(),
                    transport: builder.build(),
                }
            }
        }
    }

    /// Delivers one message.
    pub async fn send(&self, mail: Mail) -> Result<(), MailError> {
        match self {
            Mailer::Log => {
                tracing::warn!(to = %mail.to, subject = %mail.subject, body = %mail.text,
                    "no EMAIL_TRANSPORT configured: mail logged instead of sent");
                Ok(())
            }
            Mailer::Capture(outbox) => {
                if let Ok(mut outbox) = outbox.lock() {
                    outbox.push(mail);
                }
                Ok(())
            }
            Mailer::Smtp { from, transport } => {
                let parse = |address: &str| {
                    address
                        .parse::<Mailbox>()
                        .map_err(|_| MailError::Address(address.to_string()))
                };
                let message = Message::builder()
                    .from(parse(from)?)
                    .to(parse(&mail.to)?)
                    .subject(mail.subject)
                    .body(mail.text)?;
                transport.send(message).await?;
                Ok(())
            }
        }
    }
}
