//! The Directus query language: parameters → a typed, schema-validated [`Query`].
//!
//! [`params`] decodes query strings; [`fields`] builds the selection tree; filters are
//! `core::filter`. The SQL compiler lives in `db::items` and the in-memory evaluator in
//! `core::filter::eval`; both consume the same AST, so REST reads, realtime subscriptions and
//! permission rules agree on what matches. Rules and messages follow Directus's
//! `sanitize-query.ts` and `validate-query.ts`.

pub mod aggregate;
mod deep;
pub mod fields;
pub mod params;

use serde_json::{Map, Value};

use crate::core::field_type::FieldType;
use crate::core::filter::{self, Filter, FilterError, Limits, Variables};
use crate::core::schema::SchemaSnapshot;
use fields::{FieldsError, Selection};

/// A validated read query on one collection. The default narrows nothing: no fields, no
/// filter, no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub fields: Vec<Selection>,
    pub filter: Option<Filter>,
    pub search: Option<String>,
    pub sort: Vec<Sort>,
    /// `None`: no limit (`limit=-1`).
    pub limit: Option<i64>,
    pub offset: i64,
    pub meta: Meta,
    /// `aggregate`: when present, rows are aggregates (grouped by `group_by`), not items.
    pub aggregate: Vec<aggregate::Aggregate>,
    pub group_by: Vec<aggregate::GroupKey>,
}

/// One `sort` key.
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    pub field: String,
    pub descending: bool,
    /// M2O hops to reach `field` (`author.name` sorts by the related author's name).
    pub through: Vec<Hop>,
}

/// One M2O hop of a relational sort: `field` of the current row references `related.key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub field: String,
    pub related: String,
    pub key: String,
}

/// Which counts `meta` asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Meta {
    pub total_count: bool,
    pub filter_count: bool,
}

/// Server-side settings the query rules depend on.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `QUERY_LIMIT_DEFAULT`, 100.
    pub default_limit: i64,
    /// `QUERY_LIMIT_MAX`; `None` is unlimited.
    pub max_limit: Option<i64>,
    /// `MAX_RELATIONAL_DEPTH`, 10.
    pub max_relational_depth: usize,
    pub filter_limits: Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_limit: 100,
            max_limit: None,
            max_relational_depth: 10,
            filter_limits: Limits::default(),
        }
    }
}

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// `INVALID_QUERY` with this reason.
    Invalid(String),
    /// `FORBIDDEN`: a field that does not exist (or may not be read), named with its path.
    Field {
        collection: String,
        field: String,
        path: Option<String>,
    },
}

impl From<FilterError> for QueryError {
    fn from(err: FilterError) -> Self {
        match err {
            FilterError::Invalid(reason) => QueryError::Invalid(reason),
            FilterError::Field { collection, field } => QueryError::Field {
                collection,
                field,
                path: None,
            },
        }
    }
}

impl From<FieldsError> for QueryError {
    fn from(err: FieldsError) -> Self {
        match err {
            FieldsError::Invalid(reason) => QueryError::Invalid(reason),
            FieldsError::Field {
                collection,
                field,
                path,
            } => QueryError::Field {
                collection,
                field,
                path,
            },
        }
    }
}

fn invalid(reason: impl Into<String>) -> QueryError {
    QueryError::Invalid(reason.into())
}

/// Parses decoded parameters (from [`params::decode`] or a `SEARCH` body's `query`).
pub fn parse(
    params: &Map<String, Value>,
    snapshot: &SchemaSnapshot,
    collection: &str,
    vars: impl Into<Variables>,
    settings: Settings,
) -> Result<Query, QueryError> {
    let vars: Variables = vars.into();
    // Postgres text cannot hold NUL: refused here, whatever parameter carries it, rather than
    // failing inside SQL.
    if params
        .iter()
        .any(|(key, value)| key.contains('\0') || crate::core::payload::has_nul(value))
    {
        return Err(invalid("Query parameters can't contain NUL characters"));
    }
    let target = snapshot.collection(collection).ok_or_else(|| QueryError::Field {
        collection: collection.into(),
        field: "*".into(),
        path: None,
    })?;
    // Directus checks the filter first, then the rest.
    let filter = match params.get("filter") {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => {
            let value: Value =
                serde_json::from_str(s).map_err(|_| invalid("Invalid JSON for filter object"))?;
            non_empty_filter(&value, snapshot, collection, &vars, settings)?
        }
        Some(value @ Value::Object(_)) => non_empty_filter(value, snapshot, collection, &vars, settings)?,
        Some(_) => return Err(invalid("Invalid filter object")),
    };
    let field_paths = match params.get("fields") {
        None => vec!["*".to_string()],
        Some(Value::String(s)) => fields::split(s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(fields::split)
            .collect(),
        Some(_) => return Err(invalid("\"fields\" must be a string or array")),
    };
    let aliases = match params.get("alias") {
        None => Map::new(),
        Some(value) => parse_alias(value)?,
    };
    let (aliased, plain): (Vec<String>, Vec<String>) = field_paths
        .into_iter()
        .partition(|p| aliases.contains_key(p.split('.').next().unwrap_or_default()));
    let mut selection = fields::build(snapshot, collection, &plain, settings.max_relational_depth)?;
    // `*` includes every alias, as in Directus.
    let mut alias_paths: Vec<String> = aliased;
    if plain.iter().any(|p| p == "*") {
        alias_paths.extend(aliases.keys().cloned());
    }
    for path in alias_paths {
        let (name, rest) = path
            .split_once('.')
            .map(|(n, r)| (n, Some(r)))
            .unwrap_or((path.as_str(), None));
        if selection.iter().any(|s| s.key() == name) {
            continue;
        }
        let Some(Value::String(target_name)) = aliases.get(name) else {
            continue;
        };
        let target_path = match rest {
            Some(rest) => format!("{target_name}.{rest}"),
            None => target_name.clone(),
        };
        let built = fields::build(
            snapshot,
            collection,
            &[target_path],
            settings.max_relational_depth,
        )?;
        if let Some(inner) = built.into_iter().next() {
            selection.push(fields::Selection::Alias {
                key: name.to_string(),
                target: Box::new(inner),
            });
        }
    }
    if let Some(value) = params.get("deep") {
        let deep = match value {
            Value::Object(map) => map.clone(),
            Value::String(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => map,
                _ => return Err(invalid("\"deep\" must be of type object")),
            },
            _ => return Err(invalid("\"deep\" must be of type object")),
        };
        deep::apply(&mut selection, &deep, snapshot, &vars, settings, 1)?;
    }
    let sort = match params.get("sort") {
        None => Vec::new(),
        Some(value) => parse_sort(value, snapshot, target)?,
    };
    let sort = if sort.is_empty() {
        let default = target
            .meta
            .as_ref()
            .and_then(|m| m.sort_field.clone())
            .filter(|f| target.field(f).is_some())
            .or_else(|| target.primary_key.clone());
        default
            .map(|field| {
                vec![Sort {
                    field,
                    descending: false,
                    through: Vec::new(),
                }]
            })
            .unwrap_or_default()
    } else {
        sort
    };
    let limit = match params.get("limit") {
        None => None,
        Some(value) => Some(integer(value, "limit")?),
    };
    if let Some(limit) = limit {
        if limit < -1 {
            return Err(invalid("\"limit\" must be greater than or equal to -1"));
        }
        if let Some(max) = settings.max_limit
            && limit > max
        {
            return Err(invalid(format!("\"limit\" must be less than or equal to {max}")));
        }
    }
    let limit = match (limit, settings.max_limit) {
        (Some(-1), max) => max,
        (Some(n), _) => Some(n),
        (None, Some(max)) => Some(settings.default_limit.min(max)),
        (None, None) => Some(settings.default_limit),
    };
    let mut offset = match params.get("offset") {
        None => 0,
        Some(value) => integer(value, "offset")?,
    };
    if offset < 0 {
        return Err(invalid("\"offset\" must be greater than or equal to 0"));
    }
    if let Some(value) = params.get("page") {
        let page = integer(value, "page")?;
        if page < 0 {
            return Err(invalid("\"page\" must be greater than or equal to 0"));
        }
        // Directus: page overrides offset, and means nothing without a limit.
        if page > 0
            && let Some(limit) = limit
        {
            offset = limit.saturating_mul(page - 1);
        }
    }
    let search = match params.get("search") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let meta = match params.get("meta") {
        None => Meta::default(),
        Some(value) => meta(value)?,
    };
    let aggregate = match params.get("aggregate") {
        None => Vec::new(),
        Some(value) => aggregate::parse_aggregate(value, target)?,
    };
    let group_by = match params.get("groupBy") {
        None => Vec::new(),
        Some(value) => aggregate::parse_group_by(value, target)?,
    };
    // Grouped rows sort by the first group key; plain aggregates have no order.
    let sort = if !aggregate.is_empty() && params.get("sort").is_none() {
        match group_by.first() {
            Some(key) if key.function.is_none() => vec![Sort {
                field: key.field.clone(),
                descending: false,
                through: Vec::new(),
            }],
            _ => Vec::new(),
        }
    } else {
        sort
    };
    Ok(Query {
        fields: selection,
        filter,
        search,
        sort,
        limit,
        offset,
        meta,
        aggregate,
        group_by,
    })
}

/// `alias`: an object of new name → field (or function), with Directus's checks.
fn parse_alias(value: &Value) -> Result<Map<String, Value>, QueryError> {
    let map = match value {
        Value::Object(map) => map.clone(),
        Value::String(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(invalid("\"alias\" has to be an object")),
        },
        _ => return Err(invalid("\"alias\" has to be an object")),
    };
    for (key, target) in &map {
        let Value::String(target) = target else {
            let kind = match target {
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                _ => "object",
            };
            return Err(invalid(format!(
                "\"alias\" value has to be a string. \"{kind}\" given"
            )));
        };
        if key.contains('.') || target.contains('.') {
            return Err(invalid(
                "\"alias\" key/value can't contain a period character `.`",
            ));
        }
    }
    Ok(map)
}

/// `sort`: CSV or array of fields, `-` for descending; each must be a column of `target`.
fn parse_sort(
    value: &Value,
    snapshot: &SchemaSnapshot,
    target: &crate::core::schema::Collection,
) -> Result<Vec<Sort>, QueryError> {
    let keys: Vec<String> = match value {
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_string())
            .collect(),
        _ => return Err(invalid("\"sort\" must be a string or array")),
    };
    keys.into_iter()
        .map(|key| {
            let (descending, path) = match key.strip_prefix('-') {
                Some(rest) => (true, rest.to_string()),
                None => (false, key),
            };
            let mut parts: Vec<&str> = path.split('.').collect();
            let field = parts.pop().unwrap_or_default().to_string();
            let mut collection = target;
            let mut through = Vec::new();
            for (i, hop) in parts.iter().enumerate() {
                let forbidden = || QueryError::Field {
                    collection: collection.collection.clone(),
                    field: hop.to_string(),
                    path: (i > 0).then(|| parts[..i].join(".")),
                };
                let related = snapshot
                    .relation(&collection.collection, hop)
                    .and_then(|r| r.related_collection.as_deref())
                    .and_then(|r| snapshot.collection(r))
                    .ok_or_else(forbidden)?;
                let key = related.primary_key.clone().ok_or_else(forbidden)?;
                through.push(Hop {
                    field: hop.to_string(),
                    related: related.collection.clone(),
                    key,
                });
                collection = related;
            }
            let column = collection.field(&field).filter(|f| f.schema.is_some());
            if column.is_some_and(|f| f.field_type == FieldType::Hash) {
                // Ordering by a hash or concealed value reveals it one comparison at a time;
                // such fields allow null checks only (GHSA-m5q3-8wgf-x8xf's rule).
                return Err(invalid(format!("Field \"{field}\" can't be used to sort")));
            }
            if column.is_some() {
                Ok(Sort {
                    field,
                    descending,
                    through,
                })
            } else {
                Err(QueryError::Field {
                    collection: collection.collection.clone(),
                    field,
                    path: (!parts.is_empty()).then(|| parts.join(".")),
                })
            }
        })
        .collect()
}

fn non_empty_filter(
    value: &Value,
    snapshot: &SchemaSnapshot,
    collection: &str,
    vars: &Variables,
    settings: Settings,
) -> Result<Option<Filter>, QueryError> {
    match value {
        Value::Object(map) if map.is_empty() => Ok(None),
        Value::Object(_) => Ok(Some(filter::parse(
            value,
            snapshot,
            collection,
            vars.clone(),
            settings.filter_limits,
        )?)),
        _ => Err(invalid("Invalid filter object")),
    }
}

/// Directus reads numbers with `Number(v)` and then asks Joi for an integer.
fn integer(value: &Value, name: &str) -> Result<i64, QueryError> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if s.trim().is_empty() => Some(0.0),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let number = number
        .filter(|n| n.is_finite())
        .ok_or_else(|| invalid(format!("\"{name}\" must be a number")))?;
    if number.fract() != 0.0 {
        return Err(invalid(format!("\"{name}\" must be an integer")));
    }
    if number.abs() > 9_007_199_254_740_991.0 {
        return Err(invalid(format!("\"{name}\" must be a safe number")));
    }
    Ok(number as i64)
}

fn meta(value: &Value) -> Result<Meta, QueryError> {
    let names: Vec<String> = match value {
        Value::String(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => return Err(invalid("\"meta\" must be a string or array")),
    };
    let mut meta = Meta::default();
    for (i, name) in names.iter().enumerate() {
        match name.as_str() {
            "*" => {
                meta.total_count = true;
                meta.filter_count = true;
            }
            "total_count" => meta.total_count = true,
            "filter_count" => meta.filter_count = true,
            _ => {
                return Err(invalid(format!(
                    "\"meta[{i}]\" must be one of [total_count, filter_count]"
                )));
            }
        }
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::catalog;

    fn snapshot() -> SchemaSnapshot {
        catalog::single_table(
            "articles",
            &[("id", "int4"), ("title", "varchar"), ("created", "timestamptz")],
        )
    }

    fn parse_str(query: &str) -> Result<Query, QueryError> {
        let params = params::decode(query).map_err(|e| QueryError::Invalid(e.to_string()))?;
        parse(
            &params,
            &snapshot(),
            "articles",
            chrono::DateTime::UNIX_EPOCH,
            Settings::default(),
        )
    }

    #[test]
    fn defaults_follow_directus() {
        let query = parse_str("").unwrap();
        assert_eq!(query.limit, Some(100));
        assert_eq!(
            query.sort,
            vec![Sort {
                field: "id".into(),
                descending: false,
                through: Vec::new()
            }]
        );
        assert_eq!(query.fields.len(), 3);
        let paged = parse_str("limit=10&offset=3&page=3").unwrap();
        assert_eq!(paged.offset, 20, "page overrides offset");
        assert_eq!(parse_str("limit=-1").unwrap().limit, None);
        assert_eq!(
            parse_str("meta=*").unwrap().meta,
            Meta {
                total_count: true,
                filter_count: true
            }
        );
    }

    #[test]
    fn invalid_numbers_use_joi_wording() {
        assert_eq!(
            parse_str("limit=1.5"),
            Err(QueryError::Invalid("\"limit\" must be an integer".into()))
        );
        assert_eq!(
            parse_str("page=-1"),
            Err(QueryError::Invalid(
                "\"page\" must be greater than or equal to 0".into()
            ))
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_query_string_never_panics(q in "[a-z_\\[\\]=&%{}\":,.*()0-9-]{0,120}") {
            let _ = parse_str(&q);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(q in ".{0,200}") {
            let _ = parse_str(&q);
        }
    }
}
