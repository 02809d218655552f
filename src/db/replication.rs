//! Logical replication's database side: whether the server and role allow it, the publication
//! that covers user collections, the durable slot and its lag, and the replication-protocol
//! connection settings derived from the app's own connection options.
//!
//! The streaming itself (and what is confirmed when) belongs to `actors::replication`; this
//! module only answers questions and makes idempotent changes, so every reconnect may call it.
//!
//! ```text
//!  prerequisites ─► publication (FOR TABLES IN SCHEMA, else a table list) ─► slot ─► stream
//!  publication.rs                                                             slot.rs  wire.rs
//! ```

mod publication;
mod slot;
mod wire;

pub use publication::{NewTables, PublicationMode, ensure_publication, prepare_new_table, sync_tables};
pub use slot::{SlotLag, SlotState, create_slot, drop_slot, slot_lag, slot_name, slot_state};
pub use wire::{password_in_url, wire_config};

use sqlx::PgPool;

/// Why replication cannot run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The server or role can never stream as configured (wal_level, privileges, TLS). Retrying
    /// does not help until someone changes the server; the feed stays off and says why.
    #[error("{0}")]
    Unavailable(String),
    #[error("replication query failed: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("replication connection: {0}")]
    Wire(#[from] pgwire_replication::PgWireError),
    /// The stream sent something the decoder refused; the session is restarted from the slot.
    #[error("replication stream: {0}")]
    Stream(#[from] crate::core::pgoutput::StreamError),
    /// The server closed the stream without being asked to.
    #[error("the server ended the replication stream")]
    Ended,
    /// The feed hub is gone, so nothing can be delivered (or confirmed).
    #[error("the change sink stopped")]
    SinkGone,
    /// Our other connection to the database was cut (PostgreSQL is shutting down, or the link
    /// failed): the session let go of the slot so the server can stop, and reconnects.
    #[error("the database connection was lost; releasing the slot and reconnecting")]
    DatabaseGone,
}

impl ReplicationError {
    /// Whether a later attempt can succeed without anyone changing the server.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ReplicationError::Unavailable(_))
    }
}

/// Checks what logical replication needs and no retry can fix: `wal_level = logical` and a
/// role with `REPLICATION` (or superuser). The messages say what to change.
pub async fn check_prerequisites(pool: &PgPool) -> Result<(), ReplicationError> {
    let (wal_level, user, allowed): (String, String, bool) = sqlx::query_as(
        "select current_setting('wal_level'), current_user::text, \
         coalesce((select rolreplication or rolsuper from pg_roles where rolname = current_user), false)",
    )
    .fetch_one(pool)
    .await?;
    if wal_level != "logical" {
        return Err(ReplicationError::Unavailable(format!(
            "realtime is off: PostgreSQL has wal_level = {wal_level}; set wal_level = logical and restart PostgreSQL"
        )));
    }
    if !allowed {
        return Err(ReplicationError::Unavailable(format!(
            "realtime is off: role {user} may not stream changes; run `ALTER ROLE {user} REPLICATION` \
             (or connect as a role that has it)"
        )));
    }
    Ok(())
}
