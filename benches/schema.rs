//! Schema snapshot costs: building a snapshot from catalog rows (paid on every schema refresh)
//! and serializing `GET /fields` (paid per request), for a 300-table, 4,500-column schema.
//!
//! `cargo bench --bench schema`

use criterion::{Criterion, criterion_group, criterion_main};
use directrix::core::catalog::{self, CatalogRows, ColumnRow, ForeignKeyRow, IndexRow};
use directrix::http::envelope::Data;
use std::hint::black_box;

const TABLES: usize = 300;
const COLUMNS: usize = 15;

fn rows() -> CatalogRows {
    let mut rows = CatalogRows {
        schema: "public".into(),
        ..CatalogRows::default()
    };
    for t in 0..TABLES {
        let table = format!("table_{t:03}");
        for c in 0..COLUMNS {
            let (name, udt) = match c {
                0 => ("id".to_string(), "int4"),
                1 => ("parent".to_string(), "int4"),
                c if c % 3 == 0 => (format!("c{c}"), "varchar"),
                c if c % 3 == 1 => (format!("c{c}"), "timestamptz"),
                c => (format!("c{c}"), "jsonb"),
            };
            rows.columns.push(ColumnRow {
                is_nullable: c != 0,
                default_expr: (c == 3).then(|| "'draft'::character varying".into()),
                is_identity: c == 0,
                ..ColumnRow::new(&table, &name, udt, udt)
            });
        }
        rows.indexes.push(IndexRow::primary_key(&table, "id"));
        if t > 0 {
            rows.foreign_keys.push(ForeignKeyRow {
                constraint_name: format!("{table}_parent_foreign"),
                table_name: table.clone(),
                column_name: "parent".into(),
                foreign_schema: "public".into(),
                foreign_table: format!("table_{:03}", t - 1),
                foreign_column: "id".into(),
                on_update: "a".into(),
                on_delete: "n".into(),
            });
        }
    }
    rows
}

fn bench(c: &mut Criterion) {
    let input = rows();
    c.bench_function("catalog_build_300x15", |b| {
        b.iter(|| catalog::build(black_box(input.clone())))
    });
    let snapshot = catalog::build(input).snapshot;
    c.bench_function("serialize_all_fields_300x15", |b| {
        b.iter(|| {
            let fields: Vec<_> = snapshot.fields().collect();
            serde_json::to_vec(&Data { data: fields }).map(|v| v.len())
        })
    });
    let one = snapshot.collection("table_150").map(|c| &c.fields);
    c.bench_function("serialize_one_collection_fields", |b| {
        b.iter(|| serde_json::to_vec(&Data { data: black_box(one) }).map(|v| v.len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
