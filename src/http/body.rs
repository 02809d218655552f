//! [`Json`]: the JSON request body every route reads. `application/json` (or a `+json` type)
//! only, within `MAX_PAYLOAD_SIZE` (both enforced by the `JsonConfig` in `http::configure`),
//! and free of NUL characters, which Postgres `text` and `jsonb` cannot hold.
//!
//! Requiring the content type keeps a cross-site form post (`text/plain`, which a browser
//! sends without a preflight) from writing anything under cookie auth.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde_json::Value;

use crate::core::payload::has_nul;
use crate::error::Error;

/// A JSON request body (see the module docs).
#[derive(Debug, Clone)]
pub struct Json(pub Value);

impl Json {
    pub fn into_inner(self) -> Value {
        self.0
    }
}

impl std::ops::Deref for Json {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

impl FromRequest for Json {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Json::<Value>::from_request(req, payload);
        Box::pin(async move {
            let value = body.await?.into_inner();
            if has_nul(&value) {
                return Err(Error::payload("Strings can't contain NUL characters").into());
            }
            Ok(Json(value))
        })
    }
}
