//! [`StreamSession`]: one `/stream` (SSE) connection, as an actor. Only it changes the stream's
//! caller and its attachments; the response body (`http::realtime::sse`) drains its [`Outbox`]
//! as SSE text. [`open`] compiles and attaches every requested collection through the one
//! subscribe path (`actors::subscription::attach`), then starts the actor; an access change
//! re-plans it ([`Replan`]), the token's expiry ends it with an `error` event (the client
//! reconnects with a fresh token and `Last-Event-ID`, losing nothing).

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture,
    WrapFuture,
};
use serde_json::{Map, Value};

use crate::actors::feeds::{CollectionFeed, Detach, Move, Realtime};
use crate::actors::outbox::{Outbox, SubId, next_sub_id};
use crate::actors::sessions::{Replan, SessionRegistry};
use crate::actors::subscription::{self, Opening};
use crate::config::SlowConsumer;
use crate::core::pgoutput::Lsn;
use crate::core::realtime::shape::EventKind;
use crate::error::Error;
use crate::service::{Accountability, Services, auth};

/// What a `/stream` request asked for, parsed by the transport.
pub struct StreamRequest {
    pub collections: Vec<String>,
    pub event: Option<EventKind>,
    pub item: Option<String>,
    /// The items query (`fields`, `filter`, …) every collection reads with.
    pub params: Map<String, Value>,
    /// `Last-Event-ID` / `since`: resume after this transaction.
    pub since: Option<Lsn>,
    pub policy: SlowConsumer,
}

/// Who the stream acts for, as the transport authenticated it.
pub struct Caller {
    pub acc: Accountability,
    pub credential: auth::Credential,
    pub expires: Option<i64>,
    pub ip: std::net::IpAddr,
}

/// Compiles and attaches every collection of `request` for `caller` (their `init` events
/// queued first), then starts the stream's actor; the actor and the outbox its body drains.
/// Nothing stays attached when any collection fails.
pub async fn open(
    services: &Services,
    realtime: &Realtime,
    caller: Caller,
    request: StreamRequest,
) -> Result<(Guard, Arc<Outbox>), Error> {
    let Caller {
        acc,
        credential,
        expires,
        ip,
    } = caller;
    let mut compiled = Vec::with_capacity(request.collections.len());
    for collection in &request.collections {
        compiled.push(subscription::compile(
            services,
            &acc,
            collection,
            request.event,
            request.item.clone(),
            &request.params,
        )?);
    }
    if request.since.is_some() {
        realtime.wait_for_floor().await;
    }
    let outbox = crate::actors::outbox::Outbox::for_config(&services.config.realtime);
    // Exactly sized: every open stream keeps it.
    let mut attached: Vec<StreamSub> = Vec::with_capacity(compiled.len());
    // One copy of the query for all the stream's collections.
    let wanted_params = subscription::params_text(&request.params);
    for sub in &compiled {
        let id = next_sub_id();
        let opening = match request.since {
            // Several collections: replay the id's own transaction too (see the module docs
            // of `http::realtime::sse`).
            Some(lsn) if compiled.len() > 1 => Opening::Resume(Lsn(lsn.0.saturating_sub(1))),
            Some(lsn) => Opening::Resume(lsn),
            None => Opening::Rows,
        };
        let collection = sub.collection.clone();
        let init = |data: Option<&str>| {
            data.map(|data| {
                format!(
                    "event: init\ndata: {{\"type\":\"subscription\",\"event\":\"init\",\"collection\":{},\"data\":{data}}}\n\n",
                    Value::String(collection.to_string())
                )
            })
        };
        match subscription::attach(
            realtime,
            services,
            sub,
            id,
            &outbox,
            request.policy,
            opening,
            init,
        )
        .await
        {
            Ok(feed) => attached.push(StreamSub {
                feed,
                sub: id,
                group: subscription::group_id(&sub.group),
                wanted: subscription::Wanted::new(
                    &sub.collection,
                    request.event,
                    request.item.as_deref(),
                    wanted_params.clone(),
                ),
            }),
            Err(err) => {
                for attached in attached {
                    attached.feed.do_send(Detach { sub: attached.sub });
                }
                return Err(err);
            }
        }
    }
    let id = next_sub_id();
    let sessions = realtime.sessions.clone();
    let session = StreamSession {
        id,
        services: services.clone(),
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
    Ok((Guard(session), outbox))
}

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
pub struct StreamSession {
    id: SubId,
    services: Services,
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
        crate::actors::sessions::end_on_shutdown(&self.closing, self.outbox.clone(), ctx);
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
        let services = self.services.clone();
        let credential = self.credential.clone();
        let ip = self.ip;
        let checked = async move {
            let client = crate::service::Client {
                ip: Some(ip),
                ..crate::service::Client::default()
            };
            auth::authenticate_credential(&services, &credential, &client).await
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
                match attached.wanted.compile(&session.services, &acc) {
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

/// Ends the stream (its response body is gone).
#[derive(Message)]
#[rtype(result = "()")]
pub struct End;

impl Handler<End> for StreamSession {
    type Result = ();

    fn handle(&mut self, _msg: End, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Ends the session when the response body holding it is dropped (the client went away).
pub struct Guard(Addr<StreamSession>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.do_send(End);
    }
}
