//! The realtime transports: `/websocket` (Directus's protocol, [`ws`]) and `/stream` (SSE,
//! [`sse`]). Here the upgrade, the request parsing and the framing; the sessions themselves are
//! actors (`actors::ws_session`, `actors::sse_session`), which drain into a session outbox the
//! response bodies here write out.

pub mod sse;
pub mod ws;
