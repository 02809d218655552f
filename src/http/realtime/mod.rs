//! The realtime transports: `/websocket` (Directus's protocol) and `/stream` (SSE). Both turn
//! subscriptions into feed attachments ([`subscription`]) and drain a session [`Outbox`] onto
//! the wire.
//!
//! [`Outbox`]: crate::actors::outbox::Outbox

pub mod sse;
pub mod subscription;
pub mod ws;
