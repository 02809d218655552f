//! The socket's `items` message: the same CRUD as `/items`, through the same items service, so
//! permissions, validation, presets, activity and errors cannot drift between the two
//! transports. The message's `query` is the read-back query REST takes from the URL.

use serde_json::{Map, Value};

use super::error_reply;
use crate::core::realtime::protocol::{self, ItemsAction, ItemsRequest, Target};
use crate::error::Error;
use crate::service::ItemsService;
use crate::service::items::{ItemsQuery, Selector, input};
use crate::service::{Accountability, Services};

/// Runs an `items` message; the reply text.
pub async fn handle(state: &Services, acc: &Accountability, req: ItemsRequest) -> String {
    let uid = req.uid.clone();
    // A missing collection goes on to the handlers, which refuse it exactly as they refuse an
    // existing one the caller may not use, so the reply does not tell the two apart (as REST).
    if req.collection.starts_with("directus_") {
        return protocol::system_collection("items", uid.as_ref());
    }
    if carries_nul(&req) {
        let err = Error::payload("Strings can't contain NUL characters");
        return error_reply("items", &err, uid.as_ref());
    }
    match run(state, acc, req).await {
        Ok(Reply::Data(data)) => protocol::items(uid.as_ref(), &data, None),
        Ok(Reply::NeedsTarget) => protocol::items_delete_needs_target(uid.as_ref()),
        Err(err) => error_reply("items", &err, uid.as_ref()),
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

fn key_of(id: &Value) -> String {
    protocol::js_string(id)
}

/// A reply's data: the service's JSON text, `null` for nothing to show.
fn data_of(text: Option<String>) -> Result<Value, Error> {
    match text {
        Some(text) => serde_json::from_str(&text).map_err(Error::internal),
        None => Ok(Value::Null),
    }
}

fn query_of(query: Option<Map<String, Value>>) -> ItemsQuery {
    ItemsQuery(query.unwrap_or_default())
}

async fn run(state: &Services, acc: &Accountability, req: ItemsRequest) -> Result<Reply, Error> {
    let mut service = ItemsService::new(state, &req.collection, acc, state.schema());
    let data = match req.action {
        ItemsAction::Create { data, query } => {
            if service.collection()?.is_singleton() {
                return Err(Error::RouteNotFound {
                    path: format!("/items/{}", req.collection),
                });
            }
            let (items, many) = match data.unwrap_or(Value::Null) {
                Value::Array(items) => (items, true),
                item => (vec![item], false),
            };
            data_of(service.create_and_read(items, many, &query_of(query)).await?)?
        }
        ItemsAction::Read { target, query } => {
            let query = query_of(query);
            match target {
                Target::One(id) => data_of(Some(service.read_one(&key_of(&id), &query).await?))?,
                Target::Many(ids) => {
                    let mut rows = Vec::with_capacity(ids.len());
                    for id in ids {
                        match service.read_one(&key_of(&id), &query).await {
                            Ok(row) => rows.push(data_of(Some(row))?),
                            Err(Error::Forbidden) => {}
                            Err(err) => return Err(err),
                        }
                    }
                    Value::Array(rows)
                }
                Target::All if service.collection()?.is_singleton() => {
                    data_of(Some(service.read_singleton(&query).await?))?
                }
                Target::All => data_of(Some(service.read_by_query(&query).await?.array()))?,
            }
        }
        ItemsAction::Update { target, data, query } => {
            let body = data.unwrap_or(Value::Null);
            match target {
                Target::One(id) => {
                    if service.collection()?.is_singleton() {
                        return Err(Error::RouteNotFound {
                            path: format!("/items/{}", req.collection),
                        });
                    }
                    data_of(
                        service
                            .update_one_and_read(&key_of(&id), body, &query_of(query))
                            .await?,
                    )?
                }
                Target::Many(ids) => {
                    let body = serde_json::json!({"keys": ids, "data": body});
                    data_of(service.update_and_read(body, &ItemsQuery::default()).await?)?
                }
                Target::All => {
                    let body = match (body, query) {
                        (Value::Array(items), _) => Value::Array(items),
                        (data, Some(query)) => serde_json::json!({"query": query, "data": data}),
                        (data, None) => data,
                    };
                    data_of(service.update_and_read(body, &ItemsQuery::default()).await?)?
                }
            }
        }
        ItemsAction::Delete { target, query } => match (target, query) {
            (Target::One(id), _) => {
                service.delete_one(&key_of(&id)).await?;
                id
            }
            (Target::Many(ids), _) => {
                let keys = ids.iter().map(input::key_text).collect::<Result<Vec<_>, _>>()?;
                service.delete_selected(Selector::Keys(keys)).await?;
                Value::Array(ids)
            }
            (Target::All, Some(query)) => {
                // Directus answers with the deleted keys, read with the same query.
                let keys = service.delete_by_query(ItemsQuery(query)).await?;
                let collection = service.collection()?;
                let pk_type = collection
                    .primary_key
                    .as_deref()
                    .and_then(|pk| collection.field(pk))
                    .map(|f| f.field_type);
                Value::Array(keys.into_iter().map(|k| typed_key(k, pk_type)).collect())
            }
            (Target::All, None) => return Ok(Reply::NeedsTarget),
        },
    };
    Ok(Reply::Data(data))
}

/// A key text as the JSON a read returns it as: integer keys are numbers (big integers are
/// text, as node-pg returns them).
fn typed_key(key: String, pk_type: Option<crate::core::field_type::FieldType>) -> Value {
    use crate::core::field_type::FieldType;
    match pk_type {
        Some(FieldType::Integer) => key.parse::<i64>().map(Value::from).unwrap_or(Value::String(key)),
        _ => Value::String(key),
    }
}
