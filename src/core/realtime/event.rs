//! [`Committed`]: one committed Postgres transaction as the feeds see it, its rows already in
//! Directus JSON and named by collection. Built by the replication actor from the pgoutput
//! decoder's [`Transaction`](crate::core::pgoutput::Transaction).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::core::pgoutput::Lsn;

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowOp {
    Insert,
    Update,
    Delete,
    /// The whole table was emptied: no key, no rows.
    Truncate,
}

/// One row change of a user collection.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub collection: Arc<str>,
    pub op: RowOp,
    /// The primary key as Directus returns it (number or string); `Null` for a truncate.
    pub key: Value,
    /// The row before: updates and deletes. Only the key columns unless the table has
    /// `REPLICA IDENTITY FULL`; `None` for inserts, truncates, and updates of a table whose old
    /// row Postgres did not send.
    pub old: Option<Map<String, Value>>,
    /// The row after: inserts and updates. Unchanged TOASTed values are filled from `old` when
    /// it has them and otherwise left out of the map.
    pub new: Option<Map<String, Value>>,
}

/// A committed transaction's changes to user collections, in the order they were made.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub xid: u32,
    /// Where the commit record starts. The slot is confirmed up to the oldest retained
    /// transaction's `commit_lsn`, so a restart replays it.
    pub commit_lsn: Lsn,
    /// Where the commit record ends: the transaction's position, and the event id clients
    /// resume from (`since`, `Last-Event-ID`).
    pub end_lsn: Lsn,
    pub commit_ts: DateTime<Utc>,
    pub changes: Vec<RowChange>,
    /// What the transaction changed about who may read what (its access messages).
    pub access: Vec<super::AccessChange>,
    /// A part of a transaction too large to hold whole; more parts follow, the last with
    /// `more: false`. A part's `end_lsn` orders it but is no resume point (see
    /// [`crate::core::pgoutput::Transaction::end_lsn`]).
    pub more: bool,
    /// A part's position within its transaction: the index of its first change (0 for a
    /// whole transaction and for a first part).
    pub first: usize,
}

impl Committed {
    /// The distinct collections this transaction touched, in first-touch order.
    pub fn collections(&self) -> Vec<Arc<str>> {
        let mut seen: Vec<Arc<str>> = Vec::new();
        for change in &self.changes {
            if !seen.contains(&change.collection) {
                seen.push(change.collection.clone());
            }
        }
        seen
    }
}
