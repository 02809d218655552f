//! Who is calling: the `Accountability` extractor, the admin-only guard, and the auth routes.
//!
//! Tokens are found as Directus's `extract-token` finds them: `?access_token=`, then
//! `Authorization: Bearer` (both at once is an error, RFC 6750), then the session cookie. A
//! token that decodes as a JWT issued by `directus` is verified with `SECRET`; anything else is
//! looked up as a static token (stored as a SHA-256 digest). No token: the public.
//!
//! What a user may do comes from their [`Principal`] (role chain, policies, permission rows),
//! loaded once and cached until access data changes, then narrowed by the request's IP.

pub mod cookies;
pub mod password;
pub mod session;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::Utc;
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::state::AppState;
use crate::core::access::Access;
use crate::core::password::token_digest;
use crate::core::token::{self, AccessClaims, TokenError};
use crate::db::access::Principal;
use crate::db::{sessions, users};
use crate::error::Error;

/// The caller, as Directus calls it.
#[derive(Debug, Clone)]
pub struct Accountability {
    pub user: Option<Uuid>,
    pub role: Option<Uuid>,
    /// The role and its ancestors.
    pub roles: Vec<Uuid>,
    pub admin: bool,
    pub app: bool,
    pub ip: Option<IpAddr>,
    /// Session mode: the digest of the session this request's token belongs to.
    pub session: Option<String>,
    pub principal: Arc<Principal>,
    /// The caller's effective permissions from this IP.
    pub access: Arc<Access>,
}

impl Accountability {
    /// Dynamic filter variables for one request by this caller.
    pub fn variables(&self) -> crate::core::filter::Variables {
        let mut vars = crate::core::filter::Variables::from(Utc::now());
        vars.user = self.user.map(|u| u.to_string());
        vars.role = self.role.map(|r| r.to_string());
        vars.roles = self.roles.iter().map(Uuid::to_string).collect();
        vars.policies = self.access.policies.iter().map(Uuid::to_string).collect();
        vars.user_row = self.principal.user_row.clone();
        vars.role_row = self.principal.role_row.clone();
        vars
    }
}

/// The request facts auth cares about beyond the token.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub ip: IpAddr,
}

impl AuthContext {
    pub fn of(req: &HttpRequest, state: &AppState) -> AuthContext {
        AuthContext {
            ip: crate::http::limits::client_ip(req.head(), &state.config.client_ip),
        }
    }
}

/// Where a login came from, stored with its session.
pub fn request_origin(req: &HttpRequest, context: &AuthContext) -> sessions::Origin {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(1024).collect::<String>())
    };
    sessions::Origin {
        ip: Some(context.ip.to_string()),
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

/// The cached principal of `user`, loading it on a miss.
pub async fn principal_of(state: &AppState, user: Option<Uuid>) -> Result<Arc<Principal>, Error> {
    if let Some(principal) = state.access.principal(user) {
        return Ok(principal);
    }
    let generation = state.access.generation();
    let principal = Arc::new(crate::db::access::load(&state.pool, user).await?);
    state.access.put_principal(user, principal.clone(), generation);
    Ok(principal)
}

impl From<TokenError> for Error {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Expired => Error::TokenExpired,
            TokenError::Invalid => Error::InvalidToken,
        }
    }
}

/// Resolves the caller of a request.
pub async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Accountability, Error> {
    let context = AuthContext::of(req, state);
    let token = token_of(req, state)?.map(|(token, _)| token);
    Ok(authenticate_token(state, token.as_deref(), context.ip).await?.0)
}

/// What a long-lived session (a WebSocket, an SSE stream) keeps of the token it authenticated
/// with, to authenticate again when rights change: never the token itself. A JWT's signature
/// was checked once; what can change later is its session, its user and the clock.
#[derive(Debug, Clone)]
pub enum Credential {
    Public,
    Jwt {
        user: Uuid,
        /// Session mode: the digest of the refresh session it belongs to.
        session: Option<Box<str>>,
        /// When its access ends (Unix seconds).
        expires: i64,
    },
    /// A static token, by its SHA-256 digest.
    Static {
        digest: Box<str>,
    },
}

/// Who a credential names right now, and until when (a JWT's expiry).
struct Identity {
    user: Option<Uuid>,
    session: Option<String>,
    expires: Option<i64>,
}

/// Reads a presented token into a [`Credential`], checking a JWT's signature and expiry.
fn credential_of(state: &AppState, token: Option<&str>) -> Result<Credential, Error> {
    Ok(match token {
        None => Credential::Public,
        Some(token) if token::is_directus_jwt(token) => {
            let claims: AccessClaims = token::verify(
                token,
                state.config.secret.expose_secret().as_bytes(),
                Utc::now().timestamp(),
            )?;
            Credential::Jwt {
                user: claims.id.ok_or(Error::InvalidToken)?,
                session: claims.session.map(String::into_boxed_str),
                expires: claims.exp,
            }
        }
        Some(token) => Credential::Static {
            digest: token_digest(token).into_boxed_str(),
        },
    })
}

/// Whom `credential` names now: a JWT until its expiry and while its session lives, a static
/// token while a user holds it.
async fn identify(state: &AppState, credential: &Credential) -> Result<Identity, Error> {
    Ok(match credential {
        Credential::Public => Identity {
            user: None,
            session: None,
            expires: None,
        },
        Credential::Jwt {
            user,
            session,
            expires,
        } => {
            let now = Utc::now();
            if *expires <= now.timestamp() {
                return Err(Error::TokenExpired);
            }
            if let Some(session) = session
                && !sessions::is_live(&state.pool, session, *user, state.config.auth.refresh_grace, now)
                    .await?
            {
                return Err(Error::InvalidCredentials);
            }
            Identity {
                user: Some(*user),
                session: session.as_deref().map(str::to_string),
                expires: Some(*expires),
            }
        }
        Credential::Static { digest } => {
            let owner = match state.access.token(digest) {
                Some(owner) => owner,
                None => {
                    let generation = state.access.generation();
                    let owner = users::by_token_digest(&state.pool, digest).await?;
                    state.access.put_token(digest.to_string(), owner, generation);
                    owner
                }
            };
            Identity {
                user: Some(owner.ok_or(Error::InvalidCredentials)?),
                session: None,
                expires: None,
            }
        }
    })
}

/// Resolves the caller presenting `token` (none: the public) from `ip`, and when a JWT says so,
/// the moment (Unix seconds) its access ends. Also what the WebSocket `auth` message uses.
pub async fn authenticate_token(
    state: &AppState,
    token: Option<&str>,
    ip: IpAddr,
) -> Result<(Accountability, Option<i64>), Error> {
    let credential = credential_of(state, token)?;
    let (acc, expires) = authenticate_credential(state, &credential, ip).await?;
    Ok((acc, expires))
}

/// [`authenticate_token`], also returning what a long-lived session keeps to authenticate
/// again later.
pub async fn authenticate_session(
    state: &AppState,
    token: Option<&str>,
    ip: IpAddr,
) -> Result<(Accountability, Option<i64>, Credential), Error> {
    let credential = credential_of(state, token)?;
    let (acc, expires) = authenticate_credential(state, &credential, ip).await?;
    Ok((acc, expires, credential))
}

/// The caller `credential` names now, from `ip` (a session authenticating again).
pub async fn authenticate_credential(
    state: &AppState,
    credential: &Credential,
    ip: IpAddr,
) -> Result<(Accountability, Option<i64>), Error> {
    let Identity {
        user,
        session,
        expires,
    } = identify(state, credential).await?;
    let principal = principal_of(state, user).await?;
    // A token of a user who is gone or no longer active is refused, not downgraded to public.
    if user.is_some() && principal.user.is_none() {
        return Err(Error::InvalidCredentials);
    }
    let access = principal.access_from(ip);
    let accountability = Accountability {
        user,
        role: principal.role,
        roles: principal.roles.clone(),
        admin: access.admin,
        app: access.app_access,
        ip: Some(ip),
        session,
        principal,
        access,
    };
    Ok((accountability, expires))
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
