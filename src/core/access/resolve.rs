//! Permission rows of one collection and action → a [`Resolved`]: which rows, which fields,
//! which fields only in some rows, validation rules and presets.
//!
//! Directus v11 (`permissions/modules/process-ast/lib/inject-cases.ts`, `utils/dedupe-access.ts`,
//! `get-cases.ts`): rows with the same item filter are merged (their field lists unioned); a
//! row's filter is a "case"; an item is readable when any case matches; a field granted by only
//! some cases is read as `CASE WHEN <cases granting it> THEN field END`, i.e. `null` in rows
//! only other cases admit. A row with no filter (`null` or `{}`) admits every item, and the
//! fields it grants need no case. This module computes those answers; `db` turns them into SQL
//! and realtime evaluates them in memory ([`Resolved::admits`], [`Resolved::mask`]).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{AccessError, Action, PermissionRow};
use crate::core::filter::{self, Filter, Limits, Variables, eval};
use crate::core::schema::SchemaSnapshot;

/// Bounds for stored permission rules. Admins write them, not requests, so they are looser than
/// a query's; `$CURRENT_ROLES` and `$CURRENT_POLICIES` also grow `_in` lists at run time.
const RULE_LIMITS: Limits = Limits {
    max_nodes: 10_000,
    max_depth: 32,
    max_list: 10_000,
    max_pattern: 4096,
};

/// A set of field names, or every field (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSet {
    All,
    Only(BTreeSet<String>),
}

impl FieldSet {
    /// Directus's CSV list as stored: `*` anywhere means every field; `None` means none.
    fn from_row(fields: Option<&[String]>) -> FieldSet {
        let names = fields.unwrap_or_default().iter().map(|f| f.trim());
        let mut set = BTreeSet::new();
        for name in names {
            match name {
                "*" => return FieldSet::All,
                "" => {}
                name => {
                    set.insert(name.to_string());
                }
            }
        }
        FieldSet::Only(set)
    }

    /// Whether `field` is in the set.
    pub fn contains(&self, field: &str) -> bool {
        match self {
            FieldSet::All => true,
            FieldSet::Only(set) => set.contains(field),
        }
    }

    fn union(&mut self, other: &FieldSet) {
        match (&mut *self, other) {
            (FieldSet::All, _) => {}
            (this, FieldSet::All) => *this = FieldSet::All,
            (FieldSet::Only(mine), FieldSet::Only(theirs)) => mine.extend(theirs.iter().cloned()),
        }
    }
}

/// One case: the fields granted on the items `filter` admits (`None`: every item).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub filter: Option<Filter>,
    pub fields: FieldSet,
}

/// Where a field's value may be read.
#[derive(Debug, Clone, PartialEq)]
pub enum Visibility {
    /// In every item the caller may read: select the column as is.
    Always,
    /// Only in items matching the filter; elsewhere it reads as `null`
    /// (`CASE WHEN <filter> THEN field END`).
    When(Box<Filter>),
    /// Not at all.
    Never,
}

/// What one caller may do with one action on one collection. Built by
/// [`super::Access::resolve`].
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    collection: String,
    action: Action,
    /// Cases, one per distinct item filter, in the order the rows came.
    rules: Vec<Rule>,
    /// The union of every rule's fields.
    fields: FieldSet,
    /// The OR of the rules' filters; `None` when some rule admits every item.
    row_filter: Option<Filter>,
    /// Validation filters of the rows; a payload must satisfy all of them.
    validation: Vec<Filter>,
    /// Presets of the rows merged in order (later rows win), variables substituted.
    presets: Map<String, Value>,
}

impl Resolved {
    /// Everything: what an admin gets.
    pub(super) fn unrestricted(collection: &str, action: Action) -> Resolved {
        Resolved {
            collection: collection.to_string(),
            action,
            rules: vec![Rule {
                filter: None,
                fields: FieldSet::All,
            }],
            fields: FieldSet::All,
            row_filter: None,
            validation: Vec::new(),
            presets: Map::new(),
        }
    }

    /// Merges the rows (all of `collection` and `action`, at least one), parsing their filters
    /// against `snapshot` with `vars`.
    pub(super) fn from_rows(
        rows: &[&PermissionRow],
        snapshot: &SchemaSnapshot,
        collection: &str,
        action: Action,
        vars: &Variables,
    ) -> Result<Resolved, AccessError> {
        let invalid = |reason: String| AccessError::InvalidRule {
            collection: collection.to_string(),
            action,
            reason,
        };
        let parse = |value: &Option<Value>| -> Result<Option<Filter>, AccessError> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(map)) if map.is_empty() => Ok(None),
                Some(value @ Value::Object(_)) => {
                    filter::parse(value, snapshot, collection, vars.clone(), RULE_LIMITS)
                        .map(Some)
                        .map_err(|err| invalid(err.to_string()))
                }
                Some(_) => Err(invalid("a rule must be a filter object".into())),
            }
        };
        let mut rules: Vec<Rule> = Vec::new();
        let mut fields = FieldSet::Only(BTreeSet::new());
        let mut validation: Vec<Filter> = Vec::new();
        let mut presets = Map::new();
        for row in rows {
            let filter = parse(&row.permissions)?;
            let granted = FieldSet::from_row(row.fields.as_deref());
            fields.union(&granted);
            // Directus's `dedupeAccess`: one case per distinct rule.
            match rules.iter_mut().find(|r| r.filter == filter) {
                Some(rule) => rule.fields.union(&granted),
                None => rules.push(Rule {
                    filter,
                    fields: granted,
                }),
            }
            if let Some(rule) = parse(&row.validation)?
                && !validation.contains(&rule)
            {
                validation.push(rule);
            }
            // Directus's `assign({}, ...presets)`: a non-object preset adds nothing.
            if let Some(Value::Object(map)) = &row.presets {
                for (key, value) in map {
                    presets.insert(key.clone(), preset_value(value, vars));
                }
            }
        }
        let row_filter = if rules.iter().any(|r| r.filter.is_none()) {
            None
        } else {
            Some(or(rules.iter().filter_map(|r| r.filter.clone()).collect()))
        };
        Ok(Resolved {
            collection: collection.to_string(),
            action,
            rules,
            fields,
            row_filter,
            validation,
            presets,
        })
    }

    /// The collection these rules are for.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The action these rules are for.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The cases, one per distinct item filter.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every field some rule grants.
    pub fn fields(&self) -> &FieldSet {
        &self.fields
    }

    /// Whether some rule grants `field`: the checker for `fields`, filters, sorts, aggregates
    /// and payload keys, and the set `search` may look in.
    pub fn can(&self, field: &str) -> bool {
        self.fields.contains(field)
    }

    /// Which items the caller may act on: AND it into the query's `WHERE` (`None`: every item).
    pub fn row_filter(&self) -> Option<&Filter> {
        self.row_filter.as_ref()
    }

    /// The row filter of a read that selects only `requested` fields, as Directus builds it
    /// (`getCases` with the requested keys): cases granting none of them (and not `*`) are left
    /// out, so items only such cases admit are not returned at all rather than returned with
    /// every field `null`. With no requested fields it is [`Resolved::row_filter`].
    pub fn row_filter_for(&self, requested: &[&str]) -> Option<Filter> {
        if requested.is_empty() {
            return self.row_filter.clone();
        }
        let relevant: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| match &r.fields {
                FieldSet::All => true,
                FieldSet::Only(set) => requested.iter().any(|f| set.contains(*f)),
            })
            .collect();
        if relevant.iter().any(|r| r.filter.is_none()) {
            return None;
        }
        Some(or(relevant.iter().filter_map(|r| r.filter.clone()).collect()))
    }

    /// Where `field` may be read. `Always` when a rule without a filter grants it or every
    /// rule does (then the row filter already says it), so a single policy never needs a case.
    pub fn field_condition(&self, field: &str) -> Visibility {
        if !self.can(field) {
            return Visibility::Never;
        }
        let granting: Vec<&Rule> = self.rules.iter().filter(|r| r.fields.contains(field)).collect();
        if granting.len() == self.rules.len() || granting.iter().any(|r| r.filter.is_none()) {
            return Visibility::Always;
        }
        Visibility::When(Box::new(or(granting
            .iter()
            .filter_map(|r| r.filter.clone())
            .collect())))
    }

    /// What every target item of an update must match for `fields` to be written to it: the
    /// row filter and each field's case (Directus's `validateItemAccess` with `fields`: every
    /// key must come back readable under the update rules). `None`: any item. A field no rule
    /// grants is refused.
    pub fn write_condition<'f>(
        &self,
        fields: impl IntoIterator<Item = &'f str>,
    ) -> Result<Option<Filter>, AccessError> {
        let mut parts: Vec<Filter> = self.row_filter.iter().cloned().collect();
        for field in fields {
            match self.field_condition(field) {
                Visibility::Never => {
                    return Err(AccessError::Field {
                        collection: self.collection.clone(),
                        field: field.to_string(),
                        path: None,
                    });
                }
                Visibility::When(filter) if !parts.contains(filter.as_ref()) => parts.push(*filter),
                Visibility::When(_) | Visibility::Always => {}
            }
        }
        Ok(match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Filter::And(parts)),
        })
    }

    /// Validation filters; [`Resolved::prepare_payload`] applies them.
    pub fn validation(&self) -> &[Filter] {
        &self.validation
    }

    /// Merged presets, dynamic variables substituted.
    pub fn presets(&self) -> &Map<String, Value> {
        &self.presets
    }

    /// Whether the caller may act on this item (a row as the API serves it, relations the
    /// rules follow expanded; an unexpanded relation counts as no match).
    pub fn admits(&self, row: &Map<String, Value>, snapshot: &SchemaSnapshot) -> bool {
        match &self.row_filter {
            None => true,
            Some(filter) => eval::matches(filter, row, snapshot, &self.collection),
        }
    }

    /// Hides what the caller may not see in an item it may read ([`Resolved::admits`]): keys no
    /// rule grants are removed, keys granted only under cases this item misses become `null`.
    /// Cases are judged on the item as given, before anything is hidden. Nested related
    /// objects are left to the caller, with the related collection's rules.
    pub fn mask(&self, row: &mut Map<String, Value>, snapshot: &SchemaSnapshot) {
        let mut hidden = Vec::new();
        let mut nulled = Vec::new();
        for key in row.keys() {
            match self.field_condition(key) {
                Visibility::Always => {}
                Visibility::Never => hidden.push(key.clone()),
                Visibility::When(filter) => {
                    if !eval::matches(&filter, row, snapshot, &self.collection) {
                        nulled.push(key.clone());
                    }
                }
            }
        }
        for key in hidden {
            row.remove(&key);
        }
        for key in nulled {
            row.insert(key, Value::Null);
        }
    }
}

/// One filter, or the OR of several.
fn or(mut filters: Vec<Filter>) -> Filter {
    if filters.len() == 1 {
        filters.remove(0)
    } else {
        Filter::Or(filters)
    }
}

/// A preset value with Directus's `parsePreset` applied to every string in it: `"true"`,
/// `"false"`, `"null"` become JSON values, `$NOW(...)` an ISO timestamp, `$CURRENT_*` their
/// values.
fn preset_value(value: &Value, vars: &Variables) -> Value {
    match value {
        Value::String(s) => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" | "NULL" => Value::Null,
            text => {
                if let Ok(Some(moment)) = filter::dynamic_now(text, vars.now) {
                    return Value::String(moment.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
                }
                vars.current(text).unwrap_or_else(|| value.clone())
            }
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| preset_value(v, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), preset_value(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
