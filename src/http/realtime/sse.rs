//! `GET /stream`: live changes as Server-Sent Events, with the items query language and
//! `Last-Event-ID` resume (ours; Directus has no SSE). This file parses the request,
//! authenticates it and writes the stream; the session is `actors::sse_session`.
//!
//! `?collection=a,b` (required), `event=create|update|delete`, `item=<key>` (one collection),
//! `backpressure=coalesce|resync|disconnect` (default `REALTIME_SLOW_CONSUMER`),
//! and `fields`, `filter`, `search`, `deep`… as on `/items`. Auth as on every route (header,
//! cookie, `access_token`). Each subscribed collection first gets an `init` event with its rows
//! (read under a snapshot the feed hands off from, so nothing falls between); then
//! `create`/`update`/`delete` events whose `id:` is the transaction's LSN. A reconnect with
//! `Last-Event-ID` (or `?since=`) replays what followed, or sends `refetch` when that history
//! is gone. With several collections the resume replays the id's own transaction too (its parts
//! for different collections travel separately), so that one may arrive twice.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use serde_json::{Map, Value};

use super::super::auth::client_of;
use super::super::state::AppState;
use crate::actors::outbox::{Outbox, Outgoing};
use crate::actors::sse_session::{self, Caller, Guard, StreamRequest};
use crate::config::SlowConsumer;
use crate::core::pgoutput::Lsn;
use crate::core::query::params;
use crate::core::realtime::frame;
use crate::core::realtime::shape::EventKind;
use crate::error::Error;
use crate::service::auth;

/// Most items one write to the response takes from the outbox.
const BATCH: usize = 256;

fn param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `GET /stream`.
pub async fn stream(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    if !state.config.realtime.sse_enabled {
        return Err(Error::RouteNotFound {
            path: req.path().to_string(),
        });
    }
    let realtime = state.realtime.clone().ok_or_else(|| Error::ServiceUnavailable {
        service: "realtime".into(),
        reason: "the change feed is disabled".into(),
    })?;
    // The caller as every route finds it, plus what re-planning needs: the token and its end.
    let client = client_of(&req, &state);
    let ip = client
        .ip
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let token = super::super::auth::token_of(&req, &state)?.map(|(token, _)| token);
    let (acc, expires, credential) =
        auth::authenticate_session(&state.services, token.as_deref(), &client).await?;
    let request = parse(&req, &state)?;
    let caller = Caller {
        acc,
        credential,
        expires,
        ip,
    };
    let (guard, outbox) = sse_session::open(&state.services, &realtime, caller, request).await?;
    let body = events(outbox, guard, state.config.realtime.sse_keepalive);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// The stream's parameters, checked.
fn parse(req: &HttpRequest, state: &AppState) -> Result<StreamRequest, Error> {
    let params = params::decode(req.query_string()).map_err(|e| Error::query(e.to_string()))?;
    let collections: Vec<String> = param(&params, "collection")
        .ok_or_else(|| Error::query("\"collection\" is required"))?
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    let max = state.config.realtime.max_subscriptions;
    if collections.len() > max {
        return Err(Error::LimitExceeded {
            what: format!("Too many collections in one stream (at most {max})."),
        });
    }
    let event = match param(&params, "event") {
        None => None,
        Some(text) => Some(
            EventKind::parse(text)
                .ok_or_else(|| Error::query("\"event\" must be one of [create, update, delete]"))?,
        ),
    };
    let item = param(&params, "item").map(str::to_string);
    if item.is_some() && collections.len() > 1 {
        return Err(Error::query("\"item\" needs exactly one collection"));
    }
    let since = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| param(&params, "since").map(str::to_string))
        .filter(|s| !s.is_empty());
    let since = match since {
        None => None,
        Some(text) => Some(
            text.parse::<Lsn>()
                .map_err(|_| Error::query("Last-Event-ID must be an event id (an LSN like 0/16B3748)"))?,
        ),
    };
    let policy = match param(&params, "backpressure") {
        None => state.config.realtime.slow_consumer,
        Some(text) => SlowConsumer::parse(text)
            .ok_or_else(|| Error::query("\"backpressure\" must be one of [coalesce, resync, disconnect]"))?,
    };
    Ok(StreamRequest {
        collections,
        event,
        item,
        params,
        since,
        policy,
    })
}

/// The response body: batches from the outbox as SSE text, keep-alive comments when idle.
fn events(
    outbox: Arc<Outbox>,
    guard: Guard,
    keepalive: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    // A comment first, so clients and proxies see the stream open at once.
    let state = (outbox, guard, Vec::new(), true);
    stream::unfold(state, move |(outbox, guard, mut batch, first)| async move {
        if first {
            return Some((
                Ok(Bytes::from_static(b": connected\n\n")),
                (outbox, guard, batch, false),
            ));
        }
        batch.clear();
        let next = tokio::time::timeout(keepalive, outbox.next_batch(&mut batch, BATCH)).await;
        let text = match next {
            Err(_) => ": keep-alive\n\n".to_string(),
            Ok(Err(_)) => return None,
            Ok(Ok(())) => {
                let mut text = String::new();
                let drained = std::mem::take(&mut batch);
                for item in drained {
                    match item {
                        Outgoing::Event(_, event) => text.push_str(&event.sse()),
                        Outgoing::Refetch {
                            collection,
                            reason,
                            lsn,
                            ..
                        } => {
                            text.push_str("event: refetch\ndata: ");
                            text.push_str(&frame::refetch(reason, &collection, lsn, None));
                            text.push_str("\n\n");
                        }
                        Outgoing::Text(t) => text.push_str(&t),
                        Outgoing::Pong(_) | Outgoing::Ping(_) => {}
                    }
                }
                text
            }
        };
        Some((Ok(Bytes::from(text)), (outbox, guard, batch, false)))
    })
}
