//! `/relations`: list, read, create, update and delete relations (foreign keys + metadata).

use actix_web::{HttpResponse, web};

use super::auth::Admin;
use super::envelope;
use super::state::AppState;
use crate::core::schema_change;
use crate::db::ddl;
use crate::error::Error;

/// `GET /relations`.
pub async fn read_all(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let schema = state.schema();
    let data: Vec<_> = schema
        .relations
        .iter()
        .filter(|r| !super::schema_guard::is_system(&r.collection))
        .collect();
    envelope::ok(data)
}

/// `GET /relations/:collection`: the relations stored on that collection.
pub async fn read_collection(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path)?;
    let schema = state.schema();
    schema_change::table_collection(&schema, &path)?;
    let data: Vec<_> = schema.relations_of(&path).collect();
    Ok(envelope::ok(data))
}

/// `GET /relations/:collection/:field`.
pub async fn read_one(
    _: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path.0)?;
    let (collection, field) = path.into_inner();
    let schema = state.schema();
    schema_change::table_collection(&schema, &collection)?;
    let relation = schema.relation(&collection, &field).ok_or(Error::Forbidden)?;
    Ok(envelope::ok(relation))
}

/// `POST /relations`.
pub async fn create(
    _: Admin,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let plan = schema_change::plan_create_relation(&state.schema(), body.into_inner())?;
    super::schema_guard::refuse_system(&plan.collection)?;
    if let Some(fk) = &plan.foreign_key {
        super::schema_guard::refuse_system(&fk.foreign_table)?;
    }
    ddl::save_relation(&state.pool, &state.config.user_schema, &plan).await?;
    respond_with(&state, &plan.collection, &plan.field).await
}

/// `PATCH /relations/:collection/:field`.
pub async fn update(
    _: Admin,
    path: web::Path<(String, String)>,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path.0)?;
    let (collection, field) = path.into_inner();
    let plan = schema_change::plan_update_relation(&state.schema(), &collection, &field, body.into_inner())?;
    ddl::save_relation(&state.pool, &state.config.user_schema, &plan).await?;
    respond_with(&state, &collection, &field).await
}

/// `DELETE /relations/:collection/:field`.
pub async fn delete(
    _: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path.0)?;
    let (collection, field) = path.into_inner();
    let schema = state.schema();
    let relation = schema_change::check_delete_relation(&schema, &collection, &field)?;
    ddl::delete_relation(&state.pool, &state.config.user_schema, relation).await?;
    state.refresh_schema().await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn respond_with(state: &AppState, collection: &str, field: &str) -> Result<HttpResponse, Error> {
    let schema = state.refresh_schema().await?;
    let relation = schema.relation(collection, field).ok_or(Error::Forbidden)?;
    Ok(envelope::ok(relation))
}
