//! `/items/:collection` writes: `POST` (one or many), `PATCH` (one, a batch of items with keys,
//! `{keys, data}`, `{query, data}`, or a singleton's object) and `DELETE` (one, keys, `{keys}`,
//! `{query}`). Each calls one [`ItemsService`] write; written items come back read with the
//! URL's query.
//!
//! [`ItemsService`]: crate::service::ItemsService

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::auth::Accountability;
use super::items::{data_or_no_content, service, url_query};
use super::route_target::{CollectionName, ItemKey};
use super::state::AppState;
use crate::error::Error;
use crate::service::items::input;

/// Singletons have no routes that create or name items: 404, as Directus.
fn not_for_singletons(service: &crate::service::ItemsService<'_>, req: &HttpRequest) -> Result<(), Error> {
    if service.collection()?.is_singleton() {
        return Err(Error::RouteNotFound {
            path: req.path().to_string(),
        });
    }
    Ok(())
}

/// `POST /items/:collection`.
pub async fn create(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let mut service = service(&state, &acc, &name)?;
    not_for_singletons(&service, &req)?;
    let (items, many) = match body.into_inner() {
        Value::Array(items) => (items, true),
        item => (vec![item], false),
    };
    let data = service.create_and_read(items, many, &url_query(&req)?).await?;
    Ok(data_or_no_content(data))
}

/// `PATCH /items/:collection/:id`.
pub async fn update_one(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    ItemKey(key): ItemKey,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let mut service = service(&state, &acc, &name)?;
    not_for_singletons(&service, &req)?;
    let data = service
        .update_one_and_read(&key, body.into_inner(), &url_query(&req)?)
        .await?;
    Ok(data_or_no_content(data))
}

/// `PATCH /items/:collection`: a batch, `{keys, data}`, `{query, data}` or a singleton.
pub async fn update_many(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let mut service = service(&state, &acc, &name)?;
    let data = service
        .update_and_read(body.into_inner(), &url_query(&req)?)
        .await?;
    Ok(data_or_no_content(data))
}

/// `DELETE /items/:collection/:id`: 204, also when there was nothing to delete.
pub async fn delete_one(
    acc: Accountability,
    req: HttpRequest,
    name: CollectionName,
    ItemKey(key): ItemKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let mut service = service(&state, &acc, &name)?;
    not_for_singletons(&service, &req)?;
    service.delete_one(&key).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /items/:collection`: an array of keys, `{keys}` or `{query}`; one transaction.
pub async fn delete_many(
    acc: Accountability,
    name: CollectionName,
    body: Option<crate::http::body::Json>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let body = body.map(|b| b.into_inner()).unwrap_or(Value::Object(Map::new()));
    let selector = input::delete_body(body)?;
    service(&state, &acc, &name)?.delete_selected(selector).await?;
    Ok(HttpResponse::NoContent().finish())
}
