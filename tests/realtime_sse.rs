//! `GET /stream` end to end: an app with realtime on, writes through REST, raw SQL and other
//! sessions, and SSE clients reading what arrives: commit order, enter/leave under a read
//! permission, the snapshot handoff under concurrent writes, `Last-Event-ID` resume and its
//! gap, a killed walsender and a restarted server mid-stream, bad input, and slow consumers.
//!
//! Every test runs its own app (so its own replication slot) and drops the slot at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/realtime.rs"]
mod realtime;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN, Reply};
use directrix::config::SlowConsumer;
use realtime::{Rt, Sse, SseEvent, enter_leave, sse, sse_with};
use serde_json::{Value, json};
use sqlx::PgConnection;

const ARTICLES: &str = "create table articles (id serial primary key, title text, \
    status text not null default 'draft', body text); \
    alter table articles replica identity full;";

/// An LSN as `X/Y` text, as a number.
fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

async fn app_with_articles(tweak: impl FnOnce(&mut directrix::config::Config)) -> Rt {
    let rt = realtime::spawn(tweak).await;
    rt.create(ARTICLES, "articles").await;
    rt
}

async fn run(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// Inserts `rows` rows of articles with `sql` and waits until the feed has them (an admin stream
/// sees them), so later subscriptions meet them settled, in `init`. (Subscribing while they
/// are still on their way is the handoff test's business.)
async fn seed(rt: &Rt, sql: &str, rows: usize) {
    let mut watcher = sse(rt, "collection=articles").await;
    watcher.expect("init").await;
    rt.sql(sql).await;
    let mut seen = 0;
    while seen < rows {
        seen += watcher.expect("create").await.ids().len();
    }
}

/// The id an event carries, checked against its `lsn`.
#[track_caller]
fn event_id(event: &SseEvent) -> u64 {
    let id = event.id.as_deref().unwrap_or_else(|| panic!("no id: {event:?}"));
    assert_eq!(event.data["lsn"].as_str(), Some(id), "lsn is the id: {event:?}");
    lsn(id)
}

#[actix_web::test]
async fn rest_sql_and_transactions_reach_a_subscriber_in_commit_order() {
    let rt = app_with_articles(|_| {}).await;
    seed(
        &rt,
        "insert into articles (title, status) values ('seed', 'published')",
        1,
    )
    .await;
    // `access_token` in the query string authenticates the stream.
    let mut s = sse_with(
        &rt,
        &format!("collection=articles&access_token={ADMIN_TOKEN}"),
        None,
        None,
    )
    .await;
    let init = s.expect("init").await;
    assert_eq!(
        init.data,
        json!({"type": "subscription", "event": "init", "collection": "articles",
               "data": [{"id": 1, "title": "seed", "status": "published", "body": null}]})
    );
    assert_eq!(init.id, None);

    // Through REST.
    rt.post("/items/articles", json!({"title": "rest"})).await.data();
    let created = s.expect("create").await;
    assert_eq!(
        created.data,
        json!({"type": "subscription", "event": "create", "collection": "articles",
               "data": [{"id": 2, "title": "rest", "status": "draft", "body": null}],
               "lsn": created.id.clone().unwrap()})
    );
    let mut last = event_id(&created);
    rt.patch("/items/articles/2", json!({"title": "rest, edited"}))
        .await
        .data();
    let updated = s.expect("update").await;
    assert_eq!(
        updated.data["data"],
        json!([{"id": 2, "title": "rest, edited", "status": "draft", "body": null}])
    );
    assert!(event_id(&updated) > last);
    last = event_id(&updated);

    // Through SQL.
    rt.sql("update articles set body = 'sql' where id = 1").await;
    let updated = s.expect("update").await;
    assert_eq!(
        updated.data["data"],
        json!([{"id": 1, "title": "seed", "status": "published", "body": "sql"}])
    );
    assert!(event_id(&updated) > last);
    last = event_id(&updated);

    // One transaction of several kinds on a session of its own: runs of one kind, in the
    // transaction's order, and only the last carries the id.
    let mut other = rt.connect().await;
    run(
        &mut other,
        "begin; insert into articles (title) values ('t3'), ('t4'); \
         update articles set title = 't3 changed' where id = 3; delete from articles where id = 1; commit",
    )
    .await;
    let create = s.expect("create").await;
    assert_eq!(create.ids(), [3, 4]);
    assert_eq!((create.id.clone(), create.data.get("lsn")), (None, None));
    let update = s.expect("update").await;
    assert_eq!(
        update.data["data"],
        json!([{"id": 3, "title": "t3 changed", "status": "draft", "body": null}])
    );
    assert_eq!(update.id, None);
    let delete = s.expect("delete").await;
    assert_eq!(delete.data["data"], json!([1]), "a delete carries keys");
    assert!(event_id(&delete) > last);
    last = event_id(&delete);

    // Two sessions: the one that commits first arrives first, whoever wrote first.
    let mut first_writer = rt.connect().await;
    let mut second_writer = rt.connect().await;
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
    let a = s.expect("create").await;
    let b = s.expect("create").await;
    assert_eq!(a.data["data"][0]["title"], "committed first");
    assert_eq!(b.data["data"][0]["title"], "written first");
    assert!(last < event_id(&a) && event_id(&a) < event_id(&b));

    // A REST delete, then a truncate: the subscriber must read again; and it stays live.
    rt.delete("/items/articles/2").await;
    assert_eq!(s.expect("delete").await.data["data"], json!([2]));
    rt.sql("truncate articles").await;
    let refetch = s.expect("refetch").await;
    assert_eq!(refetch.data["type"], "subscription");
    assert_eq!(refetch.data["event"], "refetch");
    assert_eq!(refetch.data["reason"], "truncate");
    assert_eq!(refetch.data["collection"], "articles");
    rt.sql("insert into articles (title) values ('after truncate')")
        .await;
    let after = s.expect("create").await;
    assert_eq!(after.data["data"][0]["title"], "after truncate");
    assert!(s.comments.contains(&"connected".to_string()));

    drop(s);
    rt.finish().await;
}

#[actix_web::test]
async fn a_read_permission_filters_rows_and_fields_with_enter_and_leave() {
    let rt = app_with_articles(|_| {}).await;
    seed(&rt, enter_leave::SEED, enter_leave::SEED_ROWS).await;
    let reader = realtime::user_with(&rt, "reader@example.com", enter_leave::permissions()).await;
    let app: &Rt = &rt;
    let token = reader.clone();
    let open = move |query: &'static str| {
        let reader = token.clone();
        async move { sse_with(app, query, Some(&reader), None).await }
    };
    // All fields allowed (`*` narrows to the permitted ones), a projection, a query filter on
    // top of the permission, one event kind, one item.
    let mut all = open("collection=articles").await;
    let mut projected = open("collection=articles&fields=id,title").await;
    let mut filtered = open("collection=articles&filter[title][_contains]=three").await;
    let mut deletes = open("collection=articles&event=delete").await;
    let mut item = open("collection=articles&item=3").await;
    assert_eq!(all.expect("init").await.data["data"], enter_leave::init());
    assert_eq!(
        projected.expect("init").await.data["data"],
        json!([{"id": 1, "title": "pub one"}])
    );
    assert_eq!(filtered.expect("init").await.data["data"], json!([]));
    deletes.expect("init").await;
    assert_eq!(item.expect("init").await.data["data"], Value::Null);

    for sql in enter_leave::WRITES {
        rt.sql(sql).await;
    }
    let row = |id: i64, title: &str| json!({"id": id, "title": title, "status": "published"});
    let seen = enter_leave::seen();
    for (kind, data) in &seen {
        let event = all.expect(kind).await;
        assert_eq!(&event.data["data"], data, "{event:?}");
    }
    for (kind, data) in &seen {
        let event = projected.expect(kind).await;
        let narrowed: Value = match data {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::Object(row) => json!({"id": row["id"], "title": row["title"]}),
                    key => key.clone(),
                })
                .collect(),
            _ => unreachable!(),
        };
        assert_eq!(event.data["data"], narrowed, "{event:?}");
    }
    // The filter on title: row 3 (its title contains "three") and the marker.
    let event = filtered.expect("create").await;
    assert_eq!(event.data["data"], json!([row(3, "pub three")]));
    let event = filtered.expect("update").await;
    assert_eq!(event.ids(), [3]);
    let event = filtered.expect("create").await;
    assert_eq!(event.ids(), [5]);
    assert_eq!(filtered.expect("delete").await.ids(), [3]);
    // Only deletes: leaving the permission, then the real delete.
    assert_eq!(deletes.expect("delete").await.ids(), [1]);
    assert_eq!(deletes.expect("delete").await.ids(), [3]);
    // One item.
    assert_eq!(item.expect("create").await.ids(), [3]);
    assert_eq!(item.expect("update").await.ids(), [3]);
    assert_eq!(item.expect("delete").await.ids(), [3]);

    // A field the permission doesn't grant is refused as on /items.
    let res = realtime::stream_request(&rt, "collection=articles&fields=id,body", Some(&reader), None)
        .send()
        .await
        .unwrap();
    reply(res).await.assert_error(403, "FORBIDDEN");

    drop((all, projected, filtered, deletes, item));
    rt.finish().await;
}

/// Inserts one row per transaction until told to stop; the number of rows.
fn writer(
    mut conn: PgConnection,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicI64>,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Acquire) {
            n += 1;
            sqlx::query("insert into articles (title) values ($1)")
                .bind(format!("row {n}"))
                .execute(&mut conn)
                .await
                .unwrap();
            written.store(n, Ordering::Release);
        }
        n
    })
}

/// Every id in `init` and the `create` events up to the one whose title is `marker`.
async fn ids_until(s: &mut Sse, marker: &str) -> Vec<i64> {
    let init = s.expect("init").await;
    let mut ids = init.ids();
    loop {
        let event = s.expect("create").await;
        ids.extend(event.ids());
        if event.data["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["title"] == marker)
        {
            return ids;
        }
    }
}

#[actix_web::test]
async fn rows_written_while_subscribing_arrive_exactly_once() {
    let rt = app_with_articles(|_| {}).await;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let task = writer(rt.connect().await, stop.clone(), written.clone());
    // Subscribe several times while the writer runs, each after a few more rows.
    let mut streams = Vec::new();
    for round in 1..=6 {
        let target = round * 40;
        while written.load(Ordering::Acquire) < target {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // All rows in `init` (a subscription's init is a read: 100 rows by default).
        streams.push(sse(&rt, "collection=articles&limit=-1").await);
    }
    while written.load(Ordering::Acquire) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Release);
    let rows = task.await.unwrap();
    rt.sql("insert into articles (title) values ('the end')").await;
    let all: Vec<i64> = (1..=rows + 1).collect();
    for (i, s) in streams.iter_mut().enumerate() {
        let ids = ids_until(s, "the end").await;
        let unique: HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "stream {i}: a row came twice: {ids:?}");
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, all, "stream {i}: every row once");
        assert_eq!(ids, all, "stream {i}: init, then the rest in commit order");
    }
    drop(streams);
    rt.finish().await;
}

#[actix_web::test]
async fn last_event_id_resumes_with_exactly_the_missed_changes_or_says_gap() {
    // Four changes per collection: enough to resume from the third, not from the first.
    let rt = app_with_articles(|c| c.realtime.retention_changes = 4).await;
    // Tells when the feed has had a change (a commit reaches it a moment later).
    let mut watcher = sse(&rt, "collection=articles").await;
    watcher.expect("init").await;
    let mut first = sse(&rt, "collection=articles").await;
    first.expect("init").await;
    for n in 1..=5 {
        rt.sql(&format!("insert into articles (title) values ('row {n}')"))
            .await;
    }
    let one = first.expect("create").await;
    assert_eq!(one.ids(), [1]);
    assert_eq!(first.expect("create").await.ids(), [2]);
    let three = first.expect("create").await;
    assert_eq!(three.ids(), [3]);
    let (one, three) = (one.id.unwrap(), three.id.unwrap());
    assert_eq!(first.last_id.as_deref(), Some(three.as_str()));
    drop(first);
    for n in 6..=7 {
        rt.sql(&format!("insert into articles (title) values ('row {n}')"))
            .await;
    }
    let mut fed = Vec::new();
    while !fed.contains(&7) {
        fed.extend(watcher.expect("create").await.ids());
    }

    // Exactly what followed, once, in order, no init; then live.
    let mut resumed = sse_with(&rt, "collection=articles", Some(ADMIN_TOKEN), Some(&three)).await;
    // `?since=` does the same.
    let mut since = sse(&rt, &format!("collection=articles&since={three}")).await;
    // Evicted: the first id is below the ring's floor.
    let mut gap = sse_with(&rt, "collection=articles", Some(ADMIN_TOKEN), Some(&one)).await;
    rt.sql("insert into articles (title) values ('row 8')").await;
    for s in [&mut resumed, &mut since] {
        let mut ids = Vec::new();
        let mut last = lsn(&three);
        while ids.len() < 5 {
            let event = s.expect("create").await;
            assert!(event_id(&event) > last, "ids only grow");
            last = event_id(&event);
            ids.extend(event.ids());
        }
        assert_eq!(ids, [4, 5, 6, 7, 8]);
    }
    let refetch = gap.expect("refetch").await;
    assert_eq!(refetch.data["reason"], "gap", "{refetch:?}");
    assert_eq!(refetch.data["collection"], "articles");
    assert!(lsn(refetch.data["lsn"].as_str().unwrap()) > lsn(&one));
    // After the refetch it is live.
    let mut live = Vec::new();
    while !live.contains(&8) {
        live.extend(gap.expect("create").await.ids());
    }
    assert_eq!(live, [8]);

    drop((watcher, resumed, since, gap));
    rt.finish().await;
}

/// Reads creates into `ids` until it holds `upto` rows or the stream ends.
async fn read_ids(s: &mut Sse, ids: &mut Vec<i64>, upto: usize) {
    while ids.len() < upto {
        match s.next().await {
            Some(event) => {
                assert_eq!(event.event, "create", "{event:?}");
                ids.extend(event.ids());
            }
            None => return,
        }
    }
}

#[actix_web::test]
async fn a_killed_walsender_and_a_restarted_server_lose_and_repeat_nothing() {
    const ROWS: i64 = 2_000;
    let rt = app_with_articles(|_| {}).await;
    let pool = rt.pool().await;
    let mut s = sse(&rt, "collection=articles").await;
    assert_eq!(s.expect("init").await.ids(), Vec::<i64>::new());
    let mut conn = rt.connect().await;
    let inserts = tokio::spawn(async move {
        for i in 1..=ROWS {
            sqlx::query("insert into articles (title) values ($1)")
                .bind(format!("row {i}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    });

    let mut ids = Vec::new();
    read_ids(&mut s, &mut ids, 300).await;
    let pid = rt.walsender_pid(&pool).await.expect("a walsender");
    let killed: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(killed);
    read_ids(&mut s, &mut ids, 800).await;
    assert!(ids.len() >= 800, "the stream went on after the walsender died");

    // The client goes away with the server; a new server on the same database and slot.
    let last = s.last_id.clone().expect("an id");
    drop(s);
    let config = rt.config.clone();
    let slot = rt.slot.clone();
    rt.app.stop().await;
    realtime::wait_slot_released(&pool, &slot).await;
    let rt = realtime::start(config).await;
    let mut s = sse_with(&rt, "collection=articles", Some(ADMIN_TOKEN), Some(&last)).await;
    read_ids(&mut s, &mut ids, ROWS as usize).await;
    inserts.await.unwrap();
    assert_eq!(
        ids,
        (1..=ROWS).collect::<Vec<_>>(),
        "every insert exactly once, in order"
    );
    rt.sql("insert into articles (title) values ('after')").await;
    assert_eq!(s.expect("create").await.ids(), [ROWS + 1]);

    drop(s);
    pool.close().await;
    rt.finish().await;
}

async fn reply(res: reqwest::Response) -> Reply {
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Reply {
        status,
        headers,
        text,
    }
}

#[actix_web::test]
async fn bad_requests_get_directus_error_envelopes() {
    let rt = app_with_articles(|_| {}).await;
    rt.create("create table notes (id serial primary key, body text)", "notes")
        .await;
    let get = |query: &str, token: Option<&str>, last: Option<&str>| {
        let req = realtime::stream_request(&rt, query, token, last);
        async move { reply(req.send().await.unwrap()).await }
    };
    let admin = Some(ADMIN_TOKEN);
    get("", admin, None).await.assert_error(400, "INVALID_QUERY");
    get("collection=", admin, None)
        .await
        .assert_error(400, "INVALID_QUERY");
    get("collection=ghosts", admin, None)
        .await
        .assert_error(403, "FORBIDDEN");
    get("collection=articles,ghosts", admin, None)
        .await
        .assert_error(403, "FORBIDDEN");
    get("collection=articles&event=upsert", admin, None)
        .await
        .assert_error(400, "INVALID_QUERY");
    get("collection=articles", admin, Some("yesterday"))
        .await
        .assert_error(400, "INVALID_QUERY");
    get("collection=articles&since=0/XYZ", admin, None)
        .await
        .assert_error(400, "INVALID_QUERY");
    get("collection=articles,notes&item=1", admin, None)
        .await
        .assert_error(400, "INVALID_QUERY");
    get("collection=articles&fields=nope", admin, None)
        .await
        .assert_error(403, "FORBIDDEN");
    get("collection=articles&filter=%7Bnope", admin, None)
        .await
        .assert_error(400, "INVALID_QUERY");
    // Unauthenticated, without a public permission; and a bad token.
    get("collection=articles", None, None)
        .await
        .assert_error(403, "FORBIDDEN");
    get("collection=articles", Some("not-a-token"), None)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    get("collection=articles&access_token=not-a-token", None, None)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");

    // A public read permission opens it to everyone, for that collection only.
    realtime::grant_public_read(&rt, "notes").await;
    let mut open = sse_with(&rt, "collection=notes", None, None).await;
    assert_eq!(open.expect("init").await.data["data"], json!([]));
    get("collection=notes,articles", None, None)
        .await
        .assert_error(403, "FORBIDDEN");
    rt.sql("insert into notes (body) values ('hello')").await;
    assert_eq!(
        open.expect("create").await.data["data"],
        json!([{"id": 1, "body": "hello"}])
    );

    // The session cookie authenticates too.
    let login = rt
        .app
        .client
        .post(format!("{}/auth/login", rt.base))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": "session"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("directus_session_token="))
        .expect("session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let res = rt
        .app
        .client
        .get(format!("{}/stream?collection=articles", rt.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let mut by_cookie = Sse::open(res).await;
    by_cookie.expect("init").await;

    drop((open, by_cookie));
    rt.finish().await;
}

/// Rows big enough that a client which doesn't read can't take them all into socket buffers.
const BIG: usize = 16 * 1024;
const SLOW_ROWS: i64 = 2_000;

/// Opens a fast and a slow stream, writes [`SLOW_ROWS`] big rows, and checks that the fast
/// one got every row while the slow one never read; returns the slow stream.
async fn fast_and_slow(rt: &Rt) -> Sse {
    fast_and_slow_with(rt, "collection=articles").await
}

/// [`fast_and_slow`] with the slow stream's own query.
async fn fast_and_slow_with(rt: &Rt, slow_query: &str) -> Sse {
    let mut slow = sse(rt, slow_query).await;
    // Up to and including `init`, so the subscription is live; then it stops reading.
    slow.expect("init").await;
    let mut fast = sse(rt, "collection=articles").await;
    fast.expect("init").await;
    let mut conn = rt.connect().await;
    let inserts = tokio::spawn(async move {
        for i in 1..=SLOW_ROWS {
            sqlx::query("insert into articles (title, body) values ($1, repeat('x', $2))")
                .bind(format!("row {i}"))
                .bind(BIG as i32)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    });
    let mut ids = Vec::new();
    read_ids(&mut fast, &mut ids, SLOW_ROWS as usize).await;
    assert_eq!(ids, (1..=SLOW_ROWS).collect::<Vec<_>>());
    inserts.await.unwrap();
    slow
}

#[actix_web::test]
async fn a_slow_consumer_gets_coalesced_rows_and_does_not_hold_up_a_fast_one() {
    let rt = app_with_articles(|c| c.realtime.outbound_queue = 8).await;
    assert_eq!(rt.config.realtime.slow_consumer, SlowConsumer::Coalesce);
    let mut slow = fast_and_slow(&rt).await;
    rt.sql("insert into articles (title) values ('marker')").await;
    // Every row once, in order, the ones it fell behind on folded into fewer events.
    let mut ids = Vec::new();
    let mut events = 0;
    let mut widest = 0;
    while ids.len() < SLOW_ROWS as usize + 1 {
        let event = slow.expect("create").await;
        events += 1;
        widest = widest.max(event.ids().len());
        ids.extend(event.ids());
    }
    assert_eq!(ids, (1..=SLOW_ROWS + 1).collect::<Vec<_>>());
    assert!(
        widest > 1 && events < SLOW_ROWS,
        "rows were coalesced ({events} events, widest {widest})"
    );
    drop(slow);
    rt.finish().await;
}

#[actix_web::test]
async fn a_slow_consumer_under_resync_gets_a_refetch() {
    // A queue the fast reader keeps up with (it must not get a refetch itself), far smaller than
    // what the slow one falls behind by.
    // The server default stays `coalesce`: the slow stream picks `resync` for itself.
    let rt = app_with_articles(|c| c.realtime.outbound_queue = 256).await;
    assert_eq!(rt.config.realtime.slow_consumer, SlowConsumer::Coalesce);
    let mut slow = fast_and_slow_with(&rt, "collection=articles&backpressure=resync").await;
    rt.sql("insert into articles (title) values ('marker')").await;
    // What was queued before it fell behind, in order; then one refetch; then live again.
    let mut ids = Vec::new();
    let refetch = loop {
        let event = slow.event().await;
        if event.event == "refetch" {
            break event;
        }
        assert_eq!(event.event, "create", "{event:?}");
        ids.extend(event.ids());
    };
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    assert!(ids.len() < SLOW_ROWS as usize, "it fell behind");
    assert_eq!(refetch.data["reason"], "overflow", "{refetch:?}");
    assert_eq!(refetch.data["collection"], "articles");
    // Live again after it (the first marker may have gone into the refetch).
    rt.sql("insert into articles (title) values ('marker 2')").await;
    loop {
        let next = slow.expect("create").await;
        let ids = next.ids();
        assert!(ids.iter().all(|id| *id > SLOW_ROWS), "{next:?}");
        if ids.contains(&(SLOW_ROWS + 2)) {
            break;
        }
    }
    drop(slow);
    rt.finish().await;
}

/// `$NOW` in a filter is resolved again for every transaction, at its commit time, as Directus
/// resolves it for every event: a task enters a "due" view once its due time has passed, with
/// the next change to it.
#[actix_web::test]
async fn now_in_a_filter_moves_with_each_transaction() {
    let rt = realtime::spawn(|_| {}).await;
    rt.create(
        "create table tasks (id integer primary key, title text, due timestamptz); \
         alter table tasks replica identity full;",
        "tasks",
    )
    .await;
    // {"due":{"_lte":"$NOW"}}
    let mut s = sse(
        &rt,
        "collection=tasks&fields=id,title&filter=%7B%22due%22%3A%7B%22_lte%22%3A%22%24NOW%22%7D%7D",
    )
    .await;
    assert_eq!(s.expect("init").await.data["data"], json!([]));
    rt.sql("insert into tasks values (1, 'soon', now() + interval '1500 milliseconds')")
        .await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    rt.sql("update tasks set title = 'due now' where id = 1").await;
    rt.sql("insert into tasks values (2, 'marker', now() - interval '1 day')")
        .await;
    // The insert was not due when it committed; the update is (and so is the old row then).
    let update = s.event().await;
    assert_eq!(
        (update.event.as_str(), &update.data["data"]),
        ("update", &json!([{"id": 1, "title": "due now"}]))
    );
    assert_eq!(s.expect("create").await.ids(), vec![2]);
    drop(s);
    rt.finish().await;
}

#[actix_web::test]
async fn a_transaction_of_150_000_rows_reaches_every_subscriber_whole() {
    let rt = app_with_articles(|_| {}).await;
    let mut stream = sse(&rt, "collection=articles&fields=id").await;
    stream.expect("init").await;
    let mut socket = realtime::ws_admin(&rt).await;
    socket
        .subscribe(
            json!({"type": "subscribe", "collection": "articles", "uid": "s", "query": {"fields": ["id"]}}),
        )
        .await;
    const ROWS: i64 = 150_000;
    rt.sql(&format!(
        "insert into articles (title) select 'bulk ' || g from generate_series(1, {ROWS}) g"
    ))
    .await;
    // Every row, in order; only the transaction's last event carries its id, so a client that
    // drops inside it resumes before it.
    let mut next = 1;
    while next <= ROWS {
        let event = stream.expect("create").await;
        for id in event.ids() {
            assert_eq!(id, next, "in order, none missing");
            next += 1;
        }
        assert_eq!(
            event.id.is_some(),
            next > ROWS,
            "the id comes with the last rows only"
        );
    }
    let mut next = 1;
    while next <= ROWS {
        let event = socket.expect_event("create").await;
        for id in realtime::ids(&event) {
            assert_eq!(id, next);
            next += 1;
        }
        assert_eq!(event.get("lsn").is_some(), next > ROWS);
    }
    // And the feed goes on.
    rt.sql("insert into articles (title) values ('after')").await;
    assert_eq!(stream.expect("create").await.ids(), [ROWS + 1]);
    drop(socket);
    rt.finish().await;
}

#[actix_web::test]
async fn a_collection_written_once_does_not_hold_the_slot_back_past_retention() {
    let rt = realtime::spawn(|c| c.realtime.retention = Duration::from_secs(1)).await;
    rt.create(
        "create table idle (id serial primary key, v text); create table busy (id serial primary key, v text)",
        "busy",
    )
    .await;
    let pool = rt.pool().await;
    // Written once, never again, and nobody subscribes to it.
    rt.sql("insert into idle (v) values ('once')").await;
    // Where WAL is inserted now (the write position may trail the commit record).
    let after_idle: String = sqlx::query_scalar("select pg_current_wal_insert_lsn()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    let after_idle = lsn(&after_idle);
    // Writes elsewhere go on; the slot must be confirmed past the idle write once its
    // retention is over, though that collection never changes again.
    let confirmed = || async {
        let text: Option<String> = sqlx::query_scalar(
            "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = $1",
        )
        .bind(&rt.slot)
        .fetch_one(&pool)
        .await
        .unwrap();
        text.map_or(0, |t| lsn(&t))
    };
    rt.eventually("the slot moves past the idle collection's write", || async {
        rt.sql("insert into busy (v) values ('tick')").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        confirmed().await > after_idle
    })
    .await;
    pool.close().await;
    rt.finish().await;
}

#[actix_web::test]
async fn a_slot_dropped_under_a_live_feed_is_a_gap_subscribers_are_told_of() {
    let rt = app_with_articles(|_| {}).await;
    let mut stream = sse(&rt, "collection=articles&fields=id").await;
    stream.expect("init").await;
    rt.sql("insert into articles (title) values ('before')").await;
    assert_eq!(stream.expect("create").await.ids(), [1]);
    let before = stream.last_id.clone().unwrap();
    // Someone drops the slot out from under the server (terminating its walsender first).
    let pool = rt.pool().await;
    rt.eventually("the slot is dropped", || async {
        let _ = sqlx::query("select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active")
            .bind(&rt.slot)
            .execute(&pool)
            .await;
        sqlx::query("select pg_drop_replication_slot($1)")
            .bind(&rt.slot)
            .execute(&pool)
            .await
            .is_ok()
    })
    .await;
    // Committed while no slot kept it: lost to realtime, so subscribers must refetch.
    rt.sql("insert into articles (title) values ('while missing')")
        .await;
    let refetch = stream.expect("refetch").await;
    assert_eq!(refetch.data["reason"], "gap", "{:?}", refetch);
    // The feed carries on from the new slot.
    rt.wait_streaming().await;
    rt.sql("insert into articles (title) values ('after')").await;
    let after = stream.expect("create").await;
    assert_eq!(after.ids(), [3]);
    // Health and metrics say so.
    let health = rt.get("/server/health").await.json();
    assert_eq!(health["status"], "warn", "{health}");
    assert_eq!(health["checks"]["realtime:gaps"][0]["status"], "warn");
    assert_eq!(health["checks"]["realtime:gaps"][0]["observedValue"], 1);
    let metrics = rt.get("/metrics").await.text;
    assert!(metrics.contains("directrix_replication_gaps 1"), "{metrics}");
    // A resume from before the gap cannot be answered from history.
    let mut resumed = sse_with(
        &rt,
        "collection=articles&fields=id",
        Some(ADMIN_TOKEN),
        Some(&before),
    )
    .await;
    assert_eq!(resumed.expect("refetch").await.data["reason"], "gap");
    pool.close().await;
    rt.finish().await;
}
