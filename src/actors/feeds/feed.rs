//! [`CollectionFeed`]: one collection's ring of recent changes and its subscription groups.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::{Actor, AsyncContext, Context, Handler, Message};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use chrono::{DateTime, Utc};

use super::Recompile;
use super::reread::RereadContext;
use crate::actors::outbox::{Outbox, SubId};
use crate::config::SlowConsumer;
use crate::core::pgoutput::Lsn;
use crate::core::realtime::event::{RowChange, RowOp};
use crate::core::realtime::frame::{Event, Item, runs};
use crate::core::realtime::ring::{Ring, Slice};
use crate::core::realtime::shape::{Outcome, Shape};
use crate::core::realtime::snapshot::Snapshot;

/// How often a feed lets changes older than the retention go while no new change arrives.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// Messages a feed's mailbox holds before the hub waits for room (`FeedHub` sends with
/// `try_send` and, when full, waits in order: the replication consumer stops reading the slot
/// meanwhile, Postgres keeps the WAL, nothing is dropped).
pub const FEED_MAILBOX: usize = 1024;

/// Slices a re-reading group's task may have queued. When full, the feed waits for room in
/// order (its mailbox then fills, and the hub waits as above); a joining member whose replay
/// does not fit is sent a `refetch` (reason `lagging`) instead and joins live.
pub const REREAD_QUEUE: usize = 4096;

/// How far before its attach a snapshot handoff re-examines the ring: a transaction can reach
/// the feed a moment before it becomes visible to new snapshots.
const HANDOFF_LOOKBACK: Duration = Duration::from_secs(1);

/// One subscriber of a group.
#[derive(Debug, Clone)]
pub(super) struct Member {
    sub: SubId,
    outbox: Arc<Outbox>,
    policy: SlowConsumer,
    /// Changes at or before this position were already seen (a resume point).
    after: Lsn,
    /// Inside a transaction handed out in parts: `(xid, n)`, its first `n` changes were
    /// already seen (a member moved between groups mid-transaction).
    within: Option<(u32, usize)>,
    /// The snapshot the subscriber's view was read under: transactions it saw are not sent
    /// again (after a restart the slot replays some). Transactions arrive in commit order and
    /// the snapshot sees exactly those committed before it, so the first one it doesn't see
    /// ends the need for it.
    seen: Option<Arc<Snapshot>>,
}

impl Member {
    /// Whether this member should get `slice`.
    fn wants(&mut self, slice: &Slice) -> bool {
        if let Some((xid, seen)) = self.within {
            if slice.xid == xid && slice.first < seen {
                return false;
            }
            if slice.xid != xid {
                self.within = None;
            }
        }
        if slice.end_lsn <= self.after {
            return false;
        }
        if let Some(snapshot) = &self.seen {
            if snapshot.sees(slice.xid) {
                return false;
            }
            self.seen = None;
        }
        true
    }

    /// Hands `slice` to this member, if it wants it: the slice's events, or after a TRUNCATE
    /// (which names no rows) a must-refetch.
    fn deliver(&mut self, slice: &Slice, collection: &str, events: &[Arc<Event>]) {
        if !self.wants(slice) {
            return;
        }
        if truncates(slice) {
            self.outbox
                .push_refetch(self.sub, collection.into(), "truncate", Some(slice.end_lsn));
        } else if !events.is_empty() {
            self.outbox.push_events(self.sub, self.policy, events);
        }
    }
}

fn truncates(slice: &Slice) -> bool {
    slice.changes.iter().any(|c| c.op == RowOp::Truncate)
}

/// An emitted change as an event item.
fn item(change: &RowChange, row: Option<serde_json::Map<String, serde_json::Value>>) -> Item {
    Item {
        key: change.key.clone(),
        row,
    }
}

type Members = Arc<Mutex<Vec<Member>>>;

fn lock(members: &Members) -> MutexGuard<'_, Vec<Member>> {
    members.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a group is made of: its shape, the re-read context when it reads, and how to compile
/// it again for a transaction's commit time when its filters read `$NOW`.
#[derive(Clone)]
pub struct Spec {
    pub shape: Arc<Shape>,
    pub reread: Option<Arc<RereadContext>>,
    pub recompile: Option<Arc<dyn Recompile>>,
}

impl Spec {
    /// The shape and re-read context in force for a transaction committed at `at` (the
    /// subscribe-time ones when compiling again fails, e.g. the schema moved on).
    fn at(&self, at: DateTime<Utc>) -> (Arc<Shape>, Option<Arc<RereadContext>>) {
        if let Some(fresh) = self.recompile.as_ref().and_then(|r| r.at(at)) {
            return (fresh.shape, fresh.reread);
        }
        (self.shape.clone(), self.reread.clone())
    }
}

/// Subscriptions with one shape.
struct Group {
    spec: Spec,
    members: Members,
    /// Re-reading groups process slices on their own task, in order ([`REREAD_QUEUE`]).
    worker: Option<mpsc::Sender<Work>>,
}

/// What a re-reading group's task does next, in order.
enum Work {
    /// A slice; `only` delivers it to one joining member.
    Slice { slice: Arc<Slice>, only: Option<Member> },
    /// Everything before this is delivered: say so.
    Flush(oneshot::Sender<()>),
}

/// Where a new subscription starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// Wait for [`Ready`] with the snapshot the `init` rows were read under.
    Snapshot,
    /// Replay what followed this position, then go live (must-refetch if it's gone).
    Since(Lsn),
    /// Live from now on, no init data (an `event` subscription).
    Now,
}

/// Adds a subscription. Answers when it is registered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub sub: SubId,
    pub outbox: Arc<Outbox>,
    pub policy: SlowConsumer,
    pub spec: Spec,
    /// The group key: the shape's key, plus who reads for re-reading shapes.
    pub group: String,
    pub start: Start,
}

/// The `init` rows of `sub` were read under `snapshot`: forward what it did not see, then live.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ready {
    pub sub: SubId,
    pub snapshot: Snapshot,
}

/// Removes a subscription.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub sub: SubId,
}

/// One transaction's changes to this collection, in commit order.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Apply {
    pub slice: Arc<Slice>,
    pub received: Instant,
}

/// Answers once every change this feed has received is in its subscribers' outboxes (the
/// re-reading groups' tasks included): the feed hub's barrier before an access change.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Flush;

/// Moves a subscription to another group (its reader's rights changed), keeping its place in
/// the stream: it gets no slice the feed has already handed to groups again, and every later
/// one from its new group. Exact at the hub's barrier, where nothing is in flight; elsewhere a
/// re-reading old group may still have had a slice for it in hand, which the session covers
/// with a refetch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Move {
    pub sub: SubId,
    pub spec: Spec,
    pub group: String,
}

/// Changes before `floor` may be missing (the slot was created again): nothing below it can be
/// replayed, and every subscriber gets a must-refetch.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Gapped {
    pub floor: Lsn,
}

/// Replication resumed at this position: the ring can't replay below it.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Floor(pub Lsn);

struct PendingJoin {
    group: String,
    member: Member,
    attached: Instant,
}

pub struct CollectionFeed {
    collection: Arc<str>,
    ring: Ring,
    /// The oldest retained commit position, read by the hub to hold the slot back.
    oldest: Arc<AtomicU64>,
    groups: HashMap<String, Group>,
    /// Which group each live subscription is in.
    /// Shares the group's key text rather than copying it per member.
    member_of: HashMap<SubId, Arc<str>>,
    group_keys: HashMap<String, Arc<str>>,
    pending: HashMap<SubId, PendingJoin>,
    /// Groups waiting for [`Ready`] keep their shape here until their first member joins.
    pending_shapes: HashMap<String, Spec>,
}

impl CollectionFeed {
    pub(super) fn new(
        collection: Arc<str>,
        retention_changes: usize,
        retention: Duration,
        floor: Lsn,
        oldest: Arc<AtomicU64>,
    ) -> CollectionFeed {
        CollectionFeed {
            collection,
            ring: Ring::new(retention_changes, retention, floor),
            oldest,
            groups: HashMap::new(),
            member_of: HashMap::new(),
            group_keys: HashMap::new(),
            pending: HashMap::new(),
            pending_shapes: HashMap::new(),
        }
    }

    fn publish_oldest(&self) {
        let oldest = self.ring.oldest_commit().map_or(u64::MAX, |l| l.0);
        self.oldest.store(oldest, Ordering::Release);
    }

    fn group(&mut self, key: &str, spec: Spec) -> &mut Group {
        self.groups.entry(key.to_string()).or_insert_with(|| {
            let members: Members = Arc::default();
            let worker = spec
                .reread
                .is_some()
                .then(|| spawn_worker(spec.clone(), members.clone()));
            Group {
                spec,
                members,
                worker,
            }
        })
    }

    /// Delivers `slices` to one joining member (replay), then makes it a live member.
    fn join(&mut self, key: &str, spec: Spec, mut member: Member, slices: Vec<Arc<Slice>>) {
        let sub = member.sub;
        let collection = self.collection.clone();
        let group = self.group(key, spec);
        match &group.worker {
            // Only this actor sends to the task, so the room seen here cannot shrink.
            Some(worker) if worker.capacity() < slices.len() => {
                tracing::warn!(collection = %collection, slices = slices.len(), "replay does not fit the re-read queue; refetch");
                member
                    .outbox
                    .push_refetch(member.sub, collection.clone(), "lagging", None);
            }
            Some(worker) => {
                for slice in slices {
                    let _ = worker.try_send(Work::Slice {
                        slice,
                        only: Some(member.clone()),
                    });
                }
            }
            None => {
                let mut joining = [member.clone()];
                for slice in slices {
                    let (shape, _) = group.spec.at(slice.commit_ts);
                    deliver_local(&shape, &collection, &slice, &mut joining);
                }
                let [joined] = joining;
                member = joined;
            }
        }
        lock(&group.members).push(member);
        let key: Arc<str> = self
            .group_keys
            .entry(key.to_string())
            .or_insert_with(|| Arc::from(key))
            .clone();
        self.member_of.insert(sub, key);
    }

    fn relocate(&mut self, sub: SubId, key: &str, spec: Spec) {
        if let Some(pending) = self.pending.get_mut(&sub) {
            // Not live yet: it joins the new group when its `init` is ready.
            pending.group = key.to_string();
            self.pending_shapes.insert(key.to_string(), spec);
            return;
        }
        let Some(old) = self.member_of.remove(&sub) else {
            return;
        };
        let Some(group) = self.groups.get(&*old) else {
            return;
        };
        let (member, empty) = {
            let mut members = lock(&group.members);
            let member = members
                .iter()
                .position(|m| m.sub == sub)
                .map(|at| members.remove(at));
            (member, members.is_empty())
        };
        if empty {
            self.groups.remove(&*old);
            self.group_keys.remove(&*old);
        }
        let Some(mut member) = member else { return };
        // Everything the feed has handed to groups is behind this member.
        if let Some(head) = self.ring.newest() {
            if head.more {
                // Mid-way through a transaction in parts: its later parts are still to come.
                member.after = member.after.max(head.commit_lsn);
                member.within = Some((head.xid, head.first + head.changes.len()));
            } else {
                member.after = member.after.max(head.end_lsn);
            }
        }
        self.join(key, spec, member, Vec::new());
    }

    fn detach(&mut self, sub: SubId) {
        self.pending.remove(&sub);
        let Some(key) = self.member_of.remove(&sub) else {
            return;
        };
        let empty = match self.groups.get(&*key) {
            Some(group) => {
                let mut members = lock(&group.members);
                members.retain(|m| m.sub != sub);
                members.is_empty()
            }
            None => false,
        };
        if empty {
            // Dropping the group drops its worker's sender, which ends the worker.
            self.groups.remove(&*key);
            self.group_keys.remove(&*key);
        }
    }
}

impl Actor for CollectionFeed {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(FEED_MAILBOX);
        // A collection nobody writes to any more still lets its history go: otherwise the
        // oldest change it retains would hold the slot (and its WAL) back for ever.
        ctx.run_interval(EXPIRY_INTERVAL, |feed, _| {
            feed.ring.expire(Instant::now());
            feed.publish_oldest();
        });
    }
}

impl Handler<Attach> for CollectionFeed {
    type Result = ();

    fn handle(&mut self, msg: Attach, _ctx: &mut Context<Self>) {
        let mut member = Member {
            sub: msg.sub,
            outbox: msg.outbox,
            policy: msg.policy,
            after: Lsn(0),
            within: None,
            seen: None,
        };
        match msg.start {
            Start::Now => self.join(&msg.group, msg.spec.clone(), member, Vec::new()),
            Start::Since(since) => {
                member.after = since;
                let replay = self
                    .ring
                    .since(since)
                    .map(|slices| slices.cloned().collect::<Vec<_>>());
                match replay {
                    Ok(slices) => {
                        self.join(&msg.group, msg.spec.clone(), member, slices);
                    }
                    Err(gap) => {
                        member
                            .outbox
                            .push_refetch(msg.sub, self.collection.clone(), "gap", Some(gap.floor));
                        member.after = Lsn(0);
                        self.join(&msg.group, msg.spec.clone(), member, Vec::new());
                    }
                }
            }
            Start::Snapshot => {
                self.pending_shapes.insert(msg.group.clone(), msg.spec);
                self.pending.insert(
                    msg.sub,
                    PendingJoin {
                        group: msg.group,
                        member,
                        attached: Instant::now(),
                    },
                );
            }
        }
    }
}

impl Handler<Ready> for CollectionFeed {
    type Result = ();

    fn handle(&mut self, msg: Ready, _ctx: &mut Context<Self>) {
        let Some(join) = self.pending.remove(&msg.sub) else {
            return;
        };
        let Some(spec) = self.pending_shapes.get(&join.group).cloned() else {
            return;
        };
        if !self.pending.values().any(|p| p.group == join.group) {
            self.pending_shapes.remove(&join.group);
        }
        let from = join
            .attached
            .checked_sub(HANDOFF_LOOKBACK)
            .unwrap_or(join.attached);
        let recent: Vec<Arc<Slice>> = self.ring.received_since(from).cloned().collect();
        let mut member = join.member;
        member.seen = Some(Arc::new(msg.snapshot));
        self.join(&join.group, spec, member, recent);
    }
}

impl Handler<Detach> for CollectionFeed {
    type Result = ();

    fn handle(&mut self, msg: Detach, _ctx: &mut Context<Self>) {
        self.detach(msg.sub);
    }
}

impl Handler<Flush> for CollectionFeed {
    type Result = actix::ResponseFuture<()>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Context<Self>) -> Self::Result {
        // Groups without a task delivered in `Apply`; the others say when they caught up.
        #[allow(clippy::type_complexity)]
        let caught_up: Vec<(mpsc::Sender<Work>, oneshot::Sender<()>, oneshot::Receiver<()>)> = self
            .groups
            .values()
            .filter_map(|group| {
                let worker = group.worker.clone()?;
                let (done, caught_up) = oneshot::channel();
                Some((worker, done, caught_up))
            })
            .collect();
        Box::pin(async move {
            for (worker, done, caught_up) in caught_up {
                if worker.send(Work::Flush(done)).await.is_ok() {
                    let _ = caught_up.await;
                }
            }
        })
    }
}

impl Handler<Move> for CollectionFeed {
    type Result = ();

    fn handle(&mut self, msg: Move, _ctx: &mut Context<Self>) {
        self.relocate(msg.sub, &msg.group, msg.spec);
    }
}

impl Handler<Gapped> for CollectionFeed {
    type Result = ();

    fn handle(&mut self, msg: Gapped, _ctx: &mut Context<Self>) {
        self.ring.raise_floor(msg.floor);
        let collection = self.collection.clone();
        let floor = Some(msg.floor);
        for group in self.groups.values() {
            for member in lock(&group.members).iter() {
                member
                    .outbox
                    .push_refetch(member.sub, collection.clone(), "gap", floor);
            }
        }
        for pending in self.pending.values() {
            let member = &pending.member;
            member
                .outbox
                .push_refetch(member.sub, collection.clone(), "gap", floor);
        }
    }
}

impl Handler<Floor> for CollectionFeed {
    type Result = ();

    fn handle(&mut self, msg: Floor, _ctx: &mut Context<Self>) {
        self.ring.raise_floor(msg.0);
    }
}

impl Handler<Apply> for CollectionFeed {
    /// Atomic: while a full re-read queue is waited for, no later slice overtakes this one.
    type Result = actix::AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Apply, _ctx: &mut Context<Self>) -> Self::Result {
        let slice = msg.slice;
        let span = tracing::debug_span!("feed", collection = %self.collection, lsn = %slice.end_lsn, xid = slice.xid, changes = slice.changes.len());
        let _entered = span.enter();
        self.ring.push(slice.clone(), msg.received);
        self.publish_oldest();
        let mut waiting = Vec::new();
        for group in self.groups.values() {
            match &group.worker {
                Some(worker) => {
                    let work = Work::Slice {
                        slice: slice.clone(),
                        only: None,
                    };
                    if let Err(mpsc::error::TrySendError::Full(work)) = worker.try_send(work) {
                        waiting.push((worker.clone(), work));
                    }
                }
                None => {
                    let (shape, _) = group.spec.at(slice.commit_ts);
                    deliver_local(&shape, &self.collection, &slice, &mut lock(&group.members));
                }
            }
        }
        if waiting.is_empty() {
            return actix::AtomicResponse::new(Box::pin(actix::fut::ready(())));
        }
        tracing::debug!(collection = %self.collection, groups = waiting.len(), "re-read queue full; waiting for room");
        let wait = async move {
            for (worker, work) in waiting {
                let _ = worker.send(work).await;
            }
        };
        actix::AtomicResponse::new(Box::pin(actix::fut::wrap_future(wait)))
    }
}

/// Classifies a slice for an in-memory shape and pushes the events to `members`.
fn deliver_local(shape: &Shape, collection: &str, slice: &Slice, members: &mut [Member]) {
    if members.is_empty() {
        return;
    }
    let events = if truncates(slice) {
        Vec::new()
    } else {
        let items = slice
            .changes
            .iter()
            .filter_map(|change| match shape.classify(change) {
                Outcome::Emit(kind, row) => Some((kind, item(change, row))),
                _ => None,
            });
        runs(collection, slice.end_lsn, !slice.more, items)
    };
    for member in members.iter_mut() {
        member.deliver(slice, collection, &events);
    }
}

fn spawn_worker(spec: Spec, members: Members) -> mpsc::Sender<Work> {
    let (tx, mut rx) = mpsc::channel::<Work>(REREAD_QUEUE);
    actix::spawn(async move {
        while let Some(work) = rx.recv().await {
            let (slice, only) = match work {
                Work::Slice { slice, only } => (slice, only),
                Work::Flush(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            if only.is_none() && lock(&members).is_empty() {
                continue;
            }
            let (shape, context) = spec.at(slice.commit_ts);
            let Some(context) = context else { continue };
            let collection = shape.collection.clone();
            // A TRUNCATE names no rows: members get a refetch, nothing is read.
            let items = if truncates(&slice) {
                Vec::new()
            } else {
                let span = tracing::debug_span!("feed_reread", collection = %collection, lsn = %slice.end_lsn, xid = slice.xid, changes = slice.changes.len());
                context.items(&shape, &slice.changes).instrument(span).await
            };
            let events = runs(&collection, slice.end_lsn, !slice.more, items);
            each_target(&members, only, |member| {
                member.deliver(&slice, &collection, &events)
            });
        }
    });
    tx
}

/// Runs `f` on the one joining member, or on every current member of the group.
fn each_target(members: &Members, only: Option<Member>, mut f: impl FnMut(&mut Member)) {
    match only {
        Some(mut member) => f(&mut member),
        None => lock(members).iter_mut().for_each(f),
    }
}
