//! `/users/me`: the caller's own user, through the same read and update paths (and
//! permission checks) as `/users/:id`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::Accountability;
use super::route_target::CollectionName;
use super::state::AppState;
use crate::error::Error;

fn users() -> CollectionName {
    CollectionName {
        name: "directus_users".into(),
        system: true,
    }
}

/// `GET /users/me`. Without a user: `INVALID_CREDENTIALS`. A user who may not read
/// `directus_users` still learns their own id, as in Directus.
pub async fn read_me(
    acc: Accountability,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let user = acc.user.ok_or(Error::InvalidCredentials)?;
    match super::items::read_by_key(&acc, &req, &users(), &user.to_string(), &state).await {
        Err(Error::Forbidden | Error::ForbiddenCollection { .. }) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({"data": {"id": user}})))
        }
        other => other,
    }
}

/// `PATCH /users/me`.
pub async fn update_me(
    acc: Accountability,
    req: HttpRequest,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let user = acc.user.ok_or(Error::InvalidCredentials)?;
    super::items_write::update_by_key(&acc, &req, &users(), user.to_string(), body.into_inner(), &state).await
}
