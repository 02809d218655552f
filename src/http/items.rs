//! `/items/:collection` reads: `GET` (list, or the singleton's object), `SEARCH` (the query in
//! the body) and `GET /items/:collection/:id`. Rows come back from Postgres as JSON text and are
//! written out as they are.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::auth::Accountability;
use super::route_target::{CollectionName, ItemKey};
use super::state::AppState;
use crate::core::query::{self, Query, params};
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::db::items::read::{self, Target};
use crate::db::items::rules::ReadRules;
use crate::error::Error;

/// The collection an `/items` route names: a table, and not a Directus system collection.
pub(super) fn collection<'a>(
    schema: &'a SchemaSnapshot,
    name: &CollectionName,
) -> Result<&'a Collection, Error> {
    if name.name.starts_with("directus_") && !name.system {
        return Err(Error::Forbidden);
    }
    Ok(crate::core::schema_change::table_collection(schema, &name.name)?)
}

/// Parses a read's query and authorizes it for the caller: `*` narrows to readable fields,
/// anything unreadable is refused, and the rules the SQL must apply come back with it.
pub(super) fn authorized_query(
    state: &AppState,
    acc: &Accountability,
    params: &Map<String, Value>,
    schema: &SchemaSnapshot,
    name: &str,
) -> Result<(Query, ReadRules), Error> {
    authorized_query_at(state, acc, params, schema, name, chrono::Utc::now())
}

/// [`authorized_query`] with `$NOW` at `now`.
pub(super) fn authorized_query_at(
    state: &AppState,
    acc: &Accountability,
    params: &Map<String, Value>,
    schema: &SchemaSnapshot,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Query, ReadRules), Error> {
    let mut vars = acc.variables();
    vars.now = now;
    let mut query = query::parse(params, schema, name, vars.clone(), state.config.query)?;
    let rules = super::access::authorize_read(
        acc,
        schema,
        name,
        &mut query,
        &super::access::requested_fields(params),
        &vars,
    )?;
    Ok((query, rules))
}

/// Where reads of `collection` run: this app's user schema, on the given snapshot.
pub(super) fn target<'a>(
    state: &'a AppState,
    schema: &'a SchemaSnapshot,
    collection: &'a Collection,
    rules: &'a ReadRules,
) -> Target<'a> {
    Target {
        snapshot: schema,
        schema: &state.config.user_schema,
        collection,
        rules,
    }
}

fn url_params(req: &HttpRequest) -> Result<Map<String, Value>, Error> {
    params::decode(req.query_string()).map_err(|e| Error::query(e.to_string()))
}

/// `GET /items/:collection`.
pub async fn read_many(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let params = url_params(&req)?;
    respond_many(&state, &acc, &name, &params).await
}

/// `SEARCH /items/:collection`: `{"query": {...}}` in the body replaces the URL query.
pub async fn search(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let (params, keys) = match body.into_inner() {
        Value::Object(mut body) => {
            let params = match body.remove("query") {
                Some(Value::Object(query)) => query,
                Some(_) => return Err(Error::payload("\"query\" must be of type object")),
                None => url_params(&req)?,
            };
            let keys = match body.remove("keys") {
                None | Some(Value::Null) => None,
                Some(Value::Array(keys)) => Some(keys),
                Some(_) => return Err(Error::payload("\"keys\" must be an array")),
            };
            (params, keys)
        }
        _ => return Err(Error::payload("\"value\" must be of type object")),
    };
    let params = match keys {
        Some(keys) => {
            let schema = state.schema();
            match with_keys(params, keys, collection(&schema, &name)?)? {
                Some(params) => params,
                None => return Ok(json_body("{\"data\":[]}".into())),
            }
        }
        None => params,
    };
    respond_many(&state, &acc, &name, &params).await
}

/// `SEARCH` with `keys`: the query limited to those items, as Directus's `readMany` does (the
/// keys AND-ed into the filter, and at most as many rows as keys unless a limit is asked for).
/// `None` for no keys: nothing to read.
fn with_keys(
    mut params: Map<String, Value>,
    keys: Vec<Value>,
    collection: &Collection,
) -> Result<Option<Map<String, Value>>, Error> {
    if keys.is_empty() {
        return Ok(None);
    }
    let pk = collection.primary_key.clone().ok_or(Error::Forbidden)?;
    for key in &keys {
        let text = match key {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => return Err(Error::Forbidden),
        };
        read::check_key(collection, &text)?;
    }
    let count = keys.len();
    let by_key = serde_json::json!({ pk: { "_in": keys } });
    let filter = match params.remove("filter") {
        None | Some(Value::Null) => by_key,
        Some(Value::String(text)) => {
            let parsed: Value =
                serde_json::from_str(&text).map_err(|_| Error::query("\"filter\" must be valid JSON"))?;
            serde_json::json!({ "_and": [parsed, by_key] })
        }
        Some(other) => serde_json::json!({ "_and": [other, by_key] }),
    };
    params.insert("filter".into(), filter);
    params.entry("limit").or_insert_with(|| Value::from(count));
    Ok(Some(params))
}

async fn respond_many(
    state: &AppState,
    acc: &Accountability,
    name: &CollectionName,
    params: &Map<String, Value>,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = collection(&schema, name)?;
    let name = collection.collection.as_str();
    let (mut query, rules) = authorized_query(state, acc, params, &schema, name)?;
    let target = target(state, &schema, collection, &rules);
    if collection.is_singleton() {
        query.limit = Some(1);
        query.offset = 0;
        let rows = read::fetch(&state.pool, &target, &query, None).await?;
        let data = match rows.into_iter().next() {
            Some(row) => row,
            None => singleton_defaults(collection).to_string(),
        };
        return Ok(json_body(format!("{{\"data\":{data}}}")));
    }
    let export = super::export::Export::parse(params.get("export"))?;
    let rows = read::fetch(&state.pool, &target, &query, None).await?;
    if let Some(export) = export {
        return export.respond(name, &rows);
    }
    let mut body = String::from("{");
    if query.meta.total_count || query.meta.filter_count {
        let mut meta = Vec::new();
        if query.meta.total_count {
            let total = read::number(&state.pool, &read::count(&target, None)?).await?;
            meta.push(format!("\"total_count\":{total}"));
        }
        if query.meta.filter_count {
            let filtered = read::number(&state.pool, &read::count(&target, Some(&query))?).await?;
            meta.push(format!("\"filter_count\":{filtered}"));
        }
        body.push_str(&format!("\"meta\":{{{}}},", meta.join(",")));
    }
    body.push_str("\"data\":");
    body.push_str(&read::array(&rows));
    body.push('}');
    Ok(json_body(body))
}

/// `GET /items/:collection/:id`.
pub async fn read_one(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    ItemKey(key): ItemKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    read_by_key(&acc, &req, &name, &key, &state).await
}

/// Reads one item by key (also `GET /users/me`).
pub(super) async fn read_by_key(
    acc: &Accountability,
    req: &HttpRequest,
    name: &CollectionName,
    key: &str,
    state: &AppState,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = collection(&schema, name)?;
    read::check_key(collection, key)?;
    let (query, rules) = authorized_query(state, acc, &url_params(req)?, &schema, &collection.collection)?;
    let target = target(state, &schema, collection, &rules);
    let rows = read::fetch(&state.pool, &target, &query, Some(key)).await?;
    let row = rows.into_iter().next().ok_or(Error::Forbidden)?;
    Ok(json_body(format!("{{\"data\":{row}}}")))
}

/// An empty singleton reads as its defaults: the key `null`, plus fields with a default.
fn singleton_defaults(collection: &Collection) -> Value {
    let mut object = Map::new();
    for field in &collection.fields {
        let Some(column) = &field.schema else { continue };
        if column.is_primary_key {
            object.insert(field.field.clone(), Value::Null);
        } else if !column.default_value.is_null() && !column.has_auto_increment {
            object.insert(field.field.clone(), column.default_value.clone());
        }
    }
    Value::Object(object)
}

fn json_body(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body)
}
