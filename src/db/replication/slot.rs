//! The logical replication slot: its name, creation (durable, never temporary: a restarted
//! server must resume where the last one confirmed), its confirmed position and its lag.

use std::time::Duration;

use pgwire_replication::ReplicationClient;
use sqlx::PgPool;

use super::ReplicationError;
use crate::config::RealtimeConfig;
use crate::core::pgoutput::Lsn;

/// Postgres truncates identifiers (and refuses longer slot names) past 63 bytes.
const MAX_SLOT_NAME: usize = 63;
/// How long [`drop_slot`] waits for a stopping consumer to release the slot.
const RELEASE_WAIT: Duration = Duration::from_secs(10);
/// SQLSTATE of `CREATE_REPLICATION_SLOT` for a name that exists (another instance won a race).
const DUPLICATE_OBJECT: &str = "SQLSTATE 42710";

/// The configured slot, or `directrix_<database>` with everything but `[a-z0-9_]` turned into
/// `_`: slots are cluster-wide, so the database name keeps two databases of one cluster apart.
pub fn slot_name(realtime: &RealtimeConfig, database: &str) -> String {
    if let Some(slot) = &realtime.slot {
        return slot.clone();
    }
    let mut name: String = format!("directrix_{database}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    name.truncate(MAX_SLOT_NAME);
    name
}

/// A slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// Where a new consumer starts: transactions committing before this were confirmed.
    pub confirmed_flush: Option<Lsn>,
    pub active: bool,
    pub active_pid: Option<i32>,
}

#[derive(sqlx::FromRow)]
struct SlotRow {
    confirmed: Option<String>,
    active: bool,
    active_pid: Option<i32>,
    plugin: Option<String>,
    database: Option<String>,
    ours: bool,
}

/// The slot `slot`, if it exists. A slot of that name that is not a `pgoutput` slot of the
/// current database is refused: streaming it would deliver someone else's changes.
pub async fn slot_state(pool: &PgPool, slot: &str) -> Result<Option<SlotState>, ReplicationError> {
    let row: Option<SlotRow> = sqlx::query_as(
        "select confirmed_flush_lsn::text as confirmed, active, active_pid, plugin::text as plugin, \
           database::text as database, coalesce(database = current_database(), false) as ours \
         from pg_replication_slots where slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if row.plugin.as_deref() != Some("pgoutput") || !row.ours {
        return Err(ReplicationError::Unavailable(format!(
            "realtime is off: replication slot {slot} exists but is not a pgoutput slot of this database \
             (plugin {}, database {}); set REALTIME_SLOT to another name",
            row.plugin.as_deref().unwrap_or("none"),
            row.database.as_deref().unwrap_or("none"),
        )));
    }
    Ok(Some(SlotState {
        confirmed_flush: row.confirmed.and_then(|text| text.parse().ok()),
        active: row.active,
        active_pid: row.active_pid,
    }))
}

/// Creates `slot` on a gated replication session (before `START_REPLICATION`). No snapshot is
/// exported: we stream from the slot's start and never copy tables. Losing a creation race to
/// another instance is fine; the slot then exists, which is all we wanted.
pub async fn create_slot(client: &mut ReplicationClient, slot: &str) -> Result<(), ReplicationError> {
    check_slot_name(slot)?;
    // NOEXPORT_SNAPSHOT is the spelling every version from 10 on accepts.
    let command = format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput NOEXPORT_SNAPSHOT");
    match client.simple_query(&command).await {
        Ok(_) => {
            tracing::info!(slot, "created replication slot");
            Ok(())
        }
        Err(pgwire_replication::PgWireError::Server(message)) if message.contains(DUPLICATE_OBJECT) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// The names the replication protocol takes unquoted (the config checks `REALTIME_SLOT`;
/// this guards the command text all the same).
fn check_slot_name(slot: &str) -> Result<(), ReplicationError> {
    let valid = !slot.is_empty()
        && slot.len() <= MAX_SLOT_NAME
        && slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ReplicationError::Unavailable(format!(
            "realtime is off: {slot:?} is not a valid slot name (lower-case letters, digits, underscores)"
        )))
    }
}

/// How far the slot trails the server's WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLag {
    /// `pg_current_wal_lsn() - confirmed_flush_lsn`: WAL the slot pins and a restart replays.
    pub bytes: i64,
    /// Whether a consumer is attached.
    pub active: bool,
}

/// The lag of `slot`; `None` when it does not exist (or has never confirmed anything).
pub async fn slot_lag(pool: &PgPool, slot: &str) -> Result<Option<SlotLag>, sqlx::Error> {
    let row: Option<(Option<i64>, bool)> = sqlx::query_as(
        "select (pg_current_wal_lsn() - confirmed_flush_lsn)::int8, active \
         from pg_replication_slots where slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(bytes, active)| bytes.map(|bytes| SlotLag { bytes, active })))
}

/// Drops `slot`, waiting up to ten seconds for its consumer to let go. Returns whether it
/// existed. For operators and tests: a slot pins WAL until dropped, and a database that has one
/// cannot be dropped.
pub async fn drop_slot(pool: &PgPool, slot: &str) -> Result<bool, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
    loop {
        let active: Option<bool> =
            sqlx::query_scalar("select active from pg_replication_slots where slot_name = $1")
                .bind(slot)
                .fetch_optional(pool)
                .await?;
        match active {
            None => return Ok(false),
            Some(true) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(_) => break,
        }
    }
    sqlx::query("select pg_drop_replication_slot($1)")
        .bind(slot)
        .execute(pool)
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_slot_names_are_sanitized_and_bounded() {
        let realtime = RealtimeConfig::default();
        assert_eq!(slot_name(&realtime, "My-App.db"), "directrix_my_app_db");
        assert_eq!(slot_name(&realtime, &"x".repeat(100)).len(), MAX_SLOT_NAME);
        let named = RealtimeConfig {
            slot: Some("custom".into()),
            ..RealtimeConfig::default()
        };
        assert_eq!(slot_name(&named, "ignored"), "custom");
    }

    #[test]
    fn slot_names_for_the_protocol_are_checked() {
        assert!(check_slot_name("directrix_app").is_ok());
        for bad in ["", "Upper", "a b", "a;drop", &"x".repeat(64)] {
            assert!(check_slot_name(bad).is_err(), "{bad}");
        }
    }
}
