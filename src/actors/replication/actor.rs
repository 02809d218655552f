//! [`ReplicationActor`]: owns the consumer's lifecycle. It runs each walsender session as a
//! task on its own arbiter, watches the task's `JoinHandle`, and when a session fails stops
//! itself so its `Supervisor` restarts it, which waits out a capped back-off and starts a new
//! session. Nothing here can panic; a panic inside a session ends only that task.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinError;

use super::session::{self, Outcome, Shared};
use crate::db::pool;

/// Connections the consumer's own pool may open (catalog queries between stream events).
const POOL_SIZE: u32 = 2;
/// First reconnect delay; doubled per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The supervised consumer (see the module docs).
pub struct ReplicationActor {
    shared: Arc<Shared>,
    /// Made on first use, inside this actor's arbiter, so its I/O stays on this thread.
    pool: Option<PgPool>,
    stop: watch::Sender<bool>,
    /// True while no session task runs.
    idle: watch::Sender<bool>,
    /// Failed attempts since the last session that reached streaming.
    attempt: u32,
    /// Off for good (the server or role cannot stream); no more attempts.
    disabled: bool,
}

impl ReplicationActor {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        ReplicationActor {
            shared,
            pool: None,
            stop: watch::Sender::new(false),
            idle: watch::Sender::new(true),
            attempt: 0,
            disabled: false,
        }
    }

    fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    fn spawn_session(&mut self, ctx: &mut Context<Self>) {
        if self.disabled || self.stop_requested() || !*self.idle.borrow() {
            return;
        }
        let settings = &self.shared.settings;
        let pool = self
            .pool
            .get_or_insert_with(|| pool::connect_lazy(settings.options.clone(), POOL_SIZE))
            .clone();
        self.idle.send_replace(false);
        let task = actix::spawn(session::run(self.shared.clone(), pool, self.stop.subscribe()));
        ctx.spawn(
            task.into_actor(self)
                .map(|joined, act, ctx| act.session_ended(joined, ctx)),
        );
    }

    fn session_ended(&mut self, joined: Result<Outcome, JoinError>, ctx: &mut Context<Self>) {
        self.idle.send_replace(true);
        let slot = self.shared.settings.slot.as_str();
        let status = &self.shared.status;
        let (streamed, permanent, error) = match joined {
            Ok(Outcome { result: Ok(()), .. }) => return,
            Ok(Outcome {
                streamed,
                result: Err(error),
            }) => (streamed, error.is_permanent(), error.to_string()),
            Err(join) => (false, false, format!("replication session crashed: {join}")),
        };
        status.set_error(Some(error.clone()));
        if permanent {
            tracing::error!(slot, error = %error, "realtime replication is disabled");
            self.disabled = true;
            status.set_disabled();
            return;
        }
        self.attempt = if streamed {
            0
        } else {
            self.attempt.saturating_add(1)
        };
        tracing::warn!(slot, error = %error, retry_in = ?backoff(self.attempt), "replication session ended; reconnecting");
        // The supervisor restarts us; `started` waits out the back-off.
        ctx.stop();
    }
}

impl Actor for ReplicationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.disabled || self.stop_requested() {
            return;
        }
        let delay = if self.shared.status.reconnects() == 0 {
            Duration::ZERO
        } else {
            backoff(self.attempt)
        };
        ctx.run_later(delay, |act, ctx| act.spawn_session(ctx));
    }
}

impl Supervised for ReplicationActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.shared.status.count_reconnect();
    }
}

/// Ends the current session gracefully (final status update sent) and starts no other; the
/// reply comes once the session is over and the pool closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct Stop;

impl Handler<Stop> for ReplicationActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Stop, _: &mut Context<Self>) -> Self::Result {
        self.stop.send_replace(true);
        let mut idle = self.idle.subscribe();
        let pool = self.pool.clone();
        Box::pin(async move {
            let _ = idle.wait_for(|idle| *idle).await;
            if let Some(pool) = pool {
                pool.close().await;
            }
        })
    }
}

/// `FIRST_BACKOFF · 2^attempt`, at most [`MAX_BACKOFF`].
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(1), FIRST_BACKOFF * 2);
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
