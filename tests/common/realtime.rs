//! What the realtime tests share: an app with realtime on (whose replication slot is dropped at
//! the end, since slots are cluster-wide and pin WAL), an SSE reader over reqwest, and a
//! WebSocket client over tokio-tungstenite.
//!
//! Included by the realtime test binaries with `#[path = "common/realtime.rs"] mod realtime;`
//! next to `mod common;`, so the other binaries don't build it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use directrix::config::Config;
use directrix::db::replication as slots;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{self, ADMIN_TOKEN, TestApp};

/// How long any single expected thing may take before a test gives up (never an assertion
/// about speed: only a bound on a hang).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A test configuration with realtime on.
pub fn config(database: &str) -> Config {
    let mut config = common::test_config(database);
    config.realtime.enabled = true;
    config.realtime.status_interval = Duration::from_millis(100);
    config.auth.login_stall = Duration::from_millis(1);
    config.rate_limits.auth.enabled = false;
    config
}

/// A running app with realtime on, and the slot it streams.
pub struct Rt {
    pub app: TestApp,
    pub config: Config,
    pub slot: String,
}

impl std::ops::Deref for Rt {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// Starts an app with `config` (realtime must be on) and waits until it streams its slot.
pub async fn start(config: Config) -> Rt {
    assert!(config.realtime.enabled, "realtime tests run with realtime on");
    let app = common::spawn_app_with(config.clone()).await;
    let slot = slots::slot_name(&config.realtime, &app.database);
    let rt = Rt { app, config, slot };
    rt.wait_streaming().await;
    rt
}

/// A fresh database, an app with realtime on, the default test tweaks applied by `tweak`.
pub async fn spawn(tweak: impl FnOnce(&mut Config)) -> Rt {
    let database = common::fresh_database().await;
    let mut config = config(&database);
    tweak(&mut config);
    start(config).await
}

impl Rt {
    /// Until `/server/health` says the consumer streams.
    pub async fn wait_streaming(&self) {
        self.app
            .eventually("the replication consumer streams", || async {
                self.app.get("/server/health").await.json()["checks"]["realtime:connected"][0]
                    ["observedValue"]
                    == json!(true)
            })
            .await;
    }

    /// A pool on the app's database, for catalog queries.
    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&common::database_url(&self.app.database))
            .await
            .unwrap()
    }

    /// A psql-like session of its own on the app's database.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&common::database_url(&self.app.database))
            .await
            .unwrap()
    }

    /// Runs `sql` and waits until the schema snapshot knows `collection` (DDL reaches the
    /// snapshot asynchronously).
    pub async fn create(&self, sql: &str, collection: &str) {
        self.app.sql(sql).await;
        let path = format!("/items/{collection}?limit=1");
        self.app
            .eventually("the table is in the snapshot", || async {
                self.app.get(&path).await.status == 200
            })
            .await;
    }

    /// The pid of the walsender streaming this app's slot.
    pub async fn walsender_pid(&self, pool: &PgPool) -> Option<i32> {
        sqlx::query_scalar("select active_pid from pg_replication_slots where slot_name = $1")
            .bind(&self.slot)
            .fetch_optional(pool)
            .await
            .unwrap()
            .flatten()
    }

    /// Stops the app and drops its slot.
    pub async fn finish(self) {
        let Rt { app, slot, .. } = self;
        let database = app.database.clone();
        app.stop().await;
        drop_slot(&database, &slot).await;
    }
}

/// Drops `slot` (waiting for its consumer to let go).
pub async fn drop_slot(database: &str, slot: &str) {
    let pool = PgPool::connect(&common::database_url(database)).await.unwrap();
    slots::drop_slot(&pool, slot).await.unwrap();
    pool.close().await;
}

/// Until no process streams `slot`.
pub async fn wait_slot_released(pool: &PgPool, slot: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let active: Option<bool> =
            sqlx::query_scalar("select active from pg_replication_slots where slot_name = $1")
                .bind(slot)
                .fetch_optional(pool)
                .await
                .unwrap();
        if active != Some(true) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "slot {slot} still active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs in; the access token.
pub async fn login(app: &TestApp, email: &str, password: &str) -> String {
    let login = app
        .send(
            Method::POST,
            "/auth/login",
            Some(json!({"email": email, "password": password})),
            None,
        )
        .await
        .data();
    login["access_token"].as_str().unwrap().to_string()
}

/// Through the REST API, as the admin: a role with a policy holding `permissions` (each
/// `{"collection","action","permissions","fields"}`), and a user with that role; their token.
pub async fn user_with(app: &TestApp, email: &str, permissions: Value) -> String {
    let role = app
        .post("/roles", json!({"name": format!("role of {email}")}))
        .await
        .data();
    let policy = app
        .post(
            "/policies",
            json!({"name": format!("policy of {email}"), "app_access": false, "admin_access": false}),
        )
        .await
        .data();
    app.post("/access", json!({"role": role["id"], "policy": policy["id"]}))
        .await
        .data();
    for permission in permissions.as_array().unwrap() {
        let mut permission = permission.clone();
        permission["policy"] = policy["id"].clone();
        app.post("/permissions", permission).await.data();
    }
    app.post(
        "/users",
        json!({"email": email, "password": "user-password", "role": role["id"]}),
    )
    .await
    .data();
    login(app, email, "user-password").await
}

// ---------------------------------------------------------------------------------------------
// SSE

/// One SSE event block.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

impl SseEvent {
    /// The `data` array's keys (`id` of rows, or the keys themselves for a delete).
    pub fn keys(&self) -> Vec<Value> {
        self.data["data"]
            .as_array()
            .unwrap_or_else(|| panic!("no data array: {self:?}"))
            .iter()
            .map(|item| match item {
                Value::Object(row) => row.get("id").cloned().unwrap_or(Value::Null),
                key => key.clone(),
            })
            .collect()
    }

    /// The keys as integers.
    pub fn ids(&self) -> Vec<i64> {
        self.keys().iter().map(|k| k.as_i64().unwrap()).collect()
    }
}

/// An open `/stream` response, read event by event.
pub struct Sse {
    res: reqwest::Response,
    buf: String,
    /// The last `id:` seen.
    pub last_id: Option<String>,
    /// Comment lines seen (`: keep-alive`, `: connected`).
    pub comments: Vec<String>,
}

/// The `/stream` request.
pub fn stream_request(
    app: &TestApp,
    query: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = app.client.get(format!("{}/stream?{query}", app.base));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    req
}

/// Opens a stream as the admin.
pub async fn sse(app: &TestApp, query: &str) -> Sse {
    sse_with(app, query, Some(ADMIN_TOKEN), None).await
}

/// Opens a stream; panics unless it is a 200 event stream.
pub async fn sse_with(app: &TestApp, query: &str, token: Option<&str>, last_event_id: Option<&str>) -> Sse {
    let res = stream_request(app, query, token, last_event_id)
        .send()
        .await
        .unwrap();
    Sse::open(res).await
}

impl Sse {
    /// Wraps a response; panics unless it is a 200 event stream.
    pub async fn open(res: reqwest::Response) -> Sse {
        let status = res.status();
        if status != 200 {
            let body = res.text().await.unwrap_or_default();
            panic!("stream refused: {status} {body}");
        }
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            res,
            buf: String::new(),
            last_id: None,
            comments: Vec::new(),
        }
    }

    fn take_block(&mut self) -> Option<String> {
        let end = self.buf.find("\n\n")?;
        let block = self.buf[..end].to_string();
        self.buf.drain(..end + 2);
        Some(block)
    }

    /// The next event, `None` at the end of the stream; panics after [`PATIENCE`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        match tokio::time::timeout(PATIENCE, self.read_event()).await {
            Ok(event) => event,
            Err(_) => panic!("no SSE event within {PATIENCE:?}"),
        }
    }

    /// The next event, which must come.
    pub async fn event(&mut self) -> SseEvent {
        self.next().await.expect("the stream ended")
    }

    /// The next event, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> SseEvent {
        let event = self.event().await;
        assert_eq!(event.event, kind, "{event:?}");
        event
    }

    async fn read_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(block) = self.take_block() {
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
            }
            match self.res.chunk().await {
                Ok(Some(bytes)) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let mut event = None;
        let mut id = None;
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(comment) = line.strip_prefix(':') {
                self.comments.push(comment.trim().to_string());
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v);
            } else if !line.is_empty() {
                panic!("unexpected SSE line: {line:?}");
            }
        }
        if event.is_none() && data.is_empty() {
            return None;
        }
        if id.is_some() {
            self.last_id = id.clone();
        }
        let data =
            serde_json::from_str(&data.join("\n")).unwrap_or_else(|e| panic!("data is JSON: {e}: {block}"));
        Some(SseEvent {
            event: event.unwrap_or_else(|| "message".into()),
            id,
            data,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client on `/websocket`.
pub struct Ws {
    pub stream: WsStream,
}

/// `ws://…/websocket?query`.
pub fn ws_url(app: &TestApp, query: &str) -> String {
    let base = app.base.replacen("http://", "ws://", 1);
    if query.is_empty() {
        format!("{base}/websocket")
    } else {
        format!("{base}/websocket?{query}")
    }
}

/// Connects; `Err(status)` when the upgrade is refused.
pub async fn ws_try(app: &TestApp, query: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut req = ws_url(app, query).into_client_request().unwrap();
    for (name, value) in headers {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((stream, _)) => Ok(Ws { stream }),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(other) => panic!("websocket connect failed: {other}"),
    }
}

/// Connects (no auth yet).
pub async fn ws(app: &TestApp) -> Ws {
    ws_try(app, "", &[]).await.expect("upgrade accepted")
}

/// Connects and authenticates as the admin (handshake).
pub async fn ws_admin(app: &TestApp) -> Ws {
    let mut ws = ws(app).await;
    ws.auth_token(ADMIN_TOKEN).await;
    ws
}

/// What a read gave.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    /// A close frame (with its code), or the end of the stream (`None`).
    Closed(Option<u16>),
}

impl Ws {
    pub async fn send(&mut self, value: Value) {
        self.stream.send(Message::text(value.to_string())).await.unwrap();
    }

    pub async fn send_message(
        &mut self,
        message: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stream.send(message).await
    }

    /// The next text message (heartbeat pings included) or the close; panics after
    /// [`PATIENCE`].
    pub async fn read(&mut self) -> Got {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no websocket message within {PATIENCE:?}"));
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Got::Json(
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
                    );
                }
                Some(Ok(Message::Binary(bytes))) => panic!("binary frame from the server: {bytes:?}"),
                Some(Ok(Message::Close(frame))) => return Got::Closed(frame.map(|f| f.code.into())),
                None | Some(Err(_)) => return Got::Closed(None),
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next JSON message, skipping heartbeat pings; panics if the socket closes.
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.read().await {
                Got::Json(value) if value == json!({"type": "ping"}) => {}
                Got::Json(value) => return value,
                Got::Closed(_) => panic!("the socket closed"),
            }
        }
    }

    /// Reads until the socket closes; the messages seen on the way (heartbeats included).
    pub async fn until_closed(&mut self) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            match self.read().await {
                Got::Json(value) => seen.push(value),
                Got::Closed(_) => return seen,
            }
        }
    }

    /// Reads until the socket closes; the messages seen on the way and the close code.
    pub async fn until_closed_with_code(&mut self) -> (Vec<Value>, Option<u16>) {
        let mut seen = Vec::new();
        loop {
            match self.read().await {
                Got::Json(value) => seen.push(value),
                Got::Closed(code) => return (seen, code),
            }
        }
    }

    /// Sends `auth` with an access token and expects `ok`.
    pub async fn auth_token(&mut self, token: &str) {
        self.send(json!({"type": "auth", "access_token": token})).await;
        let reply = self.recv().await;
        assert_eq!(reply, json!({"type": "auth", "status": "ok"}));
    }

    /// `ping` with a uid, expecting the `pong`: proves the connection serves, and that
    /// everything sent before was handled.
    pub async fn roundtrip(&mut self, uid: &str) {
        self.send(json!({"type": "ping", "uid": uid})).await;
        assert_eq!(self.recv().await, json!({"type": "pong", "uid": uid}));
    }

    /// Subscribes and returns the `init` message.
    pub async fn subscribe(&mut self, message: Value) -> Value {
        self.send(message).await;
        let init = self.recv().await;
        assert_eq!(init["type"], "subscription", "{init}");
        assert_eq!(init["event"], "init", "{init}");
        init
    }

    /// The next subscription event, which must be `kind`.
    pub async fn expect_event(&mut self, kind: &str) -> Value {
        let message = self.recv().await;
        assert_eq!(message["type"], "subscription", "{message}");
        assert_eq!(message["event"], kind, "{message}");
        message
    }
}

/// `data`'s ids (rows' `id`, or the keys of a delete).
pub fn ids(message: &Value) -> Vec<i64> {
    message["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array: {message}"))
        .iter()
        .map(|item| match item {
            Value::Object(row) => row["id"].as_i64().unwrap(),
            key => key.as_i64().unwrap(),
        })
        .collect()
}

/// Lets the public read every field of `collection`, and waits until the permission cache knows.
pub async fn grant_public_read(app: &TestApp, collection: &str) {
    let public = app
        .get("/access?filter[role][_null]=true&filter[user][_null]=true&fields=policy")
        .await
        .data();
    let policy = public[0]["policy"].clone();
    assert!(policy.is_string(), "{public}");
    app.post(
        "/permissions",
        json!({"policy": policy, "collection": collection, "action": "read", "fields": ["*"]}),
    )
    .await
    .data();
    // Access changes reach the permission cache by notification, a moment after the write.
    let path = format!("/items/{collection}");
    app.eventually("the public may read it", || async {
        app.send(Method::GET, &path, None, None).await.status == 200
    })
    .await;
}

/// The enter/leave matrix both transports run under a read permission: rows seeded, a reader
/// who sees published articles' `id`, `title` and `status`, the writes, and what the reader
/// sees of them.
pub mod enter_leave {
    use serde_json::{Value, json};

    /// Article 1 is published, 2 is a draft.
    pub const SEED: &str = "insert into articles (id, title, status, body) values \
        (1, 'pub one', 'published', 'secret 1'), (2, 'draft two', 'draft', 'secret 2'); \
        select setval('articles_id_seq', 2)";
    pub const SEED_ROWS: usize = 2;

    /// One transaction each.
    pub const WRITES: [&str; 9] = [
        // Visible from the start.
        "insert into articles (id, title, status, body) values (3, 'pub three', 'published', 'secret 3')",
        // Never visible: nothing.
        "insert into articles (id, title, status) values (4, 'draft four', 'draft')",
        // Into the permission: a create.
        "update articles set status = 'published' where id = 4",
        // Out of it: a delete.
        "update articles set status = 'draft' where id = 1",
        // A row that was never visible changes and goes: nothing.
        "update articles set title = 'draft two, edited' where id = 2",
        "delete from articles where id = 2",
        // Stays visible: an update, with only the permitted fields.
        "update articles set body = 'secret 3, edited', title = 'pub three, edited' where id = 3",
        // A marker everyone sees.
        "insert into articles (id, title, status) values (5, 'marker three', 'published')",
        "delete from articles where id = 3",
    ];

    /// The reader's read permission on `articles`.
    pub fn permissions() -> Value {
        json!([{"collection": "articles", "action": "read",
                "permissions": {"status": {"_eq": "published"}},
                "fields": ["id", "title", "status"]}])
    }

    fn row(id: i64, title: &str) -> Value {
        json!({"id": id, "title": title, "status": "published"})
    }

    /// The reader's `init` rows.
    pub fn init() -> Value {
        json!([row(1, "pub one")])
    }

    /// What the reader's unfiltered subscription gets of [`WRITES`], in order.
    pub fn seen() -> Vec<(&'static str, Value)> {
        vec![
            ("create", json!([row(3, "pub three")])),
            ("create", json!([row(4, "draft four")])),
            ("delete", json!([1])),
            ("update", json!([row(3, "pub three, edited")])),
            ("create", json!([row(5, "marker three")])),
            ("delete", json!([3])),
        ]
    }
}
