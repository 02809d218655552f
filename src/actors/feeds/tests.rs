//! The feed actors without a database: slices in, outbox contents out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::Actor;
use chrono::DateTime;
use serde_json::{Value, json};

use super::feed::{Apply, Attach, CollectionFeed, Detach, Floor, Ready, Start};
use crate::actors::outbox::{Outbox, Outgoing};
use crate::config::SlowConsumer;
use crate::core::access::testing::blog;
use crate::core::filter::Variables;
use crate::core::pgoutput::Lsn;
use crate::core::query::{self, Settings};
use crate::core::realtime::event::{RowChange, RowOp};
use crate::core::realtime::ring::Slice;
use crate::core::realtime::shape::Shape;
use crate::core::realtime::snapshot::Snapshot;

fn shape(filter: Option<&str>) -> Arc<Shape> {
    shape_at(filter, DateTime::UNIX_EPOCH)
}

/// `id,title` of articles matching `filter`, with `$NOW` at `now`.
fn shape_at(filter: Option<&str>, now: DateTime<chrono::Utc>) -> Arc<Shape> {
    let mut params = serde_json::Map::new();
    params.insert("fields".into(), json!("id,title"));
    if let Some(filter) = filter {
        params.insert("filter".into(), json!(filter));
    }
    let query = query::parse(
        &params,
        blog(),
        "articles",
        Variables::from(now),
        Settings::default(),
    )
    .unwrap();
    Arc::new(Shape::compile(
        Arc::new(blog().clone()),
        "articles",
        None,
        None,
        &query,
        None,
    ))
}

fn insert(xid: u32, end: u64, id: i64, status: &str) -> Apply {
    Apply {
        slice: Arc::new(Slice {
            xid,
            commit_lsn: Lsn(end - 1),
            end_lsn: Lsn(end),
            commit_ts: DateTime::UNIX_EPOCH,
            more: false,
            first: 0,
            changes: vec![RowChange {
                collection: "articles".into(),
                op: RowOp::Insert,
                key: json!(id),
                old: None,
                new: json!({"id": id, "title": format!("t{id}"), "status": status})
                    .as_object()
                    .cloned(),
            }],
        }),
        received: Instant::now(),
    }
}

fn feed(floor: Lsn, oldest: Arc<AtomicU64>) -> actix::Addr<CollectionFeed> {
    CollectionFeed::new("articles".into(), 100, Duration::from_secs(60), floor, oldest).start()
}

fn attach(sub: u64, outbox: &Arc<Outbox>, shape: Arc<Shape>, start: Start) -> Attach {
    Attach {
        sub,
        outbox: outbox.clone(),
        policy: SlowConsumer::Coalesce,
        group: shape.key(),
        spec: super::Spec {
            shape,
            reread: None,
            recompile: None,
        },
        start,
    }
}

/// Everything queued right now, as JSON.
async fn drain(outbox: &Outbox) -> Vec<Value> {
    if outbox.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let _ = outbox.next_batch(&mut out, 1000).await;
    out.into_iter()
        .map(|item| match item {
            Outgoing::Event(_, event) => serde_json::from_str(&event.close(None)).unwrap(),
            Outgoing::Refetch { reason, .. } => json!({"refetch": reason}),
            Outgoing::Text(text) => json!({"text": text}),
            Outgoing::Pong(_) | Outgoing::Ping(_) => json!({"frame": true}),
        })
        .collect()
}

fn ids(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .flat_map(|m| m["data"].as_array().cloned().unwrap_or_default())
        .filter_map(|row| row["id"].as_i64())
        .collect()
}

#[actix::test]
async fn live_subscribers_of_one_shape_share_events_and_filters_apply() {
    let oldest = Arc::new(AtomicU64::new(u64::MAX));
    let feed = feed(Lsn(0), oldest.clone());
    let (a, b) = (Outbox::new(100), Outbox::new(100));
    let published = shape(Some(r#"{"status":{"_eq":"published"}}"#));
    feed.send(attach(1, &a, published.clone(), Start::Now))
        .await
        .unwrap();
    feed.send(attach(2, &b, published, Start::Now)).await.unwrap();
    feed.send(insert(10, 100, 1, "published")).await.unwrap();
    feed.send(insert(11, 200, 2, "draft")).await.unwrap();
    let (got_a, got_b) = (drain(&a).await, drain(&b).await);
    assert_eq!(ids(&got_a), vec![1]);
    assert_eq!(got_a, got_b);
    assert_eq!(got_a[0]["lsn"], "0/64");
    // The ring holds both; the hub reads the oldest commit to hold the slot.
    assert_eq!(oldest.load(Ordering::Acquire), 99);
    feed.send(Detach { sub: 1 }).await.unwrap();
    feed.send(insert(12, 300, 3, "published")).await.unwrap();
    assert!(drain(&a).await.is_empty());
    assert_eq!(ids(&drain(&b).await), vec![3]);
}

#[actix::test]
async fn snapshot_handoff_forwards_exactly_what_the_snapshot_missed() {
    let feed = feed(Lsn(0), Arc::new(AtomicU64::new(u64::MAX)));
    let outbox = Outbox::new(100);
    // xid 10 committed before the snapshot; 11 was in progress for it; 12 came after.
    feed.send(attach(1, &outbox, shape(None), Start::Snapshot))
        .await
        .unwrap();
    feed.send(insert(10, 100, 1, "x")).await.unwrap();
    feed.send(insert(11, 200, 2, "x")).await.unwrap();
    assert!(drain(&outbox).await.is_empty(), "nothing before Ready");
    feed.send(Ready {
        sub: 1,
        snapshot: Snapshot::parse("11:12:11").unwrap(),
    })
    .await
    .unwrap();
    feed.send(insert(12, 300, 3, "x")).await.unwrap();
    assert_eq!(ids(&drain(&outbox).await), vec![2, 3]);
}

#[actix::test]
async fn resume_replays_after_the_position_or_asks_for_a_refetch() {
    let feed = feed(Lsn::UNKNOWN, Arc::new(AtomicU64::new(u64::MAX)));
    feed.send(Floor(Lsn(50))).await.unwrap();
    for (i, end) in [100u64, 200, 300].iter().enumerate() {
        feed.send(insert(10 + i as u32, *end, i as i64 + 1, "x"))
            .await
            .unwrap();
    }
    let resumed = Outbox::new(100);
    feed.send(attach(1, &resumed, shape(None), Start::Since(Lsn(100))))
        .await
        .unwrap();
    feed.send(insert(20, 400, 4, "x")).await.unwrap();
    assert_eq!(ids(&drain(&resumed).await), vec![2, 3, 4]);
    let gone = Outbox::new(100);
    feed.send(attach(2, &gone, shape(None), Start::Since(Lsn(10))))
        .await
        .unwrap();
    assert_eq!(drain(&gone).await, vec![json!({"refetch": "gap"})]);
}

#[actix::test]
async fn a_resume_skips_replayed_changes_it_already_has() {
    // After a restart the slot replays from the hold: changes at or before `since` arrive
    // live again and must not be sent twice.
    let feed = feed(Lsn(50), Arc::new(AtomicU64::new(u64::MAX)));
    let outbox = Outbox::new(100);
    feed.send(attach(1, &outbox, shape(None), Start::Since(Lsn(200))))
        .await
        .unwrap();
    for (i, end) in [100u64, 200, 300].iter().enumerate() {
        feed.send(insert(10 + i as u32, *end, i as i64 + 1, "x"))
            .await
            .unwrap();
    }
    assert_eq!(ids(&drain(&outbox).await), vec![3]);
}

#[actix::test]
async fn changes_the_snapshot_already_saw_are_not_sent_again() {
    // A restarted server replays retained transactions; a subscriber whose init rows came
    // from a later snapshot must not get them as news.
    let feed = feed(Lsn(0), Arc::new(AtomicU64::new(u64::MAX)));
    let outbox = Outbox::new(100);
    feed.send(attach(1, &outbox, shape(None), Start::Snapshot))
        .await
        .unwrap();
    feed.send(Ready {
        sub: 1,
        snapshot: Snapshot::parse("100:100:").unwrap(),
    })
    .await
    .unwrap();
    feed.send(insert(50, 100, 1, "x")).await.unwrap();
    feed.send(insert(99, 200, 2, "x")).await.unwrap();
    feed.send(insert(100, 300, 3, "x")).await.unwrap();
    feed.send(insert(101, 400, 4, "x")).await.unwrap();
    assert_eq!(ids(&drain(&outbox).await), vec![3, 4]);
}

/// Articles published by `now` (`$NOW` in the filter), compiled at `now`.
fn published_by(now: DateTime<chrono::Utc>) -> Arc<Shape> {
    shape_at(Some(r#"{"published":{"_lte":"$NOW"}}"#), now)
}

struct PublishedBy;

impl super::Recompile for PublishedBy {
    fn at(&self, now: DateTime<chrono::Utc>) -> Option<super::Recompiled> {
        Some(super::Recompiled {
            shape: published_by(now),
            reread: None,
        })
    }
}

fn insert_published(xid: u32, end: u64, id: i64, published: &str, committed: &str) -> Apply {
    Apply {
        slice: Arc::new(Slice {
            xid,
            commit_lsn: Lsn(end - 1),
            end_lsn: Lsn(end),
            commit_ts: committed.parse().unwrap(),
            more: false,
            first: 0,
            changes: vec![RowChange {
                collection: "articles".into(),
                op: RowOp::Insert,
                key: json!(id),
                old: None,
                new: json!({"id": id, "title": "t", "published": published})
                    .as_object()
                    .cloned(),
            }],
        }),
        received: Instant::now(),
    }
}

#[actix::test]
async fn now_in_a_filter_is_the_commit_time_of_each_transaction() {
    let feed = feed(Lsn(0), Arc::new(AtomicU64::new(u64::MAX)));
    let (fresh, frozen) = (Outbox::new(100), Outbox::new(100));
    let subscribed: DateTime<chrono::Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    let mut again = attach(1, &fresh, published_by(subscribed), Start::Now);
    again.spec.recompile = Some(Arc::new(PublishedBy));
    again.group = "now".into();
    feed.send(again).await.unwrap();
    feed.send(attach(2, &frozen, published_by(subscribed), Start::Now))
        .await
        .unwrap();
    // Not yet published when committed; published by the time the second one commits.
    feed.send(insert_published(10, 100, 1, "2024-06-01", "2024-01-02T00:00:00Z"))
        .await
        .unwrap();
    feed.send(insert_published(11, 200, 2, "2024-06-01", "2024-07-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(ids(&drain(&fresh).await), vec![2]);
    // Compiled once, the window stays where it was at subscribe time.
    assert!(drain(&frozen).await.is_empty());
}

/// A re-reading group (its task reads rows from a database that is never reached here).
fn rereading(sub: u64, outbox: &Arc<Outbox>, start: Start) -> Attach {
    let shape = shape(None);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let query = query::parse(
        &serde_json::Map::new(),
        blog(),
        "articles",
        Variables::default(),
        Settings::default(),
    )
    .unwrap();
    Attach {
        sub,
        outbox: outbox.clone(),
        policy: SlowConsumer::Coalesce,
        group: format!("{}|reread", shape.key()),
        spec: super::Spec {
            shape,
            reread: Some(Arc::new(super::reread::RereadContext {
                pool,
                snapshot: Arc::new(blog().clone()),
                user_schema: "public".into(),
                collection: "articles".into(),
                query,
                rules: crate::db::items::rules::ReadRules::unrestricted(),
            })),
            recompile: None,
        },
        start,
    }
}

#[actix::test]
async fn a_replay_longer_than_the_re_read_queue_is_a_refetch_not_a_silent_cut() {
    let slices = super::feed::REREAD_QUEUE as u64 + 10;
    let feed = CollectionFeed::new(
        "articles".into(),
        slices as usize + 10,
        Duration::from_secs(600),
        Lsn(50),
        Arc::new(AtomicU64::new(u64::MAX)),
    )
    .start();
    for i in 0..slices {
        feed.send(insert(10 + i as u32, 100 + i * 10, i as i64, "x"))
            .await
            .unwrap();
    }
    let outbox = Outbox::new(100);
    feed.send(rereading(1, &outbox, Start::Since(Lsn(60))))
        .await
        .unwrap();
    assert_eq!(drain(&outbox).await, vec![json!({"refetch": "lagging"})]);
}
