//! Reading changed rows for shapes that can't be decided from the WAL row alone (relational
//! filters, expanded or O2M fields, `search`): one read per change with the subscriber's query
//! and permissions, as Directus does for every subscriber — but once per group.
//!
//! The read is of the row version the WAL carries (`jsonb_populate_record` in place of the
//! table), not of the key: by the time a group gets to a change, later transactions may have
//! changed or deleted the row, and reading by key would report their state under this
//! transaction's event (or nothing). Related rows are read as they are now.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::core::field_type::FieldType;
use crate::core::query::Query;
use crate::core::realtime::event::RowChange;
use crate::core::realtime::frame::Item;
use crate::core::realtime::shape::{EventKind, key_text};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::db::items::compile::Sql;
use crate::db::items::read::{self, Target};
use crate::db::items::rules::ReadRules;
use crate::error::Error;

/// Everything a group's reads need, captured at subscribe time.
#[derive(Debug)]
pub struct RereadContext {
    pub pool: sqlx::PgPool,
    pub snapshot: Arc<SchemaSnapshot>,
    pub user_schema: String,
    pub collection: String,
    pub query: Query,
    pub rules: ReadRules,
}

impl RereadContext {
    fn target(&self) -> Option<Target<'_>> {
        Some(Target {
            snapshot: &self.snapshot,
            schema: &self.user_schema,
            collection: self.snapshot.collection(&self.collection)?,
            rules: &self.rules,
        })
    }

    /// The row for `key` as the subscriber would read it now; `None` when it no longer exists
    /// or the subscriber can't see it.
    pub async fn read(&self, key: &Value) -> Option<Map<String, Value>> {
        let target = self.target()?;
        let mut query = self.query.clone();
        query.limit = Some(1);
        query.offset = 0;
        let sql = read::select(&target, &query, Some(&key_text(key)));
        self.first_row(sql.map_err(Into::into)).await
    }

    /// The version of the row `change` committed, as the subscriber would read it (relations as
    /// they are now); `None` when that version is not in their view. A new row missing columns
    /// (unchanged TOASTed values the WAL left out) is read by key instead.
    pub async fn read_change(&self, change: &RowChange) -> Option<Map<String, Value>> {
        let target = self.target()?;
        match change.new.as_ref().filter(|row| complete(target.collection, row)) {
            Some(row) => {
                let row = Value::Object(as_stored(target.collection, row)).to_string();
                let sql = read::select_row(&target, &self.query, row);
                self.first_row(sql.map_err(Into::into)).await
            }
            None => self.read(&change.key).await,
        }
    }

    async fn first_row(&self, sql: Result<Sql, Error>) -> Option<Map<String, Value>> {
        let rows = match sql {
            Ok(sql) => read::rows(&self.pool, &sql, &self.collection).await,
            Err(err) => Err(err),
        };
        match rows {
            Ok(rows) => rows
                .into_iter()
                .next()
                .and_then(|text| serde_json::from_str::<Map<String, Value>>(&text).ok()),
            Err(err) => {
                tracing::warn!(collection = %self.collection, error = %err, "realtime re-read failed");
                None
            }
        }
    }

    /// Whether the row `old` (as the WAL carried it) passed the subscriber's filter and read rule,
    /// judged by the database against related rows as they are now. A failed check counts as
    /// not visible: a delete the subscriber may not see is never sent.
    pub async fn was_visible(&self, old: &Map<String, Value>) -> bool {
        let Some(target) = self.target() else {
            return false;
        };
        let row = Value::Object(as_stored(target.collection, old)).to_string();
        let checked = match read::passes(&target, &self.query, row) {
            Ok(sql) => read::truth(&self.pool, &sql).await,
            Err(stale) => Err(stale.into()),
        };
        checked.unwrap_or_else(|err| {
            tracing::warn!(collection = %self.collection, error = %err, "realtime visibility check failed");
            false
        })
    }

    /// Resolves a [`Outcome::Recheck`](crate::core::realtime::shape::Outcome::Recheck).
    pub async fn recheck(&self, change: &RowChange, deleted: bool) -> Option<(EventKind, Item)> {
        let was = match &change.old {
            Some(old) => self.was_visible(old).await,
            None => false,
        };
        let now = if deleted {
            None
        } else {
            self.read_change(change).await
        };
        let kind = match (was, &now) {
            (true, Some(_)) => EventKind::Update,
            (false, Some(_)) => EventKind::Create,
            (true, None) => EventKind::Delete,
            (false, None) => return None,
        };
        Some((
            kind,
            Item {
                key: change.key.clone(),
                row: now,
            },
        ))
    }

    /// Resolves a re-read outcome into the item to send, if any.
    pub async fn resolve(
        &self,
        change: &RowChange,
        found: EventKind,
        missing: Option<EventKind>,
    ) -> Option<(EventKind, Item)> {
        let key = &change.key;
        match self.read_change(change).await {
            Some(row) => Some((
                found,
                Item {
                    key: key.clone(),
                    row: Some(row),
                },
            )),
            None => missing.map(|kind| {
                (
                    kind,
                    Item {
                        key: key.clone(),
                        row: None,
                    },
                )
            }),
        }
    }
}

/// `row` has every column of the collection's table.
fn complete(collection: &Collection, row: &Map<String, Value>) -> bool {
    collection
        .fields
        .iter()
        .filter(|field| field.schema.is_some())
        .all(|field| row.contains_key(&field.field))
}

/// A WAL row in Directus's JSON back in the form its columns store: `csv` fields were split
/// into arrays. (`hash` fields arrive masked, and stay so: read back they are masked anyway.)
fn as_stored(collection: &Collection, row: &Map<String, Value>) -> Map<String, Value> {
    row.iter()
        .map(|(name, value)| {
            let field_type = collection.field(name).map(|f| f.field_type);
            let value = match (field_type, value) {
                (Some(FieldType::Csv), Value::Array(parts)) => Value::String(
                    parts
                        .iter()
                        .map(|part| match part {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::access::testing::blog;

    fn articles() -> &'static Collection {
        blog().collection("articles").unwrap()
    }

    #[test]
    fn csv_fields_go_back_to_their_stored_text() {
        let row = json!({"id": 1, "tags": ["a", "b c"], "title": "t", "owner": null});
        let stored = as_stored(articles(), row.as_object().unwrap());
        assert_eq!(
            Value::Object(stored),
            json!({"id": 1, "tags": "a,b c", "title": "t", "owner": null})
        );
        let empty = as_stored(articles(), json!({"tags": []}).as_object().unwrap());
        assert_eq!(empty["tags"], json!(""));
    }

    #[test]
    fn a_row_is_complete_with_every_column_and_no_aliases() {
        let columns = json!({"id": 1, "title": null, "body": null, "status": "draft", "views": 0,
            "owner": null, "author": 2, "published": null, "tags": []});
        assert!(complete(articles(), columns.as_object().unwrap()));
        let mut toasted = columns.as_object().unwrap().clone();
        toasted.remove("body");
        assert!(!complete(articles(), &toasted));
    }
}
