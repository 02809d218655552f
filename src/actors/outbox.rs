//! [`Outbox`]: a session's bounded outbound queue, shared between the collection feeds that
//! fill it and the session's writer that drains it onto the socket.
//!
//! The feeds never wait on a socket: when a session's queue is full, each of its subscriptions
//! falls back to its slow-consumer policy (`coalesce`: the latest state per item; `resync`: one
//! must-refetch message; `disconnect`). Replies to the client's own requests are always queued.
//!
//! Full means any of: as many items as its capacity (`REALTIME_OUTBOUND_QUEUE`), as many event
//! bytes as [`Bounds::bytes`] (`REALTIME_OUTBOUND_BYTES`), a queue that has not been empty for
//! [`Bounds::age`] (`REALTIME_OUTBOUND_MAX_AGE`), or a client that far behind: a WebSocket
//! session sends [`Outbox::probe`] pings in line with its events, and the time until the
//! client's pong (or, while it has not come, since the ping was queued) is how far behind it
//! reads, kernel buffers included. A client reading one small event per second is behind by
//! time long before any buffer fills.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::SlowConsumer;
use crate::core::pgoutput::Lsn;
use crate::core::realtime::frame::{Event, Item, runs};
use crate::core::realtime::shape::{EventKind, key_text};

/// A subscription's id within the process.
pub type SubId = u64;

static NEXT_SUB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A process-unique id (subscriptions, and connections in collab rooms).
pub fn next_sub_id() -> SubId {
    NEXT_SUB.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One thing to write.
#[derive(Debug)]
pub enum Outgoing {
    /// A change event for a subscription, finished with its `uid` by the writer.
    Event(SubId, Arc<Event>),
    /// The subscription must read again (`reason`: gap, overflow, truncate).
    Refetch {
        sub: SubId,
        collection: Arc<str>,
        reason: &'static str,
        lsn: Option<Lsn>,
    },
    /// A finished message (replies, init data, pings).
    Text(String),
    /// A WebSocket pong answering the client's ping frame.
    Pong(bytes::Bytes),
    /// A WebSocket ping frame measuring how far behind the client reads ([`Outbox::probe`]).
    Ping(bytes::Bytes),
}

/// What a subscription has missed while the queue was full.
#[derive(Debug)]
enum Backlog {
    Coalesce {
        collection: Arc<str>,
        lsn: Lsn,
        /// The last event absorbed ended its transaction: `lsn` is a resume point.
        complete: bool,
        order: Vec<String>,
        latest: HashMap<String, (EventKind, Item)>,
    },
    Resync {
        collection: Arc<str>,
        lsn: Lsn,
    },
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Outgoing>,
    backlogs: HashMap<SubId, Backlog>,
    /// Order in which backlogs formed, so they drain fairly.
    backlog_order: VecDeque<SubId>,
    closed: bool,
    /// Closed because the server is stopping.
    away: bool,
    /// A `disconnect` subscription overflowed: the session must close.
    overflowed: bool,
    /// The close frame's code and reason when the session closes for a reason of its own
    /// (a protocol error); `None`: a plain close.
    close_reason: Option<(u16, &'static str)>,
    /// The caller's token expired: subscription events wait (within the queue's bound and
    /// their policies) until it authenticates again; replies still go out.
    suspended: bool,
    /// One last message is queued; once it is taken the outbox is closed.
    ending: bool,
    /// Bytes of the events queued (their wire text).
    queued_bytes: usize,
    /// Since when the queue has not been empty.
    busy_since: Option<Instant>,
    /// When the lag probe waiting for its pong was queued, and its number.
    probe: Option<Instant>,
    probe_id: u32,
    /// How long the last answered probe took, in milliseconds (every session has these).
    lag_ms: u32,
}

impl State {
    /// How far behind the client reads, as far as is known now.
    fn lag(&self) -> Duration {
        let waiting = self.probe.map_or(Duration::ZERO, |sent| sent.elapsed());
        Duration::from_millis(u64::from(self.lag_ms)).max(waiting)
    }
}

/// How much a session may have waiting besides its item count (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub bytes: usize,
    pub age: Duration,
}

impl Bounds {
    /// No bound but the item count.
    pub const UNBOUNDED: Bounds = Bounds {
        bytes: usize::MAX,
        age: Duration::MAX,
    };
}

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
    bounds: Bounds,
}

impl Outbox {
    /// An outbox bounded by item count only.
    pub fn new(capacity: usize) -> Arc<Outbox> {
        Outbox::bounded(capacity, Bounds::UNBOUNDED)
    }

    /// A session's outbox, bounded as `REALTIME_OUTBOUND_*` say.
    pub fn for_config(config: &crate::config::RealtimeConfig) -> Arc<Outbox> {
        Outbox::bounded(
            config.outbound_queue,
            Bounds {
                bytes: config.outbound_bytes,
                age: config.outbound_max_age,
            },
        )
    }

    /// An outbox bounded by item count, bytes and age.
    pub fn bounded(capacity: usize, bounds: Bounds) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
            bounds,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A writer that panicked mid-push left nothing half-done worth refusing over.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues one transaction's events for `sub` together, so a writer never sends part of
    /// them with the transaction's id.
    pub fn push_events(&self, sub: SubId, policy: SlowConsumer, events: &[Arc<Event>]) {
        let mut state = self.lock();
        for event in events {
            self.push_locked(&mut state, sub, policy, event);
        }
        drop(state);
        self.notify.notify_one();
    }

    /// Queues a change event for `sub`, or folds it into the subscription's backlog.
    pub fn push_event(&self, sub: SubId, policy: SlowConsumer, event: &Arc<Event>) {
        let mut state = self.lock();
        self.push_locked(&mut state, sub, policy, event);
        drop(state);
        self.notify.notify_one();
    }

    fn push_locked(&self, state: &mut State, sub: SubId, policy: SlowConsumer, event: &Arc<Event>) {
        if state.closed || state.ending {
            return;
        }
        if let Some(backlog) = state.backlogs.get_mut(&sub) {
            absorb(backlog, event);
            return;
        }
        let size = event.size();
        let fits = state.queue.len() < self.capacity
            && state.queued_bytes.saturating_add(size) <= self.bounds.bytes
            && state
                .busy_since
                .is_none_or(|since| since.elapsed() <= self.bounds.age)
            && state.lag() <= self.bounds.age;
        if fits {
            state.queued_bytes += size;
            state.busy_since.get_or_insert_with(Instant::now);
            state.queue.push_back(Outgoing::Event(sub, event.clone()));
            return;
        }
        let collection: Arc<str> = Arc::from(collection_of(event));
        let backlog = match policy {
            SlowConsumer::Disconnect => {
                state.overflowed = true;
                return;
            }
            SlowConsumer::Resync => Backlog::Resync {
                collection,
                lsn: event.lsn,
            },
            SlowConsumer::Coalesce => {
                let mut backlog = Backlog::Coalesce {
                    collection,
                    lsn: event.lsn,
                    complete: event.complete,
                    order: Vec::new(),
                    latest: HashMap::new(),
                };
                absorb(&mut backlog, event);
                backlog
            }
        };
        state.backlogs.insert(sub, backlog);
        state.backlog_order.push_back(sub);
    }

    /// Queues a must-refetch for `sub` (its earlier backlog is moot).
    pub fn push_refetch(&self, sub: SubId, collection: Arc<str>, reason: &'static str, lsn: Option<Lsn>) {
        let mut state = self.lock();
        if state.closed || state.ending {
            return;
        }
        state.backlogs.remove(&sub);
        state.busy_since.get_or_insert_with(Instant::now);
        state.queue.push_back(Outgoing::Refetch {
            sub,
            collection,
            reason,
            lsn,
        });
        drop(state);
        self.notify.notify_one();
    }

    /// Queues a finished message; replies are never dropped.
    pub fn push_text(&self, text: String) {
        self.push_message(Outgoing::Text(text));
    }

    /// Queues a WebSocket pong (outside the bound, as text is).
    pub fn push_pong(&self, bytes: bytes::Bytes) {
        self.push_message(Outgoing::Pong(bytes));
    }

    /// Queues a lag probe (a ping frame, behind everything queued) unless one is still waiting
    /// for its pong.
    pub fn probe(&self) {
        let mut state = self.lock();
        if state.closed || state.ending || state.probe.is_some() {
            return;
        }
        state.probe_id = state.probe_id.wrapping_add(1);
        let payload = state.probe_id;
        state.probe = Some(Instant::now());
        state.busy_since.get_or_insert_with(Instant::now);
        state
            .queue
            .push_back(Outgoing::Ping(bytes::Bytes::copy_from_slice(&probe_payload(
                payload,
            ))));
        drop(state);
        self.notify.notify_one();
    }

    /// A pong came: whether it answers the waiting probe (the client then reads that far
    /// behind).
    pub fn answered(&self, payload: &[u8]) -> bool {
        let mut state = self.lock();
        match state.probe {
            Some(sent) if payload == probe_payload(state.probe_id) => {
                state.lag_ms = u32::try_from(sent.elapsed().as_millis()).unwrap_or(u32::MAX);
                state.probe = None;
                true
            }
            _ => false,
        }
    }

    fn push_message(&self, message: Outgoing) {
        let mut state = self.lock();
        if state.closed || state.ending {
            return;
        }
        state.busy_since.get_or_insert_with(Instant::now);
        state.queue.push_back(message);
        drop(state);
        self.notify.notify_one();
    }

    /// Drops what `sub` has waiting in its backlog (it was unsubscribed). Queued events stay;
    /// the writer skips subscriptions it no longer has.
    pub fn forget(&self, sub: SubId) {
        self.lock().backlogs.remove(&sub);
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// Holds subscription events back (the token expired) until [`Outbox::resume`]; they keep
    /// their order and fall back to their slow-consumer policies if the queue fills meanwhile.
    pub fn suspend(&self) {
        self.lock().suspended = true;
    }

    /// Lets held events go out again, after the replies queued meanwhile (those went ahead of
    /// the events while suspended, and still do).
    pub fn resume(&self) {
        let mut state = self.lock();
        if state.suspended {
            let (replies, events): (VecDeque<Outgoing>, VecDeque<Outgoing>) =
                std::mem::take(&mut state.queue).into_iter().partition(|item| {
                    matches!(item, Outgoing::Text(_) | Outgoing::Pong(_) | Outgoing::Ping(_))
                });
            state.queue = replies;
            state.queue.extend(events);
        }
        state.suspended = false;
        drop(state);
        self.notify.notify_one();
    }

    /// Drops everything waiting for `sub` (queued events, refetches and its backlog): what was
    /// computed for a reader whose rights it no longer has. Whether anything was dropped.
    pub fn discard(&self, sub: SubId) -> bool {
        let mut state = self.lock();
        let before = state.queue.len();
        state.queue.retain(|item| match item {
            Outgoing::Event(of, _) | Outgoing::Refetch { sub: of, .. } => *of != sub,
            Outgoing::Text(_) | Outgoing::Pong(_) | Outgoing::Ping(_) => true,
        });
        let backlog = state.backlogs.remove(&sub).is_some();
        state.queued_bytes = queued_bytes(&state.queue);
        backlog || state.queue.len() != before
    }

    /// Ends with `text`: whatever else is queued is dropped (a resuming client is replayed it
    /// from its last id), `text` goes out, then the outbox is closed.
    pub fn end_with(&self, text: String) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.queue.clear();
        state.queued_bytes = 0;
        state.backlogs.clear();
        state.backlog_order.clear();
        state.queue.push_back(Outgoing::Text(text));
        state.ending = true;
        drop(state);
        self.notify.notify_one();
    }

    /// Sets the code and reason the close frame will carry when the session closes.
    pub fn set_close_reason(&self, code: u16, reason: &'static str) {
        self.lock().close_reason = Some((code, reason));
    }

    /// What [`Outbox::set_close_reason`] set.
    pub fn close_reason(&self) -> Option<(u16, &'static str)> {
        self.lock().close_reason
    }

    /// Closes the outbox because the server is stopping: the writer ends with "going away".
    pub fn shut_down(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.away = true;
        drop(state);
        self.notify.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Queued items right now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for work and moves it to `out` (up to `max` items). `Err(())` when the outbox is
    /// closed, or a `disconnect` subscription overflowed and the session must end.
    pub async fn next_batch(&self, out: &mut Vec<Outgoing>, max: usize) -> Result<(), Overflowed> {
        loop {
            {
                let mut state = self.lock();
                if state.away {
                    return Err(Overflowed::ShuttingDown);
                }
                if state.closed {
                    return Err(Overflowed::Closed);
                }
                if state.overflowed {
                    return Err(Overflowed::SlowConsumer);
                }
                if state.suspended {
                    // Only replies go out; events keep their places.
                    let mut kept = std::collections::VecDeque::with_capacity(state.queue.len());
                    while let Some(item) = state.queue.pop_front() {
                        match item {
                            Outgoing::Text(_) | Outgoing::Pong(_) | Outgoing::Ping(_) if out.len() < max => {
                                out.push(item)
                            }
                            other => kept.push_back(other),
                        }
                    }
                    state.queue = kept;
                    if !out.is_empty() {
                        return Ok(());
                    }
                } else {
                    while out.len() < max {
                        match state.queue.pop_front() {
                            Some(item) => {
                                if let Outgoing::Event(_, event) = &item {
                                    state.queued_bytes = state.queued_bytes.saturating_sub(event.size());
                                }
                                out.push(item);
                            }
                            None => break,
                        }
                    }
                    if state.queue.is_empty() {
                        state.busy_since = None;
                        state.queued_bytes = 0;
                    }
                    // The queue has room again: backlogs drain into it, oldest first.
                    while out.len() < max && state.queue.is_empty() {
                        let Some(sub) = state.backlog_order.pop_front() else {
                            break;
                        };
                        if let Some(backlog) = state.backlogs.remove(&sub) {
                            drain(sub, backlog, out);
                        }
                    }
                    if !out.is_empty() {
                        return Ok(());
                    }
                    if state.ending {
                        state.closed = true;
                        return Err(Overflowed::Closed);
                    }
                }
            }
            self.notify.notified().await;
        }
    }
}

/// Why a writer stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflowed {
    Closed,
    SlowConsumer,
    /// The server is stopping.
    ShuttingDown,
}

/// A probe's ping payload.
fn probe_payload(id: u32) -> [u8; 6] {
    let mut out = [0u8; 6];
    out[..2].copy_from_slice(b"dx");
    out[2..].copy_from_slice(&id.to_be_bytes());
    out
}

/// Bytes of the events in `queue`.
fn queued_bytes(queue: &VecDeque<Outgoing>) -> usize {
    queue
        .iter()
        .map(|item| match item {
            Outgoing::Event(_, event) => event.size(),
            _ => 0,
        })
        .sum()
}

fn collection_of(event: &Event) -> String {
    event.collection().to_string()
}

fn absorb(backlog: &mut Backlog, event: &Event) {
    match backlog {
        Backlog::Resync { lsn, .. } => *lsn = event.lsn,
        Backlog::Coalesce {
            lsn,
            complete,
            order,
            latest,
            ..
        } => {
            *lsn = event.lsn;
            *complete = event.complete;
            for item in &event.items {
                let key = key_text(&item.key);
                let merged = match latest.get(&key).map(|(kind, _)| *kind) {
                    // Created and deleted while behind: the client never knew it.
                    Some(EventKind::Create) if event.kind == EventKind::Delete => None,
                    Some(EventKind::Create) => Some(EventKind::Create),
                    _ => Some(event.kind),
                };
                match merged {
                    None => {
                        latest.remove(&key);
                        order.retain(|k| *k != key);
                    }
                    Some(kind) => {
                        if latest.insert(key.clone(), (kind, item.clone())).is_none() {
                            order.push(key);
                        }
                    }
                }
            }
        }
    }
}

fn drain(sub: SubId, backlog: Backlog, out: &mut Vec<Outgoing>) {
    match backlog {
        Backlog::Resync { collection, lsn } => out.push(Outgoing::Refetch {
            sub,
            collection,
            reason: "overflow",
            lsn: Some(lsn),
        }),
        Backlog::Coalesce {
            collection,
            lsn,
            complete,
            order,
            mut latest,
        } => {
            // Everything up to `lsn` is in these messages, so the last one carries it, unless
            // more of that transaction is still to come.
            let items = order.into_iter().filter_map(|key| latest.remove(&key));
            for event in runs(&collection, lsn, complete, items) {
                out.push(Outgoing::Event(sub, event));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: EventKind, keys: &[i64], lsn: u64) -> Arc<Event> {
        let items = keys
            .iter()
            .map(|k| Item {
                key: json!(k),
                row: (kind != EventKind::Delete).then(|| {
                    json!({"id": k, "v": lsn})
                        .as_object()
                        .cloned()
                        .unwrap_or_default()
                }),
            })
            .collect();
        Arc::new(Event::new(kind, "a", Lsn(lsn), true, items))
    }

    fn texts(out: &[Outgoing]) -> Vec<String> {
        out.iter()
            .map(|o| match o {
                Outgoing::Event(_, e) => e.close(None),
                Outgoing::Refetch { reason, .. } => format!("refetch:{reason}"),
                Outgoing::Text(t) => t.clone(),
                Outgoing::Pong(_) => "pong".into(),
                Outgoing::Ping(_) => "ping".into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn coalesces_while_full_then_drains_latest_state() {
        let outbox = Outbox::new(1);
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Create, &[1], 10));
        // Full from here on.
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Create, &[2], 11));
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Update, &[2], 12));
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Create, &[3], 13));
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Delete, &[3], 14));
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Update, &[1], 15));
        // The queued event first; once the queue is empty the backlog follows in the same batch.
        let mut out = Vec::new();
        outbox.next_batch(&mut out, 64).await.unwrap();
        let values: Vec<serde_json::Value> = texts(&out)
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        // 2 was created then updated: one create with the latest row; 3 never shows; 1 updated.
        assert_eq!(values.len(), 3);
        assert_eq!(values[0]["data"], json!([{"id": 1, "v": 10}]));
        assert_eq!(values[1]["event"], "create");
        assert_eq!(values[1]["data"], json!([{"id": 2, "v": 12}]));
        assert!(values[1].get("lsn").is_none());
        assert_eq!(values[2]["event"], "update");
        assert_eq!(values[2]["data"], json!([{"id": 1, "v": 15}]));
        assert_eq!(values[2]["lsn"], "0/F");
    }

    #[tokio::test]
    async fn resync_sends_one_refetch_and_disconnect_ends_the_session() {
        let outbox = Outbox::new(1);
        outbox.push_event(1, SlowConsumer::Resync, &event(EventKind::Create, &[1], 10));
        for lsn in 11..20 {
            outbox.push_event(
                1,
                SlowConsumer::Resync,
                &event(EventKind::Create, &[lsn as i64], lsn),
            );
        }
        let mut out = Vec::new();
        outbox.next_batch(&mut out, 64).await.unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(texts(&out)[1], "refetch:overflow");

        let outbox = Outbox::new(1);
        outbox.push_event(1, SlowConsumer::Disconnect, &event(EventKind::Create, &[1], 10));
        outbox.push_event(1, SlowConsumer::Disconnect, &event(EventKind::Create, &[2], 11));
        let mut out = Vec::new();
        assert_eq!(
            outbox.next_batch(&mut out, 64).await,
            Err(Overflowed::SlowConsumer)
        );
    }

    #[tokio::test]
    async fn replies_are_never_dropped_and_close_ends_the_writer() {
        let outbox = Outbox::new(1);
        outbox.push_text("a".into());
        outbox.push_text("b".into());
        let mut out = Vec::new();
        outbox.next_batch(&mut out, 64).await.unwrap();
        assert_eq!(texts(&out), vec!["a".to_string(), "b".to_string()]);
        outbox.close();
        out.clear();
        assert_eq!(outbox.next_batch(&mut out, 64).await, Err(Overflowed::Closed));
        outbox.shut_down();
        assert_eq!(
            outbox.next_batch(&mut out, 64).await,
            Err(Overflowed::ShuttingDown)
        );
    }

    #[tokio::test]
    async fn a_suspended_outbox_sends_replies_and_holds_events_in_order() {
        let outbox = Outbox::new(8);
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Create, &[1], 10));
        outbox.suspend();
        outbox.push_text("expired".into());
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Create, &[2], 11));
        let mut out = Vec::new();
        outbox.next_batch(&mut out, 64).await.unwrap();
        assert_eq!(texts(&out), vec!["expired".to_string()]);
        // Nothing but events left: the writer waits.
        out.clear();
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            outbox.next_batch(&mut out, 64),
        )
        .await;
        assert!(waited.is_err(), "held: {out:?}");
        outbox.resume();
        let mut out = Vec::new();
        outbox.next_batch(&mut out, 64).await.unwrap();
        let ids: Vec<serde_json::Value> = texts(&out)
            .iter()
            .map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap()["data"][0]["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!(1), json!(2)]);
    }

    #[tokio::test]
    async fn discarding_drops_one_subscriptions_events_and_ending_sends_one_last_message() {
        let outbox = Outbox::new(8);
        outbox.push_event(1, SlowConsumer::Coalesce, &event(EventKind::Create, &[1], 10));
        outbox.push_event(2, SlowConsumer::Coalesce, &event(EventKind::Create, &[2], 10));
        outbox.push_text("reply".into());
        assert!(outbox.discard(1));
        assert!(!outbox.discard(1), "nothing left of it");
        let mut out = Vec::new();
        outbox.next_batch(&mut out, 64).await.unwrap();
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Outgoing::Event(2, _)));
        outbox.push_event(2, SlowConsumer::Coalesce, &event(EventKind::Create, &[3], 11));
        outbox.end_with("bye".into());
        outbox.push_text("too late".into());
        let mut out = Vec::new();
        outbox.next_batch(&mut out, 64).await.unwrap();
        assert_eq!(texts(&out), vec!["bye".to_string()]);
        out.clear();
        assert_eq!(outbox.next_batch(&mut out, 64).await, Err(Overflowed::Closed));
    }
}
