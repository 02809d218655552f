//! `/server/ping`, `/server/health` and `/server/info`, in Directus's shapes. Health's realtime
//! checks live in `server/realtime.rs`.

mod realtime;

use std::time::Instant;

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::auth::Accountability;
use super::state::AppState;
use crate::db::pool;
use crate::error::Error;

/// Above this database round trip, health reports `warn` (Directus's `DB_HEALTHCHECK_THRESHOLD`).
const DB_RESPONSE_THRESHOLD_MS: f64 = 150.0;

/// `GET /server/ping` → `pong`.
pub async fn ping() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body("pong")
}

/// `GET /server/health`: `{"status"}` for everyone; admins also get the release, service id and
/// the checks. `503` when a check fails.
pub async fn health(
    acc: Result<Accountability, crate::error::Error>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, crate::error::Error> {
    // Who is asking needs the database too; when it is down, the answer is the public one,
    // so health can still say so. A bad token is still refused.
    let admin = match acc {
        Ok(acc) => acc.admin,
        Err(err) if err.status().is_server_error() => false,
        Err(err) => return Err(err),
    };
    let started = Instant::now();
    // Its own connection: the request pool may be exhausted right now.
    let probe = crate::db::pool::ping(&state.health_pool).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let db_status = match &probe {
        Err(_) => "error",
        Ok(_) if elapsed_ms > DB_RESPONSE_THRESHOLD_MS => "warn",
        Ok(_) => "ok",
    };
    if let Err(err) = &probe {
        tracing::warn!(error = %err, "health check: database unreachable");
    }
    let size = state.pool.size();
    let idle = state.pool.num_idle() as u32;
    let realtime = realtime::check(&state).await;
    let overall = match &realtime {
        Some(realtime) if db_status == "ok" => realtime.status,
        _ => db_status,
    };
    let mut body = json!({ "status": overall });
    if admin {
        let mut response_time = json!({
            "status": db_status, "componentType": "datastore", "observedUnit": "ms",
            "observedValue": (elapsed_ms * 1000.0).round() / 1000.0, "threshold": DB_RESPONSE_THRESHOLD_MS,
        });
        if probe.is_err() {
            response_time["output"] = json!("Can't connect to the database.");
        }
        body["releaseId"] = json!(env!("CARGO_PKG_VERSION"));
        body["serviceId"] = json!(state.config.key);
        // Directus reports the pool's free and busy connections, always as "ok".
        body["checks"] = json!({
            "pg:responseTime": [response_time],
            "pg:connectionsAvailable": [{ "status": "ok", "componentType": "datastore", "observedValue": idle }],
            "pg:connectionsUsed": [{ "status": "ok", "componentType": "datastore", "observedValue": size.saturating_sub(idle) }],
        });
        for (name, check) in realtime.map(|r| r.checks).unwrap_or_default() {
            body["checks"][name] = check;
        }
    }
    let mut res = if db_status == "error" {
        HttpResponse::ServiceUnavailable()
    } else {
        HttpResponse::Ok()
    };
    Ok(res
        .content_type("application/health+json; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(body.to_string()))
}

/// `GET /server/info`: the project for everyone; limits and the version for signed-in users;
/// Directrix's own details (uptime, database version) for admins.
pub async fn info(acc: Accountability, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let mut data = json!({
        "project": {
            "project_name": state.config.project_name,
            "project_descriptor": null,
            "project_logo": null,
            "project_color": "#6644FF",
            "default_appearance": "auto",
            "default_theme_light": null,
            "default_theme_dark": null,
            "theme_light_overrides": null,
            "theme_dark_overrides": null,
            "default_language": "en-US",
            "public_foreground": null,
            "public_background": null,
            "public_favicon": null,
            "public_note": null,
            "custom_css": null,
            "public_registration": false,
            "public_registration_verify_email": true,
        }
    });
    data["mcp_enabled"] = json!(false);
    data["setupCompleted"] = json!(true);
    if acc.user.is_some() {
        let config = &state.config;
        let limiter = |l: &crate::config::LimiterConfig| match l.enabled {
            true => json!({ "points": l.points, "duration": l.duration.as_secs() }),
            false => json!(false),
        };
        data["rateLimit"] = limiter(&config.rate_limits.per_ip);
        data["rateLimitGlobal"] = limiter(&config.rate_limits.global);
        data["extensions"] = json!({ "limit": null });
        data["queryLimit"] = json!({
            "default": config.query.default_limit,
            "max": config.query.max_limit.unwrap_or(-1),
        });
        data["websocket"] = websocket_info(&config.realtime, config.realtime.enabled);
        data["uploads"] = json!({ "tus": false, "maxParallel": 5 });
        data["version"] = json!(env!("CARGO_PKG_VERSION"));
    }
    if acc.admin {
        let database: Value = match pool::server_version(&state.pool).await {
            Ok(version) => json!({ "client": "pg", "version": version }),
            Err(_) => Value::Null,
        };
        data["directrix"] = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": state.started.elapsed().as_secs(),
            "database": database,
        });
    }
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}

/// `/server/info`'s `websocket`, in Directus's shape (`false` when off; GraphQL and log
/// streaming are not served).
fn websocket_info(realtime: &crate::config::RealtimeConfig, running: bool) -> Value {
    if !running || !realtime.ws_enabled {
        return json!(false);
    }
    let rest = match realtime.ws_rest_enabled {
        true => json!({
            "authentication": match realtime.ws_auth {
                crate::config::WsAuthMode::Public => "public",
                crate::config::WsAuthMode::Handshake => "handshake",
                crate::config::WsAuthMode::Strict => "strict",
            },
            "path": realtime.ws_path,
        }),
        false => json!(false),
    };
    json!({
        "rest": rest,
        "graphql": false,
        "heartbeat": match realtime.heartbeat_enabled {
            true => json!(realtime.heartbeat_period.as_secs()),
            false => json!(false),
        },
        "collaborativeEditing": realtime.collab_enabled,
        "logs": false,
    })
}
