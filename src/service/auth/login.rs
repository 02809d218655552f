//! Signing in and refreshing, as Directus's authentication service: `{email, password, otp?}`
//! against `directus_users` (argon2id, TOTP), a refresh session per login, and an access JWT
//! signed with `SECRET`. `/auth/login`, `/auth/refresh` and the socket's `auth` message call
//! these same functions.
//!
//! Every login answer, success or not, takes at least `LOGIN_STALL_TIME`, and an unknown email
//! still pays for one password verification, so response time does not reveal which emails
//! exist.

use std::time::Instant;

use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::principal_of;
use crate::core::password;
use crate::core::token::{self, AccessClaims};
use crate::db::{sessions, users};
use crate::error::Error;
use crate::service::{Accountability, Client, Services};

/// How tokens travel back to the client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Json,
    Cookie,
    Session,
}

impl Mode {
    /// `mode` as a request body gives it.
    pub fn parse(value: Option<&Value>) -> Result<Option<Mode>, Error> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s == "json" => Ok(Some(Mode::Json)),
            Some(Value::String(s)) if s == "cookie" => Ok(Some(Mode::Cookie)),
            Some(Value::String(s)) if s == "session" => Ok(Some(Mode::Session)),
            Some(_) => Err(Error::payload("\"mode\" must be one of [cookie, json, session]")),
        }
    }
}

/// A freshly issued pair.
pub struct Issued {
    pub access_token: String,
    /// Milliseconds, as Directus reports it.
    pub expires: u128,
    pub refresh_token: String,
}

/// A stand-in hash verified for unknown emails, so they cost what a wrong password costs.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| password::hash("directrix-timing-equaliser").unwrap_or_default());

/// What a login presents.
#[derive(Debug, Clone)]
pub struct Login {
    pub email: String,
    pub password: String,
    pub otp: Option<String>,
}

impl Login {
    /// `{email, password, otp?, mode?}` checked as Directus's Joi schema checks it.
    pub fn parse(body: &Value) -> Result<(Login, Option<Mode>), Error> {
        if crate::core::payload::has_nul(body) {
            return Err(Error::payload("Strings can't contain NUL characters"));
        }
        let body = body
            .as_object()
            .ok_or_else(|| Error::payload("\"value\" must be of type object"))?;
        let email = required_string(body, "email")?;
        if !looks_like_email(email) {
            return Err(Error::payload("\"email\" must be a valid email"));
        }
        let password = required_string(body, "password")?;
        let mode = Mode::parse(body.get("mode"))?;
        let otp = match body.get("otp") {
            None | Some(Value::Null) => None,
            Some(Value::String(otp)) => Some(otp.clone()),
            Some(_) => return Err(Error::payload("\"otp\" must be a string")),
        };
        Ok((
            Login {
                email: email.to_string(),
                password: password.to_string(),
                otp,
            },
            mode,
        ))
    }
}

/// Signs in: verifies the login, opens a refresh session, records a `login` activity row and
/// issues a pair for `mode`. Takes at least `LOGIN_STALL_TIME`, whatever the outcome.
pub async fn login(services: &Services, client: &Client, login: &Login, mode: Mode) -> Result<Issued, Error> {
    let started = Instant::now();
    let outcome = login_checked(services, client, login, mode).await;
    stall(services.config.auth.login_stall, started).await;
    outcome
}

async fn login_checked(
    services: &Services,
    client: &Client,
    login: &Login,
    mode: Mode,
) -> Result<Issued, Error> {
    let state = services;
    let email = login.email.as_str();
    let password = login.password.as_str();
    let otp = login.otp.clone();
    if let Some(ip) = client.ip {
        state.sign_in.check(ip, Some(&email.to_lowercase())).await?;
    }

    let user = users::by_email(&state.pool, email).await?;
    let stored = user
        .as_ref()
        .and_then(|u| u.password.clone())
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let candidate = password.to_string();
    let matches = actix_web::web::block(move || password::verify(&candidate, &stored))
        .await
        .map_err(Error::internal)?;
    let user = user.ok_or(Error::InvalidCredentials)?;
    if user.status != "active" || user.provider != "default" || user.password.is_none() || !matches {
        return Err(Error::InvalidCredentials);
    }
    if let Some(secret) = &user.tfa_secret {
        let otp = otp.ok_or(Error::InvalidOtp)?;
        if !crate::core::otp::verify(secret, &otp, Utc::now().timestamp()) {
            return Err(Error::InvalidOtp);
        }
    }
    if user.password.as_deref().is_some_and(password::needs_rehash) {
        let candidate = password.to_string();
        let rehashed = actix_web::web::block(move || password::hash(&candidate))
            .await
            .map_err(Error::internal)?
            .map_err(|err| Error::internal(anyhow::anyhow!("hashing: {err}")))?;
        users::set_password(&state.pool, user.id, &rehashed).await?;
    }

    let refresh_token = password::generate(64);
    let now = Utc::now();
    let expires_at =
        now + chrono::Duration::from_std(state.config.auth.refresh_token_ttl).map_err(Error::internal)?;
    sessions::create(
        &state.pool,
        &password::token_digest(&refresh_token),
        user.id,
        expires_at,
        &origin(client),
    )
    .await?;
    users::touch_last_access(&state.pool, user.id, now).await?;
    // Directus records every login as activity on the user.
    let actor = Accountability {
        user: Some(user.id),
        ..Accountability::system()
    };
    crate::service::activity::record_login(&state.pool, &actor, client).await?;
    issue(state, client, user.id, refresh_token, mode).await
}

/// Rotates the refresh token whose digest is `presented` and issues a new pair for `mode`
/// (`/auth/refresh`, and the socket's `auth` message with a `refresh_token`). Checks the
/// sign-in limit of the caller's address first.
pub async fn refresh(
    services: &Services,
    client: &Client,
    presented: &str,
    mode: Mode,
) -> Result<Issued, Error> {
    let started = Instant::now();
    let state = services;
    if let Some(ip) = client.ip {
        state.sign_in.check(ip, None).await?;
    }
    let fresh = password::successor_token(state.config.secret.expose_secret().as_bytes(), presented);
    let ttl = match mode {
        Mode::Session => state.config.auth.session_cookie_ttl,
        Mode::Json | Mode::Cookie => state.config.auth.refresh_token_ttl,
    };
    let now = Utc::now();
    let expires_at = now + chrono::Duration::from_std(ttl).map_err(Error::internal)?;
    let outcome = sessions::rotate(
        &state.pool,
        presented,
        &password::token_digest(&fresh),
        expires_at,
        state.config.auth.refresh_grace,
        now,
        &origin(client),
    )
    .await?;
    let user = match outcome {
        sessions::Refreshed::Rotated { user, status } if status == "active" => user,
        sessions::Refreshed::Rotated { user, status } => {
            sessions::end_all_of(&state.pool, user).await?;
            stall(state.config.auth.login_stall, started).await;
            return Err(if status == "suspended" {
                Error::UserSuspended
            } else {
                Error::InvalidCredentials
            });
        }
        sessions::Refreshed::Unknown | sessions::Refreshed::Reused { .. } => {
            return Err(Error::InvalidCredentials);
        }
    };
    users::touch_last_access(&state.pool, user, now).await?;
    issue(state, client, user, fresh, mode).await
}

/// Ends the login `presented` (the digest of its refresh token) and every rotation of it.
pub async fn logout(services: &Services, presented: &str) -> Result<(), Error> {
    sessions::end(&services.pool, presented).await?;
    Ok(())
}

/// What a session row records of where its login came from.
fn origin(client: &Client) -> sessions::Origin {
    sessions::Origin {
        ip: client.ip.map(|ip| ip.to_string()),
        user_agent: client.user_agent.as_deref().map(str::to_string),
        origin: client.origin.as_deref().map(str::to_string),
    }
}

/// Signs an access token for `user` with the flags its policies give from this IP.
async fn issue(
    state: &Services,
    client: &Client,
    user: Uuid,
    refresh_token: String,
    mode: Mode,
) -> Result<Issued, Error> {
    let principal = principal_of(state, Some(user)).await?;
    let access = crate::core::access::Access::build(&principal.policies, &principal.permissions, client.ip);
    let ttl = match mode {
        Mode::Session => state.config.auth.session_cookie_ttl,
        Mode::Json | Mode::Cookie => state.config.auth.access_token_ttl,
    };
    let now = Utc::now().timestamp();
    let claims = AccessClaims {
        id: Some(user),
        role: principal.role,
        app_access: access.app_access,
        admin_access: access.admin,
        session: (mode == Mode::Session).then(|| password::token_digest(&refresh_token)),
        enforce_tfa: None,
        iat: now,
        exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        nbf: None,
        iss: token::ISSUER.into(),
    };
    let access_token =
        token::sign(&claims, state.config.secret.expose_secret().as_bytes()).map_err(Error::internal)?;
    Ok(Issued {
        access_token,
        expires: ttl.as_millis(),
        refresh_token,
    })
}

fn required_string<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Err(Error::payload(format!("\"{key}\" is required"))),
        Some(Value::String(s)) if s.is_empty() => {
            Err(Error::payload(format!("\"{key}\" is not allowed to be empty")))
        }
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::payload(format!("\"{key}\" must be a string"))),
    }
}

/// Joi's `email()` in spirit: one `@`, a dotted domain, no spaces.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
        && email.len() <= 254
}

/// Waits until `since` is `at_least` old.
pub async fn stall(at_least: std::time::Duration, since: Instant) {
    if let Some(left) = at_least.checked_sub(since.elapsed()) {
        tokio::time::sleep(left).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_like_joi() {
        assert!(looks_like_email("admin@example.com"));
        assert!(!looks_like_email("admin"));
        assert!(!looks_like_email("admin@localhost"));
        assert!(!looks_like_email("a b@example.com"));
        assert!(!looks_like_email("a@b@example.com"));
    }
}
