//! `POST /auth/password/request` and `/auth/password/reset`, as Directus: the request mails a
//! link with a signed token (a day long) and answers 204 whether or not the email exists; the
//! token names the email and fingerprints the current password hash, so it works once.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::client_of;
use crate::core::password;
use crate::core::token::{self, ISSUER, PASSWORD_RESET_SCOPE, ResetClaims};
use crate::db::{sessions, users};
use crate::error::Error;
use crate::http::state::AppState;
use crate::mail::Mail;

/// Every request takes at least this long, found or not (Directus's fixed 500 ms).
const REQUEST_STALL: Duration = Duration::from_millis(500);
/// How long a reset link works.
const RESET_TTL_SECS: i64 = 86_400;

/// `POST /auth/password/request` `{email, reset_url?}`.
pub async fn request(
    req: HttpRequest,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let started = Instant::now();
    let email = body
        .get("email")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::payload("\"email\" field is required"))?;
    let reset_url = body
        .get("reset_url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    if let Some(url) = reset_url
        && !url_allowed(url, &state.config.mail.reset_url_allow_list)
    {
        return Err(Error::payload(format!(
            "URL \"{url}\" can't be used to reset passwords"
        )));
    }
    if let Some(ip) = client_of(&req, &state).ip {
        state.limits.check_auth(ip, Some(&email.to_lowercase())).await?;
    }
    if let Some(user) = users::by_email(&state.pool, email).await?
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
            token::sign(&claims, state.config.secret.expose_secret().as_bytes()).map_err(Error::internal)?;
        let link = reset_link(reset_url, &state.config.public_url, &token);
        let mail = Mail {
            to: claims.email,
            subject: "Password Reset Request".into(),
            text: format!(
                "A password reset was requested for this account.\n\nSet a new password here (the link works once, for a day):\n{link}\n\nIf you did not ask for this, ignore this message."
            ),
        };
        let state = state.clone();
        // Delivery happens after the answer, as in Directus: a slow relay must not reveal
        // (by timing) that the email exists.
        actix_web::rt::spawn(async move {
            if let Err(err) = state.mailer.send(mail).await {
                tracing::error!(error = %err, "could not send the password reset mail");
            }
        });
    }
    if let Some(left) = REQUEST_STALL.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /auth/password/reset` `{token, password}`.
pub async fn reset(body: crate::http::body::Json, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::payload("\"token\" field is required"))?;
    let new_password = body
        .get("password")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::payload("\"password\" field is required"))?
        .to_string();
    let claims: ResetClaims = token::verify(
        token,
        state.config.secret.expose_secret().as_bytes(),
        Utc::now().timestamp(),
    )?;
    if claims.scope != PASSWORD_RESET_SCOPE || claims.hash.is_empty() {
        return Err(Error::Forbidden);
    }
    let user = users::by_email(&state.pool, &claims.email)
        .await?
        .filter(|u| u.status == "active" && fingerprint(u.password.as_deref()) == claims.hash)
        .ok_or(Error::Forbidden)?;
    let hashed = web::block(move || password::hash(&new_password))
        .await
        .map_err(Error::internal)?
        .map_err(|err| Error::internal(anyhow::anyhow!("hashing: {err}")))?;
    users::set_password(&state.pool, user.id, &hashed).await?;
    // A reset means the old password may be known to someone else: end every login.
    sessions::end_all_of(&state.pool, user.id).await?;
    Ok(HttpResponse::NoContent().finish())
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
