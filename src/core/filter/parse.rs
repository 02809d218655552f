//! JSON filter → [`Filter`], checked against the schema snapshot.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::value::{Scalar, coerce};
use super::{
    Condition, Filter, FilterError, Function, Operand, Operator, Quantifier, RelationFilter, RelationKind,
};
use crate::core::field_type::FieldType;
use crate::core::schema::{Collection, Field, SchemaSnapshot};

/// Bounds on one filter, so no request can make parsing or the SQL expensive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Conditions plus `_and`/`_or` nodes.
    pub max_nodes: usize,
    /// Nesting of objects (Directus's `MAX_JSON_QUERY_DEPTH`, 10).
    pub max_depth: usize,
    /// Items in one `_in`/`_nin` list.
    pub max_list: usize,
    /// Bytes in one string-operator or `_regex` value.
    pub max_pattern: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 1000,
            max_depth: 10,
            max_list: 1000,
            max_pattern: 1024,
        }
    }
}

fn invalid(reason: impl Into<String>) -> FilterError {
    FilterError::Invalid(reason.into())
}

/// Parses and validates `value` as a filter on `collection`. `now` resolves `$NOW`.
pub fn parse(
    value: &Value,
    snapshot: &SchemaSnapshot,
    collection: &str,
    now: DateTime<Utc>,
    limits: Limits,
) -> Result<Filter, FilterError> {
    let target = snapshot
        .collection(collection)
        .ok_or_else(|| FilterError::Field {
            collection: collection.into(),
            field: "*".into(),
        })?;
    let mut parser = Parser {
        snapshot,
        now,
        limits,
        nodes: 0,
    };
    parser.object(target, value, 1)
}

struct Parser<'a> {
    snapshot: &'a SchemaSnapshot,
    now: DateTime<Utc>,
    limits: Limits,
    nodes: usize,
}

impl<'a> Parser<'a> {
    fn count(&mut self, depth: usize) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(invalid(format!(
                "Filter has more than {} conditions",
                self.limits.max_nodes
            )));
        }
        if depth > self.limits.max_depth {
            return Err(invalid(format!(
                "Filter is nested deeper than {} levels",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    fn object(
        &mut self,
        collection: &'a Collection,
        value: &Value,
        depth: usize,
    ) -> Result<Filter, FilterError> {
        let map = value
            .as_object()
            .ok_or_else(|| invalid("Invalid filter object"))?;
        let mut parts = Vec::with_capacity(map.len());
        for (key, child) in map {
            self.count(depth)?;
            match key.as_str() {
                "_and" | "_or" => {
                    let items = child
                        .as_array()
                        .ok_or_else(|| invalid(format!("\"{key}\" must be an array of filters")))?;
                    let children = items
                        .iter()
                        .map(|item| self.object(collection, item, depth + 1))
                        .collect::<Result<Vec<_>, _>>()?;
                    parts.push(if key == "_and" {
                        Filter::And(children)
                    } else {
                        Filter::Or(children)
                    });
                }
                k if k.starts_with('_') => {
                    return Err(invalid(format!("\"{k}\" can only be used on a field")));
                }
                k => parts.push(self.field(collection, k, child, depth + 1)?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn field(
        &mut self,
        collection: &'a Collection,
        key: &str,
        value: &Value,
        depth: usize,
    ) -> Result<Filter, FilterError> {
        let (function, name) = split_function(key)?;
        let field = collection.field(name).ok_or_else(|| FilterError::Field {
            collection: collection.collection.clone(),
            field: name.to_string(),
        })?;
        let ops = value.as_object().ok_or_else(|| {
            invalid(format!(
                "Invalid filter for \"{key}\": expected an object of operators"
            ))
        })?;
        if function.is_none()
            && let Some(kind) = self.relation_kind(collection, field)?
        {
            let relational = match &kind {
                RelationKind::ManyToOne { .. } => ops.keys().any(|k| !k.starts_with('_')),
                RelationKind::OneToMany { .. } => true,
            };
            if relational {
                return self.relation(field, kind, ops, depth);
            }
        }
        if field.field_type == FieldType::Alias {
            return Err(invalid(format!("Field \"{name}\" has no value to filter on")));
        }
        let compared_type = match function {
            None => field.field_type,
            Some(_) if is_temporal(field.field_type) => FieldType::Integer,
            Some(_) => return Err(invalid(format!("Function \"{key}\" needs a date or time field"))),
        };
        let mut conditions = Vec::with_capacity(ops.len());
        for (op_name, operand) in ops {
            if !conditions.is_empty() {
                self.count(depth)?;
            }
            let op = Operator::parse(op_name)
                .ok_or_else(|| invalid(format!("\"{op_name}\" is not a valid filter operator")))?;
            check_operator(op, compared_type, key)?;
            let operand = self.operand(op, operand, compared_type, key)?;
            conditions.push(Filter::Condition(Condition {
                field: name.to_string(),
                function,
                op,
                operand,
            }));
        }
        if conditions.is_empty() {
            return Err(invalid(format!("Invalid filter for \"{key}\": no operator")));
        }
        Ok(if conditions.len() == 1 {
            conditions.remove(0)
        } else {
            Filter::And(conditions)
        })
    }

    fn relation(
        &mut self,
        field: &Field,
        kind: RelationKind,
        ops: &Map<String, Value>,
        depth: usize,
    ) -> Result<Filter, FilterError> {
        let related_name = match &kind {
            RelationKind::ManyToOne { related, .. } | RelationKind::OneToMany { related, .. } => {
                related.clone()
            }
        };
        let related = self
            .snapshot
            .collection(&related_name)
            .ok_or_else(|| FilterError::Field {
                collection: related_name.clone(),
                field: "*".into(),
            })?;
        let (kind, nested) = match kind {
            RelationKind::OneToMany {
                related,
                related_field,
                primary_key,
                ..
            } if ops.len() == 1 && (ops.contains_key("_some") || ops.contains_key("_none")) => {
                let (word, nested) = ops
                    .iter()
                    .next()
                    .ok_or_else(|| invalid("empty relational filter"))?;
                let quantifier = if word == "_none" {
                    Quantifier::None
                } else {
                    Quantifier::Some
                };
                (
                    RelationKind::OneToMany {
                        related,
                        related_field,
                        primary_key,
                        quantifier,
                    },
                    nested.clone(),
                )
            }
            other => (other, Value::Object(ops.clone())),
        };
        let filter = self.object(related, &nested, depth + 1)?;
        Ok(Filter::Relation(Box::new(RelationFilter {
            field: field.field.clone(),
            kind,
            filter,
        })))
    }

    /// M2O when the field holds a foreign key; O2M when it is the alias of a relation pointing here.
    fn relation_kind(
        &self,
        collection: &Collection,
        field: &Field,
    ) -> Result<Option<RelationKind>, FilterError> {
        if let Some(relation) = self.snapshot.relation(&collection.collection, &field.field)
            && let Some(related) = &relation.related_collection
        {
            let related_key = self
                .snapshot
                .collection(related)
                .and_then(|c| c.primary_key.clone());
            if let Some(related_key) = related_key {
                return Ok(Some(RelationKind::ManyToOne {
                    related: related.clone(),
                    related_key,
                }));
            }
        }
        if field.field_type != FieldType::Alias {
            return Ok(None);
        }
        let incoming = self.snapshot.relations.iter().find(|r| {
            r.related_collection.as_deref() == Some(collection.collection.as_str())
                && r.meta.as_ref().and_then(|m| m.one_field.as_deref()) == Some(field.field.as_str())
        });
        match (incoming, &collection.primary_key) {
            (Some(r), Some(pk)) => Ok(Some(RelationKind::OneToMany {
                related: r.collection.clone(),
                related_field: r.field.clone(),
                primary_key: pk.clone(),
                quantifier: Quantifier::Some,
            })),
            _ => Ok(None),
        }
    }

    fn operand(
        &self,
        op: Operator,
        value: &Value,
        field_type: FieldType,
        key: &str,
    ) -> Result<Operand, FilterError> {
        use Operator::*;
        let scalar = |v: &Value| coerce(v, field_type, self.now, key).map_err(FilterError::Invalid);
        Ok(match op {
            Eq | Neq => Operand::Scalar(scalar(value)?),
            Lt | Lte | Gt | Gte => match scalar(value)? {
                Scalar::Null => {
                    return Err(invalid(format!(
                        "\"{}\" needs a value for \"{key}\"",
                        op.as_str()
                    )));
                }
                s => Operand::Scalar(s),
            },
            In | Nin => {
                let items = list(value);
                if items.len() > self.limits.max_list {
                    return Err(invalid(format!(
                        "\"{}\" takes at most {} values",
                        op.as_str(),
                        self.limits.max_list
                    )));
                }
                Operand::List(items.iter().map(scalar).collect::<Result<_, _>>()?)
            }
            Between | Nbetween => {
                let items = list(value);
                let [low, high] = items.as_slice() else {
                    return Err(invalid(format!(
                        "\"{}\" needs exactly two values for \"{key}\"",
                        op.as_str()
                    )));
                };
                match (scalar(low)?, scalar(high)?) {
                    (Scalar::Null, _) | (_, Scalar::Null) => {
                        return Err(invalid(format!("\"{}\" can't compare with null", op.as_str())));
                    }
                    (low, high) => Operand::Range(low, high),
                }
            }
            Null | Nnull | Empty | Nempty => {
                Operand::Flag(flag(value).ok_or_else(|| {
                    invalid(format!("\"{}\" takes true or false for \"{key}\"", op.as_str()))
                })?)
            }
            _ => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(invalid(format!(
                            "\"{}\" takes a string for \"{key}\"",
                            op.as_str()
                        )));
                    }
                };
                if text.len() > self.limits.max_pattern || text.contains('\0') {
                    return Err(invalid(format!(
                        "Value of \"{}\" is too long for \"{key}\"",
                        op.as_str()
                    )));
                }
                if op == Regex {
                    regex::Regex::new(&text)
                        .map_err(|_| invalid(format!("Invalid regular expression for \"{key}\"")))?;
                }
                Operand::Text(text)
            }
        })
    }
}

/// `year(date_created)` → (`Some(Year)`, `date_created`).
fn split_function(key: &str) -> Result<(Option<Function>, &str), FilterError> {
    let Some(open) = key.find('(') else {
        return Ok((None, key));
    };
    let inner = key[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| invalid(format!("Invalid function \"{key}\"")))?;
    let function = Function::parse(&key[..open])
        .ok_or_else(|| invalid(format!("\"{}\" is not a valid function", &key[..open])))?;
    Ok((Some(function), inner))
}

fn is_temporal(t: FieldType) -> bool {
    matches!(
        t,
        FieldType::Date | FieldType::Time | FieldType::DateTime | FieldType::Timestamp
    )
}

fn is_textual(t: FieldType) -> bool {
    matches!(
        t,
        FieldType::String | FieldType::Text | FieldType::Csv | FieldType::Hash | FieldType::Unknown
    )
}

/// Which operators make sense on which types.
fn check_operator(op: Operator, t: FieldType, key: &str) -> Result<(), FilterError> {
    use Operator::*;
    let ok = match op {
        Eq | Neq | In | Nin | Null | Nnull => true,
        Lt | Lte | Gt | Gte | Between | Nbetween => {
            !matches!(t, FieldType::Json | FieldType::Boolean | FieldType::Alias)
        }
        Empty | Nempty | Regex => is_textual(t),
        _ => is_textual(t),
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "\"{}\" can't be used on \"{key}\" (type {t})",
            op.as_str()
        )))
    }
}

/// An array, or a comma-separated string, as Directus accepts for `_in` and `_between`.
fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => s.split(',').map(|p| Value::String(p.to_string())).collect(),
        other => vec![other.clone()],
    }
}

fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "1" => Some(true),
        Value::String(s) if s == "false" || s == "0" => Some(false),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}
