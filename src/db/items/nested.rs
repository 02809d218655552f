//! Creates an item together with its nested related writes (Directus's nested create): M2O
//! objects first, then the item, then O2M items pointing at it; M2M is O2M to the junction
//! with a nested M2O. Everything runs on the caller's transaction.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::write;
use crate::core::payload::{self, Context, Mode, NestedWrite};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::error::Error;

/// Most levels of nesting one payload may have.
const MAX_DEPTH: usize = 10;

// Not `Send`: the write context holds plain closures, and actix runs handlers on one thread.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + 'a>>;

/// Creates `item` in `collection` with its nested writes; returns the new key.
pub fn create<'a>(
    conn: &'a mut PgConnection,
    schema: &'a str,
    snapshot: &'a SchemaSnapshot,
    collection: &'a Collection,
    item: &'a Value,
    ctx: &'a Context<'a>,
    depth: usize,
) -> Boxed<'a, String> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(Error::payload("Nested writes go deeper than 10 levels"));
        }
        let Value::Object(map) = item else {
            return Err(Error::payload("Item must be an object"));
        };
        let (mut rest, nested) = payload::split_nested(snapshot, collection, map)?;
        for write in &nested {
            if let NestedWrite::ManyToOne { field, related, item } = write {
                let related = snapshot.collection(related).ok_or(Error::Forbidden)?;
                let key = upsert(conn, schema, snapshot, related, item, ctx, depth + 1).await?;
                rest.insert(field.clone(), Value::String(key));
            }
        }
        let values = payload::prepare(collection, &Value::Object(rest), Mode::Create, ctx)?;
        let key = write::insert(conn, schema, collection, &values).await?;
        for write in &nested {
            if let NestedWrite::OneToMany {
                related,
                related_field,
                items,
                ..
            } = write
            {
                let related = snapshot.collection(related).ok_or(Error::Forbidden)?;
                for child in items {
                    link_child(
                        conn,
                        schema,
                        snapshot,
                        related,
                        related_field,
                        &key,
                        child,
                        ctx,
                        depth + 1,
                    )
                    .await?;
                }
            }
        }
        Ok(key)
    })
}

/// An M2O object: updated when it names an existing key, created otherwise; returns its key.
fn upsert<'a>(
    conn: &'a mut PgConnection,
    schema: &'a str,
    snapshot: &'a SchemaSnapshot,
    collection: &'a Collection,
    item: &'a Map<String, Value>,
    ctx: &'a Context<'a>,
    depth: usize,
) -> Boxed<'a, String> {
    Box::pin(async move {
        if let Some(key) = payload::key_of(collection, item) {
            let mut fields = item.clone();
            if let Some(pk) = &collection.primary_key {
                fields.remove(pk);
            }
            let values = payload::prepare(collection, &Value::Object(fields), Mode::Update, ctx)?;
            let changed =
                write::update(conn, schema, collection, std::slice::from_ref(&key), &values).await?;
            if changed > 0 || values.is_empty() {
                return Ok(key);
            }
        }
        create(
            conn,
            schema,
            snapshot,
            collection,
            &Value::Object(item.clone()),
            ctx,
            depth,
        )
        .await
    })
}

/// One element of an O2M array: a key links that row, an object is created (or updated) with
/// its foreign key set to the parent.
#[allow(clippy::too_many_arguments)]
async fn link_child(
    conn: &mut PgConnection,
    schema: &str,
    snapshot: &SchemaSnapshot,
    related: &Collection,
    related_field: &str,
    parent_key: &str,
    child: &Value,
    ctx: &Context<'_>,
    depth: usize,
) -> Result<String, Error> {
    let parent = Value::String(parent_key.to_string());
    match child {
        Value::String(_) | Value::Number(_) => {
            let key = match child {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let values = payload::prepare(
                related,
                &serde_json::json!({ related_field: parent }),
                Mode::Update,
                ctx,
            )?;
            write::update(conn, schema, related, std::slice::from_ref(&key), &values).await?;
            Ok(key)
        }
        Value::Object(object) => {
            let mut object = object.clone();
            object.insert(related_field.to_string(), parent);
            upsert(conn, schema, snapshot, related, &object, ctx, depth).await
        }
        _ => Err(Error::payload(format!(
            "Items of \"{related_field}\" must be keys or objects"
        ))),
    }
}

/// Updates item `key` with its nested writes; returns whether the item exists.
#[allow(clippy::too_many_arguments)]
pub fn update<'a>(
    conn: &'a mut PgConnection,
    schema: &'a str,
    snapshot: &'a SchemaSnapshot,
    collection: &'a Collection,
    key: &'a str,
    item: &'a Value,
    ctx: &'a Context<'a>,
    depth: usize,
) -> Boxed<'a, bool> {
    Box::pin(async move {
        let Value::Object(map) = item else {
            return Err(Error::payload("Item must be an object"));
        };
        if !write::exists(conn, schema, collection, key).await? {
            return Ok(false);
        }
        let (mut rest, nested) = payload::split_nested(snapshot, collection, map)?;
        for write in &nested {
            if let NestedWrite::ManyToOne { field, related, item } = write {
                let related = snapshot.collection(related).ok_or(Error::Forbidden)?;
                let related_key = upsert(conn, schema, snapshot, related, item, ctx, depth + 1).await?;
                rest.insert(field.clone(), Value::String(related_key));
            }
        }
        let values = payload::prepare(collection, &Value::Object(rest), Mode::Update, ctx)?;
        write::update(conn, schema, collection, &[key.to_string()], &values).await?;
        for write in &nested {
            match write {
                NestedWrite::ManyToOne { .. } => {}
                NestedWrite::OneToMany {
                    related,
                    related_field,
                    items,
                    deselect,
                    ..
                } => {
                    let related = snapshot.collection(related).ok_or(Error::Forbidden)?;
                    let mut kept = Vec::with_capacity(items.len());
                    for child in items {
                        kept.push(
                            link_child(
                                conn,
                                schema,
                                snapshot,
                                related,
                                related_field,
                                key,
                                child,
                                ctx,
                                depth + 1,
                            )
                            .await?,
                        );
                    }
                    // The array is the whole set: children left out are deselected.
                    let current = write::child_keys(conn, schema, related, related_field, key).await?;
                    let dropped: Vec<String> = current.into_iter().filter(|k| !kept.contains(k)).collect();
                    deselect_children(conn, schema, related, related_field, &dropped, *deselect).await?;
                }
                NestedWrite::OneToManyDetailed {
                    related,
                    related_field,
                    create,
                    update,
                    delete,
                    deselect,
                    ..
                } => {
                    let related = snapshot.collection(related).ok_or(Error::Forbidden)?;
                    for child in create.iter().chain(update.iter()) {
                        link_child(
                            conn,
                            schema,
                            snapshot,
                            related,
                            related_field,
                            key,
                            child,
                            ctx,
                            depth + 1,
                        )
                        .await?;
                    }
                    let keys: Vec<String> = delete
                        .iter()
                        .map(|k| match k {
                            Value::String(s) => Ok(s.clone()),
                            Value::Number(n) => Ok(n.to_string()),
                            _ => Err(Error::payload(format!(
                                "\"delete\" of \"{related_field}\" takes keys"
                            ))),
                        })
                        .collect::<Result<_, _>>()?;
                    deselect_children(conn, schema, related, related_field, &keys, *deselect).await?;
                }
            }
        }
        Ok(true)
    })
}

/// Unlinks (or deletes) O2M children, per the relation's `one_deselect_action`.
async fn deselect_children(
    conn: &mut PgConnection,
    schema: &str,
    related: &Collection,
    related_field: &str,
    keys: &[String],
    deselect: payload::Deselect,
) -> Result<(), Error> {
    if keys.is_empty() {
        return Ok(());
    }
    match deselect {
        payload::Deselect::Delete => write::delete(conn, schema, related, keys).await.map(drop),
        payload::Deselect::Nullify => {
            write::update(conn, schema, related, keys, &[(related_field.to_string(), None)])
                .await
                .map(drop)
        }
    }
}

/// Whether an item payload carries nested writes.
pub fn has_nested(snapshot: &SchemaSnapshot, collection: &Collection, item: &Value) -> bool {
    let Value::Object(map) = item else { return false };
    map.iter().any(|(key, value)| {
        (value.is_object() && snapshot.relation(&collection.collection, key).is_some())
            || collection
                .field(key)
                .is_some_and(|f| f.field_type == crate::core::field_type::FieldType::Alias)
    })
}
