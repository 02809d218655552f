//! Reads the catalog and the metadata tables, and builds a snapshot with `core::catalog`.
//!
//! Six queries, one round trip each, inside one repeatable-read transaction so the snapshot
//! is consistent even while DDL runs elsewhere.

use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tracing::instrument;

use crate::core::catalog::{self, Built, CatalogRows};

// Directus's system collections that live in our `directrix` schema, read like user tables
// under their Directus names (`directrix.users` is `directus_users`), so `/users`, `/roles`,
// `/policies`, `/permissions` and `/access` get the whole query language and permission model
// of `/items`. `db::sql::table` maps the names back.
const SYSTEM_TABLES: &str =
    "array['users', 'roles', 'policies', 'access', 'permissions', 'activity', 'revisions']";

const COLUMNS: &str = r#"
select case when n.nspname = $1 then c.relname::text else 'directus_' || c.relname end as table_name,
       a.attname::text as column_name,
       t.typname::text as udt_name,
       format_type(a.atttypid, null) as data_type,
       not a.attnotnull as is_nullable,
       case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end as default_expr,
       case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end as generation_expression,
       a.attidentity <> '' as is_identity,
       information_schema._pg_char_max_length(a.atttypid, a.atttypmod)::int4 as max_length,
       information_schema._pg_numeric_precision(a.atttypid, a.atttypmod)::int4 as numeric_precision,
       information_schema._pg_numeric_scale(a.atttypid, a.atttypmod)::int4 as numeric_scale,
       col_description(c.oid, a.attnum) as comment,
       obj_description(c.oid, 'pg_class') as table_comment
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where (n.nspname = $1 or (n.nspname = 'directrix' and c.relname = any(SYSTEM_TABLES)))
  and c.relkind in ('r', 'p') and not c.relispartition
  and a.attnum > 0 and not a.attisdropped
order by c.relname, a.attnum
"#;

// Facts per column that leads at least one index; `indnatts = 1` keeps composite keys out of
// "primary key" and "unique" (Directus needs a single-column key).
const INDEXES: &str = r#"
select case when n.nspname = $1 then c.relname::text else 'directus_' || c.relname end as table_name,
       a.attname::text as column_name,
       bool_or(i.indisprimary and i.indnkeyatts = 1) as is_primary_key,
       bool_or(i.indisunique and i.indnkeyatts = 1 and i.indpred is null) as is_unique,
       bool_or(not i.indisunique) as is_indexed
from pg_index i
join pg_class c on c.oid = i.indrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
where (n.nspname = $1 or (n.nspname = 'directrix' and c.relname = any(SYSTEM_TABLES)))
group by 1, 2
"#;

const FOREIGN_KEYS: &str = r#"
select con.conname::text as constraint_name,
       case when n.nspname = $1 then c.relname::text else 'directus_' || c.relname end as table_name,
       a.attname::text as column_name,
       case when fn.nspname = 'directrix' and fc.relname = any(SYSTEM_TABLES) then $1
            else fn.nspname::text end as foreign_schema,
       case when fn.nspname = 'directrix' and fc.relname = any(SYSTEM_TABLES) then 'directus_' || fc.relname
            else fc.relname::text end as foreign_table,
       fa.attname::text as foreign_column,
       con.confupdtype::text as on_update,
       con.confdeltype::text as on_delete
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_class fc on fc.oid = con.confrelid
join pg_namespace fn on fn.oid = fc.relnamespace
join pg_attribute a on a.attrelid = con.conrelid and a.attnum = con.conkey[1]
join pg_attribute fa on fa.attrelid = con.confrelid and fa.attnum = con.confkey[1]
where con.contype = 'f' and cardinality(con.conkey) = 1
  and (n.nspname = $1 or (n.nspname = 'directrix' and c.relname = any(SYSTEM_TABLES)))
order by c.relname, a.attname
"#;

// Metadata rows; `$1` is unused here but keeps one calling convention for all six queries.
const COLLECTION_META: &str =
    "select c.* from directrix.collections c where $1::text is not null order by c.collection";
const FIELD_META: &str =
    "select f.* from directrix.fields f where $1::text is not null order by f.collection, f.sort, f.id";
const RELATION_META: &str = "select r.* from directrix.relations r where $1::text is not null order by r.id";

/// Reads everything and builds the snapshot.
#[instrument(skip_all, fields(schema = user_schema))]
pub async fn load(pool: &PgPool, user_schema: &str) -> Result<Built, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let rows = CatalogRows {
        schema: user_schema.to_string(),
        columns: rows_of(&mut tx, COLUMNS, user_schema).await?,
        indexes: rows_of(&mut tx, INDEXES, user_schema).await?,
        foreign_keys: rows_of(&mut tx, FOREIGN_KEYS, user_schema).await?,
        collection_meta: rows_of(&mut tx, COLLECTION_META, user_schema).await?,
        field_meta: rows_of(&mut tx, FIELD_META, user_schema).await?,
        relation_meta: rows_of(&mut tx, RELATION_META, user_schema).await?,
    };
    tx.commit().await?;
    Ok(catalog::build(rows))
}

/// Runs one catalog query and decodes its rows through JSON into `core`'s plain row types,
/// which keeps `core` free of sqlx.
async fn rows_of<T: DeserializeOwned + Send + Unpin + 'static>(
    conn: &mut PgConnection,
    query: &'static str,
    user_schema: &str,
) -> Result<Vec<T>, sqlx::Error> {
    let query = query.replace("SYSTEM_TABLES", SYSTEM_TABLES);
    let sql = format!("select coalesce(jsonb_agg(to_jsonb(r)), '[]') from ({query}) r");
    let Json(rows): Json<Vec<T>> = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(user_schema)
        .fetch_one(&mut *conn)
        .await?;
    Ok(rows)
}

/// Whether the DDL event trigger is installed (it needs a superuser); without it the schema
/// actor polls.
pub async fn has_ddl_trigger(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from pg_event_trigger where evtname = 'directrix_schema_ddl')",
    )
    .fetch_one(pool)
    .await
}
