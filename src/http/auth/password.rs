//! `POST /auth/password/request` and `/auth/password/reset`: the bodies are read here, the work
//! is `service::auth::password`'s.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::client_of;
use crate::error::Error;
use crate::http::state::AppState;
use crate::service::auth::password;

/// `POST /auth/password/request` `{email, reset_url?}`: 204 whether or not the email exists.
pub async fn request(
    req: HttpRequest,
    body: crate::http::body::Json,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let email = body
        .get("email")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::payload("\"email\" field is required"))?;
    let reset_url = body
        .get("reset_url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty());
    password::request_reset(&state.services, &client_of(&req, &state), email, reset_url).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /auth/password/reset` `{token, password}`.
pub async fn reset(body: crate::http::body::Json, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::payload("\"token\" field is required"))?;
    let new_password = body
        .get("password")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::payload("\"password\" field is required"))?
        .to_string();
    password::reset(&state.services, token, new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}
