//! Directus filter trees: parsed from JSON, validated against the schema snapshot into a typed
//! [`Filter`], then either compiled to SQL (`db::items::compile`) or evaluated against a JSON
//! row in memory ([`eval`]). Both must give the same answer on the same data; a property test
//! runs them side by side on Postgres.
//!
//! Values are coerced to the field's type here (an integer field compares with `5`, not "5"), so
//! neither back end guesses. Operators are checked against the field type. Limits bound the tree
//! (nodes, depth, list size, pattern length) so a request cannot make parsing or SQL expensive.

pub mod eval;
mod parse;
mod value;

pub use parse::{Limits, json_steps, parse};
pub use value::{Scalar, dynamic_now};

/// Values of Directus's dynamic variables, fixed when a request is parsed. Core reads no clock
/// and no session: callers pass them in. `$NOW` is resolved where values are coerced
/// (`value.rs`); the `$CURRENT_*` ones by [`Variables::current`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Variables {
    /// `$NOW`.
    pub now: chrono::DateTime<chrono::Utc>,
    /// `$CURRENT_USER`: the user's id; `None` when anonymous.
    pub user: Option<String>,
    /// `$CURRENT_ROLE`: the user's role id.
    pub role: Option<String>,
    /// `$CURRENT_ROLES`: the role and every role it is nested in (Directus's
    /// `accountability.roles`).
    pub roles: Vec<String>,
    /// `$CURRENT_POLICIES`: ids of the policies that apply to this request.
    pub policies: Vec<String>,
    /// The user's row, for `$CURRENT_USER.<field>`; loaded by the caller with the fields the
    /// permission rules name.
    pub user_row: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
    /// The role's row, for `$CURRENT_ROLE.<field>`.
    pub role_row: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
}

impl From<chrono::DateTime<chrono::Utc>> for Variables {
    fn from(now: chrono::DateTime<chrono::Utc>) -> Self {
        Variables {
            now,
            ..Variables::default()
        }
    }
}

impl Variables {
    /// The value of a `$CURRENT_*` variable or path, as Directus's `parseFilter` resolves it, or
    /// `None` when `text` names none (it is then a literal). Ids are strings, lists are arrays
    /// (an `_in` list takes their items), and a path the supplied row lacks is `null`, as in
    /// Directus. `$CURRENT_ROLES` and `$CURRENT_POLICIES` have rows only for `.id`.
    pub fn current(&self, text: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        let ids = |ids: &[String]| Value::Array(ids.iter().cloned().map(Value::String).collect());
        let id = |id: &Option<String>| id.clone().map(Value::String).unwrap_or(Value::Null);
        let (name, path) = match text.split_once('.') {
            Some((name, path)) => (name, Some(path)),
            None => (text, None),
        };
        Some(match (name, path) {
            ("$CURRENT_USER", None) => id(&self.user),
            ("$CURRENT_USER", Some(path)) => row_path(self.user_row.as_deref(), path),
            ("$CURRENT_ROLE", None) => id(&self.role),
            ("$CURRENT_ROLE", Some(path)) => row_path(self.role_row.as_deref(), path),
            ("$CURRENT_ROLES", None | Some("id")) => ids(&self.roles),
            ("$CURRENT_POLICIES", None | Some("id")) => ids(&self.policies),
            ("$CURRENT_ROLES" | "$CURRENT_POLICIES", Some(_)) => Value::Null,
            _ => return None,
        })
    }
}

/// `a.b` in a row: objects are walked by key, arrays map over their items (Directus's
/// `get-with-arrays`); anything missing is `null`.
fn row_path(row: Option<&serde_json::Map<String, serde_json::Value>>, path: &str) -> serde_json::Value {
    fn walk(value: &serde_json::Value, steps: &[&str]) -> serde_json::Value {
        use serde_json::Value;
        let Some((step, rest)) = steps.split_first() else {
            return value.clone();
        };
        match value {
            Value::Object(map) => map.get(*step).map(|v| walk(v, rest)).unwrap_or(Value::Null),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, steps)).collect()),
            _ => Value::Null,
        }
    }
    let steps: Vec<&str> = path.split('.').collect();
    match (row, steps.split_first()) {
        (Some(row), Some((first, rest))) => row
            .get(*first)
            .map(|v| walk(v, rest))
            .unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}

/// A validated filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every child matches (`_and`, and sibling keys of one object).
    And(Vec<Filter>),
    /// Some child matches (`_or`).
    Or(Vec<Filter>),
    /// One condition on a field of this collection.
    Condition(Condition),
    /// A condition through a relation (M2O, or O2M/M2M with `_some`/`_none`).
    Relation(Box<RelationFilter>),
}

/// `field op value`, optionally on a function of the field (`year(date)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: String,
    pub function: Option<Function>,
    pub op: Operator,
    pub operand: Operand,
    /// Set for `_json` conditions: the value at this path inside a JSON field is compared.
    pub json: Option<JsonPath>,
}

/// A path into a JSON field (`size.w`, `tags[0]`), from Directus's `_json` operator.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    /// Object keys and array indexes (as text), outermost first.
    pub steps: Vec<String>,
    /// Compare as numbers (the filter value was a number); otherwise as text.
    pub numeric: bool,
}

/// A filter evaluated on related rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationFilter {
    /// The field on this collection (the foreign key for M2O, the alias for O2M).
    pub field: String,
    pub kind: RelationKind,
    /// The filter on the related collection.
    pub filter: Filter,
}

/// How rows of the two collections join.
#[derive(Debug, Clone, PartialEq)]
pub enum RelationKind {
    /// `this.field` references `related.primary_key`.
    ManyToOne { related: String, related_key: String },
    /// Rows of `related` whose `related_field` references `this.primary_key`; `quantifier`
    /// says whether some or none of them must match.
    OneToMany {
        related: String,
        related_field: String,
        primary_key: String,
        quantifier: Quantifier,
    },
}

/// `_some` (the default) or `_none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    Some,
    None,
}

/// The value side of a condition, typed for its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `_eq`, `_neq`, `_lt`, `_lte`, `_gt`, `_gte`.
    Scalar(Scalar),
    /// `_in`, `_nin`.
    List(Vec<Scalar>),
    /// `_between`, `_nbetween` (inclusive).
    Range(Scalar, Scalar),
    /// `_null`, `_nnull`, `_empty`, `_nempty`.
    Flag(bool),
    /// The string operators and `_regex`.
    Text(String),
}

macro_rules! operators {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// A filter operator (the geometry ones are not supported).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operator { $($variant),* }

        impl Operator {
            /// Every operator, for generators and docs.
            pub const ALL: &'static [Operator] = &[$(Operator::$variant),*];

            /// Parses `_eq` etc.
            pub fn parse(name: &str) -> Option<Operator> {
                match name { $($name => Some(Operator::$variant),)* _ => None }
            }

            /// The Directus spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Operator::$variant => $name),* }
            }
        }
    };
}

operators! {
    Eq => "_eq", Neq => "_neq", Lt => "_lt", Lte => "_lte", Gt => "_gt", Gte => "_gte",
    In => "_in", Nin => "_nin", Null => "_null", Nnull => "_nnull",
    Contains => "_contains", Ncontains => "_ncontains", Icontains => "_icontains", Nicontains => "_nicontains",
    StartsWith => "_starts_with", IstartsWith => "_istarts_with",
    NstartsWith => "_nstarts_with", NistartsWith => "_nistarts_with",
    EndsWith => "_ends_with", IendsWith => "_iends_with", NendsWith => "_nends_with", NiendsWith => "_niends_with",
    Between => "_between", Nbetween => "_nbetween", Empty => "_empty", Nempty => "_nempty", Regex => "_regex",
}

/// Which textual test a string operator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextTest {
    Contains,
    StartsWith,
    EndsWith,
}

impl Operator {
    /// For the string operators: the test, whether it ignores case, whether it is negated.
    pub fn text_test(self) -> Option<(TextTest, bool, bool)> {
        use Operator as O;
        use TextTest as T;
        Some(match self {
            O::Contains => (T::Contains, false, false),
            O::Ncontains => (T::Contains, false, true),
            O::Icontains => (T::Contains, true, false),
            O::Nicontains => (T::Contains, true, true),
            O::StartsWith => (T::StartsWith, false, false),
            O::NstartsWith => (T::StartsWith, false, true),
            O::IstartsWith => (T::StartsWith, true, false),
            O::NistartsWith => (T::StartsWith, true, true),
            O::EndsWith => (T::EndsWith, false, false),
            O::NendsWith => (T::EndsWith, false, true),
            O::IendsWith => (T::EndsWith, true, false),
            O::NiendsWith => (T::EndsWith, true, true),
            _ => return None,
        })
    }
}

/// A function applied to a field before comparing (`year(date_created)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Year,
    Month,
    Week,
    Day,
    Weekday,
    Hour,
    Minute,
    Second,
    /// Items in a JSON array or related rows of an O2M field.
    Count,
}

impl Function {
    /// The Directus spelling, also the suffix of result keys (`date_year`, `tags_count`).
    pub fn name(self) -> &'static str {
        match self {
            Function::Year => "year",
            Function::Month => "month",
            Function::Week => "week",
            Function::Day => "day",
            Function::Weekday => "weekday",
            Function::Hour => "hour",
            Function::Minute => "minute",
            Function::Second => "second",
            Function::Count => "count",
        }
    }

    /// Parses `year` etc.
    pub fn parse(name: &str) -> Option<Function> {
        Some(match name {
            "year" => Function::Year,
            "month" => Function::Month,
            "week" => Function::Week,
            "day" => Function::Day,
            "weekday" => Function::Weekday,
            "hour" => Function::Hour,
            "minute" => Function::Minute,
            "second" => Function::Second,
            "count" => Function::Count,
            _ => return None,
        })
    }
}

/// Why a filter is refused. Unknown fields are [`FilterError::Field`], which the HTTP layer
/// answers with `FORBIDDEN` so existence is not revealed; everything else is `INVALID_QUERY`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "You don't have permission to access field \"{field}\" in collection \"{collection}\" or it does not exist."
    )]
    Field { collection: String, field: String },
    #[error("{0}")]
    Invalid(String),
}

/// `field _in keys`, with the keys (as text) coerced to the field's type: how writes re-read
/// the items they touched.
pub fn keys_in(
    field: &str,
    field_type: crate::core::field_type::FieldType,
    keys: &[String],
) -> Result<Filter, FilterError> {
    let items = keys
        .iter()
        .map(|k| {
            value::coerce(
                &serde_json::Value::String(k.clone()),
                field_type,
                chrono::DateTime::UNIX_EPOCH,
                field,
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(FilterError::Invalid)?;
    Ok(Filter::Condition(Condition {
        field: field.into(),
        function: None,
        op: Operator::In,
        operand: Operand::List(items),
        json: None,
    }))
}
