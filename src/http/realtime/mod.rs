//! The realtime transports: `/websocket` (Directus's protocol) and `/stream` (SSE). Both turn
//! subscriptions into feed attachments ([`subscription`]) and drain a session [`Outbox`] onto
//! the wire.
//!
//! [`Outbox`]: crate::actors::outbox::Outbox

pub mod sse;
pub mod subscription;
pub mod ws;

/// A session's outbox, bounded as `REALTIME_OUTBOUND_*` say.
fn outbox(config: &crate::config::RealtimeConfig) -> std::sync::Arc<crate::actors::outbox::Outbox> {
    crate::actors::outbox::Outbox::bounded(
        config.outbound_queue,
        crate::actors::outbox::Bounds {
            bytes: config.outbound_bytes,
            age: config.outbound_max_age,
        },
    )
}

/// Ends a session's socket or stream when the server starts stopping (the outbox closes as
/// "going away"), and stops the session. Lives in the session's context, so it goes with it.
fn end_on_shutdown<A>(
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
