//! Compiles and runs item reads: one SQL statement per request, relations included as
//! correlated subqueries that build JSON inside Postgres (no N+1 round trips), each row rendered
//! straight to JSON text in Directus's value shapes, so the server never re-encodes rows.

use sqlx::{PgPool, Row};
use tracing::instrument;

use super::compile::{self, Bind, Sql, StaleSchema};
use super::rules::{ReadRules, RowRule};
use crate::core::field_type::FieldType;
use crate::core::filter::Function;
use crate::core::query::aggregate::AggregateFn;
use crate::core::query::fields::{Nested, Selection};
use crate::core::query::{Query, Sort};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::db::sql::{ident, literal, table};
use crate::error::Error;

/// Where rows come from and what else narrows them.
pub struct Target<'a> {
    pub snapshot: &'a SchemaSnapshot,
    pub schema: &'a str,
    pub collection: &'a Collection,
    /// What the caller may see, applied at every level of the statement.
    pub rules: &'a ReadRules,
}

/// `select wal.n, null from …`: which of `rows` (a JSON array of versions of rows of the
/// collection, as the WAL carried them) pass the caller's row rule, the query's filter and its
/// search, with related rows as they are now; by 1-based position in the array.
pub fn passing_versions(target: &Target<'_>, query: &Query, rows: String) -> Result<Sql, StaleSchema> {
    let mut sql = Sql::default();
    // The second column keeps the shape of [`select_versions`].
    sql.push("select wal.n, null::text from ");
    versions(&mut sql, target, rows);
    where_clause(&mut sql, target, query, None)?;
    Ok(sql)
}

/// [`select`] of versions of rows (a JSON array, as the WAL carried them) instead of the
/// table: `(position, row json)` of those that pass the rules, filter and search, as the caller
/// reads them, relations included as they are now.
pub fn select_versions(target: &Target<'_>, query: &Query, rows: String) -> Result<Sql, StaleSchema> {
    let mut sql = Sql::default();
    sql.push("select wal.n, ");
    row_text(&mut sql, target, query)?;
    sql.push(" from ");
    versions(&mut sql, target, rows);
    where_clause(&mut sql, target, query, None)?;
    Ok(sql)
}

/// Row `t` as the JSON text the query's `fields` make of it.
fn row_text(sql: &mut Sql, target: &Target<'_>, query: &Query) -> Result<(), StaleSchema> {
    object(sql, target, &target.collection.collection, &query.fields, "t")?;
    sql.push("::text");
    Ok(())
}

/// The rows of the JSON array `rows` as rows `t` of the collection's table, numbered `wal.n`.
fn versions(sql: &mut Sql, target: &Target<'_>, rows: String) {
    sql.push("jsonb_array_elements(cast(")
        .bind(Bind::Text(Some(rows)))
        .push(" as jsonb)) with ordinality as wal(v, n) cross join lateral jsonb_populate_record(null::")
        .push(&table(target.schema, &target.collection.collection))
        .push(", wal.v) t");
}

/// `select <row json> from <collection> t where … order by … limit … offset …`.
pub fn select(target: &Target<'_>, query: &Query, key: Option<&str>) -> Result<Sql, StaleSchema> {
    if !query.aggregate.is_empty() && key.is_none() {
        return aggregate_select(target, query);
    }
    let mut sql = Sql::default();
    sql.push("select ");
    row_text(&mut sql, target, query)?;
    sql.push(" from ")
        .push(&table(target.schema, &target.collection.collection))
        .push(" t");
    where_clause(&mut sql, target, query, key)?;
    if key.is_none() {
        let root = &target.collection.collection;
        page(
            &mut sql,
            target,
            root,
            &query.sort,
            query.limit,
            query.offset,
            "t",
        )?;
    }
    Ok(sql)
}

/// `select json_build_object(<group keys>, <aggregates>) … group by …`: Directus's aggregate
/// rows, with counts, integer and numeric results as strings (as node-pg returns them).
fn aggregate_select(target: &Target<'_>, query: &Query) -> Result<Sql, StaleSchema> {
    let mut sql = Sql::default();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut group_exprs = Vec::new();
    for key in &query.group_by {
        // Grouping by a field visible only in some rows groups the others under null.
        let column = visible_column(&mut sql, target, &key.field)?;
        let expr = match key.function {
            Some(function) => function_expr(function, &column),
            None => column.clone(),
        };
        let rendered = match key.function {
            Some(_) => expr.clone(),
            None => render(&column, key.field_type),
        };
        pairs.push((key.key(), rendered));
        group_exprs.push(expr);
    }
    let mut nested: Vec<(&'static str, Vec<(String, String)>)> = Vec::new();
    for aggregate in &query.aggregate {
        let name = aggregate.function.name();
        let Some((field, field_type)) = &aggregate.field else {
            pairs.push((name.to_string(), "count(*)::text".to_string()));
            continue;
        };
        // A field visible only in some rows aggregates only over those rows.
        let column = visible_column(&mut sql, target, field)?;
        let float = matches!(field_type, FieldType::Float);
        let as_text = |e: String| if float { e } else { format!("{e}::text") };
        let expr = match aggregate.function {
            AggregateFn::Count | AggregateFn::CountAll => format!("count({column})::text"),
            AggregateFn::CountDistinct => format!("count(distinct {column})::text"),
            AggregateFn::Sum => as_text(format!("sum({column})")),
            AggregateFn::SumDistinct => as_text(format!("sum(distinct {column})")),
            AggregateFn::Avg => as_text(format!("avg({column})")),
            AggregateFn::AvgDistinct => as_text(format!("avg(distinct {column})")),
            AggregateFn::Min => render(&format!("min({column})"), *field_type),
            AggregateFn::Max => render(&format!("max({column})"), *field_type),
        };
        match nested.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push((field.clone(), expr)),
            None => nested.push((name, vec![(field.clone(), expr)])),
        }
    }
    for (name, list) in nested {
        let inner: Vec<String> = list.iter().map(|(k, e)| format!("{}, {e}", literal(k))).collect();
        pairs.push((
            name.to_string(),
            format!("json_build_object({})", inner.join(", ")),
        ));
    }
    let members: Vec<String> = pairs
        .iter()
        .map(|(k, e)| format!("{}, {e}", literal(k)))
        .collect();
    sql.push(&format!(
        "select json_build_object({})::text from ",
        members.join(", ")
    ));
    sql.push(&table(target.schema, &target.collection.collection))
        .push(" t");
    where_clause(&mut sql, target, query, None)?;
    if !group_exprs.is_empty() {
        sql.push(" group by ").push(&group_exprs.join(", "));
        let root = &target.collection.collection;
        page(
            &mut sql,
            target,
            root,
            &query.sort,
            query.limit,
            query.offset,
            "t",
        )?;
    }
    Ok(sql)
}

/// The root collection's column `field` as the caller may see it: the column, or
/// `(case when <rule> then t.field end)` where only some rows show it.
fn visible_column(sql: &mut Sql, target: &Target<'_>, field: &str) -> Result<String, StaleSchema> {
    let column = format!("t.{}", ident(field));
    match target.rules.field_condition(&target.collection.collection, field) {
        None => Ok(column),
        Some(rule) => sql.fragment(|case| {
            case.push("(case when ");
            compile::filter(
                case,
                rule,
                target.snapshot,
                target.schema,
                &target.collection.collection,
                "t",
            )?;
            case.push(&format!(" then {column} end)"));
            Ok(())
        }),
    }
}

/// The caller's row rule on `collection` (rows aliased `alias`) as SQL text sharing `sql`'s
/// parameters: `None` when every row is visible.
fn row_condition(
    sql: &mut Sql,
    target: &Target<'_>,
    collection: &str,
    alias: &str,
) -> Result<Option<String>, StaleSchema> {
    match target.rules.rows(collection) {
        RowRule::All => Ok(None),
        RowRule::None => Ok(Some("false".into())),
        RowRule::Matching(rule) => sql
            .fragment(|part| compile::filter(part, rule, target.snapshot, target.schema, collection, alias))
            .map(Some),
    }
}

fn function_expr(function: Function, column: &str) -> String {
    // Directus on Postgres 14+ returns these as strings.
    format!("{}::text", compile::extract(function, column))
}

/// For a create whose read-back needs only this row's own columns (no relations, no filter,
/// no search): `select <row json> from ins t`, to run after `with ins as (insert … returning *)`
/// in the same statement. `None` when the read-back needs more than the inserted row.
pub fn select_inserted(target: &Target<'_>, query: &Query) -> Option<Sql> {
    // The caller's rules may hide the new row or some of its fields: those read back the
    // normal way, after the insert.
    let unrestricted = target.rules.unrestricted
        || target
            .rules
            .collections
            .get(&target.collection.collection)
            .is_some_and(|rules| rules.rows.is_none() && rules.conditional.is_empty());
    let simple = unrestricted
        && query.filter.is_none()
        && query.search.is_none()
        && query.aggregate.is_empty()
        && query
            .fields
            .iter()
            .all(|s| matches!(s, Selection::Column { .. } | Selection::Function { .. }));
    if !simple {
        return None;
    }
    let mut sql = Sql::default();
    sql.push("select ");
    object(
        &mut sql,
        target,
        &target.collection.collection,
        &query.fields,
        "t",
    )
    .ok()?;
    sql.push("::text from ins t");
    Some(sql)
}

/// `select count(*) …`, with the filter and search (`filter_count`) or without (`total_count`).
pub fn count(target: &Target<'_>, query: Option<&Query>) -> Result<Sql, StaleSchema> {
    let mut sql = Sql::default();
    sql.push("select count(*) from ")
        .push(&table(target.schema, &target.collection.collection))
        .push(" t");
    // `total_count` counts every row the caller may see, so the row rule applies without a query.
    where_clause(&mut sql, target, query.unwrap_or(&Query::default()), None)?;
    Ok(sql)
}

/// `select count(*) … where <filter>`, without the caller's rules: for checking that the
/// items a write names all match that write's rule.
pub fn count_matching(target: &Target<'_>, filter: &crate::core::filter::Filter) -> Result<Sql, StaleSchema> {
    let mut sql = Sql::default();
    sql.push("select count(*) from ")
        .push(&table(target.schema, &target.collection.collection))
        .push(" t where ");
    compile::filter(
        &mut sql,
        filter,
        target.snapshot,
        target.schema,
        &target.collection.collection,
        "t",
    )?;
    Ok(sql)
}

fn where_clause(
    sql: &mut Sql,
    target: &Target<'_>,
    query: &Query,
    key: Option<&str>,
) -> Result<(), StaleSchema> {
    let mut first = true;
    let mut and = |sql: &mut Sql| {
        sql.push(if first { " where " } else { " and " });
        first = false;
    };
    if let Some(key) = key {
        let pk = target.collection.primary_key.as_deref().unwrap_or("id");
        let data_type = column_type(target.collection, pk).unwrap_or_else(|| "text".into());
        and(sql);
        sql.push(&format!("t.{} = cast(", ident(pk)))
            .bind(Bind::Text(Some(key.to_string())))
            .push(&format!(" as {data_type})"));
    }
    if let Some(rule) = row_condition(sql, target, &target.collection.collection, "t")? {
        and(sql);
        sql.push(&rule);
    }
    if let Some(filter) = &query.filter {
        and(sql);
        compile::filter_as(
            sql,
            filter,
            target.snapshot,
            target.schema,
            &target.collection.collection,
            "t",
            target.rules,
        )?;
    }
    if let Some(search) = &query.search {
        and(sql);
        search_clause(sql, target, target.collection, search, "t")?;
    }
    Ok(())
}

/// `expr`, or `case when <rule> then expr end` where the field is visible only in some rows.
fn guarded(
    sql: &mut Sql,
    target: &Target<'_>,
    collection: &str,
    field: &str,
    alias: &str,
    expr: &str,
) -> Result<(), StaleSchema> {
    match target.rules.field_condition(collection, field) {
        None => {
            sql.push(expr);
        }
        Some(rule) => {
            sql.push("case when ");
            compile::filter(sql, rule, target.snapshot, target.schema, collection, alias)?;
            sql.push(" then ").push(expr).push(" end");
        }
    }
    Ok(())
}

fn column_type(collection: &Collection, field: &str) -> Option<String> {
    Some(collection.field(field)?.schema.as_ref()?.data_type.clone())
}

/// `order by … limit … offset …` for rows of `collection` aliased `alias`.
fn page(
    sql: &mut Sql,
    target: &Target<'_>,
    collection: &str,
    sort: &[Sort],
    limit: Option<i64>,
    offset: i64,
    alias: &str,
) -> Result<(), StaleSchema> {
    for (i, key) in sort.iter().enumerate() {
        let expr = sort_expr(sql, target, collection, key, alias, 0)?;
        sql.push(if i == 0 { " order by " } else { ", " });
        sql.push(&expr).push(if key.descending { " desc" } else { "" });
    }
    if let Some(limit) = limit {
        sql.push(&format!(" limit {limit}"));
    }
    if offset > 0 {
        sql.push(&format!(" offset {offset}"));
    }
    Ok(())
}

/// A sort key's expression as the caller may see it: the column (null in rows where the
/// caller's rules hide the field), or for `author.name` a scalar subquery along the M2O hops
/// that finds only related rows the caller may read. A hidden related row sorts as null, as a
/// missing one does; ordering by values the caller cannot read would reveal them one
/// comparison at a time.
fn sort_expr(
    sql: &mut Sql,
    target: &Target<'_>,
    collection: &str,
    key: &Sort,
    alias: &str,
    hop: usize,
) -> Result<String, StaleSchema> {
    let Some(step) = key.through.get(hop) else {
        let column = format!("{alias}.{}", ident(&key.field));
        return match target.rules.field_condition(collection, &key.field) {
            None => Ok(column),
            Some(rule) => sql.fragment(|case| {
                case.push("(case when ");
                compile::filter(case, rule, target.snapshot, target.schema, collection, alias)?;
                case.push(" then ").push(&column).push(" end)");
                Ok(())
            }),
        };
    };
    let sub = format!("{alias}_s{hop}");
    let inner = sort_expr(sql, target, &step.related, key, &sub, hop + 1)?;
    let mut expr = format!(
        "(select {inner} from {} {sub} where {sub}.{} = {alias}.{}",
        table(target.schema, &step.related),
        ident(&step.key),
        ident(&step.field)
    );
    if let Some(rule) = row_condition(sql, target, &step.related, &sub)? {
        expr.push_str(" and ");
        expr.push_str(&rule);
    }
    expr.push(')');
    Ok(expr)
}

/// Directus's `search`: text fields by case-insensitive substring, numbers and uuids by
/// equality when the term is one; no field qualifies → no row.
fn search_clause(
    sql: &mut Sql,
    target: &Target<'_>,
    collection: &Collection,
    term: &str,
    alias: &str,
) -> Result<(), StaleSchema> {
    let mut any = false;
    sql.push("(");
    for field in &collection.fields {
        let searchable = field.meta.as_ref().is_none_or(|m| m.searchable);
        let Some(column) = &field.schema else { continue };
        // Searching a field the caller may not read would reveal its values one guess at a time.
        if !searchable || !target.rules.readable(&collection.collection, &field.field) {
            continue;
        }
        let expr = format!("{alias}.{}", ident(&field.field));
        let condition = match field.field_type {
            FieldType::String | FieldType::Text => Some((
                format!("lower({expr}) like "),
                format!("%{}%", term.to_lowercase()),
            )),
            FieldType::Integer | FieldType::BigInteger | FieldType::Float | FieldType::Decimal
                if canonical_number(term, field.field_type) =>
            {
                Some((format!("{expr} = cast("), term.to_string()))
            }
            FieldType::Uuid if uuid::Uuid::parse_str(term).is_ok() => {
                Some((format!("{expr} = cast("), term.to_string()))
            }
            _ => None,
        };
        let Some((prefix, value)) = condition else {
            continue;
        };
        if any {
            sql.push(" or ");
        }
        any = true;
        let conditional = target.rules.field_condition(&collection.collection, &field.field);
        if let Some(rule) = conditional {
            sql.push("(");
            compile::filter(
                sql,
                rule,
                target.snapshot,
                target.schema,
                &collection.collection,
                alias,
            )?;
            sql.push(" and ");
        }
        sql.push(&prefix).bind(Bind::Text(Some(value)));
        if prefix.ends_with("cast(") {
            sql.push(&format!(" as {})", column.data_type));
        }
        if conditional.is_some() {
            sql.push(")");
        }
    }
    if !any {
        sql.push("false");
    }
    sql.push(")");
    Ok(())
}

/// `String(Number(s)) === s` in Directus, and the value fits the column type.
fn canonical_number(term: &str, field_type: FieldType) -> bool {
    let Ok(number) = term.parse::<f64>() else {
        return false;
    };
    let canonical = if number.fract() == 0.0 && number.abs() < 1e21 {
        format!("{number:.0}")
    } else {
        number.to_string()
    };
    if canonical != term {
        return false;
    }
    match field_type {
        FieldType::Integer => number.fract() == 0.0 && (i32::MIN as f64..=i32::MAX as f64).contains(&number),
        FieldType::BigInteger => number.fract() == 0.0 && number.abs() <= 9_007_199_254_740_991.0,
        _ => true,
    }
}

/// `json_build_object('k', expr, …)` for `selections` of rows aliased `alias`.
fn object(
    sql: &mut Sql,
    target: &Target<'_>,
    collection: &str,
    selections: &[Selection],
    alias: &str,
) -> Result<(), StaleSchema> {
    if selections.is_empty() {
        sql.push("json_build_object()");
        return Ok(());
    }
    // json_build_object takes at most 100 arguments: wide rows join 50-pair objects as text.
    let chunks: Vec<&[Selection]> = selections.chunks(50).collect();
    let wide = chunks.len() > 1;
    if wide {
        sql.push("('{' || ");
    }
    for (c, chunk) in chunks.iter().enumerate() {
        if c > 0 {
            sql.push(" || ',' || ");
        }
        if wide {
            sql.push("regexp_replace(");
        }
        sql.push("json_build_object(");
        for (i, selection) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push(&literal(selection.key())).push(", ");
            value(sql, target, collection, selection, alias)?;
        }
        sql.push(")");
        if wide {
            sql.push("::text, '^\\{|\\}$', '', 'g')");
        }
    }
    if wide {
        sql.push(" || '}')::json");
    }
    Ok(())
}

fn value(
    sql: &mut Sql,
    target: &Target<'_>,
    collection: &str,
    selection: &Selection,
    alias: &str,
) -> Result<(), StaleSchema> {
    match selection {
        Selection::Column { field, field_type } => {
            let expr = render(&format!("{alias}.{}", ident(field)), *field_type);
            guarded(sql, target, collection, field, alias, &expr)?;
        }
        Selection::Json { field, steps, .. } => {
            let path = sql.param(Bind::TextArray(steps.iter().cloned().map(Some).collect()));
            let expr = format!("({alias}.{}::jsonb #> cast({path} as text[]))", ident(field));
            guarded(sql, target, collection, field, alias, &expr)?;
        }
        Selection::Function {
            field,
            function: Function::Count,
            ..
        } => {
            let column = format!("{alias}.{}", ident(field));
            // Only related rows the caller may read are counted.
            let related = target
                .snapshot
                .one_to_many(collection, field)
                .map(|r| r.collection.clone());
            let condition = match related.as_deref() {
                Some(related) => row_condition(sql, target, related, &compile::count_alias(alias))?,
                None => None,
            };
            let counted = compile::count_related_where(
                target.snapshot,
                target.schema,
                collection,
                field,
                alias,
                condition.as_deref(),
            )
            .unwrap_or_else(|| compile::count_json(&column));
            // Directus on Postgres returns counts as strings.
            guarded(sql, target, collection, field, alias, &format!("{counted}::text"))?;
        }
        Selection::Function { field, function, .. } => {
            let expr = function_expr(*function, &format!("{alias}.{}", ident(field)));
            guarded(sql, target, collection, field, alias, &expr)?;
        }
        Selection::Alias { target: inner, .. } => {
            value(sql, target, collection, inner, alias)?;
        }
        Selection::ManyToOne {
            field,
            related,
            related_key,
            children,
            nested,
        } => {
            let sub = format!("{alias}_{}", sql.binds.len() + sql.text.len());
            sql.push("(select ");
            object(sql, target, related, children, &sub)?;
            sql.push(&format!(
                " from {} {sub} where {sub}.{} = {alias}.{}",
                table(target.schema, related),
                ident(related_key),
                ident(field)
            ));
            nested_conditions(sql, target, related, nested, &sub)?;
            sql.push(")");
        }
        Selection::OneToMany {
            related,
            related_field,
            related_key,
            children,
            nested,
            ..
        } => {
            let sub = format!("{alias}_{}", sql.binds.len() + sql.text.len());
            let parent_key = target
                .snapshot
                .collection(collection)
                .and_then(|c| c.primary_key.clone())
                .ok_or_else(|| StaleSchema {
                    collection: collection.into(),
                    field: "*".into(),
                })?;
            sql.push("(select coalesce(json_agg(x.o), '[]'::json) from (select ");
            match children {
                Some(children) => object(sql, target, related, children, &sub)?,
                None => {
                    let key_type = target
                        .snapshot
                        .field(related, related_key)
                        .map(|f| f.field_type)
                        .unwrap_or(FieldType::Unknown);
                    sql.push(&render(&format!("{sub}.{}", ident(related_key)), key_type));
                }
            }
            sql.push(&format!(
                " as o from {} {sub} where {sub}.{} = {alias}.{}",
                table(target.schema, related),
                ident(related_field),
                ident(&parent_key),
            ));
            nested_conditions(sql, target, related, nested, &sub)?;
            let default_sort = [Sort {
                field: related_key.clone(),
                descending: false,
                through: Vec::new(),
            }];
            let sort = if nested.sort.is_empty() {
                &default_sort[..]
            } else {
                &nested.sort
            };
            page(sql, target, related, sort, nested.limit, nested.offset, &sub)?;
            sql.push(") x)");
        }
    }
    Ok(())
}

/// `deep`'s `_filter` and `_search` on a relation's rows.
fn nested_conditions(
    sql: &mut Sql,
    target: &Target<'_>,
    related: &str,
    nested: &Nested,
    alias: &str,
) -> Result<(), StaleSchema> {
    if let Some(rule) = row_condition(sql, target, related, alias)? {
        sql.push(" and ").push(&rule);
    }
    if let Some(filter) = &nested.filter {
        sql.push(" and ");
        compile::filter_as(
            sql,
            filter,
            target.snapshot,
            target.schema,
            related,
            alias,
            target.rules,
        )?;
    }
    if let (Some(search), Some(collection)) = (&nested.search, target.snapshot.collection(related)) {
        sql.push(" and ");
        search_clause(sql, target, collection, search, alias)?;
    }
    Ok(())
}

/// A column in Directus's JSON shape for its type (node-pg defaults, as Directus serves them).
fn render(column: &str, field_type: FieldType) -> String {
    match field_type {
        // node-pg returns int8 and numeric as strings; Directus passes them on.
        FieldType::BigInteger | FieldType::Decimal | FieldType::Time | FieldType::Unknown => {
            format!("{column}::text")
        }
        FieldType::Timestamp => {
            format!("to_char({column} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
        }
        FieldType::DateTime => format!("to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS')"),
        FieldType::Date => format!("to_char({column}, 'YYYY-MM-DD')"),
        FieldType::Csv => format!(
            "case when {column} is null then null when {column} = '' then '[]'::json \
             else to_json(string_to_array({column}, ',')) end"
        ),
        FieldType::Hash => {
            format!("case when {column} is null or {column} = '' then null else '**********' end")
        }
        _ => column.to_string(),
    }
}

/// Compiles and runs a read; the rows' JSON texts, in order.
pub async fn fetch<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    target: &Target<'_>,
    query: &Query,
    key: Option<&str>,
) -> Result<Vec<String>, Error> {
    rows(
        executor,
        &select(target, query, key)?,
        &target.collection.collection,
    )
    .await
}

/// Runs a compiled select and returns the rows' JSON texts, in order.
#[instrument(skip_all, fields(collection = %collection))]
pub async fn rows<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    sql: &Sql,
    collection: &str,
) -> Result<Vec<String>, Error> {
    let rows = super::query(sql).fetch_all(executor).await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(Error::from))
        .collect()
}

/// Runs a compiled select in a repeatable-read, read-only transaction; its rows and the
/// snapshot they were read under (what a realtime subscription's `init` hands off from).
pub async fn rows_with_snapshot(
    pool: &PgPool,
    sql: &Sql,
    collection: &str,
) -> Result<(Vec<String>, crate::core::realtime::snapshot::Snapshot), Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only")
        .execute(&mut *tx)
        .await?;
    let snapshot = current_snapshot(&mut *tx).await?;
    let rows = rows(&mut *tx, sql, collection).await?;
    tx.commit().await?;
    Ok((rows, snapshot))
}

/// The transaction snapshot reads on `executor` see (`pg_current_snapshot()`): what a realtime
/// subscription's feed hands off from.
pub async fn current_snapshot<'e>(
    executor: impl sqlx::PgExecutor<'e>,
) -> Result<crate::core::realtime::snapshot::Snapshot, Error> {
    let text: String = sqlx::query("select pg_current_snapshot()::text")
        .fetch_one(executor)
        .await?
        .try_get(0)?;
    crate::core::realtime::snapshot::Snapshot::parse(&text).map_err(Error::internal)
}

/// Runs a compiled [`select_versions`] or [`passing_versions`]: `(position, row json)`.
pub async fn numbered_rows<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    sql: &Sql,
) -> Result<Vec<(i64, Option<String>)>, Error> {
    let rows = super::query(sql).fetch_all(executor).await?;
    rows.iter()
        .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<Option<String>, _>(1)?)))
        .collect()
}

/// Runs a compiled count.
pub async fn number<'e>(executor: impl sqlx::PgExecutor<'e>, sql: &Sql) -> Result<i64, Error> {
    let row = super::query(sql).fetch_one(executor).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Joins row texts into a JSON array text.
pub fn array(rows: &[String]) -> String {
    let mut out = String::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(row);
    }
    out.push(']');
    out
}

/// Checks a primary key from a URL against its type, as Directus does (`validate-keys.ts`):
/// a non-integer for an integer key or a malformed uuid is `FORBIDDEN`.
pub fn check_key(collection: &Collection, key: &str) -> Result<(), Error> {
    let pk = collection
        .primary_key
        .as_deref()
        .and_then(|pk| collection.field(pk))
        .ok_or(Error::Forbidden)?;
    let ok = match pk.field_type {
        FieldType::Integer | FieldType::BigInteger => key.parse::<i64>().is_ok(),
        FieldType::Uuid => uuid::Uuid::parse_str(key).is_ok(),
        _ => !key.contains('\0'),
    };
    if ok { Ok(()) } else { Err(Error::Forbidden) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_numbers_only() {
        assert!(canonical_number("5", FieldType::Integer));
        assert!(canonical_number("-2.5", FieldType::Float));
        assert!(!canonical_number("05", FieldType::Integer));
        assert!(!canonical_number("1.0", FieldType::Float));
        assert!(!canonical_number(" 1", FieldType::Integer));
        assert!(!canonical_number("3000000000", FieldType::Integer));
        assert!(!canonical_number("abc", FieldType::Integer));
    }

    #[test]
    fn rows_join_into_an_array() {
        assert_eq!(
            array(&["{\"a\":1}".into(), "{\"a\":2}".into()]),
            "[{\"a\":1},{\"a\":2}]"
        );
        assert_eq!(array(&[]), "[]");
    }
}
