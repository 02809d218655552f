//! `/fields`: list, read, create, update and delete fields.

use actix_web::{HttpResponse, web};

use super::auth::Admin;
use super::envelope;
use super::state::AppState;
use crate::core::schema_change;
use crate::db::ddl;
use crate::error::Error;

/// `GET /fields`.
pub async fn read_all(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let schema = state.schema();
    let data: Vec<_> = schema
        .fields()
        .filter(|f| !super::schema_guard::is_system(&f.collection))
        .collect();
    envelope::ok(data)
}

/// `GET /fields/:collection`.
pub async fn read_collection(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path)?;
    let schema = state.schema();
    let collection = schema_change::table_collection(&schema, &path)?;
    Ok(envelope::ok(&collection.fields))
}

/// `GET /fields/:collection/:field`.
pub async fn read_one(
    _: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path.0)?;
    let (collection, field) = path.into_inner();
    let schema = state.schema();
    let field = schema_change::table_collection(&schema, &collection)?
        .field(&field)
        .ok_or(Error::Forbidden)?;
    Ok(envelope::ok(field))
}

/// `POST /fields/:collection`.
pub async fn create(
    _: Admin,
    path: web::Path<String>,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path)?;
    let plan = schema_change::plan_create_field(&state.schema(), &path, body.into_inner())?;
    ddl::create_field(&state.pool, &state.config.user_schema, &path, &plan).await?;
    respond_with(&state, &path, &plan.field).await
}

/// `PATCH /fields/:collection/:field`.
pub async fn update(
    _: Admin,
    path: web::Path<(String, String)>,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path.0)?;
    let (collection, field) = path.into_inner();
    let schema = state.schema();
    let plan = schema_change::plan_update_field(&schema, &collection, &field, body.into_inner())?;
    ddl::update_field(&state.pool, &state.config.user_schema, &plan).await?;
    respond_with(&state, &collection, &field).await
}

/// `DELETE /fields/:collection/:field`.
pub async fn delete(
    _: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path.0)?;
    let (collection, field) = path.into_inner();
    let schema = state.schema();
    // A field that does not exist is deleted already: 204, as Directus answers.
    if let Some(existing) = schema_change::check_delete_field(&schema, &collection, &field)? {
        let has_column = existing.schema.is_some();
        ddl::delete_field(
            &state.pool,
            &state.config.user_schema,
            &collection,
            &field,
            has_column,
        )
        .await?;
        state.refresh_schema().await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn respond_with(state: &AppState, collection: &str, field: &str) -> Result<HttpResponse, Error> {
    let schema = state.refresh_schema().await?;
    let field = schema.field(collection, field).ok_or(Error::Forbidden)?;
    Ok(envelope::ok(field))
}
