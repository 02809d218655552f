//! `/collections`: list, read, create, update (`meta`) and delete collections.

use actix_web::{HttpResponse, web};

use super::auth::Admin;
use super::envelope;
use super::state::AppState;
use crate::core::schema_change;
use crate::db::ddl;
use crate::db::replication::NewTables;
use crate::error::Error;

/// `GET /collections`.
pub async fn read_all(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let schema = state.schema();
    let data: Vec<_> = schema
        .collections
        .values()
        .filter(|c| !super::schema_guard::is_system(&c.collection))
        .collect();
    envelope::ok(data)
}

/// `GET /collections/:collection`.
pub async fn read_one(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path)?;
    let schema = state.schema();
    let collection = schema.collection(&path).ok_or(Error::Forbidden)?;
    Ok(envelope::ok(collection))
}

/// `POST /collections`: an object creates one collection, an array several (all or none).
pub async fn create(
    _: Admin,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let body = body.into_inner();
    let many = body.is_array();
    let plans = schema_change::plan_create_collections(&state.schema(), body)?;
    let new_tables = NewTables::from_config(&state.config.realtime);
    ddl::create_collections(&state.pool, &state.config.user_schema, &plans, &new_tables).await?;
    let schema = state.refresh_schema().await?;
    let created = plans
        .iter()
        .map(|p| schema.collection(&p.collection).ok_or(Error::Forbidden));
    if many {
        Ok(envelope::ok(created.collect::<Result<Vec<_>, _>>()?))
    } else {
        let first = created.into_iter().next().ok_or(Error::Forbidden)??;
        Ok(envelope::ok(first))
    }
}

/// `PATCH /collections/:collection`: applies `meta` only; meta for an unknown name creates a
/// folder, and a body without `meta` changes nothing (204 when there is nothing to show).
pub async fn update(
    _: Admin,
    path: web::Path<String>,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path)?;
    if let Some(meta) = schema_change::plan_update_collection(&state.schema(), &path, body.into_inner())? {
        ddl::save_collection_meta(&state.pool, &meta).await?;
    }
    let schema = state.refresh_schema().await?;
    Ok(match schema.collection(&path) {
        Some(collection) => envelope::ok(collection),
        None => HttpResponse::NoContent().finish(),
    })
}

/// `DELETE /collections/:collection`.
pub async fn delete(
    _: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    super::schema_guard::refuse_system(&path)?;
    let schema = state.schema();
    let collection = schema_change::check_delete_collection(&schema, &path)?;
    let incoming: Vec<_> = schema.relations_touching(&path).collect();
    ddl::delete_collection(&state.pool, &state.config.user_schema, collection, &incoming).await?;
    state.refresh_schema().await?;
    Ok(HttpResponse::NoContent().finish())
}
