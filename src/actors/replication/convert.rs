//! A decoded [`Transaction`] → [`Committed`]: keep the changes of user collections, name them
//! by collection, render values as Directus JSON and pick out each row's primary key. Pure, so
//! it is unit-tested and benched without a server.
//!
//! Types come from the schema snapshot where it knows the field (only it knows that a `text`
//! column is `csv` or a `varchar` is a `hash`, which must never leave the server), else from
//! the column's type oid in the decoder's relation cache.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::core::field_type::FieldType;
use crate::core::pgoutput::value::{field_type, to_json};
use crate::core::pgoutput::{Change, Datum, Op, RelationInfo, Row, Transaction};
use crate::core::realtime::{AccessChange, Committed, RowChange, RowOp};
use crate::core::schema::SchemaSnapshot;

/// How one relation's changes are rendered, worked out once per transaction.
struct Plan {
    collection: Arc<str>,
    primary_key: Option<Arc<str>>,
    /// Column name → type, in the relation's column order (rows come in that order too).
    columns: Vec<(Arc<str>, FieldType)>,
}

/// Converts `tx`; changes of tables that are not user collections are left out, so the result
/// may have no changes (the caller still advances past it). `relation` looks up the decoder's
/// relation cache.
pub fn to_committed<'a>(
    tx: &Transaction,
    relation: impl Fn(u32) -> Option<&'a RelationInfo>,
    snapshot: &SchemaSnapshot,
    user_schema: &str,
) -> Committed {
    let mut plans: HashMap<u32, Option<Plan>> = HashMap::new();
    let mut changes = Vec::with_capacity(tx.changes.len());
    for change in &tx.changes {
        let plan = plans
            .entry(change.relation)
            .or_insert_with(|| plan(change, relation(change.relation), snapshot, user_schema));
        if let Some(plan) = plan {
            changes.push(row_change(plan, change));
        }
    }
    let access = tx
        .messages
        .iter()
        .filter(|m| m.transactional && m.prefix == crate::core::realtime::access_change::PREFIX)
        .map(|m| AccessChange::parse(&m.content))
        .collect();
    Committed {
        xid: tx.xid,
        commit_lsn: tx.commit_lsn,
        end_lsn: tx.end_lsn,
        commit_ts: tx.commit_ts,
        changes,
        access,
        more: tx.more,
        first: tx.first,
    }
}

/// `None` for a table that is not a collection of the user schema (system tables, tables the
/// snapshot skipped, other schemas).
fn plan(
    change: &Change,
    relation: Option<&RelationInfo>,
    snapshot: &SchemaSnapshot,
    user_schema: &str,
) -> Option<Plan> {
    if &*change.schema != user_schema {
        return None;
    }
    let collection = snapshot.collection(&change.table)?;
    let in_user_schema = collection
        .schema
        .as_ref()
        .is_some_and(|table| table.schema == user_schema && *table.name == *change.table);
    if !in_user_schema {
        return None;
    }
    let columns = relation
        .map(|info| {
            info.columns
                .iter()
                .map(|column| {
                    let known = collection
                        .field(&column.name)
                        .map(|f| f.field_type)
                        .filter(|t| *t != FieldType::Unknown);
                    let ty = known.unwrap_or_else(|| field_type(column.type_oid));
                    (column.name.clone(), ty)
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Plan {
        // The table's name is the collection's, and the decoder already holds it as an Arc.
        collection: change.table.clone(),
        primary_key: collection.primary_key.as_deref().map(Arc::from),
        columns,
    })
}

fn row_change(plan: &Plan, change: &Change) -> RowChange {
    let op = match change.op {
        Op::Insert => RowOp::Insert,
        Op::Update => RowOp::Update,
        Op::Delete => RowOp::Delete,
        Op::Truncate => RowOp::Truncate,
    };
    let old = change.old.as_ref().map(|row| render(plan, row));
    let new = change.new.as_ref().map(|row| render(plan, row));
    // The row as it is now identifies an insert or update (a changed key moved the item); a
    // delete is known by the row it removed.
    let key = plan
        .primary_key
        .as_ref()
        .and_then(|pk| {
            [&new, &old]
                .into_iter()
                .flatten()
                .find_map(|map| map.get(&**pk).cloned())
                .or_else(|| change.key.get(pk).map(|datum| value(plan, pk, datum)))
        })
        .unwrap_or(Value::Null);
    RowChange {
        collection: plan.collection.clone(),
        op,
        key,
        old,
        new,
    }
}

/// A row as a JSON object. An unchanged TOAST value the decoder could not fill (no full old
/// row) is left out rather than guessed.
fn render(plan: &Plan, row: &Row) -> Map<String, Value> {
    let mut map = Map::with_capacity(row.len());
    for (name, datum) in row.iter() {
        if datum.is_unchanged() {
            continue;
        }
        map.insert(name.to_string(), value(plan, name, datum));
    }
    map
}

fn value(plan: &Plan, name: &str, datum: &Datum) -> Value {
    let ty = plan
        .columns
        .iter()
        .find(|(column, _)| &**column == name)
        .map_or(FieldType::Unknown, |(_, ty)| *ty);
    let text = datum.as_text();
    match to_json(ty, text) {
        Ok(value) => value,
        Err(err) => {
            // The value itself never reaches logs.
            tracing::warn!(collection = %plan.collection, column = name, error = %err, "unexpected value text; sent as a string");
            text.map_or(Value::Null, |t| Value::String(t.to_string()))
        }
    }
}

#[cfg(test)]
mod tests;
