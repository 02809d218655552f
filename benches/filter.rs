//! Filter costs on the request and fan-out hot paths: parse + validate + compile a 20-node
//! filter (issue target: < 20 µs), and evaluate it in memory against one row.
//!
//! `cargo bench --bench filter`
#![allow(clippy::unwrap_used)] // a bench setup that fails should stop loudly

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use directrix::core::catalog::{self, CatalogRows, ColumnRow, IndexRow};
use directrix::core::filter::{self, Limits};
use directrix::db::items::compile;
use serde_json::{Map, Value, json};

fn snapshot() -> directrix::core::schema::SchemaSnapshot {
    let column = |name: &str, udt: &str| {
        let data_type = match udt {
            "int4" => "integer",
            "varchar" => "character varying",
            "timestamptz" => "timestamp with time zone",
            "bool" => "boolean",
            other => other,
        };
        ColumnRow::new("articles", name, udt, data_type)
    };
    catalog::build(CatalogRows {
        schema: "public".into(),
        columns: vec![
            column("id", "int4"),
            column("title", "varchar"),
            column("status", "varchar"),
            column("views", "int4"),
            column("published", "bool"),
            column("created", "timestamptz"),
        ],
        indexes: vec![IndexRow::primary_key("articles", "id")],
        ..CatalogRows::default()
    })
    .snapshot
}

/// Twenty nodes: `_and`/`_or` groups and conditions of several kinds.
fn twenty_nodes() -> Value {
    json!({"_and": [
        {"status": {"_eq": "published"}},
        {"views": {"_gt": 10}},
        {"views": {"_lte": 100000}},
        {"_or": [
            {"title": {"_icontains": "rust"}},
            {"title": {"_starts_with": "How"}},
            {"title": {"_nends_with": "draft"}},
            {"_and": [{"published": {"_eq": true}}, {"created": {"_gte": "$NOW(-1 year)"}}]}
        ]},
        {"id": {"_in": [1, 2, 3, 4, 5, 6, 7, 8]}},
        {"id": {"_nin": [9, 10]}},
        {"status": {"_neq": "archived"}},
        {"title": {"_nnull": true}},
        {"created": {"_between": ["2020-01-01T00:00:00Z", "$NOW"]}},
        {"year(created)": {"_gte": 2020}},
        {"_or": [{"views": {"_null": true}}, {"views": {"_gt": 0}}]}
    ]})
}

fn bench(c: &mut Criterion) {
    let snapshot = snapshot();
    let raw = twenty_nodes();
    let now = DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    c.bench_function("filter_parse_compile_20_nodes", |b| {
        b.iter(|| {
            let parsed =
                filter::parse(black_box(&raw), &snapshot, "articles", now, Limits::default()).unwrap();
            let mut sql = compile::Sql::default();
            compile::filter(&mut sql, &parsed, &snapshot, "public", "articles", "t").unwrap();
            sql
        })
    });
    let parsed = filter::parse(&raw, &snapshot, "articles", now, Limits::default()).unwrap();
    let Value::Object(row): Value = json!({"id": 3, "title": "How to Rust", "status": "published", "views": 42,
        "published": true, "created": "2024-05-01T10:00:00Z"})
    else {
        unreachable!()
    };
    let row: Map<String, Value> = row;
    c.bench_function("filter_eval_20_nodes_one_row", |b| {
        b.iter(|| filter::eval::matches(black_box(&parsed), black_box(&row), &snapshot, "articles"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
