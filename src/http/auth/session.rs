//! `POST /auth/login`, `/auth/refresh` and `/auth/logout` in Directus's three modes: `json`
//! (tokens in the body), `cookie` (refresh token in `directus_refresh_token`) and `session`
//! (the access token itself in `directus_session_token`). The work is `service::auth::login`'s;
//! here the tokens are found in and put into bodies and cookies.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::{client_of, cookies, token_of_session_cookie};
use crate::core::password;
use crate::core::token::{self, AccessClaims};
use crate::error::Error;
use crate::http::state::AppState;
use crate::service::auth::login::{self, Issued, Login, Mode};

/// `POST /auth/login`.
pub async fn login(
    req: HttpRequest,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (input, mode) = Login::parse(&body.into_inner())?;
    let mode = mode.unwrap_or(Mode::Json);
    let issued = login::login(&state.services, &client_of(&req, &state), &input, mode).await?;
    Ok(respond(&state, issued, mode))
}

/// `POST /auth/refresh`.
pub async fn refresh(
    req: HttpRequest,
    body: Option<crate::http::body::Json>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let body = body.map(|b| b.into_inner()).unwrap_or(Value::Null);
    let client = client_of(&req, &state);
    let (mode, presented) = presented_refresh_token(&req, &body, &state)?;
    let issued = login::refresh(&state.services, &client, &presented, mode).await?;
    Ok(respond(&state, issued, mode))
}

/// `POST /auth/logout`: ends the login (every rotation of it) and clears our cookies.
pub async fn logout(
    req: HttpRequest,
    body: Option<crate::http::body::Json>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let body = body.map(|b| b.into_inner()).unwrap_or(Value::Null);
    let (_, presented) = presented_refresh_token(&req, &body, &state)?;
    login::logout(&state.services, &presented).await?;
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
