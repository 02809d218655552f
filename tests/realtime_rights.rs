//! Open subscriptions follow their reader's rights, on both transports: the token expiring
//! (WebSocket: `TOKEN_EXPIRED`, nothing delivered until `auth` again; SSE: the stream ends and
//! resumes with a fresh token and `Last-Event-ID`), re-authenticating as someone else, and
//! every kind of access change — a user suspended, deleted, moved to another role or given a
//! new static token, a role, a policy, an access row or a permission changed. A change takes
//! effect before anything committed after it is delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/realtime.rs"]
mod realtime;

use std::time::Duration;

use common::ADMIN_TOKEN;
use realtime::{Rt, Sse, Ws, ws, ws_admin};
use reqwest::Method;
use serde_json::{Value, json};

const ARTICLES: &str = "create table articles (id serial primary key, title text, \
    status text not null default 'draft', body text); \
    create table notes (id serial primary key, body text); \
    alter table articles replica identity full;";

async fn app(tweak: impl FnOnce(&mut directrix::config::Config)) -> Rt {
    let rt = realtime::spawn(tweak).await;
    rt.create(ARTICLES, "articles").await;
    rt.create("select 1", "notes").await;
    rt
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    Ws,
    Sse,
}

/// What a reader saw next.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Event {
        kind: String,
        data: Value,
    },
    Refetch {
        reason: String,
    },
    /// An error naming the subscription (WebSocket) or the stream (SSE), by code.
    Error(String),
    Ended,
}

/// A subscriber to `articles` over either transport, as one reader.
enum Reader {
    Ws(Ws),
    Sse(Sse),
}

impl Reader {
    /// Subscribes with `token` to articles' `fields`; the `init` rows.
    async fn open(rt: &Rt, transport: Transport, token: &str, fields: &str) -> (Reader, Value) {
        match transport {
            Transport::Ws => {
                let mut socket = ws(rt).await;
                socket.auth_token(token).await;
                let init = socket
                    .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "r",
                                      "query": {"fields": fields.split(',').collect::<Vec<_>>()}}))
                    .await;
                (Reader::Ws(socket), init["data"].clone())
            }
            Transport::Sse => {
                let mut stream = realtime::sse_with(
                    rt,
                    &format!("collection=articles&fields={fields}"),
                    Some(token),
                    None,
                )
                .await;
                let init = stream.expect("init").await;
                (Reader::Sse(stream), init.data["data"].clone())
            }
        }
    }

    /// The next thing this reader sees (WebSocket heartbeats and other subscriptions' events
    /// skipped).
    async fn next(&mut self) -> Seen {
        match self {
            Reader::Ws(socket) => loop {
                let message = match socket.read().await {
                    realtime::Got::Closed(_) => return Seen::Ended,
                    realtime::Got::Json(message) => message,
                };
                match (message["type"].as_str(), message["status"].as_str()) {
                    (Some("ping"), _) => continue,
                    (_, Some("error")) => {
                        return Seen::Error(message["error"]["code"].as_str().unwrap().into());
                    }
                    (Some("subscription"), _) if message["uid"] == "r" => {
                        let kind = message["event"].as_str().unwrap().to_string();
                        if kind == "refetch" {
                            return Seen::Refetch {
                                reason: message["reason"].as_str().unwrap().into(),
                            };
                        }
                        return Seen::Event {
                            kind,
                            data: message["data"].clone(),
                        };
                    }
                    _ => continue,
                }
            },
            Reader::Sse(stream) => match stream.next().await {
                None => Seen::Ended,
                Some(event) if event.event == "error" => {
                    Seen::Error(event.data["error"]["code"].as_str().unwrap().into())
                }
                Some(event) if event.event == "refetch" => Seen::Refetch {
                    reason: event.data["reason"].as_str().unwrap().into(),
                },
                Some(event) => Seen::Event {
                    kind: event.event.clone(),
                    data: event.data["data"].clone(),
                },
            },
        }
    }

    /// The WebSocket under a WebSocket reader.
    fn socket(&mut self) -> &mut Ws {
        match self {
            Reader::Ws(socket) => socket,
            Reader::Sse(_) => panic!("a stream has no socket"),
        }
    }

    /// Everything seen until the end.
    async fn until_end(&mut self) -> Vec<Seen> {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                Seen::Ended => return seen,
                other => seen.push(other),
            }
        }
    }
}

/// An admin watching articles: once it has an event, every reader's in-memory group had it
/// too (they are classified in the same step), so a reader's silence after it means something.
async fn watcher(rt: &Rt) -> Ws {
    let mut socket = ws_admin(rt).await;
    socket
        .subscribe(json!({"type": "subscribe", "collection": "articles", "uid": "w", "event": "create"}))
        .await;
    socket
}

/// Inserts an article and waits until `watcher` saw it; its id.
async fn insert(rt: &Rt, watcher: &mut Ws, title: &str, status: &str) -> i64 {
    rt.sql(&format!(
        "insert into articles (title, status, body) values ('{title}', '{status}', 'secret')"
    ))
    .await;
    let event = watcher.expect_event("create").await;
    realtime::ids(&event)[0]
}

/// The ids a seen create or update carries.
fn ids(seen: &Seen) -> Vec<i64> {
    match seen {
        Seen::Event { data, .. } => data
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["id"].as_i64().unwrap())
            .collect(),
        other => panic!("not an event: {other:?}"),
    }
}

/// A reader who may read articles' `fields` where `rule` holds (and notes), with its own role
/// and policy; their user id, role id, policy id, permission id and token.
struct Grant {
    user: String,
    role: String,
    policy: String,
    permission: i64,
    token: String,
}

async fn grant(rt: &Rt, email: &str, rule: Value, fields: &[&str]) -> Grant {
    let role = rt
        .post("/roles", json!({"name": format!("role of {email}")}))
        .await
        .data();
    let policy = rt
        .post(
            "/policies",
            json!({"name": format!("policy of {email}"), "app_access": false, "admin_access": false}),
        )
        .await
        .data();
    rt.post("/access", json!({"role": role["id"], "policy": policy["id"]}))
        .await
        .data();
    let permission = rt
        .post(
            "/permissions",
            json!({"policy": policy["id"], "collection": "articles", "action": "read",
                   "permissions": rule, "fields": fields}),
        )
        .await
        .data();
    rt.post(
        "/permissions",
        json!({"policy": policy["id"], "collection": "notes", "action": "read", "fields": ["*"]}),
    )
    .await
    .data();
    let user = rt
        .post(
            "/users",
            json!({"email": email, "password": "user-password", "role": role["id"]}),
        )
        .await
        .data();
    let token = realtime::login(rt, email, "user-password").await;
    Grant {
        user: user["id"].as_str().unwrap().into(),
        role: role["id"].as_str().unwrap().into(),
        policy: policy["id"].as_str().unwrap().into(),
        permission: permission["id"].as_i64().unwrap(),
        token,
    }
}

fn both() -> [Transport; 2] {
    [Transport::Ws, Transport::Sse]
}

#[actix_web::test]
async fn an_expired_socket_gets_nothing_until_it_authenticates_again_and_loses_nothing() {
    let rt = app(|c| c.auth.access_token_ttl = Duration::from_secs(2)).await;
    let mut watcher = watcher(&rt).await;
    let reader = grant(&rt, "expiring@example.com", json!({}), &["id", "title"]).await;
    let (mut socket, _) = Reader::open(&rt, Transport::Ws, &reader.token, "id,title").await;
    let before = insert(&rt, &mut watcher, "before", "draft").await;
    assert_eq!(ids(&socket.next().await), [before]);
    // The token runs out.
    assert_eq!(
        socket.socket().recv().await,
        json!({"type": "auth", "status": "error", "error": {"code": "TOKEN_EXPIRED", "message": "Token expired."}})
    );
    let held = insert(&rt, &mut watcher, "while expired", "draft").await;
    // Replies still come; the event does not (it would be queued before the pong).
    socket.socket().roundtrip("fence").await;
    // Authenticating again, as the same reader: what was held arrives, then live changes.
    let fresh = realtime::login(&rt, "expiring@example.com", "user-password").await;
    socket.socket().auth_token(&fresh).await;
    assert_eq!(ids(&socket.next().await), [held]);
    let after = insert(&rt, &mut watcher, "after", "draft").await;
    assert_eq!(ids(&socket.next().await), [after]);
    rt.finish().await;
}

#[actix_web::test]
async fn re_authenticating_as_someone_else_checks_every_subscription_again() {
    let rt = app(|c| c.auth.access_token_ttl = Duration::from_secs(2)).await;
    let mut watcher = watcher(&rt).await;
    let everything = grant(
        &rt,
        "everything@example.com",
        json!({}),
        &["id", "title", "status"],
    )
    .await;
    let published = grant(
        &rt,
        "published@example.com",
        json!({"status": {"_eq": "published"}}),
        &["id", "title"],
    )
    .await;
    let nothing = rt
        .post(
            "/users",
            json!({"email": "nothing@example.com", "password": "user-password"}),
        )
        .await
        .data();
    assert!(nothing["id"].is_string());
    let (mut reader, _) = Reader::open(&rt, Transport::Ws, &everything.token, "id,title").await;
    assert_eq!(reader.socket().recv().await["error"]["code"], "TOKEN_EXPIRED");
    // Held for the first reader, who may read drafts; the next one may not.
    insert(&rt, &mut watcher, "a draft", "draft").await;
    // (Tokens live 2 s here: a fresh one.)
    let _ = published.token;
    let fresh = realtime::login(&rt, "published@example.com", "user-password").await;
    reader.socket().auth_token(&fresh).await;
    assert_eq!(
        reader.next().await,
        Seen::Refetch {
            reason: "auth".into()
        }
    );
    insert(&rt, &mut watcher, "another draft", "draft").await;
    let shown = insert(&rt, &mut watcher, "published", "published").await;
    assert_eq!(
        reader.next().await,
        Seen::Event {
            kind: "create".into(),
            data: json!([{"id": shown, "title": "published"}])
        }
    );
    // And as someone who may read nothing: the subscription ends.
    let token = realtime::login(&rt, "nothing@example.com", "user-password").await;
    reader.socket().auth_token(&token).await;
    assert_eq!(reader.next().await, Seen::Error("FORBIDDEN".into()));
    rt.finish().await;
}

#[actix_web::test]
async fn an_expired_stream_ends_and_resumes_with_a_fresh_token() {
    let rt = app(|c| c.auth.access_token_ttl = Duration::from_secs(2)).await;
    let mut watcher = watcher(&rt).await;
    let reader = grant(&rt, "stream@example.com", json!({}), &["id", "title"]).await;
    let mut stream = realtime::sse_with(
        &rt,
        "collection=articles&fields=id,title",
        Some(&reader.token),
        None,
    )
    .await;
    stream.expect("init").await;
    let first = insert(&rt, &mut watcher, "first", "draft").await;
    assert_eq!(stream.expect("create").await.ids(), [first]);
    let last_id = stream.last_id.clone().unwrap();
    // The token ends the stream; what follows is committed while no stream is open.
    let ended = stream.expect("error").await;
    assert_eq!(ended.data["error"]["code"], "TOKEN_EXPIRED");
    assert!(stream.next().await.is_none(), "the stream ends");
    let missed = insert(&rt, &mut watcher, "missed", "draft").await;
    let fresh = realtime::login(&rt, "stream@example.com", "user-password").await;
    let mut resumed = realtime::sse_with(
        &rt,
        "collection=articles&fields=id,title",
        Some(&fresh),
        Some(&last_id),
    )
    .await;
    assert_eq!(resumed.expect("create").await.ids(), [missed]);
    rt.finish().await;
}

/// A change to the reader or their rights, made as the admin; what it should do.
struct Case {
    name: &'static str,
    change: fn(&Grant) -> Change,
    outcome: Outcome,
}

enum Change {
    Rest(Method, String, Option<Value>),
    Sql(String),
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Their credentials stop working: everything ends.
    Revoked,
    /// They may no longer read articles: the subscription ends (the stream, for SSE).
    Forbidden,
    /// They still read articles, as the new rules say: drafts are hidden, `title` is gone.
    Narrowed,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "user suspended",
            change: |g| {
                Change::Rest(
                    Method::PATCH,
                    format!("/users/{}", g.user),
                    Some(json!({"status": "suspended"})),
                )
            },
            outcome: Outcome::Revoked,
        },
        Case {
            name: "user deleted",
            change: |g| Change::Rest(Method::DELETE, format!("/users/{}", g.user), None),
            outcome: Outcome::Revoked,
        },
        Case {
            name: "user moved to a role with no rights",
            change: |g| {
                Change::Sql(format!(
                    "insert into directrix.roles (id, name) values (gen_random_uuid(), 'empty {0}'); \
                 update directrix.users set role = (select id from directrix.roles where name = 'empty {0}') \
                 where id = '{0}'",
                    g.user
                ))
            },
            outcome: Outcome::Forbidden,
        },
        Case {
            name: "permission deleted",
            change: |g| Change::Rest(Method::DELETE, format!("/permissions/{}", g.permission), None),
            outcome: Outcome::Forbidden,
        },
        Case {
            name: "access row deleted (psql)",
            change: |g| {
                Change::Sql(format!(
                    "delete from directrix.access where policy = '{}'",
                    g.policy
                ))
            },
            outcome: Outcome::Forbidden,
        },
        Case {
            name: "policy deleted",
            change: |g| Change::Rest(Method::DELETE, format!("/policies/{}", g.policy), None),
            outcome: Outcome::Forbidden,
        },
        Case {
            name: "role deleted",
            change: |g| Change::Sql(format!("delete from directrix.roles where id = '{}'", g.role)),
            outcome: Outcome::Forbidden,
        },
        Case {
            name: "permission narrowed",
            change: |g| {
                Change::Rest(
                    Method::PATCH,
                    format!("/permissions/{}", g.permission),
                    Some(json!({"permissions": {"status": {"_eq": "published"}}, "fields": ["id"]})),
                )
            },
            outcome: Outcome::Narrowed,
        },
    ]
}

async fn apply(rt: &Rt, change: Change) {
    match change {
        Change::Rest(method, path, body) => {
            let reply = rt.request(method, &path, body).await;
            assert!(reply.status.is_success(), "{path}: {}", reply.text);
        }
        Change::Sql(sql) => rt.sql(&sql).await,
    }
}

#[actix_web::test]
async fn every_access_change_reaches_open_subscriptions_before_the_next_event() {
    let rt = app(|_| {}).await;
    let mut watcher = watcher(&rt).await;
    for (n, case) in cases().into_iter().enumerate() {
        for transport in both() {
            let email = format!("case{n}-{transport:?}@example.com").to_lowercase();
            let grant = grant(&rt, &email, json!({}), &["id", "title", "status"]).await;
            // `*`: narrowed fields narrow what it reads (an explicit field no longer granted
            // would be refused instead, as in a read).
            let (mut reader, _) = Reader::open(&rt, transport, &grant.token, "*").await;
            let before = insert(&rt, &mut watcher, "before", "draft").await;
            assert_eq!(
                ids(&reader.next().await),
                [before],
                "{}: {transport:?}",
                case.name
            );
            apply(&rt, (case.change)(&grant)).await;
            // Committed after the change: judged by the new rights only.
            let draft = insert(&rt, &mut watcher, "after, draft", "draft").await;
            let published = insert(&rt, &mut watcher, "after, published", "published").await;
            let what = format!("{}: {transport:?}", case.name);
            match (&case.outcome, transport) {
                (Outcome::Narrowed, _) => {
                    assert_eq!(
                        reader.next().await,
                        Seen::Event {
                            kind: "create".into(),
                            data: json!([{"id": published}])
                        },
                        "{what}: the draft {draft} is hidden, title is gone"
                    );
                }
                (Outcome::Forbidden, Transport::Ws) => {
                    assert_eq!(reader.next().await, Seen::Error("FORBIDDEN".into()), "{what}");
                    // The connection stays, with nothing more for that subscription.
                    reader.socket().roundtrip("still open").await;
                }
                (Outcome::Forbidden, Transport::Sse) => {
                    assert_eq!(
                        reader.until_end().await,
                        [Seen::Error("FORBIDDEN".into())],
                        "{what}"
                    );
                }
                (Outcome::Revoked, Transport::Ws) => {
                    let seen = reader.until_end().await;
                    assert_eq!(seen[0], Seen::Error("FORBIDDEN".into()), "{what}: {seen:?}");
                    assert_eq!(seen.len(), 2, "{what}: then the auth error: {seen:?}");
                    assert!(
                        matches!(&seen[1], Seen::Error(code) if code != "FORBIDDEN"),
                        "{what}: {seen:?}"
                    );
                }
                (Outcome::Revoked, Transport::Sse) => {
                    let seen = reader.until_end().await;
                    assert_eq!(seen.len(), 1, "{what}: {seen:?}");
                    assert!(matches!(&seen[0], Seen::Error(_)), "{what}: {seen:?}");
                }
            }
        }
    }
    rt.finish().await;
}

#[actix_web::test]
async fn a_new_static_token_ends_sessions_that_used_the_old_one() {
    let rt = app(|_| {}).await;
    let mut watcher = watcher(&rt).await;
    let grant = grant(&rt, "static@example.com", json!({}), &["id", "title"]).await;
    let old = "the-first-static-token-of-this-reader";
    for transport in both() {
        rt.patch(&format!("/users/{}", grant.user), json!({"token": old}))
            .await
            .data();
        let (mut reader, _) = Reader::open(&rt, transport, old, "id,title").await;
        let before = insert(&rt, &mut watcher, "before", "draft").await;
        assert_eq!(ids(&reader.next().await), [before]);
        rt.patch(
            &format!("/users/{}", grant.user),
            json!({"token": format!("{old}-{transport:?}")}),
        )
        .await
        .data();
        insert(&rt, &mut watcher, "after", "draft").await;
        let seen = reader.until_end().await;
        assert!(
            !seen.is_empty() && seen.iter().all(|s| matches!(s, Seen::Error(_))),
            "{transport:?}: {seen:?}"
        );
    }
    let _ = ADMIN_TOKEN;
    rt.finish().await;
}
