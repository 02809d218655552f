//! Builds a [`SchemaSnapshot`] from raw catalog rows and metadata rows.
//!
//! `db::introspect` reads the rows (columns, indexes, foreign keys from `pg_catalog`; `meta`
//! from Directrix's tables) and hands them here; this merge is pure so it can be tested without
//! a database. The merge follows Directus: a table needs a single-column primary key to be a
//! collection; `meta` without a table is a folder; `meta` without a column is an alias field.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value;

use super::field_type::FieldType;
use super::schema::{
    ALIAS_SPECIALS, Collection, CollectionMeta, Column, Field, FieldMeta, Relation, RelationMeta,
    RelationSchema, SchemaSnapshot, TableInfo,
};

/// One column as `pg_catalog` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ColumnRow {
    pub table_name: String,
    pub column_name: String,
    /// `pg_type.typname`, e.g. `int4`, `varchar`.
    pub udt_name: String,
    /// `format_type(...)`, e.g. `character varying(255)`.
    pub data_type: String,
    pub is_nullable: bool,
    /// The default expression, unless the column is generated.
    pub default_expr: Option<String>,
    pub generation_expression: Option<String>,
    pub is_identity: bool,
    pub max_length: Option<i32>,
    pub numeric_precision: Option<i32>,
    pub numeric_scale: Option<i32>,
    pub comment: Option<String>,
    pub table_comment: Option<String>,
}

impl ColumnRow {
    /// A nullable column with no default, comment or size facts: a starting point for callers
    /// that describe tables by hand (tests, benches).
    pub fn new(table: &str, column: &str, udt_name: &str, data_type: &str) -> ColumnRow {
        ColumnRow {
            table_name: table.into(),
            column_name: column.into(),
            udt_name: udt_name.into(),
            data_type: data_type.into(),
            is_nullable: true,
            default_expr: None,
            generation_expression: None,
            is_identity: false,
            max_length: None,
            numeric_precision: None,
            numeric_scale: None,
            comment: None,
            table_comment: None,
        }
    }
}

/// Index facts about a column that is the first key of at least one index.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IndexRow {
    pub table_name: String,
    pub column_name: String,
    /// The table's primary key is exactly this column.
    pub is_primary_key: bool,
    /// A unique index covers exactly this column.
    pub is_unique: bool,
    /// A non-unique index leads with this column.
    pub is_indexed: bool,
}

impl IndexRow {
    /// The facts of a single-column primary key.
    pub fn primary_key(table: &str, column: &str) -> IndexRow {
        IndexRow {
            table_name: table.into(),
            column_name: column.into(),
            is_primary_key: true,
            is_unique: true,
            is_indexed: false,
        }
    }
}

/// A single-column foreign key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ForeignKeyRow {
    pub constraint_name: String,
    pub table_name: String,
    pub column_name: String,
    pub foreign_schema: String,
    pub foreign_table: String,
    pub foreign_column: String,
    /// `pg_constraint.confupdtype`: a, r, c, n or d.
    pub on_update: String,
    pub on_delete: String,
}

/// Everything the merge needs.
#[derive(Debug, Clone, Default)]
pub struct CatalogRows {
    /// The schema user tables live in (`DB_SEARCH_PATH`).
    pub schema: String,
    pub columns: Vec<ColumnRow>,
    pub indexes: Vec<IndexRow>,
    pub foreign_keys: Vec<ForeignKeyRow>,
    pub collection_meta: Vec<CollectionMeta>,
    pub field_meta: Vec<FieldMeta>,
    pub relation_meta: Vec<RelationMeta>,
}

/// The result of a merge: the snapshot, and tables that could not be served and why.
#[derive(Debug, Clone)]
pub struct Built {
    pub snapshot: SchemaSnapshot,
    /// Tables left out (no single-column primary key).
    pub skipped_tables: Vec<String>,
}

/// A snapshot of one table with an `id` primary key and these `(column, typname)` columns, for
/// unit tests of the modules that read snapshots.
#[cfg(test)]
pub(crate) fn single_table(table: &str, columns: &[(&str, &str)]) -> SchemaSnapshot {
    build(CatalogRows {
        schema: "public".into(),
        columns: columns
            .iter()
            .map(|(name, udt)| ColumnRow::new(table, name, udt, udt))
            .collect(),
        indexes: vec![IndexRow::primary_key(table, "id")],
        ..CatalogRows::default()
    })
    .snapshot
}

/// Merges catalog and metadata rows into a snapshot.
pub fn build(rows: CatalogRows) -> Built {
    let mut tables: BTreeMap<&str, Vec<&ColumnRow>> = BTreeMap::new();
    for column in &rows.columns {
        tables.entry(column.table_name.as_str()).or_default().push(column);
    }
    let index_of: HashMap<(&str, &str), &IndexRow> = rows
        .indexes
        .iter()
        .map(|i| ((i.table_name.as_str(), i.column_name.as_str()), i))
        .collect();
    let fk_of: HashMap<(&str, &str), &ForeignKeyRow> = rows
        .foreign_keys
        .iter()
        .map(|f| ((f.table_name.as_str(), f.column_name.as_str()), f))
        .collect();
    let mut collection_meta: HashMap<&str, &CollectionMeta> = rows
        .collection_meta
        .iter()
        .map(|m| (m.collection.as_str(), m))
        .collect();
    let mut field_meta: BTreeMap<(&str, &str), &FieldMeta> = rows
        .field_meta
        .iter()
        .map(|m| ((m.collection.as_str(), m.field.as_str()), m))
        .collect();

    let mut collections = BTreeMap::new();
    let mut skipped_tables = Vec::new();
    for (table, columns) in tables {
        let primary_key = columns
            .iter()
            .find(|c| {
                index_of
                    .get(&(table, c.column_name.as_str()))
                    .is_some_and(|i| i.is_primary_key)
            })
            .map(|c| c.column_name.clone());
        let Some(primary_key) = primary_key else {
            skipped_tables.push(table.to_string());
            continue;
        };
        let mut fields = Vec::with_capacity(columns.len());
        for column in &columns {
            let meta = field_meta.remove(&(table, column.column_name.as_str())).cloned();
            let special = meta.as_ref().map(FieldMeta::special).unwrap_or(&[]);
            let field_type = FieldType::from_postgres(&column.udt_name, special);
            let index = index_of.get(&(table, column.column_name.as_str()));
            let fk = fk_of.get(&(table, column.column_name.as_str()));
            let auto = column.is_identity
                || column
                    .default_expr
                    .as_deref()
                    .is_some_and(|d| d.starts_with("nextval("));
            fields.push(Field {
                collection: table.to_string(),
                field: column.column_name.clone(),
                field_type,
                meta,
                schema: Some(Column {
                    name: column.column_name.clone(),
                    table: table.to_string(),
                    data_type: column.data_type.clone(),
                    default_value: default_value(column.default_expr.as_deref(), field_type),
                    generation_expression: column.generation_expression.clone(),
                    max_length: column.max_length,
                    numeric_precision: column.numeric_precision,
                    numeric_scale: column.numeric_scale,
                    is_generated: column.generation_expression.is_some(),
                    is_nullable: column.is_nullable,
                    is_unique: index.is_some_and(|i| i.is_unique),
                    is_indexed: index.is_some_and(|i| i.is_indexed),
                    is_primary_key: column.column_name == primary_key,
                    has_auto_increment: auto,
                    foreign_key_schema: fk.map(|f| f.foreign_schema.clone()),
                    foreign_key_table: fk.map(|f| f.foreign_table.clone()),
                    foreign_key_column: fk.map(|f| f.foreign_column.clone()),
                    comment: column.comment.clone(),
                }),
            });
        }
        let table_comment = columns.first().and_then(|c| c.table_comment.clone());
        collections.insert(
            table.to_string(),
            Collection {
                collection: table.to_string(),
                meta: collection_meta.remove(table).cloned(),
                schema: Some(TableInfo {
                    name: table.to_string(),
                    schema: rows.schema.clone(),
                    comment: table_comment,
                }),
                fields,
                primary_key: Some(primary_key),
            },
        );
    }
    // Metadata without a table: a folder collection, as Directus shows it.
    for (name, meta) in collection_meta {
        collections.insert(
            name.to_string(),
            Collection {
                collection: name.to_string(),
                meta: Some(meta.clone()),
                schema: None,
                fields: Vec::new(),
                primary_key: None,
            },
        );
    }
    // Metadata without a column: alias fields (or leftovers of a dropped column: `unknown`).
    let mut aliases: Vec<&FieldMeta> = field_meta.into_values().collect();
    aliases.sort_by_key(|m| (m.collection.clone(), m.sort.unwrap_or(i32::MAX), m.field.clone()));
    for meta in aliases {
        let Some(collection) = collections.get_mut(&meta.collection) else {
            continue;
        };
        let is_alias = meta
            .special()
            .iter()
            .any(|s| ALIAS_SPECIALS.contains(&s.as_str()));
        collection.fields.push(Field {
            collection: meta.collection.clone(),
            field: meta.field.clone(),
            field_type: if is_alias {
                FieldType::Alias
            } else {
                FieldType::Unknown
            },
            meta: Some(meta.clone()),
            schema: None,
        });
    }

    let relations = relations(&rows, &collections);
    Built {
        snapshot: SchemaSnapshot {
            collections,
            relations,
        },
        skipped_tables,
    }
}

fn relations(rows: &CatalogRows, collections: &BTreeMap<String, Collection>) -> Vec<Relation> {
    let mut by_key: BTreeMap<(String, String), Relation> = BTreeMap::new();
    for fk in &rows.foreign_keys {
        if !collections.contains_key(&fk.table_name) {
            continue;
        }
        by_key.insert(
            (fk.table_name.clone(), fk.column_name.clone()),
            Relation {
                collection: fk.table_name.clone(),
                field: fk.column_name.clone(),
                related_collection: (fk.foreign_schema == rows.schema).then(|| fk.foreign_table.clone()),
                schema: Some(RelationSchema {
                    constraint_name: fk.constraint_name.clone(),
                    table: fk.table_name.clone(),
                    column: fk.column_name.clone(),
                    foreign_key_schema: fk.foreign_schema.clone(),
                    foreign_key_table: fk.foreign_table.clone(),
                    foreign_key_column: fk.foreign_column.clone(),
                    on_update: fk_action(&fk.on_update).into(),
                    on_delete: fk_action(&fk.on_delete).into(),
                }),
                meta: None,
            },
        );
    }
    for meta in &rows.relation_meta {
        if !collections.contains_key(&meta.many_collection) {
            continue;
        }
        let key = (meta.many_collection.clone(), meta.many_field.clone());
        let relation = by_key.entry(key).or_insert_with(|| Relation {
            collection: meta.many_collection.clone(),
            field: meta.many_field.clone(),
            related_collection: meta.one_collection.clone(),
            schema: None,
            meta: None,
        });
        if relation.related_collection.is_none() {
            relation.related_collection = meta.one_collection.clone();
        }
        relation.meta = Some(meta.clone());
    }
    by_key.into_values().collect()
}

/// Postgres's one-letter referential actions, spelled as SQL.
pub fn fk_action(code: &str) -> &'static str {
    match code {
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    }
}

/// Turns a column default expression into the JSON `default_value` Directus reports: literals
/// become JSON values of the field's type; anything else (`nextval(...)`, `now()`) stays text.
pub fn default_value(expr: Option<&str>, field_type: FieldType) -> Value {
    let Some(expr) = expr.map(str::trim) else {
        return Value::Null;
    };
    let literal = match parse_literal(expr) {
        Some(literal) => literal,
        None => return Value::String(expr.to_string()),
    };
    let Some(literal) = literal else {
        return Value::Null;
    };
    match field_type {
        FieldType::Integer | FieldType::BigInteger | FieldType::Float | FieldType::Decimal => {
            match serde_json::from_str::<serde_json::Number>(&literal) {
                Ok(n) => Value::Number(n),
                Err(_) => Value::String(literal),
            }
        }
        FieldType::Boolean => match literal.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(literal),
        },
        FieldType::Json => serde_json::from_str(&literal).unwrap_or(Value::String(literal)),
        _ => Value::String(literal),
    }
}

/// Parses `'text'::type`, `42`, `-1.5`, `true`, `NULL::type` (any trailing casts).
/// `Some(None)` is SQL NULL; `None` means "not a literal".
fn parse_literal(expr: &str) -> Option<Option<String>> {
    let (value, rest) = if let Some(body) = expr.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().map(|(_, n)| *n) == Some('\'') {
                    out.push('\'');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                out.push(c);
            }
        }
        (Some(out), &body[end?..])
    } else {
        let cut = expr.find("::").unwrap_or(expr.len());
        let (head, rest) = expr.split_at(cut);
        let head = head.trim().trim_start_matches('(').trim_end_matches(')');
        if head.eq_ignore_ascii_case("null") {
            (None, rest)
        } else if head == "true"
            || head == "false"
            || serde_json::from_str::<serde_json::Number>(head).is_ok()
        {
            (Some(head.to_string()), rest)
        } else {
            return None;
        }
    };
    // Whatever follows must be casts only, e.g. `::character varying` or `::numeric(10,2)`.
    let casts_only = rest.is_empty()
        || (rest.starts_with("::")
            && rest[2..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _[](),:\"".contains(c)));
    casts_only.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn column(table: &str, name: &str, udt: &str) -> ColumnRow {
        ColumnRow::new(table, name, udt, udt)
    }

    fn pk(table: &str, name: &str) -> IndexRow {
        IndexRow::primary_key(table, name)
    }

    #[test]
    fn defaults_become_typed_json() {
        assert_eq!(
            default_value(Some("'draft'::character varying"), FieldType::String),
            json!("draft")
        );
        assert_eq!(
            default_value(Some("'it''s'::text"), FieldType::Text),
            json!("it's")
        );
        assert_eq!(default_value(Some("42"), FieldType::Integer), json!(42));
        assert_eq!(
            default_value(Some("'-1'::integer"), FieldType::Integer),
            json!(-1)
        );
        assert_eq!(default_value(Some("1.5"), FieldType::Float), json!(1.5));
        assert_eq!(default_value(Some("true"), FieldType::Boolean), json!(true));
        assert_eq!(
            default_value(Some("'{\"a\": 1}'::jsonb"), FieldType::Json),
            json!({"a": 1})
        );
        assert_eq!(
            default_value(Some("NULL::character varying"), FieldType::String),
            Value::Null
        );
        assert_eq!(default_value(None, FieldType::String), Value::Null);
        assert_eq!(default_value(Some("now()"), FieldType::Timestamp), json!("now()"));
        assert_eq!(
            default_value(Some("nextval('a_id_seq'::regclass)"), FieldType::Integer),
            json!("nextval('a_id_seq'::regclass)")
        );
        assert_eq!(
            default_value(Some("gen_random_uuid()"), FieldType::Uuid),
            json!("gen_random_uuid()")
        );
    }

    #[test]
    fn tables_without_a_primary_key_are_skipped() {
        let rows = CatalogRows {
            schema: "public".into(),
            columns: vec![column("a", "id", "int4"), column("logs", "line", "text")],
            indexes: vec![pk("a", "id")],
            ..CatalogRows::default()
        };
        let built = build(rows);
        assert!(built.snapshot.collection("a").is_some());
        assert!(built.snapshot.collection("logs").is_none());
        assert_eq!(built.skipped_tables, vec!["logs".to_string()]);
    }

    #[test]
    fn metadata_merges_into_folders_aliases_and_relations() {
        let field_meta = |c: &str, f: &str, special: &[&str]| -> FieldMeta {
            serde_json::from_value(json!({"collection": c, "field": f,
                "special": special.iter().map(|s| s.to_string()).collect::<Vec<_>>()}))
            .unwrap()
        };
        let rows = CatalogRows {
            schema: "public".into(),
            columns: vec![
                column("authors", "id", "int4"),
                column("articles", "id", "int4"),
                column("articles", "author", "int4"),
                column("articles", "tags", "text"),
            ],
            indexes: vec![pk("authors", "id"), pk("articles", "id")],
            foreign_keys: vec![ForeignKeyRow {
                constraint_name: "articles_author_foreign".into(),
                table_name: "articles".into(),
                column_name: "author".into(),
                foreign_schema: "public".into(),
                foreign_table: "authors".into(),
                foreign_column: "id".into(),
                on_update: "a".into(),
                on_delete: "n".into(),
            }],
            collection_meta: vec![serde_json::from_value(json!({"collection": "folder"})).unwrap()],
            field_meta: vec![
                field_meta("articles", "tags", &["cast-csv"]),
                field_meta("authors", "articles", &["o2m"]),
            ],
            relation_meta: vec![],
        };
        let snap = build(rows).snapshot;
        assert!(snap.collection("folder").unwrap().schema.is_none());
        assert_eq!(snap.field("articles", "tags").unwrap().field_type, FieldType::Csv);
        assert_eq!(
            snap.field("authors", "articles").unwrap().field_type,
            FieldType::Alias
        );
        let author = snap.field("articles", "author").unwrap().schema.clone().unwrap();
        assert_eq!(author.foreign_key_table.as_deref(), Some("authors"));
        let relation = snap.relation("articles", "author").unwrap();
        assert_eq!(relation.related_collection.as_deref(), Some("authors"));
        assert_eq!(relation.schema.as_ref().unwrap().on_delete, "SET NULL");
    }

    proptest::proptest! {
        #[test]
        fn default_parser_never_panics(expr in ".{0,40}") {
            let _ = default_value(Some(&expr), FieldType::String);
            let _ = default_value(Some(&expr), FieldType::Integer);
        }
    }
}
