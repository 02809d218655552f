//! Who is calling: the `Accountability` extractor and the admin-only guard.
//!
//! Tokens come from `Authorization: Bearer`, or `?access_token=` as Directus allows. Until the
//! auth issue adds JWTs and sessions, a token is a user's static token (stored as a SHA-256
//! digest; `ADMIN_TOKEN` sets the admin's at startup). No token: the public accountability.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use uuid::Uuid;

use super::state::AppState;
use crate::core::password::token_digest;
use crate::db::users;
use crate::error::Error;

/// The caller, as Directus calls it.
#[derive(Debug, Clone, PartialEq)]
pub struct Accountability {
    pub user: Option<Uuid>,
    pub role: Option<Uuid>,
    pub admin: bool,
}

impl Accountability {
    /// The unauthenticated caller.
    pub const PUBLIC: Accountability = Accountability {
        user: None,
        role: None,
        admin: false,
    };

    /// Dynamic filter variables for one request by this caller.
    pub fn variables(&self) -> crate::core::filter::Variables {
        crate::core::filter::Variables {
            now: chrono::Utc::now(),
            user: self.user.map(|u| u.to_string()),
            role: self.role.map(|r| r.to_string()),
            // Roles, policies and rows come from the permission loader; until it is wired in,
            // `$CURRENT_ROLES`/`$CURRENT_POLICIES` are empty and paths resolve to null.
            ..Default::default()
        }
    }
}

/// Extracts the bearer token: the header first, then `?access_token=`.
pub fn token_of(req: &HttpRequest) -> Result<Option<String>, Error> {
    if let Some(header) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let text = header.to_str().map_err(|_| Error::InvalidCredentials)?;
        let (scheme, token) = text.split_once(' ').ok_or(Error::InvalidCredentials)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Error::InvalidCredentials);
        }
        return Ok(Some(token.trim().to_string()));
    }
    let query = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| Error::query("Malformed query string"))?;
    Ok(query.get("access_token").filter(|t| !t.is_empty()).cloned())
}

impl FromRequest for Accountability {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = token_of(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let Some(token) = token? else {
                return Ok(Accountability::PUBLIC);
            };
            let state = state.ok_or_else(|| Error::internal(anyhow::anyhow!("app state missing")))?;
            let digest = token_digest(&token);
            let owner = match state.tokens.get(&digest) {
                Some(owner) => owner,
                None => {
                    let owner = users::by_token_digest(&state.pool, &digest).await?;
                    state.tokens.put(digest, owner.clone());
                    owner
                }
            };
            let owner = owner.ok_or(Error::InvalidCredentials)?;
            Ok(Accountability {
                user: Some(owner.id),
                role: owner.role,
                admin: owner.admin_access,
            })
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
