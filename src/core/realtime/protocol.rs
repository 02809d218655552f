//! Directus's WebSocket messages, exactly: [`parse`] turns a client frame into a
//! [`ClientMessage`] or the [`ProtocolError`] Directus would answer with, and the builders in
//! `server` write every server message as Directus's `JSON.stringify` does. The session actor
//! decides what to do; this module only knows the wire (`@directus/api` 34,
//! `websocket/{messages,errors,authenticate}.js`, `controllers/{base,rest}.js`, `handlers/*`).
//!
//! Behaviour worth knowing, all Directus's:
//! - Unparseable JSON → `{"type":"server",…,"code":"INVALID_PAYLOAD","message":"Unable to parse
//!   the incoming message."}`; a non-object or a non-string `type` → the same envelope with the
//!   zod text (`Validation error: …`).
//! - A malformed `auth` message gets no reply at all while connected ([`ProtocolError::reply`]
//!   is `None`); during the handshake anything but a successful `auth` is
//!   [`auth_handshake_failed`].
//! - Schema errors of a handler answer with the handler's type (`subscribe` also for
//!   `unsubscribe`, `items`) and carry no `uid`. Collab errors have their own shape:
//!   `{"action":"error","type":"collab","code","trigger"?,"message"}`.
//! - Subscription messages carry `String(uid)`: subscribe with `"uid":1`, receive `"uid":"1"`
//!   ([`Subscribe::reply_uid`]); `pong`, `unsubscribe`, `items` and `auth` echo the uid as sent.
//! - Unknown types ([`ClientMessage::Custom`]) go to extension hooks in Directus; with none,
//!   nothing answers.
//!
//! Ours, not Directus's: `since` on `subscribe` (resume after a WAL position), the
//! `refetch` subscription event ([`refetch`]), and the collab `broadcast` action. See
//! `docs/realtime-protocol.md` for every message with an example.

mod client;
mod js;
mod schemas;
mod server;
mod zod;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

pub use client::{
    AuthRequest, AuthStep, ClientMessage, CollabJoin, CollabRequest, Color, ItemsAction, ItemsRequest,
    Subscribe, Target, parse, parse_bytes,
};
pub use js::js_string;
pub use server::{
    RefetchReason, auth_failed, auth_handshake_failed, auth_ok, auth_timeout, error, invalid_collection,
    items, items_delete_needs_target, ping, pong, refetch, requests_exceeded, subscription_init,
    system_collection, token_expired, unsubscribed,
};

/// A client message Directus would refuse, with everything its reply needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reply_type} {code}: {message}")]
pub struct ProtocolError {
    /// The `type` of the reply: `server`, `auth`, `subscribe`, `items` or `collab`.
    pub reply_type: &'static str,
    /// The Directus error code, `INVALID_PAYLOAD` for every parse error.
    pub code: &'static str,
    /// The message text, as Directus writes it.
    pub message: String,
    /// The message's `uid`, when it could be read. [`ProtocolError::reply`] leaves it out, as
    /// Directus does for schema errors.
    pub uid: Option<Box<Value>>,
    /// For collab messages: the raw `action`, which the "collaborative editing is disabled"
    /// error echoes as `trigger` (Directus checks that before the schema).
    pub action: Option<Box<Value>>,
}

impl ProtocolError {
    fn unparseable() -> ProtocolError {
        ProtocolError {
            reply_type: "server",
            code: "INVALID_PAYLOAD",
            message: "Unable to parse the incoming message.".into(),
            uid: None,
            action: None,
        }
    }

    /// `WebSocketError.fromZodError(err, reply_type)`.
    fn schema(reply_type: &'static str, issues: &[zod::Issue]) -> ProtocolError {
        ProtocolError {
            reply_type,
            code: "INVALID_PAYLOAD",
            message: zod::validation_message(issues),
            uid: None,
            action: None,
        }
    }

    /// Checks `map` against `schema`, answering as `reply_type`.
    fn check(reply_type: &'static str, schema: &zod::Schema, map: &Map<String, Value>) -> Result<(), Self> {
        let issues = schema.check(Some(&Value::Object(map.clone())));
        if issues.is_empty() {
            return Ok(());
        }
        let mut err = ProtocolError::schema(reply_type, &issues);
        err.uid = map.get("uid").cloned().map(|uid| Box::new(js::js_number(uid)));
        Err(err)
    }

    fn auth_ignored() -> ProtocolError {
        ProtocolError {
            reply_type: "auth",
            code: "INVALID_PAYLOAD",
            message: "Not a valid auth message.".into(),
            uid: None,
            action: None,
        }
    }

    /// The collab handler's `InvalidPayloadError`, whose reason embeds zod's raw issue JSON.
    fn collab(issues: &[zod::Issue], action: Option<&Value>) -> ProtocolError {
        ProtocolError {
            reply_type: "collab",
            code: "INVALID_PAYLOAD",
            message: format!(
                "Invalid payload. Couldn't parse payload. {}.",
                zod::zod_message(issues)
            ),
            uid: None,
            action: action.cloned().map(Box::new),
        }
    }

    /// The text Directus sends back, or `None` where it stays silent (a malformed `auth`).
    pub fn reply(&self) -> Option<String> {
        match self.reply_type {
            "auth" => None,
            "collab" => Some(collab_error(self.code, None, &self.message)),
            reply_type => Some(error(reply_type, self.code, &self.message, None)),
        }
    }
}

/// The collab error shape (`Messenger.handleError`):
/// `{"action":"error","type":"collab","code","trigger"?,"message"}`, with no `room` or `order`.
/// `trigger` is the action that failed; parse errors have none.
pub fn collab_error(code: &str, trigger: Option<&Value>, message: &str) -> String {
    let mut map = Map::new();
    map.insert("action".into(), json!("error"));
    map.insert("type".into(), json!("collab"));
    map.insert("code".into(), json!(code));
    if let Some(trigger) = trigger {
        map.insert("trigger".into(), trigger.clone());
    }
    map.insert("message".into(), json!(message));
    Value::Object(map).to_string()
}

/// Sent, then the connection closed, for a collab message while collaborative editing is off
/// (the `collaborative_editing_enabled` setting). `trigger` is the message's raw `action`.
pub fn collab_disabled(trigger: Option<&Value>) -> String {
    let message = "Service \"collab\" is unavailable. Collaborative editing is disabled.";
    collab_error("SERVICE_UNAVAILABLE", trigger, message)
}

/// Sent to every member when collaborative editing is switched off while rooms are open (each
/// connection is then closed). Directus builds this one by hand: `type` before `action`, no
/// `trigger`.
pub fn collab_terminated() -> String {
    "{\"type\":\"collab\",\"action\":\"error\",\"code\":\"SERVICE_UNAVAILABLE\",\"message\":\"Collaborative editing is disabled\"}".into()
}
