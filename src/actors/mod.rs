//! Long-lived mutable state, one actor per file with its messages beside it.
//!
//! Now: the schema actor and the static-token cache its listener empties, and the replication
//! consumer (a folder: actor, session, conversion). Collection feeds, socket sessions, hook
//! pipeline and scheduler join here in later issues.

pub mod access_cache;
pub mod collab;
pub mod feeds;
pub mod outbox;
pub mod replication;
pub mod schema;
