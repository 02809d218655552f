//! Keeping permission rows in step with the schema: a deleted field leaves every permission's
//! field list, presets and validation, a deleted collection's permissions are deleted. The
//! rules themselves live in SQL functions (migration `forget_dropped`), which the `sql_drop`
//! event trigger also runs for drops made outside the API, so there is one implementation.

use sqlx::PgConnection;
use tracing::instrument;

/// Removes `field` of `collection` from every permission (in the caller's transaction).
#[instrument(skip_all, fields(collection, field))]
pub async fn forget_field(conn: &mut PgConnection, collection: &str, field: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select directrix.forget_field($1, $2)")
        .bind(collection)
        .bind(field)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes the permissions of `collection` (in the caller's transaction).
#[instrument(skip_all, fields(collection))]
pub async fn forget_collection(conn: &mut PgConnection, collection: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select directrix.forget_collection($1)")
        .bind(collection)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records which schema holds user collections, for the event trigger.
pub async fn record_user_schema(pool: &sqlx::PgPool, user_schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into directrix.settings (key, value) values ('user_schema', $1) \
         on conflict (key) do update set value = excluded.value \
         where directrix.settings.value is distinct from excluded.value",
    )
    .bind(user_schema)
    .execute(pool)
    .await?;
    Ok(())
}
