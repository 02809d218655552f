//! [`SessionRegistry`]: every open realtime session (a WebSocket connection or an SSE stream)
//! with whom it acts for, so that a change of rights reaches the sessions it touches.
//!
//! Only sessions change their own entries: they enter when they start, say whom they act for
//! whenever their caller changes (auth, expiry, re-auth), and leave when they stop. The feed
//! hub reads it at an access change and sends each touched session [`Replan`], waiting for the
//! answers before it delivers anything committed later.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use actix::{Message, Recipient, WeakRecipient};
use uuid::Uuid;

use crate::core::realtime::AccessChange;

/// Authenticate again and compile every subscription again; answered when the session's
/// subscriptions follow its current rights (moved, narrowed, or ended with `FORBIDDEN`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Replan;

struct Entry {
    /// `None`: the public, or nobody yet (before `auth`, after expiry).
    user: Option<Uuid>,
    /// The refresh session of a session-mode token (its digest).
    session: Option<Box<str>>,
    /// Weak: a strong actix address allocates per clone, and every open connection has one
    /// of these.
    replan: WeakRecipient<Replan>,
}

/// See the module docs.
#[derive(Default)]
pub struct SessionRegistry {
    entries: Mutex<HashMap<u64, Entry>>,
}

impl SessionRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while holding this lock left a whole map: nothing half-done.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A session starts, acting for nobody yet.
    pub fn enter(&self, id: u64, replan: WeakRecipient<Replan>) {
        self.lock().insert(
            id,
            Entry {
                user: None,
                session: None,
                replan,
            },
        );
    }

    /// The session now acts for `user` (with refresh session `session`).
    pub fn acting_for(&self, id: u64, user: Option<Uuid>, session: Option<String>) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.user = user;
            entry.session = session.map(String::into_boxed_str);
        }
    }

    /// The session stopped.
    pub fn leave(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// The sessions any of `changes` touches.
    pub fn touched(&self, changes: &[AccessChange]) -> Vec<Recipient<Replan>> {
        self.lock()
            .values()
            .filter(|e| changes.iter().any(|c| c.touches(e.user, e.session.as_deref())))
            .filter_map(|e| e.replan.upgrade())
            .collect()
    }

    /// Open sessions (for metrics and tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ends a session's socket or stream when the server starts stopping (the outbox closes as
/// "going away"), and stops the session. Lives in the session's context, so it goes with it.
pub fn end_on_shutdown<A>(
    closing: &tokio_util::sync::CancellationToken,
    outbox: std::sync::Arc<crate::actors::outbox::Outbox>,
    ctx: &mut actix::Context<A>,
) where
    A: actix::Actor<Context = actix::Context<A>>,
{
    use actix::{ActorContext, ActorFutureExt, AsyncContext};
    let closing = actix::fut::wrap_future::<_, A>(closing.clone().cancelled_owned());
    ctx.spawn(closing.map(move |(), _, ctx| {
        outbox.shut_down();
        ctx.stop();
    }));
}
