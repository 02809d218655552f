//! Executes schema plans from `core::schema_change`: DDL and metadata in one transaction, so a
//! failed step leaves neither a half-made table nor dangling metadata.
//!
//! DDL cannot take bound parameters, so statements are built from quoted identifiers (checked
//! names or snapshot names) and, for defaults only, [`sql::literal`] under
//! `standard_conforming_strings = on`.

use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};
use tracing::instrument;

use super::metadata;
use super::replication::{self, NewTables};
use super::sql::{ident, literal, qualified};
use crate::core::field_type::FieldType;
use crate::core::schema::{Collection, Relation};
use crate::core::schema_change::{
    ColumnSpec, CreateCollection, DefaultValue, ForeignKeySpec, NewField, SaveRelation, UpdateField,
};
use crate::error::Error;

async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set local standard_conforming_strings = on")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    tracing::debug!(%sql, "ddl");
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(conn).await.map(drop)
}

/// `POST /collections` (one or many): all collections in one transaction.
#[instrument(skip_all, fields(count = plans.len()))]
pub async fn create_collections(
    pool: &PgPool,
    schema: &str,
    plans: &[CreateCollection],
    new_tables: &NewTables,
) -> Result<(), Error> {
    let mut tx = begin(pool).await?;
    for plan in plans {
        create_collection(&mut tx, schema, plan, new_tables).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn create_collection(
    conn: &mut PgConnection,
    schema: &str,
    plan: &CreateCollection,
    new_tables: &NewTables,
) -> Result<(), Error> {
    if let Some(comment) = &plan.table {
        let table = qualified(schema, &plan.collection);
        let columns: Vec<String> = plan
            .fields
            .iter()
            .filter_map(|f| f.column.as_ref())
            .map(column_definition)
            .collect();
        exec(conn, format!("create table {table} ({})", columns.join(", "))).await?;
        replication::prepare_new_table(conn, schema, &plan.collection, new_tables).await?;
        if let Some(comment) = comment {
            exec(conn, format!("comment on table {table} is {}", literal(comment))).await?;
        }
        for column in plan.fields.iter().filter_map(|f| f.column.as_ref()) {
            column_extras(conn, schema, &plan.collection, column).await?;
        }
        for meta in plan.fields.iter().filter_map(|f| f.meta.as_ref()) {
            metadata::save_field(conn, meta).await?;
        }
    }
    if let Some(meta) = &plan.meta {
        metadata::save_collection(conn, meta).await?;
    }
    Ok(())
}

/// `column_name type [generated …] [not null] [default …] [primary key] [unique]`.
fn column_definition(column: &ColumnSpec) -> String {
    // `serial`, as Directus (knex `increments`) creates it, so the column reads back the same:
    // `default_value: "nextval('<table>_<column>_seq'::regclass)"`.
    let sql_type = match (column.auto_increment, column.field_type) {
        (true, FieldType::BigInteger) => "bigserial".to_string(),
        (true, _) => "serial".to_string(),
        (false, _) => column.sql_type(),
    };
    let mut sql = format!("{} {sql_type}", ident(&column.name));
    if !column.nullable {
        sql.push_str(" not null");
    }
    if let Some(default) = default_sql(&column.default, column.field_type) {
        sql.push_str(" default ");
        sql.push_str(&default);
    } else if column.primary_key && column.field_type == FieldType::Uuid {
        // So rows inserted from outside the API (psql, other programs) get a key too.
        sql.push_str(" default gen_random_uuid()");
    }
    if column.primary_key {
        sql.push_str(" primary key");
    } else if column.unique {
        sql.push_str(" unique");
    }
    sql
}

/// Index and comment, which `create table` / `add column` cannot carry.
async fn column_extras(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    column: &ColumnSpec,
) -> Result<(), Error> {
    if column.indexed && !column.unique && !column.primary_key {
        let index = index_name(table, &column.name, "index");
        exec(
            conn,
            format!(
                "create index {} on {} ({})",
                ident(&index),
                qualified(schema, table),
                ident(&column.name)
            ),
        )
        .await?;
    }
    if let Some(comment) = &column.comment {
        exec(
            conn,
            format!(
                "comment on column {}.{} is {}",
                qualified(schema, table),
                ident(&column.name),
                literal(comment)
            ),
        )
        .await?;
    }
    Ok(())
}

fn index_name(table: &str, column: &str, suffix: &str) -> String {
    let mut name = format!("{table}_{column}_{suffix}");
    while name.len() > crate::core::name::MAX_NAME_BYTES {
        name.pop();
    }
    name
}

fn default_sql(default: &DefaultValue, field_type: FieldType) -> Option<String> {
    match default {
        DefaultValue::None => None,
        DefaultValue::RandomUuid => Some("gen_random_uuid()".to_string()),
        DefaultValue::Now => Some(
            match field_type {
                FieldType::Date => "current_date",
                FieldType::Time => "localtime",
                FieldType::DateTime => "localtimestamp",
                _ => "current_timestamp",
            }
            .to_string(),
        ),
        // serde_json prints numbers and booleans as plain SQL-compatible literals.
        DefaultValue::Literal(Value::Number(n)) => Some(n.to_string()),
        DefaultValue::Literal(Value::Bool(b)) => Some(b.to_string()),
        DefaultValue::Literal(Value::String(s)) if field_type != FieldType::Json => Some(literal(s)),
        DefaultValue::Literal(value) => Some(format!("{}::jsonb", literal(&value.to_string()))),
    }
}

/// `DELETE /collections/:name`: foreign keys pointing at it are dropped first, so other tables
/// keep their rows; anything else depending on it (a view) makes the delete fail instead.
#[instrument(skip_all, fields(collection = %collection.collection))]
pub async fn delete_collection(
    pool: &PgPool,
    schema: &str,
    collection: &Collection,
    incoming: &[&Relation],
) -> Result<(), Error> {
    let mut tx = begin(pool).await?;
    for relation in incoming {
        if let Some(fk) = &relation.schema
            && fk.table != collection.collection
        {
            drop_constraint(&mut tx, schema, &fk.table, &fk.constraint_name).await?;
        }
    }
    if collection.schema.is_some() {
        exec(
            &mut tx,
            format!("drop table {}", qualified(schema, &collection.collection)),
        )
        .await?;
    }
    metadata::delete_collection(&mut tx, &collection.collection).await?;
    crate::db::permissions::forget_collection(&mut tx, &collection.collection).await?;
    tx.commit().await?;
    Ok(())
}

/// `PATCH /collections/:name`.
pub async fn save_collection_meta(
    pool: &PgPool,
    meta: &crate::core::schema::CollectionMeta,
) -> Result<(), Error> {
    let mut conn = pool.acquire().await?;
    metadata::save_collection(&mut conn, meta).await?;
    Ok(())
}

/// `POST /fields/:collection`.
#[instrument(skip_all, fields(collection, field = %field.field))]
pub async fn create_field(
    pool: &PgPool,
    schema: &str,
    collection: &str,
    field: &NewField,
) -> Result<(), Error> {
    let mut tx = begin(pool).await?;
    if let Some(column) = &field.column {
        exec(
            &mut tx,
            format!(
                "alter table {} add column {}",
                qualified(schema, collection),
                column_definition(column)
            ),
        )
        .await?;
        column_extras(&mut tx, schema, collection, column).await?;
    }
    if let Some(meta) = &field.meta {
        metadata::save_field(&mut tx, meta).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `PATCH /fields/:collection/:field`.
#[instrument(skip_all, fields(collection = %plan.collection, field = %plan.field))]
pub async fn update_field(pool: &PgPool, schema: &str, plan: &UpdateField) -> Result<(), Error> {
    // Postgres names no column when existing data no longer fits (22001): this field's.
    alter_field(pool, schema, plan).await.map_err(|err| match err {
        Error::ValueTooLong { .. } => Error::ValueTooLong {
            collection: plan.collection.clone(),
            field: plan.field.clone(),
        },
        other => other,
    })
}

async fn alter_field(pool: &PgPool, schema: &str, plan: &UpdateField) -> Result<(), Error> {
    let mut tx = begin(pool).await?;
    let table = qualified(schema, &plan.collection);
    let column = ident(&plan.field);
    let change = &plan.column;
    if let Some(sql_type) = &change.sql_type {
        // Drop the default first: the old default may not cast to the new type.
        exec(
            &mut tx,
            format!("alter table {table} alter column {column} drop default"),
        )
        .await?;
        retype(&mut tx, &table, &column, sql_type).await?;
    }
    if let Some(nullable) = change.nullable {
        let action = if nullable { "drop not null" } else { "set not null" };
        exec(
            &mut tx,
            format!("alter table {table} alter column {column} {action}"),
        )
        .await?;
    }
    if let Some(default) = &change.default {
        let sql = match default_sql(default, plan.field_type) {
            Some(value) => format!("alter table {table} alter column {column} set default {value}"),
            None => format!("alter table {table} alter column {column} drop default"),
        };
        exec(&mut tx, sql).await?;
    }
    if let Some(unique) = change.unique {
        let name = ident(&index_name(&plan.collection, &plan.field, "unique"));
        let sql = if unique {
            format!("alter table {table} add constraint {name} unique ({column})")
        } else {
            drop_unique_sql(schema, &plan.collection, &plan.field)
        };
        exec(&mut tx, sql).await?;
    }
    if let Some(comment) = &change.comment {
        let value = comment.as_deref().map(literal).unwrap_or_else(|| "null".into());
        exec(&mut tx, format!("comment on column {table}.{column} is {value}")).await?;
    }
    if let Some(meta) = &plan.meta {
        metadata::save_field(&mut tx, meta).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Changes a column's type with Postgres's assignment casts, which refuse to lose data (a
/// too-long string fails with `VALUE_TOO_LONG` instead of being cut, as an explicit cast would
/// do). Only when no assignment cast exists (`text` → `integer`) is an explicit cast used,
/// and it fails on any value it cannot convert.
async fn retype(conn: &mut PgConnection, table: &str, column: &str, sql_type: &str) -> Result<(), Error> {
    sqlx::query("savepoint directrix_retype")
        .execute(&mut *conn)
        .await?;
    match exec(
        conn,
        format!("alter table {table} alter column {column} type {sql_type}"),
    )
    .await
    {
        Ok(()) => {
            sqlx::query("release savepoint directrix_retype")
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
        Err(err) if constraint_code(&err).as_deref() == Some("42804") => {
            sqlx::query("rollback to savepoint directrix_retype")
                .execute(&mut *conn)
                .await?;
            exec(
                conn,
                format!(
                    "alter table {table} alter column {column} type {sql_type} using {column}::{sql_type}"
                ),
            )
            .await?;
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Drops every single-column unique constraint (and unique index) on a column, whatever its name.
fn drop_unique_sql(schema: &str, table: &str, column: &str) -> String {
    // The names are looked up by Postgres itself; only quoted values cross into the DO block.
    format!(
        r#"do $directrix$
declare r record;
begin
  for r in
    select con.conname, null::text as indexname from pg_constraint con
    join pg_class c on c.oid = con.conrelid join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attnum = con.conkey[1]
    where con.contype = 'u' and cardinality(con.conkey) = 1 and n.nspname = {s} and c.relname = {t} and a.attname = {c}
  loop
    execute format('alter table %I.%I drop constraint %I', {s}, {t}, r.conname);
  end loop;
  for r in
    select ic.relname as indexname from pg_index i
    join pg_class ic on ic.oid = i.indexrelid join pg_class c on c.oid = i.indrelid
    join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
    where i.indisunique and not i.indisprimary and i.indnkeyatts = 1 and n.nspname = {s} and c.relname = {t} and a.attname = {c}
  loop
    execute format('drop index %I.%I', {s}, r.indexname);
  end loop;
end
$directrix$"#,
        s = literal(schema),
        t = literal(table),
        c = literal(column),
    )
}

/// `DELETE /fields/:collection/:field`: the column (if any), its metadata and its relation.
#[instrument(skip_all, fields(collection, field))]
pub async fn delete_field(
    pool: &PgPool,
    schema: &str,
    collection: &str,
    field: &str,
    has_column: bool,
) -> Result<(), Error> {
    let mut tx = begin(pool).await?;
    if has_column {
        exec(
            &mut tx,
            format!(
                "alter table {} drop column {}",
                qualified(schema, collection),
                ident(field)
            ),
        )
        .await?;
    }
    metadata::delete_field(&mut tx, collection, field).await?;
    metadata::delete_relation(&mut tx, collection, field).await?;
    crate::db::permissions::forget_field(&mut tx, collection, field).await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /relations` and `PATCH /relations/:collection/:field`.
#[instrument(skip_all, fields(collection = %plan.collection, field = %plan.field))]
pub async fn save_relation(pool: &PgPool, schema: &str, plan: &SaveRelation) -> Result<(), Error> {
    let mut tx = begin(pool).await?;
    if let Some(name) = &plan.drop_constraint {
        drop_constraint(&mut tx, schema, &plan.collection, name).await?;
    }
    if let Some(fk) = &plan.foreign_key {
        add_foreign_key(&mut tx, schema, fk).await?;
    }
    if let Some(meta) = &plan.meta {
        metadata::save_relation(&mut tx, meta).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn add_foreign_key(conn: &mut PgConnection, schema: &str, fk: &ForeignKeySpec) -> Result<(), Error> {
    let sql = format!(
        "alter table {} add constraint {} foreign key ({}) references {} ({}) on delete {} on update {}",
        qualified(schema, &fk.table),
        ident(&fk.constraint_name),
        ident(&fk.column),
        qualified(schema, &fk.foreign_table),
        ident(&fk.foreign_column),
        fk.on_delete,
        fk.on_update,
    );
    // Existing rows that point nowhere make the constraint fail: the client's data problem.
    exec(conn, sql)
        .await
        .map_err(|e| match constraint_code(&e).as_deref() {
            Some("23503") => Error::InvalidForeignKey {
                collection: fk.table.clone(),
                field: fk.column.clone(),
            },
            Some("42804") => Error::payload(format!(
                "Field \"{}\" and the primary key of \"{}\" have different types",
                fk.column, fk.foreign_table
            )),
            _ => e.into(),
        })
}

/// `DELETE /relations/:collection/:field`: the foreign key and the metadata; the field stays.
#[instrument(skip_all, fields(collection = %relation.collection, field = %relation.field))]
pub async fn delete_relation(pool: &PgPool, schema: &str, relation: &Relation) -> Result<(), Error> {
    let mut tx = begin(pool).await?;
    if let Some(fk) = &relation.schema {
        drop_constraint(&mut tx, schema, &fk.table, &fk.constraint_name).await?;
    }
    metadata::delete_relation(&mut tx, &relation.collection, &relation.field).await?;
    tx.commit().await?;
    Ok(())
}

async fn drop_constraint(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    name: &str,
) -> Result<(), sqlx::Error> {
    exec(
        conn,
        format!(
            "alter table {} drop constraint if exists {}",
            qualified(schema, table),
            ident(name)
        ),
    )
    .await
}

fn constraint_code(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}
