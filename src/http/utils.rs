//! `/utils/*` routes that are use cases of their own: `POST /utils/revert/:revision`.

use actix_web::{HttpResponse, web};

use super::auth::Accountability;
use super::state::AppState;
use crate::error::Error;

/// `POST /utils/revert/:revision`: 204 once the item holds the revision's data again.
pub async fn revert(
    acc: Accountability,
    revision: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    crate::service::revisions::revert(&state.services, &acc, &revision).await?;
    Ok(HttpResponse::NoContent().finish())
}
