//! Compiles query ASTs to SQL text plus bound parameters. Pure: no connection, no I/O, so the
//! output can be unit-tested and benchmarked.
//!
//! Identifiers come from the schema snapshot (via the validated AST) and are quoted; every value
//! is a bound parameter, sent as text and cast to the column's own type, so Postgres parses it
//! exactly as it would a literal for that column. Semantics match `core::filter::eval`.

use super::rules::{ReadRules, RowRule};
use crate::core::field_type::FieldType;
use crate::core::filter::eval::like_pattern;
use crate::core::filter::{Condition, Filter, Function, Operand, Operator, Quantifier, RelationKind, Scalar};
use crate::core::schema::SchemaSnapshot;
use crate::db::sql::{ident, table};

/// One bound parameter, always sent as text (or a text array) and cast in SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(Option<String>),
    TextArray(Vec<Option<String>>),
}

/// SQL text with `$n` placeholders and their values.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    aliases: usize,
}

impl Sql {
    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `bind`.
    pub fn bind(&mut self, bind: Bind) -> &mut Self {
        self.binds.push(bind);
        let n = self.binds.len();
        self.text.push('$');
        self.text.push_str(&n.to_string());
        self
    }

    /// Registers `bind` and returns its placeholder without writing it (for expressions built
    /// before they are written).
    pub fn param(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    /// Compiles a fragment to place later: it shares this statement's parameters, and its text
    /// is returned instead of appended.
    pub fn fragment<E>(&mut self, build: impl FnOnce(&mut Sql) -> Result<(), E>) -> Result<String, E> {
        let mut scratch = Sql {
            text: String::new(),
            binds: std::mem::take(&mut self.binds),
            aliases: self.aliases,
        };
        let outcome = build(&mut scratch);
        self.binds = scratch.binds;
        self.aliases = scratch.aliases;
        outcome.map(|()| scratch.text)
    }

    /// A fresh table alias for a subquery.
    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("r{}", self.aliases)
    }
}

/// Why a filter cannot be compiled: the snapshot changed under a validated AST.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field \"{field}\" of \"{collection}\" is no longer in the schema")]
pub struct StaleSchema {
    pub collection: String,
    pub field: String,
}

/// Appends `filter` on rows of `collection` aliased `alias` as a boolean SQL expression.
pub fn filter(
    sql: &mut Sql,
    filter: &Filter,
    snapshot: &SchemaSnapshot,
    schema: &str,
    collection: &str,
    alias: &str,
) -> Result<(), StaleSchema> {
    filter_in(sql, filter, snapshot, schema, collection, alias, None)
}

/// [`filter`] for a caller's own filter: a relational condition only looks at related rows
/// the caller may read, so a filter cannot probe values in rows hidden from them.
pub fn filter_as(
    sql: &mut Sql,
    filter: &Filter,
    snapshot: &SchemaSnapshot,
    schema: &str,
    collection: &str,
    alias: &str,
    rules: &ReadRules,
) -> Result<(), StaleSchema> {
    let rules = (!rules.unrestricted).then_some(rules);
    filter_in(sql, filter, snapshot, schema, collection, alias, rules)
}

fn filter_in(
    sql: &mut Sql,
    filter: &Filter,
    snapshot: &SchemaSnapshot,
    schema: &str,
    collection: &str,
    alias: &str,
    rules: Option<&ReadRules>,
) -> Result<(), StaleSchema> {
    match filter {
        Filter::And(children) | Filter::Or(children) if children.is_empty() => {
            sql.push(if matches!(filter, Filter::And(_)) {
                "true"
            } else {
                "false"
            });
        }
        Filter::And(children) | Filter::Or(children) => {
            let joiner = if matches!(filter, Filter::And(_)) {
                " and "
            } else {
                " or "
            };
            sql.push("(");
            for (i, child) in children.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                filter_in(sql, child, snapshot, schema, collection, alias, rules)?;
            }
            sql.push(")");
        }
        Filter::Condition(condition) => {
            let stale = || StaleSchema {
                collection: collection.into(),
                field: condition.field.clone(),
            };
            let field = snapshot.field(collection, &condition.field).ok_or_else(stale)?;
            let column = match (condition.function, &field.schema) {
                // `count(o2m)` has no column of its own: it counts the related rows.
                (Some(Function::Count), None) => {
                    // A caller's count counts only the related rows they may read.
                    let related = snapshot
                        .one_to_many(collection, &condition.field)
                        .map(|r| r.collection.clone())
                        .ok_or_else(stale)?;
                    let rule = match rules.map(|r| r.rows(&related)) {
                        None | Some(RowRule::All) => None,
                        Some(RowRule::None) => Some("false".to_string()),
                        Some(RowRule::Matching(rule)) => Some(sql.fragment(|part| {
                            filter_in(part, rule, snapshot, schema, &related, &count_alias(alias), None)
                        })?),
                    };
                    let counted = count_related_where(
                        snapshot,
                        schema,
                        collection,
                        &condition.field,
                        alias,
                        rule.as_deref(),
                    )
                    .ok_or_else(stale)?;
                    (field.field_type, counted)
                }
                (_, Some(column)) => (field.field_type, column.data_type.clone()),
                (_, None) => return Err(stale()),
            };
            compile_condition(sql, condition, alias, column);
        }
        Filter::Relation(relation) => {
            let sub = sql.alias();
            let (related, join) = match &relation.kind {
                RelationKind::ManyToOne { related, related_key } => (
                    related,
                    format!(
                        "{sub}.{} = {alias}.{}",
                        ident(related_key),
                        ident(&relation.field)
                    ),
                ),
                RelationKind::OneToMany {
                    related,
                    related_field,
                    primary_key,
                    ..
                } => (
                    related,
                    format!("{sub}.{} = {alias}.{}", ident(related_field), ident(primary_key)),
                ),
            };
            let negate = matches!(
                relation.kind,
                RelationKind::OneToMany {
                    quantifier: Quantifier::None,
                    ..
                }
            );
            sql.push(if negate {
                "not exists (select 1 from "
            } else {
                "exists (select 1 from "
            });
            sql.push(&table(schema, related))
                .push(" ")
                .push(&sub)
                .push(" where ")
                .push(&join)
                .push(" and ");
            if let Some(rules) = rules {
                match rules.rows(related) {
                    RowRule::All => {}
                    RowRule::None => {
                        sql.push("false and ");
                    }
                    // The rule is the server's, not the caller's: compiled without restriction.
                    RowRule::Matching(rule) => {
                        filter_in(sql, rule, snapshot, schema, related, &sub, None)?;
                        sql.push(" and ");
                    }
                }
            }
            filter_in(sql, &relation.filter, snapshot, schema, related, &sub, rules)?;
            sql.push(")");
        }
    }
    Ok(())
}

fn compile_condition(
    sql: &mut Sql,
    condition: &Condition,
    alias: &str,
    (field_type, data_type): (FieldType, String),
) {
    use Operator::*;
    let column = format!("{alias}.{}", ident(&condition.field));
    // The column expression and the type values are cast to.
    let (expr, cast) = match (&condition.json, condition.function, field_type) {
        // `_json`: the value at a path inside the document; numbers compare only with numbers
        // (anything else there is unknown), everything else compares as its text.
        (Some(path), _, _) => {
            let steps: Vec<Option<String>> = path.steps.iter().cloned().map(Some).collect();
            if path.numeric {
                let p1 = sql.param(Bind::TextArray(steps.clone()));
                let p2 = sql.param(Bind::TextArray(steps));
                (
                    format!(
                        "(case when jsonb_typeof({column}::jsonb #> cast({p1} as text[])) = 'number' \
                         then ({column}::jsonb #>> cast({p2} as text[]))::numeric end)"
                    ),
                    "numeric".to_string(),
                )
            } else {
                let p = sql.param(Bind::TextArray(steps));
                (
                    format!("({column}::jsonb #>> cast({p} as text[]))"),
                    "text".to_string(),
                )
            }
        }
        // For an O2M alias the caller passed the counting subquery as the "type".
        (None, Some(Function::Count), FieldType::Alias) => (data_type, "bigint".to_string()),
        (None, Some(Function::Count), _) => (count_json(&column), "bigint".to_string()),
        (None, Some(function), _) => (extract(function, &column), "bigint".to_string()),
        (None, None, FieldType::Json) => (format!("{column}::jsonb"), "jsonb".to_string()),
        (None, None, _) => (column, data_type),
    };
    let value = |s: &Scalar| Bind::Text(s.to_sql_text());
    match (&condition.operand, condition.op) {
        (Operand::Scalar(Scalar::Null), Eq) => {
            sql.push(&expr).push(" is null");
        }
        (Operand::Scalar(Scalar::Null), Neq) => {
            sql.push(&expr).push(" is not null");
        }
        (Operand::Scalar(target), op) => {
            let symbol = match op {
                Eq => "=",
                Neq => "<>",
                Lt => "<",
                Lte => "<=",
                Gt => ">",
                _ => ">=",
            };
            sql.push(&expr)
                .push(" ")
                .push(symbol)
                .push(" cast(")
                .bind(value(target))
                .push(&format!(" as {cast})"));
        }
        (Operand::List(items), op) => {
            if op == Nin {
                sql.push("not ");
            }
            let array = items.iter().map(Scalar::to_sql_text).collect();
            sql.push("(")
                .push(&expr)
                .push(" = any(cast(")
                .bind(Bind::TextArray(array))
                .push(&format!(" as {cast}[])))"));
        }
        (Operand::Range(low, high), op) => {
            if op == Nbetween {
                sql.push("not ");
            }
            sql.push("(")
                .push(&expr)
                .push(" between cast(")
                .bind(value(low))
                .push(&format!(" as {cast}) and cast("));
            sql.bind(value(high)).push(&format!(" as {cast}))"));
        }
        (Operand::Flag(flag), op) => {
            let wants_null = match op {
                Null => *flag,
                Nnull => !*flag,
                _ => false,
            };
            match op {
                Null | Nnull => {
                    sql.push(&expr)
                        .push(if wants_null { " is null" } else { " is not null" });
                }
                _ => {
                    let wants_empty = (op == Empty) == *flag;
                    if wants_empty {
                        sql.push(&format!("({expr} is null or {expr}::text = '')"));
                    } else {
                        sql.push(&format!("({expr} is not null and {expr}::text <> '')"));
                    }
                }
            }
        }
        (Operand::Text(pattern), Regex) => {
            sql.push(&expr)
                .push("::text ~ ")
                .bind(Bind::Text(Some(pattern.clone())));
        }
        (Operand::Text(pattern), op) => {
            let Some((test, insensitive, negated)) = op.text_test() else {
                return;
            };
            sql.push(if negated { "not (" } else { "(" });
            if insensitive {
                sql.push("lower(").push(&expr).push("::text) like ");
            } else {
                sql.push(&expr).push("::text like ");
            }
            sql.bind(Bind::Text(Some(like_pattern(test, pattern, insensitive))))
                .push(")");
        }
    }
}

/// The `extract()` field of a date function (`weekday` is Postgres's `dow`).
pub fn date_part(function: Function) -> &'static str {
    match function {
        Function::Year => "year",
        Function::Month => "month",
        Function::Week => "week",
        Function::Day => "day",
        Function::Weekday => "dow",
        Function::Hour => "hour",
        Function::Minute => "minute",
        Function::Second => "second",
        // Not a date part; `count()` compiles through `count_json` / `count_related`.
        Function::Count => "epoch",
    }
}

/// `count(json_field)`: the length of a JSON array, unknown for anything else.
pub fn count_json(column: &str) -> String {
    format!(
        "(case when jsonb_typeof({column}::jsonb) = 'array' then jsonb_array_length({column}::jsonb) end)"
    )
}

/// `count(o2m_field)`: the related rows pointing at this row.
pub fn count_related(
    snapshot: &SchemaSnapshot,
    schema: &str,
    collection: &str,
    field: &str,
    alias: &str,
) -> Option<String> {
    count_related_where(snapshot, schema, collection, field, alias, None)
}

/// The subquery alias [`count_related_where`] gives the related rows.
pub fn count_alias(alias: &str) -> String {
    format!("{alias}_c")
}

/// [`count_related`], counting only related rows that also match `condition` (SQL over the
/// rows aliased [`count_alias`]): the caller's read rule on the related collection.
pub fn count_related_where(
    snapshot: &SchemaSnapshot,
    schema: &str,
    collection: &str,
    field: &str,
    alias: &str,
    condition: Option<&str>,
) -> Option<String> {
    let relation = snapshot.one_to_many(collection, field)?;
    let pk = snapshot.collection(collection)?.primary_key.as_deref()?;
    let sub = count_alias(alias);
    Some(format!(
        "(select count(*) from {} {sub} where {sub}.{} = {alias}.{}{})",
        table(schema, &relation.collection),
        ident(&relation.field),
        ident(pk),
        condition.map(|c| format!(" and {c}")).unwrap_or_default()
    ))
}

/// `extract()` as `core::filter::eval` mirrors it: whole numbers, fractions of seconds dropped.
pub fn extract(function: Function, column: &str) -> String {
    format!("floor(extract({} from {column}))::bigint", date_part(function))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::filter::TextTest;

    #[test]
    fn like_patterns_keep_wildcards_as_directus_does() {
        assert_eq!(like_pattern(TextTest::Contains, "50%", false), "%50%%");
        assert_eq!(like_pattern(TextTest::StartsWith, "ÄB", true), "äb%");
    }

    #[test]
    fn placeholders_number_in_order() {
        let mut sql = Sql::default();
        sql.push("a = ")
            .bind(Bind::Text(Some("1".into())))
            .push(" and b = ")
            .bind(Bind::Text(None));
        assert_eq!(sql.text, "a = $1 and b = $2");
        assert_eq!(sql.binds.len(), 2);
    }
}
