//! [`FeedHub`]: receives committed transactions from the replication actor, routes each
//! collection's part to its feed (started on first use), and holds the slot's confirm position
//! behind every ring's oldest change.
//!
//! A transaction that changed access rights is a barrier: before it (and anything after it)
//! is routed, every feed delivers what it holds, the access cache is emptied, and every
//! session the change touches re-plans its subscriptions. The replication actor waits for the
//! answer, so nothing committed later reaches anyone under the old rights.
//!
//! Queues: a transaction goes to each feed with `try_send` into a mailbox of
//! [`FEED_MAILBOX`](super::feed::FEED_MAILBOX); when one is full the answer to `Deliver` waits
//! for room, so the replication consumer stops reading the slot (Postgres keeps the WAL) and
//! nothing is dropped or reordered. Control messages (`Floor`, `Gapped`, `Flush`) are rare and
//! go unbounded with `do_send`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, Arbiter, ArbiterHandle, AsyncContext, Context, Handler, Message,
    ResponseActFuture, WrapFuture,
};

use super::feed::{Apply, CollectionFeed, Floor, Flush, Gapped};
use crate::actors::collab::{Changed, CollabHub};
use crate::actors::replication::{Deliver, Recreated, ReplicationStatus};
use crate::actors::sessions::{Replan, SessionRegistry};
use crate::core::pgoutput::Lsn;
use crate::core::realtime::Committed;
use crate::core::realtime::ring::Slice;
use crate::service::access_cache::AccessCache;
use tracing::Instrument;

/// Ring bounds for every feed.
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    pub retention_changes: usize,
    pub retention: Duration,
}

/// The replication consumer's status, for where it resumed (the rings' floor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchReplication(pub Arc<ReplicationStatus>);

/// The feed of a collection (started if needed).
#[derive(Message)]
#[rtype(result = "Addr<CollectionFeed>")]
pub struct GetFeed(pub Arc<str>);

/// How long the sessions an access change touches have to re-plan before the feed moves on
/// without the slow ones (logged): a stuck session must not stop every other one's changes.
const REPLAN_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether replication has attached, so resumes can be answered.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct FloorKnown;

pub struct FeedHub {
    settings: FeedSettings,
    arbiter: ArbiterHandle,
    feeds: HashMap<Arc<str>, (Addr<CollectionFeed>, Arc<AtomicU64>)>,
    /// What the replication actor may confirm at most: the oldest retained commit.
    hold: Arc<AtomicU64>,
    /// Where replication resumed; unknown until it attaches.
    floor: Lsn,
    /// The last transaction routed (a restarted feed's history starts there).
    last: Lsn,
    replication: Option<Arc<ReplicationStatus>>,
    /// Collab rooms follow saves and deletes of their items.
    collab: Option<Addr<CollabHub>>,
    /// The sessions an access change may touch.
    sessions: Arc<SessionRegistry>,
    /// Emptied at an access change, before sessions re-plan from the database.
    access: Option<Arc<AccessCache>>,
}

impl FeedHub {
    /// Starts the hub and its feeds on an arbiter of their own; returns its address and the
    /// hold the replication actor confirms behind.
    pub fn start(
        settings: FeedSettings,
        collab: Option<Addr<CollabHub>>,
        sessions: Arc<SessionRegistry>,
        access: Option<Arc<AccessCache>>,
    ) -> (Addr<FeedHub>, Arc<AtomicU64>) {
        let arbiter = Arbiter::new().handle();
        let hold = Arc::new(AtomicU64::new(u64::MAX));
        let hub_hold = hold.clone();
        let handle = arbiter.clone();
        let addr = FeedHub::start_in_arbiter(&arbiter, move |_| FeedHub {
            settings,
            arbiter: handle,
            feeds: HashMap::new(),
            hold: hub_hold,
            floor: Lsn::UNKNOWN,
            last: Lsn(0),
            replication: None,
            collab,
            sessions,
            access,
        });
        (addr, hold)
    }

    fn feed(&mut self, collection: &Arc<str>) -> (Addr<CollectionFeed>, Arc<AtomicU64>) {
        if let Some(found) = self.feeds.get(collection) {
            if found.0.connected() {
                return found.clone();
            }
            // A feed that died (a panic is not supervised in actix) is started afresh so new
            // subscriptions work; its ring is lost, so the new one's history starts at the last
            // routed position. Its old subscribers are not told (known gap: they would need a
            // refetch); feed handlers hold no unwrap and index nothing, so this is for bugs.
            tracing::error!(collection = %collection, "collection feed died; starting a new one");
        }
        let restarted = self.feeds.contains_key(collection);
        let oldest = Arc::new(AtomicU64::new(u64::MAX));
        let settings = self.settings;
        let floor = if restarted && self.floor != Lsn::UNKNOWN {
            self.floor.max(self.last)
        } else {
            self.floor
        };
        let name = collection.clone();
        let feed_oldest = oldest.clone();
        let addr = CollectionFeed::start_in_arbiter(&self.arbiter, move |_| {
            CollectionFeed::new(
                name,
                settings.retention_changes,
                settings.retention,
                floor,
                feed_oldest,
            )
        });
        self.feeds
            .insert(collection.clone(), (addr.clone(), oldest.clone()));
        (addr, oldest)
    }

    /// Learns the floor once replication has attached.
    fn check_floor(&mut self) {
        if self.floor != Lsn::UNKNOWN {
            return;
        }
        if let Some(resumed) = self.replication.as_ref().and_then(|r| r.resumed_from()) {
            self.set_floor(resumed);
        }
    }

    fn set_floor(&mut self, floor: Lsn) {
        self.floor = if self.floor == Lsn::UNKNOWN {
            floor
        } else {
            self.floor.max(floor)
        };
        for (feed, _) in self.feeds.values() {
            feed.do_send(Floor(floor));
        }
    }

    fn update_hold(&self) {
        let oldest = self
            .feeds
            .values()
            .map(|(_, oldest)| oldest.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        // Nothing retained (`u64::MAX`): no hold, the consumer confirms what it delivered.
        self.hold.store(oldest, Ordering::Release);
    }
}

impl Actor for FeedHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Rings also age out while no change arrives; the hold follows them.
        ctx.run_interval(Duration::from_secs(1), |hub, _| {
            hub.check_floor();
            hub.update_hold();
        });
    }
}

impl FeedHub {
    /// What comes before routing a transaction that changed access rights (see the module
    /// docs).
    fn barrier(&self, committed: &Committed) -> impl std::future::Future<Output = ()> + 'static {
        let feeds: Vec<Addr<CollectionFeed>> = self.feeds.values().map(|(feed, _)| feed.clone()).collect();
        let access = self.access.clone();
        let sessions = self.sessions.clone();
        let changes = committed.access.clone();
        let span = tracing::info_span!("access_change", xid = committed.xid, lsn = %committed.end_lsn, sessions = tracing::field::Empty);
        let traced = span.clone();
        async move {
            futures_util::future::join_all(feeds.iter().map(|feed| feed.send(Flush))).await;
            if let Some(access) = &access {
                access.clear();
            }
            let touched = sessions.touched(&changes);
            span.record("sessions", touched.len());
            let replans = futures_util::future::join_all(touched.iter().map(|s| s.send(Replan)));
            if tokio::time::timeout(REPLAN_TIMEOUT, replans).await.is_err() {
                tracing::warn!(timeout = ?REPLAN_TIMEOUT, "sessions did not re-plan in time; delivering on");
            }
        }
        .instrument(traced)
    }

    /// Hands each collection's part of `committed` to its feed; the sends to feeds whose
    /// mailbox is full ([`super::feed::FEED_MAILBOX`]) come back to be waited for, in order.
    fn route(&mut self, committed: Arc<Committed>) -> Vec<actix::prelude::Request<CollectionFeed, Apply>> {
        let mut waiting = Vec::new();
        if let Some(collab) = &self.collab {
            collab.do_send(Changed(committed.clone()));
        }
        let received = Instant::now();
        for collection in committed.collections() {
            let (feed, oldest) = self.feed(&collection);
            let changes = committed
                .changes
                .iter()
                .filter(|c| c.collection == collection)
                .cloned()
                .collect();
            // Counted as retained before the feed has it, so the hold never runs ahead.
            let _ = oldest.compare_exchange(
                u64::MAX,
                committed.commit_lsn.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            let apply = Apply {
                slice: Arc::new(Slice {
                    xid: committed.xid,
                    commit_lsn: committed.commit_lsn,
                    end_lsn: committed.end_lsn,
                    commit_ts: committed.commit_ts,
                    changes,
                    more: committed.more,
                    first: committed.first,
                }),
                received,
            };
            match feed.try_send(apply) {
                Ok(()) => {}
                Err(actix::prelude::SendError::Full(apply)) => waiting.push(feed.send(apply)),
                // A feed that stopped has nobody to deliver to.
                Err(actix::prelude::SendError::Closed(_)) => {}
            }
        }
        self.last = self.last.max(committed.end_lsn);
        self.update_hold();
        waiting
    }
}

impl Handler<Deliver> for FeedHub {
    /// Answered once routed (the replication consumer sends the next only then): after the
    /// barrier for a transaction that changed access rights, and after room was found in every
    /// feed whose mailbox was full.
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Deliver, _ctx: &mut Context<Self>) -> Self::Result {
        self.check_floor();
        let committed = msg.0;
        if committed.access.is_empty() {
            return wait_for(self.route(committed));
        }
        let barrier = self.barrier(&committed);
        Box::pin(
            barrier
                .into_actor(self)
                .then(move |(), hub, _| wait_for(hub.route(committed))),
        )
    }
}

/// Waits for the sends [`FeedHub::route`] could not place at once.
fn wait_for(waiting: Vec<actix::prelude::Request<CollectionFeed, Apply>>) -> ResponseActFuture<FeedHub, ()> {
    if waiting.is_empty() {
        return Box::pin(actix::fut::ready(()));
    }
    tracing::debug!(feeds = waiting.len(), "feed mailboxes full; waiting for room");
    Box::pin(actix::fut::wrap_future(async move {
        futures_util::future::join_all(waiting).await;
    }))
}

impl Handler<Recreated> for FeedHub {
    type Result = ();

    /// A gap: no feed can replay across it, and every subscriber must read again.
    fn handle(&mut self, msg: Recreated, _ctx: &mut Context<Self>) {
        self.floor = if self.floor == Lsn::UNKNOWN {
            msg.from
        } else {
            self.floor.max(msg.from)
        };
        for (feed, _) in self.feeds.values() {
            feed.do_send(Gapped { floor: msg.from });
        }
    }
}

impl Handler<GetFeed> for FeedHub {
    type Result = Addr<CollectionFeed>;

    fn handle(&mut self, msg: GetFeed, _ctx: &mut Context<Self>) -> Addr<CollectionFeed> {
        self.feed(&msg.0).0
    }
}

impl Handler<FloorKnown> for FeedHub {
    type Result = bool;

    fn handle(&mut self, _msg: FloorKnown, _ctx: &mut Context<Self>) -> bool {
        self.check_floor();
        self.floor != Lsn::UNKNOWN
    }
}

impl Handler<WatchReplication> for FeedHub {
    type Result = ();

    fn handle(&mut self, msg: WatchReplication, _ctx: &mut Context<Self>) {
        self.replication = Some(msg.0);
        self.check_floor();
    }
}
