//! Who a token names, as Directus's `extract-token` and `authenticate` find it: a JWT issued by
//! `directus` is verified with `SECRET` (and, in session mode, its session must live); anything
//! else is looked up as a static token (stored as a SHA-256 digest). No token: the public.
//! What a user may do comes from their [`Principal`], cached until access data changes, then
//! narrowed by the caller's address. [`login`] signs in and refreshes, for `/auth/*` and the
//! socket's `auth` message alike.

pub mod login;
pub mod password;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::{Accountability, Client, Services};
use crate::core::password::token_digest;
use crate::core::token::{self, AccessClaims, TokenError};
use crate::db::access::Principal;
use crate::db::{sessions, users};
use crate::error::Error;

/// The cached principal of `user`, loading it on a miss.
pub async fn principal_of(services: &Services, user: Option<Uuid>) -> Result<Arc<Principal>, Error> {
    if let Some(principal) = services.access.principal(user) {
        return Ok(principal);
    }
    let generation = services.access.generation();
    let principal = Arc::new(crate::db::access::load(&services.pool, user).await?);
    services.access.put_principal(user, principal.clone(), generation);
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
fn credential_of(services: &Services, token: Option<&str>) -> Result<Credential, Error> {
    Ok(match token {
        None => Credential::Public,
        Some(token) if token::is_directus_jwt(token) => {
            let claims: AccessClaims = token::verify(
                token,
                services.config.secret.expose_secret().as_bytes(),
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
async fn identify(services: &Services, credential: &Credential) -> Result<Identity, Error> {
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
                && !sessions::is_live(
                    &services.pool,
                    session,
                    *user,
                    services.config.auth.refresh_grace,
                    now,
                )
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
            let owner = match services.access.token(digest) {
                Some(owner) => owner,
                None => {
                    let generation = services.access.generation();
                    let owner = users::by_token_digest(&services.pool, digest).await?;
                    services.access.put_token(digest.to_string(), owner, generation);
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
    services: &Services,
    token: Option<&str>,
    client: &Client,
) -> Result<(Accountability, Option<i64>), Error> {
    let credential = credential_of(services, token)?;
    let (acc, expires) = authenticate_credential(services, &credential, client).await?;
    Ok((acc, expires))
}

/// [`authenticate_token`], also returning what a long-lived session keeps to authenticate
/// again later.
pub async fn authenticate_session(
    services: &Services,
    token: Option<&str>,
    client: &Client,
) -> Result<(Accountability, Option<i64>, Credential), Error> {
    let credential = credential_of(services, token)?;
    let (acc, expires) = authenticate_credential(services, &credential, client).await?;
    Ok((acc, expires, credential))
}

/// The caller `credential` names now, from `client` (also a session authenticating again).
pub async fn authenticate_credential(
    services: &Services,
    credential: &Credential,
    client: &Client,
) -> Result<(Accountability, Option<i64>), Error> {
    let Identity {
        user,
        session,
        expires,
    } = identify(services, credential).await?;
    let principal = principal_of(services, user).await?;
    // A token of a user who is gone or no longer active is refused, not downgraded to public.
    if user.is_some() && principal.user.is_none() {
        return Err(Error::InvalidCredentials);
    }
    let ip = client.ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let access = principal.access_from(ip);
    let accountability = Accountability {
        user,
        role: principal.role,
        roles: principal.roles.clone(),
        admin: access.admin,
        app: access.app_access,
        ip: client.ip,
        user_agent: client.user_agent.clone(),
        origin: client.origin.clone(),
        session,
        principal,
        access,
        system: false,
    };
    Ok((accountability, expires))
}
