//! `/items/:collection` reads: `GET` (list, or the singleton's object), `SEARCH` (the query in
//! the body) and `GET /items/:collection/:id`. Each parses, authenticates, calls one
//! [`ItemsService`] read and writes its rows out as the JSON text Postgres built.
//!
//! [`ItemsService`]: crate::service::ItemsService

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::auth::Accountability;
use super::route_target::{CollectionName, ItemKey};
use super::state::AppState;
use crate::core::query::params;
use crate::core::schema::{Collection, SchemaSnapshot};
use crate::error::Error;
use crate::service::{ItemsService, items::ItemsQuery};

/// The collection an `/items` route names: a table, and not a Directus system collection
/// (those have their own routes).
pub(super) fn collection<'a>(
    schema: &'a SchemaSnapshot,
    name: &CollectionName,
) -> Result<&'a Collection, Error> {
    if name.name.starts_with("directus_") && !name.system {
        return Err(Error::Forbidden);
    }
    crate::service::items::collection_of(schema, &name.name)
}

/// The URL's query.
pub(super) fn url_query(req: &HttpRequest) -> Result<ItemsQuery, Error> {
    Ok(ItemsQuery(
        params::decode(req.query_string()).map_err(|e| Error::query(e.to_string()))?,
    ))
}

/// The items service of the route's collection, as the caller.
pub(super) fn service<'a>(
    state: &'a AppState,
    acc: &'a Accountability,
    name: &CollectionName,
) -> Result<ItemsService<'a>, Error> {
    let schema = state.schema();
    let found = collection(&schema, name)?.collection.clone();
    Ok(ItemsService::new(&state.services, &found, acc, schema))
}

/// `GET /items/:collection`.
pub async fn read_many(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    respond_many(&state, &acc, &name, &url_query(&req)?).await
}

/// `SEARCH /items/:collection`: `{"query": {...}, "keys"?: [...]}` in the body replaces the
/// URL query (`keys`: only those items, as Directus's `readMany`).
pub async fn search(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let Value::Object(mut body) = body.into_inner() else {
        return Err(Error::payload("\"value\" must be of type object"));
    };
    let query = match body.remove("query") {
        Some(Value::Object(query)) => ItemsQuery(query),
        Some(_) => return Err(Error::payload("\"query\" must be of type object")),
        None => url_query(&req)?,
    };
    let query = match body.remove("keys") {
        None | Some(Value::Null) => query,
        Some(Value::Array(keys)) => {
            let schema = state.schema();
            match query.with_keys(&keys, collection(&schema, &name)?)? {
                Some(query) => query,
                None => return Ok(json_body("{\"data\":[]}".into())),
            }
        }
        Some(_) => return Err(Error::payload("\"keys\" must be an array")),
    };
    respond_many(&state, &acc, &name, &query).await
}

async fn respond_many(
    state: &AppState,
    acc: &Accountability,
    name: &CollectionName,
    query: &ItemsQuery,
) -> Result<HttpResponse, Error> {
    let mut service = service(state, acc, name)?;
    if service.collection()?.is_singleton() {
        let row = service.read_singleton(query).await?;
        return Ok(json_body(format!("{{\"data\":{row}}}")));
    }
    let export = super::export::Export::parse(query.params().get("export"))?;
    let found = service.read_by_query(query).await?;
    if let Some(export) = export {
        return export.respond(&name.name, &found.rows);
    }
    let mut meta = Vec::new();
    if let Some(total) = found.total_count {
        meta.push(format!("\"total_count\":{total}"));
    }
    if let Some(filtered) = found.filter_count {
        meta.push(format!("\"filter_count\":{filtered}"));
    }
    let mut body = String::from("{");
    if !meta.is_empty() {
        body.push_str(&format!("\"meta\":{{{}}},", meta.join(",")));
    }
    body.push_str("\"data\":");
    body.push_str(&found.array());
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
    let row = service(&state, &acc, &name)?
        .read_one(&key, &url_query(&req)?)
        .await?;
    Ok(json_body(format!("{{\"data\":{row}}}")))
}

/// `200 {"data": <text>}`, or `204` when there is nothing to show.
pub(super) fn data_or_no_content(data: Option<String>) -> HttpResponse {
    match data {
        Some(data) => json_body(format!("{{\"data\":{data}}}")),
        None => HttpResponse::NoContent().finish(),
    }
}

pub(super) fn json_body(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .body(body)
}
