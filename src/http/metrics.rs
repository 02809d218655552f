//! Prometheus metrics: request counts and latency histograms by route pattern (never by raw
//! path, which would let clients create unbounded label sets), and the replication consumer's
//! gauges when realtime runs; served at `/metrics`.

mod replication;

use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

use super::state::AppState;
use crate::error::Error;

/// The registry and the instruments the request middleware records into.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Metrics {
    /// A fresh registry with Directrix's instruments.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("directrix".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route and status"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method and route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
        })
    }

    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, status.to_string().as_str()])
            .inc();
        self.latency.with_label_values(&[method, route]).observe(seconds);
    }

    /// Adds the replication consumer's gauges, read from `status` at each scrape.
    pub fn watch_replication(
        &self,
        status: std::sync::Arc<crate::actors::replication::ReplicationStatus>,
    ) -> Result<(), prometheus::Error> {
        let collector = replication::ReplicationCollector::new(status)?;
        self.registry.register(Box::new(collector))
    }

    fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Whether the request carries `Authorization: Metrics <one of tokens>` (compared in constant
/// time, so the comparison does not leak a token's prefix).
fn scraper_token(req: &HttpRequest, tokens: &[secrecy::SecretString]) -> bool {
    use secrecy::ExposeSecret;
    let Some(presented) = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("metrics"))
        .map(|(_, token)| token.as_bytes())
    else {
        return false;
    };
    tokens.iter().any(|token| {
        let token = token.expose_secret().as_bytes();
        token.len() == presented.len()
            && token.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

/// `GET /metrics`, in the Prometheus text format, for admins and for scrapers presenting one
/// of `METRICS_TOKENS` as `Authorization: Metrics <token>` (Directus's scheme); anyone else
/// gets `FORBIDDEN`, unless `METRICS_PUBLIC` opens it. `METRICS_ENABLED=false`: no route.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let config = &state.config.http.metrics;
    if !config.enabled {
        return Err(Error::RouteNotFound {
            path: req.path().to_string(),
        });
    }
    if !config.public && !scraper_token(&req, &config.tokens) {
        let acc = super::auth::authenticate(&req, &state).await?;
        if !acc.admin {
            return Err(Error::Forbidden);
        }
    }
    let body = state.metrics.render().map_err(Error::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}
