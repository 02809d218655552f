//! Writes an item together with its nested related writes (Directus's nested writes): M2O
//! objects first (their keys go into the item), then the item, then O2M items pointing at it.
//! M2M is O2M to the junction with a nested M2O. On update an O2M array is the whole set
//! (children left out are deselected); the `{create, update, delete}` form changes only what it
//! names. Everything runs on the caller's transaction.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::write;
use crate::core::payload::{self, Context, Deselect, Mode, NestedWrite};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::error::Error;

/// Most levels of nesting one payload may have.
const MAX_DEPTH: usize = 10;

// Not `Send`: the write context holds plain closures, and actix runs handlers on one thread.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + 'a>>;

/// What every nested write shares: the user schema, the snapshot, the write context, and the
/// log of what it wrote beyond the top item (for activity and revisions).
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub schema: &'a str,
    pub snapshot: &'a SchemaSnapshot,
    pub ctx: &'a Context<'a>,
    pub log: &'a RefCell<Vec<Written>>,
}

/// One write a nested write made to a related item.
#[derive(Debug, Clone)]
pub struct Written {
    pub collection: String,
    pub key: String,
    pub change: Change,
}

/// What was done to it.
#[derive(Debug, Clone)]
pub enum Change {
    /// Created from this payload (nested writes taken out).
    Create(Map<String, Value>),
    /// Updated with these values.
    Update(Vec<(String, payload::ColumnValue)>),
    Delete,
}

impl Scope<'_> {
    fn note(&self, depth: usize, collection: &Collection, keys: &[String], change: Change) {
        // Depth 0 is the item the caller wrote: the caller records that one itself.
        if depth == 0 {
            return;
        }
        let mut log = self.log.borrow_mut();
        for key in keys {
            log.push(Written {
                collection: collection.collection.clone(),
                key: key.clone(),
                change: change.clone(),
            });
        }
    }
}

impl<'a> Scope<'a> {
    fn collection(&self, name: &str) -> Result<&'a Collection, Error> {
        self.snapshot.collection(name).ok_or(Error::Forbidden)
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

/// Creates `item` in `collection` with its nested writes; returns the new key.
pub fn create<'a>(
    conn: &'a mut PgConnection,
    scope: Scope<'a>,
    collection: &'a Collection,
    item: &'a Value,
    depth: usize,
) -> Boxed<'a, String> {
    Box::pin(async move {
        let (rest, nested) = split(conn, scope, collection, item, depth).await?;
        let rest = Value::Object(rest);
        let values = payload::prepare(collection, &rest, Mode::Create, scope.ctx)?;
        let key = write::insert(conn, scope.schema, collection, &values).await?;
        if let Value::Object(rest) = rest {
            scope.note(
                depth,
                collection,
                std::slice::from_ref(&key),
                Change::Create(rest),
            );
        }
        children(conn, scope, &key, &nested, depth).await?;
        Ok(key)
    })
}

/// Updates item `key` with its nested writes; `false` when there is no such item.
pub fn update<'a>(
    conn: &'a mut PgConnection,
    scope: Scope<'a>,
    collection: &'a Collection,
    key: &'a str,
    item: &'a Value,
    depth: usize,
) -> Boxed<'a, bool> {
    Box::pin(async move {
        if !write::exists(conn, scope.schema, collection, key).await? {
            return Ok(false);
        }
        let (rest, nested) = split(conn, scope, collection, item, depth).await?;
        let values = payload::prepare(collection, &Value::Object(rest), Mode::Update, scope.ctx)?;
        write::update(conn, scope.schema, collection, &[key.to_string()], &values).await?;
        scope.note(depth, collection, &[key.to_string()], Change::Update(values));
        children(conn, scope, key, &nested, depth).await?;
        Ok(true)
    })
}

/// Separates nested writes from the item's own fields and writes the M2O objects, putting
/// their keys into the fields.
async fn split(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    collection: &Collection,
    item: &Value,
    depth: usize,
) -> Result<(Map<String, Value>, Vec<NestedWrite>), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::payload("Nested writes go deeper than 10 levels"));
    }
    let Value::Object(map) = item else {
        return Err(Error::payload("Item must be an object"));
    };
    let (mut rest, nested) = payload::split_nested(scope.snapshot, collection, map)?;
    for write in &nested {
        if let NestedWrite::ManyToOne { field, related, item } = write {
            let related = scope.collection(related)?;
            let key = upsert(conn, scope, related, item, depth + 1).await?;
            rest.insert(field.clone(), Value::String(key));
        }
    }
    Ok((rest, nested))
}

/// The O2M writes of item `key`.
async fn children(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    key: &str,
    nested: &[NestedWrite],
    depth: usize,
) -> Result<(), Error> {
    for write in nested {
        match write {
            NestedWrite::ManyToOne { .. } => {}
            NestedWrite::OneToMany {
                related,
                related_field,
                items,
                deselect,
                ..
            } => {
                let related = scope.collection(related)?;
                let mut kept = Vec::with_capacity(items.len());
                for child in items {
                    kept.push(link_child(conn, scope, related, related_field, key, child, depth + 1).await?);
                }
                // The array is the whole set: children left out are deselected (a new item
                // has none, so this only matters on update).
                let current = write::child_keys(conn, scope.schema, related, related_field, key).await?;
                let dropped: Vec<String> = current.into_iter().filter(|k| !kept.contains(k)).collect();
                deselect_children(
                    conn,
                    scope,
                    related,
                    related_field,
                    &dropped,
                    *deselect,
                    depth + 1,
                )
                .await?;
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
                let related = scope.collection(related)?;
                for child in create.iter().chain(update.iter()) {
                    link_child(conn, scope, related, related_field, key, child, depth + 1).await?;
                }
                let keys = delete
                    .iter()
                    .map(|k| key_text(k, related_field))
                    .collect::<Result<Vec<_>, _>>()?;
                deselect_children(conn, scope, related, related_field, &keys, *deselect, depth + 1).await?;
            }
        }
    }
    Ok(())
}

fn key_text(key: &Value, field: &str) -> Result<String, Error> {
    match key {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::payload(format!(
            "Items of \"{field}\" must be keys or objects"
        ))),
    }
}

/// An object that names an existing key is updated, otherwise created; returns its key.
fn upsert<'a>(
    conn: &'a mut PgConnection,
    scope: Scope<'a>,
    collection: &'a Collection,
    item: &'a Map<String, Value>,
    depth: usize,
) -> Boxed<'a, String> {
    Box::pin(async move {
        if let Some(key) = payload::key_of(collection, item) {
            let mut fields = item.clone();
            if let Some(pk) = &collection.primary_key {
                fields.remove(pk);
            }
            if update(conn, scope, collection, &key, &Value::Object(fields), depth).await? {
                return Ok(key);
            }
        }
        create(conn, scope, collection, &Value::Object(item.clone()), depth).await
    })
}

/// One element of an O2M array: a key links that row, an object is created (or updated) with
/// its foreign key set to the parent. Returns the child's key.
async fn link_child(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    related: &Collection,
    related_field: &str,
    parent_key: &str,
    child: &Value,
    depth: usize,
) -> Result<String, Error> {
    let parent = Value::String(parent_key.to_string());
    match child {
        Value::Object(object) => {
            let mut object = object.clone();
            object.insert(related_field.to_string(), parent);
            upsert(conn, scope, related, &object, depth).await
        }
        other => {
            let key = key_text(other, related_field)?;
            let link = serde_json::json!({ related_field: parent });
            let values = payload::prepare(related, &link, Mode::Update, scope.ctx)?;
            write::update(conn, scope.schema, related, std::slice::from_ref(&key), &values).await?;
            scope.note(depth, related, std::slice::from_ref(&key), Change::Update(values));
            Ok(key)
        }
    }
}

/// Unlinks (or deletes) O2M children, per the relation's `one_deselect_action`.
async fn deselect_children(
    conn: &mut PgConnection,
    scope: Scope<'_>,
    related: &Collection,
    related_field: &str,
    keys: &[String],
    deselect: Deselect,
    depth: usize,
) -> Result<(), Error> {
    if keys.is_empty() {
        return Ok(());
    }
    match deselect {
        Deselect::Delete => {
            write::delete(conn, scope.schema, related, keys).await?;
            scope.note(depth, related, keys, Change::Delete);
        }
        Deselect::Nullify => {
            let values = vec![(related_field.to_string(), None)];
            write::update(conn, scope.schema, related, keys, &values).await?;
            scope.note(depth, related, keys, Change::Update(values));
        }
    }
    Ok(())
}
