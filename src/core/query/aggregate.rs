//! `aggregate` and `groupBy`: which aggregate functions run on which fields, and what rows are
//! grouped by. Directus's rules: values are CSV or arrays, `count` with `*` counts rows, unknown
//! function names are ignored, fields must exist.

use serde_json::{Map, Value};

use super::QueryError;
use crate::core::field_type::FieldType;
use crate::core::filter::Function;
use crate::core::schema::Collection;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFn {
    Count,
    CountDistinct,
    CountAll,
    Sum,
    SumDistinct,
    Avg,
    AvgDistinct,
    Min,
    Max,
}

impl AggregateFn {
    fn parse(name: &str) -> Option<AggregateFn> {
        Some(match name {
            "count" => AggregateFn::Count,
            "countDistinct" => AggregateFn::CountDistinct,
            "countAll" => AggregateFn::CountAll,
            "sum" => AggregateFn::Sum,
            "sumDistinct" => AggregateFn::SumDistinct,
            "avg" => AggregateFn::Avg,
            "avgDistinct" => AggregateFn::AvgDistinct,
            "min" => AggregateFn::Min,
            "max" => AggregateFn::Max,
            _ => return None,
        })
    }

    /// The name Directus uses as the key in results.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFn::Count => "count",
            AggregateFn::CountDistinct => "countDistinct",
            AggregateFn::CountAll => "countAll",
            AggregateFn::Sum => "sum",
            AggregateFn::SumDistinct => "sumDistinct",
            AggregateFn::Avg => "avg",
            AggregateFn::AvgDistinct => "avgDistinct",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
        }
    }
}

/// One aggregate: `count(*)` (`field: None`) or `fn(field)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub function: AggregateFn,
    pub field: Option<(String, FieldType)>,
}

/// One `groupBy` key: a field, or a date function of one (returned as `<field>_<fn>`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupKey {
    pub field: String,
    pub field_type: FieldType,
    pub function: Option<Function>,
}

impl GroupKey {
    /// The key in result rows.
    pub fn key(&self) -> String {
        match self.function {
            Some(f) => format!("{}_{}", self.field, f.name()),
            None => self.field.clone(),
        }
    }
}

fn forbidden(collection: &Collection, field: &str) -> QueryError {
    QueryError::Field {
        collection: collection.collection.clone(),
        field: field.to_string(),
        path: None,
    }
}

fn concealed(field: &str, what: &str) -> QueryError {
    QueryError::Invalid(format!("Field \"{field}\" can't be used in \"{what}\""))
}

/// A field a group may be keyed by: grouping by a hash or concealed value would show which
/// rows share it.
fn group_type(collection: &Collection, field: &str) -> Result<FieldType, QueryError> {
    let field_type = column_type(collection, field)?;
    if field_type == FieldType::Hash {
        return Err(concealed(field, "groupBy"));
    }
    Ok(field_type)
}

fn column_type(collection: &Collection, field: &str) -> Result<FieldType, QueryError> {
    collection
        .field(field)
        .filter(|f| f.schema.is_some())
        .map(|f| f.field_type)
        .ok_or_else(|| forbidden(collection, field))
}

fn names(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// Parses `aggregate` (an object, or its JSON text).
pub fn parse_aggregate(value: &Value, collection: &Collection) -> Result<Vec<Aggregate>, QueryError> {
    let map: Map<String, Value> = match value {
        Value::Object(map) => map.clone(),
        Value::String(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(QueryError::Invalid("\"aggregate\" must be of type object".into())),
        },
        _ => return Err(QueryError::Invalid("\"aggregate\" must be of type object".into())),
    };
    let mut out = Vec::new();
    for (name, fields) in &map {
        // Directus ignores functions it does not know.
        let Some(function) = AggregateFn::parse(name) else {
            continue;
        };
        if function == AggregateFn::CountAll {
            out.push(Aggregate {
                function,
                field: None,
            });
            continue;
        }
        for field in names(fields) {
            if field == "*" && function == AggregateFn::Count {
                out.push(Aggregate {
                    function,
                    field: None,
                });
            } else {
                let field_type = column_type(collection, &field)?;
                // A hash or concealed value allows null checks only: `count` says how many
                // rows hold one; min, max, sums and distinct counts would compare the values.
                if field_type == FieldType::Hash && function != AggregateFn::Count {
                    return Err(concealed(&field, function.name()));
                }
                out.push(Aggregate {
                    function,
                    field: Some((field, field_type)),
                });
            }
        }
    }
    Ok(out)
}

/// Parses `groupBy`.
pub fn parse_group_by(value: &Value, collection: &Collection) -> Result<Vec<GroupKey>, QueryError> {
    names(value)
        .into_iter()
        .map(|item| match item.find('(') {
            Some(open) => {
                let function = Function::parse(&item[..open]).ok_or_else(|| {
                    QueryError::Invalid(format!("Invalid function specified \"{}\"", &item[..open]))
                })?;
                let field = item[open + 1..].strip_suffix(')').ok_or_else(|| {
                    QueryError::Invalid("Missing closing parenthesis in \"groupBy\"".into())
                })?;
                let field_type = group_type(collection, field)?;
                Ok(GroupKey {
                    field: field.to_string(),
                    field_type,
                    function: Some(function),
                })
            }
            None => {
                let field_type = group_type(collection, &item)?;
                Ok(GroupKey {
                    field: item,
                    field_type,
                    function: None,
                })
            }
        })
        .collect()
}
