//! `/websocket` (`WEBSOCKETS_REST_PATH`): the upgrade, which starts a session actor
//! (`actors::ws_session::WsSession`, where the protocol lives); frames are read and written by
//! [`wire`] with actix-http's codec.
//!
//! The upgrade follows Directus's order: over `WEBSOCKETS_REST_CONN_LIMIT` the answer is a bare
//! 403; in `strict` mode, or when the request carries `?access_token=` or the session cookie,
//! the token is checked at the upgrade and a bad or missing one is a bare 401; otherwise the
//! connection opens and (in `handshake` mode) must `auth` within the timeout.

pub mod wire;

use std::sync::atomic::Ordering;

use actix::{Actor, AsyncContext};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use super::super::auth::{client_of, token_of};
use super::super::state::AppState;
use crate::actors::ws_session as session;
use crate::config::WsAuthMode;
use crate::error::Error;
use crate::service::auth;

/// Whether the upgrade's `Origin` may use the session cookie: none sent (not a browser), the
/// request's own host, `PUBLIC_URL`'s origin, or one `CORS_ORIGIN` admits (with CORS on), as
/// Directus's `is-origin-allowed`.
fn origin_allowed(req: &HttpRequest, state: &AppState) -> bool {
    use actix_web::http::header;
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
        return false;
    };
    let cors = &state.config.http.cors;
    let text = origin.origin().ascii_serialization();
    if cors.enabled && cors.origin.admits(&text) {
        return true;
    }
    if url::Url::parse(&state.config.public_url).is_ok_and(|public| public.origin() == origin.origin()) {
        return true;
    }
    let Some(host) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let (host_name, host_port) = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((name, tail)) => (name, tail.strip_prefix(':').and_then(|p| p.parse::<u16>().ok())),
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, port.parse::<u16>().ok()),
            None => (host, None),
        },
    };
    let origin_host = origin.host_str().unwrap_or_default();
    let origin_host = origin_host.trim_start_matches('[').trim_end_matches(']');
    let default_port = origin.port_or_known_default();
    origin_host.eq_ignore_ascii_case(host_name) && default_port == host_port.or(default_port)
}

/// `GET /websocket`: the upgrade.
pub async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let config = &state.config.realtime;
    if !config.ws_enabled || !config.ws_rest_enabled {
        return Err(Error::RouteNotFound {
            path: req.path().to_string(),
        }
        .into());
    }
    let Some(realtime) = state.realtime.clone() else {
        return Err(Error::ServiceUnavailable {
            service: "realtime".into(),
            reason: "the change feed is disabled".into(),
        }
        .into());
    };
    let open = realtime.connections.fetch_add(1, Ordering::AcqRel);
    if config.ws_conn_limit.is_some_and(|limit| open >= limit) {
        realtime.connections.fetch_sub(1, Ordering::AcqRel);
        return Ok(HttpResponse::Forbidden().finish());
    }
    // From here the session owns the count; until it starts, errors give it back.
    let refuse = |res: HttpResponse| {
        realtime.connections.fetch_sub(1, Ordering::AcqRel);
        Ok(res)
    };
    let client = client_of(&req, &state);
    let token = match token_of(&req, &state) {
        Ok(token) => token,
        Err(_) => return refuse(HttpResponse::Unauthorized().finish()),
    };
    // A browser sends the session cookie with any page's upgrade request, so a cookie-borne
    // upgrade from a foreign page would be a cross-site WebSocket hijack (CWE-1385).
    if token.as_ref().is_some_and(|(_, from_cookie)| *from_cookie) && !origin_allowed(&req, &state) {
        tracing::debug!("websocket upgrade with the session cookie from a foreign origin refused");
        return refuse(HttpResponse::Forbidden().finish());
    }
    let upgrade_auth = config.ws_auth == WsAuthMode::Strict
        || token.as_ref().is_some_and(|(_, _)| {
            req.query_string().contains("access_token=")
                || super::super::auth::token_of_session_cookie(&req, &state).is_some()
        });
    let (caller, expires) = if upgrade_auth {
        let token = token.map(|(t, _)| t);
        match auth::authenticate_session(&state.services, token.as_deref(), &client).await {
            Ok((acc, expires, credential)) if acc.user.is_some() => (Some((acc, credential)), expires),
            _ => return refuse(HttpResponse::Unauthorized().finish()),
        }
    } else {
        (None, None)
    };
    let mut response = match actix_http::ws::handshake(req.head()) {
        Ok(response) => response,
        Err(err) => {
            realtime.connections.fetch_sub(1, Ordering::AcqRel);
            return Err(err.into());
        }
    };
    let stream = wire::incoming(body, config.ws_max_message_size)
        .map(|read| read.map_err(wire::WireError::unreadable));
    let outbox = crate::actors::outbox::Outbox::for_config(config);
    let uids = session::Uids::default();
    let connections = realtime.connections.clone();
    let services = state.services.clone();
    let queue = session::Queue {
        outbox: outbox.clone(),
        uids: uids.clone(),
    };
    let addr = session::WsSession::create(move |ctx| {
        ctx.add_stream(stream);
        let mut session = session::WsSession::new(services, realtime, client, caller, queue, connections);
        session::arm_expiry(&mut session, expires, ctx);
        session
    });
    let body = actix_web::body::BodyStream::new(wire::outgoing(outbox, uids, addr.recipient()));
    Ok(response
        .message_body(actix_web::body::MessageBody::boxed(body))?
        .into())
}
