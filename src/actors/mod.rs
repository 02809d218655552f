//! Long-lived mutable state, one actor per file with its messages beside it.
//!
//! Now: the schema actor; realtime's replication consumer (a folder: actor, session,
//! conversion), the feed hub and its collection feeds, the session outbox they fill, the
//! registry of open sessions (which access changes reach), the collab rooms hub, and the
//! sessions themselves: [`ws_session`] (Directus's WebSocket protocol) and [`sse_session`]
//! (`/stream`), both subscribing through [`subscription`] (compile, then the one
//! GetFeed → Attach → init → Ready path). `http::realtime` keeps only the upgrade and the
//! framing. Hook pipeline and scheduler join here in later issues.

pub mod collab;
pub mod feeds;
pub mod outbox;
pub mod replication;
pub mod schema;
pub mod sessions;
pub mod sse_session;
pub mod subscription;
pub mod ws_session;
