//! Checks one create or update payload against the caller's rules, as Directus's
//! `permissions/modules/process-payload/process-payload.ts` does: every key must be a granted
//! field, the presets go under the payload (the payload wins), and the merged item must satisfy
//! every row's `validation` filter. The item filter (`permissions`) is not applied to the
//! payload: Directus checks it only against existing items (update, delete), never for create.
//!
//! Validation follows Directus's Joi translation (`@directus/utils` `validate-payload.ts`,
//! `generate-joi.ts`), not SQL: a key absent from the payload passes every rule about it (so an
//! update is judged only on what it writes), `null` passes `_neq`/`_nin`, `_empty` means the
//! empty string, string tests are literal, and `_and`/`_or` report the failures of every
//! branch when none passes.

use serde_json::{Map, Value};

use super::{AccessError, Resolved};
use crate::core::filter::{Condition, Filter, Operand, Operator, RelationKind, Scalar, TextTest, eval};
use crate::core::payload::Failure;
use crate::core::schema::SchemaSnapshot;

impl Resolved {
    /// Checks a create or update `payload` and returns it with the presets under it. A key no
    /// rule grants is [`AccessError::Field`]; broken validation rules are
    /// [`AccessError::Validation`] with every failure.
    pub fn prepare_payload(
        &self,
        payload: &Map<String, Value>,
        snapshot: &SchemaSnapshot,
    ) -> Result<Map<String, Value>, AccessError> {
        if let Some(field) = payload.keys().find(|key| !self.can(key)) {
            return Err(AccessError::Field {
                collection: self.collection().to_string(),
                field: field.clone(),
                path: None,
            });
        }
        let mut merged = self.presets().clone();
        for (key, value) in payload {
            merged.insert(key.clone(), value.clone());
        }
        let failures = validate_payload(self.validation(), &merged, snapshot, self.collection());
        if failures.is_empty() {
            Ok(merged)
        } else {
            Err(AccessError::Validation(failures))
        }
    }
}

/// Every failure of `payload` (an item of `collection`) against all of `rules`.
pub fn validate_payload(
    rules: &[Filter],
    payload: &Map<String, Value>,
    snapshot: &SchemaSnapshot,
    collection: &str,
) -> Vec<Failure> {
    rules
        .iter()
        .flat_map(|rule| failures(rule, payload, snapshot, collection))
        .collect()
}

fn failures(
    filter: &Filter,
    payload: &Map<String, Value>,
    snapshot: &SchemaSnapshot,
    collection: &str,
) -> Vec<Failure> {
    match filter {
        Filter::And(children) => children
            .iter()
            .flat_map(|c| failures(c, payload, snapshot, collection))
            .collect(),
        Filter::Or(children) => {
            let mut all = Vec::new();
            for child in children {
                let found = failures(child, payload, snapshot, collection);
                if found.is_empty() {
                    return Vec::new();
                }
                all.extend(found);
            }
            all
        }
        Filter::Condition(condition) => match payload.get(&condition.field) {
            None => Vec::new(),
            Some(value) if holds(condition, value, snapshot, collection) => Vec::new(),
            Some(_) => vec![failure(condition)],
        },
        Filter::Relation(relation) => {
            let related = match &relation.kind {
                RelationKind::ManyToOne { related, .. } | RelationKind::OneToMany { related, .. } => related,
            };
            let found = match payload.get(&relation.field) {
                None => return Vec::new(),
                // A nested object (a related item written with this one) is checked in place.
                Some(Value::Object(nested)) => failures(&relation.filter, nested, snapshot, related),
                // A key or a list cannot show the related values the rule needs: fail closed,
                // naming the rule's first test.
                Some(_) => first_condition(&relation.filter)
                    .map(failure)
                    .into_iter()
                    .collect(),
            };
            // Directus reports nested failures under the top-level key.
            found
                .into_iter()
                .map(|f| Failure {
                    field: relation.field.clone(),
                    ..f
                })
                .collect()
        }
    }
}

fn first_condition(filter: &Filter) -> Option<&Condition> {
    match filter {
        Filter::Condition(condition) => Some(condition),
        Filter::And(children) | Filter::Or(children) => children.iter().find_map(first_condition),
        Filter::Relation(relation) => first_condition(&relation.filter),
    }
}

/// Whether a present payload value passes one condition.
fn holds(condition: &Condition, value: &Value, snapshot: &SchemaSnapshot, collection: &str) -> bool {
    use Operator::*;
    if condition.function.is_some() || condition.json.is_some() {
        return evaluate(condition, value, snapshot, collection);
    }
    match (&condition.operand, condition.op) {
        (Operand::Flag(flag), op) => {
            let is_null = value.is_null();
            // Joi's `valid('')`: only the empty string, not null.
            let is_empty = value.as_str() == Some("");
            match op {
                Null => is_null == *flag,
                Nnull => is_null != *flag,
                Empty => is_empty == *flag,
                Nempty => is_empty != *flag,
                _ => false,
            }
        }
        (Operand::Text(pattern), Regex) => {
            // Directus strips `/.../` around a pattern.
            let pattern = pattern
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix('/'))
                .unwrap_or(pattern);
            let compiled = regex::RegexBuilder::new(pattern).size_limit(1 << 20).build();
            match (compiled, value.as_str()) {
                (Ok(re), Some(text)) => re.is_match(text),
                _ => false,
            }
        }
        (Operand::Text(needle), op) => match op.text_test() {
            Some((test, insensitive, negated)) => text_holds(value, needle, test, insensitive, negated),
            None => false,
        },
        (operand, op) if value.is_null() => match (operand, op) {
            (Operand::Scalar(Scalar::Null), Eq) => true,
            (Operand::Scalar(target), Neq) => *target != Scalar::Null,
            (Operand::List(items), In) => items.contains(&Scalar::Null),
            (Operand::List(items), Nin) => !items.contains(&Scalar::Null),
            _ => false,
        },
        _ => evaluate(condition, value, snapshot, collection),
    }
}

/// The in-memory evaluator on a one-field row: typed comparisons, as the filter has them.
fn evaluate(condition: &Condition, value: &Value, snapshot: &SchemaSnapshot, collection: &str) -> bool {
    let row = Map::from_iter([(condition.field.clone(), value.clone())]);
    eval::matches(&Filter::Condition(condition.clone()), &row, snapshot, collection)
}

/// Joi's literal string tests; `_contains` family also accepts an array with a matching item
/// (CSV and JSON fields). Anything but text fails.
fn text_holds(value: &Value, needle: &str, test: TextTest, insensitive: bool, negated: bool) -> bool {
    let fold = |s: &str| {
        if insensitive {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let needle = fold(needle);
    let hit = |text: &str| {
        let text = fold(text);
        match test {
            TextTest::Contains => text.contains(&needle),
            TextTest::StartsWith => text.starts_with(&needle),
            TextTest::EndsWith => text.ends_with(&needle),
        }
    };
    match value {
        Value::String(text) => hit(text) != negated,
        Value::Array(items) if test == TextTest::Contains => {
            let any = items.iter().any(|i| i.as_str().is_some_and(hit));
            any != negated
        }
        _ => false,
    }
}

/// How Directus names the failure of `condition` (`joiValidationErrorItemToErrorExtensions`).
fn failure(condition: &Condition) -> Failure {
    use Operator::*;
    let kind: &'static str = match (&condition.operand, condition.op) {
        (Operand::Flag(true), Null) | (Operand::Flag(false), Nnull) => "null",
        (Operand::Flag(_), Null | Nnull) => "nnull",
        (Operand::Flag(true), Empty) | (Operand::Flag(false), Nempty) => "empty",
        (Operand::Flag(_), Empty | Nempty) => "nempty",
        (_, op) => op.as_str().trim_start_matches('_'),
    };
    let expected = match &condition.operand {
        Operand::Scalar(s) => Some(json_of(s)),
        Operand::List(items) => Some(Value::Array(items.iter().map(json_of).collect())),
        Operand::Range(low, high) => Some(Value::Array(vec![json_of(low), json_of(high)])),
        // A pattern is not echoed; the substring of a string test is.
        Operand::Text(_) if condition.op == Regex => None,
        Operand::Text(text) => Some(Value::String(text.clone())),
        Operand::Flag(_) => None,
    };
    Failure {
        field: condition.field.clone(),
        kind,
        expected,
    }
}

fn json_of(scalar: &Scalar) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(*b),
        Scalar::Int(i) => Value::from(*i),
        Scalar::Float(f) => Value::from(*f),
        Scalar::Json(v) => v.clone(),
        other => other.to_sql_text().map(Value::String).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests;
