use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::core::access::testing::blog;
use crate::core::pgoutput::{ColumnInfo, Lsn, ReplicaIdentity};

const ARTICLES: u32 = 100;
const OTHER: u32 = 200;
const SYSTEM: u32 = 300;

fn info(schema: &str, table: &str, columns: &[(&str, u32)]) -> RelationInfo {
    RelationInfo {
        schema: schema.into(),
        table: table.into(),
        replica_identity: ReplicaIdentity::Full,
        columns: columns
            .iter()
            .map(|(name, oid)| ColumnInfo {
                name: (*name).into(),
                key: true,
                type_oid: *oid,
                type_modifier: -1,
            })
            .collect(),
    }
}

fn relations() -> HashMap<u32, RelationInfo> {
    HashMap::from([
        (
            ARTICLES,
            info(
                "public",
                "articles",
                &[
                    ("id", 23),
                    ("title", 1043),
                    ("views", 23),
                    ("tags", 25),
                    ("published", 1082),
                ],
            ),
        ),
        (OTHER, info("public", "not_a_collection", &[("id", 23)])),
        (SYSTEM, info("directrix", "users", &[("id", 2950)])),
    ])
}

fn text(s: &str) -> Datum {
    Datum::Text(s.into())
}

fn row(values: &[(&str, Datum)]) -> Row {
    values.iter().cloned().collect()
}

fn change(relation: u32, op: Op, old: Option<Row>, new: Option<Row>) -> Change {
    let relations = relations();
    let info = &relations[&relation];
    Change {
        schema: info.schema.clone(),
        table: info.table.clone(),
        relation,
        op,
        key: old.clone().or_else(|| new.clone()).unwrap_or_default(),
        old,
        new,
    }
}

fn tx(changes: Vec<Change>) -> Transaction {
    Transaction {
        xid: 7,
        commit_lsn: Lsn(0x100),
        end_lsn: Lsn(0x128),
        commit_ts: Utc.timestamp_opt(1_700_000_000, 0).single().unwrap_or_default(),
        origin: None,
        changes,
        messages: Vec::new(),
        first: 0,
        more: false,
    }
}

fn convert(tx: &Transaction) -> Committed {
    let relations = relations();
    to_committed(tx, |oid| relations.get(&oid), blog(), "public")
}

fn article(id: &str, title: &str) -> Row {
    row(&[
        ("id", text(id)),
        ("title", text(title)),
        ("views", text("12")),
        ("tags", text("a,b")),
        ("published", text("2024-05-01")),
    ])
}

#[test]
fn an_insert_becomes_typed_json_named_by_collection() {
    let committed = convert(&tx(vec![change(
        ARTICLES,
        Op::Insert,
        None,
        Some(article("1", "Hi")),
    )]));
    assert_eq!((committed.xid, committed.end_lsn), (7, Lsn(0x128)));
    let [only] = committed.changes.as_slice() else {
        panic!("one change expected: {committed:?}");
    };
    assert_eq!(&*only.collection, "articles");
    assert_eq!(only.op, RowOp::Insert);
    assert_eq!(only.key, json!(1));
    assert_eq!(only.old, None);
    assert_eq!(
        only.new.clone().map(Value::Object),
        Some(json!({"id": 1, "title": "Hi", "views": 12, "tags": ["a", "b"], "published": "2024-05-01"}))
    );
}

#[test]
fn tables_that_are_not_user_collections_are_left_out() {
    let committed = convert(&tx(vec![
        change(OTHER, Op::Insert, None, Some(row(&[("id", text("1"))]))),
        change(SYSTEM, Op::Delete, Some(row(&[("id", text("x"))])), None),
        change(ARTICLES, Op::Delete, Some(row(&[("id", text("5"))])), None),
    ]));
    assert_eq!(committed.collections(), vec![Arc::<str>::from("articles")]);
    assert_eq!(committed.changes[0].key, json!(5));
    assert!(
        convert(&tx(vec![change(OTHER, Op::Truncate, None, None)]))
            .changes
            .is_empty()
    );
}

#[test]
fn unsent_unchanged_values_are_omitted_and_updates_keep_old_and_new() {
    let old = article("3", "Before");
    let new = row(&[
        ("id", text("4")),
        ("title", text("After")),
        ("views", Datum::Null),
        ("tags", Datum::Unchanged),
        ("published", text("2024-05-02")),
    ]);
    let committed = convert(&tx(vec![change(ARTICLES, Op::Update, Some(old), Some(new))]));
    let update = &committed.changes[0];
    assert_eq!(update.key, json!(4), "a moved item is keyed by where it is now");
    assert_eq!(
        update.old.as_ref().and_then(|o| o.get("title")),
        Some(&json!("Before"))
    );
    let new = update.new.clone().unwrap_or_default();
    assert_eq!(new.get("views"), Some(&Value::Null));
    assert!(!new.contains_key("tags"));
}

#[test]
fn a_truncate_has_no_key_and_malformed_text_is_kept_as_a_string() {
    let committed = convert(&tx(vec![
        change(ARTICLES, Op::Truncate, None, None),
        change(ARTICLES, Op::Insert, None, Some(article("not-a-number", "x"))),
    ]));
    assert_eq!(committed.changes[0].op, RowOp::Truncate);
    assert_eq!(committed.changes[0].key, Value::Null);
    assert_eq!(committed.changes[1].key, json!("not-a-number"));
}
