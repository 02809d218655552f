//! `/users/me`: the caller's own user, through the same items service (and permission checks)
//! as `/users/:id`.

use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::Accountability;
use super::items::{data_or_no_content, json_body, url_query};
use super::state::AppState;
use crate::error::Error;
use crate::service::ItemsService;

/// `GET /users/me`. Without a user: `INVALID_CREDENTIALS`. A user who may not read
/// `directus_users` still learns their own id, as in Directus.
pub async fn read_me(
    acc: Accountability,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let user = acc.user.ok_or(Error::InvalidCredentials)?;
    let mut service = ItemsService::new(&state.services, "directus_users", &acc, state.schema());
    match service.read_one(&user.to_string(), &url_query(&req)?).await {
        Ok(row) => Ok(json_body(format!("{{\"data\":{row}}}"))),
        Err(Error::Forbidden | Error::ForbiddenCollection { .. }) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({"data": {"id": user}})))
        }
        Err(err) => Err(err),
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
    let mut service = ItemsService::new(&state.services, "directus_users", &acc, state.schema());
    let data = service
        .update_one_and_read(&user.to_string(), body.into_inner(), &url_query(&req)?)
        .await?;
    Ok(data_or_no_content(data))
}
