//! pgoutput throughput on the replication hot path: decode + assemble Insert messages of a
//! 6-column row into whole transactions (issue target: ≥ 200k rows/s on one core), the decode
//! step alone for comparison, and the replication actor's next step, a decoded transaction →
//! `Committed` (collection names, Directus JSON values, keys).
//!
//! `cargo bench --bench pgoutput`
#![allow(clippy::unwrap_used)] // a bench setup that fails should stop loudly

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use directrix::actors::replication::to_committed;
use directrix::core::catalog::{self, CatalogRows, ColumnRow, IndexRow};
use directrix::core::pgoutput::{Decoder, Event, decode};
use directrix::core::schema::SchemaSnapshot;

const RELATION: u32 = 16386;
/// Inserts per transaction: large enough that Begin/Commit cost is negligible per row.
const ROW_COUNT: usize = 1000;

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend(s.as_bytes());
    out.push(0);
}

/// `R` for `public.articles (id int8 key, title text, status varchar(20), views int4,
/// published bool, created timestamptz)`, laid out as Postgres sends it.
fn relation() -> Vec<u8> {
    let mut out = vec![b'R'];
    out.extend(RELATION.to_be_bytes());
    cstr(&mut out, "public");
    cstr(&mut out, "articles");
    out.push(b'd');
    let columns: [(&str, u32, i32); 6] = [
        ("id", 20, -1),
        ("title", 25, -1),
        ("status", 1043, 24),
        ("views", 23, -1),
        ("published", 16, -1),
        ("created", 1184, -1),
    ];
    out.extend(6_i16.to_be_bytes());
    for (i, (name, type_oid, typmod)) in columns.into_iter().enumerate() {
        out.push(u8::from(i == 0));
        cstr(&mut out, name);
        out.extend(type_oid.to_be_bytes());
        out.extend(typmod.to_be_bytes());
    }
    out
}

/// `I` with six text values, the shape of a typical Directus item.
fn insert(id: usize) -> Vec<u8> {
    let id = id.to_string();
    let values = [
        id.as_str(),
        "How to decode pgoutput without copying twice",
        "published",
        "4217",
        "t",
        "2024-05-01 10:00:00.123456+00",
    ];
    let mut out = vec![b'I'];
    out.extend(RELATION.to_be_bytes());
    out.push(b'N');
    out.extend(6_i16.to_be_bytes());
    for value in values {
        out.push(b't');
        out.extend(i32::try_from(value.len()).unwrap().to_be_bytes());
        out.extend(value.as_bytes());
    }
    out
}

fn begin(lsn: u64) -> Vec<u8> {
    let mut out = vec![b'B'];
    out.extend(lsn.to_be_bytes());
    out.extend(768_000_000_000_000_i64.to_be_bytes());
    out.extend(740_u32.to_be_bytes());
    out
}

fn commit(lsn: u64) -> Vec<u8> {
    let mut out = vec![b'C', 0];
    out.extend(lsn.to_be_bytes());
    out.extend((lsn + 0x30).to_be_bytes());
    out.extend(768_000_000_000_000_i64.to_be_bytes());
    out
}

/// The snapshot the schema actor would hold for `public.articles`.
fn snapshot() -> SchemaSnapshot {
    let columns = [
        ("id", "int8"),
        ("title", "text"),
        ("status", "varchar"),
        ("views", "int4"),
        ("published", "bool"),
        ("created", "timestamptz"),
    ];
    catalog::build(CatalogRows {
        schema: "public".into(),
        columns: columns
            .iter()
            .map(|(name, udt)| ColumnRow::new("articles", name, udt, udt))
            .collect(),
        indexes: vec![IndexRow::primary_key("articles", "id")],
        ..CatalogRows::default()
    })
    .snapshot
}

fn bench(c: &mut Criterion) {
    let inserts: Vec<Vec<u8>> = (1..=ROW_COUNT).map(insert).collect();
    let mut group = c.benchmark_group("pgoutput");
    group.throughput(Throughput::Elements(ROW_COUNT as u64));

    // One decoder for the whole run, as in one replication session: the relation is described
    // once, then every iteration is one transaction of ROW_COUNT inserts.
    let mut decoder = Decoder::new();
    decoder.push(&relation()).unwrap();
    let (begin, commit) = (begin(0x100), commit(0x100));
    group.bench_function("decode_assemble_insert_6_columns", |b| {
        b.iter(|| {
            decoder.push(&begin).unwrap();
            for payload in &inserts {
                decoder.push(black_box(payload)).unwrap();
            }
            match decoder.push(&commit).unwrap() {
                Some(Event::Transaction(tx)) => assert_eq!(tx.changes.len(), ROW_COUNT),
                other => panic!("expected a transaction, got {other:?}"),
            }
        })
    });

    let transaction = {
        decoder.push(&begin).unwrap();
        for payload in &inserts {
            decoder.push(payload).unwrap();
        }
        match decoder.push(&commit).unwrap() {
            Some(Event::Transaction(tx)) => tx,
            other => panic!("expected a transaction, got {other:?}"),
        }
    };
    let schema = snapshot();
    group.bench_function("transaction_to_committed_6_columns", |b| {
        b.iter(|| {
            let committed = to_committed(
                black_box(&transaction),
                |oid| decoder.relation(oid),
                &schema,
                "public",
            );
            assert_eq!(committed.changes.len(), ROW_COUNT);
            committed
        })
    });

    group.bench_function("decode_only_insert_6_columns", |b| {
        b.iter(|| {
            for payload in &inserts {
                black_box(decode(black_box(payload)).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
