//! Evaluates a [`Filter`] against one row in memory, with Postgres's semantics: SQL's
//! three-valued logic (a comparison with NULL is unknown, and unknown never matches, even
//! under a negation), inclusive `_between`, substring tests on the literal text (`%` and `_` in
//! a value are not wildcards), `extract()` for date functions.
//!
//! The row is a JSON object as the API serves it; each value is read with the same coercion as
//! filter values, so both sides have the field's type. Relational conditions need the relation
//! expanded in the row (an object for M2O, an array of objects for O2M); a bare key is unknown.

use chrono::{Datelike, Timelike};
use serde_json::{Map, Value};

use super::value::{Scalar, coerce};
use super::{Condition, Filter, Function, Operand, Operator, Quantifier, RelationKind, TextTest};

/// The LIKE pattern SQL uses for a string operator (one definition for both back ends). As in
/// Directus, `%` and `_` in the value stay wildcards; case-insensitive forms compare
/// lower-cased text with a lower-cased value.
pub fn like_pattern(test: TextTest, value: &str, insensitive: bool) -> String {
    let value = if insensitive {
        value.to_lowercase()
    } else {
        value.to_string()
    };
    match test {
        TextTest::Contains => format!("%{value}%"),
        TextTest::StartsWith => format!("{value}%"),
        TextTest::EndsWith => format!("%{value}"),
    }
}

/// SQL `LIKE` with Postgres's default escape `\`: `%` any run, `_` one character.
pub fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Like::Any,
            '_' => Like::One,
            '\\' => Like::Char(chars.next().unwrap_or('\\')),
            c => Like::Char(c),
        });
    }
    // Wildcard matching with one backtrack point: linear in practice, O(n·m) at worst.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Like::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Like::One) => {
                t += 1;
                p += 1;
            }
            Some(Like::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Like::Any)
}

#[derive(Debug, PartialEq)]
enum Like {
    Any,
    One,
    Char(char),
}
use crate::core::schema::SchemaSnapshot;

/// Whether `row` of `collection` matches `filter`.
pub fn matches(
    filter: &Filter,
    row: &Map<String, Value>,
    snapshot: &SchemaSnapshot,
    collection: &str,
) -> bool {
    eval(filter, row, snapshot, collection) == Some(true)
}

/// Kleene logic: `None` is SQL's unknown.
fn eval(
    filter: &Filter,
    row: &Map<String, Value>,
    snapshot: &SchemaSnapshot,
    collection: &str,
) -> Option<bool> {
    match filter {
        Filter::And(children) => {
            let mut result = Some(true);
            for child in children {
                match eval(child, row, snapshot, collection) {
                    Some(false) => return Some(false),
                    None => result = None,
                    Some(true) => {}
                }
            }
            result
        }
        Filter::Or(children) => {
            let mut result = Some(false);
            for child in children {
                match eval(child, row, snapshot, collection) {
                    Some(true) => return Some(true),
                    None => result = None,
                    Some(false) => {}
                }
            }
            result
        }
        Filter::Condition(condition) => {
            let field_type = snapshot.field(collection, &condition.field)?.field_type;
            let raw = key_of(
                row.get(&condition.field).unwrap_or(&Value::Null),
                snapshot,
                collection,
                &condition.field,
            );
            // The row came from the database, so it coerces; if not, the value is unknown.
            if let Some(path) = &condition.json {
                return condition_holds(condition, &json_value(raw, path));
            }
            if condition.function == Some(Function::Count) {
                // An O2M field reads as an array of keys or rows; a JSON field may hold an array.
                let count = match raw {
                    Value::Array(items) => Scalar::Int(items.len() as i64),
                    _ => Scalar::Null,
                };
                return condition_holds(condition, &count);
            }
            let value = coerce(raw, field_type, chrono::DateTime::UNIX_EPOCH, &condition.field).ok()?;
            let value = match condition.function {
                None => value,
                Some(function) => apply(function, &value),
            };
            condition_holds(condition, &value)
        }
        Filter::Relation(relation) => match &relation.kind {
            RelationKind::ManyToOne { related, .. } => match row.get(&relation.field) {
                Some(Value::Object(related_row)) => {
                    Some(matches(&relation.filter, related_row, snapshot, related))
                }
                // A NULL key joins no row: the EXISTS is false.
                Some(Value::Null) => Some(false),
                _ => None,
            },
            RelationKind::OneToMany {
                related, quantifier, ..
            } => match row.get(&relation.field) {
                Some(Value::Array(items)) => {
                    let any = items.iter().any(|item| {
                        item.as_object()
                            .is_some_and(|r| matches(&relation.filter, r, snapshot, related))
                    });
                    Some(if *quantifier == Quantifier::Some {
                        any
                    } else {
                        !any
                    })
                }
                _ => None,
            },
        },
    }
}

/// A foreign key expanded into its related row (`author: {id: 1, …}`) compares as its key.
fn key_of<'r>(raw: &'r Value, snapshot: &SchemaSnapshot, collection: &str, field: &str) -> &'r Value {
    let Value::Object(related_row) = raw else {
        return raw;
    };
    let key = snapshot
        .relation(collection, field)
        .and_then(|r| r.related_collection.as_deref())
        .and_then(|related| snapshot.collection(related))
        .and_then(|c| c.primary_key.as_deref());
    key.and_then(|k| related_row.get(k)).unwrap_or(raw)
}

/// The value at `path` in a JSON document, as Postgres's `#>>` reads it: text (or a number
/// when the path compares numerically), NULL when missing or JSON `null`.
fn json_value(document: &Value, path: &super::JsonPath) -> Scalar {
    let mut current = document;
    for step in &path.steps {
        current = match current {
            Value::Object(map) => map.get(step).unwrap_or(&Value::Null),
            Value::Array(items) => step
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    match (current, path.numeric) {
        (Value::Null, _) => Scalar::Null,
        (Value::Number(n), true) => n.as_f64().map(Scalar::Float).unwrap_or(Scalar::Null),
        (_, true) => Scalar::Null,
        (Value::String(s), false) => Scalar::Text(s.clone()),
        (other, false) => Scalar::Text(other.to_string()),
    }
}

fn condition_holds(condition: &Condition, value: &Scalar) -> Option<bool> {
    use Operator::*;
    let is_null = *value == Scalar::Null;
    match (&condition.operand, condition.op) {
        (Operand::Scalar(Scalar::Null), Eq) => Some(is_null),
        (Operand::Scalar(Scalar::Null), Neq) => Some(!is_null),
        (Operand::Scalar(target), op) => {
            if is_null {
                return None;
            }
            let ordering = compare(value, target)?;
            Some(match op {
                Eq => ordering.is_eq(),
                Neq => !ordering.is_eq(),
                Lt => ordering.is_lt(),
                Lte => ordering.is_le(),
                Gt => ordering.is_gt(),
                Gte => ordering.is_ge(),
                _ => return None,
            })
        }
        (Operand::List(items), op) => {
            let found = member(value, items);
            if op == Nin { found.map(|f| !f) } else { found }
        }
        (Operand::Range(low, high), op) => {
            if is_null {
                return None;
            }
            let inside = compare(value, low)?.is_ge() && compare(value, high)?.is_le();
            Some(if op == Nbetween { !inside } else { inside })
        }
        (Operand::Flag(flag), op) => {
            let empty = is_null || matches!(value, Scalar::Text(s) if s.is_empty());
            Some(match op {
                Null => is_null == *flag,
                Nnull => is_null != *flag,
                Empty => empty == *flag,
                Nempty => empty != *flag,
                _ => return None,
            })
        }
        (Operand::Text(pattern), Regex) => {
            let Scalar::Text(text) = value else { return None };
            regex::Regex::new(pattern).ok().map(|re| re.is_match(text))
        }
        (Operand::Text(pattern), op) => {
            let Scalar::Text(text) = value else { return None };
            let (test, insensitive, negated) = op.text_test()?;
            let text = if insensitive {
                text.to_lowercase()
            } else {
                text.clone()
            };
            let hit = like(&text, &like_pattern(test, pattern, insensitive));
            Some(hit != negated)
        }
    }
}

/// SQL `x = any(list)`: true on a match, unknown if no match but a NULL is involved.
fn member(value: &Scalar, items: &[Scalar]) -> Option<bool> {
    if *value == Scalar::Null {
        return if items.is_empty() { Some(false) } else { None };
    }
    let mut unknown = false;
    for item in items {
        match compare(value, item) {
            Some(o) if o.is_eq() => return Some(true),
            Some(_) => {}
            None => unknown = true,
        }
    }
    if unknown { None } else { Some(false) }
}

/// Orders two values of one field type; `None` when either is NULL.
fn compare(a: &Scalar, b: &Scalar) -> Option<std::cmp::Ordering> {
    use Scalar::*;
    match (a, b) {
        (Null, _) | (_, Null) => None,
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Int(x), Float(y)) => (*x as f64).partial_cmp(y),
        (Float(x), Int(y)) => x.partial_cmp(&(*y as f64)),
        (Float(x), Float(y)) => x.partial_cmp(y),
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        (Text(x), Text(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Date(x), Date(y)) => Some(x.cmp(y)),
        (Time(x), Time(y)) => Some(x.cmp(y)),
        (DateTime(x), DateTime(y)) => Some(x.cmp(y)),
        (Timestamp(x), Timestamp(y)) => Some(x.cmp(y)),
        (Json(x), Json(y)) => Some(if x == y {
            std::cmp::Ordering::Equal
        } else {
            std::cmp::Ordering::Less
        }),
        _ => None,
    }
}

/// `extract(...)` as Postgres computes it (timestamps in UTC; `weekday` is `dow`, Sunday = 0;
/// `week` is the ISO week; `second` drops fractions).
fn apply(function: Function, value: &Scalar) -> Scalar {
    let (date, time) = match value {
        Scalar::Date(d) => (Some(*d), None),
        Scalar::Time(t) => (None, Some(*t)),
        Scalar::DateTime(dt) => (Some(dt.date()), Some(dt.time())),
        Scalar::Timestamp(ts) => (Some(ts.date_naive()), Some(ts.time())),
        _ => return Scalar::Null,
    };
    let part = match function {
        Function::Year => date.map(|d| d.year() as i64),
        Function::Month => date.map(|d| d.month() as i64),
        Function::Week => date.map(|d| d.iso_week().week() as i64),
        Function::Day => date.map(|d| d.day() as i64),
        Function::Weekday => date.map(|d| d.weekday().num_days_from_sunday() as i64),
        // A date has midnight as its time in Postgres.
        Function::Hour => Some(time.map(|t| t.hour() as i64).unwrap_or(0)),
        Function::Minute => Some(time.map(|t| t.minute() as i64).unwrap_or(0)),
        Function::Second => Some(time.map(|t| t.second() as i64).unwrap_or(0)),
        // Counted before values are coerced (see `eval`).
        Function::Count => None,
    };
    part.map(Scalar::Int).unwrap_or(Scalar::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_follows_postgres() {
        assert!(like("50% off", "%50%%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abbc", "a_c"));
        assert!(like("abc", "%"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("a%c", "a\\%c"));
        assert!(!like("abc", "a\\%c"));
        assert!(like("mississippi", "%iss%pi"));
        assert!(!like("mississippi", "%iss%px"));
    }

    proptest::proptest! {
        #[test]
        fn like_never_panics(text in ".{0,20}", pattern in "[a%_\\\\b]{0,10}") {
            let _ = like(&text, &pattern);
        }
    }
}
