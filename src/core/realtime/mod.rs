//! Realtime's pure half: the committed changes the replication actor hands to the collection
//! feeds, and everything the feeds and sessions decide without I/O (subscription shapes,
//! retention rings, snapshot visibility, wire frames).
//!
//! ```text
//!  WAL ─► replication actor ─► Committed (one transaction, JSON rows) ─► feed hub
//!          (db/replication.rs,     event.rs                                │ per collection
//!           actors/replication.rs)                                         ▼
//!                                         collection feed: ring + subscription groups ─► sessions
//! ```

pub mod access_change;
pub mod collab;
pub mod event;
pub mod frame;
pub mod protocol;
pub mod ring;
pub mod shape;
pub mod snapshot;

pub use access_change::AccessChange;
pub use event::{Committed, RowChange, RowOp};
