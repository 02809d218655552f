//! The replication consumer's gauges, read from its [`ReplicationStatus`] at scrape time, so
//! the consumer never touches the registry on its hot path.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::{IntGauge, proto};

use crate::actors::replication::ReplicationStatus;

/// Registered once per app when realtime runs.
pub(super) struct ReplicationCollector {
    status: Arc<ReplicationStatus>,
    connected: IntGauge,
    slot_lag: IntGauge,
    last_delivered: IntGauge,
    confirmed: IntGauge,
    reconnects: IntGauge,
    delivered: IntGauge,
    gaps: IntGauge,
}

impl ReplicationCollector {
    pub(super) fn new(status: Arc<ReplicationStatus>) -> Result<Self, prometheus::Error> {
        Ok(ReplicationCollector {
            status,
            connected: IntGauge::new(
                "replication_connected",
                "1 while the replication consumer streams",
            )?,
            slot_lag: IntGauge::new(
                "replication_slot_lag_bytes",
                "WAL bytes between the server's position and the slot's confirmed one (-1: not measured yet)",
            )?,
            last_delivered: IntGauge::new(
                "replication_last_delivered_lsn",
                "end LSN of the last transaction handed to the feeds, as a number",
            )?,
            confirmed: IntGauge::new(
                "replication_confirmed_lsn",
                "LSN last reported to the server as flushed, as a number",
            )?,
            reconnects: IntGauge::new("replication_reconnects", "sessions restarted after a failure")?,
            delivered: IntGauge::new(
                "replication_delivered_transactions",
                "transactions with collection changes handed to the feeds",
            )?,
            gaps: IntGauge::new(
                "replication_gaps",
                "times the slot had to be created again while streaming (changes in between were lost to realtime)",
            )?,
        })
    }

    fn gauges(&self) -> [&IntGauge; 7] {
        [
            &self.connected,
            &self.slot_lag,
            &self.last_delivered,
            &self.confirmed,
            &self.reconnects,
            &self.delivered,
            &self.gaps,
        ]
    }
}

fn as_gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for ReplicationCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let status = &self.status;
        self.connected.set(i64::from(status.connected()));
        self.slot_lag.set(status.slot_lag_bytes().unwrap_or(-1));
        self.last_delivered.set(as_gauge(status.last_delivered().0));
        self.confirmed.set(as_gauge(status.confirmed().0));
        self.reconnects.set(as_gauge(status.reconnects()));
        self.delivered.set(as_gauge(status.delivered_transactions()));
        self.gaps.set(as_gauge(status.gaps()));
        self.gauges().into_iter().flat_map(|g| g.collect()).collect()
    }
}
