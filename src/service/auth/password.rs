//! Password resets, as Directus's users service does them: a request mails a link with a
//! signed token (a day long) whether or not the email exists (the caller cannot tell); the
//! token names the email and fingerprints the current password hash, so it works once, and a
//! reset ends every login of the user.

use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::ExposeSecret;

use crate::core::password;
use crate::core::token::{self, ISSUER, PASSWORD_RESET_SCOPE, ResetClaims};
use crate::db::{sessions, users};
use crate::error::Error;
use crate::mail::Mail;
use crate::service::{Client, Services};

/// Every request takes at least this long, found or not (Directus's fixed 500 ms).
const REQUEST_STALL: Duration = Duration::from_millis(500);
/// How long a reset link works.
const RESET_TTL_SECS: i64 = 86_400;

/// Mails `email` a reset link (to `reset_url`, which `PASSWORD_RESET_URL_ALLOW_LIST` must
/// admit, or the app's page) when an active local user has it. Takes at least 500 ms either
/// way; the mail goes out after the answer, so a slow relay reveals nothing either.
pub async fn request_reset(
    services: &Services,
    client: &Client,
    email: &str,
    reset_url: Option<&str>,
) -> Result<(), Error> {
    let started = Instant::now();
    let config = &services.config;
    if let Some(url) = reset_url
        && !url_allowed(url, &config.mail.reset_url_allow_list)
    {
        return Err(Error::payload(format!(
            "URL \"{url}\" can't be used to reset passwords"
        )));
    }
    if let Some(ip) = client.ip {
        services.sign_in.check(ip, Some(&email.to_lowercase())).await?;
    }
    if let Some(user) = users::by_email(&services.pool, email).await?
        && user.status == "active"
        && user.provider == "default"
    {
        let now = Utc::now().timestamp();
        let claims = ResetClaims {
            email: user.email.clone().unwrap_or_else(|| email.to_string()),
            scope: PASSWORD_RESET_SCOPE.into(),
            hash: fingerprint(user.password.as_deref()),
            iat: now,
            exp: now + RESET_TTL_SECS,
            nbf: None,
            iss: ISSUER.into(),
        };
        let token =
            token::sign(&claims, config.secret.expose_secret().as_bytes()).map_err(Error::internal)?;
        let link = reset_link(reset_url, &config.public_url, &token);
        let mail = Mail {
            to: claims.email,
            subject: "Password Reset Request".into(),
            text: format!(
                "A password reset was requested for this account.\n\nSet a new password here (the link works once, for a day):\n{link}\n\nIf you did not ask for this, ignore this message."
            ),
        };
        let mailer = services.mailer.clone();
        actix_web::rt::spawn(async move {
            if let Err(err) = mailer.send(mail).await {
                tracing::error!(error = %err, "could not send the password reset mail");
            }
        });
    }
    if let Some(left) = REQUEST_STALL.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    Ok(())
}

/// Sets a new password with a reset `token`; `FORBIDDEN` for a token that is not one, was
/// used, or names a user who is gone or inactive. Ends every login of the user.
pub async fn reset(services: &Services, token: &str, new_password: String) -> Result<(), Error> {
    let claims: ResetClaims = token::verify(
        token,
        services.config.secret.expose_secret().as_bytes(),
        Utc::now().timestamp(),
    )?;
    if claims.scope != PASSWORD_RESET_SCOPE || claims.hash.is_empty() {
        return Err(Error::Forbidden);
    }
    let user = users::by_email(&services.pool, &claims.email)
        .await?
        .filter(|u| u.status == "active" && fingerprint(u.password.as_deref()) == claims.hash)
        .ok_or(Error::Forbidden)?;
    let hashed = actix_web::web::block(move || password::hash(&new_password))
        .await
        .map_err(Error::internal)?
        .map_err(|err| Error::internal(anyhow::anyhow!("hashing: {err}")))?;
    users::set_password(&services.pool, user.id, &hashed).await?;
    // A reset means the old password may be known to someone else: end every login.
    sessions::end_all_of(&services.pool, user.id).await?;
    Ok(())
}

/// A fingerprint of the stored hash: changes whenever the password does.
fn fingerprint(stored: Option<&str>) -> String {
    password::token_digest(stored.unwrap_or_default())[..16].to_string()
}

/// Whether `reset_url` starts with one of the allowed URLs (none allowed when the list is empty).
fn url_allowed(url: &str, allow_list: &[String]) -> bool {
    allow_list.iter().any(|allowed| {
        url == allowed
            || url
                .strip_prefix(allowed.trim_end_matches('/'))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
    })
}

fn reset_link(reset_url: Option<&str>, public_url: &str, token: &str) -> String {
    let base = match reset_url {
        Some(url) => url.to_string(),
        None => format!("{}/admin/reset-password", public_url.trim_end_matches('/')),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_urls_must_be_allowed_by_prefix() {
        let list = vec!["https://app.example.com/reset".to_string()];
        assert!(url_allowed("https://app.example.com/reset", &list));
        assert!(url_allowed("https://app.example.com/reset/x?y=1", &list));
        assert!(!url_allowed("https://app.example.com/resetter", &list));
        assert!(!url_allowed("https://evil.example.com/reset", &list));
        assert!(!url_allowed("https://app.example.com/reset", &[]));
        assert_eq!(
            reset_link(None, "http://h/", "t"),
            "http://h/admin/reset-password?token=t"
        );
        assert_eq!(
            reset_link(Some("https://a/r?x=1"), "/", "t"),
            "https://a/r?x=1&token=t"
        );
    }
}
