//! `POST /auth/login`, `/auth/refresh` and `/auth/logout` in Directus's three modes: `json`
//! (tokens in the body), `cookie` (refresh token in `directus_refresh_token`) and `session`
//! (the access token itself in `directus_session_token`).
//!
//! Every login answer, success or not, takes at least `LOGIN_STALL_TIME`, and an unknown email
//! still pays for one password verification, so response time does not reveal which emails
//! exist.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::cookies;
use super::{AuthContext, principal_of, request_origin, token_of_session_cookie};
use crate::core::password;
use crate::core::token::{self, AccessClaims};
use crate::db::{sessions, users};
use crate::error::Error;
use crate::http::state::AppState;

/// How tokens travel back to the client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    Json,
    Cookie,
    Session,
}

impl Mode {
    fn parse(value: Option<&Value>) -> Result<Option<Mode>, Error> {
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
pub(crate) struct Issued {
    pub(crate) access_token: String,
    /// Milliseconds, as Directus reports it.
    pub(crate) expires: u128,
    pub(crate) refresh_token: String,
}

/// A stand-in hash verified for unknown emails, so they cost what a wrong password costs.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| password::hash("directrix-timing-equaliser").unwrap_or_default());

/// `POST /auth/login`.
pub async fn login(
    req: HttpRequest,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let started = Instant::now();
    let context = AuthContext::of(&req, &state);
    let origin = request_origin(&req, &context);
    let outcome = login_checked(&context, origin, body.into_inner(), &state).await;
    stall(state.config.auth.login_stall, started).await;
    let (issued, mode) = outcome?;
    Ok(respond(&state, issued, mode))
}

/// Signs in with `{email, password, otp?, mode?}` (also the WebSocket `auth` message). The
/// caller applies the stall.
pub(crate) async fn login_checked(
    context: &AuthContext,
    origin: sessions::Origin,
    body: Value,
    state: &AppState,
) -> Result<(Issued, Mode), Error> {
    if crate::core::payload::has_nul(&body) {
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
    let mode = Mode::parse(body.get("mode"))?.unwrap_or(Mode::Json);
    let otp = match body.get("otp") {
        None | Some(Value::Null) => None,
        Some(Value::String(otp)) => Some(otp.clone()),
        Some(_) => return Err(Error::payload("\"otp\" must be a string")),
    };
    state
        .limits
        .check_auth(context.ip, Some(&email.to_lowercase()))
        .await?;

    let user = users::by_email(&state.pool, email).await?;
    let stored = user
        .as_ref()
        .and_then(|u| u.password.clone())
        .unwrap_or_else(|| DUMMY_HASH.clone());
    let candidate = password.to_string();
    let matches = web::block(move || password::verify(&candidate, &stored))
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
        let rehashed = web::block(move || password::hash(&candidate))
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
        &origin,
    )
    .await?;
    users::touch_last_access(&state.pool, user.id, now).await?;
    let issued = issue(state, context, user.id, refresh_token, mode).await?;
    Ok((issued, mode))
}

/// `POST /auth/refresh`.
pub async fn refresh(
    req: HttpRequest,
    body: Option<crate::http::body::Json>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let started = Instant::now();
    let body = body.map(|b| b.into_inner()).unwrap_or(Value::Null);
    let context = AuthContext::of(&req, &state);
    state.limits.check_auth(context.ip, None).await?;
    let (mode, presented) = presented_refresh_token(&req, &body, &state)?;
    let origin = request_origin(&req, &context);
    let issued = refresh_presented(&state, &context, origin, &presented, mode, started).await?;
    Ok(respond(&state, issued, mode))
}

/// Rotates the refresh token whose digest is `presented` and issues a new pair (also the
/// WebSocket `auth` message with a `refresh_token`).
pub(crate) async fn refresh_presented(
    state: &AppState,
    context: &AuthContext,
    origin: sessions::Origin,
    presented: &str,
    mode: Mode,
    started: Instant,
) -> Result<Issued, Error> {
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
        &origin,
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
    issue(state, context, user, fresh, mode).await
}

/// `POST /auth/logout`: ends the login (every rotation of it) and clears our cookies.
pub async fn logout(
    req: HttpRequest,
    body: Option<crate::http::body::Json>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let body = body.map(|b| b.into_inner()).unwrap_or(Value::Null);
    let (_, presented) = presented_refresh_token(&req, &body, &state)?;
    sessions::end(&state.pool, &presented).await?;
    let mut res = HttpResponse::NoContent();
    let auth = &state.config.auth;
    if req.cookie(&auth.refresh_cookie.name).is_some() {
        res.cookie(cookies::clear(&auth.refresh_cookie));
    }
    if req.cookie(&auth.session_cookie.name).is_some() {
        res.cookie(cookies::clear(&auth.session_cookie));
    }
    Ok(res.finish())
}

/// The mode and the presented refresh token's digest, as Directus's `getCurrentMode` and
/// `getCurrentRefreshToken` find them.
fn presented_refresh_token(
    req: &HttpRequest,
    body: &Value,
    state: &AppState,
) -> Result<(Mode, String), Error> {
    let explicit = Mode::parse(body.get("mode"))?;
    let body_token = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let mode = explicit.unwrap_or(if body_token.is_some() {
        Mode::Json
    } else {
        Mode::Cookie
    });
    let missing = || Error::payload("The refresh token is required in either the payload or cookie");
    let digest = match mode {
        Mode::Json => password::token_digest(body_token.ok_or_else(missing)?),
        Mode::Cookie => {
            let cookie = req
                .cookie(&state.config.auth.refresh_cookie.name)
                .ok_or_else(missing)?;
            password::token_digest(cookie.value())
        }
        // The session cookie holds an access token whose `session` claim is the digest.
        Mode::Session => {
            let jwt = token_of_session_cookie(req, state).ok_or_else(missing)?;
            let claims: AccessClaims = token::verify(
                &jwt,
                state.config.secret.expose_secret().as_bytes(),
                Utc::now().timestamp(),
            )
            .map_err(Error::from)?;
            claims.session.ok_or_else(missing)?
        }
    };
    Ok((mode, digest))
}

/// Signs an access token for `user` with the flags its policies give from this IP.
async fn issue(
    state: &AppState,
    context: &AuthContext,
    user: Uuid,
    refresh_token: String,
    mode: Mode,
) -> Result<Issued, Error> {
    let principal = principal_of(state, Some(user)).await?;
    let access =
        crate::core::access::Access::build(&principal.policies, &principal.permissions, Some(context.ip));
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

fn respond(state: &AppState, issued: Issued, mode: Mode) -> HttpResponse {
    let auth = &state.config.auth;
    let mut res = HttpResponse::Ok();
    let mut data = Map::new();
    data.insert("expires".into(), json!(issued.expires));
    match mode {
        Mode::Json => {
            data.insert("refresh_token".into(), json!(issued.refresh_token));
            data.insert("access_token".into(), json!(issued.access_token));
        }
        Mode::Cookie => {
            res.cookie(cookies::set(
                &auth.refresh_cookie,
                issued.refresh_token,
                auth.refresh_token_ttl,
            ));
            data.insert("access_token".into(), json!(issued.access_token));
        }
        Mode::Session => {
            res.cookie(cookies::set(
                &auth.session_cookie,
                issued.access_token,
                auth.session_cookie_ttl,
            ));
        }
    }
    res.json(json!({ "data": data }))
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
pub(crate) async fn stall(at_least: std::time::Duration, since: Instant) {
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
