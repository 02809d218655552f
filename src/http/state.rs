//! What every handler can reach: the pool, the schema snapshot and its actor, the config, the
//! metrics registry and the rate limiters. Built once by `App::build`.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use sqlx::PgPool;
use tokio::sync::watch;

use super::metrics::Metrics;
use crate::actors::schema::{Refresh, SchemaActor};
use crate::config::Config;
use crate::core::schema::SchemaSnapshot;
use crate::error::Error;

/// Shared application state (`web::Data<AppState>`).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    /// `/server/health`'s own connections (see `db::pool::connect_health`).
    pub health_pool: PgPool,
    pub schema_actor: Addr<SchemaActor>,
    pub schema_rx: watch::Receiver<Arc<SchemaSnapshot>>,
    pub metrics: Metrics,
    /// Token owners and principals, emptied on any access change.
    pub access: Arc<crate::service::access_cache::AccessCache>,
    /// Rate limiters and pressure settings; `check_auth` for the sign-in routes.
    pub limits: Arc<super::limits::Limits>,
    pub started: Instant,
    /// The collection feeds, when realtime is enabled.
    pub realtime: Option<crate::actors::feeds::Realtime>,
    /// The replication consumer's live state; `None` when realtime is off.
    pub replication: Option<Arc<crate::actors::replication::ReplicationStatus>>,
    /// What the items and auth services are built from (this worker's pool).
    pub services: crate::service::Services,
}

impl AppState {
    /// The current schema snapshot; cheap (one `Arc` clone), never waits on the actor.
    pub fn schema(&self) -> Arc<SchemaSnapshot> {
        self.schema_rx.borrow().clone()
    }

    /// Re-reads the schema after a change this request committed, and returns the new snapshot.
    pub async fn refresh_schema(&self) -> Result<Arc<SchemaSnapshot>, Error> {
        self.schema_actor.send(Refresh).await.map_err(Error::internal)?
    }
}
