use serde_json::json;

use super::*;
use crate::core::catalog::{self, CatalogRows, ColumnRow, IndexRow};

fn snapshot() -> SchemaSnapshot {
    let column = |table: &str, name: &str, udt: &str| ColumnRow {
        is_nullable: name != "id",
        is_identity: name == "id",
        ..ColumnRow::new(table, name, udt, udt)
    };
    let pk = |table: &str| IndexRow::primary_key(table, "id");
    catalog::build(CatalogRows {
        schema: "public".into(),
        columns: vec![
            column("authors", "id", "int4"),
            column("authors", "name", "varchar"),
            column("articles", "id", "int4"),
            column("articles", "author", "int4"),
        ],
        indexes: vec![pk("authors"), pk("articles")],
        ..CatalogRows::default()
    })
    .snapshot
}

fn reason(err: SchemaError) -> String {
    match err {
        SchemaError::Invalid(reason) => reason,
        SchemaError::Forbidden => "forbidden".into(),
        SchemaError::NoSuchCollection(name) => format!("no collection {name}"),
    }
}

#[test]
fn a_new_collection_without_fields_gets_an_auto_increment_id() {
    let plan = plan_create_collection(&snapshot(), json!({"collection": "tags", "schema": {}})).unwrap();
    assert_eq!(plan.fields.len(), 1);
    let id = plan.fields[0].column.as_ref().unwrap();
    assert!(id.primary_key && id.auto_increment);
    assert_eq!(plan.table, Some(None));
}

#[test]
fn a_collection_without_schema_is_a_folder() {
    let plan = plan_create_collection(
        &snapshot(),
        json!({"collection": "group", "meta": {"icon": "folder"}}),
    )
    .unwrap();
    assert_eq!(plan.table, None);
    assert_eq!(plan.meta.unwrap().icon.as_deref(), Some("folder"));
}

#[test]
fn duplicate_and_hostile_collections_are_refused() {
    let err =
        plan_create_collection(&snapshot(), json!({"collection": "authors", "schema": {}})).unwrap_err();
    assert_eq!(reason(err), "Collection \"authors\" already exists");
    assert!(
        plan_create_collection(
            &snapshot(),
            json!({"collection": "\"; drop table x; --", "schema": {}})
        )
        .is_err()
    );
    assert!(
        plan_create_collection(&snapshot(), json!({"collection": "directus_users", "schema": {}})).is_err()
    );
    assert!(plan_create_collection(&snapshot(), json!({"schema": {}})).is_err());
    assert!(plan_create_collection(&snapshot(), json!({"collection": 5})).is_err());
    assert!(plan_create_collection(&snapshot(), json!([1, 2])).is_err());
}

#[test]
fn field_types_and_defaults_are_checked() {
    let snap = snapshot();
    let err = plan_create_field(&snap, "authors", json!({"field": "x", "type": "varchar"})).unwrap_err();
    assert!(reason(err).starts_with("\"type\" must be one of [string, text, integer"));
    let err = plan_create_field(
        &snap,
        "authors",
        json!({"field": "age", "type": "integer",
        "schema": {"default_value": "old"}}),
    )
    .unwrap_err();
    assert!(reason(err).contains("does not match type"));
    let ok = plan_create_field(
        &snap,
        "authors",
        json!({"field": "age", "type": "integer",
        "schema": {"default_value": 3, "is_nullable": false}}),
    )
    .unwrap();
    let column = ok.column.unwrap();
    assert_eq!(column.default, DefaultValue::Literal(json!(3)));
    assert!(!column.nullable);
}

#[test]
fn existing_fields_and_unknown_collections_are_refused() {
    let snap = snapshot();
    assert!(
        reason(plan_create_field(&snap, "authors", json!({"field": "name", "type": "string"})).unwrap_err())
            .contains("already exists")
    );
    assert_eq!(
        plan_create_field(&snap, "nope", json!({"field": "a", "type": "string"})),
        Err(SchemaError::NoSuchCollection("nope".into()))
    );
}

#[test]
fn csv_and_hash_fields_carry_their_special_flag() {
    let plan = plan_create_field(&snapshot(), "authors", json!({"field": "tags", "type": "csv"})).unwrap();
    assert_eq!(plan.meta.unwrap().special, Some(vec!["cast-csv".to_string()]));
}

#[test]
fn unknown_meta_keys_are_invalid_payload() {
    let err = plan_update_collection(&snapshot(), "authors", json!({"meta": {"nonsense": 1}})).unwrap_err();
    assert!(reason(err).contains("unknown field"));
}

#[test]
fn relations_need_existing_ends_and_valid_actions() {
    let snap = snapshot();
    let plan = plan_create_relation(
        &snap,
        json!({"collection": "articles", "field": "author",
        "related_collection": "authors", "schema": {"on_delete": "set null"}}),
    )
    .unwrap();
    let fk = plan.foreign_key.unwrap();
    assert_eq!(
        (
            fk.foreign_table.as_str(),
            fk.foreign_column.as_str(),
            fk.on_delete
        ),
        ("authors", "id", "SET NULL")
    );
    assert_eq!(fk.constraint_name, "articles_author_foreign");
    let err = plan_create_relation(
        &snap,
        json!({"collection": "articles", "field": "author",
        "related_collection": "authors", "schema": {"on_delete": "DROP TABLE"}}),
    )
    .unwrap_err();
    assert!(reason(err).contains("not a foreign key action"));
    let err = plan_create_relation(
        &snap,
        json!({"collection": "articles", "field": "nope",
        "related_collection": "authors"}),
    )
    .unwrap_err();
    assert!(reason(err).contains("doesn't exist"));
}

#[test]
fn constraint_names_fit_postgres() {
    let name = constraint_name(&"a".repeat(60), &"b".repeat(60));
    assert_eq!(name.len(), 63);
}

/// Arbitrary JSON, biased towards the keys the planners read, so generated bodies reach deep
/// into the parsing instead of failing at the first lookup.
fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let key = prop_oneof![
        Just("collection".to_string()),
        Just("field".to_string()),
        Just("type".to_string()),
        Just("schema".to_string()),
        Just("meta".to_string()),
        Just("fields".to_string()),
        Just("default_value".to_string()),
        Just("max_length".to_string()),
        Just("is_primary_key".to_string()),
        Just("has_auto_increment".to_string()),
        Just("related_collection".to_string()),
        Just("on_delete".to_string()),
        Just("special".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        prop_oneof![
            Just("integer".to_string()),
            Just("string".to_string()),
            Just("uuid".to_string()),
            Just("authors".to_string()),
            Just("id".to_string()),
            Just("now()".to_string()),
            ".{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #[test]
    fn planners_never_panic_on_arbitrary_bodies(body in arbitrary_json()) {
        let snap = snapshot();
        let _ = plan_create_collections(&snap, body.clone());
        let _ = plan_update_collection(&snap, "authors", body.clone());
        let _ = plan_create_field(&snap, "authors", body.clone());
        let _ = plan_update_field(&snap, "authors", "name", body.clone());
        let _ = plan_create_relation(&snap, body.clone());
    }

    #[test]
    fn accepted_new_collections_have_safe_names_and_one_primary_key(body in arbitrary_json()) {
        if let Ok(plans) = plan_create_collections(&snapshot(), body) {
            for plan in plans {
                proptest::prop_assert!(crate::core::name::check_collection(&plan.collection).is_ok());
                if plan.table.is_some() {
                    let keys = plan.fields.iter().filter(|f| f.column.as_ref().is_some_and(|c| c.primary_key)).count();
                    proptest::prop_assert_eq!(keys, 1);
                }
                for field in &plan.fields {
                    proptest::prop_assert!(crate::core::name::check_field(&field.field).is_ok());
                }
            }
        }
    }
}
