//! Item payloads → column values to write, as Directus's payload service prepares them:
//! unknown keys dropped (an admin's payload), specials applied (`uuid`, `date-created`,
//! `date-updated`, `hash`, `cast-csv`), JSON values serialized, and required fields checked
//! (`FAILED_VALIDATION` with `type: required`, or `nnull` for an explicit null).
//!
//! Pure: the clock, the hasher and the uuid source are passed in. Type checking of values is
//! left to Postgres (each value is cast to its column type), whose errors map to
//! `INVALID_PAYLOAD`.

use serde_json::{Map, Value};

use crate::core::field_type::FieldType;
use crate::core::schema::Collection;

/// Whether any string in `value` (object keys included) holds a NUL character, which Postgres
/// `text` and `jsonb` cannot store: such input is refused before it reaches SQL, where it would
/// fail as an internal error.
pub fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || has_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A value to bind, as Postgres input text (`None` is SQL NULL).
pub type ColumnValue = Option<String>;

/// One failed validation, reported as Directus reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub field: String,
    /// Directus's `type`: `required` or `nnull` from the schema; the operator of a failed
    /// permission validation rule without its underscore (`eq`, `in`, `contains`, ...).
    pub kind: &'static str,
    /// What the rule compared with, shown as Directus shows it: `valid` for `eq`/`in`/`lt`...,
    /// `invalid` for `neq`/`nin`, `substring` for the string tests ([`Failure::detail_key`]).
    pub expected: Option<Value>,
}

impl Failure {
    /// A failure with no compared value (`required`, `nnull`, `null`, `empty`, ...).
    pub fn new(field: impl Into<String>, kind: &'static str) -> Failure {
        Failure {
            field: field.into(),
            kind,
            expected: None,
        }
    }

    /// The `extensions` key Directus puts [`Failure::expected`] under, for this kind.
    pub fn detail_key(&self) -> Option<&'static str> {
        match self.kind {
            "eq" | "in" | "lt" | "lte" | "gt" | "gte" | "between" => Some("valid"),
            "neq" | "nin" | "nbetween" => Some("invalid"),
            k if k.contains("contains") || k.contains("starts_with") || k.contains("ends_with") => {
                Some("substring")
            }
            _ => None,
        }
    }

    /// Directus's message for the failure (`messageConstructor` of `FailedValidationError`).
    pub fn message(&self) -> String {
        let shown = |v: &Value| match v {
            Value::String(s) => format!("\"{s}\""),
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => format!("\"{s}\""),
                    other => format!("\"{other}\""),
                })
                .collect::<Vec<_>>()
                .join(", "),
            other => format!("\"{other}\""),
        };
        let expected = self.expected.as_ref().map(shown).unwrap_or_default();
        let detail = match self.kind {
            "required" => "Value is required.".to_string(),
            "nnull" => "Value can't be null.".to_string(),
            "null" => "Value has to be null.".to_string(),
            "empty" => "Value has to be empty.".to_string(),
            "nempty" => "Value can't be empty.".to_string(),
            "regex" => "Value doesn't have the correct format.".to_string(),
            "eq" => format!("Value has to be {expected}."),
            "neq" => format!("Value can't be {expected}."),
            "lt" => format!("Value has to be less than {expected}."),
            "lte" => format!("Value has to be less than or equal to {expected}."),
            "gt" => format!("Value has to be greater than {expected}."),
            "gte" => format!("Value has to be greater than or equal to {expected}."),
            "in" => format!("Value has to be one of {expected}."),
            "nin" => format!("Value can't be one of {expected}."),
            "between" => format!("Value has to be between {expected}."),
            "nbetween" => format!("Value can't be between {expected}."),
            "contains" | "icontains" => format!("Value has to contain {expected}."),
            "ncontains" | "nicontains" => format!("Value can't contain {expected}."),
            // Directus adds no detail for the other string tests.
            _ => String::new(),
        };
        let head = format!("Validation failed for field \"{}\".", self.field);
        if detail.is_empty() {
            head
        } else {
            format!("{head} {detail}")
        }
    }
}

/// Why a payload cannot be written.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadError {
    /// `INVALID_PAYLOAD` with this reason.
    Invalid(String),
    /// `FAILED_VALIDATION`, every failure at once.
    Validation(Vec<Failure>),
    /// `VALUE_TOO_LONG`: a string longer than its column's length. Checked here because
    /// Postgres's own error (22001) names no column.
    TooLong { collection: String, field: String },
}

/// What a write needs from the outside world.
pub struct Context<'a> {
    /// `now` as an RFC 3339 timestamp, for `date-created` / `date-updated`.
    pub now: &'a str,
    /// The user writing, for `user-created` / `user-updated`.
    pub user: Option<&'a str>,
    /// Hashes a value for `hash` fields; given `collection.field` and the value.
    pub hash: &'a dyn Fn(&str, &str) -> Result<String, String>,
    /// A new uuid for `uuid` fields left empty.
    pub new_uuid: &'a dyn Fn() -> String,
}

/// Whether the write creates or updates the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// Prepares one item; returns `(column, value)` pairs in the collection's field order.
pub fn prepare(
    collection: &Collection,
    item: &Value,
    mode: Mode,
    ctx: &Context<'_>,
) -> Result<Vec<(String, ColumnValue)>, PayloadError> {
    let Value::Object(item) = item else {
        return Err(PayloadError::Invalid("Item must be an object".into()));
    };
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for field in &collection.fields {
        let Some(column) = &field.schema else {
            if item.contains_key(&field.field) && field.field_type == FieldType::Alias {
                return Err(PayloadError::Invalid(format!(
                    "Nested writes through \"{}\" can't be processed here; write the related items directly",
                    field.field
                )));
            }
            continue;
        };
        let special = field.meta.as_ref().map(|m| m.special()).unwrap_or(&[]);
        let has = |flag: &str| special.iter().any(|s| s == flag);
        let given = item.get(&field.field);
        // Specials that override the client's value, as Directus does.
        let forced = match mode {
            Mode::Create if has("date-created") => Some(Some(ctx.now.to_string())),
            Mode::Update if has("date-updated") => Some(Some(ctx.now.to_string())),
            Mode::Create if has("user-created") => Some(ctx.user.map(String::from)),
            Mode::Update if has("user-updated") => Some(ctx.user.map(String::from)),
            _ => None,
        };
        if let Some(value) = forced {
            out.push((field.field.clone(), value));
            continue;
        }
        match given {
            None => {
                if mode == Mode::Create && has("uuid") {
                    out.push((field.field.clone(), Some((ctx.new_uuid)())));
                    continue;
                }
                let required = mode == Mode::Create
                    && !column.is_nullable
                    && column.default_value.is_null()
                    && !column.has_auto_increment
                    && !column.is_generated;
                if required {
                    failures.push(Failure::new(field.field.clone(), "required"));
                }
            }
            Some(Value::Null) => {
                // An auto-increment key sent as null on create is left to its sequence.
                let auto_key = column.has_auto_increment && mode == Mode::Create;
                if mode == Mode::Create && has("uuid") {
                    out.push((field.field.clone(), Some((ctx.new_uuid)())));
                } else if auto_key {
                } else if !column.is_nullable {
                    failures.push(Failure::new(field.field.clone(), "nnull"));
                } else {
                    out.push((field.field.clone(), None));
                }
            }
            Some(value) => {
                if column.is_generated {
                    continue;
                }
                let text = to_text(
                    value,
                    field.field_type,
                    has("hash").then(|| format!("{}.{}", collection.collection, field.field)),
                    ctx,
                )
                .map_err(|reason| PayloadError::Invalid(format!("{reason} in field \"{}\"", field.field)))?;
                let limited = matches!(field.field_type, FieldType::String | FieldType::Text);
                if let (true, Some(max), Some(text)) = (limited, column.max_length, &text)
                    && usize::try_from(max).is_ok_and(|max| text.chars().count() > max)
                {
                    return Err(PayloadError::TooLong {
                        collection: collection.collection.clone(),
                        field: field.field.clone(),
                    });
                }
                out.push((field.field.clone(), text));
            }
        }
    }
    if !failures.is_empty() {
        return Err(PayloadError::Validation(failures));
    }
    Ok(out)
}

/// One JSON value as Postgres input text for a column of `field_type`.
fn to_text(
    value: &Value,
    field_type: FieldType,
    hash: Option<String>,
    ctx: &Context<'_>,
) -> Result<ColumnValue, String> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if field_type == FieldType::Csv => items
            .iter()
            .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    if text.contains('\0') && field_type != FieldType::Json {
        return Err("Text can't contain NUL characters".into());
    }
    // A JSON column takes the value's JSON text, strings included.
    let text = if field_type == FieldType::Json && value.is_string() {
        value.to_string()
    } else {
        text
    };
    if let Some(field) = hash {
        return (ctx.hash)(&field, &text).map(Some);
    }
    Ok(Some(text))
}

/// The primary key of an item in a batch update, as text.
pub fn key_of(collection: &Collection, item: &Map<String, Value>) -> Option<String> {
    let pk = collection.primary_key.as_deref()?;
    match item.get(pk)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A related write inside an item payload (Directus's nested writes).
#[derive(Debug, Clone, PartialEq)]
pub enum NestedWrite {
    /// An object on an M2O field: created first (or updated, when it names its key), and its
    /// key is written into `field`.
    ManyToOne {
        field: String,
        related: String,
        item: Map<String, Value>,
    },
    /// An array on an O2M field: keys to link, objects to create (or update, with a key), each
    /// pointed at the item through `related_field`. On update, the array is the whole set:
    /// children left out are deselected (`one_deselect_action`: nullify or delete).
    OneToMany {
        field: String,
        related: String,
        related_field: String,
        items: Vec<Value>,
        deselect: Deselect,
    },
    /// Directus's detailed form on an O2M field: `{create: [...], update: [...], delete: [keys]}`,
    /// which changes only what it names.
    OneToManyDetailed {
        field: String,
        related: String,
        related_field: String,
        create: Vec<Value>,
        update: Vec<Value>,
        delete: Vec<Value>,
        deselect: Deselect,
    },
}

/// What deselecting an O2M child does (`directus_relations.one_deselect_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deselect {
    /// Set its foreign key to null.
    Nullify,
    /// Delete the child row.
    Delete,
}

/// Splits the nested writes out of an item payload; the rest is written as the item itself.
pub fn split_nested(
    snapshot: &crate::core::schema::SchemaSnapshot,
    collection: &Collection,
    item: &Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<NestedWrite>), PayloadError> {
    let mut rest = Map::new();
    let mut nested = Vec::new();
    for (key, value) in item {
        let m2o = snapshot
            .relation(&collection.collection, key)
            .and_then(|r| r.related_collection.clone())
            .filter(|_| value.is_object());
        if let (Some(related), Value::Object(object)) = (m2o, value) {
            nested.push(NestedWrite::ManyToOne {
                field: key.clone(),
                related,
                item: object.clone(),
            });
            continue;
        }
        let is_alias = collection
            .field(key)
            .is_some_and(|f| f.field_type == FieldType::Alias);
        if !is_alias {
            rest.insert(key.clone(), value.clone());
            continue;
        }
        let relation = snapshot.one_to_many(&collection.collection, key).ok_or_else(|| {
            PayloadError::Invalid(format!(
                "Writes through \"{key}\" are not supported; write the related items directly"
            ))
        })?;
        let deselect = match relation.meta.as_ref().map(|m| m.one_deselect_action.as_str()) {
            Some("delete") => Deselect::Delete,
            _ => Deselect::Nullify,
        };
        let list = |v: Option<&Value>| -> Result<Vec<Value>, PayloadError> {
            match v {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => Ok(items.clone()),
                Some(_) => Err(PayloadError::Invalid(format!(
                    "\"{key}\" create/update/delete must be arrays"
                ))),
            }
        };
        match value {
            Value::Array(items) => nested.push(NestedWrite::OneToMany {
                field: key.clone(),
                related: relation.collection.clone(),
                related_field: relation.field.clone(),
                items: items.clone(),
                deselect,
            }),
            Value::Object(detail) => {
                if let Some(extra) = detail
                    .keys()
                    .find(|k| !matches!(k.as_str(), "create" | "update" | "delete"))
                {
                    return Err(PayloadError::Invalid(format!("\"{key}.{extra}\" is not allowed")));
                }
                nested.push(NestedWrite::OneToManyDetailed {
                    field: key.clone(),
                    related: relation.collection.clone(),
                    related_field: relation.field.clone(),
                    create: list(detail.get("create"))?,
                    update: list(detail.get("update"))?,
                    delete: list(detail.get("delete"))?,
                    deselect,
                });
            }
            Value::Null => {}
            _ => {
                return Err(PayloadError::Invalid(format!(
                    "\"{key}\" takes an array of related items"
                )));
            }
        }
    }
    Ok((rest, nested))
}
