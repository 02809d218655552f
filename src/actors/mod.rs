//! Long-lived mutable state, one actor per file with its messages beside it.
//!
//! Now: the schema actor and the static-token cache its listener empties; realtime's replication
//! consumer (a folder: actor, session, conversion), the feed hub and its collection feeds, the
//! session outbox they fill, the registry of open sessions (which access changes reach), and the
//! collab rooms hub. The WebSocket and SSE session actors live
//! with their transports in `http::realtime`, since they authenticate through the HTTP layer.
//! Hook pipeline and scheduler join here in later issues.

pub mod collab;
pub mod feeds;
pub mod outbox;
pub mod replication;
pub mod schema;
pub mod sessions;
