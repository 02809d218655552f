//! [`WsSession`]: one WebSocket connection, as an actor, speaking Directus's realtime protocol.
//! Only it changes the connection's caller, its subscriptions and its [`Outbox`]; the response
//! body (`http::realtime::ws::wire`) drains the outbox onto the socket, so feeds never wait on
//! a slow client, and hands it whole incoming messages ([`Inbound`]). Messages are handled one
//! at a time, in order (`ctx.wait`), as a client that sends `auth` then `subscribe` expects.
//! Its `items` messages go to the items service ([`items`]), its `auth` to `service::auth`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, SpawnHandle, StreamHandler,
    WrapFuture,
};
use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;

use crate::actors::collab::{self as collab_hub, FieldRights};
use crate::actors::feeds::{CollectionFeed, Detach, Realtime};
use crate::actors::outbox::next_sub_id;
use crate::actors::outbox::{Outbox, SubId};
use crate::actors::subscription;
use crate::config::{SlowConsumer, WsAuthMode};
use crate::core::access::{Action, FieldSet};
use crate::core::password;
use crate::core::realtime::collab::{CollabError, ConnId};
use crate::core::realtime::protocol::{
    self, AuthRequest, AuthStep, ClientMessage, CollabRequest, ItemsAction, ItemsRequest, Subscribe, Target,
};
use crate::error::Error;
use crate::service::Client;
use crate::service::auth::{self, login};
use crate::service::{Accountability, Services};

mod items;
mod rights;

/// Close codes (RFC 6455 §7.4.1) a session closes with when a frame cannot be taken.
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// A whole message from the client (continuations already joined by the transport).
#[derive(Debug)]
pub enum Inbound {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    Close,
}

/// The client's side of the socket cannot be read further: close with this code and reason.
#[derive(Debug)]
pub struct Unreadable {
    pub code: u16,
    pub reason: &'static str,
    /// What went wrong, for the log.
    pub detail: String,
}

/// The reply to a request that failed with `err`: Directus's forwarded error where it sends one,
/// else the error itself, answered as `reply_type` with the request's `uid`.
fn error_reply(reply_type: &str, err: &Error, uid: Option<&serde_json::Value>) -> String {
    service_error(reply_type, err)
        .unwrap_or_else(|| protocol::error(reply_type, err.code(), &err.to_string(), uid))
}

/// A service error inside a handler, as `handleWebSocketError` forwards a Directus error:
/// code and message, never the `uid`. `None` where Directus sends nothing and only logs:
/// unexpected errors, and validation failures (its services throw those as an array, which is
/// not a Directus error).
fn service_error(reply_type: &str, err: &Error) -> Option<String> {
    match err {
        Error::Internal(_) | Error::FailedValidation { .. } => None,
        err => Some(protocol::error(reply_type, err.code(), &err.to_string(), None)),
    }
}

/// How often a connection measures how far behind its client reads (see `actors::outbox`).
const LAG_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Subscription uids by id, read by the socket's writer to finish each event.
/// Each uid is kept as its JSON text, which is how every event carries it.
pub type Uids = Rc<RefCell<HashMap<SubId, Option<Box<str>>>>>;

/// What the session shares with the socket's writer (`http::realtime::ws::wire::outgoing`).
pub struct Queue {
    pub outbox: Arc<Outbox>,
    pub uids: Uids,
}

struct Attached {
    sub: SubId,
    feed: actix::Addr<CollectionFeed>,
    /// The feed group it is in, and what it was compiled from (for re-planning); boxed, as
    /// it is used only then and the map holding it keeps spare room.
    kept: Box<subscription::Kept>,
}

pub struct WsSession {
    services: Services,
    realtime: Realtime,
    /// Where the connection came from (the upgrade request's address, user agent, origin).
    client: Client,
    mode: WsAuthMode,
    /// The caller; `None` until a handshake `auth` (or after the token expired).
    acc: Option<Accountability>,
    /// What the caller authenticated with (never the token itself), to authenticate again
    /// when rights change.
    credential: auth::Credential,
    /// Bumped on every successful `auth`, so an old expiry timer knows it is stale.
    auth_epoch: u64,
    outbox: Arc<Outbox>,
    /// By the key the client unsubscribes with (`String(uid)`, or a generated one).
    subs: HashMap<String, Attached>,
    uids: Uids,
    /// Message-rate bucket: tokens left and when it was last filled.
    bucket: (f64, Instant),
    /// Messages refused by the rate limit since the last one taken.
    refused: u32,
    handshake_timer: Option<SpawnHandle>,
    connections: Arc<AtomicUsize>,
    /// A closing message is on its way: nothing more is read.
    closing: bool,
    /// A heartbeat `ping` went out and the client has said nothing since.
    awaiting: bool,
    /// This connection in collab rooms.
    conn: ConnId,
}

impl WsSession {
    pub fn new(
        services: Services,
        realtime: Realtime,
        client: Client,
        caller: Option<(Accountability, auth::Credential)>,
        queue: Queue,
        connections: Arc<AtomicUsize>,
    ) -> WsSession {
        let (acc, credential) = match caller {
            Some((acc, credential)) => (Some(acc), credential),
            None => (None, auth::Credential::Public),
        };
        let Queue { outbox, uids } = queue;
        let config = &services.config.realtime;
        let mode = config.ws_auth;
        let points = f64::from(config.ws_rate_points);
        WsSession {
            mode,
            acc,
            credential,
            auth_epoch: 0,
            outbox,
            subs: HashMap::new(),
            uids,
            bucket: (points, Instant::now()),
            refused: 0,
            handshake_timer: None,
            connections,
            closing: false,
            awaiting: false,
            conn: ConnId(next_sub_id()),
            realtime,
            client,
            services,
        }
    }

    /// (Re-)introduces this connection to the collab hub with its current user.
    fn register_collab(&self) {
        self.realtime.collab.do_send(collab_hub::Register {
            conn: self.conn,
            outbox: self.outbox.clone(),
            user: self.acc.as_ref().and_then(|a| a.user).map(|u| u.to_string()),
        });
    }

    /// Any message from the client proves it alive.
    fn heard(&mut self) {
        self.awaiting = false;
    }

    fn send(&self, text: String) {
        self.outbox.push_text(text);
    }

    /// Sends `text`, then closes, once the writer has had a moment to put it on the wire.
    fn send_and_close(&mut self, text: String, ctx: &mut Context<Self>) {
        self.send(text);
        self.closing = true;
        ctx.run_later(Duration::from_millis(50), |_, ctx| ctx.stop());
    }

    /// A frame the protocol forbids: the error reply, then a close with `code`.
    fn refuse_frame(&mut self, (code, reason): (u16, &'static str), ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        let reply = protocol::error(
            "server",
            "INVALID_PAYLOAD",
            "Unable to parse the incoming message.",
            None,
        );
        self.outbox.set_close_reason(code, reason);
        self.send_and_close(reply, ctx);
    }

    /// Arms the expiry of the current token.
    fn watch_expiry(&mut self, expires: Option<i64>, ctx: &mut Context<Self>) {
        let Some(expires) = expires else { return };
        let epoch = self.auth_epoch;
        let wait = Duration::from_secs(u64::try_from(expires - Utc::now().timestamp()).unwrap_or(0));
        ctx.run_later(wait, move |session, ctx| {
            if session.auth_epoch == epoch {
                session.expire(ctx);
            }
        });
    }

    /// The token expired: no event goes out until the client authenticates again (events wait,
    /// within the queue's bound); `AUTH_TIMEOUT` and a close follow if it does not in time.
    /// In `public` mode the connection falls back to the public's rights at once.
    fn expire(&mut self, ctx: &mut Context<Self>) {
        let epoch = self.auth_epoch;
        self.set_caller(None, auth::Credential::Public);
        self.outbox.suspend();
        self.send(protocol::token_expired());
        if self.mode == WsAuthMode::Public {
            self.become_public(ctx);
            return;
        }
        let timeout = self.services.config.realtime.ws_auth_timeout;
        ctx.run_later(timeout, move |session, ctx| {
            if session.auth_epoch == epoch && session.acc.is_none() {
                session.send_and_close(protocol::auth_timeout(), ctx);
            }
        });
    }

    /// The caller from now on, here and in the session registry.
    fn set_caller(&mut self, acc: Option<Accountability>, credential: auth::Credential) {
        let (user, session) = acc
            .as_ref()
            .map_or((None, None), |acc| (acc.user, acc.session.clone()));
        self.realtime.sessions.acting_for(self.conn.0, user, session);
        self.acc = acc;
        self.credential = credential;
    }

    /// Acts for the public from now on; subscriptions are checked again for its rights.
    fn become_public(&mut self, ctx: &mut Context<Self>) {
        let state = self.services.clone();
        let client = self.client.clone();
        ctx.wait(
            async move { auth::authenticate_token(&state, None, &client).await }
                .into_actor(self)
                .then(|result, session, _| {
                    match result {
                        Ok((acc, _)) => session.set_caller(Some(acc), auth::Credential::Public),
                        Err(err) => tracing::warn!(error = %err, "cannot load the public's rights"),
                    }
                    session.caller_changed()
                }),
        );
    }

    /// Takes one message-rate token; `Err(ms)` until the next one when none is left.
    fn take_token(&mut self) -> Result<(), u64> {
        let config = &self.services.config.realtime;
        if !config.ws_rate_enabled {
            return Ok(());
        }
        let points = f64::from(config.ws_rate_points);
        let per_sec = points / config.ws_rate_duration.as_secs_f64();
        let now = Instant::now();
        let (tokens, at) = self.bucket;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * per_sec).min(points);
        if tokens >= 1.0 {
            self.bucket = (tokens - 1.0, now);
            Ok(())
        } else {
            self.bucket = (tokens, now);
            Err(((1.0 - tokens) / per_sec * 1000.0).ceil() as u64)
        }
    }

    fn detach(&mut self, key: &str) {
        if let Some(attached) = self.subs.remove(key) {
            self.uids.borrow_mut().remove(&attached.sub);
            self.outbox.forget(attached.sub);
            attached.feed.do_send(Detach { sub: attached.sub });
        }
    }

    fn detach_all(&mut self) {
        let keys: Vec<String> = self.subs.keys().cloned().collect();
        for key in keys {
            self.detach(&key);
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.heard();
        if let Err(ms) = self.take_token() {
            self.send(protocol::requests_exceeded(ms));
            // A client that keeps sending through the refusals is not going to slow down.
            self.refused += 1;
            if self.refused > self.services.config.realtime.ws_rate_points.saturating_mul(2) {
                self.outbox.set_close_reason(1008, "too many messages");
                self.send_and_close(protocol::requests_exceeded(ms), ctx);
            }
            return;
        }
        self.refused = 0;
        let message = match protocol::parse(text) {
            Ok(message) => message,
            Err(err) => {
                if self.acc.is_none() && self.mode != WsAuthMode::Public && err.reply_type != "server" {
                    self.send_and_close(protocol::auth_handshake_failed(), ctx);
                } else if let Some(reply) = err.reply() {
                    self.send(reply);
                }
                return;
            }
        };
        let needs_auth = !matches!(
            message,
            ClientMessage::Auth(_) | ClientMessage::Ping { .. } | ClientMessage::Pong { .. }
        );
        if needs_auth && self.acc.is_none() {
            // Handshake mode: anything but `auth` first fails the handshake.
            self.send_and_close(protocol::auth_handshake_failed(), ctx);
            return;
        }
        match message {
            ClientMessage::Auth(request) => self.on_auth(request, ctx),
            ClientMessage::Subscribe(request) => self.on_subscribe(request, ctx),
            ClientMessage::Unsubscribe { uid } => {
                match &uid {
                    Some(uid) => self.detach(&protocol::js_string(uid)),
                    None => self.detach_all(),
                }
                self.send(protocol::unsubscribed(uid.as_ref()));
            }
            ClientMessage::Items(request) => {
                let state = self.services.clone();
                let Some(acc) = self.acc.clone() else { return };
                ctx.wait(
                    async move { items::handle(&state, &acc, request).await }
                        .into_actor(self)
                        .map(|reply, session, _| session.send(reply)),
                );
            }
            ClientMessage::Ping { uid } => self.send(protocol::pong(uid.as_ref())),
            ClientMessage::Pong { .. } | ClientMessage::Custom { .. } => {}
            ClientMessage::Collab(request) => {
                if !self.services.config.realtime.collab_enabled {
                    let trigger = Value::String(request.action().to_string());
                    self.send(protocol::collab_disabled(Some(&trigger)));
                    return;
                }
                self.on_collab(request, ctx);
            }
        }
    }

    /// A collab request: a `join` first proves the caller may read the item and takes the
    /// field rights it holds on the collection to the room.
    fn on_collab(&mut self, request: CollabRequest, ctx: &mut Context<Self>) {
        let conn = self.conn;
        let collab = self.realtime.collab.clone();
        let CollabRequest::Join(join) = &request else {
            collab.do_send(collab_hub::Request {
                conn,
                request,
                rights: None,
            });
            return;
        };
        let Some(acc) = self.acc.clone() else { return };
        let state = self.services.clone();
        let join = join.clone();
        let work = async move {
            let rights = collab_rights(&state, &acc, &join.collection)?;
            if !join.item.is_null() {
                let read = ItemsRequest {
                    uid: None,
                    collection: join.collection.clone(),
                    action: ItemsAction::Read {
                        target: Target::One(join.item.clone()),
                        query: None,
                    },
                };
                let reply = items::handle(&state, &acc, read).await;
                if reply.contains("\"status\":\"error\"") {
                    return None;
                }
            }
            Some(rights)
        };
        ctx.wait(work.into_actor(self).map(move |rights, session, _| match rights {
            Some(rights) => collab.do_send(collab_hub::Request {
                conn,
                request,
                rights: Some(rights),
            }),
            None => session.send(CollabError::NoItemAccess.reply("join")),
        }));
    }

    fn on_auth(&mut self, request: AuthRequest, ctx: &mut Context<Self>) {
        let state = self.services.clone();
        let client = self.client.clone();
        let uid = request.uid.clone();
        ctx.wait(
            async move { authenticate(&state, &client, request.steps).await }
                .into_actor(self)
                .map(move |result, session, ctx| match result {
                    Ok((acc, credential, expires, refresh)) => {
                        session.set_caller(Some(acc), credential);
                        session.auth_epoch += 1;
                        if let Some(timer) = session.handshake_timer.take() {
                            ctx.cancel_future(timer);
                        }
                        session.watch_expiry(expires, ctx);
                        session.register_collab();
                        session.send(protocol::auth_ok(uid.as_ref(), refresh.as_deref()));
                        // Every subscription is checked again for whoever this is now.
                        ctx.wait(session.caller_changed());
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "websocket auth failed");
                        if session.mode == WsAuthMode::Public {
                            session.send(protocol::auth_failed(uid.as_ref()));
                        } else {
                            session.send_and_close(protocol::auth_failed(uid.as_ref()), ctx);
                        }
                    }
                }),
        );
    }

    fn on_subscribe(&mut self, request: Subscribe, ctx: &mut Context<Self>) {
        let Some(acc) = self.acc.clone() else { return };
        let reply_uid = request.reply_uid();
        let key = match &reply_uid {
            Some(Value::String(uid)) => uid.clone(),
            _ => format!("\u{0}{}", next_sub_id()),
        };
        // Re-using a uid replaces the earlier subscription (Directus's code does).
        self.detach(&key);
        let max = self.services.config.realtime.max_subscriptions;
        if self.subs.len() >= max {
            let err = Error::LimitExceeded {
                what: format!("Too many subscriptions on this connection (at most {max})."),
            };
            self.send(protocol::error(
                "subscribe",
                err.code(),
                &err.to_string(),
                reply_uid.as_ref(),
            ));
            return;
        }
        let compiled = match subscription::compile(
            &self.services,
            &acc,
            &request.collection,
            request.event,
            request.item_key(),
            &request.query.clone().unwrap_or_default(),
        ) {
            Ok(compiled) => compiled,
            Err(Error::Forbidden | Error::ForbiddenCollection { .. }) => {
                self.send(protocol::invalid_collection("subscribe", reply_uid.as_ref()));
                return;
            }
            Err(err) => {
                self.send(error_reply("subscribe", &err, reply_uid.as_ref()));
                return;
            }
        };
        let sub = next_sub_id();
        let compiled_group = compiled.group.clone();
        self.uids
            .borrow_mut()
            .insert(sub, reply_uid.as_ref().map(|uid| uid.to_string().into()));
        let state = self.services.clone();
        let realtime = self.realtime.clone();
        let outbox = self.outbox.clone();
        let policy = request
            .backpressure
            .as_deref()
            .and_then(SlowConsumer::parse)
            .unwrap_or(state.config.realtime.slow_consumer);
        let since = request.since;
        let with_data = request.event.is_none() && since.is_none();
        let init_uid = reply_uid.clone();
        let work = async move {
            if since.is_some() {
                realtime.wait_for_floor().await;
            }
            let opening = match since {
                Some(lsn) => subscription::Opening::Resume(lsn),
                None if with_data => subscription::Opening::Rows,
                None => subscription::Opening::Empty,
            };
            let mut bad_rows = None;
            let init = |data: Option<&str>| {
                let data = match data.map(serde_json::from_str::<Value>) {
                    None => None,
                    Some(Ok(data)) => Some(data),
                    Some(Err(err)) => {
                        bad_rows = Some(err);
                        None
                    }
                };
                Some(protocol::subscription_init(
                    init_uid.as_ref(),
                    data.as_ref(),
                    None,
                ))
            };
            let feed =
                subscription::attach(&realtime, &state, &compiled, sub, &outbox, policy, opening, init)
                    .await?;
            if let Some(err) = bad_rows {
                // Postgres built the rows as JSON; this would be a bug of ours.
                tracing::error!(error = %err, "init rows are not JSON");
            }
            Ok::<_, Error>(feed)
        };
        let wanted = subscription::Wanted::new(
            &request.collection,
            request.event,
            request.item_key().as_deref(),
            subscription::params_text(&request.query.clone().unwrap_or_default()),
        );
        let group = subscription::group_id(&compiled_group);
        ctx.wait(work.into_actor(self).map(move |result, session, _| match result {
            Ok(feed) => {
                let attached = Attached {
                    sub,
                    feed,
                    kept: Box::new(subscription::Kept { group, wanted }),
                };
                session.subs.insert(key, attached);
            }
            Err(err) => {
                session.uids.borrow_mut().remove(&sub);
                session.send(error_reply("subscribe", &err, reply_uid.as_ref()));
            }
        }));
    }
}

/// What `acc` may read and edit of `collection`'s fields; `None` when it may not read it.
fn collab_rights(state: &Services, acc: &Accountability, collection: &str) -> Option<FieldRights> {
    if acc.admin {
        return Some(FieldRights::default());
    }
    let snapshot = state.schema();
    let vars = acc.variables();
    let set = |action: Action| -> Option<Option<HashSet<String>>> {
        match acc
            .access
            .resolve(&snapshot, collection, action, &vars)
            .ok()??
            .fields()
        {
            FieldSet::All => Some(None),
            FieldSet::Only(fields) => Some(Some(fields.iter().cloned().collect())),
        }
    };
    let read = set(Action::Read)?;
    let edit = set(Action::Update).unwrap_or(Some(HashSet::new()));
    Some(FieldRights { read, edit })
}

/// Runs an `auth` message's steps in Directus's order; any failure fails it.
async fn authenticate(
    state: &Services,
    client: &Client,
    steps: Vec<AuthStep>,
) -> Result<(Accountability, auth::Credential, Option<i64>, Option<String>), Error> {
    let mut access_token: Option<String> = None;
    let mut refresh_token: Option<String> = None;
    for step in steps {
        match step {
            AuthStep::Login { email, password } => {
                let input = login::Login {
                    email,
                    password,
                    otp: None,
                };
                let issued = login::login(state, client, &input, login::Mode::Json).await?;
                access_token = Some(issued.access_token);
                refresh_token = Some(issued.refresh_token);
            }
            AuthStep::Refresh {
                refresh_token: presented,
            } => {
                let digest = password::token_digest(&presented);
                let issued = login::refresh(state, client, &digest, login::Mode::Json).await?;
                access_token = Some(issued.access_token);
                refresh_token = Some(issued.refresh_token);
            }
            AuthStep::AccessToken { access_token: token } => access_token = Some(token),
            AuthStep::Unusable => return Err(Error::InvalidCredentials),
        }
    }
    let token = access_token.ok_or(Error::InvalidCredentials)?;
    let (acc, expires, credential) = auth::authenticate_session(state, Some(&token), client).await?;
    if acc.user.is_none() {
        return Err(Error::InvalidCredentials);
    }
    Ok((acc, credential, expires, refresh_token))
}

impl Actor for WsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let sessions = self.realtime.sessions.clone();
        sessions.enter(self.conn.0, ctx.address().downgrade().recipient());
        self.set_caller(self.acc.clone(), self.credential.clone());
        self.register_collab();
        crate::actors::sessions::end_on_shutdown(&self.realtime.closing, self.outbox.clone(), ctx);
        let services = self.services.clone();
        let config = &services.config.realtime;
        if self.acc.is_none() {
            match self.mode {
                WsAuthMode::Public => self.become_public(ctx),
                _ => {
                    let timeout = config.ws_auth_timeout;
                    self.handshake_timer = Some(ctx.run_later(timeout, |session, ctx| {
                        if session.acc.is_none() {
                            session.send_and_close(protocol::auth_handshake_failed(), ctx);
                        }
                    }));
                }
            }
        }
        // One ticker per connection: every second the lag probe (a ping frame in line with its
        // events), every heartbeat period the heartbeat.
        let heartbeat = config.heartbeat_enabled.then(|| {
            (config.heartbeat_period.as_secs_f64() / LAG_PROBE_INTERVAL.as_secs_f64())
                .round()
                .max(1.0) as u64
        });
        let mut ticks: u64 = 0;
        ctx.run_interval(LAG_PROBE_INTERVAL, move |session, ctx| {
            session.outbox.probe();
            ticks += 1;
            let Some(every) = heartbeat else { return };
            if !ticks.is_multiple_of(every) {
                return;
            }
            if session.awaiting {
                // Pinged a period ago and nothing at all came back: gone.
                ctx.stop();
                return;
            }
            session.awaiting = true;
            session.send(protocol::ping());
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.realtime.sessions.leave(self.conn.0);
        self.realtime
            .collab
            .do_send(collab_hub::Unregister { conn: self.conn });
        self.detach_all();
        self.outbox.close();
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Ends the session (the socket closed or the writer failed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for WsSession {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Starts the session with the token the upgrade carried, if any.
pub fn arm_expiry(session: &mut WsSession, expires: Option<i64>, ctx: &mut Context<WsSession>) {
    session.auth_epoch += 1;
    session.watch_expiry(expires, ctx);
}

impl StreamHandler<Result<Inbound, Unreadable>> for WsSession {
    fn handle(&mut self, item: Result<Inbound, Unreadable>, ctx: &mut Context<Self>) {
        match item {
            // A text frame must be UTF-8 (RFC 6455 §8.1): otherwise 1007.
            Ok(Inbound::Text(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text, ctx),
                Err(_) => self.refuse_frame((CLOSE_INVALID_DATA, "invalid utf-8"), ctx),
            },
            // Directus reads a binary frame as text too.
            Ok(Inbound::Binary(bytes)) => {
                let text = String::from_utf8_lossy(&bytes);
                self.on_text(&text, ctx);
            }
            Ok(Inbound::Ping(bytes)) => {
                self.heard();
                self.outbox.push_pong(bytes);
            }
            // A pong to our lag probe is the client's WebSocket library speaking, not the
            // client: it does not count as the heartbeat's answer.
            Ok(Inbound::Pong(payload)) => {
                if !self.outbox.answered(&payload) {
                    self.heard();
                }
            }
            Ok(Inbound::Close) => ctx.stop(),
            Err(err) => {
                // An oversized or malformed frame: say why and close; the server carries on.
                tracing::debug!(error = %err.detail, "websocket protocol error");
                self.refuse_frame((err.code, err.reason), ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // A closing reply (a protocol error's) is still on its way; its timer stops us.
        if !self.closing {
            ctx.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_forward_directus_errors_only() {
        let forbidden = service_error("items", &Error::Forbidden);
        assert_eq!(
            forbidden.as_deref(),
            Some(
                r#"{"type":"items","status":"error","error":{"code":"FORBIDDEN","message":"You don't have permission to access this."}}"#
            )
        );
        let internal = Error::internal(anyhow::anyhow!("boom"));
        assert_eq!(service_error("items", &internal), None);
    }
}
