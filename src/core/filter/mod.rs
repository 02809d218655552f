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
pub use value::Scalar;

/// Values of Directus's dynamic variables (`$NOW`, `$CURRENT_USER`, `$CURRENT_ROLE`), fixed
/// when a request is parsed. Core reads no clock and no session: callers pass them in.
#[derive(Debug, Clone, PartialEq)]
pub struct Variables {
    pub now: chrono::DateTime<chrono::Utc>,
    pub user: Option<String>,
    pub role: Option<String>,
}

impl From<chrono::DateTime<chrono::Utc>> for Variables {
    fn from(now: chrono::DateTime<chrono::Utc>) -> Self {
        Variables {
            now,
            user: None,
            role: None,
        }
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
