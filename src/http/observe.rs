//! The request middleware: a request id (the client's `X-Request-Id` if it is sane, else a new
//! UUID, echoed back), a root `tracing` span per request, one log line per response, and the
//! Prometheus counters. Being outermost, it also has [`super::edge`] decorate every response
//! (security and CORS headers) and answer CORS preflights.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::{Instrument, field};

use super::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps every request; see the module docs.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let metrics = state.as_ref().map(|state| state.metrics.clone());
    let origin = req.headers().get(actix_web::http::header::ORIGIN).cloned();
    if let Some(state) = &state
        && let Some(res) = super::edge::preflight(req.method(), req.headers(), &state.config.http)
    {
        let mut res = req.into_response(res).map_into_right_body();
        super::edge::decorate(res.headers_mut(), &state.config.http, origin.as_ref());
        return Ok(res);
    }
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = field::Empty,
        status = field::Empty,
        request_id = %request_id,
    );
    let started = Instant::now();
    // Handlers' and the limits' refusals arrive here as responses, so they are decorated too.
    let mut res = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_left_body();
    let elapsed = started.elapsed();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16();
    span.record("route", route.as_str());
    span.record("status", status);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(state) = &state {
        super::edge::decorate(res.headers_mut(), &state.config.http, origin.as_ref());
    }
    if let Some(metrics) = metrics {
        metrics.observe(&method, &route, status, elapsed.as_secs_f64());
    }
    span.in_scope(|| tracing::info!(latency_us = elapsed.as_micros() as u64, "request finished"));
    Ok(res)
}

/// A random (v4) UUID from the thread-local generator: no system call per request, unlike
/// `Uuid::new_v4`, which reads the OS's random source each time.
fn new_request_id() -> String {
    use rand::Rng;
    uuid::Builder::from_random_bytes(rand::rng().random())
        .into_uuid()
        .to_string()
}
