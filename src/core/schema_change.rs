//! Validates schema-changing requests against the snapshot and turns them into typed plans.
//!
//! Each `plan_*` function takes the current [`SchemaSnapshot`] and the client's JSON, checks
//! names, types, defaults and references, and returns a plan that `db::ddl` executes in one
//! transaction. Nothing here builds SQL; identifiers in a plan are either checked new names
//! (`core::name`) or names taken from the snapshot.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::field_type::FieldType;
use super::name;
use super::schema::{Collection, CollectionMeta, Field, FieldMeta, RelationMeta, SchemaSnapshot};

/// Why a schema change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// The collection or field does not exist (or may not be touched): answered as `FORBIDDEN`
    /// so existence is not revealed.
    #[error("forbidden")]
    Forbidden,
    /// A collection-scoped route named a collection that is not a table (Directus's
    /// collection-exists check), answered as `FORBIDDEN` naming the collection.
    #[error("no such collection")]
    NoSuchCollection(String),
    /// The request is malformed; the text is the `reason` of `INVALID_PAYLOAD`.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid(reason.into())
}

impl From<name::NameError> for SchemaError {
    fn from(err: name::NameError) -> Self {
        SchemaError::Invalid(err.to_string())
    }
}

/// A column default.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    /// No default.
    None,
    /// A JSON literal, cast to the column type by Postgres.
    Literal(Value),
    /// The current date/time/timestamp (`CURRENT_TIMESTAMP` or `now()`, any case).
    Now,
    /// `gen_random_uuid()`, the one database function Directus allows as a default.
    RandomUuid,
}

/// A column to create.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub field_type: FieldType,
    pub max_length: Option<u32>,
    pub precision: Option<(u32, u32)>,
    pub nullable: bool,
    pub default: DefaultValue,
    pub unique: bool,
    pub indexed: bool,
    pub primary_key: bool,
    pub auto_increment: bool,
    pub comment: Option<String>,
}

impl ColumnSpec {
    /// The Postgres type to create.
    pub fn sql_type(&self) -> String {
        // unwrap-free: plans only hold column specs for types that have a column.
        self.field_type
            .column_type(self.max_length, self.precision)
            .unwrap_or_else(|| "text".into())
    }
}

/// A field to create: a column (absent for aliases) and its `meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewField {
    pub field: String,
    pub field_type: FieldType,
    pub column: Option<ColumnSpec>,
    pub meta: Option<FieldMeta>,
}

/// `POST /collections`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateCollection {
    pub collection: String,
    pub meta: Option<CollectionMeta>,
    /// `None`: a folder (no table). `Some(comment)`: create the table.
    pub table: Option<Option<String>>,
    pub fields: Vec<NewField>,
}

/// Changes to an existing column; `None` leaves that property as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnChange {
    /// New type and its SQL spelling.
    pub sql_type: Option<String>,
    pub nullable: Option<bool>,
    pub default: Option<DefaultValue>,
    pub unique: Option<bool>,
    pub comment: Option<Option<String>>,
}

impl ColumnChange {
    /// Whether anything changes.
    pub fn is_empty(&self) -> bool {
        *self == ColumnChange::default()
    }
}

/// `PATCH /fields/:collection/:field`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateField {
    pub collection: String,
    pub field: String,
    /// The type after the change (defaults are rendered for it).
    pub field_type: FieldType,
    pub column: ColumnChange,
    pub meta: Option<FieldMeta>,
}

/// A foreign key to create.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKeySpec {
    pub constraint_name: String,
    pub table: String,
    pub column: String,
    pub foreign_table: String,
    pub foreign_column: String,
    pub on_delete: &'static str,
    pub on_update: &'static str,
}

/// `POST /relations` and `PATCH /relations/:collection/:field`.
#[derive(Debug, Clone, PartialEq)]
pub struct SaveRelation {
    pub collection: String,
    pub field: String,
    /// The constraint to drop first (an update that changes the foreign key's actions).
    pub drop_constraint: Option<String>,
    pub foreign_key: Option<ForeignKeySpec>,
    pub meta: Option<RelationMeta>,
}

#[derive(Debug, Deserialize)]
struct CollectionInput {
    collection: Option<Value>,
    #[serde(default)]
    meta: Option<Map<String, Value>>,
    /// Absent and `null` both mean "no table" (a folder), as in Directus.
    #[serde(default)]
    schema: Option<Map<String, Value>>,
    #[serde(default)]
    fields: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
struct FieldInput {
    field: Option<Value>,
    #[serde(rename = "type")]
    field_type: Option<Value>,
    #[serde(default)]
    meta: Option<Map<String, Value>>,
    #[serde(default)]
    schema: Option<Map<String, Value>>,
}

/// The writable keys of a field's `schema` object. Read-only keys that clients echo back from
/// a `GET` (`name`, `table`, `data_type`, …) are ignored, as Directus ignores them.
#[derive(Debug, Default, Deserialize)]
struct ColumnInput {
    #[serde(default, deserialize_with = "present")]
    default_value: Option<Value>,
    max_length: Option<u32>,
    numeric_precision: Option<u32>,
    numeric_scale: Option<u32>,
    is_nullable: Option<bool>,
    is_unique: Option<bool>,
    is_indexed: Option<bool>,
    is_primary_key: Option<bool>,
    has_auto_increment: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    comment: Option<Value>,
}

/// Distinguishes a key that is present with `null` (`Some(Null)`) from an absent key (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn parse<T: for<'de> Deserialize<'de>>(value: Value, what: &str) -> Result<T, SchemaError> {
    serde_json::from_value(value).map_err(|e| invalid(format!("Invalid {what}: {e}")))
}

fn name_of(value: Option<Value>, key: &str) -> Result<String, SchemaError> {
    match value {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(invalid(format!("\"{key}\" must be a string"))),
        None => Err(invalid(format!("\"{key}\" is required"))),
    }
}

/// Plans `POST /collections` with one collection (an object) or several (an array; Directus
/// answers with an array then). Names must be unique within the batch too.
pub fn plan_create_collections(
    snapshot: &SchemaSnapshot,
    body: Value,
) -> Result<Vec<CreateCollection>, SchemaError> {
    let bodies = match body {
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut plans: Vec<CreateCollection> = Vec::with_capacity(bodies.len());
    for body in bodies {
        let plan = plan_create_collection(snapshot, body)?;
        if plans.iter().any(|p| p.collection == plan.collection) {
            return Err(invalid(format!(
                "Collection \"{}\" already exists",
                plan.collection
            )));
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// Plans `POST /collections` for one collection.
pub fn plan_create_collection(
    snapshot: &SchemaSnapshot,
    body: Value,
) -> Result<CreateCollection, SchemaError> {
    let input: CollectionInput = parse(body, "collection")?;
    let collection = name_of(input.collection, "collection")?;
    name::check_collection(&collection)?;
    if snapshot.collection(&collection).is_some() {
        return Err(invalid(format!("Collection \"{collection}\" already exists")));
    }
    let meta = input
        .meta
        .map(|m| collection_meta(&collection, None, m))
        .transpose()?;
    let Some(schema) = input.schema else {
        if input.fields.as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(invalid("Folder collections (\"schema\": null) can't have fields"));
        }
        return Ok(CreateCollection {
            collection,
            meta,
            table: None,
            fields: Vec::new(),
        });
    };
    let comment = match schema.get("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("\"schema.comment\" must be a string")),
    };
    let mut fields = Vec::new();
    for (i, raw) in input.fields.unwrap_or_default().into_iter().enumerate() {
        let mut field = plan_field(&collection, raw, true)?;
        if let Some(meta) = field.meta.as_mut() {
            meta.sort.get_or_insert(i as i32 + 1);
        }
        if fields.iter().any(|f: &NewField| f.field == field.field) {
            return Err(invalid(format!("Field \"{}\" is listed twice", field.field)));
        }
        fields.push(field);
    }
    let primary_keys = fields
        .iter()
        .filter(|f| f.column.as_ref().is_some_and(|c| c.primary_key))
        .count();
    match primary_keys {
        0 => {
            if fields.iter().any(|f| f.field == "id") {
                return Err(invalid(
                    "Field \"id\" must be the primary key when no other field is",
                ));
            }
            fields.insert(0, default_primary_key(&collection));
        }
        1 => {}
        _ => return Err(invalid("A collection can only have one primary key")),
    }
    Ok(CreateCollection {
        collection,
        meta,
        table: Some(comment),
        fields,
    })
}

/// The `id` field Directus adds when a new collection names no primary key.
fn default_primary_key(collection: &str) -> NewField {
    NewField {
        field: "id".into(),
        field_type: FieldType::Integer,
        column: Some(ColumnSpec {
            name: "id".into(),
            field_type: FieldType::Integer,
            max_length: None,
            precision: None,
            nullable: false,
            default: DefaultValue::None,
            unique: true,
            indexed: true,
            primary_key: true,
            auto_increment: true,
            comment: None,
        }),
        meta: Some(FieldMeta {
            hidden: true,
            readonly: true,
            interface: Some("numeric".into()),
            ..empty_field_meta(collection, "id")
        }),
    }
}

fn empty_field_meta(collection: &str, field: &str) -> FieldMeta {
    FieldMeta {
        id: None,
        collection: collection.into(),
        field: field.into(),
        special: None,
        interface: None,
        options: None,
        display: None,
        display_options: None,
        readonly: false,
        hidden: false,
        sort: None,
        width: Some("full".into()),
        translations: None,
        note: None,
        conditions: None,
        required: false,
        group: None,
        validation: None,
        validation_message: None,
        searchable: true,
    }
}

/// Plans `PATCH /collections/:name`: only `meta` is applied, as in Directus. Meta for a name
/// that is neither a table nor a folder creates a folder. `None`: nothing to write.
pub fn plan_update_collection(
    snapshot: &SchemaSnapshot,
    collection: &str,
    body: Value,
) -> Result<Option<CollectionMeta>, SchemaError> {
    let existing = snapshot.collection(collection);
    let Value::Object(mut body) = body else {
        return Err(invalid("Payload must be an object"));
    };
    let meta = match body.remove("meta") {
        Some(Value::Object(meta)) => meta,
        Some(Value::Null) | None => return Ok(None),
        Some(_) => return Err(invalid("\"meta\" must be an object")),
    };
    if existing.is_none() {
        name::check_collection(collection)?;
    }
    collection_meta(collection, existing.and_then(|c| c.meta.as_ref()), meta).map(Some)
}

/// Merges a client's `meta` keys over the existing meta (or the defaults) and type-checks
/// the result.
fn collection_meta(
    collection: &str,
    existing: Option<&CollectionMeta>,
    patch: Map<String, Value>,
) -> Result<CollectionMeta, SchemaError> {
    let mut merged = match existing {
        Some(meta) => to_map(meta),
        None => Map::new(),
    };
    merged.extend(patch);
    merged.insert("collection".into(), Value::String(collection.into()));
    parse(Value::Object(merged), "collection meta")
}

fn merge_field_meta(
    collection: &str,
    field: &str,
    existing: Option<&FieldMeta>,
    patch: Map<String, Value>,
    field_type: FieldType,
) -> Result<FieldMeta, SchemaError> {
    let mut merged = match existing {
        Some(meta) => to_map(meta),
        None => Map::new(),
    };
    merged.extend(patch);
    merged.insert("collection".into(), Value::String(collection.into()));
    merged.insert("field".into(), Value::String(field.into()));
    if let Some(id) = existing.and_then(|m| m.id) {
        merged.insert("id".into(), Value::from(id));
    }
    // Directus accepts `special` as an array or as CSV text.
    if let Some(Value::String(csv)) = merged.get("special") {
        let list = csv
            .split(',')
            .map(|s| Value::String(s.trim().to_string()))
            .filter(|v| v != "")
            .collect();
        merged.insert("special".into(), Value::Array(list));
    }
    let mut meta: FieldMeta = parse(Value::Object(merged), "field meta")?;
    if let Some(flag) = field_type.special() {
        let special = meta.special.get_or_insert_with(Vec::new);
        if !special.iter().any(|s| s == flag) {
            special.push(flag.to_string());
        }
    }
    Ok(meta)
}

fn to_map<T: serde::Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The error Directus gives for an unknown `type`.
fn unsupported_type() -> SchemaError {
    let names: Vec<&str> = super::field_type::CREATABLE.iter().map(|t| t.as_str()).collect();
    invalid(format!("\"type\" must be one of [{}]", names.join(", ")))
}

/// A collection that is a table, as collection-scoped routes require.
pub fn table_collection<'a>(snapshot: &'a SchemaSnapshot, name: &str) -> Result<&'a Collection, SchemaError> {
    snapshot
        .collection(name)
        .filter(|c| c.schema.is_some())
        .ok_or_else(|| SchemaError::NoSuchCollection(name.to_string()))
}

/// The `sort` a new field gets: one past the collection's highest (Directus).
fn next_sort(collection: &Collection) -> i32 {
    collection
        .fields
        .iter()
        .filter_map(|f| f.meta.as_ref()?.sort)
        .max()
        .unwrap_or(0)
        + 1
}

/// Plans `POST /fields/:collection`.
pub fn plan_create_field(
    snapshot: &SchemaSnapshot,
    collection: &str,
    body: Value,
) -> Result<NewField, SchemaError> {
    let target = table_collection(snapshot, collection)?;
    let mut field = plan_field(collection, body, false)?;
    if target.field(&field.field).is_some() {
        return Err(invalid(format!(
            "Field \"{}\" already exists in collection \"{collection}\"",
            field.field
        )));
    }
    if let Some(meta) = field.meta.as_mut() {
        meta.sort.get_or_insert(next_sort(target));
    }
    if field.column.as_ref().is_some_and(|c| c.primary_key) {
        return Err(invalid(format!(
            "Collection \"{collection}\" already has a primary key"
        )));
    }
    Ok(field)
}

fn plan_field(collection: &str, body: Value, creating_table: bool) -> Result<NewField, SchemaError> {
    let input: FieldInput = parse(body, "field")?;
    let field = name_of(input.field, "field")?;
    name::check_field(&field)?;
    let type_name = name_of(input.field_type, "type")?;
    let field_type = FieldType::parse(&type_name).ok_or_else(unsupported_type)?;
    let meta = match input.meta {
        Some(patch) => Some(merge_field_meta(collection, &field, None, patch, field_type)?),
        None if field_type.special().is_some() => Some(merge_field_meta(
            collection,
            &field,
            None,
            Map::new(),
            field_type,
        )?),
        None => None,
    };
    if !field_type.has_column() {
        if input.schema.is_some() {
            return Err(invalid(format!(
                "Alias field \"{field}\" can't have a \"schema\""
            )));
        }
        return Ok(NewField {
            field,
            field_type,
            column: None,
            meta,
        });
    }
    let column: ColumnInput = parse(Value::Object(input.schema.unwrap_or_default()), "field schema")?;
    let primary_key = column.is_primary_key.unwrap_or(false);
    if primary_key && !creating_table {
        return Err(invalid("A primary key can only be created with its collection"));
    }
    if primary_key
        && !matches!(
            field_type,
            FieldType::Integer | FieldType::BigInteger | FieldType::Uuid | FieldType::String
        )
    {
        return Err(invalid(format!(
            "Primary key \"{field}\" must be an integer, bigInteger, uuid or string"
        )));
    }
    let auto_increment = column.has_auto_increment.unwrap_or(false);
    if auto_increment && !(primary_key && field_type.can_auto_increment()) {
        return Err(invalid(format!(
            "Only an integer primary key can auto-increment (\"{field}\")"
        )));
    }
    let default = match column.default_value {
        None | Some(Value::Null) => DefaultValue::None,
        Some(value) => default_value(&field, field_type, value)?,
    };
    let precision = match (column.numeric_precision, column.numeric_scale) {
        (None, None) => None,
        (p, s) if field_type == FieldType::Decimal => {
            let p = p.unwrap_or(super::field_type::DEFAULT_DECIMAL.0);
            let s = s.unwrap_or(super::field_type::DEFAULT_DECIMAL.1);
            if p == 0 || p > 1000 || s > p {
                return Err(invalid(format!(
                    "Invalid precision/scale {p}/{s} for \"{field}\""
                )));
            }
            Some((p, s))
        }
        _ => None,
    };
    let max_length = match column.max_length {
        Some(0) => {
            return Err(invalid(format!(
                "\"max_length\" of \"{field}\" must be at least 1"
            )));
        }
        Some(n) if n > 10_485_760 => {
            return Err(invalid(format!("\"max_length\" of \"{field}\" is too large")));
        }
        other => other.filter(|_| matches!(field_type, FieldType::String | FieldType::Hash)),
    };
    let comment = comment_of(&field, column.comment)?.flatten();
    Ok(NewField {
        field: field.clone(),
        field_type,
        column: Some(ColumnSpec {
            name: field,
            field_type,
            max_length,
            precision,
            nullable: !primary_key && column.is_nullable.unwrap_or(true),
            default,
            unique: primary_key || column.is_unique.unwrap_or(false),
            indexed: column.is_indexed.unwrap_or(false),
            primary_key,
            auto_increment,
            comment,
        }),
        meta,
    })
}

fn comment_of(field: &str, value: Option<Value>) -> Result<Option<Option<String>>, SchemaError> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if !s.contains('\0') => Ok(Some(Some(s))),
        Some(_) => Err(invalid(format!("\"comment\" of \"{field}\" must be a string"))),
    }
}

/// Checks a default against the field type. Postgres checks the literal itself when the column
/// is created (a bad date fails there, as `INVALID_PAYLOAD`).
fn default_value(field: &str, field_type: FieldType, value: Value) -> Result<DefaultValue, SchemaError> {
    let wrong = || {
        invalid(format!(
            "Default value of \"{field}\" does not match type \"{field_type}\""
        ))
    };
    if let Value::String(s) = &value {
        if s.contains('\0') {
            return Err(wrong());
        }
        if s.eq_ignore_ascii_case("gen_random_uuid()") {
            return if field_type == FieldType::Uuid {
                Ok(DefaultValue::RandomUuid)
            } else {
                Err(wrong())
            };
        }
        let is_now = s.eq_ignore_ascii_case("CURRENT_TIMESTAMP") || s.eq_ignore_ascii_case("now()");
        if is_now {
            return match field_type {
                FieldType::Date | FieldType::Time | FieldType::DateTime | FieldType::Timestamp => {
                    Ok(DefaultValue::Now)
                }
                _ => Err(wrong()),
            };
        }
    }
    let ok = match field_type {
        FieldType::Integer | FieldType::BigInteger => value.is_i64() || value.is_u64(),
        FieldType::Float | FieldType::Decimal => value.is_number(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Json => true,
        FieldType::Csv => {
            value.is_string() || value.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        }
        _ => value.is_string(),
    };
    if !ok {
        return Err(wrong());
    }
    // A csv default given as a list is stored as its text form.
    if let (FieldType::Csv, Value::Array(items)) = (field_type, &value) {
        let text: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
        return Ok(DefaultValue::Literal(Value::String(text.join(","))));
    }
    Ok(DefaultValue::Literal(value))
}

/// Plans `PATCH /fields/:collection/:field`.
pub fn plan_update_field(
    snapshot: &SchemaSnapshot,
    collection: &str,
    field: &str,
    body: Value,
) -> Result<UpdateField, SchemaError> {
    let existing = table_collection(snapshot, collection)?
        .field(field)
        .ok_or(SchemaError::Forbidden)?;
    let input: FieldInput = parse(body, "field")?;
    if let Some(Value::String(renamed)) = &input.field
        && renamed != field
    {
        return Err(invalid("Fields can't be renamed"));
    }
    let field_type = match input.field_type {
        None | Some(Value::Null) => existing.field_type,
        Some(Value::String(t)) => FieldType::parse(&t).ok_or_else(unsupported_type)?,
        Some(_) => return Err(invalid("\"type\" must be a string")),
    };
    if field_type.has_column() != existing.field_type.has_column()
        && existing.field_type != FieldType::Unknown
    {
        return Err(invalid("Alias type cannot be changed"));
    }
    let meta = match input.meta {
        Some(patch) => Some(merge_field_meta(
            collection,
            field,
            existing.meta.as_ref(),
            patch,
            field_type,
        )?),
        None if field_type != existing.field_type && field_type.special().is_some() => Some(
            merge_field_meta(collection, field, existing.meta.as_ref(), Map::new(), field_type)?,
        ),
        None => None,
    };
    let column = column_change(existing, field_type, input.schema)?;
    Ok(UpdateField {
        collection: collection.into(),
        field: field.into(),
        field_type,
        column,
        meta,
    })
}

fn column_change(
    existing: &Field,
    field_type: FieldType,
    schema: Option<Map<String, Value>>,
) -> Result<ColumnChange, SchemaError> {
    let Some(current) = &existing.schema else {
        if schema.is_some() {
            return Err(invalid(format!("Field \"{}\" has no column", existing.field)));
        }
        return Ok(ColumnChange::default());
    };
    let input: ColumnInput = match schema {
        Some(map) => parse(Value::Object(map), "field schema")?,
        None => ColumnInput::default(),
    };
    let field = existing.field.as_str();
    let mut change = ColumnChange::default();
    let type_changed = field_type != existing.field_type;
    let length_changed = input
        .max_length
        .is_some_and(|n| Some(n as i32) != current.max_length);
    let precision_changed = input.numeric_precision.is_some() || input.numeric_scale.is_some();
    if type_changed || length_changed || precision_changed {
        if current.is_primary_key && type_changed {
            return Err(invalid(format!(
                "The type of primary key \"{field}\" can't change"
            )));
        }
        let precision = (field_type == FieldType::Decimal).then(|| {
            (
                input
                    .numeric_precision
                    .unwrap_or(current.numeric_precision.unwrap_or(10) as u32),
                input
                    .numeric_scale
                    .unwrap_or(current.numeric_scale.unwrap_or(5) as u32),
            )
        });
        let max_length = input.max_length.or(current.max_length.map(|n| n as u32));
        change.sql_type = field_type.column_type(max_length, precision);
        if change.sql_type.is_none() {
            return Err(invalid(format!(
                "Field \"{field}\" can't become type \"{field_type}\""
            )));
        }
    }
    if let Some(nullable) = input.is_nullable {
        if current.is_primary_key && nullable {
            return Err(invalid("Primary key cannot be null"));
        }
        if nullable != current.is_nullable {
            change.nullable = Some(nullable);
        }
    }
    if let Some(value) = input.default_value {
        change.default = Some(match value {
            Value::Null => DefaultValue::None,
            value => default_value(field, field_type, value)?,
        });
    }
    if let Some(unique) = input.is_unique
        && unique != current.is_unique
        && !current.is_primary_key
    {
        change.unique = Some(unique);
    }
    change.comment = comment_of(field, input.comment)?;
    if input
        .is_primary_key
        .is_some_and(|pk| pk != current.is_primary_key)
    {
        return Err(invalid("The primary key of a collection can't change"));
    }
    Ok(change)
}

/// Checks `DELETE /fields/:collection/:field`; returns the field, or `None` when it does not
/// exist (Directus answers 204 all the same).
pub fn check_delete_field<'a>(
    snapshot: &'a SchemaSnapshot,
    collection: &str,
    field: &str,
) -> Result<Option<&'a Field>, SchemaError> {
    let target = table_collection(snapshot, collection)?;
    if target.primary_key.as_deref() == Some(field) {
        return Err(invalid(format!("Primary key \"{field}\" can't be deleted")));
    }
    Ok(target.field(field))
}

/// Checks `DELETE /collections/:name`.
pub fn check_delete_collection<'a>(
    snapshot: &'a SchemaSnapshot,
    collection: &str,
) -> Result<&'a Collection, SchemaError> {
    snapshot.collection(collection).ok_or(SchemaError::Forbidden)
}

#[derive(Debug, Deserialize)]
struct RelationInput {
    collection: Option<Value>,
    field: Option<Value>,
    #[serde(default)]
    related_collection: Option<Value>,
    /// Absent: create the foreign key with defaults. `null`: metadata only.
    #[serde(default, deserialize_with = "present")]
    schema: Option<Value>,
    #[serde(default)]
    meta: Option<Map<String, Value>>,
}

/// Plans `POST /relations`.
pub fn plan_create_relation(snapshot: &SchemaSnapshot, body: Value) -> Result<SaveRelation, SchemaError> {
    let input: RelationInput = parse(body, "relation")?;
    let collection = name_of(input.collection, "collection")?;
    let field = name_of(input.field, "field")?;
    let many = snapshot
        .collection(&collection)
        .ok_or_else(|| invalid(format!("Collection \"{collection}\" doesn't exist")))?;
    let many_field = many.field(&field).ok_or_else(|| {
        invalid(format!(
            "Field \"{field}\" doesn't exist in collection \"{collection}\""
        ))
    })?;
    if many.primary_key.as_deref() == Some(field.as_str()) {
        return Err(invalid(format!(
            "Field \"{field}\" in collection \"{collection}\" is a primary key"
        )));
    }
    if snapshot.relation(&collection, &field).is_some() {
        return Err(invalid(format!(
            "Field \"{field}\" in collection \"{collection}\" already has an associated relationship"
        )));
    }
    let related = match input.related_collection {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => {
            let related = snapshot
                .collection(&name)
                .ok_or_else(|| invalid(format!("Collection \"{name}\" doesn't exist")))?;
            Some(related)
        }
        Some(_) => return Err(invalid("\"related_collection\" must be a string")),
    };
    let foreign_key = match (&input.schema, related) {
        (Some(Value::Null), _) | (_, None) => None,
        (schema, Some(related)) => {
            let actions = actions_of(schema.as_ref())?;
            Some(foreign_key_for(&collection, many_field, related, actions)?)
        }
    };
    // Directus always stores a meta row for a new relation.
    let meta = relation_meta(
        &collection,
        &field,
        related.map(|r| r.collection.as_str()),
        None,
        Some(input.meta.unwrap_or_default()),
    )?;
    Ok(SaveRelation {
        collection,
        field,
        drop_constraint: None,
        foreign_key,
        meta,
    })
}

/// Plans `PATCH /relations/:collection/:field`.
pub fn plan_update_relation(
    snapshot: &SchemaSnapshot,
    collection: &str,
    field: &str,
    body: Value,
) -> Result<SaveRelation, SchemaError> {
    let existing = existing_relation(snapshot, collection, field)?;
    let input: RelationInput = parse(body, "relation")?;
    let mut plan = SaveRelation {
        collection: collection.into(),
        field: field.into(),
        drop_constraint: None,
        foreign_key: None,
        meta: None,
    };
    if let (Some(Value::Object(_)), Some(current), Some(related)) = (
        &input.schema,
        &existing.schema,
        existing
            .related_collection
            .as_deref()
            .and_then(|r| snapshot.collection(r)),
    ) {
        let many_field = snapshot.field(collection, field).ok_or(SchemaError::Forbidden)?;
        let (on_delete, on_update) = actions_of(input.schema.as_ref())?;
        let on_delete = if has_key(&input.schema, "on_delete") {
            on_delete
        } else {
            action(&current.on_delete)?
        };
        let on_update = if has_key(&input.schema, "on_update") {
            on_update
        } else {
            action(&current.on_update)?
        };
        plan.drop_constraint = Some(current.constraint_name.clone());
        plan.foreign_key = Some(foreign_key_for(
            collection,
            many_field,
            related,
            (on_delete, on_update),
        )?);
    }
    if let Some(patch) = input.meta {
        plan.meta = relation_meta(
            collection,
            field,
            existing.related_collection.as_deref(),
            existing.meta.as_ref(),
            Some(patch),
        )?;
    }
    Ok(plan)
}

fn has_key(schema: &Option<Value>, key: &str) -> bool {
    schema
        .as_ref()
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(key))
}

/// Checks `DELETE /relations/:collection/:field`.
pub fn check_delete_relation<'a>(
    snapshot: &'a SchemaSnapshot,
    collection: &str,
    field: &str,
) -> Result<&'a super::schema::Relation, SchemaError> {
    existing_relation(snapshot, collection, field)
}

/// The relation that `PATCH`/`DELETE /relations/:collection/:field` address, with Directus's
/// errors when the collection, the field or the relation is missing.
fn existing_relation<'a>(
    snapshot: &'a SchemaSnapshot,
    collection: &str,
    field: &str,
) -> Result<&'a super::schema::Relation, SchemaError> {
    let target = table_collection(snapshot, collection)?;
    if target.field(field).is_none() {
        return Err(invalid(format!(
            "Field \"{field}\" doesn't exist in collection \"{collection}\""
        )));
    }
    snapshot.relation(collection, field).ok_or_else(|| {
        invalid(format!(
            "Field \"{field}\" in collection \"{collection}\" doesn't have a relationship"
        ))
    })
}

fn actions_of(schema: Option<&Value>) -> Result<(&'static str, &'static str), SchemaError> {
    let map = match schema {
        None | Some(Value::Null) => return Ok(("NO ACTION", "NO ACTION")),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(invalid("\"schema\" must be an object or null")),
    };
    let get = |key: &str| -> Result<&'static str, SchemaError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok("NO ACTION"),
            Some(Value::String(s)) => action(s),
            Some(_) => Err(invalid(format!("\"schema.{key}\" must be a string"))),
        }
    };
    Ok((get("on_delete")?, get("on_update")?))
}

fn action(text: &str) -> Result<&'static str, SchemaError> {
    const ACTIONS: &[&str] = &["NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"];
    let upper = text.trim().to_ascii_uppercase();
    ACTIONS.iter().copied().find(|a| *a == upper).ok_or_else(|| {
        invalid(format!(
            "\"{text}\" is not a foreign key action (one of {})",
            ACTIONS.join(", ")
        ))
    })
}

fn foreign_key_for(
    collection: &str,
    many_field: &Field,
    related: &Collection,
    (on_delete, on_update): (&'static str, &'static str),
) -> Result<ForeignKeySpec, SchemaError> {
    if many_field.schema.is_none() {
        return Err(invalid(format!(
            "Field \"{}\" has no column to hold a foreign key",
            many_field.field
        )));
    }
    let (Some(_), Some(pk)) = (&related.schema, &related.primary_key) else {
        return Err(invalid(format!(
            "Collection \"{}\" has no table to point at",
            related.collection
        )));
    };
    Ok(ForeignKeySpec {
        constraint_name: constraint_name(collection, &many_field.field),
        table: collection.into(),
        column: many_field.field.clone(),
        foreign_table: related.collection.clone(),
        foreign_column: pk.clone(),
        on_delete,
        on_update,
    })
}

/// Directus (knex) names foreign keys `<table>_<column>_foreign`; Postgres truncates names to
/// 63 bytes, so we do it ourselves on a character boundary.
pub fn constraint_name(table: &str, column: &str) -> String {
    let mut name = format!("{table}_{column}_foreign")
        .to_lowercase()
        .replace(['.', '-'], "_");
    while name.len() > name::MAX_NAME_BYTES {
        name.pop();
    }
    name
}

fn relation_meta(
    collection: &str,
    field: &str,
    related: Option<&str>,
    existing: Option<&RelationMeta>,
    patch: Option<Map<String, Value>>,
) -> Result<Option<RelationMeta>, SchemaError> {
    let Some(patch) = patch else { return Ok(None) };
    let mut merged = match existing {
        Some(meta) => to_map(meta),
        None => {
            let mut map = Map::new();
            map.insert(
                "one_collection".into(),
                related.map(|r| Value::String(r.into())).unwrap_or(Value::Null),
            );
            map
        }
    };
    merged.extend(patch);
    merged.insert("many_collection".into(), Value::String(collection.into()));
    merged.insert("many_field".into(), Value::String(field.into()));
    if let Some(id) = existing.and_then(|m| m.id) {
        merged.insert("id".into(), Value::from(id));
    }
    parse(Value::Object(merged), "relation meta").map(Some)
}

#[cfg(test)]
mod tests;
