//! Change fan-out on the feed's hot path, per change: classify it for one subscription shape
//! (filter + projection, in memory), serialize the event once for the group, and hand it to
//! every member's outbox; then each member's writer frames it with its `uid`. Measured for
//! 1 and 1,000 members of one group (the issue's fan-out scenario: 1,000 WebSocket subscribers
//! of one collection).
//!
//! `cargo bench --bench fanout`
#![allow(clippy::unwrap_used)] // a bench setup that fails should stop loudly

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use directrix::actors::outbox::{Outbox, Outgoing};
use directrix::config::SlowConsumer;
use directrix::core::catalog::{self, CatalogRows, ColumnRow, IndexRow};
use directrix::core::filter::Variables;
use directrix::core::pgoutput::Lsn;
use directrix::core::query::{self, Settings};
use directrix::core::realtime::event::{RowChange, RowOp};
use directrix::core::realtime::frame::{Event, Item};
use directrix::core::realtime::shape::{Outcome, Shape};
use directrix::http::realtime::ws::wire::text_frame;
use serde_json::json;

fn snapshot() -> directrix::core::schema::SchemaSnapshot {
    let column = |name: &str, udt: &str, data_type: &str| ColumnRow::new("articles", name, udt, data_type);
    catalog::build(CatalogRows {
        schema: "public".into(),
        columns: vec![
            column("id", "int4", "integer"),
            column("title", "varchar", "character varying"),
            column("status", "varchar", "character varying"),
            column("views", "int4", "integer"),
        ],
        indexes: vec![IndexRow::primary_key("articles", "id")],
        ..CatalogRows::default()
    })
    .snapshot
}

fn fanout(c: &mut Criterion) {
    let snapshot = Arc::new(snapshot());
    let mut params = serde_json::Map::new();
    params.insert("fields".into(), json!("id,title,status,views"));
    params.insert(
        "filter".into(),
        json!(r#"{"_and":[{"status":{"_eq":"published"}},{"views":{"_gt":10}}]}"#),
    );
    let query = query::parse(
        &params,
        &snapshot,
        "articles",
        Variables::default(),
        Settings::default(),
    )
    .unwrap();
    let shape = Shape::compile(snapshot.clone(), "articles", None, None, &query, None);
    let change = RowChange {
        collection: "articles".into(),
        op: RowOp::Insert,
        key: json!(42),
        old: None,
        new: json!({"id": 42, "title": "Realtime fan-out", "status": "published", "views": 1234})
            .as_object()
            .cloned(),
    };

    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(1));
    group.bench_function("classify + serialize once", |b| {
        b.iter(|| {
            let Outcome::Emit(kind, row) = shape.classify(black_box(&change)) else {
                panic!()
            };
            black_box(Event::new(
                kind,
                "articles",
                Lsn(7),
                true,
                vec![Item { key: json!(42), row }],
            ))
        })
    });

    for members in [1usize, 1000] {
        let outboxes: Vec<Arc<Outbox>> = (0..members).map(|_| Outbox::new(1 << 16)).collect();
        // Writers keep each uid as its JSON text.
        let uids: Vec<String> = (0..members)
            .map(|i| json!(format!("sub-{i}")).to_string())
            .collect();
        let mut frames = bytes::BytesMut::with_capacity(1 << 20);
        let mut batch = Vec::with_capacity(16);
        group.throughput(Throughput::Elements(members as u64));
        group.bench_function(format!("deliver to {members} members + finish per uid"), |b| {
            b.iter(|| {
                let Outcome::Emit(kind, row) = shape.classify(&change) else {
                    panic!()
                };
                let event = Arc::new(Event::new(
                    kind,
                    "articles",
                    Lsn(7),
                    true,
                    vec![Item { key: json!(42), row }],
                ));
                for (i, outbox) in outboxes.iter().enumerate() {
                    outbox.push_events(i as u64, SlowConsumer::Coalesce, std::slice::from_ref(&event));
                }
                // What each session's writer does with it: frame the group's text and its uid.
                frames.clear();
                for (outbox, uid) in outboxes.iter().zip(&uids) {
                    batch.clear();
                    drain_now(outbox, &mut batch);
                    for item in batch.drain(..) {
                        if let Outgoing::Event(_, event) = item {
                            text_frame(&event.closed_parts(Some(uid)), &mut frames);
                        }
                    }
                }
                black_box(&frames);
            })
        });
    }
    group.finish();
}

/// Takes what is queued without waiting (the queue is never empty here).
fn drain_now(outbox: &Outbox, out: &mut Vec<Outgoing>) {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut fut = std::pin::pin!(outbox.next_batch(out, 64));
    let _ = fut.as_mut().poll(&mut cx);
}

criterion_group!(benches, fanout);
criterion_main!(benches);
