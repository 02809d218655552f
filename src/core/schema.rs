//! The schema model: collections, fields and relations, as Directus's API shows them.
//!
//! A [`SchemaSnapshot`] is built by `db::introspect` from the database catalog plus Directrix's
//! metadata tables, owned by `actors::schema::SchemaActor`, and shared read-only as an
//! `Arc<SchemaSnapshot>` that is swapped whole on every refresh. Every identifier that reaches
//! SQL is looked up here first. The `Serialize` impls are the Directus wire shapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::field_type::FieldType;

/// The whole schema at one moment.
#[derive(Debug, Clone, Default)]
pub struct SchemaSnapshot {
    /// Collections by name, sorted (Directus lists them sorted).
    pub collections: BTreeMap<String, Collection>,
    /// Every relation, sorted by (collection, field).
    pub relations: Vec<Relation>,
}

impl SchemaSnapshot {
    /// A collection by name.
    pub fn collection(&self, name: &str) -> Option<&Collection> {
        self.collections.get(name)
    }

    /// A field by collection and name.
    pub fn field(&self, collection: &str, field: &str) -> Option<&Field> {
        self.collection(collection)?.field(field)
    }

    /// The relation stored on `collection.field` (the many side), if any.
    pub fn relation(&self, collection: &str, field: &str) -> Option<&Relation> {
        self.relations
            .iter()
            .find(|r| r.collection == collection && r.field == field)
    }

    /// Relations stored on one collection.
    pub fn relations_of<'a>(&'a self, collection: &'a str) -> impl Iterator<Item = &'a Relation> + 'a {
        self.relations.iter().filter(move |r| r.collection == collection)
    }

    /// The relation whose O2M alias on `collection` is `field` (the many side points here).
    pub fn one_to_many(&self, collection: &str, field: &str) -> Option<&Relation> {
        self.relations.iter().find(|r| {
            r.related_collection.as_deref() == Some(collection)
                && r.meta.as_ref().and_then(|m| m.one_field.as_deref()) == Some(field)
        })
    }

    /// Relations that point at one collection or are stored on it.
    pub fn relations_touching<'a>(&'a self, collection: &'a str) -> impl Iterator<Item = &'a Relation> + 'a {
        self.relations.iter().filter(move |r| {
            r.collection == collection || r.related_collection.as_deref() == Some(collection)
        })
    }

    /// Every field of every collection, in collection order.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.collections.values().flat_map(|c| c.fields.iter())
    }
}

/// A collection: a table with its metadata, or a metadata-only folder (`schema: null`).
#[derive(Debug, Clone, Serialize)]
pub struct Collection {
    pub collection: String,
    pub meta: Option<CollectionMeta>,
    pub schema: Option<TableInfo>,
    /// Fields in column order, then alias fields in `sort` order.
    #[serde(skip)]
    pub fields: Vec<Field>,
    /// The primary key field; `None` only for folders.
    #[serde(skip)]
    pub primary_key: Option<String>,
}

impl Collection {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.field == name)
    }

    /// Whether the collection is a singleton (one item, no primary key in routes).
    pub fn is_singleton(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.singleton)
    }
}

/// The `schema` object of a collection (Directus's key order).
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub schema: String,
    pub name: String,
    pub comment: Option<String>,
}

/// A field: a column with its metadata, or a metadata-only alias.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub collection: String,
    pub field: String,
    #[serde(rename = "type", serialize_with = "serialize_type")]
    pub field_type: FieldType,
    pub meta: Option<FieldMeta>,
    pub schema: Option<Column>,
}

fn serialize_type<S: serde::Serializer>(t: &FieldType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

/// The `schema` object of a field: what the database says about its column, with Directus's
/// keys in Directus's order (its Postgres inspector has no `schema` key here).
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    pub table: String,
    pub data_type: String,
    /// A literal default as JSON, or the default expression as text when it is not a literal.
    pub default_value: Value,
    pub generation_expression: Option<String>,
    pub max_length: Option<i32>,
    pub numeric_precision: Option<i32>,
    pub numeric_scale: Option<i32>,
    pub is_generated: bool,
    pub is_nullable: bool,
    /// A primary key or single-column unique constraint/index covers the column.
    pub is_unique: bool,
    /// A non-unique index leads with the column (unique ones count in `is_unique`).
    pub is_indexed: bool,
    pub is_primary_key: bool,
    pub has_auto_increment: bool,
    pub foreign_key_schema: Option<String>,
    pub foreign_key_table: Option<String>,
    pub foreign_key_column: Option<String>,
    pub comment: Option<String>,
}

/// A relation between two collections, stored on the many side's field.
#[derive(Debug, Clone, Serialize)]
pub struct Relation {
    pub collection: String,
    pub field: String,
    pub related_collection: Option<String>,
    pub schema: Option<RelationSchema>,
    pub meta: Option<RelationMeta>,
}

/// The foreign key behind a relation.
#[derive(Debug, Clone, Serialize)]
pub struct RelationSchema {
    pub constraint_name: String,
    pub table: String,
    pub column: String,
    pub foreign_key_schema: String,
    pub foreign_key_table: String,
    pub foreign_key_column: String,
    pub on_update: String,
    pub on_delete: String,
}

/// `meta` of a collection: the columns of Directus's `directus_collections`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionMeta {
    pub collection: String,
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub display_template: Option<String>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub singleton: bool,
    #[serde(default)]
    pub translations: Option<Value>,
    #[serde(default)]
    pub archive_field: Option<String>,
    #[serde(default = "yes")]
    pub archive_app_filter: bool,
    #[serde(default)]
    pub archive_value: Option<String>,
    #[serde(default)]
    pub unarchive_value: Option<String>,
    #[serde(default)]
    pub sort_field: Option<String>,
    #[serde(default = "accountability_all")]
    pub accountability: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub item_duplication_fields: Option<Value>,
    #[serde(default)]
    pub sort: Option<i32>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default = "collapse_open")]
    pub collapse: String,
    #[serde(default)]
    pub preview_url: Option<String>,
    #[serde(default)]
    pub versioning: bool,
}

/// `meta` of a field: the columns of Directus's `directus_fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMeta {
    #[serde(default)]
    pub id: Option<i64>,
    pub collection: String,
    pub field: String,
    #[serde(default)]
    pub special: Option<Vec<String>>,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub options: Option<Value>,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub display_options: Option<Value>,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub sort: Option<i32>,
    #[serde(default = "width_full")]
    pub width: Option<String>,
    #[serde(default)]
    pub translations: Option<Value>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub conditions: Option<Value>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub validation: Option<Value>,
    #[serde(default)]
    pub validation_message: Option<String>,
    #[serde(default = "yes")]
    pub searchable: bool,
}

impl FieldMeta {
    /// The `special` flags, empty when unset.
    pub fn special(&self) -> &[String] {
        self.special.as_deref().unwrap_or(&[])
    }
}

/// `meta` of a relation: the columns of Directus's `directus_relations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationMeta {
    #[serde(default)]
    pub id: Option<i64>,
    pub many_collection: String,
    pub many_field: String,
    #[serde(default)]
    pub one_collection: Option<String>,
    #[serde(default)]
    pub one_field: Option<String>,
    #[serde(default)]
    pub one_collection_field: Option<String>,
    #[serde(default)]
    pub one_allowed_collections: Option<Vec<String>>,
    #[serde(default)]
    pub junction_field: Option<String>,
    #[serde(default)]
    pub sort_field: Option<String>,
    #[serde(default = "deselect_nullify")]
    pub one_deselect_action: String,
}

fn yes() -> bool {
    true
}
fn accountability_all() -> Option<String> {
    Some("all".into())
}
fn collapse_open() -> String {
    "open".into()
}
fn width_full() -> Option<String> {
    Some("full".into())
}
fn deselect_nullify() -> String {
    "nullify".into()
}

/// The `special` flags that make a metadata-only field an alias (no column).
pub const ALIAS_SPECIALS: &[&str] = &[
    "alias",
    "o2m",
    "m2m",
    "m2a",
    "files",
    "translations",
    "no-data",
    "group",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collection_meta_defaults_match_directus() {
        let meta: CollectionMeta = serde_json::from_value(json!({"collection": "a"})).unwrap();
        assert!(meta.archive_app_filter);
        assert_eq!(meta.accountability.as_deref(), Some("all"));
        assert_eq!(meta.collapse, "open");
        assert!(!meta.singleton);
    }

    #[test]
    fn unknown_meta_keys_are_rejected() {
        let err = serde_json::from_value::<FieldMeta>(json!({"collection":"a","field":"b","bogus":1}));
        assert!(err.is_err());
    }
}
