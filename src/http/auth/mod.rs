//! Who is calling, read off a request: the token (as Directus's `extract-token` finds it:
//! `?access_token=`, then `Authorization: Bearer` — both at once is an error, RFC 6750 — then
//! the session cookie) and the client's address, user agent and origin. The
//! [`Accountability`] extractor hands them to `service::auth`, which says whom the token names;
//! [`Admin`] guards admin-only routes; the auth routes live in [`session`] and [`password`].

pub mod cookies;
pub mod password;
pub mod session;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};

use super::state::AppState;
use crate::error::Error;
pub use crate::service::Accountability;
use crate::service::Client;
use crate::service::auth::authenticate_token;

/// Where the request came from: its client address (`IP_TRUST_PROXY` rules), user agent and
/// origin, each at most 1024 characters.
pub fn client_of(req: &HttpRequest, state: &AppState) -> Client {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(1024).collect::<String>().into())
    };
    Client {
        ip: Some(crate::http::limits::client_ip(
            req.head(),
            &state.config.client_ip,
        )),
        user_agent: header("user-agent"),
        origin: header("origin"),
    }
}

/// The access token the request carries, and whether it came from the session cookie.
pub fn token_of(req: &HttpRequest, state: &AppState) -> Result<Option<(String, bool)>, Error> {
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| Error::query("Malformed query string"))?;
    let mut token = query.get("access_token").filter(|t| !t.is_empty()).cloned();
    if let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let text = header.to_str().map_err(|_| Error::InvalidCredentials)?;
        let mut parts = text.split(' ');
        if let (Some(scheme), Some(value), None) = (parts.next(), parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            if token.is_some() {
                return Err(Error::payload(
                    "The request uses more than one method for including an access token",
                ));
            }
            token = Some(value.to_string());
        }
    }
    if let Some(token) = token {
        return Ok(Some((token, false)));
    }
    Ok(token_of_session_cookie(req, state).map(|t| (t, true)))
}

/// The session cookie's access token, if sent.
pub fn token_of_session_cookie(req: &HttpRequest, state: &AppState) -> Option<String> {
    req.cookie(&state.config.auth.session_cookie.name)
        .map(|c| c.value().to_string())
        .filter(|t| !t.is_empty())
}

/// Resolves the caller of a request.
pub async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Accountability, Error> {
    let client = client_of(req, state);
    let token = token_of(req, state)?.map(|(token, _)| token);
    Ok(authenticate_token(&state.services, token.as_deref(), &client)
        .await?
        .0)
}

impl FromRequest for Accountability {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| Error::internal(anyhow::anyhow!("app state missing")))?;
            authenticate(&req, &state).await
        })
    }
}

/// An accountability with `admin_access`; any other caller gets `FORBIDDEN`.
#[derive(Debug, Clone)]
pub struct Admin(pub Accountability);

impl FromRequest for Admin {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let accountability = Accountability::from_request(req, payload);
        Box::pin(async move {
            let accountability = accountability.await?;
            if accountability.admin {
                Ok(Admin(accountability))
            } else {
                Err(Error::Forbidden)
            }
        })
    }
}
