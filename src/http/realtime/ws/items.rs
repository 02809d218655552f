//! The socket's `items` message: the same CRUD as `/items`, through the same handlers, so
//! permissions, validation, presets and errors cannot drift between the two transports.
//!
//! The REST handlers read their read-back query (`fields`, …) from the request URL; a socket
//! message carries it as `query`, so it is rendered into the URL of a request built for the
//! call. Nothing else of the request is read.

use actix_web::test::TestRequest;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::super::super::auth::Accountability;
use super::super::super::body::Json;
use super::super::super::route_target::{CollectionName, ItemKey};
use super::super::super::state::AppState;
use super::super::super::{items, items_write};
use crate::core::realtime::protocol::{self, ItemsAction, ItemsRequest, Target};
use crate::error::Error;

/// Runs an `items` message; the reply text.
pub async fn handle(state: &web::Data<AppState>, acc: &Accountability, req: ItemsRequest) -> String {
    let uid = req.uid.clone();
    // A missing collection goes on to the handlers, which refuse it exactly as they refuse an
    // existing one the caller may not use, so the reply does not tell the two apart (as REST).
    if req.collection.starts_with("directus_") {
        return protocol::system_collection("items", uid.as_ref());
    }
    if carries_nul(&req) {
        let err = Error::payload("Strings can't contain NUL characters");
        return super::error_reply("items", &err, uid.as_ref());
    }
    match run(state, acc, req).await {
        Ok(Reply::Data(data)) => protocol::items(uid.as_ref(), &data, None),
        Ok(Reply::NeedsTarget) => protocol::items_delete_needs_target(uid.as_ref()),
        Err(err) => super::error_reply("items", &err, uid.as_ref()),
    }
}

/// Whether the message's data or query holds a NUL character (see `http::body`).
fn carries_nul(req: &ItemsRequest) -> bool {
    use crate::core::payload::has_nul;
    let query = |q: &Option<Map<String, Value>>| {
        q.as_ref()
            .is_some_and(|q| q.iter().any(|(k, v)| k.contains('\0') || has_nul(v)))
    };
    match &req.action {
        ItemsAction::Create { data, query: q } => data.as_ref().is_some_and(has_nul) || query(q),
        ItemsAction::Read { query: q, .. } => query(q),
        ItemsAction::Update { data, query: q, .. } => data.as_ref().is_some_and(has_nul) || query(q),
        ItemsAction::Delete { query: q, .. } => query(q),
    }
}

enum Reply {
    Data(Value),
    NeedsTarget,
}

fn request(collection: &str, query: Option<&Map<String, Value>>) -> HttpRequest {
    let mut uri = format!("/items/{collection}");
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let pairs: Vec<String> = query
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    Value::String(s) => s.clone(),
                    // `"fields": ["id", "title"]` is `fields=id,title` in a URL (so `sort` too).
                    Value::Array(items) if items.iter().all(Value::is_string) => items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                format!("{}={}", encode(key), encode(&text))
            })
            .collect();
        uri.push('?');
        uri.push_str(&pairs.join("&"));
    }
    TestRequest::default().uri(&uri).to_http_request()
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn key_of(id: &Value) -> String {
    protocol::js_string(id)
}

async fn data_of(res: HttpResponse) -> Result<Value, Error> {
    let body = actix_web::body::to_bytes(res.into_body())
        .await
        .map_err(|_| Error::internal(anyhow::anyhow!("reading an items reply")))?;
    if body.is_empty() {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_slice(&body).map_err(Error::internal)?;
    Ok(value.get("data").cloned().unwrap_or(Value::Null))
}

async fn run(state: &web::Data<AppState>, acc: &Accountability, req: ItemsRequest) -> Result<Reply, Error> {
    let name = || CollectionName {
        name: req.collection.clone(),
        system: false,
    };
    let acc = acc.clone();
    let state = state.clone();
    let data = match req.action {
        ItemsAction::Create { data, query } => {
            let body = data.unwrap_or(Value::Null);
            let res = items_write::create(
                acc,
                request(&req.collection, query.as_ref()),
                name(),
                Json(body),
                state,
            )
            .await?;
            data_of(res).await?
        }
        ItemsAction::Read { target, query } => match target {
            Target::One(id) => {
                let res = items::read_one(
                    acc,
                    request(&req.collection, query.as_ref()),
                    name(),
                    ItemKey(key_of(&id)),
                    state,
                )
                .await?;
                data_of(res).await?
            }
            Target::Many(ids) => {
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    let res = items::read_one(
                        acc.clone(),
                        request(&req.collection, query.as_ref()),
                        name(),
                        ItemKey(key_of(&id)),
                        state.clone(),
                    )
                    .await;
                    match res {
                        Ok(res) => rows.push(data_of(res).await?),
                        Err(Error::Forbidden) => {}
                        Err(err) => return Err(err),
                    }
                }
                Value::Array(rows)
            }
            Target::All => {
                let res =
                    items::read_many(acc, request(&req.collection, query.as_ref()), name(), state).await?;
                data_of(res).await?
            }
        },
        ItemsAction::Update { target, data, query } => {
            let body = data.unwrap_or(Value::Null);
            match target {
                Target::One(id) => {
                    let res = items_write::update_one(
                        acc,
                        request(&req.collection, query.as_ref()),
                        name(),
                        ItemKey(key_of(&id)),
                        Json(body),
                        state,
                    )
                    .await?;
                    data_of(res).await?
                }
                Target::Many(ids) => {
                    let mut wrapped = Map::new();
                    wrapped.insert("keys".into(), Value::Array(ids));
                    wrapped.insert("data".into(), body);
                    let res = items_write::update_many(
                        acc,
                        request(&req.collection, None),
                        name(),
                        Json(Value::Object(wrapped)),
                        state,
                    )
                    .await?;
                    data_of(res).await?
                }
                Target::All => {
                    let body = match (body, query) {
                        (Value::Array(items), _) => Value::Array(items),
                        (data, Some(query)) => serde_json::json!({"query": query, "data": data}),
                        (data, None) => data,
                    };
                    let res = items_write::update_many(
                        acc,
                        request(&req.collection, None),
                        name(),
                        Json(body),
                        state,
                    )
                    .await?;
                    data_of(res).await?
                }
            }
        }
        ItemsAction::Delete { target, query } => match (target, query) {
            (Target::One(id), _) => {
                items_write::delete_one(
                    acc,
                    request(&req.collection, None),
                    name(),
                    ItemKey(key_of(&id)),
                    state,
                )
                .await?;
                id
            }
            (Target::Many(ids), _) => {
                items_write::delete_many(acc, name(), Some(Json(Value::Array(ids.clone()))), state).await?;
                Value::Array(ids)
            }
            (Target::All, Some(query)) => {
                // Directus answers with the deleted keys: read them first with the same query.
                let keys = {
                    let mut fields = query.clone();
                    let schema = state.schema();
                    let pk = schema
                        .collection(&req.collection)
                        .and_then(|c| c.primary_key.clone())
                        .unwrap_or_else(|| "id".into());
                    fields.insert("fields".into(), Value::String(pk.clone()));
                    let res = items::read_many(
                        acc.clone(),
                        request(&req.collection, Some(&fields)),
                        name(),
                        state.clone(),
                    )
                    .await?;
                    match data_of(res).await? {
                        Value::Array(rows) => rows
                            .iter()
                            .filter_map(|r| r.get(&pk).cloned())
                            .collect::<Vec<_>>(),
                        _ => Vec::new(),
                    }
                };
                items_write::delete_many(acc, name(), Some(Json(Value::Array(keys.clone()))), state).await?;
                Value::Array(keys)
            }
            (Target::All, None) => return Ok(Reply::NeedsTarget),
        },
    };
    Ok(Reply::Data(data))
}
