//! The replication consumer against the test cluster: it is started directly on a fresh
//! database with a collector actor as its sink, and checked for what reaches the sink (JSON
//! values, keys, old rows, transaction grouping, commit order), for exactly-once delivery
//! across a killed walsender, for resuming from the hub's hold after a restart, and, through
//! the app, for tables created by `/collections`.
//!
//! Every test drops the slots it made: slots pin WAL, the cluster allows 32, and a database
//! with a slot cannot be dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use directrix::actors::replication::{self, Deliver, ReplicationHandle, ReplicationSettings};
use directrix::core::realtime::{Committed, RowOp};
use directrix::core::schema::SchemaSnapshot;
use directrix::db::{introspect, replication as db};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, watch};

/// Hands every delivered transaction to the test. With a hold it behaves like a hub that
/// retains everything: the hold is the oldest delivered `commit_lsn`, set before the delivery
/// returns (so before the consumer may confirm past it).
struct Collector(mpsc::UnboundedSender<Arc<Committed>>, Option<Arc<AtomicU64>>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Collector {
    type Result = ();

    fn handle(&mut self, Deliver(committed): Deliver, _: &mut Context<Self>) {
        if let Some(hold) = &self.1 {
            hold.fetch_min(committed.commit_lsn.0, Ordering::AcqRel);
        }
        let _ = self.0.send(committed);
    }
}

/// A fresh database with `sql` applied, and what a consumer of it needs.
struct Db {
    name: String,
    pool: PgPool,
    schema_tx: watch::Sender<Arc<SchemaSnapshot>>,
    schema: watch::Receiver<Arc<SchemaSnapshot>>,
    settings: ReplicationSettings,
}

async fn database(sql: &str) -> Db {
    let name = common::fresh_database().await;
    let options = common::cluster().connect_options(&name);
    let pool = PgPool::connect_with(options.clone()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap();
    let built = introspect::load(&pool, "public").await.unwrap();
    let (schema_tx, schema) = watch::channel(Arc::new(built.snapshot));
    let mut config = common::test_config(&name);
    config.realtime.enabled = true;
    config.realtime.status_interval = Duration::from_millis(100);
    let settings = ReplicationSettings::from_config(&config, &options);
    Db {
        name,
        pool,
        schema_tx,
        schema,
        settings,
    }
}

impl Db {
    /// A consumer into a collector; `retains` makes the collector keep `hold` as a hub would.
    fn consume(
        &self,
        hold: Arc<AtomicU64>,
        retains: bool,
    ) -> (ReplicationHandle, mpsc::UnboundedReceiver<Arc<Committed>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Collector(tx, retains.then(|| hold.clone())).start().recipient();
        let handle =
            replication::start(self.settings.clone(), self.schema.clone(), sink, hold, None).unwrap();
        (handle, rx)
    }

    /// A psql-like session of its own.
    async fn connect(&self) -> PgConnection {
        PgConnection::connect(&common::database_url(&self.name))
            .await
            .unwrap()
    }

    async fn sql(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// Publishes a freshly loaded snapshot, as the schema actor does after DDL.
    async fn reload(&self) {
        let built = introspect::load(&self.pool, "public").await.unwrap();
        self.schema_tx.send_replace(Arc::new(built.snapshot));
    }

    async fn drop_slot(&self) {
        db::drop_slot(&self.pool, &self.settings.slot).await.unwrap();
    }
}

fn no_hold() -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(u64::MAX))
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Arc<Committed>>) -> Arc<Committed> {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("a transaction within 15 s")
        .expect("the consumer is running")
}

/// Nothing more arrives for a while.
async fn quiet(rx: &mut mpsc::UnboundedReceiver<Arc<Committed>>) {
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(700), rx.recv()).await {
        panic!("unexpected transaction: {extra:?}");
    }
}

async fn run(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

fn object(map: &Option<serde_json::Map<String, Value>>) -> Value {
    map.clone().map_or(Value::Null, Value::Object)
}

async fn wait_connected(handle: &ReplicationHandle) {
    for _ in 0..300 {
        if handle.status().connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not streaming: {:?}", handle.status().last_error());
}

const ARTICLES: &str = "create table articles (id serial primary key, title text not null, \
    views int4, price numeric(10,2), meta jsonb, published boolean, created timestamptz, big int8);
    alter table articles replica identity full;
    create table plain (code varchar(10) primary key, body text);
    create schema elsewhere; create table elsewhere.hidden (id int primary key);";

#[actix_web::test]
async fn rows_arrive_as_directus_json_with_keys_and_old_rows() {
    let db = database(ARTICLES).await;
    let (handle, mut rx) = db.consume(no_hold(), false);
    wait_connected(&handle).await;

    db.sql(
        "insert into articles (title, views, price, meta, published, created, big) values \
            ('Hello', 3, 9.5, '{\"a\": [1]}', true, '2024-05-01 10:00:00.123+02', 9007199254740993)",
    )
    .await;
    let insert = next(&mut rx).await;
    let [change] = insert.changes.as_slice() else {
        panic!("{insert:?}")
    };
    assert_eq!(
        (&*change.collection, change.op, &change.key),
        ("articles", RowOp::Insert, &json!(1))
    );
    assert_eq!(change.old, None);
    assert_eq!(
        object(&change.new),
        json!({"id": 1, "title": "Hello", "views": 3, "price": "9.50", "meta": {"a": [1]},
               "published": true, "created": "2024-05-01T08:00:00.123Z", "big": "9007199254740993"})
    );

    db.sql("update articles set title = 'Changed', views = null where id = 1")
        .await;
    let update = next(&mut rx).await;
    let change = &update.changes[0];
    assert_eq!((change.op, &change.key), (RowOp::Update, &json!(1)));
    assert_eq!(
        object(&change.old)["title"],
        json!("Hello"),
        "REPLICA IDENTITY FULL sends the old row"
    );
    assert_eq!(object(&change.new)["title"], json!("Changed"));
    assert_eq!(object(&change.new)["views"], Value::Null);
    assert_eq!(object(&change.new)["meta"], json!({"a": [1]}));

    db.sql("delete from articles where id = 1").await;
    let delete = next(&mut rx).await;
    let change = &delete.changes[0];
    assert_eq!(
        (change.op, &change.key, &change.new),
        (RowOp::Delete, &json!(1), &None)
    );
    assert_eq!(object(&change.old)["title"], json!("Changed"));

    // Default identity: an update carries no old row, a delete only the key.
    db.sql("insert into plain values ('k1', 'one')").await;
    db.sql("update plain set body = 'two' where code = 'k1'").await;
    db.sql("delete from plain where code = 'k1'").await;
    let insert = next(&mut rx).await;
    assert_eq!(insert.changes[0].key, json!("k1"));
    let update = next(&mut rx).await;
    assert_eq!(
        (
            update.changes[0].old.clone(),
            object(&update.changes[0].new)["body"].clone()
        ),
        (None, json!("two"))
    );
    let delete = next(&mut rx).await;
    assert_eq!(object(&delete.changes[0].old), json!({"code": "k1"}));

    // Other schemas are not published; a truncate has no key. (One simple query with two
    // statements is one transaction.)
    db.sql("insert into elsewhere.hidden values (1)").await;
    db.sql("insert into articles (title) values ('again'); truncate articles")
        .await;
    let tx = next(&mut rx).await;
    let shape: Vec<(RowOp, Value)> = tx.changes.iter().map(|c| (c.op, c.key.clone())).collect();
    assert_eq!(
        shape,
        vec![(RowOp::Insert, json!(2)), (RowOp::Truncate, Value::Null)]
    );
    quiet(&mut rx).await;

    handle.stop().await;
    db.drop_slot().await;
}

#[actix_web::test]
async fn transactions_arrive_whole_and_in_commit_order() {
    let db = database(ARTICLES).await;
    let (handle, mut rx) = db.consume(no_hold(), false);
    wait_connected(&handle).await;

    db.sql(
        "begin; insert into articles (title) values ('a'), ('b'); \
            update articles set views = 1 where title = 'a'; insert into plain values ('p', 'x'); commit",
    )
    .await;
    let tx = next(&mut rx).await;
    let shape: Vec<(&str, RowOp, Value)> = tx
        .changes
        .iter()
        .map(|c| (&*c.collection, c.op, c.key.clone()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("articles", RowOp::Insert, json!(1)),
            ("articles", RowOp::Insert, json!(2)),
            ("articles", RowOp::Update, json!(1)),
            ("plain", RowOp::Insert, json!("p")),
        ]
    );
    assert_eq!(tx.collections().len(), 2);

    // Two sessions: the one that commits first arrives first, whoever wrote first.
    let mut first_writer = db.connect().await;
    let mut second_writer = db.connect().await;
    run(
        &mut first_writer,
        "begin; insert into articles (title) values ('written first')",
    )
    .await;
    run(
        &mut second_writer,
        "begin; insert into articles (title) values ('committed first')",
    )
    .await;
    run(&mut second_writer, "commit").await;
    run(&mut first_writer, "commit").await;
    let a = next(&mut rx).await;
    let b = next(&mut rx).await;
    assert_eq!(object(&a.changes[0].new)["title"], json!("committed first"));
    assert_eq!(object(&b.changes[0].new)["title"], json!("written first"));
    assert!(a.end_lsn < b.end_lsn && a.commit_lsn < b.commit_lsn);
    quiet(&mut rx).await;

    handle.stop().await;
    db.drop_slot().await;
}

#[actix_web::test]
async fn a_killed_walsender_loses_and_repeats_nothing() {
    const ROWS: i64 = 2_000;
    let db = database(ARTICLES).await;
    let (handle, mut rx) = db.consume(no_hold(), false);
    wait_connected(&handle).await;

    let mut writer = db.connect().await;
    let inserts = actix_web::rt::spawn(async move {
        for i in 1..=ROWS {
            sqlx::query("insert into articles (title) values ($1)")
                .bind(format!("row {i}"))
                .execute(&mut writer)
                .await
                .unwrap();
        }
    });
    let mut ids = Vec::new();
    let mut killed = false;
    while ids.len() < ROWS as usize {
        let tx = next(&mut rx).await;
        ids.extend(tx.changes.iter().map(|c| c.key.as_i64().unwrap()));
        if !killed && ids.len() >= 300 {
            let pid: i32 =
                sqlx::query_scalar("select active_pid from pg_replication_slots where slot_name = $1")
                    .bind(&db.settings.slot)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            let done: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert!(done);
            killed = true;
        }
    }
    inserts.await.unwrap();
    assert_eq!(
        ids,
        (1..=ROWS).collect::<Vec<_>>(),
        "every insert exactly once, in order"
    );
    quiet(&mut rx).await;
    assert!(handle.status().reconnects() >= 1);
    assert!(handle.status().connected());

    handle.stop().await;
    db.drop_slot().await;
}

/// Commits one insert and returns its transaction as delivered.
async fn insert(db: &Db, rx: &mut mpsc::UnboundedReceiver<Arc<Committed>>, title: &str) -> Arc<Committed> {
    db.sql(&format!("insert into articles (title) values ('{title}')"))
        .await;
    let tx = next(rx).await;
    assert_eq!(object(&tx.changes[0].new)["title"], json!(title));
    tx
}

fn titles(txs: &[Arc<Committed>]) -> Vec<String> {
    txs.iter()
        .map(|tx| {
            object(&tx.changes[0].new)["title"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[actix_web::test]
async fn a_restart_resumes_from_the_hold_and_loses_nothing() {
    let db = database(ARTICLES).await;
    let hold = no_hold();
    let (first, mut rx) = db.consume(hold.clone(), true);
    wait_connected(&first).await;
    let attached = first.status().resumed_from().unwrap();
    let one = insert(&db, &mut rx, "one").await;
    insert(&db, &mut rx, "two").await;
    insert(&db, &mut rx, "three").await;
    assert_eq!(hold.load(Ordering::Acquire), one.commit_lsn.0);
    first.stop().await;
    assert!(attached < one.commit_lsn);
    let slot = db::slot_state(&db.pool, &db.settings.slot)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        slot.confirmed_flush,
        Some(one.commit_lsn),
        "confirmed up to the hold, no further"
    );
    db.sql("insert into articles (title) values ('while down')").await;

    // A new process: nothing delivered yet, so the retained window comes again, then the rest.
    let (second, mut rx) = db.consume(no_hold(), false);
    let mut replayed = Vec::new();
    for _ in 0..4 {
        replayed.push(next(&mut rx).await);
    }
    assert_eq!(titles(&replayed), ["one", "two", "three", "while down"]);
    assert_eq!(replayed[0].end_lsn, one.end_lsn);
    assert_eq!(second.status().resumed_from(), Some(one.commit_lsn));
    quiet(&mut rx).await;
    second.stop().await;

    // Without a hold, a graceful stop confirms everything delivered: nothing is replayed.
    let confirmed = db::slot_state(&db.pool, &db.settings.slot)
        .await
        .unwrap()
        .unwrap()
        .confirmed_flush
        .unwrap();
    assert!(
        confirmed >= replayed[3].end_lsn,
        "{confirmed} < {}",
        replayed[3].end_lsn
    );
    let (third, mut rx) = db.consume(no_hold(), false);
    wait_connected(&third).await;
    assert_eq!(third.status().resumed_from(), Some(confirmed));
    let fresh = insert(&db, &mut rx, "fresh").await;
    assert!(fresh.end_lsn > replayed[3].end_lsn);
    quiet(&mut rx).await;
    third.stop().await;
    db.drop_slot().await;
}

#[actix_web::test]
async fn a_collection_created_through_the_api_is_published_with_full_identity() {
    let name = common::fresh_database().await;
    let mut config = common::test_config(&name);
    config.realtime.enabled = true;
    config.realtime.status_interval = Duration::from_millis(100);
    let slot = db::slot_name(&config.realtime, &name);
    let app = common::spawn_app_with(config).await;
    let pool = PgPool::connect(&common::database_url(&name)).await.unwrap();

    let created = app
        .post(
            "/collections",
            json!({"collection": "notes", "schema": {}, "fields": [
                {"field": "id", "type": "integer", "schema": {"is_primary_key": true, "has_auto_increment": true}},
                {"field": "body", "type": "string"}]}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let identity: String =
        sqlx::query_scalar("select relreplident::text from pg_class where oid = 'public.notes'::regclass")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(identity, "f");

    let delivered = || async {
        let metrics = app.get("/metrics").await.text;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("directrix_replication_delivered_transactions "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    app.eventually("the consumer streams", || async {
        app.get("/server/health").await.json()["checks"]["realtime:connected"][0]["observedValue"]
            == json!(true)
    })
    .await;
    let before = delivered().await;
    let item = app.post("/items/notes", json!({"body": "first"})).await;
    assert_eq!(item.status, 200, "{}", item.text);
    app.eventually("the first insert is delivered", || async {
        delivered().await == before + 1
    })
    .await;
    let health = app.get("/server/health").await.json();
    assert_eq!(health["status"], json!("ok"), "{health}");
    assert_eq!(
        health["checks"]["realtime:slotLag"][0]["observedUnit"],
        json!("bytes")
    );

    app.stop().await;
    // The app stops its consumer after the server; drop_slot waits for it to let go.
    assert!(db::drop_slot(&pool, &slot).await.unwrap());
}

#[actix_web::test]
async fn a_role_without_replication_gets_a_reported_disabled_feed() {
    let db = database("").await;
    let role = format!("norepl_{}", &db.name[2..10]);
    db.sql(&format!(
        "create role {role} login; grant all on schema public to {role}"
    ))
    .await;
    let options = common::cluster().connect_options(&db.name).username(&role);
    let settings = ReplicationSettings {
        options,
        ..db.settings.clone()
    };
    let (tx, _rx) = mpsc::unbounded_channel();
    let sink = Collector(tx, None).start().recipient();
    let handle = replication::start(settings, db.schema.clone(), sink, no_hold(), None).unwrap();
    for _ in 0..250 {
        if handle.status().disabled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(handle.status().disabled());
    let error = handle.status().last_error().unwrap_or_default();
    assert!(error.contains("REPLICATION"), "{error}");
    assert!(!handle.status().connected());
    assert_eq!(
        handle.status().reconnects(),
        0,
        "a permanent failure is not retried"
    );
    handle.stop().await;
    assert_eq!(db::slot_state(&db.pool, &db.settings.slot).await.unwrap(), None);
}

#[actix_web::test]
async fn without_a_superuser_the_publication_lists_tables_and_new_ones_join_at_creation() {
    let db = database("").await;
    let role = format!("repl_{}", &db.name[2..10]);
    db.sql(&format!(
        "create role {role} login replication; grant create on database {} to {role}; \
         grant usage, create on schema public to {role}",
        db.name
    ))
    .await;
    let options = common::cluster().connect_options(&db.name).username(&role);
    let as_role = PgPool::connect_with(options.clone()).await.unwrap();
    sqlx::raw_sql("create table owned (id int primary key, body text)")
        .execute(&as_role)
        .await
        .unwrap();
    db.reload().await;
    let settings = ReplicationSettings {
        options,
        ..db.settings.clone()
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = Collector(tx, None).start().recipient();
    let handle = replication::start(settings, db.schema.clone(), sink, no_hold(), None).unwrap();
    wait_connected(&handle).await;
    let listed: Vec<String> =
        sqlx::query_scalar("select tablename::text from pg_publication_tables where pubname = $1")
            .bind(&db.settings.publication)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        listed,
        ["owned"],
        "not a superuser: a table list, kept from the snapshot"
    );

    sqlx::raw_sql("insert into owned values (1, 'x')")
        .execute(&as_role)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.changes[0].key, json!(1));

    // Created the way /collections creates tables, and written in the same transaction: the
    // first insert is published, and delivered once the snapshot knows the table.
    let new_tables = db::NewTables {
        replica_identity_full: true,
        publication: Some(db.settings.publication.clone()),
    };
    let mut creating = as_role.begin().await.unwrap();
    sqlx::raw_sql("create table fresh (id int primary key, body text)")
        .execute(&mut *creating)
        .await
        .unwrap();
    db::prepare_new_table(&mut creating, "public", "fresh", &new_tables)
        .await
        .unwrap();
    sqlx::raw_sql("insert into fresh values (7, 'first')")
        .execute(&mut *creating)
        .await
        .unwrap();
    creating.commit().await.unwrap();
    db.reload().await;
    let first = next(&mut rx).await;
    assert_eq!(
        (
            &*first.changes[0].collection,
            first.changes[0].op,
            &first.changes[0].key
        ),
        ("fresh", RowOp::Insert, &json!(7))
    );
    sqlx::raw_sql("delete from fresh")
        .execute(&as_role)
        .await
        .unwrap();
    let delete = next(&mut rx).await;
    assert_eq!(
        object(&delete.changes[0].old),
        json!({"id": 7, "body": "first"}),
        "full identity"
    );

    handle.stop().await;
    as_role.close().await;
    db.drop_slot().await;
}
