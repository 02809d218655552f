//! The success envelope `{"data": ...}`, serialized straight from borrowed values (building a
//! `serde_json::Value` first costs ~10× more for large schema listings; see `benches/schema.rs`).

use actix_web::HttpResponse;
use serde::Serialize;

/// `{"data": T}`.
#[derive(Debug, Serialize)]
pub struct Data<T> {
    pub data: T,
}

/// `200 {"data": data}`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(Data { data })
}
