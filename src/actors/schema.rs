//! `SchemaActor`: owns the schema snapshot. Only this actor replaces it; everyone else reads the
//! current `Arc<SchemaSnapshot>` from a `watch` channel without waiting on the actor.
//!
//! Refreshes come from two places: [`Refresh`], sent by the HTTP layer after its own schema
//! change commits (the reply carries the new snapshot, so the response reflects the change), and
//! [`SchemaChanged`], sent by a listener task on the `directrix_schema` channel, which the DDL
//! event trigger and the metadata triggers notify on every change, from psql or another
//! instance. Without the event trigger (no superuser) the actor polls every [`POLL_INTERVAL`].
//!
//! The same listener also hears `directrix_access` (users, roles, policies, access changed) and
//! empties the static-token cache.
//!
//! Loads run one at a time (`AtomicResponse`); a notification that arrived before the latest
//! load started is already reflected and is skipped, so a burst of DDL costs one or two loads.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::core::schema::SchemaSnapshot;
use crate::db::introspect;
use crate::error::Error;
use crate::service::access_cache::AccessCache;

/// How often to re-read the schema when the DDL event trigger is missing.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// The channel the schema triggers notify.
const CHANNEL: &str = "directrix_schema";
/// The channel the access triggers notify (users, roles, policies, access).
const ACCESS_CHANNEL: &str = "directrix_access";
/// Pause before retrying a failed listener connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// Owns the snapshot; see the module docs.
pub struct SchemaActor {
    pool: PgPool,
    user_schema: String,
    snapshot: watch::Sender<Arc<SchemaSnapshot>>,
    /// When the latest load started; notifications older than this are already reflected.
    load_started: Instant,
    poll: bool,
    skipped_tables: BTreeSet<String>,
    listener: Option<JoinHandle<()>>,
    /// Emptied on every access notification (and on reconnect, when some may be lost).
    tokens: Arc<AccessCache>,
}

impl SchemaActor {
    /// An actor publishing into `snapshot`, whose current value was loaded at `loaded_at`.
    pub fn new(
        pool: PgPool,
        user_schema: String,
        snapshot: watch::Sender<Arc<SchemaSnapshot>>,
        loaded_at: Instant,
        poll: bool,
        tokens: Arc<AccessCache>,
    ) -> Self {
        SchemaActor {
            pool,
            user_schema,
            snapshot,
            load_started: loaded_at,
            poll,
            skipped_tables: BTreeSet::new(),
            listener: None,
            tokens,
        }
    }

    fn reload(&mut self) -> ResponseActFuture<Self, Result<Arc<SchemaSnapshot>, Error>> {
        let pool = self.pool.clone();
        let schema = self.user_schema.clone();
        self.load_started = Instant::now();
        let started = self.load_started;
        let load = async move { introspect::load(&pool, &schema).await };
        Box::pin(load.into_actor(self).map(move |result, act, _| {
            let built = result.map_err(Error::from)?;
            let skipped: BTreeSet<String> = built.skipped_tables.into_iter().collect();
            if skipped != act.skipped_tables {
                for table in skipped.difference(&act.skipped_tables) {
                    tracing::warn!(table, "table has no single-column primary key and is not served");
                }
                act.skipped_tables = skipped;
            }
            let snapshot = Arc::new(built.snapshot);
            act.snapshot.send_replace(snapshot.clone());
            tracing::debug!(
                collections = snapshot.collections.len(),
                took_ms = started.elapsed().as_millis() as u64,
                "schema refreshed"
            );
            Ok(snapshot)
        }))
    }
}

impl Actor for SchemaActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let addr = ctx.address();
        let pool = self.pool.clone();
        self.listener = Some(tokio::spawn(listen(pool, addr, self.tokens.clone())));
        if self.poll {
            ctx.run_interval(POLL_INTERVAL, |_, ctx| {
                ctx.notify(SchemaChanged { at: Instant::now() })
            });
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }
}

impl Supervised for SchemaActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        if let Some(listener) = self.listener.take() {
            listener.abort();
        }
    }
}

/// Forwards notifications to the actor. Changes made before `LISTEN` took effect were never
/// notified (the first snapshot may have been read before them: a test that creates a table
/// right after the app starts), and a lost connection may have dropped notifications, so every
/// successful `LISTEN` counts as a change too.
async fn listen(pool: PgPool, addr: Addr<SchemaActor>, tokens: Arc<AccessCache>) {
    while !pool.is_closed() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "schema listener cannot connect; retrying");
                tokio::time::sleep(LISTEN_RETRY).await;
                continue;
            }
        };
        if let Err(err) = listener.listen_all([CHANNEL, ACCESS_CHANNEL]).await {
            tracing::warn!(error = %err, "schema listener cannot listen; retrying");
            tokio::time::sleep(LISTEN_RETRY).await;
            continue;
        }
        tokens.clear();
        addr.do_send(SchemaChanged { at: Instant::now() });
        loop {
            match listener.try_recv().await {
                Ok(Some(note)) if note.channel() == ACCESS_CHANNEL => tokens.clear(),
                Ok(Some(_)) => addr.do_send(SchemaChanged { at: Instant::now() }),
                Ok(None) if pool.is_closed() => return,
                // The connection dropped; the next call reconnects and re-listens.
                Ok(None) => {
                    tokens.clear();
                    addr.do_send(SchemaChanged { at: Instant::now() });
                }
                Err(_) if pool.is_closed() => return,
                Err(err) => {
                    tracing::warn!(error = %err, "schema listener failed; reconnecting");
                    addr.do_send(SchemaChanged { at: Instant::now() });
                    tokio::time::sleep(LISTEN_RETRY).await;
                    break;
                }
            }
            if !addr.connected() {
                return;
            }
        }
    }
}

/// Re-reads the schema now and replies with the new snapshot. Sent after a schema change
/// commits, so the reply reflects it.
#[derive(Message)]
#[rtype(result = "Result<Arc<SchemaSnapshot>, Error>")]
pub struct Refresh;

impl Handler<Refresh> for SchemaActor {
    type Result = AtomicResponse<Self, Result<Arc<SchemaSnapshot>, Error>>;

    fn handle(&mut self, _: Refresh, _: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(self.reload())
    }
}

/// Something may have changed the schema at `at`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SchemaChanged {
    pub at: Instant,
}

impl Handler<SchemaChanged> for SchemaActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: SchemaChanged, _: &mut Self::Context) -> Self::Result {
        if msg.at < self.load_started || self.pool.is_closed() {
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        }
        AtomicResponse::new(Box::pin(self.reload().map(|result, _, _| {
            if let Err(err) = result {
                tracing::warn!(error = %err, "schema refresh failed; keeping the previous snapshot");
            }
        })))
    }
}
