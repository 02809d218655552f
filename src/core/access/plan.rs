//! Permission planning, pure: where "may this caller do this" meets one concrete operation.
//! Reads get their query checked and narrowed and a [`ReadRules`] for the SQL compiler; writes
//! get their payloads checked, preset and validated, and the condition every item they touch
//! must match. The items service calls these for every path (REST, socket, hooks, flows); what
//! needs the database (do the touched items match?) stays in the service.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::rules::{CollectionRules, ReadRules};
use super::{Access, AccessError, Action, FieldSet, Resolved, Visibility, check_query, narrow_wildcards};
use crate::core::filter::{Filter, RelationKind, Variables};
use crate::core::query::Query;
use crate::core::query::fields::Selection;
use crate::core::schema::SchemaSnapshot;

/// The `fields` parameter as written (`["*"]` when absent), which `narrow_wildcards` needs to
/// tell fields named explicitly from fields a `*` brought in.
pub fn requested_fields(params: &Map<String, Value>) -> Vec<String> {
    match params.get("fields") {
        Some(Value::String(text)) => text.split(',').map(|f| f.trim().to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(|f| f.split(','))
            .map(|f| f.trim().to_string())
            .collect(),
        _ => vec!["*".to_string()],
    }
}

/// Authorizes a read of `collection` with `query` (narrowing `*` to readable fields) and
/// returns the rules the SQL applies at every level the query reaches.
pub fn authorize_read(
    access: &Access,
    snapshot: &SchemaSnapshot,
    collection: &str,
    query: &mut Query,
    requested: &[String],
    vars: &Variables,
) -> Result<ReadRules, AccessError> {
    if access.admin {
        return Ok(ReadRules::unrestricted());
    }
    // Resolving parses each permission rule against the schema; the root collection alone is
    // asked for four times below, so each collection is resolved once per request.
    let resolve = access.reader(snapshot, vars);
    let resolved: RefCell<HashMap<String, Option<Resolved>>> = RefCell::default();
    let reader = |name: &str| -> Result<Option<Resolved>, AccessError> {
        if let Some(found) = resolved.borrow().get(name) {
            return Ok(found.clone());
        }
        let found = resolve(name)?;
        resolved.borrow_mut().insert(name.to_string(), found.clone());
        Ok(found)
    };
    if reader(collection)?.is_none() {
        return Err(AccessError::Collection {
            collection: collection.to_string(),
        });
    }
    narrow_wildcards(&mut query.fields, requested, collection, &reader)?;
    check_query(query, snapshot, collection, &reader)?;
    let mut collections = Vec::new();
    touched(&query.fields, collection, snapshot, &mut collections);
    if let Some(filter) = &query.filter {
        filtered(filter, collection, snapshot, &mut collections);
    }
    sorted(&query.sort, &mut collections);
    let mut rules = ReadRules::default();
    for name in collections {
        if rules.collections.contains_key(&name) {
            continue;
        }
        let resolved = reader(&name)?.ok_or(AccessError::Forbidden)?;
        let mut level = collection_rules(&resolved, snapshot);
        if name == collection {
            // Directus leaves out items that only cases granting none of the selected fields
            // admit, rather than returning them with every field null.
            let selected: Vec<&str> = query.fields.iter().filter_map(column_of).collect();
            level.rows = resolved.row_filter_for(&selected);
        }
        rules.collections.insert(name, level);
    }
    Ok(rules)
}

/// The rules the compiler needs from one resolved read permission.
fn collection_rules(resolved: &Resolved, snapshot: &SchemaSnapshot) -> CollectionRules {
    let collection = resolved.collection();
    let mut conditional = std::collections::HashMap::new();
    if let Some(found) = snapshot.collection(collection) {
        for field in &found.fields {
            if let Visibility::When(filter) = resolved.field_condition(&field.field) {
                conditional.insert(field.field.clone(), *filter);
            }
        }
    }
    CollectionRules {
        rows: resolved.row_filter().cloned(),
        conditional,
        readable: match resolved.fields() {
            FieldSet::All => None,
            FieldSet::Only(set) => Some(set.iter().cloned().collect::<HashSet<_>>()),
        },
    }
}

fn column_of(selection: &Selection) -> Option<&str> {
    match selection {
        Selection::Column { field, .. }
        | Selection::Json { field, .. }
        | Selection::Function { field, .. } => Some(field),
        Selection::Alias { target, .. } => column_of(target),
        Selection::ManyToOne { field, .. } | Selection::OneToMany { field, .. } => Some(field),
    }
}

/// Every collection a filter's relational conditions and `count()` conditions look into.
fn filtered(filter: &Filter, collection: &str, snapshot: &SchemaSnapshot, out: &mut Vec<String>) {
    match filter {
        Filter::And(children) | Filter::Or(children) => children
            .iter()
            .for_each(|c| filtered(c, collection, snapshot, out)),
        Filter::Condition(condition) => {
            if condition.function == Some(crate::core::filter::Function::Count)
                && let Some(relation) = snapshot.one_to_many(collection, &condition.field)
            {
                out.push(relation.collection.clone());
            }
        }
        Filter::Relation(relation) => {
            let related = match &relation.kind {
                RelationKind::ManyToOne { related, .. } | RelationKind::OneToMany { related, .. } => related,
            };
            out.push(related.clone());
            filtered(&relation.filter, related, snapshot, out);
        }
    }
}

/// Every collection a relational sort reads rows of (each M2O hop's target).
fn sorted(sort: &[crate::core::query::Sort], out: &mut Vec<String>) {
    for key in sort {
        out.extend(key.through.iter().map(|hop| hop.related.clone()));
    }
}

/// Every collection the selections read rows of, starting with `collection`: nested
/// relations, the relations their `deep` filters and sorts look into, and O2M rows `count()`
/// counts.
fn touched(selections: &[Selection], collection: &str, snapshot: &SchemaSnapshot, out: &mut Vec<String>) {
    out.push(collection.to_string());
    for selection in selections {
        match selection {
            Selection::ManyToOne {
                related,
                children,
                nested,
                ..
            } => {
                touched(children, related, snapshot, out);
                if let Some(filter) = &nested.filter {
                    filtered(filter, related, snapshot, out);
                }
                sorted(&nested.sort, out);
            }
            Selection::OneToMany {
                related,
                children,
                nested,
                ..
            } => {
                match children {
                    Some(children) => touched(children, related, snapshot, out),
                    None => out.push(related.clone()),
                }
                if let Some(filter) = &nested.filter {
                    filtered(filter, related, snapshot, out);
                }
                sorted(&nested.sort, out);
            }
            Selection::Function {
                field,
                function: crate::core::filter::Function::Count,
                ..
            } => {
                if let Some(relation) = snapshot.one_to_many(collection, field) {
                    out.push(relation.collection.clone());
                }
            }
            Selection::Alias { target, .. } => {
                touched(std::slice::from_ref(target), collection, snapshot, out)
            }
            _ => {}
        }
    }
}

/// The caller's rules for a write `action` on `collection`; `FORBIDDEN` without any.
/// `None` for admins: nothing to check.
pub fn write_rules(
    access: &Access,
    snapshot: &SchemaSnapshot,
    collection: &str,
    action: Action,
    vars: &Variables,
) -> Result<Option<Resolved>, AccessError> {
    if access.admin {
        return Ok(None);
    }
    access
        .resolve(snapshot, collection, action, vars)?
        .map(Some)
        .ok_or_else(|| AccessError::Collection {
            collection: collection.to_string(),
        })
}

/// Checks one payload (and, through relations, the items nested in it) against the caller's
/// create or update rules; returns it with presets applied where it creates.
pub fn authorize_payload(
    access: &Access,
    snapshot: &SchemaSnapshot,
    collection: &str,
    action: Action,
    payload: &Value,
    vars: &Variables,
    depth: usize,
) -> Result<Value, AccessError> {
    if access.admin {
        return Ok(payload.clone());
    }
    let Value::Object(object) = payload else {
        return Ok(payload.clone());
    };
    // Bounded like reads: nesting deeper than any relation chain is refused, not followed.
    if depth > 10 {
        return Err(AccessError::Forbidden);
    }
    let Some(rules) = write_rules(access, snapshot, collection, action, vars)? else {
        return Ok(payload.clone());
    };
    let mut checked = rules.prepare_payload(object, snapshot)?;
    for (field, value) in checked.iter_mut() {
        let Some(related) = related_collection(snapshot, collection, field) else {
            continue;
        };
        let nested = |item: &Value| -> Result<Value, AccessError> {
            let pk = snapshot.collection(&related).and_then(|c| c.primary_key.clone());
            let has_key = pk.is_some_and(|pk| item.get(&pk).is_some_and(|k| !k.is_null()));
            let action = if has_key { Action::Update } else { Action::Create };
            authorize_payload(access, snapshot, &related, action, item, vars, depth + 1)
        };
        *value = match value {
            Value::Object(_) => nested(value)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| {
                        if item.is_object() {
                            nested(item)
                        } else {
                            Ok(item.clone())
                        }
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => continue,
        };
    }
    Ok(Value::Object(checked))
}

/// The collection a relational field points at (M2O target, or O2M/M2M related rows).
fn related_collection(snapshot: &SchemaSnapshot, collection: &str, field: &str) -> Option<String> {
    if let Some(relation) = snapshot.relation(collection, field) {
        return relation.related_collection.clone();
    }
    snapshot
        .one_to_many(collection, field)
        .map(|relation| relation.collection.clone())
}

/// What every item a write touches must match (the item rule, and each written field's case);
/// `None`: no restriction.
pub fn write_condition(rules: Option<&Resolved>, payload: &Value) -> Result<Option<Filter>, AccessError> {
    let Some(rules) = rules else {
        return Ok(None);
    };
    let fields: Vec<&str> = payload
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    rules.write_condition(fields)
}

/// Why a read cannot be planned: its query does not parse, or the caller may not run it.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanError {
    Query(crate::core::query::QueryError),
    Access(AccessError),
}

impl From<crate::core::query::QueryError> for PlanError {
    fn from(err: crate::core::query::QueryError) -> Self {
        PlanError::Query(err)
    }
}

impl From<AccessError> for PlanError {
    fn from(err: AccessError) -> Self {
        PlanError::Access(err)
    }
}

/// Parses `params` against `snapshot` for `collection` with `vars`, and authorizes it for
/// `access` (see [`authorize_read`]): the query narrowed to what may be read, and its rules.
pub fn plan_read(
    access: &Access,
    snapshot: &SchemaSnapshot,
    collection: &str,
    params: &serde_json::Map<String, Value>,
    vars: &Variables,
    settings: crate::core::query::Settings,
) -> Result<(Query, ReadRules), PlanError> {
    let mut query = crate::core::query::parse(params, snapshot, collection, vars.clone(), settings)?;
    let rules = authorize_read(
        access,
        snapshot,
        collection,
        &mut query,
        &requested_fields(params),
        vars,
    )?;
    Ok((query, rules))
}

/// A read planned for one caller, kept so it can be planned again at another moment: what a
/// realtime subscription whose query or rules read `$NOW` is re-planned from for every
/// transaction. Holds values only; planning is [`plan_read`] with `$NOW` moved.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub snapshot: std::sync::Arc<SchemaSnapshot>,
    pub collection: String,
    pub params: serde_json::Map<String, Value>,
    pub access: std::sync::Arc<Access>,
    /// The caller's variables; `now` is replaced by each [`ReadPlan::at`].
    pub vars: Variables,
    pub settings: crate::core::query::Settings,
}

impl ReadPlan {
    /// The query and rules as they read at `now`.
    pub fn at(&self, now: chrono::DateTime<chrono::Utc>) -> Result<(Query, ReadRules), PlanError> {
        let mut vars = self.vars.clone();
        vars.now = now;
        plan_read(
            &self.access,
            &self.snapshot,
            &self.collection,
            &self.params,
            &vars,
            self.settings,
        )
    }
}
