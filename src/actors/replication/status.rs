//! [`ReplicationStatus`]: what the consumer is doing, readable from any thread without waiting
//! on the actor (health checks, metrics, the feed hub's resume floor).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::core::pgoutput::Lsn;

/// Live state of the replication consumer. Counters and positions are atomics; the last error
/// text sits behind a mutex that is only taken to swap or clone an `Arc`.
#[derive(Debug)]
pub struct ReplicationStatus {
    slot: String,
    connected: AtomicBool,
    disabled: AtomicBool,
    last_delivered: AtomicU64,
    confirmed: AtomicU64,
    server_wal_end: AtomicU64,
    reconnects: AtomicU64,
    resumed_from: AtomicU64,
    delivered: AtomicU64,
    /// -1 until measured.
    slot_lag_bytes: AtomicI64,
    /// A transaction handed out in chunks and not finished: its commit LSN and how many of
    /// its changes were delivered, so a replay after a reconnect skips them.
    partial: Mutex<Option<(Lsn, usize)>>,
    /// Times the slot had to be created again while this process was streaming it.
    gaps: AtomicU64,
    /// When the last such gap was found, and where the new slot starts.
    last_gap: Mutex<Option<(std::time::Instant, Lsn)>>,
    last_error: Mutex<Option<Arc<str>>>,
}

impl ReplicationStatus {
    pub fn new(slot: impl Into<String>) -> Self {
        ReplicationStatus {
            slot: slot.into(),
            connected: AtomicBool::new(false),
            disabled: AtomicBool::new(false),
            last_delivered: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            server_wal_end: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            resumed_from: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            slot_lag_bytes: AtomicI64::new(-1),
            partial: Mutex::new(None),
            gaps: AtomicU64::new(0),
            last_gap: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// The slot this consumer streams.
    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// Streaming right now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Off for good (wal_level, privileges): [`last_error`](Self::last_error) says why.
    pub fn disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }

    /// `end_lsn` of the last transaction handed to the sink (or skipped as holding no
    /// collection changes); `0/0` before the first.
    pub fn last_delivered(&self) -> Lsn {
        Lsn(self.last_delivered.load(Ordering::Acquire))
    }

    /// The position last reported to the server as flushed (the slot's `confirmed_flush_lsn`
    /// follows it).
    pub fn confirmed(&self) -> Lsn {
        Lsn(self.confirmed.load(Ordering::Acquire))
    }

    /// The server's WAL end as last seen on the stream.
    pub fn server_wal_end(&self) -> Lsn {
        Lsn(self.server_wal_end.load(Ordering::Acquire))
    }

    /// Times the consumer restarted after losing its session.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Acquire)
    }

    /// The slot's `confirmed_flush_lsn` when this process first attached: every transaction
    /// committed at or after it is delivered, so the hub may resume clients from there.
    pub fn resumed_from(&self) -> Option<Lsn> {
        match self.resumed_from.load(Ordering::Acquire) {
            0 => None,
            lsn => Some(Lsn(lsn)),
        }
    }

    /// Transactions with collection changes handed to the sink.
    pub fn delivered_transactions(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Bytes of WAL between the server's current position and the slot's confirmed one, as
    /// last measured by the consumer.
    pub fn slot_lag_bytes(&self) -> Option<i64> {
        match self.slot_lag_bytes.load(Ordering::Acquire) {
            lag if lag < 0 => None,
            lag => Some(lag),
        }
    }

    /// Why the last session ended or could not start.
    pub fn last_error(&self) -> Option<Arc<str>> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }

    pub(super) fn set_disabled(&self) {
        self.disabled.store(true, Ordering::Release);
    }

    pub(super) fn set_last_delivered(&self, lsn: Lsn) {
        self.last_delivered.fetch_max(lsn.0, Ordering::AcqRel);
    }

    pub(super) fn count_delivered(&self) {
        self.delivered.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn set_confirmed(&self, lsn: Lsn) {
        self.confirmed.fetch_max(lsn.0, Ordering::AcqRel);
    }

    pub(super) fn set_server_wal_end(&self, lsn: Lsn) {
        self.server_wal_end.fetch_max(lsn.0, Ordering::AcqRel);
    }

    pub(super) fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::AcqRel);
    }

    /// Only the first attach counts: later reconnects resume from our own confirmations.
    pub(super) fn set_resumed_from(&self, lsn: Lsn) {
        let _ = self
            .resumed_from
            .compare_exchange(0, lsn.0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The transaction being delivered in chunks, if one is: its commit LSN and how many of
    /// its changes went out.
    pub fn partial(&self) -> Option<(Lsn, usize)> {
        *self.partial.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn set_partial(&self, commit_lsn: Lsn, delivered: usize) {
        *self.partial.lock().unwrap_or_else(PoisonError::into_inner) = Some((commit_lsn, delivered));
    }

    pub(super) fn clear_partial(&self) {
        *self.partial.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Gaps found (a slot created again while streaming): changes before the new slot's
    /// start that were not delivered are lost to realtime.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Acquire)
    }

    /// How long ago the last gap was found, and where the new slot started.
    pub fn last_gap(&self) -> Option<(std::time::Duration, Lsn)> {
        self.last_gap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|(at, lsn)| (at.elapsed(), lsn))
    }

    pub(super) fn record_gap(&self, start: Lsn) {
        self.gaps.fetch_add(1, Ordering::AcqRel);
        *self.last_gap.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((std::time::Instant::now(), start));
    }

    pub(super) fn set_slot_lag(&self, bytes: i64) {
        self.slot_lag_bytes.store(bytes.max(0), Ordering::Release);
    }

    pub(super) fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = error.map(Arc::from);
    }
}
