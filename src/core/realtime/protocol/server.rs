//! Server → client texts, byte for byte as Directus's `JSON.stringify` writes them: keys in
//! the order its handlers build the objects, `uid` last where it is appended last.

use serde_json::{Map, Value, json};

use crate::core::pgoutput::Lsn;

fn text(map: Map<String, Value>) -> String {
    Value::Object(map).to_string()
}

fn with_uid(mut map: Map<String, Value>, uid: Option<&Value>) -> String {
    if let Some(uid) = uid {
        map.insert("uid".into(), uid.clone());
    }
    text(map)
}

/// `WebSocketError.toMessage()`: `{"type","status":"error","error":{"code","message"},"uid"?}`.
pub fn error(reply_type: &str, code: &str, message: &str, uid: Option<&Value>) -> String {
    let mut map = Map::new();
    map.insert("type".into(), json!(reply_type));
    map.insert("status".into(), json!("error"));
    map.insert("error".into(), json!({"code": code, "message": message}));
    with_uid(map, uid)
}

/// `authenticationSuccess`: `{"type":"auth","status":"ok","uid"?,"refresh_token"?}`; the
/// refresh token is there after an email/password or refresh-token login.
pub fn auth_ok(uid: Option<&Value>, refresh_token: Option<&str>) -> String {
    let mut map = Map::new();
    map.insert("type".into(), json!("auth"));
    map.insert("status".into(), json!("ok"));
    if let Some(uid) = uid {
        map.insert("uid".into(), uid.clone());
    }
    if let Some(token) = refresh_token {
        map.insert("refresh_token".into(), json!(token));
    }
    text(map)
}

/// Any failed `auth` message while connected; the connection is then closed unless the auth
/// mode is `public`.
pub fn auth_failed(uid: Option<&Value>) -> String {
    error("auth", "AUTH_FAILED", "Authentication failed.", uid)
}

/// Handshake mode: the first message wasn't a valid, successful `auth`. Sent, then closed.
pub fn auth_handshake_failed() -> String {
    error("auth", "AUTH_FAILED", "Authentication handshake failed.", None)
}

/// The token's `exp` passed: accountability is dropped and the client has the auth timeout to
/// send a new `auth`.
pub fn token_expired() -> String {
    error("auth", "TOKEN_EXPIRED", "Token expired.", None)
}

/// No `auth` came within the timeout after [`token_expired`]; closed unless mode is `public`.
pub fn auth_timeout() -> String {
    error("auth", "AUTH_TIMEOUT", "Authentication timed out.", None)
}

/// The per-connection rate limiter refused a message (`msBeforeNext`); the message is dropped,
/// the connection stays.
pub fn requests_exceeded(retry_after_ms: u64) -> String {
    let message = format!("Too many messages, retry after {retry_after_ms}ms.");
    error("server", "REQUESTS_EXCEEDED", &message, None)
}

/// `subscribe` to a collection that doesn't exist or isn't readable.
pub fn invalid_collection(reply_type: &str, uid: Option<&Value>) -> String {
    let message = "The provided collection does not exists or is not accessible.";
    error(reply_type, "INVALID_COLLECTION", message, uid)
}

/// `items` on a system collection (Directus's handler refuses those before anything else).
pub fn system_collection(reply_type: &str, uid: Option<&Value>) -> String {
    let message = "Cannot trigger an action on a system collection.";
    error(reply_type, "INVALID_COLLECTION", message, uid)
}

/// An `items` delete with neither a truthy `id`, `ids` nor a truthy `query`.
pub fn items_delete_needs_target(uid: Option<&Value>) -> String {
    let message = "Either 'ids', 'id' or 'query' is required for a DELETE request.";
    error("items", "INVALID_PAYLOAD", message, uid)
}

/// The heartbeat, sent every `WEBSOCKETS_HEARTBEAT_PERIOD` seconds.
pub fn ping() -> String {
    "{\"type\":\"ping\"}".into()
}

/// The answer to a client `ping`, echoing its `uid` as sent.
pub fn pong(uid: Option<&Value>) -> String {
    let mut map = Map::new();
    map.insert("type".into(), json!("pong"));
    with_uid(map, uid)
}

/// The reply to `subscribe`: `{"type":"subscription","event":"init","data"?,"meta"?,"uid"?}`.
/// Directus sends `data` only for subscriptions without an `event` filter (with one, just
/// `event: init`), and `meta` only when the query asks for it. Pass
/// [`super::Subscribe::reply_uid`] as `uid`: subscription messages carry the uid as a string.
pub fn subscription_init(uid: Option<&Value>, data: Option<&Value>, meta: Option<&Value>) -> String {
    let mut map = Map::new();
    map.insert("type".into(), json!("subscription"));
    map.insert("event".into(), json!("init"));
    if let Some(data) = data {
        map.insert("data".into(), data.clone());
    }
    if let Some(meta) = meta {
        map.insert("meta".into(), meta.clone());
    }
    with_uid(map, uid)
}

/// The reply to `unsubscribe`, echoing that message's `uid` as sent (number stays number).
pub fn unsubscribed(uid: Option<&Value>) -> String {
    let mut map = Map::new();
    map.insert("type".into(), json!("subscription"));
    map.insert("event".into(), json!("unsubscribe"));
    with_uid(map, uid)
}

/// The reply to `items`: `{"type":"items","data","meta"?,"uid"?}`. For deletes `data` is the
/// `id` or `ids` as sent, or the keys deleted by query.
pub fn items(uid: Option<&Value>, data: &Value, meta: Option<&Value>) -> String {
    let mut map = Map::new();
    map.insert("type".into(), json!("items"));
    map.insert("data".into(), data.clone());
    if let Some(meta) = meta {
        map.insert("meta".into(), meta.clone());
    }
    with_uid(map, uid)
}

/// Why a subscriber must read again instead of continuing from changes (ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefetchReason {
    /// Its `since` position is older than the retained changes.
    Gap,
    /// It fell too far behind and its queue was dropped.
    Overflow,
    /// The table was truncated.
    Truncate,
}

impl RefetchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefetchReason::Gap => "gap",
            RefetchReason::Overflow => "overflow",
            RefetchReason::Truncate => "truncate",
        }
    }
}

/// Ours: `{"type":"subscription","event":"refetch","reason","collection","lsn"?,"uid"?}`.
/// The text is [`crate::core::realtime::frame::refetch`]'s; this only types the reason.
pub fn refetch(reason: RefetchReason, collection: &str, lsn: Option<Lsn>, uid: Option<&Value>) -> String {
    crate::core::realtime::frame::refetch(reason.as_str(), collection, lsn, uid)
}
