//! How a [`WsSession`]'s subscriptions follow its caller's rights: after an access change
//! ([`Replan`], sent by the feed hub at its barrier) and after the caller changes (`auth`
//! again, expiry in `public` mode). Each subscription is compiled again; one whose group is
//! unchanged stays as it is, one whose group changed moves (its events now come from the new
//! group), one the caller may no longer read ends with `FORBIDDEN` for its `uid`. Credentials
//! that no longer authenticate end every subscription and the connection.

use actix::{ActorFutureExt, Context, Handler, ResponseActFuture, WrapFuture};

use super::{WsAuthMode, WsSession};
use crate::actors::feeds::Move;
use crate::actors::sessions::Replan;
use crate::actors::subscription;
use crate::core::realtime::protocol;
use crate::error::Error;
use crate::service::auth;

/// Close code of a connection whose credentials stopped working (a policy violation, 1008).
const CLOSE_REVOKED: u16 = 1008;

impl WsSession {
    /// Checks every subscription for the caller just set (`auth`, or the public after expiry),
    /// then lets held events go. A subscription that moves gets `refetch` (`reason: "auth"`):
    /// what it had waiting was computed for the previous caller and is dropped.
    pub(super) fn caller_changed(&mut self) -> ResponseActFuture<Self, ()> {
        Box::pin(self.replan(true).map(|(), session, _| session.outbox.resume()))
    }

    /// Compiles every subscription again for the current caller (see the module docs).
    /// `reauth`: the caller itself changed, so what moved subscriptions had waiting is dropped
    /// and they are told to refetch; at an access change nothing is in flight (the hub's
    /// barrier), and what they had waiting was theirs to see when it was committed.
    fn replan(&mut self, reauth: bool) -> ResponseActFuture<Self, ()> {
        let Some(acc) = self.acc.clone() else {
            return Box::pin(actix::fut::ready(()));
        };
        let mut refused = Vec::new();
        let mut moves = Vec::new();
        for (key, attached) in &mut self.subs {
            match attached.kept.wanted.compile(&self.services, &acc) {
                Ok(compiled) if subscription::group_id(&compiled.group) == attached.kept.group => {}
                Ok(compiled) => {
                    attached.kept.group = subscription::group_id(&compiled.group);
                    let collection = compiled.collection.clone();
                    let moved = attached.feed.send(Move {
                        sub: attached.sub,
                        spec: compiled.spec,
                        group: compiled.group,
                    });
                    moves.push((attached.sub, collection, moved));
                }
                Err(err) => refused.push((key.clone(), err)),
            }
        }
        for (key, err) in refused {
            self.refuse(&key, &err);
        }
        let subs: Vec<_> = moves
            .iter()
            .map(|(sub, collection, _)| (*sub, collection.clone()))
            .collect();
        let sent = futures_util::future::join_all(moves.into_iter().map(|(_, _, moved)| moved));
        Box::pin(sent.into_actor(self).map(move |_, session, _| {
            if reauth {
                for (sub, collection) in subs {
                    session.outbox.discard(sub);
                    session.outbox.push_refetch(sub, collection, "auth", None);
                }
            }
        }))
    }

    /// Ends subscription `key` because its reader may no longer read it.
    fn refuse(&mut self, key: &str, err: &Error) {
        let Some(attached) = self.subs.get(key) else {
            return;
        };
        // The uid its events carry, kept as JSON text.
        let uid: Option<serde_json::Value> = self
            .uids
            .borrow()
            .get(&attached.sub)
            .and_then(|uid| uid.as_deref().and_then(|text| serde_json::from_str(text).ok()));
        self.outbox.discard(attached.sub);
        self.detach(key);
        let message = match err {
            Error::Forbidden | Error::ForbiddenCollection { .. } | Error::ForbiddenField { .. } => {
                err.to_string()
            }
            _ => Error::Forbidden.to_string(),
        };
        self.send(protocol::error("subscribe", "FORBIDDEN", &message, uid.as_ref()));
    }

    /// The caller's credentials stopped working (user suspended or deleted, token or session
    /// revoked): every subscription ends with `FORBIDDEN`, the client is told why, and the
    /// connection closes (in `public` mode it carries on as the public instead).
    fn revoked(&mut self, err: Error, ctx: &mut Context<Self>) {
        let keys: Vec<String> = self.subs.keys().cloned().collect();
        for key in keys {
            self.refuse(&key, &Error::Forbidden);
        }
        self.set_caller(None, auth::Credential::Public);
        self.auth_epoch += 1;
        let reply = protocol::error("auth", err.code(), &err.to_string(), None);
        if self.mode == WsAuthMode::Public {
            self.send(reply);
            self.become_public(ctx);
        } else {
            self.outbox.set_close_reason(CLOSE_REVOKED, "credentials revoked");
            self.send_and_close(reply, ctx);
        }
    }
}

impl Handler<Replan> for WsSession {
    type Result = ResponseActFuture<Self, ()>;

    /// Authenticates the caller's token again (its user, role, policies and session as they are
    /// now), then re-plans every subscription.
    fn handle(&mut self, _msg: Replan, _ctx: &mut Context<Self>) -> Self::Result {
        if self.acc.is_none() || self.closing {
            return Box::pin(actix::fut::ready(()));
        }
        let state = self.services.clone();
        let credential = self.credential.clone();
        let client = self.client.clone();
        let epoch = self.auth_epoch;
        let checked = async move { auth::authenticate_credential(&state, &credential, &client).await };
        Box::pin(checked.into_actor(self).then(move |result, session, ctx| {
            if session.auth_epoch != epoch || session.acc.is_none() {
                // The caller changed meanwhile; that change re-planned already.
                return Box::pin(actix::fut::ready(())) as ResponseActFuture<Self, ()>;
            }
            match result {
                Ok((acc, _)) => {
                    let credential = session.credential.clone();
                    session.set_caller(Some(acc), credential);
                    session.replan(false)
                }
                Err(Error::TokenExpired) => {
                    session.expire(ctx);
                    Box::pin(actix::fut::ready(()))
                }
                Err(err) => {
                    tracing::info!(error = %err, "websocket credentials no longer valid");
                    session.revoked(err, ctx);
                    Box::pin(actix::fut::ready(()))
                }
            }
        }))
    }
}
