//! `/websocket` end to end, against Directus's protocol (docs/realtime-protocol.md): handshake,
//! strict and public auth, subscriptions with `uid`s, unsubscribe, ping/pong, the heartbeat,
//! token expiry, the message rate limit, malformed frames, `items` CRUD over the socket,
//! `since` resume, and enter/leave under a read permission.
//!
//! Every test runs its own app (so its own replication slot) and drops the slot at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/realtime.rs"]
mod realtime;

use std::collections::HashMap;
use std::time::Duration;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN};
use directrix::config::{Config, WsAuthMode};
use realtime::{Got, Rt, Ws, enter_leave, ids, ws, ws_admin, ws_try};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const ARTICLES: &str = "create table articles (id serial primary key, title text, \
    status text not null default 'draft', body text); \
    alter table articles replica identity full;";

async fn app_with_articles(tweak: impl FnOnce(&mut Config)) -> Rt {
    let rt = realtime::spawn(tweak).await;
    rt.create(ARTICLES, "articles").await;
    rt
}

fn auth_error(code: &str, message: &str) -> Value {
    json!({"type": "auth", "status": "error", "error": {"code": code, "message": message}})
}

/// Reads `n` subscription messages and sorts them by `uid`.
async fn by_uid(ws: &mut Ws, n: usize) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for _ in 0..n {
        let message = ws.recv().await;
        assert_eq!(message["type"], "subscription", "{message}");
        let uid = message["uid"].as_str().unwrap_or_default().to_string();
        out.entry(uid).or_default().push(message);
    }
    out
}

/// Inserts with `sql` and waits until a subscriber has the `rows` rows, so that later
/// subscriptions meet them settled, in `init` (the handoff tests cover the race).
async fn seed(rt: &Rt, sql: &str, rows: usize) {
    let mut watcher = ws_admin(rt).await;
    watcher
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "w"}))
        .await;
    rt.sql(sql).await;
    let mut seen = 0;
    while seen < rows {
        seen += ids(&watcher.expect_event("create").await).len();
    }
}

#[actix_web::test]
async fn handshake_auth_by_token_password_and_refresh_token() {
    let rt = app_with_articles(|c| c.realtime.ws_auth_timeout = Duration::from_secs(1)).await;

    let mut socket = ws(&rt).await;
    socket
        .send(json!({"type": "auth", "access_token": ADMIN_TOKEN, "uid": 1}))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "auth", "status": "ok", "uid": 1})
    );
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles"}))
        .await;

    // Email and password: a refresh token comes back, and signs in another socket.
    let mut by_password = ws(&rt).await;
    by_password
        .send(json!({"type": "auth", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .await;
    let reply = by_password.recv().await;
    assert_eq!(
        (&reply["type"], &reply["status"]),
        (&json!("auth"), &json!("ok")),
        "{reply}"
    );
    let refresh = reply["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string();
    let mut by_refresh = ws(&rt).await;
    by_refresh
        .send(json!({"type": "auth", "refresh_token": refresh, "uid": "r"}))
        .await;
    let reply = by_refresh.recv().await;
    assert_eq!(
        (&reply["status"], &reply["uid"]),
        (&json!("ok"), &json!("r")),
        "{reply}"
    );
    assert!(reply["refresh_token"].is_string() && reply["refresh_token"] != json!(refresh));
    by_refresh.roundtrip("p").await;

    // A wrong password fails and closes.
    let mut wrong = ws(&rt).await;
    wrong
        .send(json!({"type": "auth", "email": ADMIN_EMAIL, "password": "nope", "uid": 2}))
        .await;
    let mut expected = auth_error("AUTH_FAILED", "Authentication failed.");
    expected["uid"] = json!(2);
    assert_eq!(wrong.until_closed().await, [expected]);

    // Anything but auth first fails the handshake and closes.
    let mut eager = ws(&rt).await;
    eager
        .send(json!({"type": "subscribe", "collection": "articles"}))
        .await;
    assert_eq!(
        eager.until_closed().await,
        [auth_error("AUTH_FAILED", "Authentication handshake failed.")]
    );
    // Saying nothing fails it after the timeout.
    let mut silent = ws(&rt).await;
    assert_eq!(
        silent.until_closed().await,
        [auth_error("AUTH_FAILED", "Authentication handshake failed.")]
    );
    // A token in the URL is checked at the upgrade even in handshake mode.
    assert_eq!(ws_try(&rt, "access_token=bad", &[]).await.err(), Some(401));
    let mut in_url = ws_try(&rt, &format!("access_token={ADMIN_TOKEN}"), &[])
        .await
        .expect("upgrade");
    in_url
        .subscribe(json!({"type": "subscribe", "collection": "articles"}))
        .await;

    // The first socket was not disturbed by any of it.
    socket.roundtrip("still here").await;
    drop((socket, by_password, by_refresh, in_url));
    rt.finish().await;
}

#[actix_web::test]
async fn strict_mode_wants_a_token_at_the_upgrade() {
    let rt = app_with_articles(|c| c.realtime.ws_auth = WsAuthMode::Strict).await;
    assert_eq!(ws_try(&rt, "", &[]).await.err(), Some(401));
    assert_eq!(ws_try(&rt, "access_token=bad", &[]).await.err(), Some(401));
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let mut by_header = ws_try(&rt, "", &[("authorization", &bearer)])
        .await
        .expect("a bearer header is a token");
    by_header
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "h"}))
        .await;
    let mut by_query = ws_try(&rt, &format!("access_token={ADMIN_TOKEN}"), &[])
        .await
        .expect("upgrade");
    let init = by_query
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "q"}))
        .await;
    assert_eq!(
        init,
        json!({"type": "subscription", "event": "init", "data": [], "uid": "q"})
    );
    rt.sql("insert into articles (title) values ('hello')").await;
    for socket in [&mut by_header, &mut by_query] {
        let event = socket.expect_event("create").await;
        assert_eq!(ids(&event), [1]);
    }
    drop((by_header, by_query));
    rt.finish().await;
}

#[actix_web::test]
async fn the_connection_limit_refuses_with_403() {
    let rt = app_with_articles(|c| c.realtime.ws_conn_limit = Some(1)).await;
    let mut first = ws_admin(&rt).await;
    assert_eq!(ws_try(&rt, "", &[]).await.err(), Some(403));
    first.roundtrip("a").await;
    drop(first);
    // The slot frees when the first goes (asynchronously).
    rt.eventually("a connection frees its place", || async {
        ws_try(&rt, "", &[]).await.is_ok()
    })
    .await;
    rt.finish().await;
}

#[actix_web::test]
async fn public_mode_serves_the_public_and_auth_elevates() {
    let rt = app_with_articles(|c| c.realtime.ws_auth = WsAuthMode::Public).await;
    rt.create("create table notes (id serial primary key, body text)", "notes")
        .await;
    realtime::grant_public_read(&rt, "notes").await;

    let mut socket = ws(&rt).await;
    let init = socket
        .subscribe(json!({"type": "subscribe", "collection": "notes", "uid": "n"}))
        .await;
    assert_eq!(init["data"], json!([]));
    socket
        .send(json!({"type": "subscribe", "collection": "articles", "uid": "a"}))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "subscribe", "status": "error", "uid": "a", "error": {
            "code": "INVALID_COLLECTION",
            "message": "The provided collection does not exists or is not accessible."}})
    );
    // A failed auth in public mode keeps the connection, as the public.
    socket
        .send(json!({"type": "auth", "access_token": "bad", "uid": 1}))
        .await;
    let mut failed = auth_error("AUTH_FAILED", "Authentication failed.");
    failed["uid"] = json!(1);
    assert_eq!(socket.recv().await, failed);
    socket.roundtrip("p").await;
    socket.auth_token(ADMIN_TOKEN).await;
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "a"}))
        .await;
    rt.sql("insert into notes (body) values ('public')").await;
    let event = socket.expect_event("create").await;
    assert_eq!(event["uid"], "n");
    assert_eq!(event["data"], json!([{"id": 1, "body": "public"}]));
    rt.sql("insert into articles (title) values ('admin only')").await;
    let event = socket.expect_event("create").await;
    assert_eq!(event["uid"], "a");
    drop(socket);
    rt.finish().await;
}

#[actix_web::test]
async fn subscriptions_get_init_then_events_with_their_uid_until_unsubscribed() {
    let rt = app_with_articles(|_| {}).await;
    seed(
        &rt,
        "insert into articles (title, status) values ('seed', 'published')",
        1,
    )
    .await;
    let mut socket = ws_admin(&rt).await;
    let init = socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "all"}))
        .await;
    assert_eq!(
        init,
        json!({"type": "subscription", "event": "init", "uid": "all",
               "data": [{"id": 1, "title": "seed", "status": "published", "body": null}]})
    );
    // A numeric uid comes back as a string; a query narrows the fields.
    let init = socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": 7,
                          "query": {"fields": ["id", "title"]}}))
        .await;
    assert_eq!(
        init,
        json!({"type": "subscription", "event": "init", "uid": "7", "data": [{"id": 1, "title": "seed"}]})
    );
    // With an event, init carries no data.
    let init = socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "event": "update", "uid": "u"}))
        .await;
    assert_eq!(init, json!({"type": "subscription", "event": "init", "uid": "u"}));
    // One item.
    let init = socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "item": 1, "uid": "one"}))
        .await;
    assert_eq!(init["data"]["title"], "seed", "{init}");

    rt.sql("insert into articles (title) values ('second')").await;
    let got = by_uid(&mut socket, 2).await;
    let event = &got["all"][0];
    assert_eq!(
        (&event["event"], &event["collection"], &event["data"]),
        (
            &json!("create"),
            &json!("articles"),
            &json!([{"id": 2, "title": "second", "status": "draft", "body": null}])
        )
    );
    assert!(event["lsn"].is_string(), "{event}");
    assert_eq!(got["7"][0]["data"], json!([{"id": 2, "title": "second"}]));

    rt.sql("update articles set title = 'first' where id = 1").await;
    let got = by_uid(&mut socket, 4).await;
    for uid in ["all", "7", "u", "one"] {
        assert_eq!(got[uid][0]["event"], "update", "{uid}: {got:?}");
        assert_eq!(ids(&got[uid][0]), [1]);
    }

    socket.send(json!({"type": "unsubscribe", "uid": 7})).await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "subscription", "event": "unsubscribe", "uid": 7})
    );
    rt.sql("delete from articles where id = 1").await;
    // "7" is gone, "u" only wants updates: one delete for "all" and "one".
    let got = by_uid(&mut socket, 2).await;
    assert_eq!(got["all"][0]["data"], json!([1]));
    assert_eq!(got["one"][0]["data"], json!([1]));
    rt.sql("insert into articles (title) values ('third')").await;
    let event = socket.expect_event("create").await;
    assert_eq!((&event["uid"], ids(&event)), (&json!("all"), vec![3]));

    // Without a uid: all of them.
    socket.send(json!({"type": "unsubscribe"})).await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "subscription", "event": "unsubscribe"})
    );
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "again", "event": "create"}))
        .await;
    rt.sql("insert into articles (title) values ('fourth'); update articles set title = 'x' where id = 3")
        .await;
    let event = socket.recv().await;
    assert_eq!(
        (&event["uid"], ids(&event)),
        (&json!("again"), vec![4]),
        "{event}"
    );
    socket.roundtrip("done").await;
    drop(socket);
    rt.finish().await;
}

#[actix_web::test]
async fn the_heartbeat_closes_a_silent_client() {
    let rt = app_with_articles(|c| c.realtime.heartbeat_period = Duration::from_secs(1)).await;
    let mut silent = ws_admin(&rt).await;
    let seen = silent.until_closed().await;
    assert!(
        seen.iter().all(|m| *m == json!({"type": "ping"})),
        "only heartbeats before the close: {seen:?}"
    );
    // The server goes on.
    let mut other = ws_admin(&rt).await;
    other.roundtrip("fine").await;
    drop(other);
    rt.finish().await;
}

#[actix_web::test]
async fn the_heartbeat_pings_first_and_keeps_a_client_that_answers() {
    let rt = app_with_articles(|c| c.realtime.heartbeat_period = Duration::from_secs(1)).await;
    // Answers every ping: stays.
    let mut talking = ws_admin(&rt).await;
    let mut pings = 0;
    while pings < 5 {
        match talking.read().await {
            Got::Json(message) if message == json!({"type": "ping"}) => {
                pings += 1;
                talking.send(json!({"type": "pong"})).await;
            }
            Got::Json(other) => panic!("unexpected {other}"),
            Got::Closed(_) => panic!("closed after {pings} pings although it answered each"),
        }
    }
    talking.roundtrip("alive").await;
    // Says nothing: pinged, then closed.
    let mut silent = ws_admin(&rt).await;
    let seen = silent.until_closed().await;
    assert!(
        !seen.is_empty() && seen.iter().all(|m| *m == json!({"type": "ping"})),
        "pinged before the close: {seen:?}"
    );
    drop(talking);
    rt.finish().await;
}

#[actix_web::test]
async fn an_expired_token_gets_token_expired_then_auth_timeout() {
    let rt = app_with_articles(|c| {
        c.auth.access_token_ttl = Duration::from_secs(2);
        c.realtime.ws_auth_timeout = Duration::from_secs(1);
    })
    .await;
    let mut expiring = ws(&rt).await;
    expiring
        .send(json!({"type": "auth", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .await;
    assert_eq!(expiring.recv().await["status"], "ok");
    assert_eq!(
        expiring.until_closed().await,
        [
            auth_error("TOKEN_EXPIRED", "Token expired."),
            auth_error("AUTH_TIMEOUT", "Authentication timed out."),
        ]
    );

    // A new auth in time keeps the connection.
    let mut renewing = ws(&rt).await;
    renewing
        .send(json!({"type": "auth", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .await;
    assert_eq!(renewing.recv().await["status"], "ok");
    assert_eq!(
        renewing.recv().await,
        auth_error("TOKEN_EXPIRED", "Token expired.")
    );
    renewing.auth_token(ADMIN_TOKEN).await;
    // Past the old timeout: still serving.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    renewing.roundtrip("kept").await;
    renewing
        .subscribe(json!({"type": "subscribe", "collection": "articles"}))
        .await;
    drop(renewing);
    rt.finish().await;
}

#[actix_web::test]
async fn the_message_rate_limit_answers_requests_exceeded_and_keeps_the_connection() {
    let rt = app_with_articles(|c| {
        c.realtime.ws_rate_enabled = true;
        c.realtime.ws_rate_points = 5;
        c.realtime.ws_rate_duration = Duration::from_secs(60);
    })
    .await;
    let mut socket = ws_admin(&rt).await; // 1
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "s"}))
        .await; // 2
    for i in 0..6 {
        socket.send(json!({"type": "ping", "uid": i})).await;
    }
    for i in 0..3 {
        assert_eq!(socket.recv().await, json!({"type": "pong", "uid": i}));
    }
    for _ in 0..3 {
        let refused = socket.recv().await;
        assert_eq!(refused["type"], "server", "{refused}");
        assert_eq!(refused["status"], "error");
        assert_eq!(refused["error"]["code"], "REQUESTS_EXCEEDED");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Too many messages, retry after ") && message.ends_with("ms."),
            "{message}"
        );
    }
    // Still open, still subscribed.
    rt.sql("insert into articles (title) values ('still there')")
        .await;
    assert_eq!(ids(&socket.expect_event("create").await), [1]);
    // Other connections have their own budget.
    let mut other = ws_admin(&rt).await;
    other.roundtrip("fresh").await;
    // Sustained abuse: past twice the points refused in a row, the connection is closed.
    for i in 0..20 {
        socket.send(json!({"type": "ping", "uid": i})).await;
    }
    let (seen, code) = socket.until_closed_with_code().await;
    assert!(
        seen.iter().all(|m| m["error"]["code"] == "REQUESTS_EXCEEDED"),
        "{seen:?}"
    );
    assert_eq!(code, Some(1008));
    other.roundtrip("unaffected").await;
    drop(other);
    rt.finish().await;
}

#[actix_web::test]
async fn subscriptions_per_connection_are_capped() {
    let rt = app_with_articles(|c| c.realtime.max_subscriptions = 3).await;
    let mut socket = ws_admin(&rt).await;
    for uid in ["a", "b", "c"] {
        socket
            .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": uid, "event": "create"}))
            .await;
    }
    // Re-using a uid replaces, so it still fits.
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "a", "event": "create"}))
        .await;
    socket
        .send(json!({"type": "subscribe", "collection": "articles", "uid": "d"}))
        .await;
    let refused = socket.recv().await;
    assert_eq!(
        refused,
        json!({"type": "subscribe", "status": "error", "uid": "d", "error": {
            "code": "LIMIT_EXCEEDED", "message": "Too many subscriptions on this connection (at most 3)."}})
    );
    socket.send(json!({"type": "unsubscribe", "uid": "b"})).await;
    socket.recv().await;
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "d", "event": "create"}))
        .await;
    // One insert: each live subscription gets it once.
    rt.sql("insert into articles (title) values ('one')").await;
    let mut uids = Vec::new();
    for _ in 0..3 {
        uids.push(
            socket.expect_event("create").await["uid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    uids.sort();
    assert_eq!(uids, ["a", "c", "d"]);
    // A stream naming too many collections is refused the same way.
    let res = realtime::stream_request(&rt, "collection=a,b,c,d", Some(common::ADMIN_TOKEN), None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("LIMIT_EXCEEDED"));
    drop(socket);
    rt.finish().await;
}

#[actix_web::test]
async fn malformed_frames_never_take_the_server_down() {
    let rt = app_with_articles(|c| c.realtime.ws_max_message_size = 64 * 1024).await;
    let mut bystander = ws_admin(&rt).await;
    bystander
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "b"}))
        .await;

    let mut victim = ws_admin(&rt).await;
    let unparsable = json!({"type": "server", "status": "error", "error": {
        "code": "INVALID_PAYLOAD", "message": "Unable to parse the incoming message."}});
    victim.send_message(Message::text("{not json")).await.unwrap();
    assert_eq!(victim.recv().await, unparsable);
    victim
        .send_message(Message::binary(vec![0xff, 0xfe, 0x00, 0x80, 0x7b]))
        .await
        .unwrap();
    assert_eq!(victim.recv().await, unparsable);
    for bad in [
        json!({"type": 5}),
        json!([1, 2]),
        json!("text"),
        json!({"uid": []}),
    ] {
        victim.send(bad.clone()).await;
        let reply = victim.recv().await;
        assert_eq!(
            (&reply["type"], &reply["status"]),
            (&json!("server"), &json!("error")),
            "{bad}: {reply}"
        );
    }
    victim.send(json!({"type": "subscribe", "uid": "x"})).await;
    let reply = victim.recv().await;
    assert_eq!(
        (&reply["type"], &reply["status"]),
        (&json!("subscribe"), &json!("error")),
        "{reply}"
    );
    // A protocol-level ping frame gets its pong, with the same payload.
    victim
        .send_message(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    loop {
        let frame = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures_util::StreamExt::next(&mut victim.stream),
        )
        .await
        .expect("a pong within 10 s");
        match frame {
            Some(Ok(Message::Pong(payload))) => {
                assert_eq!(&payload[..], b"are you there");
                break;
            }
            Some(Ok(Message::Text(_))) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    // An unknown type is ignored.
    victim.send(json!({"type": "whatever", "uid": "w"})).await;
    victim.roundtrip("after garbage").await;

    // Over the size limit: that connection ends, nothing else does.
    let huge = format!("{{\"type\":\"ping\",\"uid\":\"{}\"}}", "x".repeat(200 * 1024));
    let _ = victim.send_message(Message::text(huge)).await;
    let (seen, code) = victim.until_closed_with_code().await;
    assert!(
        seen.iter().all(|m| m["type"] != "pong"),
        "the huge frame was not served: {seen:?}"
    );
    assert!(seen.contains(&unparsable), "told why before the close: {seen:?}");
    assert_eq!(code, Some(1009), "message too big");
    // A text frame that is not UTF-8: 1007. A continuation nothing started: 1002.
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let mut invalid = ws_admin(&rt).await;
    let frame = Frame::message(vec![b'"', 0xff, 0xfe, b'"'], OpCode::Data(Data::Text), true);
    let _ = invalid.send_message(Message::Frame(frame)).await;
    let (seen, code) = invalid.until_closed_with_code().await;
    assert!(seen.contains(&unparsable), "{seen:?}");
    assert_eq!(code, Some(1007), "invalid UTF-8");
    let mut stray = ws_admin(&rt).await;
    let frame = Frame::message(b"lost".to_vec(), OpCode::Data(Data::Continue), true);
    let _ = stray.send_message(Message::Frame(frame)).await;
    let (_, code) = stray.until_closed_with_code().await;
    assert_eq!(code, Some(1002), "protocol error");
    bystander.roundtrip("unaffected").await;
    rt.sql("insert into articles (title) values ('after')").await;
    assert_eq!(ids(&bystander.expect_event("create").await), [1]);
    let mut newcomer = ws_admin(&rt).await;
    newcomer.roundtrip("new").await;
    assert_eq!(rt.get("/server/ping").await.text, "pong");
    drop((bystander, newcomer));
    rt.finish().await;
}

#[actix_web::test]
async fn items_crud_over_the_socket_goes_through_the_rest_rules() {
    let rt = app_with_articles(|_| {}).await;
    let mut watcher = ws_admin(&rt).await;
    watcher
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "w"}))
        .await;
    let mut socket = ws_admin(&rt).await;
    let items = |action: &str, rest: Value| {
        let mut message = json!({"type": "items", "collection": "articles", "action": action});
        for (k, v) in rest.as_object().unwrap() {
            message[k] = v.clone();
        }
        message
    };

    socket
        .send(items("create", json!({"data": {"title": "one"}, "uid": 1})))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "items", "data": {"id": 1, "title": "one", "status": "draft", "body": null}, "uid": 1})
    );
    socket
        .send(items(
            "create",
            json!({"data": [{"title": "two"}, {"title": "three", "status": "published"}],
                   "query": {"fields": ["id", "status"]}, "uid": "many"}),
        ))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "items", "data": [{"id": 2, "status": "draft"}, {"id": 3, "status": "published"}], "uid": "many"})
    );
    socket
        .send(items(
            "read",
            json!({"id": 1, "query": {"fields": ["title"]}, "uid": "r1"}),
        ))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "items", "data": {"title": "one"}, "uid": "r1"})
    );
    socket
        .send(items(
            "read",
            json!({"query": {"filter": {"status": {"_eq": "draft"}}, "fields": ["id"], "sort": ["id"]}, "uid": "rq"}),
        ))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "items", "data": [{"id": 1}, {"id": 2}], "uid": "rq"})
    );
    socket
        .send(items(
            "update",
            json!({"id": 2, "data": {"title": "two!"}, "uid": "u"}),
        ))
        .await;
    let updated = socket.recv().await;
    assert_eq!(updated["data"]["title"], "two!", "{updated}");
    socket.send(items("delete", json!({"id": 1, "uid": "d"}))).await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "items", "data": 1, "uid": "d"})
    );
    socket.send(items("delete", json!({"uid": "none"}))).await;
    assert_eq!(
        socket.recv().await,
        json!({"type": "items", "status": "error", "uid": "none", "error": {
            "code": "INVALID_PAYLOAD",
            "message": "Either 'ids', 'id' or 'query' is required for a DELETE request."}})
    );
    socket
        .send(json!({"type": "items", "collection": "directus_users", "action": "read", "uid": "sys"}))
        .await;
    assert_eq!(socket.recv().await["error"]["code"], "INVALID_COLLECTION");

    // The subscriber saw the socket's writes, in order.
    let kinds: Vec<(String, Vec<i64>)> = {
        let mut out = Vec::new();
        for _ in 0..4 {
            let event = watcher.recv().await;
            out.push((event["event"].as_str().unwrap().to_string(), ids(&event)));
        }
        out
    };
    assert_eq!(
        kinds,
        [
            ("create".to_string(), vec![1]),
            ("create".to_string(), vec![2, 3]),
            ("update".to_string(), vec![2]),
            ("delete".to_string(), vec![1]),
        ]
    );

    // A user without update rights gets the REST error.
    let reader = realtime::user_with(
        &rt,
        "reader@example.com",
        json!([{"collection": "articles", "action": "read", "fields": ["*"]}]),
    )
    .await;
    let mut limited = ws(&rt).await;
    limited.auth_token(&reader).await;
    limited
        .send(items(
            "update",
            json!({"id": 2, "data": {"title": "no"}, "uid": "x"}),
        ))
        .await;
    let refused = limited.recv().await;
    assert_eq!(
        (&refused["type"], &refused["status"], &refused["error"]["code"]),
        (&json!("items"), &json!("error"), &json!("FORBIDDEN")),
        "{refused}"
    );
    limited
        .send(items("read", json!({"id": 2, "query": {"fields": ["title"]}})))
        .await;
    assert_eq!(
        limited.recv().await,
        json!({"type": "items", "data": {"title": "two!"}})
    );
    drop((watcher, socket, limited));
    rt.finish().await;
}

#[actix_web::test]
async fn since_resumes_a_subscription_or_says_gap() {
    let rt = app_with_articles(|c| c.realtime.retention_changes = 4).await;
    let mut watcher = ws_admin(&rt).await;
    watcher
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "w"}))
        .await;
    let mut first = ws_admin(&rt).await;
    first
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "a"}))
        .await;
    for n in 1..=3 {
        rt.sql(&format!("insert into articles (title) values ('row {n}')"))
            .await;
    }
    let one = first.expect_event("create").await;
    let two = first.expect_event("create").await;
    assert_eq!((ids(&one), ids(&two)), (vec![1], vec![2]));
    drop(first);
    for n in 4..=6 {
        rt.sql(&format!("insert into articles (title) values ('row {n}')"))
            .await;
    }
    let mut fed = Vec::new();
    while !fed.contains(&6) {
        fed.extend(ids(&watcher.expect_event("create").await));
    }

    let mut resumed = ws_admin(&rt).await;
    let init = resumed
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "b", "since": two["lsn"]}))
        .await;
    assert_eq!(init, json!({"type": "subscription", "event": "init", "uid": "b"}));
    let mut got = Vec::new();
    while got.len() < 4 {
        let event = resumed.expect_event("create").await;
        assert_eq!(event["uid"], "b");
        got.extend(ids(&event));
    }
    assert_eq!(got, [3, 4, 5, 6]);

    let mut gap = ws_admin(&rt).await;
    gap.subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "c", "since": one["lsn"]}))
        .await;
    let refetch = gap.recv().await;
    assert_eq!(
        (
            &refetch["event"],
            &refetch["reason"],
            &refetch["collection"],
            &refetch["uid"]
        ),
        (&json!("refetch"), &json!("gap"), &json!("articles"), &json!("c")),
        "{refetch}"
    );
    rt.sql("insert into articles (title) values ('row 7')").await;
    assert_eq!(ids(&resumed.expect_event("create").await), [7]);
    assert_eq!(ids(&gap.expect_event("create").await), [7]);

    // Not a position.
    gap.send(json!({"type": "subscribe", "collection": "articles", "since": "yesterday"}))
        .await;
    let refused = gap.recv().await;
    assert_eq!(
        (&refused["type"], &refused["status"]),
        (&json!("subscribe"), &json!("error")),
        "{refused}"
    );
    drop((watcher, resumed, gap));
    rt.finish().await;
}

#[actix_web::test]
async fn a_read_permission_filters_socket_subscriptions_with_enter_and_leave() {
    let rt = app_with_articles(|_| {}).await;
    rt.create(
        "create table secrets (id serial primary key, body text)",
        "secrets",
    )
    .await;
    seed(&rt, enter_leave::SEED, enter_leave::SEED_ROWS).await;
    let reader = realtime::user_with(&rt, "reader@example.com", enter_leave::permissions()).await;
    let mut socket = ws(&rt).await;
    socket.auth_token(&reader).await;
    let init = socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "r"}))
        .await;
    assert_eq!(init["data"], enter_leave::init());
    socket
        .send(json!({"type": "subscribe", "collection": "secrets", "uid": "s"}))
        .await;
    assert_eq!(socket.recv().await["error"]["code"], "INVALID_COLLECTION");
    // An `items` message cannot tell a forbidden collection from a missing one, as REST can't.
    let mut replies = Vec::new();
    for collection in ["secrets", "no_such_collection"] {
        for action in ["read", "create", "update", "delete"] {
            socket
                .send(
                    json!({"type": "items", "collection": collection, "action": action,
                             "id": 1, "data": {"body": "x"}, "uid": "same"}),
                )
                .await;
            let mut reply = socket.recv().await;
            let message = reply["error"]["message"].as_str().unwrap().to_string();
            reply["error"]["message"] = json!(message.replace(collection, "<c>"));
            assert_eq!(reply["error"]["code"], "FORBIDDEN", "{reply}");
            replies.push((action, reply));
        }
    }
    assert_eq!(replies[..4], replies[4..]);

    // Never sent: the reader may not read secrets (its first event would show it).
    rt.sql("insert into secrets (body) values ('never sent')").await;
    for sql in enter_leave::WRITES {
        rt.sql(sql).await;
    }
    for (kind, data) in enter_leave::seen() {
        let event = socket.expect_event(kind).await;
        assert_eq!((&event["data"], &event["uid"]), (&data, &json!("r")), "{event}");
    }
    drop(socket);
    rt.finish().await;
}

#[actix_web::test]
async fn rows_written_while_subscribing_arrive_exactly_once_on_the_socket() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let rt = app_with_articles(|_| {}).await;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let mut conn = rt.connect().await;
    let task = {
        let (stop, written) = (stop.clone(), written.clone());
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
    };
    let mut socket = ws_admin(&rt).await;
    let mut inits = HashMap::new();
    for round in 1..=5i64 {
        while written.load(Ordering::Acquire) < round * 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let uid = format!("s{round}");
        socket
            .send(json!({"type": "subscribe", "collection": "articles", "uid": uid,
                         "query": {"limit": -1}}))
            .await;
        // Events of earlier subscriptions may come first.
        let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
        loop {
            let message = socket.recv().await;
            let from = message["uid"].as_str().unwrap().to_string();
            if message["event"] == "init" {
                assert_eq!(from, uid);
                inits.insert(uid.clone(), ids(&message));
                break;
            }
            seen.entry(from).or_default().extend(ids(&message));
        }
        for (from, got) in seen {
            inits.get_mut(&from).unwrap().extend(got);
        }
    }
    stop.store(true, Ordering::Release);
    let rows = task.await.unwrap();
    rt.sql("insert into articles (title) values ('the end')").await;
    let end = rows + 1;
    let mut done = 0;
    while done < 5 {
        let message = socket.expect_event("create").await;
        let uid = message["uid"].as_str().unwrap().to_string();
        let got = ids(&message);
        if got.contains(&end) {
            done += 1;
        }
        inits.get_mut(&uid).unwrap().extend(got);
    }
    for (uid, got) in inits {
        assert_eq!(
            got,
            (1..=end).collect::<Vec<_>>(),
            "{uid}: every row once, in order"
        );
    }
    drop(socket);
    rt.finish().await;
}

/// A filter or read rule that reaches through a relation is decided by the database: for the
/// row after a change by reading it again, for the row before from the old row the WAL carries
/// (`REPLICA IDENTITY FULL`). Rows enter and leave the view as their author changes, and only
/// the deletes of rows that were in the view are sent.
#[actix_web::test]
async fn relational_filters_and_rules_follow_rows_in_and_out_and_see_their_deletes() {
    let rt = realtime::spawn(|_| {}).await;
    rt.create(
        "create table authors (id integer primary key, name text not null); \
         create table articles (id integer primary key, title text, author integer references authors (id)); \
         alter table articles replica identity full; \
         insert into authors values (1, 'ann'), (2, 'bob');",
        "articles",
    )
    .await;
    let reader = realtime::user_with(
        &rt,
        "ann-reader@example.com",
        json!([
            {"collection": "articles", "action": "read",
             "permissions": {"author": {"name": {"_eq": "ann"}}}, "fields": ["id", "title"]},
            {"collection": "authors", "action": "read", "fields": ["*"]}
        ]),
    )
    .await;
    let mut by_filter = ws_admin(&rt).await;
    by_filter
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "f",
            "query": {"fields": ["id", "title", "author.name"], "filter": {"author": {"name": {"_eq": "ann"}}}}}))
        .await;
    let mut by_rule = ws(&rt).await;
    by_rule.auth_token(&reader).await;
    by_rule
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "r"}))
        .await;

    for sql in [
        "insert into articles values (1, 'one', 1)",
        "insert into articles values (2, 'two', 2)",
        "update articles set author = 1 where id = 2",
        "update articles set author = 2 where id = 1",
        "update articles set title = 'two, edited' where id = 2",
        "delete from articles where id = 1",
        "delete from articles where id = 2",
        // One transaction: its rows are read together and come out in order.
        "begin; insert into articles values (4, 'four', 1); insert into articles values (5, 'five', 2); \
         update articles set author = 2 where id = 4; insert into articles values (6, 'six', 1); commit",
        "insert into articles values (3, 'marker', 1)",
    ] {
        rt.sql(sql).await;
    }
    for (socket, uid) in [(&mut by_filter, "f"), (&mut by_rule, "r")] {
        // The filter's subscriber also expands the author: read from the committed version.
        let row = |id: i64, title: &str| match uid {
            "f" => json!([{"id": id, "title": title, "author": {"name": "ann"}}]),
            _ => json!([{"id": id, "title": title}]),
        };
        for (kind, data) in [
            ("create", row(1, "one")),
            // Article 2 enters when its author becomes ann, article 1 leaves when it stops.
            ("create", row(2, "two")),
            ("delete", json!([1])),
            ("update", row(2, "two, edited")),
            // Article 1 was out of the view when deleted: only 2's delete is sent.
            ("delete", json!([2])),
            ("create", row(4, "four")),
            ("delete", json!([4])),
            ("create", row(6, "six")),
            ("create", row(3, "marker")),
        ] {
            let event = socket.expect_event(kind).await;
            assert_eq!((&event["data"], &event["uid"]), (&data, &json!(uid)), "{event}");
        }
    }
    drop((by_filter, by_rule));
    rt.finish().await;
}

/// Without `REPLICA IDENTITY FULL` an update's new row lacks the TOASTed values it left alone:
/// such a row is read by key instead of from the WAL, and arrives whole.
#[actix_web::test]
async fn a_row_the_wal_carried_in_part_is_read_by_key() {
    let rt = realtime::spawn(|_| {}).await;
    rt.create(
        "create table authors (id integer primary key, name text not null); \
         create table articles (id integer primary key, title text, body text, author integer references authors (id)); \
         insert into authors values (1, 'ann');",
        "articles",
    )
    .await;
    let mut socket = ws_admin(&rt).await;
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "a",
            "query": {"fields": ["id", "title", "body", "author.name"]}}))
        .await;
    // Random text does not compress, so it is stored out of line.
    rt.sql(
        "insert into articles select 1, 'one', string_agg(md5(random()::text), '') , 1 \
         from generate_series(1, 400)",
    )
    .await;
    let created = socket.expect_event("create").await;
    let body = created["data"][0]["body"].as_str().unwrap().to_string();
    assert_eq!(body.len(), 400 * 32);
    rt.sql("update articles set title = 'one, edited' where id = 1")
        .await;
    let updated = socket.expect_event("update").await;
    assert_eq!(
        updated["data"],
        json!([{"id": 1, "title": "one, edited", "body": body, "author": {"name": "ann"}}])
    );
    drop(socket);
    rt.finish().await;
}

/// Stopping the server ends open sockets with close code 1001 ("going away") and SSE streams
/// at once, rather than leaving them to be cut at the shutdown timeout, so clients reconnect
/// and resume.
#[actix_web::test]
async fn a_stopping_server_closes_sockets_with_going_away_and_ends_streams() {
    let rt = app_with_articles(|_| {}).await;
    let mut socket = ws_admin(&rt).await;
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "a"}))
        .await;
    let mut stream = realtime::sse(&rt, "collection=articles").await;
    stream.expect("init").await;
    let stopping = actix_web::rt::spawn(rt.finish());
    let closed = loop {
        match socket.read().await {
            Got::Json(_) => {}
            Got::Closed(code) => break code,
        }
    };
    assert_eq!(closed, Some(1001));
    // Well inside the 10 s the server gives in-flight requests.
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(matches!(ended, Ok(None)), "the stream did not end: {ended:?}");
    stopping.await.unwrap();
}

#[actix_web::test]
async fn a_cookie_upgrade_from_a_foreign_origin_is_refused() {
    let rt = app_with_articles(|c| {
        c.http.cors.enabled = true;
        c.http.cors.origin = directrix::config::http::parse_origin("https://trusted.example").unwrap();
    })
    .await;
    let login = rt
        .client
        .post(format!("{}/auth/login", rt.base))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": "session"}))
        .send()
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("directus_session_token="))
        .map(|v| v.split(';').next().unwrap().to_string())
        .expect("a session cookie");
    let host = rt.base.trim_start_matches("http://").to_string();
    let same = format!("http://{host}");
    let upgrade = |origin: Option<String>, with_cookie: bool| {
        let rt = &rt;
        let cookie = cookie.clone();
        async move {
            let mut headers: Vec<(&str, String)> = Vec::new();
            if with_cookie {
                headers.push(("cookie", cookie));
            }
            if let Some(origin) = origin {
                headers.push(("origin", origin));
            }
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            ws_try(rt, "", &headers).await.map(|_| ())
        }
    };
    assert_eq!(upgrade(Some("https://evil.example".into()), true).await, Err(403));
    assert_eq!(upgrade(Some("null".into()), true).await, Err(403));
    assert_eq!(upgrade(Some(same.clone()), true).await, Ok(()));
    assert_eq!(upgrade(None, true).await, Ok(()), "not a browser");
    assert_eq!(
        upgrade(Some("https://trusted.example".into()), true).await,
        Ok(())
    );
    // Without the cookie nothing is borrowed from the browser: the socket must `auth` itself.
    assert_eq!(upgrade(Some("https://evil.example".into()), false).await, Ok(()));
    rt.finish().await;
}

/// A subscription's `query` from a few options: fields (plain, relational, O2M with `deep`),
/// `search` and a filter (relational or not).
fn pair_query(fields: usize, search: usize, filter: usize, deep: usize) -> Value {
    let fields = [
        "id,title",
        "id,title,author.name",
        "*",
        "id,title,comments.body",
        "id,author.*",
    ][fields];
    let mut query = json!({ "fields": fields });
    if let Some(term) = [None, Some("alpha"), Some("beta")][search] {
        query["search"] = json!(term);
    }
    let filters = [
        None,
        Some(json!({"status": {"_eq": "published"}})),
        Some(json!({"author": {"name": {"_eq": "ann"}}})),
    ];
    if let Some(filter) = &filters[filter] {
        query["filter"] = filter.clone();
    }
    if fields.contains("comments") && deep > 0 {
        query["deep"] = json!({"comments": {"_limit": deep}});
    }
    query
}

/// Reads `ws` until every uid in `uids` has had an event naming `marker`; the messages of each
/// uid, without the uid.
async fn until_marker(ws: &mut Ws, uids: &[&str], marker: i64) -> HashMap<String, Vec<Value>> {
    let mut seen: HashMap<String, Vec<Value>> = HashMap::new();
    let mut done: Vec<String> = Vec::new();
    while done.len() < uids.len() {
        let mut message = ws.recv().await;
        let uid = message["uid"].as_str().unwrap_or_default().to_string();
        message.as_object_mut().unwrap().remove("uid");
        let marked = message["event"] == "create"
            && message["data"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|r| r["id"] == json!(marker)));
        if marked && !done.contains(&uid) {
            done.push(uid.clone());
        }
        seen.entry(uid).or_default().push(message);
    }
    seen
}

#[actix_web::test]
async fn subscriptions_of_one_user_each_receive_what_they_would_receive_alone() {
    let rt = realtime::spawn(|_| {}).await;
    rt.create(
        "create table authors (id integer primary key, name text not null); \
         create table articles (id integer primary key, title text, status text, author integer references authors (id)); \
         create table comments (id serial primary key, body text, article integer references articles (id)); \
         alter table articles replica identity full; \
         insert into authors values (1, 'ann'), (2, 'bob'); \
         insert into articles values (1, 'alpha one', 'published', 1), (2, 'beta two', 'draft', 2); \
         insert into comments (body, article) values ('c1', 1), ('c2', 1); \
         insert into directrix.relations (many_collection, many_field, one_collection, one_field) \
             values ('comments', 'article', 'articles', 'comments'); \
         insert into directrix.fields (collection, field, special) values ('articles', 'comments', '{o2m}');",
        "comments",
    )
    .await;
    rt.eventually("the o2m alias is served", || async {
        rt.get("/items/articles?fields=comments.body").await.status == 200
    })
    .await;
    let rights = json!([
        {"collection": "articles", "action": "read", "fields": ["*"]},
        {"collection": "authors", "action": "read", "fields": ["*"]},
        {"collection": "comments", "action": "read", "fields": ["*"]}
    ]);
    // The pairs share one reader; each baseline subscription reads as a user of its own with
    // the same rights, so it is truly alone in its group.
    let reader = realtime::user_with(&rt, "pairs@example.com", rights.clone()).await;
    let mut loners = Vec::new();
    for i in 0..10 {
        loners.push(realtime::user_with(&rt, &format!("alone{i}@example.com"), rights.clone()).await);
    }
    // Random pairs, from a seed printed so a failure can be replayed (PAIRS_SEED=…).
    let seed: u64 = std::env::var("PAIRS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("subscription pairs seed: {seed} (set PAIRS_SEED to replay)");
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pick = || {
        pair_query(
            rng.random_range(0..5),
            rng.random_range(0..3),
            rng.random_range(0..3),
            rng.random_range(0..3),
        )
    };
    let pairs: Vec<(Value, Value)> = (0..5).map(|_| (pick(), pick())).collect();
    let subscribe = |query: &Value, uid: &str| json!({"type": "subscribe", "collection": "articles", "uid": uid, "query": query});
    let mut sockets = Vec::new();
    for (i, (a, b)) in pairs.iter().enumerate() {
        let mut together = ws(&rt).await;
        together.auth_token(&reader).await;
        let init_a = together.subscribe(subscribe(a, "a")).await;
        let init_b = together.subscribe(subscribe(b, "b")).await;
        let mut alone_a = ws(&rt).await;
        alone_a.auth_token(&loners[2 * i]).await;
        assert_eq!(alone_a.subscribe(subscribe(a, "a")).await, init_a, "{a}");
        let mut alone_b = ws(&rt).await;
        alone_b.auth_token(&loners[2 * i + 1]).await;
        assert_eq!(alone_b.subscribe(subscribe(b, "b")).await, init_b, "{b}");
        sockets.push((together, alone_a, alone_b));
    }
    for sql in [
        "insert into articles values (3, 'alpha three', 'draft', 2)",
        "insert into articles values (4, 'beta four', 'published', 1)",
        "update articles set status = 'published' where id = 3",
        "update articles set author = 2 where id = 1",
        "update articles set title = 'gamma' where id = 4",
        "insert into comments (body, article) values ('c3', 4)",
        "begin; insert into articles values (5, 'alpha beta five', 'published', 1); \
         update articles set author = 1 where id = 2; commit",
        "delete from articles where id = 2",
        "insert into articles values (6, 'marker alpha beta', 'published', 1)",
    ] {
        rt.sql(sql).await;
    }
    for ((a, b), (mut together, mut alone_a, mut alone_b)) in pairs.into_iter().zip(sockets) {
        let both = until_marker(&mut together, &["a", "b"], 6).await;
        let a_alone = until_marker(&mut alone_a, &["a"], 6).await;
        let b_alone = until_marker(&mut alone_b, &["b"], 6).await;
        assert_eq!(both["a"], a_alone["a"], "seed {seed}: {a} beside {b}");
        assert_eq!(both["b"], b_alone["b"], "seed {seed}: {b} beside {a}");
    }
    rt.finish().await;
}

#[actix_web::test]
async fn a_client_reading_slowly_falls_to_its_policy_after_the_outbox_age_bound() {
    let rt = app_with_articles(|c| c.realtime.outbound_max_age = Duration::from_secs(1)).await;
    // A client whose socket takes in little, and which stops reading after subscribing.
    let addr = rt.base.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let tcp = tcp.connect(addr.parse().unwrap()).await.unwrap();
    let (stream, _) = tokio_tungstenite::client_async(
        realtime::ws_url(&rt, ""),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await
    .unwrap();
    let mut slow = Ws { stream };
    slow.auth_token(ADMIN_TOKEN).await;
    slow.subscribe(
        json!({"type": "subscribe", "collection": "articles", "uid": "s", "backpressure": "resync"}),
    )
    .await;
    // More than the socket holds, then a few changes that wait behind it.
    rt.sql("insert into articles (title, body) select 'bulk ' || g, repeat('x', 200) from generate_series(1, 3000) g")
        .await;
    for i in 0..5 {
        rt.sql(&format!("insert into articles (title) values ('queued {i}')"))
            .await;
    }
    // The client is slow: it is more than the age bound behind (its lag probe, sent within a
    // second of each other one, waits unanswered), so what comes next falls to the
    // subscription's policy (resync: one refetch).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for i in 0..5 {
        rt.sql(&format!("insert into articles (title) values ('late {i}')"))
            .await;
    }
    rt.sql("insert into articles (title) values ('marker')").await;
    loop {
        let message = slow.recv().await;
        if message["event"] == "refetch" {
            assert_eq!(message["reason"], "overflow", "{message}");
            break;
        }
        let titles: Vec<&str> = message["data"]
            .as_array()
            .map(|rows| rows.iter().filter_map(|r| r["title"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            !titles.contains(&"marker"),
            "everything came late, nothing fell to the policy"
        );
    }
    rt.finish().await;
}
