//! Directus field types and their mapping to and from PostgreSQL column types.
//!
//! Creating a field maps a Directus type to a column type ([`FieldType::column_type`]);
//! introspecting a table maps a column's type back ([`FieldType::from_postgres`]), with the
//! field's `special` flags deciding between types that share a column type (`csv` vs `text`,
//! `hash` vs `string`), as Directus's `get-local-type` does.

use std::fmt;

/// A Directus field type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    Text,
    Integer,
    BigInteger,
    Float,
    Decimal,
    Boolean,
    Json,
    Uuid,
    Date,
    Time,
    DateTime,
    Timestamp,
    Csv,
    Hash,
    /// No column: O2M/M2M/presentation fields that exist only in metadata.
    Alias,
    /// A column type Directus has no type for; served read-only as `unknown`.
    Unknown,
}

/// Every type a client may create, in the order Directus lists them.
pub const CREATABLE: &[FieldType] = &[
    FieldType::String,
    FieldType::Text,
    FieldType::Integer,
    FieldType::BigInteger,
    FieldType::Float,
    FieldType::Decimal,
    FieldType::Boolean,
    FieldType::Json,
    FieldType::Uuid,
    FieldType::Date,
    FieldType::Time,
    FieldType::DateTime,
    FieldType::Timestamp,
    FieldType::Csv,
    FieldType::Hash,
    FieldType::Alias,
];

/// Default `max_length` of a `string` column, as Directus creates it.
pub const DEFAULT_STRING_LENGTH: u32 = 255;
/// Default precision and scale of a `decimal` column, as Directus creates it.
pub const DEFAULT_DECIMAL: (u32, u32) = (10, 5);

impl FieldType {
    /// The Directus spelling of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::BigInteger => "bigInteger",
            FieldType::Float => "float",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Json => "json",
            FieldType::Uuid => "uuid",
            FieldType::Date => "date",
            FieldType::Time => "time",
            FieldType::DateTime => "dateTime",
            FieldType::Timestamp => "timestamp",
            FieldType::Csv => "csv",
            FieldType::Hash => "hash",
            FieldType::Alias => "alias",
            FieldType::Unknown => "unknown",
        }
    }

    /// Parses a type a client asked to create; `unknown` is not creatable.
    pub fn parse(text: &str) -> Option<FieldType> {
        CREATABLE.iter().copied().find(|t| t.as_str() == text)
    }

    /// Whether the type has a database column.
    pub fn has_column(self) -> bool {
        !matches!(self, FieldType::Alias)
    }

    /// The `special` flag Directus stores with the type, when the column type alone is ambiguous.
    pub fn special(self) -> Option<&'static str> {
        match self {
            FieldType::Csv => Some("cast-csv"),
            FieldType::Hash => Some("hash"),
            _ => None,
        }
    }

    /// The Postgres column type to create. `None` for `alias` and `unknown`.
    ///
    /// `json` becomes `jsonb` (Directus creates `json`): `jsonb` compares with `=`, which filters
    /// and change-feed diffs rely on, and it round-trips as the same Directus type.
    pub fn column_type(self, max_length: Option<u32>, precision: Option<(u32, u32)>) -> Option<String> {
        let sql = match self {
            FieldType::String | FieldType::Hash => {
                format!("varchar({})", max_length.unwrap_or(DEFAULT_STRING_LENGTH))
            }
            FieldType::Text | FieldType::Csv => "text".into(),
            FieldType::Integer => "integer".into(),
            FieldType::BigInteger => "bigint".into(),
            FieldType::Float => "real".into(),
            FieldType::Decimal => {
                let (p, s) = precision.unwrap_or(DEFAULT_DECIMAL);
                format!("numeric({p}, {s})")
            }
            FieldType::Boolean => "boolean".into(),
            FieldType::Json => "jsonb".into(),
            FieldType::Uuid => "uuid".into(),
            FieldType::Date => "date".into(),
            FieldType::Time => "time without time zone".into(),
            FieldType::DateTime => "timestamp without time zone".into(),
            FieldType::Timestamp => "timestamp with time zone".into(),
            FieldType::Alias | FieldType::Unknown => return None,
        };
        Some(sql)
    }

    /// The Directus type of an existing column, from its Postgres type name (`pg_type.typname`)
    /// and the field's `special` flags.
    pub fn from_postgres(typname: &str, special: &[String]) -> FieldType {
        let has = |flag: &str| special.iter().any(|s| s == flag);
        let base = match typname {
            "varchar" | "bpchar" | "char" | "name" | "citext" => FieldType::String,
            "text" => FieldType::Text,
            "int2" | "int4" => FieldType::Integer,
            "int8" => FieldType::BigInteger,
            "float4" | "float8" => FieldType::Float,
            "numeric" => FieldType::Decimal,
            "bool" => FieldType::Boolean,
            "json" | "jsonb" => FieldType::Json,
            "uuid" => FieldType::Uuid,
            "date" => FieldType::Date,
            "time" | "timetz" => FieldType::Time,
            "timestamp" => FieldType::DateTime,
            "timestamptz" => FieldType::Timestamp,
            _ => FieldType::Unknown,
        };
        match base {
            FieldType::Text | FieldType::String if has("cast-csv") => FieldType::Csv,
            FieldType::String | FieldType::Text if has("hash") => FieldType::Hash,
            other => other,
        }
    }

    /// Whether a column of this type can hold an auto-incrementing primary key.
    pub fn can_auto_increment(self) -> bool {
        matches!(self, FieldType::Integer | FieldType::BigInteger)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_creatable_type_round_trips_through_its_name() {
        for &t in CREATABLE {
            assert_eq!(FieldType::parse(t.as_str()), Some(t));
        }
        assert_eq!(FieldType::parse("unknown"), None);
        assert_eq!(FieldType::parse("String"), None);
    }

    #[test]
    fn column_types_introspect_back_to_the_same_type() {
        let typname = |sql: &str| match sql {
            s if s.starts_with("varchar") => "varchar",
            s if s.starts_with("numeric") => "numeric",
            "text" => "text",
            "integer" => "int4",
            "bigint" => "int8",
            "real" => "float4",
            "boolean" => "bool",
            "jsonb" => "jsonb",
            "uuid" => "uuid",
            "date" => "date",
            "time without time zone" => "time",
            "timestamp without time zone" => "timestamp",
            "timestamp with time zone" => "timestamptz",
            other => panic!("unmapped {other}"),
        };
        for &t in CREATABLE.iter().filter(|t| t.has_column()) {
            let sql = t.column_type(None, None).unwrap();
            let special: Vec<String> = t.special().map(String::from).into_iter().collect();
            assert_eq!(FieldType::from_postgres(typname(&sql), &special), t, "{sql}");
        }
    }

    #[test]
    fn unknown_postgres_types_are_unknown() {
        assert_eq!(FieldType::from_postgres("tsvector", &[]), FieldType::Unknown);
        assert_eq!(FieldType::Unknown.column_type(None, None), None);
    }
}
