//! The publication: which tables' changes the slot decodes for us.
//!
//! Preferred is `FOR TABLES IN SCHEMA <user schema>` (PostgreSQL 15+, superuser): a table is
//! covered the moment it is created, in the creating transaction, so its first insert is never
//! missed. Without that (older server, or not a superuser) the publication lists tables: the
//! replication actor adds the schema snapshot's collections, and a table created through
//! Directrix is added in its own `CREATE TABLE` transaction ([`prepare_new_table`]). A table
//! created with SQL elsewhere is then covered from the next snapshot sync on, not from birth.

use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use super::ReplicationError;
use crate::config::RealtimeConfig;
use crate::db::sql::{ident, qualified};

/// SQLSTATEs that mean "this form of CREATE PUBLICATION is not for us": not a superuser, or a
/// server older than 15 that has no `TABLES IN SCHEMA`.
const INSUFFICIENT_PRIVILEGE: &str = "42501";
const SYNTAX_ERROR: &str = "42601";

/// How the publication decides what it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationMode {
    /// `FOR ALL TABLES` (made by someone else): everything, system tables included.
    AllTables,
    /// `FOR TABLES IN SCHEMA <user schema>`: every table there, from birth.
    Schema,
    /// An explicit table list that we keep in step with the schema snapshot.
    Tables,
}

/// Makes sure `publication` exists and reports how it covers `schema`. An existing publication
/// is left as its owner made it.
pub async fn ensure_publication(
    pool: &PgPool,
    publication: &str,
    schema: &str,
) -> Result<PublicationMode, ReplicationError> {
    if let Some(mode) = existing_mode(pool, publication, schema).await? {
        return Ok(mode);
    }
    let by_schema = format!(
        "create publication {} for tables in schema {}",
        ident(publication),
        ident(schema)
    );
    match sqlx::raw_sql(AssertSqlSafe(by_schema)).execute(pool).await {
        Ok(_) => {
            tracing::info!(publication, schema, "created publication for the user schema");
            return Ok(PublicationMode::Schema);
        }
        Err(err) if is_code(&err, INSUFFICIENT_PRIVILEGE) || is_code(&err, SYNTAX_ERROR) => {
            tracing::info!(publication, error = %err, "cannot publish a whole schema; using a table list");
        }
        Err(err) => return Err(err.into()),
    }
    let empty = format!("create publication {}", ident(publication));
    match sqlx::raw_sql(AssertSqlSafe(empty)).execute(pool).await {
        Ok(_) => Ok(PublicationMode::Tables),
        Err(err) if is_code(&err, INSUFFICIENT_PRIVILEGE) => Err(ReplicationError::Unavailable(format!(
            "realtime is off: cannot create publication {publication}: {err}; grant CREATE on the database \
             or create it yourself (`CREATE PUBLICATION {publication} FOR TABLES IN SCHEMA {schema}`)"
        ))),
        Err(err) => Err(err.into()),
    }
}

async fn existing_mode(
    pool: &PgPool,
    publication: &str,
    schema: &str,
) -> Result<Option<PublicationMode>, sqlx::Error> {
    // pg_publication_namespace exists from PostgreSQL 15; before that no publication can cover
    // a schema, so its absence means a table list.
    let row: Option<(bool, bool)> = sqlx::query_as(
        "select p.puballtables, \
           to_regclass('pg_catalog.pg_publication_namespace') is not null \
         from pg_publication p where p.pubname = $1",
    )
    .bind(publication)
    .fetch_optional(pool)
    .await?;
    let Some((all_tables, has_namespaces)) = row else {
        return Ok(None);
    };
    if all_tables {
        return Ok(Some(PublicationMode::AllTables));
    }
    if has_namespaces {
        let covers: bool = sqlx::query_scalar(
            "select exists (select 1 from pg_publication_namespace pn \
               join pg_publication p on p.oid = pn.pnpubid \
               join pg_namespace n on n.oid = pn.pnnspid \
             where p.pubname = $1 and n.nspname = $2)",
        )
        .bind(publication)
        .bind(schema)
        .fetch_one(pool)
        .await?;
        if covers {
            return Ok(Some(PublicationMode::Schema));
        }
    }
    Ok(Some(PublicationMode::Tables))
}

/// Adds to a table-list publication the `tables` of `schema` it lacks (ordinary and
/// partitioned tables only; views have no changes). Returns how many were added. A table we
/// may not add (not its owner) is logged and skipped, so one foreign table cannot stop the feed.
pub async fn sync_tables(
    pool: &PgPool,
    publication: &str,
    schema: &str,
    tables: &[String],
) -> Result<usize, ReplicationError> {
    let missing: Vec<String> = sqlx::query_scalar(
        "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $2 and c.relname = any($3) and c.relkind in ('r', 'p') \
           and not exists (select 1 from pg_publication_tables pt \
                           where pt.pubname = $1 and pt.schemaname = $2 and pt.tablename = c.relname)",
    )
    .bind(publication)
    .bind(schema)
    .bind(tables)
    .fetch_all(pool)
    .await?;
    let mut added = 0;
    for table in &missing {
        let sql = format!(
            "alter publication {} add table {}",
            ident(publication),
            qualified(schema, table)
        );
        match sqlx::raw_sql(AssertSqlSafe(sql)).execute(pool).await {
            Ok(_) => added += 1,
            Err(err) => {
                tracing::warn!(table, publication, error = %err, "cannot publish table; its changes stay out of realtime")
            }
        }
    }
    if added > 0 {
        tracing::info!(publication, added, "added tables to the publication");
    }
    Ok(added)
}

/// What a table created through Directrix gets for realtime, in its own transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTables {
    /// `ALTER TABLE … REPLICA IDENTITY FULL`: updates and deletes carry the whole old row.
    pub replica_identity_full: bool,
    /// Add the table to this publication when it is a table list that does not cover it yet.
    pub publication: Option<String>,
}

impl NewTables {
    /// Nothing when realtime is off: full replica identity costs WAL nobody reads.
    pub fn from_config(realtime: &RealtimeConfig) -> NewTables {
        if !realtime.enabled {
            return NewTables::default();
        }
        NewTables {
            replica_identity_full: realtime.replica_identity_full,
            publication: Some(realtime.publication.clone()),
        }
    }
}

/// Runs right after `CREATE TABLE schema.table` in the same transaction, so the table's first
/// committed insert is already published with the identity it will keep.
pub async fn prepare_new_table(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    new_tables: &NewTables,
) -> Result<(), sqlx::Error> {
    let qualified_table = qualified(schema, table);
    if new_tables.replica_identity_full {
        let sql = format!("alter table {qualified_table} replica identity full");
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await?;
    }
    let Some(publication) = &new_tables.publication else {
        return Ok(());
    };
    // A schema publication already lists the new table (pg_publication_tables sees this
    // transaction's own catalog rows); a missing publication is the actor's to create.
    let needs_adding: bool = sqlx::query_scalar(
        "select exists (select 1 from pg_publication where pubname = $1 and not puballtables) \
           and not exists (select 1 from pg_publication_tables \
                           where pubname = $1 and schemaname = $2 and tablename = $3)",
    )
    .bind(publication)
    .bind(schema)
    .bind(table)
    .fetch_one(&mut *conn)
    .await?;
    if needs_adding {
        let sql = format!(
            "alter publication {} add table {qualified_table}",
            ident(publication)
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await?;
    }
    Ok(())
}

fn is_code(err: &sqlx::Error, code: &str) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == code)
}
