//! Use cases: the one path by which anything reads or writes items and system collections.
//! REST handlers, the socket's `items` and `auth` messages, and (next) hooks, extensions and
//! flows all call a service here, as the [`Accountability`] they act for, in a transaction the
//! service opens or one the caller hands it.
//!
//! Imports point one way: `service → db / core`. Nothing here knows HTTP: no request, no
//! response, no status code; errors are [`crate::error::Error`], which the edges render.
//!
//! - [`items::ItemsService`]: Directus's items service (reads, creates, updates, upserts,
//!   deletes), with permissions planned by `core::access::plan` and activity and revisions
//!   written in the same transaction as the change ([`activity`]).
//! - [`auth`]: who a token names (JWT, static token, session), login and refresh, shared by
//!   `/auth/*` and the socket's `auth` message.
//! - [`access_cache`]: token owners and principals, emptied on any access change.

pub mod access_cache;
pub mod accountability;
pub mod activity;
pub mod auth;
pub mod items;
pub mod revisions;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::watch;

pub use accountability::{Accountability, Client};
pub use items::ItemsService;

use crate::config::Config;
use crate::core::schema::SchemaSnapshot;
use crate::error::Error;

/// A sign-in attempt limiter (`RATE_LIMITER_AUTH_*`): the edge owns the buckets, the login
/// service asks before it verifies a password.
pub trait SignInLimit: Send + Sync {
    /// `Err(REQUESTS_EXCEEDED)` once `ip` (or `email`) has used up its attempts.
    fn check<'a>(
        &'a self,
        ip: IpAddr,
        email: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + 'a>>;
}

/// No limit (tests of the services alone, tools).
pub struct Unlimited;

impl SignInLimit for Unlimited {
    fn check<'a>(
        &'a self,
        _: IpAddr,
        _: Option<&'a str>,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + 'a>> {
        Box::pin(async { Ok(()) })
    }
}

/// The shared handles every service is built from; cheap to clone (all `Arc`s and a pool).
#[derive(Clone)]
pub struct Services {
    pub pool: PgPool,
    pub config: Arc<Config>,
    /// Token owners and principals; a write to access data empties it before it answers.
    pub access: Arc<access_cache::AccessCache>,
    /// The schema snapshot as the schema actor publishes it.
    pub schema_rx: watch::Receiver<Arc<SchemaSnapshot>>,
    pub sign_in: Arc<dyn SignInLimit>,
    /// Outgoing mail (password resets).
    pub mailer: Arc<crate::mail::Mailer>,
}

impl Services {
    /// The current schema snapshot; one `Arc` clone.
    pub fn schema(&self) -> Arc<SchemaSnapshot> {
        self.schema_rx.borrow().clone()
    }

    /// An items service for `collection` as `acc`, on the current schema.
    pub fn items<'a>(&'a self, collection: &str, acc: &'a Accountability) -> ItemsService<'a> {
        ItemsService::new(self, collection, acc, self.schema())
    }
}
