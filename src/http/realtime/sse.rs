//! `GET /stream`: live changes as Server-Sent Events, with the items query language and
//! `Last-Event-ID` resume (ours; Directus has no SSE).
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

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture,
    WrapFuture,
};
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use serde_json::{Map, Value};

use super::super::auth::client_of;
use super::super::state::AppState;
use super::subscription;
use crate::actors::feeds::{Attach, CollectionFeed, Detach, GetFeed, Move, Ready, Start};
use crate::actors::outbox::{Outbox, Outgoing, SubId, next_sub_id};
use crate::actors::sessions::{Replan, SessionRegistry};
use crate::config::SlowConsumer;
use crate::core::pgoutput::Lsn;
use crate::core::query::params;
use crate::core::realtime::frame;
use crate::core::realtime::shape::EventKind;
use crate::error::Error;
use crate::service::auth;

/// Most items one write to the response takes from the outbox.
const BATCH: usize = 256;

/// One collection of a stream.
struct StreamSub {
    feed: Addr<CollectionFeed>,
    sub: SubId,
    /// Its feed group, and what it was compiled from (for re-planning).
    group: subscription::GroupId,
    wanted: subscription::Wanted,
}

/// One stream: its caller, its attachments (detached when the client goes away), and the end
/// of its token's lifetime.
struct StreamSession {
    id: SubId,
    state: web::Data<AppState>,
    /// Where access changes find this stream (entered by the handler that starts it).
    sessions: Arc<SessionRegistry>,
    closing: tokio_util::sync::CancellationToken,
    /// What the stream authenticated with (never the token itself), to authenticate again
    /// when rights change.
    credential: auth::Credential,
    ip: std::net::IpAddr,
    /// When the token's access ends (Unix seconds): the stream ends then.
    expires: Option<i64>,
    outbox: Arc<Outbox>,
    attached: Vec<StreamSub>,
}

impl Actor for StreamSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        super::end_on_shutdown(&self.closing, self.outbox.clone(), ctx);
        if let Some(expires) = self.expires {
            // The client reconnects with a fresh token and `Last-Event-ID`, losing nothing.
            let left = u64::try_from(expires - chrono::Utc::now().timestamp()).unwrap_or(0);
            ctx.run_later(Duration::from_secs(left), |session, _| {
                session.end_with(&Error::TokenExpired, None);
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.sessions.leave(self.id);
        self.outbox.close();
        for attached in self.attached.drain(..) {
            attached.feed.do_send(Detach { sub: attached.sub });
        }
    }
}

impl StreamSession {
    /// Ends the stream with an `error` event: the client must not simply reconnect as before.
    fn end_with(&mut self, err: &Error, collection: Option<&str>) {
        self.outbox.end_with(error_event(err, collection));
    }
}

/// `event: error` with `{"type":"error","error":{"code","message"},"collection"?}`.
fn error_event(err: &Error, collection: Option<&str>) -> String {
    let mut data = serde_json::json!({
        "type": "error",
        "error": {"code": err.code(), "message": err.to_string()},
    });
    if let Some(collection) = collection {
        data["collection"] = Value::String(collection.to_string());
    }
    format!("event: error\ndata: {data}\n\n")
}

impl Handler<Replan> for StreamSession {
    type Result = ResponseActFuture<Self, ()>;

    /// Authenticates the stream's token again and compiles every collection again: a moved
    /// group moves, a collection it may no longer read (or credentials that no longer work)
    /// ends the stream with an `error` event.
    fn handle(&mut self, _msg: Replan, _ctx: &mut Context<Self>) -> Self::Result {
        let state = self.state.clone();
        let credential = self.credential.clone();
        let ip = self.ip;
        let checked = async move {
            let client = crate::service::Client {
                ip: Some(ip),
                ..crate::service::Client::default()
            };
            auth::authenticate_credential(&state.services, &credential, &client).await
        };
        Box::pin(checked.into_actor(self).then(|result, session, _| {
            let acc = match result {
                Ok((acc, _)) => acc,
                Err(err) => {
                    tracing::info!(error = %err, "stream credentials no longer valid");
                    session.end_with(&err, None);
                    return Box::pin(actix::fut::ready(())) as ResponseActFuture<Self, ()>;
                }
            };
            session
                .sessions
                .acting_for(session.id, acc.user, acc.session.clone());
            let mut moves = Vec::new();
            for attached in &mut session.attached {
                match attached.wanted.compile(&session.state, &acc) {
                    Ok(compiled) if subscription::group_id(&compiled.group) == attached.group => {}
                    Ok(compiled) => {
                        attached.group = subscription::group_id(&compiled.group);
                        moves.push(attached.feed.send(Move {
                            sub: attached.sub,
                            spec: compiled.spec,
                            group: compiled.group,
                        }));
                    }
                    Err(_) => {
                        let collection = attached.wanted.collection.clone();
                        session.end_with(&Error::Forbidden, Some(&collection));
                        return Box::pin(actix::fut::ready(()));
                    }
                }
            }
            Box::pin(
                futures_util::future::join_all(moves)
                    .into_actor(session)
                    .map(|_, _, _| ()),
            )
        }))
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct End;

impl Handler<End> for StreamSession {
    type Result = ();

    fn handle(&mut self, _msg: End, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Ends the session when the response body is dropped (the client went away).
struct Guard(Addr<StreamSession>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.do_send(End);
    }
}

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
    let mut compiled = Vec::new();
    for collection in &collections {
        compiled.push(subscription::compile(
            &state,
            &acc,
            collection,
            event,
            item.clone(),
            &params,
        )?);
    }
    if since.is_some() {
        realtime.wait_for_floor().await;
    }

    let outbox = super::outbox(&state.config.realtime);
    let policy = match param(&params, "backpressure") {
        None => state.config.realtime.slow_consumer,
        Some(text) => SlowConsumer::parse(text)
            .ok_or_else(|| Error::query("\"backpressure\" must be one of [coalesce, resync, disconnect]"))?,
    };
    // Exactly sized: every open stream keeps it.
    let mut attached = Vec::with_capacity(compiled.len());
    // One copy of the query for all the stream's collections.
    let wanted_params = subscription::params_text(&params);
    for sub in &compiled {
        let feed = realtime
            .hub
            .send(GetFeed(sub.collection.clone()))
            .await
            .map_err(Error::internal)?;
        let id = next_sub_id();
        let start = match since {
            // Several collections: replay the id's own transaction too (see the module docs).
            Some(lsn) if compiled.len() > 1 => Start::Since(Lsn(lsn.0.saturating_sub(1))),
            Some(lsn) => Start::Since(lsn),
            None => Start::Snapshot,
        };
        let snapshot_start = matches!(start, Start::Snapshot);
        feed.send(Attach {
            sub: id,
            outbox: outbox.clone(),
            policy,
            spec: sub.spec.clone(),
            group: sub.group.clone(),
            start,
        })
        .await
        .map_err(Error::internal)?;
        attached.push(StreamSub {
            feed: feed.clone(),
            sub: id,
            group: subscription::group_id(&sub.group),
            wanted: subscription::Wanted::new(&sub.collection, event, item.as_deref(), wanted_params.clone()),
        });
        if snapshot_start {
            match sub.init(&state).await {
                Ok((data, snapshot)) => {
                    outbox.push_text(format!(
                        "event: init\ndata: {{\"type\":\"subscription\",\"event\":\"init\",\"collection\":{},\"data\":{data}}}\n\n",
                        Value::String(sub.collection.to_string())
                    ));
                    feed.do_send(Ready { sub: id, snapshot });
                }
                Err(err) => {
                    for attached in attached {
                        attached.feed.do_send(Detach { sub: attached.sub });
                    }
                    return Err(err);
                }
            }
        }
    }
    let id = next_sub_id();
    let sessions = realtime.sessions.clone();
    let session = StreamSession {
        id,
        state: state.clone(),
        sessions: sessions.clone(),
        closing: realtime.closing.clone(),
        credential,
        ip,
        expires,
        outbox: outbox.clone(),
        attached,
    }
    .start();
    // Before the actor runs at all, so it cannot have stopped (and left) yet.
    sessions.enter(id, session.downgrade().recipient());
    sessions.acting_for(id, acc.user, acc.session.clone());
    let keepalive = state.config.realtime.sse_keepalive;
    let body = events(outbox, Guard(session), keepalive);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
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
