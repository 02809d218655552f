//! The logical replication consumer: streams the slot, turns each committed transaction into a
//! [`Committed`](crate::core::realtime::Committed) and hands it to the feed hub as [`Deliver`],
//! confirming the slot only as far as the hub has it (and no further than the hub's `hold`).
//!
//! ```text
//!  start() ─► Arbiter ─► Supervisor<ReplicationActor>          actor.rs (restart, back-off, stop)
//!                          │ one task per walsender session
//!                          ▼
//!             session: publication + slot, START_REPLICATION   session.rs, db::replication
//!               Begin/XLogData/Commit ─► Decoder ─► Transaction
//!               to_committed (snapshot types, keys)              convert.rs
//!               sink.send(Deliver).await ─► confirm min(end_lsn, hold)
//! ```
//!
//! Delivery is at-least-once across process restarts (the slot replays from its confirmed
//! position) and exactly-once within a process (transactions whose `end_lsn` is not past the
//! last delivered one are skipped after a reconnect).

mod actor;
mod convert;
mod frames;
mod session;
mod sink;
mod status;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use actix::{Addr, ArbiterHandle, Recipient, Supervisor};
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;

pub use actor::ReplicationActor;
pub use convert::to_committed;
pub use sink::{Deliver, Discard, Recreated};
pub use status::ReplicationStatus;

use crate::config::{Config, DatabaseConfig};
use crate::core::pgoutput::TransactionLimits;
use crate::core::schema::SchemaSnapshot;
use crate::db::replication::{password_in_url, slot_name};

/// What the consumer connects to and streams.
#[derive(Clone)]
pub struct ReplicationSettings {
    /// The app's connection options: the catalog queries use them as they are, the replication
    /// session derives its own from them.
    pub options: PgConnectOptions,
    /// The password, which connection options do not give back (`None`: trust/peer auth).
    pub password: Option<SecretString>,
    /// The schema of user collections; only its tables become changes.
    pub user_schema: String,
    pub slot: String,
    pub publication: String,
    /// Standby status cadence; also how often the hub's `hold` is re-read.
    pub status_interval: Duration,
    /// How much of one transaction the decoder keeps.
    pub limits: TransactionLimits,
}

impl std::fmt::Debug for ReplicationSettings {
    /// Without the connection options: their `Debug` shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationSettings")
            .field("database", &self.options.get_database())
            .field("user_schema", &self.user_schema)
            .field("slot", &self.slot)
            .field("publication", &self.publication)
            .field("status_interval", &self.status_interval)
            .finish_non_exhaustive()
    }
}

impl ReplicationSettings {
    /// Settings for `config`'s database, reached through `options`.
    pub fn from_config(config: &Config, options: &PgConnectOptions) -> Self {
        let password = match &config.database {
            DatabaseConfig::External { url } => {
                password_in_url(secrecy::ExposeSecret::expose_secret(url)).map(SecretString::from)
            }
            DatabaseConfig::Embedded { .. } => None,
        };
        let database = options.get_database().unwrap_or_else(|| options.get_username());
        ReplicationSettings {
            options: options.clone(),
            password,
            user_schema: config.user_schema.clone(),
            slot: slot_name(&config.realtime, database),
            publication: config.realtime.publication.clone(),
            status_interval: config.realtime.status_interval,
            limits: TransactionLimits::default(),
        }
    }
}

/// Why the consumer could not be started at all.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the replication consumer needs a running actix System")]
    NoSystem,
    #[error("cannot start the replication thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running consumer.
#[derive(Clone)]
pub struct ReplicationHandle {
    addr: Addr<ReplicationActor>,
    status: Arc<ReplicationStatus>,
    arbiter: ArbiterHandle,
}

impl ReplicationHandle {
    pub fn addr(&self) -> &Addr<ReplicationActor> {
        &self.addr
    }

    /// Live state, for health, metrics and the hub's resume floor.
    pub fn status(&self) -> &Arc<ReplicationStatus> {
        &self.status
    }

    /// Ends the session with a final status update (so the slot is confirmed as far as the
    /// sink and the hold allow), then stops the consumer's thread. Takes at most about two
    /// status intervals plus a couple of seconds.
    pub async fn stop(&self) {
        // A mailbox error means the actor is already gone, which is what we want.
        let _ = self.addr.send(actor::Stop).await;
        self.arbiter.stop();
    }
}

/// Starts the consumer on its own arbiter. `sink` receives every transaction with collection
/// changes, one at a time and awaited; `hold` is the lowest position the slot may be confirmed
/// to (`u64::MAX`: no hold), which the hub keeps at its oldest retained `commit_lsn`;
/// `recreated` (the same actor as `sink`) hears of a slot made again mid-stream.
pub fn start(
    settings: ReplicationSettings,
    schema: watch::Receiver<Arc<SchemaSnapshot>>,
    sink: Recipient<Deliver>,
    hold: Arc<AtomicU64>,
    recreated: Option<Recipient<Recreated>>,
) -> Result<ReplicationHandle, StartError> {
    if actix::System::try_current().is_none() {
        return Err(StartError::NoSystem);
    }
    let status = Arc::new(ReplicationStatus::new(settings.slot.clone()));
    let shared = Arc::new(session::Shared {
        settings,
        schema,
        sink,
        hold,
        recreated,
        status: status.clone(),
    });
    // Decoding and conversion are CPU work: they get a thread of their own.
    let arbiter = actix::Arbiter::try_new()?.handle();
    let addr = Supervisor::start_in_arbiter(&arbiter, move |_| ReplicationActor::new(shared));
    Ok(ReplicationHandle {
        addr,
        status,
        arbiter,
    })
}
