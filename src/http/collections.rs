//! `/collections`: list, read, create, update (`meta`) and delete collections.

use actix_web::{HttpResponse, web};
use serde_json::Value;

use super::auth::Admin;
use super::envelope;
use super::state::AppState;
use crate::core::schema_change;
use crate::db::ddl;
use crate::error::Error;

/// `GET /collections`.
pub async fn read_all(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let schema = state.schema();
    let data: Vec<_> = schema.collections.values().collect();
    envelope::ok(data)
}

/// `GET /collections/:collection`.
pub async fn read_one(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = schema.collection(&path).ok_or(Error::Forbidden)?;
    Ok(envelope::ok(collection))
}

/// `POST /collections`.
pub async fn create(
    _: Admin,
    body: web::Json<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let plan = schema_change::plan_create_collection(&state.schema(), body.into_inner())?;
    ddl::create_collection(&state.pool, &state.config.user_schema, &plan).await?;
    respond_with(&state, &plan.collection).await
}

/// `PATCH /collections/:collection`.
pub async fn update(
    _: Admin,
    path: web::Path<String>,
    body: web::Json<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let meta = schema_change::plan_update_collection(&state.schema(), &path, body.into_inner())?;
    ddl::save_collection_meta(&state.pool, &meta).await?;
    respond_with(&state, &path).await
}

/// `DELETE /collections/:collection`.
pub async fn delete(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let schema = state.schema();
    let collection = schema_change::check_delete_collection(&schema, &path)?;
    let incoming: Vec<_> = schema.relations_touching(&path).collect();
    ddl::delete_collection(&state.pool, &state.config.user_schema, collection, &incoming).await?;
    state.refresh_schema().await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn respond_with(state: &AppState, name: &str) -> Result<HttpResponse, Error> {
    let schema = state.refresh_schema().await?;
    let collection = schema.collection(name).ok_or(Error::Forbidden)?;
    Ok(envelope::ok(collection))
}
