//! Reading changed rows for shapes that can't be decided from the WAL row alone (relational
//! filters, expanded or O2M fields, `search`): one read per change with the subscriber's query
//! and permissions, as Directus does for every subscriber — but once per group.
//!
//! The read is of the row version the WAL carries (`jsonb_populate_record` in place of the
//! table), not of the key: by the time a group gets to a change, later transactions may have
//! changed or deleted the row, and reading by key would report their state under this
//! transaction's event (or nothing). Related rows are read as they are now.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::core::field_type::FieldType;
use crate::core::query::Query;
use crate::core::realtime::event::RowChange;
use crate::core::realtime::frame::Item;
use crate::core::realtime::shape::{EventKind, Outcome, Shape, key_text};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::db::items::compile::{Sql, StaleSchema};
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

    /// What one transaction's `changes` send to the group of `shape`, in order. The database
    /// is asked at most twice whatever the number of rows, plus once per row whose new version
    /// the WAL did not carry whole: which old rows were in the view, and the committed versions
    /// as the subscriber reads them.
    pub async fn items(&self, shape: &Shape, changes: &[RowChange]) -> Vec<(EventKind, Item)> {
        let Some(target) = self.target() else {
            return Vec::new();
        };
        let outcomes: Vec<Outcome> = changes.iter().map(|change| shape.classify(change)).collect();
        let mut versions = Vec::new();
        let mut by_key = Vec::new();
        let mut olds = Vec::new();
        for (at, (change, outcome)) in changes.iter().zip(&outcomes).enumerate() {
            if matches!(
                outcome,
                Outcome::Reread { .. } | Outcome::Recheck { deleted: false }
            ) {
                match change.new.as_ref().filter(|row| complete(target.collection, row)) {
                    Some(row) => versions.push((at, as_stored(target.collection, row))),
                    None => by_key.push(at),
                }
            }
            if let (Outcome::Recheck { .. }, Some(old)) = (outcome, &change.old) {
                olds.push((at, as_stored(target.collection, old)));
            }
        }
        let was = self.visible(&target, olds).await;
        let positions: Vec<usize> = versions.iter().map(|(at, _)| *at).collect();
        let mut now = match self.read_versions(&target, versions).await {
            Some(now) => now,
            // A column Postgres won't take back from its JSON (an exotic type): by key, then.
            None => {
                by_key.extend(positions);
                HashMap::new()
            }
        };
        for at in by_key {
            if let Some(row) = self.read(&target, &changes[at].key).await {
                now.insert(at, row);
            }
        }

        let mut items = Vec::new();
        for (at, (change, outcome)) in changes.iter().zip(outcomes).enumerate() {
            let (kind, row) = match outcome {
                Outcome::Skip => continue,
                Outcome::Emit(kind, row) => (kind, row),
                Outcome::Reread { found, missing } => match now.remove(&at) {
                    Some(row) => (found, Some(row)),
                    None => match missing {
                        Some(kind) => (kind, None),
                        None => continue,
                    },
                },
                Outcome::Recheck { deleted } => {
                    let row = if deleted { None } else { now.remove(&at) };
                    match (was.contains(&at), row) {
                        (true, Some(row)) => (EventKind::Update, Some(row)),
                        (false, Some(row)) => (EventKind::Create, Some(row)),
                        (true, None) => (EventKind::Delete, None),
                        (false, None) => continue,
                    }
                }
            };
            if shape.event.is_none_or(|wanted| wanted == kind) {
                let key = change.key.clone();
                items.push((kind, Item { key, row }));
            }
        }
        items
    }

    /// The row for `key` as the subscriber would read it now; `None` when it no longer exists
    /// or the subscriber can't see it.
    async fn read(&self, target: &Target<'_>, key: &Value) -> Option<Map<String, Value>> {
        let mut query = self.query.clone();
        query.limit = Some(1);
        query.offset = 0;
        let rows = read::fetch(&self.pool, target, &query, Some(&key_text(key))).await;
        self.failed(rows, "re-read")?
            .into_iter()
            .next()
            .and_then(|text| serde_json::from_str(&text).ok())
    }

    /// The committed versions `rows` (by position in the transaction) as the subscriber reads
    /// them, relations as they are now; those not in their view are left out.
    async fn read_versions(
        &self,
        target: &Target<'_>,
        rows: Vec<(usize, Map<String, Value>)>,
    ) -> Option<HashMap<usize, Map<String, Value>>> {
        let rows = self
            .by_position(target, rows, read::select_versions, "re-read")
            .await?;
        Some(
            rows.into_iter()
                .filter_map(|(at, text)| Some((at, serde_json::from_str(&text?).ok()?)))
                .collect(),
        )
    }

    /// Which of the old rows `rows` (by position in the transaction) passed the subscriber's
    /// filter and read rule, judged against related rows as they are now. A failed check
    /// counts as not visible: a delete the subscriber may not see is never sent.
    async fn visible(&self, target: &Target<'_>, rows: Vec<(usize, Map<String, Value>)>) -> HashSet<usize> {
        self.by_position(target, rows, read::passing_versions, "visibility check")
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(at, _)| at)
            .collect()
    }

    /// Runs the statement `compile` makes of `rows` (one JSON array) and puts the rows it
    /// returns back at their places in the transaction; `None` if it failed.
    async fn by_position(
        &self,
        target: &Target<'_>,
        rows: Vec<(usize, Map<String, Value>)>,
        compile: fn(&Target<'_>, &Query, String) -> Result<Sql, StaleSchema>,
        what: &str,
    ) -> Option<Vec<(usize, Option<String>)>> {
        if rows.is_empty() {
            return Some(Vec::new());
        }
        let (at, rows): (Vec<usize>, Vec<Value>) =
            rows.into_iter().map(|(at, row)| (at, Value::Object(row))).unzip();
        let found = match compile(target, &self.query, Value::Array(rows).to_string()) {
            Ok(sql) => read::numbered_rows(&self.pool, &sql).await,
            Err(stale) => Err(stale.into()),
        };
        let found = self.failed(found, what)?;
        Some(
            found
                .into_iter()
                .filter_map(|(n, text)| Some((*at.get(usize::try_from(n).ok()?.checked_sub(1)?)?, text)))
                .collect(),
        )
    }

    fn failed<T>(&self, outcome: Result<T, Error>, what: &str) -> Option<T> {
        outcome
            .map_err(|err| {
                tracing::warn!(collection = %self.collection, error = %err, "realtime {what} failed");
            })
            .ok()
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
