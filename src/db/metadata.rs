//! Writes Directrix's schema metadata rows (`directrix.collections`, `.fields`, `.relations`).
//!
//! Callers validate and merge `meta` objects in Rust (typed structs, unknown keys rejected);
//! these functions store a whole struct at once through `jsonb_populate_record`, whose column
//! names equal the JSON keys. Each statement fires the metadata trigger that notifies the schema
//! actor of every instance.

use sqlx::PgConnection;
use sqlx::types::Json;
use tracing::instrument;

use crate::core::schema::{CollectionMeta, FieldMeta, RelationMeta};

/// Inserts or replaces a collection's `meta`.
#[instrument(skip_all, fields(collection = %meta.collection))]
pub async fn save_collection(conn: &mut PgConnection, meta: &CollectionMeta) -> Result<(), sqlx::Error> {
    sqlx::query("delete from directrix.collections where collection = $1")
        .bind(&meta.collection)
        .execute(&mut *conn)
        .await?;
    sqlx::query("insert into directrix.collections select * from jsonb_populate_record(null::directrix.collections, $1)")
        .bind(Json(meta))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes a collection's `meta` and the `meta` of its fields and relations.
#[instrument(skip_all, fields(collection))]
pub async fn delete_collection(conn: &mut PgConnection, collection: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from directrix.collections where collection = $1")
        .bind(collection)
        .execute(&mut *conn)
        .await?;
    sqlx::query("delete from directrix.fields where collection = $1")
        .bind(collection)
        .execute(&mut *conn)
        .await?;
    sqlx::query("delete from directrix.relations where many_collection = $1 or one_collection = $1")
        .bind(collection)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts or replaces a field's `meta`, keeping its `id`.
#[instrument(skip_all, fields(collection = %meta.collection, field = %meta.field))]
pub async fn save_field(conn: &mut PgConnection, meta: &FieldMeta) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"insert into directrix.fields (collection, field, special, interface, options, display,
               display_options, readonly, hidden, sort, width, translations, note, conditions,
               required, "group", validation, validation_message, searchable)
           select collection, field, special, interface, options, display, display_options,
               readonly, hidden, sort, width, translations, note, conditions, required, "group",
               validation, validation_message, searchable
           from jsonb_populate_record(null::directrix.fields, $1)
           on conflict (collection, field) do update set
               special = excluded.special, interface = excluded.interface,
               options = excluded.options, display = excluded.display,
               display_options = excluded.display_options, readonly = excluded.readonly,
               hidden = excluded.hidden, sort = excluded.sort, width = excluded.width,
               translations = excluded.translations, note = excluded.note,
               conditions = excluded.conditions, required = excluded.required,
               "group" = excluded."group", validation = excluded.validation,
               validation_message = excluded.validation_message, searchable = excluded.searchable"#,
    )
    .bind(Json(meta))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes a field's `meta`.
#[instrument(skip_all, fields(collection, field))]
pub async fn delete_field(conn: &mut PgConnection, collection: &str, field: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from directrix.fields where collection = $1 and field = $2")
        .bind(collection)
        .bind(field)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts or replaces a relation's `meta`, keeping its `id`.
#[instrument(skip_all, fields(collection = %meta.many_collection, field = %meta.many_field))]
pub async fn save_relation(conn: &mut PgConnection, meta: &RelationMeta) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"insert into directrix.relations (many_collection, many_field, one_collection, one_field,
               one_collection_field, one_allowed_collections, junction_field, sort_field, one_deselect_action)
           select many_collection, many_field, one_collection, one_field, one_collection_field,
               one_allowed_collections, junction_field, sort_field, one_deselect_action
           from jsonb_populate_record(null::directrix.relations, $1)
           on conflict (many_collection, many_field) do update set
               one_collection = excluded.one_collection, one_field = excluded.one_field,
               one_collection_field = excluded.one_collection_field,
               one_allowed_collections = excluded.one_allowed_collections,
               junction_field = excluded.junction_field, sort_field = excluded.sort_field,
               one_deselect_action = excluded.one_deselect_action"#,
    )
    .bind(Json(meta))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes a relation's `meta`.
#[instrument(skip_all, fields(collection, field))]
pub async fn delete_relation(
    conn: &mut PgConnection,
    collection: &str,
    field: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("delete from directrix.relations where many_collection = $1 and many_field = $2")
        .bind(collection)
        .bind(field)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
