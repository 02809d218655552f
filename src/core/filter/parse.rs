//! JSON filter → [`Filter`], checked against the schema snapshot.

use serde_json::{Map, Value};

use super::value::{Scalar, coerce};
use super::{
    Condition, Filter, FilterError, Function, JsonPath, Operand, Operator, Quantifier, RelationFilter,
    RelationKind, Variables,
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
    vars: impl Into<Variables>,
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
        vars: vars.into(),
        limits,
        nodes: 0,
    };
    parser.object(target, value, 1)
}

struct Parser<'a> {
    snapshot: &'a SchemaSnapshot,
    vars: Variables,
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
        if field.field_type == FieldType::Alias && function != Some(Function::Count) {
            return Err(invalid(format!("Field \"{name}\" has no value to filter on")));
        }
        if let Some(paths) = ops.get("_json") {
            if field.field_type != FieldType::Json || function.is_some() {
                return Err(invalid(format!(
                    "\"{}\" field type does not contain the \"_json\" filter operator",
                    field.field_type
                )));
            }
            if ops.len() > 1 {
                return Err(invalid(
                    "\"_json\" can't be combined with other operators on one field",
                ));
            }
            return self.json_conditions(name, paths, depth);
        }
        let compared_type = match function {
            None => field.field_type,
            Some(Function::Count)
                if field.field_type == FieldType::Json
                    || (field.field_type == FieldType::Alias
                        && self.snapshot.one_to_many(&collection.collection, name).is_some()) =>
            {
                FieldType::Integer
            }
            Some(f) if function_applies(f, field.field_type) => FieldType::Integer,
            Some(_) => {
                return Err(invalid(format!(
                    "Invalid filter key \"{key}\" on \"{}\"",
                    collection.collection
                )));
            }
        };
        let mut conditions = Vec::with_capacity(ops.len());
        for (op_name, operand) in ops {
            if !conditions.is_empty() {
                self.count(depth)?;
            }
            let op = Operator::parse(op_name)
                .filter(|op| allowed(*op, compared_type))
                .ok_or_else(|| {
                    invalid(format!(
                        "\"{compared_type}\" field type does not contain the \"{op_name}\" filter operator"
                    ))
                })?;
            let operand = self.operand(op, operand, compared_type, key)?;
            conditions.push(Filter::Condition(Condition {
                field: name.to_string(),
                function,
                op,
                operand,
                json: None,
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

    /// `{"_json": {"size.w": {"_gt": 3}, "color": {"_eq": "red"}}}` (Directus 12): one
    /// operator per flat path, compared as numbers when the value is a number, else as text.
    fn json_conditions(&mut self, field: &str, paths: &Value, depth: usize) -> Result<Filter, FilterError> {
        let paths = paths
            .as_object()
            .ok_or_else(|| invalid("\"_json\" filter value must be an object"))?;
        let mut conditions = Vec::with_capacity(paths.len());
        for (path, spec) in paths {
            self.count(depth)?;
            let steps = json_steps(path)?;
            let spec = spec.as_object().filter(|s| s.len() == 1).ok_or_else(|| {
                invalid(format!(
                    "\"_json\" path \"{path}\" needs an object with one operator"
                ))
            })?;
            let (op_name, value) = spec
                .iter()
                .next()
                .ok_or_else(|| invalid("empty \"_json\" condition"))?;
            let numeric = value.is_number()
                || value
                    .as_array()
                    .is_some_and(|items| !items.is_empty() && items.iter().all(Value::is_number));
            let compared = if numeric {
                FieldType::Float
            } else {
                FieldType::Text
            };
            let op = Operator::parse(op_name)
                .filter(|op| allowed(*op, compared) && !matches!(op, Operator::Empty | Operator::Nempty))
                .ok_or_else(|| {
                    invalid(format!(
                        "\"_json\" does not contain the \"{op_name}\" filter operator"
                    ))
                })?;
            let operand = self.operand(op, value, compared, field)?;
            conditions.push(Filter::Condition(Condition {
                field: field.to_string(),
                function: None,
                op,
                operand,
                json: Some(JsonPath { steps, numeric }),
            }));
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
        let incoming = self.snapshot.one_to_many(&collection.collection, &field.field);
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

    /// `$CURRENT_USER`, `$CURRENT_ROLE.name` etc. become their values ([`Variables::current`]);
    /// Directus substitutes first and rewrites `"true"`/`"null"` after (`parse-filter.ts`).
    fn substitute(&self, value: &Value) -> Value {
        let value = match value.as_str().and_then(|s| self.vars.current(s)) {
            Some(resolved) => resolved,
            None => value.clone(),
        };
        normalize(&value)
    }

    /// The items of an `_in`/`_between` list with variables substituted; a variable holding a
    /// list (`$CURRENT_ROLES`) adds its items, as Directus's `flatMap` does.
    fn list_items(&self, items: Vec<Value>) -> Vec<Value> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match self.substitute(&item) {
                Value::Array(inner) => out.extend(inner.iter().map(normalize)),
                other => out.push(other),
            }
        }
        out
    }

    fn operand(
        &self,
        op: Operator,
        value: &Value,
        field_type: FieldType,
        key: &str,
    ) -> Result<Operand, FilterError> {
        use Operator::*;
        let name = op.as_str();
        let raw = value;
        let value = self.substitute(value);
        let scalar = |v: &Value| -> Result<Scalar, FilterError> {
            match v {
                Value::String(s) if s.is_empty() => Err(invalid(format!(
                    "You can't filter for an empty string in \"{name}\". Use \"_empty\" or \"_nempty\" instead"
                ))),
                Value::Object(_) | Value::Array(_) => Err(invalid(format!(
                    "The filter value for \"{name}\" has to be a string, number, or boolean"
                ))),
                v => coerce(v, field_type, self.vars.now, key).map_err(FilterError::Invalid),
            }
        };
        Ok(match op {
            Eq | Neq => Operand::Scalar(scalar(&value)?),
            Lt | Lte | Gt | Gte => match scalar(&value)? {
                Scalar::Null => {
                    return Err(invalid(format!(
                        "The filter value for \"{name}\" has to be a string, number, or boolean"
                    )));
                }
                s => Operand::Scalar(s),
            },
            In | Nin | Between | Nbetween => {
                // Split before substituting, so `"$CURRENT_ROLES"` and `["$CURRENT_USER"]`
                // expand the same way whatever the variable holds.
                let items =
                    list(raw).ok_or_else(|| invalid(format!("\"{name}\" has to be an array of values")))?;
                // A list written non-empty may still expand to none (`$CURRENT_ROLES` of a
                // user without a role): it then matches nothing, as Directus's empty `whereIn`.
                let items = self.list_items(items);
                if items.len() > self.limits.max_list {
                    return Err(invalid(format!(
                        "\"{name}\" takes at most {} values",
                        self.limits.max_list
                    )));
                }
                let items = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
                if matches!(op, In | Nin) {
                    Operand::List(items)
                } else {
                    match <[Scalar; 2]>::try_from(items) {
                        Ok([low, high]) if low != Scalar::Null && high != Scalar::Null => {
                            Operand::Range(low, high)
                        }
                        // Directus silently drops such a condition; a clear error is safer.
                        _ => return Err(invalid(format!("\"{name}\" has to be an array of two values"))),
                    }
                }
            }
            Null | Nnull | Empty | Nempty => Operand::Flag(match value {
                Value::Bool(b) => b,
                // Directus treats anything but an explicit `false` as true.
                Value::Null => true,
                Value::String(s) if s.is_empty() => true,
                _ => return Err(invalid(format!("\"{name}\" has to be a boolean"))),
            }),
            _ => {
                let text = match value {
                    Value::String(s) if !s.is_empty() => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::String(_) => {
                        return Err(invalid(format!(
                            "You can't filter for an empty string in \"{name}\". Use \"_empty\" or \"_nempty\" instead"
                        )));
                    }
                    _ => {
                        return Err(invalid(format!(
                            "The filter value for \"{name}\" has to be a string, number, or boolean"
                        )));
                    }
                };
                if text.len() > self.limits.max_pattern || text.contains('\0') {
                    return Err(invalid(format!("The filter value for \"{name}\" is too long")));
                }
                if op == Regex {
                    regex::RegexBuilder::new(&text)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|_| invalid(format!("Invalid regular expression in \"{key}\"")))?;
                }
                Operand::Text(text)
            }
        })
    }
}

/// `a.b[0].c` → `["a", "b", "0", "c"]`.
pub fn json_steps(path: &str) -> Result<Vec<String>, FilterError> {
    let bad = || invalid(format!("Invalid JSON path \"{path}\""));
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if key.is_empty() && rest.is_empty() {
            return Err(bad());
        }
        if !key.is_empty() {
            steps.push(key.to_string());
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']').ok_or_else(bad)?;
            let index = &inner[..close];
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            steps.push(index.to_string());
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            return Err(bad());
        }
    }
    if steps.is_empty() || steps.len() > 32 {
        return Err(bad());
    }
    Ok(steps)
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

/// Which date parts each temporal type has (Directus's `helpers/fn`).
fn function_applies(function: Function, t: FieldType) -> bool {
    use Function::*;
    match t {
        FieldType::DateTime | FieldType::Timestamp => function != Count,
        FieldType::Date => matches!(function, Year | Month | Week | Day | Weekday),
        FieldType::Time => matches!(function, Hour | Minute | Second),
        // `count()` is decided where the relation is known.
        _ => false,
    }
}

/// The operators Directus allows per field type (`get-filter-operators-for-type.ts`), plus
/// `_nicontains` and `_regex` on strings, which Directus implements but does not list.
fn allowed(op: Operator, t: FieldType) -> bool {
    use Operator::*;
    let basic = matches!(op, Eq | Neq | Null | Nnull | In | Nin);
    let ordered = basic || matches!(op, Lt | Lte | Gt | Gte | Between | Nbetween);
    match t {
        FieldType::String | FieldType::Text | FieldType::Csv => {
            basic || matches!(op, Empty | Nempty | Regex) || op.text_test().is_some()
        }
        FieldType::Uuid => basic,
        FieldType::Boolean => matches!(op, Eq | Neq | Null | Nnull),
        FieldType::Integer
        | FieldType::BigInteger
        | FieldType::Float
        | FieldType::Decimal
        | FieldType::Date
        | FieldType::DateTime
        | FieldType::Time => ordered,
        FieldType::Json => matches!(op, Null | Nnull),
        FieldType::Hash => matches!(op, Empty | Nempty | Null | Nnull),
        // Directus's default list (it applies to `timestamp` too).
        FieldType::Timestamp | FieldType::Unknown | FieldType::Alias => {
            ordered || matches!(op, Contains | Ncontains | Empty | Nempty)
        }
    }
}

/// Directus rewrites these strings everywhere in a filter (`parse-filter.ts`).
fn normalize(value: &Value) -> Value {
    match value {
        Value::String(s) if s == "true" => Value::Bool(true),
        Value::String(s) if s == "false" => Value::Bool(false),
        Value::String(s) if s == "null" || s == "NULL" => Value::Null,
        other => other.clone(),
    }
}

/// An array, or a comma-separated string, as Directus accepts for `_in` and `_between`; an
/// empty list is refused, as in Directus.
fn list(value: &Value) -> Option<Vec<Value>> {
    let items = match value {
        Value::Array(items) => items.clone(),
        Value::String(s) => s.split(',').map(|p| Value::String(p.to_string())).collect(),
        Value::Number(_) | Value::Bool(_) => vec![value.clone()],
        _ => return None,
    };
    (!items.is_empty()).then_some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::catalog;
    use serde_json::json;

    fn snapshot() -> SchemaSnapshot {
        catalog::single_table(
            "articles",
            &[("id", "int4"), ("title", "varchar"), ("created", "date")],
        )
    }

    fn reason(value: Value) -> String {
        match parse(
            &value,
            &snapshot(),
            "articles",
            chrono::DateTime::UNIX_EPOCH,
            Limits::default(),
        ) {
            Err(FilterError::Invalid(reason)) => reason,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn errors_read_as_directus_writes_them() {
        assert_eq!(
            reason(json!({"title": {"_foo": 1}})),
            "\"string\" field type does not contain the \"_foo\" filter operator"
        );
        assert_eq!(
            reason(json!({"title": {"_lt": "a"}})),
            "\"string\" field type does not contain the \"_lt\" filter operator"
        );
        assert_eq!(
            reason(json!({"id": {"_in": []}})),
            "\"_in\" has to be an array of values"
        );
        assert_eq!(
            reason(json!({"id": {"_null": 5}})),
            "\"_null\" has to be a boolean"
        );
        assert_eq!(
            reason(json!({"title": {"_eq": ""}})),
            "You can't filter for an empty string in \"_eq\". Use \"_empty\" or \"_nempty\" instead"
        );
        assert_eq!(
            reason(json!({"title": {"_eq": {"a": 1}}})),
            "The filter value for \"_eq\" has to be a string, number, or boolean"
        );
        assert_eq!(reason(json!({"id": {"_gt": "abc"}})), "Invalid numeric value");
        assert_eq!(
            reason(json!({"year(title)": {"_eq": 1}})),
            "Invalid filter key \"year(title)\" on \"articles\""
        );
        assert_eq!(
            reason(json!({"hour(created)": {"_eq": 1}})),
            "Invalid filter key \"hour(created)\" on \"articles\""
        );
        assert!(matches!(
            parse(
                &json!({"nope": {"_eq": 1}}),
                &snapshot(),
                "articles",
                chrono::DateTime::UNIX_EPOCH,
                Limits::default()
            ),
            Err(FilterError::Field { .. })
        ));
    }

    #[test]
    fn json_paths_are_checked() {
        assert_eq!(
            reason(json!({"title": {"_json": {"a": {"_eq": 1}}}})),
            "\"string\" field type does not contain the \"_json\" filter operator"
        );
        assert_eq!(json_steps("a.b[0].c").unwrap(), vec!["a", "b", "0", "c"]);
        assert!(json_steps("a..b").is_err());
        assert!(json_steps("a[x]").is_err());
        assert!(json_steps("a[0]b").is_err());
        assert!(json_steps("").is_err());
    }

    #[test]
    fn strings_true_false_and_null_are_rewritten_as_in_directus() {
        let parsed = parse(
            &json!({"title": {"_eq": "null"}}),
            &snapshot(),
            "articles",
            chrono::DateTime::UNIX_EPOCH,
            Limits::default(),
        )
        .unwrap();
        let Filter::Condition(condition) = parsed else {
            panic!()
        };
        assert_eq!(condition.operand, Operand::Scalar(Scalar::Null));
    }

    #[test]
    fn limits_bound_the_tree() {
        let wide: Vec<Value> = (0..1001).map(|i| json!({"id": {"_eq": i}})).collect();
        assert!(reason(json!({"_or": wide})).contains("more than 1000"));
        let mut deep = json!({"id": {"_eq": 1}});
        for _ in 0..11 {
            deep = json!({"_and": [deep]});
        }
        assert!(reason(deep).contains("deeper than 10"));
    }

    const USER: &str = "9d6a3c8e-5d1f-4f5e-9a57-2b1a4c1e0f01";
    const ROLE: &str = "4b0f3a1c-8c2d-4e6b-a1f7-0c9d2e3f4a5b";
    const PARENT_ROLE: &str = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b";
    const POLICY: &str = "7e8f9a0b-1c2d-4e3f-8a5b-6c7d8e9f0a1b";

    fn people() -> SchemaSnapshot {
        catalog::single_table(
            "people",
            &[
                ("id", "int4"),
                ("owner", "uuid"),
                ("org", "int4"),
                ("label", "varchar"),
                ("born", "date"),
            ],
        )
    }

    fn signed_in() -> Variables {
        let row = |v: Value| v.as_object().cloned().map(std::sync::Arc::new);
        Variables {
            now: chrono::DateTime::UNIX_EPOCH,
            user: Some(USER.into()),
            role: Some(ROLE.into()),
            roles: vec![ROLE.into(), PARENT_ROLE.into()],
            policies: vec![POLICY.into()],
            user_row: row(json!({"org": 7, "nick": "ann", "avatar": {"size": 3}})),
            role_row: row(json!({"name": "Editor"})),
        }
    }

    /// The operand of a single-condition filter.
    fn operand(filter: Value, vars: Variables) -> Operand {
        match parse(&filter, &people(), "people", vars, Limits::default()) {
            Ok(Filter::Condition(condition)) => condition.operand,
            other => panic!("expected one condition, got {other:?}"),
        }
    }

    fn text(s: &str) -> Scalar {
        Scalar::Text(s.into())
    }

    #[test]
    fn current_user_and_role_are_the_callers_ids() {
        assert_eq!(
            operand(json!({"owner": {"_eq": "$CURRENT_USER"}}), signed_in()),
            Operand::Scalar(text(USER))
        );
        assert_eq!(
            operand(json!({"label": {"_eq": "$CURRENT_ROLE"}}), signed_in()),
            Operand::Scalar(text(ROLE))
        );
    }

    #[test]
    fn anonymous_current_user_is_null() {
        let anonymous = Variables::from(chrono::DateTime::UNIX_EPOCH);
        assert_eq!(
            operand(json!({"owner": {"_eq": "$CURRENT_USER"}}), anonymous.clone()),
            Operand::Scalar(Scalar::Null)
        );
        assert_eq!(
            operand(json!({"owner": {"_in": ["$CURRENT_USER"]}}), anonymous),
            Operand::List(vec![Scalar::Null])
        );
    }

    #[test]
    fn current_roles_and_policies_expand_inside_in_lists() {
        let both = Operand::List(vec![text(ROLE), text(PARENT_ROLE)]);
        assert_eq!(
            operand(json!({"owner": {"_in": "$CURRENT_ROLES"}}), signed_in()),
            both
        );
        assert_eq!(
            operand(json!({"owner": {"_in": ["$CURRENT_ROLES"]}}), signed_in()),
            both
        );
        assert_eq!(
            operand(
                json!({"owner": {"_nin": ["$CURRENT_USER", "$CURRENT_ROLES"]}}),
                signed_in()
            ),
            Operand::List(vec![text(USER), text(ROLE), text(PARENT_ROLE)])
        );
        assert_eq!(
            operand(json!({"owner": {"_in": ["$CURRENT_POLICIES"]}}), signed_in()),
            Operand::List(vec![text(POLICY)])
        );
        assert_eq!(
            operand(json!({"owner": {"_in": ["$CURRENT_POLICIES.id"]}}), signed_in()),
            Operand::List(vec![text(POLICY)])
        );
    }

    #[test]
    fn a_variable_list_may_expand_to_nothing() {
        let no_role = Variables {
            user: Some(USER.into()),
            ..Variables::default()
        };
        assert_eq!(
            operand(json!({"owner": {"_in": "$CURRENT_ROLES"}}), no_role),
            Operand::List(Vec::new())
        );
        // A list written empty is still refused.
        assert!(
            parse(
                &json!({"owner": {"_in": []}}),
                &people(),
                "people",
                signed_in(),
                Limits::default()
            )
            .is_err()
        );
    }

    #[test]
    fn current_user_and_role_paths_read_the_supplied_rows() {
        assert_eq!(
            operand(json!({"org": {"_eq": "$CURRENT_USER.org"}}), signed_in()),
            Operand::Scalar(Scalar::Int(7))
        );
        assert_eq!(
            operand(json!({"org": {"_in": ["$CURRENT_USER.org", 9]}}), signed_in()),
            Operand::List(vec![Scalar::Int(7), Scalar::Int(9)])
        );
        assert_eq!(
            operand(json!({"org": {"_eq": "$CURRENT_USER.avatar.size"}}), signed_in()),
            Operand::Scalar(Scalar::Int(3))
        );
        assert_eq!(
            operand(json!({"label": {"_eq": "$CURRENT_ROLE.name"}}), signed_in()),
            Operand::Scalar(text("Editor"))
        );
        assert_eq!(
            operand(json!({"label": {"_contains": "$CURRENT_USER.nick"}}), signed_in()),
            Operand::Text("ann".into())
        );
    }

    #[test]
    fn unknown_paths_resolve_to_null_as_in_directus() {
        assert_eq!(
            operand(json!({"org": {"_eq": "$CURRENT_USER.nope"}}), signed_in()),
            Operand::Scalar(Scalar::Null)
        );
        assert_eq!(
            operand(json!({"label": {"_eq": "$CURRENT_ROLES.name"}}), signed_in()),
            Operand::Scalar(Scalar::Null)
        );
        let anonymous = Variables::default();
        assert_eq!(
            operand(json!({"org": {"_eq": "$CURRENT_USER.org"}}), anonymous),
            Operand::Scalar(Scalar::Null)
        );
    }

    #[test]
    fn now_works_inside_in_lists() {
        assert_eq!(
            operand(json!({"born": {"_in": ["$NOW", "$NOW(-1 day)"]}}), signed_in()),
            Operand::List(vec![
                Scalar::Date(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()),
                Scalar::Date(chrono::NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
            ])
        );
    }

    #[test]
    fn a_literal_that_only_looks_like_a_variable_stays_literal() {
        assert_eq!(
            operand(json!({"label": {"_eq": "$CURRENT_USERS"}}), signed_in()),
            Operand::Scalar(text("$CURRENT_USERS"))
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_json_never_panics(text in ".{0,200}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = parse(&value, &snapshot(), "articles", chrono::DateTime::UNIX_EPOCH, Limits::default());
            }
        }
    }
}
