//! Reads: `read_by_query`, `read_one`, `read_many`, `read_singleton`. Rows come back from
//! Postgres as JSON text and stay text: callers that answer over the wire write them out as
//! they are.

use serde_json::{Map, Value};

use super::{ItemsQuery, ItemsService, statement};
use crate::core::schema::Collection;
use crate::db::items::read as sql_read;
use crate::error::Error;

/// What a list read found: the rows, and the counts its `meta` asked for.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// Each row's JSON text, in the query's order.
    pub rows: Vec<String>,
    /// `meta=total_count`: every item the caller may read, ignoring filter and search.
    pub total_count: Option<i64>,
    /// `meta=filter_count`: the items the filter and search admit.
    pub filter_count: Option<i64>,
}

impl ReadResult {
    /// The rows as one JSON array text.
    pub fn array(&self) -> String {
        sql_read::array(&self.rows)
    }
}

impl ItemsService<'_> {
    /// The read `query` as a pure plan (`core::access::plan::ReadPlan`) that can be planned
    /// again at another moment: what a subscription that reads `$NOW` keeps.
    pub fn read_plan(&self, query: &ItemsQuery) -> Result<crate::core::access::plan::ReadPlan, Error> {
        Ok(self.op()?.read_plan(query, self.schema.clone()))
    }

    /// The items `query` selects, with the counts its `meta` asks for.
    pub async fn read_by_query(&mut self, query: &ItemsQuery) -> Result<ReadResult, Error> {
        let (op, tx) = self.split()?;
        let (parsed, rules) = op.authorized(query, chrono::Utc::now())?;
        let target = op.target(&rules);
        let mut conn = statement(tx, op.services).await?;
        let conn = conn.get();
        let rows = sql_read::rows(&mut *conn, &sql_read::select(&target, &parsed, None)?, op.name()).await?;
        let mut result = ReadResult {
            rows,
            ..ReadResult::default()
        };
        if parsed.meta.total_count {
            result.total_count = Some(sql_read::number(&mut *conn, &sql_read::count(&target, None)?).await?);
        }
        if parsed.meta.filter_count {
            result.filter_count =
                Some(sql_read::number(&mut *conn, &sql_read::count(&target, Some(&parsed))?).await?);
        }
        Ok(result)
    }

    /// The item with `key`; `FORBIDDEN` when it does not exist or the caller may not read it.
    pub async fn read_one(&mut self, key: &str, query: &ItemsQuery) -> Result<String, Error> {
        let (op, tx) = self.split()?;
        sql_read::check_key(op.collection, key)?;
        let (parsed, rules) = op.authorized(query, chrono::Utc::now())?;
        let target = op.target(&rules);
        let mut conn = statement(tx, op.services).await?;
        let sql = sql_read::select(&target, &parsed, Some(key))?;
        let rows = sql_read::rows(conn.get(), &sql, op.name()).await?;
        rows.into_iter().next().ok_or(Error::Forbidden)
    }

    /// The items with `keys` the caller may read, in the query's order (no limit applies).
    pub async fn read_many(&mut self, keys: &[String], query: &ItemsQuery) -> Result<Vec<String>, Error> {
        let (op, tx) = self.split()?;
        let (mut parsed, rules) = op.authorized(query, chrono::Utc::now())?;
        let by_key = keys_filter(op.collection, keys)?;
        parsed.filter = Some(match parsed.filter.take() {
            Some(filter) => crate::core::filter::Filter::And(vec![by_key, filter]),
            None => by_key,
        });
        parsed.limit = None;
        parsed.offset = 0;
        let target = op.target(&rules);
        let mut conn = statement(tx, op.services).await?;
        sql_read::rows(conn.get(), &sql_read::select(&target, &parsed, None)?, op.name()).await
    }

    /// A singleton's item, or its defaults when it has none yet (the key `null`, and each
    /// field with a default), as Directus answers.
    pub async fn read_singleton(&mut self, query: &ItemsQuery) -> Result<String, Error> {
        let (op, tx) = self.split()?;
        let (mut parsed, rules) = op.authorized(query, chrono::Utc::now())?;
        parsed.limit = Some(1);
        parsed.offset = 0;
        let target = op.target(&rules);
        let mut conn = statement(tx, op.services).await?;
        let rows = sql_read::rows(conn.get(), &sql_read::select(&target, &parsed, None)?, op.name()).await?;
        Ok(match rows.into_iter().next() {
            Some(row) => row,
            None => singleton_defaults(op.collection).to_string(),
        })
    }
}

/// `pk in (keys)` for this collection.
fn keys_filter(collection: &Collection, keys: &[String]) -> Result<crate::core::filter::Filter, Error> {
    let pk = collection.primary_key.as_deref().ok_or(Error::Forbidden)?;
    let pk_type = collection
        .field(pk)
        .map(|f| f.field_type)
        .ok_or(Error::Forbidden)?;
    crate::core::filter::keys_in(pk, pk_type, keys).map_err(|e| Error::internal(anyhow::anyhow!("{e}")))
}

/// An empty singleton reads as its defaults: the key `null`, plus fields with a default.
fn singleton_defaults(collection: &Collection) -> Value {
    let mut object = Map::new();
    for field in &collection.fields {
        let Some(column) = &field.schema else { continue };
        if column.is_primary_key {
            object.insert(field.field.clone(), Value::Null);
        } else if !column.default_value.is_null() && !column.has_auto_increment {
            object.insert(field.field.clone(), column.default_value.clone());
        }
    }
    Value::Object(object)
}
