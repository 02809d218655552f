//! One walsender session, start to end: check the server, ensure publication and slot, stream,
//! decode, convert, deliver, confirm. The actor runs it as a task and starts a new one (with a
//! fresh [`Decoder`], since relation descriptions are per session) when it ends.
//!
//! Confirmation rule: the position reported to the server is `min(safe, hold)`, where `safe`
//! is the `end_lsn` of the last transaction the sink accepted (or a keepalive's WAL end between
//! transactions: everything before it was already sent to us), and `hold` is the feed hub's
//! oldest retained `commit_lsn`. So the slot never passes what the hub may still replay, and a
//! restarted server streams the retention window again.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::Recipient;
use pgwire_replication::{ReplicationClient, ReplicationEvent, ReplicationMetrics};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tracing::Instrument;

use super::ReplicationSettings;
use super::convert::to_committed;
use super::frames;
use super::sink::{Deliver, Recreated};
use super::status::ReplicationStatus;
use crate::core::pgoutput::{Decoder, Event, Lsn, Transaction};
use crate::core::schema::SchemaSnapshot;
use crate::db::replication::{self as db, PublicationMode, ReplicationError};

/// Slot lag is measured every this many status ticks (it is a catalog query).
const LAG_EVERY_TICKS: u64 = 5;
/// How long a stopping session waits for the transport to wind down after CopyDone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a transaction touching a user-schema table the snapshot does not know waits for
/// the schema actor to catch up (a table created with SQL and written at once: the stream can
/// beat the DDL notification). Each such table is waited for once per session.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(1);
/// The channel the session's watch connection listens on (nothing is sent on it: the
/// connection's end is what it waits for).
const WATCH_CHANNEL: &str = "directrix_replication_watch";
/// How long a transaction that changed access rights may take to become visible to new
/// snapshots before subscriptions are re-planned regardless.
const VISIBILITY_WAIT: Duration = Duration::from_secs(2);

/// Everything a session needs, shared by every session of one consumer.
pub(super) struct Shared {
    pub settings: ReplicationSettings,
    pub schema: watch::Receiver<Arc<SchemaSnapshot>>,
    pub sink: Recipient<Deliver>,
    pub hold: Arc<AtomicU64>,
    pub recreated: Option<Recipient<Recreated>>,
    pub status: Arc<ReplicationStatus>,
}

/// How a session ended; `streamed` says it got as far as streaming (the actor's back-off
/// starts over then).
pub(super) struct Outcome {
    pub streamed: bool,
    pub result: Result<(), ReplicationError>,
}

/// Runs one session until it fails or `stop` turns true (then `Ok`).
pub(super) async fn run(shared: Arc<Shared>, pool: PgPool, stop: watch::Receiver<bool>) -> Outcome {
    let mut streamed = false;
    let result = session(&shared, &pool, stop, &mut streamed).await;
    shared.status.set_connected(false);
    Outcome { streamed, result }
}

async fn session(
    shared: &Arc<Shared>,
    pool: &PgPool,
    stop: watch::Receiver<bool>,
    streamed: &mut bool,
) -> Result<(), ReplicationError> {
    if *stop.borrow() {
        return Ok(());
    }
    let settings = &shared.settings;
    db::check_prerequisites(pool).await?;
    // The publication must exist before the slot: decoding looks it up as of each change.
    let mode = db::ensure_publication(pool, &settings.publication, &settings.user_schema).await?;
    if mode == PublicationMode::Tables {
        sync_publication(shared, pool).await?;
    }
    let existing = db::slot_state(pool, &settings.slot).await?;
    let password = settings.password.as_ref().map(|p| p.expose_secret());
    let mut config = db::wire_config(
        &settings.options,
        password,
        &settings.slot,
        &settings.publication,
        settings.status_interval,
    )?;
    let confirmed = existing.as_ref().and_then(|slot| slot.confirmed_flush);
    if let Some(lsn) = confirmed {
        // Report the slot's own position until we deliver something, never 0/0.
        config = config.with_ack_lsn(pgwire_replication::Lsn::from_u64(lsn.0));
    }
    let mut client = ReplicationClient::connect_gated(config).await?;
    let missing = existing.is_none();
    let start = match (existing, confirmed) {
        (Some(_), Some(lsn)) => lsn,
        (existing, _) => {
            if existing.is_none() {
                db::create_slot(&mut client, &settings.slot).await?;
            }
            db::slot_state(pool, &settings.slot)
                .await?
                .and_then(|slot| slot.confirmed_flush)
                .unwrap_or_default()
        }
    };
    // This process streamed the slot before: what was committed between its last delivery
    // and the new slot's start is gone. Every subscriber hears of it before any later change.
    if missing && shared.status.resumed_from().is_some() {
        shared.status.record_gap(start);
        tracing::error!(slot = %settings.slot, from = %start, last_delivered = %shared.status.last_delivered(),
            "replication slot was gone and has been created again; changes committed in between are lost to realtime, and every subscriber is told to refetch");
        if let Some(recreated) = &shared.recreated {
            recreated
                .send(Recreated { from: start })
                .await
                .map_err(|_| ReplicationError::SinkGone)?;
        }
    }
    if let Err(err) = client.start().await {
        return Err(invalidated(pool, &settings.slot, err.into()).await);
    }
    client.wait_started().await?;
    shared.status.set_resumed_from(start);
    shared.status.set_connected(true);
    *streamed = true;
    tracing::info!(slot = %settings.slot, from = %start, "replication streaming");
    let metrics = client.metrics();
    let mut stream = Stream {
        shared: shared.clone(),
        pool: pool.clone(),
        client,
        metrics,
        decoder: Decoder::with_limits(settings.limits),
        safe: start.max(shared.status.last_delivered()),
        mode,
        schema: shared.schema.clone(),
        unknown: HashSet::new(),
    };
    stream.run(stop).await
}

/// A slot Postgres invalidated (it fell past `max_slot_wal_keep_size`) can never stream
/// again: it is dropped, so the next session creates it afresh, which is a gap like any
/// recreated slot. Other start failures pass through.
async fn invalidated(pool: &PgPool, slot: &str, err: ReplicationError) -> ReplicationError {
    let text = err.to_string();
    if text.contains("invalidated") || text.contains("can no longer get changes") {
        tracing::error!(slot, error = %text, "replication slot invalidated; dropping it to start again");
        if let Err(drop_err) = db::drop_slot(pool, slot).await {
            tracing::warn!(slot, error = %drop_err, "cannot drop the invalidated slot");
        }
    }
    err
}

/// Adds the snapshot's collections to a table-list publication.
async fn sync_publication(shared: &Shared, pool: &PgPool) -> Result<usize, ReplicationError> {
    let settings = &shared.settings;
    let snapshot = shared.schema.borrow().clone();
    let tables: Vec<String> = snapshot
        .collections
        .values()
        .filter_map(|c| c.schema.as_ref())
        .filter(|table| table.schema == settings.user_schema)
        .map(|table| table.name.clone())
        .collect();
    db::sync_tables(pool, &settings.publication, &settings.user_schema, &tables).await
}

/// A started session.
struct Stream {
    shared: Arc<Shared>,
    pool: PgPool,
    client: ReplicationClient,
    metrics: Arc<ReplicationMetrics>,
    decoder: Decoder,
    /// Everything before this was delivered (or held nothing for us).
    safe: Lsn,
    mode: PublicationMode,
    /// For [`SNAPSHOT_WAIT`]; the table-list sync watches a receiver of its own.
    schema: watch::Receiver<Arc<SchemaSnapshot>>,
    /// Relations already waited for that are still not collections (views of tables the
    /// snapshot skips, say): their changes are dropped without waiting again.
    unknown: HashSet<u32>,
}

impl Stream {
    async fn run(&mut self, mut stop: watch::Receiver<bool>) -> Result<(), ReplicationError> {
        // A logical walsender holds a fast shutdown of PostgreSQL until its client has
        // confirmed everything sent, which the hub's hold may never allow. A shutdown first
        // ends every ordinary connection: this one's end is the signal to let go.
        let mut watch = PgListener::connect_with(&self.pool).await?;
        watch.listen(WATCH_CHANNEL).await?;
        let mut tick = tokio::time::interval(self.shared.settings.status_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut schema = self.shared.schema.clone();
        schema.mark_unchanged();
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return self.finish().await;
                    }
                }
                _ = tick.tick() => {
                    // The hub's hold moves on its own as it lets old changes go.
                    self.confirm();
                    self.observe();
                    ticks += 1;
                    if ticks % LAG_EVERY_TICKS == 1 {
                        self.measure_lag().await;
                    }
                }
                changed = schema.changed(), if self.mode == PublicationMode::Tables => {
                    if changed.is_ok()
                        && let Err(err) = sync_publication(&self.shared, &self.pool).await
                    {
                        tracing::warn!(error = %err, "cannot add new collections to the publication");
                    }
                }
                event = self.client.recv() => match event? {
                    Some(event) => self.on_event(event).await?,
                    None => return Err(ReplicationError::Ended),
                },
                lost = watch.try_recv() => {
                    if !matches!(lost, Ok(Some(_))) {
                        tracing::warn!("database connection lost (PostgreSQL stopping?); releasing the slot");
                        self.finish().await?;
                        return Err(ReplicationError::DatabaseGone);
                    }
                }
            }
        }
    }

    async fn on_event(&mut self, event: ReplicationEvent) -> Result<(), ReplicationError> {
        match event {
            ReplicationEvent::Begin {
                final_lsn,
                xid,
                commit_time_micros,
            } => {
                self.decoder
                    .push(&frames::begin(final_lsn.as_u64(), commit_time_micros, xid))?;
            }
            ReplicationEvent::XLogData { data, .. } => {
                if let Some(Event::Chunk(chunk)) = self.decoder.push(&data)? {
                    self.on_chunk(chunk).await?;
                }
            }
            ReplicationEvent::Commit {
                lsn,
                end_lsn,
                commit_time_micros,
            } => {
                let frame = frames::commit(lsn.as_u64(), end_lsn.as_u64(), commit_time_micros);
                if let Some(Event::Transaction(tx)) = self.decoder.push(&frame)? {
                    self.on_transaction(tx).await?;
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                self.shared.status.set_server_wal_end(Lsn(wal_end.as_u64()));
                // Between transactions, everything before the server's sent position has
                // reached us: transactions touching nothing published move the slot on too.
                if !self.decoder.in_transaction() {
                    self.safe = self.safe.max(Lsn(wal_end.as_u64()));
                    self.confirm();
                }
            }
            // Our access triggers' messages travel inside their transactions.
            ReplicationEvent::Message {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                let frame = frames::message(transactional, lsn.as_u64(), &prefix, &content);
                self.decoder.push(&frame)?;
            }
            ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    async fn on_transaction(&mut self, tx: Transaction) -> Result<(), ReplicationError> {
        let status = self.shared.status.clone();
        if tx.end_lsn <= status.last_delivered() {
            // A reconnect replays from the slot's confirmed position.
            tracing::trace!(xid = tx.xid, end_lsn = %tx.end_lsn, "already delivered");
            return Ok(());
        }
        let tx = self.unseen(tx);
        self.deliver(&tx).await?;
        status.clear_partial();
        status.set_last_delivered(tx.end_lsn);
        self.safe = self.safe.max(tx.end_lsn);
        self.confirm();
        Ok(())
    }

    /// A chunk of a transaction too large to hold whole: delivered at once, in order, like any
    /// transaction, except that nothing is confirmed until its last part is.
    async fn on_chunk(&mut self, tx: Transaction) -> Result<(), ReplicationError> {
        let status = self.shared.status.clone();
        if tx.end_lsn <= status.last_delivered() {
            return Ok(());
        }
        let tx = self.unseen(tx);
        self.deliver(&tx).await?;
        status.set_partial(tx.commit_lsn, tx.first + tx.changes.len());
        Ok(())
    }

    /// `tx` without the changes an earlier session of this process delivered already (a
    /// reconnect replays a large transaction from its start).
    fn unseen(&self, mut tx: Transaction) -> Transaction {
        if let Some((commit_lsn, delivered)) = self.shared.status.partial()
            && commit_lsn == tx.commit_lsn
        {
            let skip = delivered.saturating_sub(tx.first).min(tx.changes.len());
            tx.changes.drain(..skip);
            tx.first += skip;
        }
        tx
    }

    /// Converts `tx` and hands it to the sink, if it has anything for the feeds.
    async fn deliver(&mut self, tx: &Transaction) -> Result<(), ReplicationError> {
        let status = self.shared.status.clone();
        let snapshot = self.snapshot_for(tx).await;
        let committed = to_committed(
            tx,
            |oid| self.decoder.relation(oid),
            &snapshot,
            &self.shared.settings.user_schema,
        );
        let span = tracing::info_span!("replication_transaction", xid = tx.xid, end_lsn = %tx.end_lsn, changes = committed.changes.len(), access = committed.access.len());
        if !committed.access.is_empty() {
            // Subscriptions are re-planned from the database as the access change left it,
            // which a commit can reach us before new snapshots see.
            self.wait_visible(tx.xid).instrument(span.clone()).await;
        }
        if !committed.changes.is_empty() || !committed.access.is_empty() {
            self.shared
                .sink
                .send(Deliver(Arc::new(committed)))
                .instrument(span)
                .await
                .map_err(|_| ReplicationError::SinkGone)?;
            status.count_delivered();
        }
        Ok(())
    }

    /// The current snapshot, after waiting (once per table) for it to learn about user-schema
    /// tables `tx` touched that it does not know yet.
    async fn snapshot_for(&mut self, tx: &Transaction) -> Arc<SchemaSnapshot> {
        let user_schema = self.shared.settings.user_schema.as_str();
        let deadline = tokio::time::Instant::now() + SNAPSHOT_WAIT;
        loop {
            let snapshot = self.schema.borrow_and_update().clone();
            let missing: Vec<u32> = tx
                .changes
                .iter()
                .filter(|c| &*c.schema == user_schema && !self.unknown.contains(&c.relation))
                .filter(|c| snapshot.collection(&c.table).is_none())
                .map(|c| c.relation)
                .collect();
            if missing.is_empty() {
                return snapshot;
            }
            let changed = tokio::time::timeout_at(deadline, self.schema.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                self.unknown.extend(missing);
                return self.schema.borrow().clone();
            }
        }
    }

    /// Waits (at most [`VISIBILITY_WAIT`]) until new snapshots see transaction `xid`: the
    /// walsender may send a commit a moment before the committing backend leaves the proc array.
    async fn wait_visible(&self, xid: u32) {
        let deadline = tokio::time::Instant::now() + VISIBILITY_WAIT;
        loop {
            match crate::db::items::read::current_snapshot(&self.pool).await {
                Ok(snapshot) if snapshot.sees(xid) => return,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(xid, error = %err, "cannot read a snapshot; re-planning without waiting");
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(xid, "access change still invisible; re-planning anyway");
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The position the slot may move to.
    fn target(&self) -> u64 {
        self.safe.0.min(self.shared.hold.load(Ordering::Acquire))
    }

    fn confirm(&self) {
        let target = self.target();
        if target > 0 {
            self.client
                .update_applied_lsn(pgwire_replication::Lsn::from_u64(target));
        }
    }

    fn observe(&self) {
        let status = &self.shared.status;
        status.set_confirmed(Lsn(self.metrics.last_applied_lsn().as_u64()));
        status.set_server_wal_end(Lsn(self.metrics.last_wal_end().as_u64()));
    }

    async fn measure_lag(&self) {
        match db::slot_lag(&self.pool, &self.shared.settings.slot).await {
            Ok(Some(lag)) => self.shared.status.set_slot_lag(lag.bytes),
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %err, "cannot measure slot lag"),
        }
    }

    /// A graceful end: the transport does not flush a last status update when stopped, so
    /// report the final position and wait (at most two status intervals) until it went out;
    /// otherwise the next start would replay everything since the previous update.
    async fn finish(&mut self) -> Result<(), ReplicationError> {
        self.confirm();
        let target = self.target();
        let deadline = tokio::time::Instant::now()
            + self.shared.settings.status_interval * 2
            + Duration::from_millis(250);
        while self.metrics.last_applied_lsn().as_u64() < target && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.observe();
        if self.metrics.last_applied_lsn().as_u64() < target {
            tracing::warn!(target = %Lsn(target), "stopped before the final position was confirmed; the next start replays from the last one");
        }
        self.client.stop();
        let client = &mut self.client;
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while let Ok(Some(_)) = client.recv().await {}
        })
        .await;
        if drained.is_err() {
            self.client.abort();
        }
        tracing::info!(slot = %self.shared.settings.slot, confirmed = %self.shared.status.confirmed(), "replication stopped");
        Ok(())
    }
}
