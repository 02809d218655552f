//! The collection feeds: where committed changes meet subscriptions.
//!
//! ```text
//!  replication actor ──Deliver(Committed)──► FeedHub ──Apply(Slice)──► CollectionFeed (one per collection)
//!                                                                     │ ring (resume), groups by shape
//!                                                                     ▼
//!                                                  Outbox of each session (WebSocket or SSE)
//! ```
//!
//! The hub splits each transaction by collection and keeps the slot's confirm position behind
//! the oldest change any ring still holds, so a restarted server can rebuild its rings from the
//! slot. A feed classifies each change once per group of equal subscription shapes and pushes
//! the finished events into the members' outboxes; shapes that need related rows re-read the
//! changed keys on the group's own task, in order. All feeds run on the hub's arbiter.

mod feed;
mod hub;
mod reread;
#[cfg(test)]
mod tests;

pub use feed::{Attach, CollectionFeed, Detach, Move, Ready, Spec, Start};
pub use hub::{FeedHub, FeedSettings, FloorKnown, GetFeed, WatchReplication};
pub use reread::RereadContext;

use std::time::Duration;

use actix::Addr;

/// A subscription whose filter or read rule uses `$NOW`: compiled again for each transaction
/// at its commit time, as Directus resolves `$NOW` again for every event (compiled once, a
/// "last 24 hours" subscription would keep the window of the moment it subscribed).
pub trait Recompile: Send + Sync {
    /// The subscription as it reads at `now`; `None` when it no longer compiles.
    fn at(&self, now: chrono::DateTime<chrono::Utc>) -> Option<Recompiled>;
}

/// A subscription compiled again by [`Recompile`].
pub struct Recompiled {
    pub shape: std::sync::Arc<crate::core::realtime::shape::Shape>,
    pub reread: Option<std::sync::Arc<RereadContext>>,
}

/// What the transports hold: the hub, to find feeds.
#[derive(Clone)]
pub struct Realtime {
    pub hub: Addr<FeedHub>,
    /// Every open session, for access changes to reach.
    pub sessions: std::sync::Arc<crate::actors::sessions::SessionRegistry>,
    pub replication: Option<std::sync::Arc<crate::actors::replication::ReplicationStatus>>,
    /// Collaborative-editing rooms.
    pub collab: Addr<crate::actors::collab::CollabHub>,
    /// Open WebSocket connections, for `WEBSOCKETS_REST_CONN_LIMIT`.
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Cancelled when the server stops: every socket and stream ends.
    pub closing: tokio_util::sync::CancellationToken,
}

impl Realtime {
    /// Waits (up to five seconds) until replication has attached, so a resume is judged
    /// against where it resumed rather than refused while the server is starting.
    pub async fn wait_for_floor(&self) {
        for _ in 0..100 {
            if matches!(self.hub.send(FloorKnown).await, Ok(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
