//! Re-reading changed keys for shapes that can't be decided from the WAL row alone (relational
//! filters, expanded or O2M fields, `search`): one read per changed key with the subscriber's
//! query and permissions, as Directus does for every subscriber — but once per group.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::core::query::Query;
use crate::core::realtime::frame::Item;
use crate::core::realtime::shape::{EventKind, key_text};
use crate::core::schema::SchemaSnapshot;
use crate::db::items::read::{self, Target};
use crate::db::items::rules::ReadRules;

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
    /// The row for `key` as the subscriber would read it now; `None` when it no longer exists
    /// or the subscriber can't see it.
    pub async fn read(&self, key: &Value) -> Option<Map<String, Value>> {
        let collection = self.snapshot.collection(&self.collection)?;
        let target = Target {
            snapshot: &self.snapshot,
            schema: &self.user_schema,
            collection,
            rules: &self.rules,
        };
        let mut query = self.query.clone();
        query.limit = Some(1);
        query.offset = 0;
        match read::fetch(&self.pool, &target, &query, Some(&key_text(key))).await {
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

    /// Resolves a re-read outcome into the item to send, if any.
    pub async fn resolve(
        &self,
        key: &Value,
        found: EventKind,
        missing: Option<EventKind>,
    ) -> Option<(EventKind, Item)> {
        match self.read(key).await {
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
