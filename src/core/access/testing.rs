//! Test-only fixtures for the access module: a small relational schema and row builders.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Action, PermissionRow, PolicyRow};
use crate::core::catalog::{self, CatalogRows, ColumnRow, ForeignKeyRow, IndexRow};
use crate::core::schema::SchemaSnapshot;

/// `authors` (with an O2M alias `articles`), `articles` (M2O `author`, O2M alias `comments`,
/// CSV `tags`) and `comments` (M2O `article`). Built once: property tests read it thousands of
/// times.
pub(crate) fn blog() -> &'static SchemaSnapshot {
    static BLOG: std::sync::LazyLock<SchemaSnapshot> = std::sync::LazyLock::new(build_blog);
    &BLOG
}

fn build_blog() -> SchemaSnapshot {
    let column = |t: &str, c: &str, udt: &str| ColumnRow::new(t, c, udt, udt);
    let fk = |table: &str, column: &str, target: &str| ForeignKeyRow {
        constraint_name: format!("{table}_{column}_foreign"),
        table_name: table.into(),
        column_name: column.into(),
        foreign_schema: "public".into(),
        foreign_table: target.into(),
        foreign_column: "id".into(),
        on_update: "a".into(),
        on_delete: "n".into(),
    };
    let alias = |collection: &str, field: &str| {
        serde_json::from_value(json!({"collection": collection, "field": field, "special": ["o2m"]}))
            .expect("alias field meta is valid")
    };
    let o2m = |many: &str, field: &str, one: &str, alias: &str| {
        serde_json::from_value(json!({"many_collection": many, "many_field": field,
            "one_collection": one, "one_field": alias}))
        .expect("relation meta is valid")
    };
    catalog::build(CatalogRows {
        schema: "public".into(),
        columns: vec![
            column("authors", "id", "int4"),
            column("authors", "name", "varchar"),
            column("authors", "email", "varchar"),
            column("authors", "secret", "varchar"),
            column("articles", "id", "int4"),
            column("articles", "title", "varchar"),
            column("articles", "body", "text"),
            column("articles", "status", "varchar"),
            column("articles", "views", "int4"),
            column("articles", "owner", "uuid"),
            column("articles", "author", "int4"),
            column("articles", "published", "date"),
            column("articles", "tags", "text"),
            column("comments", "id", "int4"),
            column("comments", "body", "varchar"),
            column("comments", "article", "int4"),
        ],
        indexes: vec![
            IndexRow::primary_key("authors", "id"),
            IndexRow::primary_key("articles", "id"),
            IndexRow::primary_key("comments", "id"),
        ],
        foreign_keys: vec![
            fk("articles", "author", "authors"),
            fk("comments", "article", "articles"),
        ],
        field_meta: vec![
            alias("authors", "articles"),
            alias("articles", "comments"),
            serde_json::from_value(
                json!({"collection": "articles", "field": "tags", "special": ["cast-csv"]}),
            )
            .expect("csv field meta is valid"),
        ],
        relation_meta: vec![
            o2m("articles", "author", "authors", "articles"),
            o2m("comments", "article", "articles", "comments"),
        ],
        ..CatalogRows::default()
    })
    .snapshot
}

/// A plain policy with id `n`.
pub(crate) fn policy(n: u128) -> PolicyRow {
    PolicyRow {
        id: Uuid::from_u128(n),
        admin_access: false,
        app_access: false,
        enforce_tfa: false,
        ip_access: None,
    }
}

/// A permission row of policy `n`: `fields` as listed, `filter` as the item rule.
pub(crate) fn row(
    n: u128,
    collection: &str,
    action: Action,
    fields: &[&str],
    filter: Value,
) -> PermissionRow {
    PermissionRow {
        policy: Uuid::from_u128(n),
        collection: collection.into(),
        action,
        fields: Some(fields.iter().map(|f| f.to_string()).collect()),
        permissions: (!filter.is_null()).then_some(filter),
        validation: None,
        presets: None,
    }
}
