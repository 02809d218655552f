//! Client → server messages as the session acts on them, and [`parse`], which validates each
//! one as Directus's handlers do and in the same order (JSON, the `auth` short cut, the
//! `WebSocketMessage` envelope, then the handler's own schema).

use serde_json::{Map, Value};

use super::ProtocolError;
use super::js::{js_number, js_string, truthy};
use super::schemas;
use super::zod::{Issue, Seg};
use crate::core::pgoutput::Lsn;
use crate::core::realtime::shape::EventKind;

/// One client message.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Auth(AuthRequest),
    Subscribe(Subscribe),
    /// `uid` absent: drop every subscription of the connection.
    Unsubscribe {
        uid: Option<Value>,
    },
    Items(ItemsRequest),
    Ping {
        uid: Option<Value>,
    },
    /// The answer to a server `ping`. Directus has no handler for it: any message proves
    /// liveness, and this one gets no reply.
    Pong {
        uid: Option<Value>,
    },
    Collab(CollabRequest),
    /// A `type` no built-in handler knows. Directus hands it to extension hooks; with none
    /// installed nothing answers, so the session sends nothing.
    Custom {
        kind: String,
        uid: Option<Value>,
        message: Map<String, Value>,
    },
}

/// An `auth` message. Directus tries every credential present, in this order, whichever union
/// branch let the message through: a failure in any step fails the whole request
/// (`AUTH_FAILED`); a later access token replaces an earlier one; the reply carries the
/// refresh token of the last login or refresh step.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthRequest {
    pub uid: Option<Value>,
    pub steps: Vec<AuthStep>,
}

/// One way of authenticating, as `authenticateConnection` tries them.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthStep {
    /// `email` + `password`. There is no `otp`: Directus calls `login` without options, so a
    /// user with two-factor auth can't log in over the socket.
    Login {
        email: String,
        password: String,
    },
    Refresh {
        refresh_token: String,
    },
    AccessToken {
        access_token: String,
    },
    /// A credential key whose value isn't a string (allowed through because another branch
    /// matched). Directus still tries it, and it fails.
    Unusable,
}

/// A `subscribe` message.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    pub uid: Option<Value>,
    pub collection: String,
    pub event: Option<EventKind>,
    /// The one item subscribed to, as sent (string or number).
    pub item: Option<Value>,
    /// The Directus query, unparsed.
    pub query: Option<Map<String, Value>>,
    /// Ours: resume after this WAL position instead of reading the current state.
    pub since: Option<Lsn>,
    /// Ours: what to do when this subscriber falls behind: `coalesce`, `resync` or
    /// `disconnect` (default: the server's `REALTIME_SLOW_CONSUMER`).
    pub backpressure: Option<String>,
}

impl Subscribe {
    /// The `uid` the subscription's messages (init and events) carry: Directus keeps
    /// `String(uid)`, so a numeric uid comes back as a string. Unsubscribe replies echo the
    /// unsubscribe message's own uid instead.
    pub fn reply_uid(&self) -> Option<Value> {
        self.uid.as_ref().map(|uid| Value::String(js_string(uid)))
    }

    /// `String(item)`: Directus compares it with event keys as text.
    pub fn item_key(&self) -> Option<String> {
        self.item.as_ref().map(js_string)
    }
}

/// An `items` message.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemsRequest {
    pub uid: Option<Value>,
    pub collection: String,
    pub action: ItemsAction,
}

/// What an `items` message asks for. `query` is `None` when absent or falsy; a truthy value
/// that isn't an object is `Some` of an empty query, which is what `sanitizeQuery` makes of it.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemsAction {
    /// `data`: an item or an array of items; `None` when absent (Directus then fails in the
    /// service).
    Create {
        data: Option<Value>,
        query: Option<Map<String, Value>>,
    },
    Read {
        target: Target,
        query: Option<Map<String, Value>>,
    },
    /// With [`Target::All`] Directus upserts a singleton, updates a batch when `data` is an
    /// array, or else updates by `query`.
    Update {
        target: Target,
        data: Option<Value>,
        query: Option<Map<String, Value>>,
    },
    /// With [`Target::All`] and no `query` the session answers
    /// [`super::items_delete_needs_target`] (after checking the collection, as Directus does).
    Delete {
        target: Target,
        query: Option<Map<String, Value>>,
    },
}

/// Which items: Directus tests `if (message.id)`, then `if (message.ids)`, so a falsy `id`
/// (`0`, `""`) falls through to `ids`, and an empty `ids` array still counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    One(Value),
    Many(Vec<Value>),
    All,
}

/// The collab member colors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    Purple,
    Pink,
    Blue,
    Green,
    Yellow,
    Orange,
    Red,
}

impl Color {
    pub const ALL: [Color; 7] = [
        Color::Purple,
        Color::Pink,
        Color::Blue,
        Color::Green,
        Color::Yellow,
        Color::Orange,
        Color::Red,
    ];

    pub fn as_str(self) -> &'static str {
        schemas::COLORS[self as usize]
    }

    pub fn parse(text: &str) -> Option<Color> {
        Color::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// A collab `join`: the room is the item (or item version) being edited.
#[derive(Debug, Clone, PartialEq)]
pub struct CollabJoin {
    pub collection: String,
    /// String, number, or null for a singleton.
    pub item: Value,
    pub version: Option<String>,
    /// The color asked for; granted if no member has it.
    pub color: Option<Color>,
    /// Pending changes to start a new room with (ignored when the room exists).
    pub initial_changes: Option<Map<String, Value>>,
}

/// A collab message (`type: "collab"`), by action.
#[derive(Debug, Clone, PartialEq)]
pub enum CollabRequest {
    Join(CollabJoin),
    Leave {
        room: String,
    },
    /// `changes: None` (the key absent) clears the field's pending change; `Some(Null)` sets
    /// it to null.
    Update {
        room: String,
        field: String,
        changes: Option<Value>,
    },
    UpdateAll {
        room: String,
        changes: Option<Map<String, Value>>,
    },
    Focus {
        room: String,
        field: Option<String>,
    },
    Discard {
        room: String,
    },
    /// Ours: relay `data` to the other members of the room, keep nothing.
    Broadcast {
        room: String,
        data: Value,
    },
}

impl CollabRequest {
    /// The `action` name, which collab errors echo as `trigger`.
    pub fn action(&self) -> &'static str {
        match self {
            CollabRequest::Join(_) => "join",
            CollabRequest::Leave { .. } => "leave",
            CollabRequest::Update { .. } => "update",
            CollabRequest::UpdateAll { .. } => "updateAll",
            CollabRequest::Focus { .. } => "focus",
            CollabRequest::Discard { .. } => "discard",
            CollabRequest::Broadcast { .. } => "broadcast",
        }
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value = parse_json(text).ok_or_else(ProtocolError::unparseable)?;
    // Directus routes on `String(message.type)` before any validation, so `auth` messages skip
    // the envelope check.
    if message_type(&value).as_deref() == Some("auth") {
        return parse_auth(&value).map(ClientMessage::Auth);
    }
    let issues = schemas::BASE.check(Some(&value));
    let Value::Object(map) = value else {
        return Err(ProtocolError::schema("server", &issues));
    };
    if !issues.is_empty() {
        return Err(ProtocolError::schema("server", &issues));
    }
    let uid = map.get("uid").cloned().map(js_number);
    let kind = map
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match kind.as_str() {
        "ping" => Ok(ClientMessage::Ping { uid }),
        "pong" => Ok(ClientMessage::Pong { uid }),
        "subscribe" => parse_subscribe(&map, uid).map(ClientMessage::Subscribe),
        "unsubscribe" => {
            // Both halves of the subscribe handler answer schema errors as `subscribe`; `uid`
            // passed the envelope check, so this one can't fail.
            ProtocolError::check("subscribe", &schemas::UNSUBSCRIBE, &map)?;
            Ok(ClientMessage::Unsubscribe { uid })
        }
        "items" => parse_items(&map, uid).map(ClientMessage::Items),
        "collab" => parse_collab(&map).map(ClientMessage::Collab),
        _ => Ok(ClientMessage::Custom {
            kind,
            uid,
            message: map,
        }),
    }
}

/// `parse` for a frame as bytes: Directus decodes with `Buffer.toString()`, which replaces
/// invalid UTF-8 instead of refusing it.
pub fn parse_bytes(bytes: &[u8]) -> Result<ClientMessage, ProtocolError> {
    parse(&String::from_utf8_lossy(bytes))
}

/// `parseJSON` from `@directus/utils`: `JSON.parse`, dropping `__proto__` keys.
fn parse_json(text: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    if text.contains("__proto__") {
        strip_proto(&mut value);
    }
    Some(value)
}

fn strip_proto(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.shift_remove("__proto__");
            map.values_mut().for_each(strip_proto);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_proto),
        _ => {}
    }
}

/// `getMessageType`: `String(message.type)` for an object, nothing for anything else.
fn message_type(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => Some(
            map.get("type")
                .map(js_string)
                .unwrap_or_else(|| "undefined".into()),
        ),
        _ => None,
    }
}

fn parse_auth(value: &Value) -> Result<AuthRequest, ProtocolError> {
    let map = value.as_object().cloned().unwrap_or_default();
    let string = |key: &str| map.get(key).and_then(Value::as_str);
    let uid_ok = matches!(map.get("uid"), None | Some(Value::String(_) | Value::Number(_)));
    let login_ok = string("email").is_some_and(schemas::is_email) && string("password").is_some();
    let branch_ok = login_ok || string("access_token").is_some() || string("refresh_token").is_some();
    if string("type") != Some("auth") || !uid_ok || !branch_ok {
        // Directus drops the message without a word (`catch { /* ignore errors */ }`); the
        // text is only for logs.
        return Err(ProtocolError::auth_ignored());
    }
    let mut steps = Vec::new();
    if map.contains_key("email") && map.contains_key("password") {
        steps.push(match (string("email"), string("password")) {
            (Some(email), Some(password)) => AuthStep::Login {
                email: email.into(),
                password: password.into(),
            },
            _ => AuthStep::Unusable,
        });
    }
    if map.contains_key("refresh_token") {
        steps.push(match string("refresh_token") {
            Some(token) => AuthStep::Refresh {
                refresh_token: token.into(),
            },
            None => AuthStep::Unusable,
        });
    }
    if map.contains_key("access_token") {
        steps.push(match string("access_token") {
            Some(token) => AuthStep::AccessToken {
                access_token: token.into(),
            },
            None => AuthStep::Unusable,
        });
    }
    Ok(AuthRequest {
        uid: map.get("uid").cloned().map(js_number),
        steps,
    })
}

fn parse_subscribe(map: &Map<String, Value>, uid: Option<Value>) -> Result<Subscribe, ProtocolError> {
    ProtocolError::check("subscribe", &schemas::SUBSCRIBE, map)?;
    let since = match map.get("since").and_then(Value::as_str) {
        None => None,
        Some(text) => Some(text.parse::<Lsn>().map_err(|_| {
            let issue = Issue::Custom {
                message: "Invalid input: expected a WAL position like \"0/16B3748\"".into(),
                path: vec![Seg::Key("since")],
            };
            ProtocolError::schema("subscribe", &[issue])
        })?),
    };
    Ok(Subscribe {
        uid,
        collection: string(map, "collection"),
        event: map
            .get("event")
            .and_then(Value::as_str)
            .and_then(EventKind::parse),
        item: map.get("item").cloned(),
        query: map.get("query").and_then(Value::as_object).cloned(),
        since,
        backpressure: map
            .get("backpressure")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn parse_items(map: &Map<String, Value>, uid: Option<Value>) -> Result<ItemsRequest, ProtocolError> {
    ProtocolError::check("items", &schemas::ITEMS, map)?;
    let query = map.get("query").filter(|q| truthy(q)).map(|q| match q {
        Value::Object(query) => query.clone(),
        _ => Map::new(),
    });
    let target = match (map.get("id"), map.get("ids")) {
        (Some(id), _) if truthy(id) => Target::One(id.clone()),
        (_, Some(Value::Array(ids))) => Target::Many(ids.clone()),
        _ => Target::All,
    };
    let data = map.get("data").cloned();
    let action = match map.get("action").and_then(Value::as_str) {
        Some("create") => ItemsAction::Create { data, query },
        Some("read") => ItemsAction::Read { target, query },
        Some("update") => ItemsAction::Update { target, data, query },
        _ => ItemsAction::Delete { target, query },
    };
    Ok(ItemsRequest {
        uid,
        collection: string(map, "collection"),
        action,
    })
}

fn parse_collab(map: &Map<String, Value>) -> Result<CollabRequest, ProtocolError> {
    let action = map.get("action").and_then(Value::as_str);
    let Some(schema) = action.and_then(schemas::collab) else {
        let issue = Issue::NoDiscriminator {
            discriminator: "action",
            path: vec![Seg::Key("action")],
        };
        return Err(ProtocolError::collab(&[issue], map.get("action")));
    };
    let issues = schema.check(Some(&Value::Object(map.clone())));
    if !issues.is_empty() {
        return Err(ProtocolError::collab(&issues, map.get("action")));
    }
    let room = string(map, "room");
    Ok(match action.unwrap_or_default() {
        "join" => CollabRequest::Join(CollabJoin {
            collection: string(map, "collection"),
            item: map.get("item").cloned().unwrap_or(Value::Null),
            version: map.get("version").and_then(Value::as_str).map(String::from),
            color: map.get("color").and_then(Value::as_str).and_then(Color::parse),
            initial_changes: map.get("initialChanges").and_then(Value::as_object).cloned(),
        }),
        "leave" => CollabRequest::Leave { room },
        "update" => CollabRequest::Update {
            room,
            field: string(map, "field"),
            changes: map.get("changes").cloned(),
        },
        "updateAll" => CollabRequest::UpdateAll {
            room,
            changes: map.get("changes").and_then(Value::as_object).cloned(),
        },
        "focus" => CollabRequest::Focus {
            room,
            field: map.get("field").and_then(Value::as_str).map(String::from),
        },
        "discard" => CollabRequest::Discard { room },
        _ => CollabRequest::Broadcast {
            room,
            data: map.get("data").cloned().unwrap_or(Value::Null),
        },
    })
}

/// A string the schema has already checked.
fn string(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
