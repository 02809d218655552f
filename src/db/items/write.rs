//! Item writes: insert, update and delete inside a caller's transaction, so a batch is all or
//! nothing. Values are bound as text and cast to each column's type; keys come back as text.

use sqlx::{PgConnection, Row};
use tracing::instrument;

use crate::core::payload::ColumnValue;
use crate::core::schema::Collection;
use crate::db::sql::{ident, table};
use crate::error::Error;

fn column_type(collection: &Collection, field: &str) -> Result<String, Error> {
    collection
        .field(field)
        .and_then(|f| f.schema.as_ref())
        .map(|c| c.data_type.clone())
        .ok_or_else(|| Error::ForbiddenField {
            collection: collection.collection.clone(),
            field: field.into(),
            path: None,
        })
}

fn primary_key(collection: &Collection) -> Result<(&str, String), Error> {
    let pk = collection.primary_key.as_deref().ok_or(Error::Forbidden)?;
    Ok((pk, column_type(collection, pk)?))
}

/// Inserts one item; returns its primary key as text.
#[instrument(skip_all, fields(collection = %collection.collection))]
pub async fn insert(
    conn: &mut PgConnection,
    schema: &str,
    collection: &Collection,
    values: &[(String, ColumnValue)],
) -> Result<String, Error> {
    let (pk, _) = primary_key(collection)?;
    let sql = insert_sql(schema, collection, values)? + &format!(" returning {}::text", ident(pk));
    let row = bind_values(sqlx::query(sqlx::AssertSqlSafe(sql)), values)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| in_collection(e, collection))?;
    Ok(row.try_get::<String, _>(0)?)
}

/// Inserts one item and, in the same statement, records it (`tracking`: the CTEs of
/// `db::activity::tracking_ctes` and their binds, numbered after the values) and reads it back
/// (`read_back`, from `read::select_inserted`, which selects from `ins` and binds nothing): one
/// round trip for a create. Returns the new key and the read-back row.
#[instrument(skip_all, fields(collection = %collection.collection))]
pub async fn insert_returning(
    conn: &mut PgConnection,
    schema: &str,
    collection: &Collection,
    values: &[(String, ColumnValue)],
    tracking: Option<(&str, &[Option<String>])>,
    read_back: Option<&str>,
) -> Result<(String, Option<String>), Error> {
    let (pk, _) = primary_key(collection)?;
    let read_back = match read_back {
        Some(select) => format!("({select})"),
        None => "null::text".into(),
    };
    let sql = format!(
        "with ins as ({} returning *){} select ins.{}::text, {read_back} from ins",
        insert_sql(schema, collection, values)?,
        tracking.map(|(ctes, _)| ctes).unwrap_or(""),
        ident(pk),
    );
    let mut query = bind_values(sqlx::query(sqlx::AssertSqlSafe(sql)), values);
    for bind in tracking.map(|(_, binds)| binds).unwrap_or(&[]) {
        query = query.bind(bind.clone());
    }
    let row = query
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| in_collection(e, collection))?;
    Ok((row.try_get::<String, _>(0)?, row.try_get::<Option<String>, _>(1)?))
}

fn bind_values<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    values: &[(String, ColumnValue)],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for (_, value) in values {
        query = query.bind(value.clone());
    }
    query
}

/// `insert into <table> (…) values (cast($1 as …), …)` or `… default values`.
fn insert_sql(
    schema: &str,
    collection: &Collection,
    values: &[(String, ColumnValue)],
) -> Result<String, Error> {
    let table = table(schema, &collection.collection);
    let mut sql = format!("insert into {table} ");
    if values.is_empty() {
        sql.push_str("default values");
    } else {
        let columns: Vec<String> = values.iter().map(|(c, _)| ident(c)).collect();
        let mut placeholders = Vec::with_capacity(values.len());
        for (i, (column, _)) in values.iter().enumerate() {
            placeholders.push(format!(
                "cast(${} as {})",
                i + 1,
                column_type(collection, column)?
            ));
        }
        sql.push_str(&format!(
            "({}) values ({})",
            columns.join(", "),
            placeholders.join(", ")
        ));
    }
    Ok(sql)
}

/// Updates the items with these keys; returns how many rows changed.
#[instrument(skip_all, fields(collection = %collection.collection, keys = keys.len()))]
pub async fn update(
    conn: &mut PgConnection,
    schema: &str,
    collection: &Collection,
    keys: &[String],
    values: &[(String, ColumnValue)],
) -> Result<u64, Error> {
    let (pk, pk_type) = primary_key(collection)?;
    if values.is_empty() || keys.is_empty() {
        return Ok(0);
    }
    let mut sets = Vec::with_capacity(values.len());
    for (i, (column, _)) in values.iter().enumerate() {
        sets.push(format!(
            "{} = cast(${} as {})",
            ident(column),
            i + 1,
            column_type(collection, column)?
        ));
    }
    let sql = format!(
        "update {} set {} where {} = any(cast(${} as {pk_type}[]))",
        table(schema, &collection.collection),
        sets.join(", "),
        ident(pk),
        values.len() + 1
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (_, value) in values {
        query = query.bind(value.clone());
    }
    let done = query
        .bind(keys.to_vec())
        .execute(&mut *conn)
        .await
        .map_err(|e| in_collection(e, collection))?;
    Ok(done.rows_affected())
}

/// Deletes the items with these keys; returns how many rows went.
#[instrument(skip_all, fields(collection = %collection.collection, keys = keys.len()))]
pub async fn delete(
    conn: &mut PgConnection,
    schema: &str,
    collection: &Collection,
    keys: &[String],
) -> Result<u64, Error> {
    let (pk, pk_type) = primary_key(collection)?;
    let sql = format!(
        "delete from {} where {} = any(cast($1 as {pk_type}[]))",
        table(schema, &collection.collection),
        ident(pk)
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(keys.to_vec())
        .execute(&mut *conn)
        .await
        .map_err(|e| in_collection(e, collection))?;
    Ok(done.rows_affected())
}

/// Whether an item with this key exists.
pub async fn exists(
    conn: &mut PgConnection,
    schema: &str,
    collection: &Collection,
    key: &str,
) -> Result<bool, Error> {
    let (pk, pk_type) = primary_key(collection)?;
    let sql = format!(
        "select exists (select 1 from {} where {} = cast($1 as {pk_type}))",
        table(schema, &collection.collection),
        ident(pk)
    );
    let found: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| in_collection(e, collection))?;
    Ok(found)
}

/// Keys of the rows of `collection` whose `field` points at `parent`.
pub async fn child_keys(
    conn: &mut PgConnection,
    schema: &str,
    collection: &Collection,
    field: &str,
    parent: &str,
) -> Result<Vec<String>, Error> {
    let (pk, _) = primary_key(collection)?;
    let field_type = column_type(collection, field)?;
    let sql = format!(
        "select {}::text from {} where {} = cast($1 as {field_type})",
        ident(pk),
        table(schema, &collection.collection),
        ident(field)
    );
    let keys: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(parent)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| in_collection(e, collection))?;
    Ok(keys)
}

/// The first row's key, for singletons.
pub async fn first_key(
    conn: &mut PgConnection,
    schema: &str,
    collection: &Collection,
) -> Result<Option<String>, Error> {
    let (pk, _) = primary_key(collection)?;
    let sql = format!(
        "select {}::text from {} limit 1",
        ident(pk),
        table(schema, &collection.collection)
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
}

/// Constraint errors name the table; a cast error does not, so it gets the collection here.
fn in_collection(err: sqlx::Error, collection: &Collection) -> Error {
    match Error::from(err) {
        Error::Forbidden => Error::ForbiddenCollection {
            collection: collection.collection.clone(),
        },
        other => other,
    }
}
