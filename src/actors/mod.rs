//! Long-lived mutable state, one actor per file with its messages beside it.
//!
//! Now: the schema actor. The replication consumer, collection feeds, socket sessions, hook
//! pipeline and scheduler join here in later issues.

pub mod schema;
