//! [`Shape`]: what one subscription sees of a collection's changes, compiled once at subscribe
//! time from the subscriber's query and read permission. Subscriptions with equal shapes share
//! one group in the feed, so each change is classified and serialized once per group.
//!
//! Classification follows the rows in and out of the shape (enter/leave): an update that brings
//! a row into the filter is a `create`, one that takes it out is a `delete`, and a delete is only
//! reported when the old row was visible. Filters and item rules run in memory on the rows the
//! WAL carries; a shape that needs related rows (a relational filter, an O2M or expanded field,
//! `search`) has the database read the changed rows, as Directus does for every change, and
//! decide from the old row whether a row was in the view before ([`Outcome::Recheck`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::event::{RowChange, RowOp};
use crate::core::filter::{Filter, eval::matches};
use crate::core::query::Query;
use crate::core::query::fields::Selection;
use crate::core::schema::SchemaSnapshot;

/// Directus's subscription events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Create,
    Update,
    Delete,
}

impl EventKind {
    pub fn parse(text: &str) -> Option<EventKind> {
        match text {
            "create" => Some(EventKind::Create),
            "update" => Some(EventKind::Update),
            "delete" => Some(EventKind::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Create => "create",
            EventKind::Update => "update",
            EventKind::Delete => "delete",
        }
    }
}

/// How a shape's rows are produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    /// Plain columns under their output names, taken from the WAL row.
    Columns(Vec<(String, String)>),
    /// The changed keys are read again with the subscriber's query and permissions.
    Reread,
}

/// The read permission's part that applies to rows of the subscribed collection.
#[derive(Debug, Clone, Default)]
pub struct RowRules {
    /// Only rows matching this are visible.
    pub rows: Option<Filter>,
    /// Fields visible only in rows matching their filter.
    pub conditional: BTreeMap<String, Filter>,
}

/// A compiled subscription.
#[derive(Debug, Clone)]
pub struct Shape {
    pub collection: Arc<str>,
    pub event: Option<EventKind>,
    /// The `item` a subscription is limited to, as key text.
    pub item: Option<String>,
    /// The query's filter and the permission's row rule, both of which a row must pass.
    filters: Vec<Filter>,
    /// Whether every filter can be decided from the row alone.
    filters_local: bool,
    pub projection: Projection,
    conditional: BTreeMap<String, Filter>,
    snapshot: Arc<SchemaSnapshot>,
}

/// What a change means to one shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Skip,
    /// Send this event: the projected row for create/update, `None` for a delete.
    Emit(EventKind, Option<Map<String, Value>>),
    /// Read the key again; if the read finds it, send it as `found`; if not, send `missing`
    /// (a delete when the row was known to be visible before, else nothing).
    Reread {
        found: EventKind,
        missing: Option<EventKind>,
    },
    /// Whether the row was visible before the change depends on other rows (a relational
    /// filter or rule): the database decides it from the old row (`change.old`, complete under
    /// `REPLICA IDENTITY FULL`). A deleted row that was visible is a `delete`; otherwise the key
    /// is read again: visible before and now is an `update`, only now a `create`, only before
    /// a `delete` (it left the view).
    Recheck {
        deleted: bool,
    },
}

impl Shape {
    /// Compiles a subscription. `query` is the subscriber's authorized query (fields already
    /// narrowed to what they may read); `rules` is `None` for an administrator.
    pub fn compile(
        snapshot: Arc<SchemaSnapshot>,
        collection: &str,
        event: Option<EventKind>,
        item: Option<String>,
        query: &Query,
        rules: Option<RowRules>,
    ) -> Shape {
        let rules = rules.unwrap_or_default();
        let filters: Vec<Filter> = query.filter.iter().chain(rules.rows.iter()).cloned().collect();
        let filters_local = filters.iter().all(is_local) && rules.conditional.values().all(is_local);
        let mut columns = Vec::new();
        let mut projectable = query.search.is_none();
        for selection in &query.fields {
            match selection {
                Selection::Column { field, .. } => columns.push((field.clone(), field.clone())),
                Selection::Alias { key, target } => match &**target {
                    Selection::Column { field, .. } => columns.push((key.clone(), field.clone())),
                    _ => projectable = false,
                },
                _ => projectable = false,
            }
        }
        let projection = if projectable && filters_local {
            Projection::Columns(columns)
        } else {
            Projection::Reread
        };
        Shape {
            collection: collection.into(),
            event,
            item,
            filters,
            filters_local,
            projection,
            conditional: rules.conditional,
            snapshot,
        }
    }

    /// The identity of this shape: equal keys classify every change identically. A re-reading
    /// shape also depends on who reads, which the caller adds.
    pub fn key(&self) -> String {
        let mut key = String::new();
        let _ = write!(
            key,
            "{}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.collection, self.event, self.item, self.filters, self.projection, self.conditional
        );
        key
    }

    /// The key of the group a subscription with this shape and `query` joins: the shape's
    /// key, and for a re-reading shape the parts of the query the group's reads use (`fields`,
    /// with the `deep` options nested in them, and `search`), since every member gets the
    /// group's read. Who reads (their rules) is the caller's to add.
    pub fn group_key(&self, query: &Query) -> String {
        let mut key = self.key();
        if self.rereads() {
            let _ = write!(key, "|{:?}|{:?}", query.fields, query.search);
        }
        key
    }

    pub fn rereads(&self) -> bool {
        self.projection == Projection::Reread
    }

    /// Whether `row` passes every filter; `None` when that can't be told from the row (a
    /// relational filter, or an old row holding only its key).
    fn admits(&self, row: &Map<String, Value>) -> Option<bool> {
        if !self.filters_local {
            return None;
        }
        for filter in &self.filters {
            if !has_fields(filter, row) {
                return None;
            }
            if !matches(filter, row, &self.snapshot, &self.collection) {
                return Some(false);
            }
        }
        Some(true)
    }

    /// Whether the database can tell if `old` passed the filters: they reach through relations
    /// (otherwise memory decides) and the old row holds every field they start from.
    fn decidable_in_db(&self, old: Option<&Map<String, Value>>) -> bool {
        !self.filters_local
            && old.is_some_and(|row| self.filters.iter().all(|filter| has_fields(filter, row)))
    }

    /// What `change` means to this shape.
    pub fn classify(&self, change: &RowChange) -> Outcome {
        if let Some(item) = &self.item
            && key_text(&change.key) != *item
        {
            return Outcome::Skip;
        }
        let outcome = match change.op {
            RowOp::Truncate => return Outcome::Skip,
            RowOp::Insert => match change.new.as_ref().map(|row| self.admits(row)) {
                Some(Some(true)) => self.emit(EventKind::Create, change.new.as_ref()),
                Some(Some(false)) => Outcome::Skip,
                _ => Outcome::Reread {
                    found: EventKind::Create,
                    missing: None,
                },
            },
            RowOp::Update => {
                let before = change.old.as_ref().and_then(|row| self.admits(row));
                let after = change.new.as_ref().and_then(|row| self.admits(row));
                match (before, after) {
                    (Some(true), Some(true)) | (None, Some(true)) => {
                        self.emit(EventKind::Update, change.new.as_ref())
                    }
                    (Some(false), Some(true)) => self.emit(EventKind::Create, change.new.as_ref()),
                    (Some(true), Some(false)) => Outcome::Emit(EventKind::Delete, None),
                    (_, Some(false)) => Outcome::Skip,
                    (Some(true), None) => Outcome::Reread {
                        found: EventKind::Update,
                        missing: Some(EventKind::Delete),
                    },
                    (Some(false), None) => Outcome::Reread {
                        found: EventKind::Create,
                        missing: None,
                    },
                    (None, None) if self.decidable_in_db(change.old.as_ref()) => {
                        Outcome::Recheck { deleted: false }
                    }
                    (None, None) => Outcome::Reread {
                        found: EventKind::Update,
                        missing: None,
                    },
                }
            }
            // A delete is reported only when the old row is known to have been visible.
            RowOp::Delete => match change.old.as_ref().map(|row| self.admits(row)) {
                Some(Some(true)) => Outcome::Emit(EventKind::Delete, None),
                Some(None) if self.decidable_in_db(change.old.as_ref()) => Outcome::Recheck { deleted: true },
                _ => Outcome::Skip,
            },
        };
        self.only_wanted(outcome)
    }

    fn emit(&self, kind: EventKind, row: Option<&Map<String, Value>>) -> Outcome {
        match (&self.projection, row) {
            (Projection::Columns(columns), Some(row)) => {
                Outcome::Emit(kind, Some(self.project(columns, row)))
            }
            _ => Outcome::Reread {
                found: kind,
                missing: None,
            },
        }
    }

    fn only_wanted(&self, outcome: Outcome) -> Outcome {
        let Some(wanted) = self.event else {
            return outcome;
        };
        match outcome {
            Outcome::Emit(kind, _) if kind != wanted => Outcome::Skip,
            Outcome::Recheck { deleted: true } if wanted != EventKind::Delete => Outcome::Skip,
            Outcome::Reread { found, missing } => {
                let found_ok = found == wanted;
                let missing = missing.filter(|m| *m == wanted);
                match (found_ok, missing) {
                    (false, None) => Outcome::Skip,
                    // Only the key's absence matters; the read still decides.
                    (false, Some(_)) | (true, _) => Outcome::Reread { found, missing },
                }
            }
            other => other,
        }
    }

    fn project(&self, columns: &[(String, String)], row: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::with_capacity(columns.len());
        for (key, column) in columns {
            let visible = match self.conditional.get(column) {
                Some(condition) => matches(condition, row, &self.snapshot, &self.collection),
                None => true,
            };
            let value = if visible {
                row.get(column).cloned().unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            out.insert(key.clone(), value);
        }
        out
    }
}

/// A key as text, the form `item` and URLs use.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// No condition reaches through a relation.
fn is_local(filter: &Filter) -> bool {
    match filter {
        Filter::And(children) | Filter::Or(children) => children.iter().all(is_local),
        Filter::Condition(_) => true,
        Filter::Relation(_) => false,
    }
}

/// The row carries every field the filter reads (a key-only old row does not).
fn has_fields(filter: &Filter, row: &Map<String, Value>) -> bool {
    match filter {
        Filter::And(children) | Filter::Or(children) => children.iter().all(|child| has_fields(child, row)),
        Filter::Condition(condition) => row.contains_key(&condition.field),
        Filter::Relation(relation) => row.contains_key(&relation.field),
    }
}

#[cfg(test)]
mod tests;
