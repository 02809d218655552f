//! The realtime checks of `/server/health`: whether the replication consumer streams, and how
//! much WAL its slot trails by (what a restart would replay, and what the server must keep).

use serde_json::{Value, json};

use crate::db::replication::slot_lag;
use crate::http::state::AppState;

/// Above this slot lag the check warns: the feed is falling behind or holding WAL.
const LAG_THRESHOLD_BYTES: i64 = 64 << 20;

/// The realtime part of a health answer.
pub(super) struct RealtimeHealth {
    /// `ok` or `warn`: a stopped feed leaves REST working, so it never fails health.
    pub status: &'static str,
    /// `realtime:*` entries for the admin's `checks` block.
    pub checks: Vec<(&'static str, Value)>,
}

/// `None` when realtime is off by configuration.
pub(super) async fn check(state: &AppState) -> Option<RealtimeHealth> {
    let status = state.replication.as_ref()?;
    // Measured now when the database answers; the consumer's last measurement otherwise.
    let lag = match slot_lag(&state.pool, status.slot()).await {
        Ok(lag) => lag.map(|lag| lag.bytes),
        Err(_) => status.slot_lag_bytes(),
    };
    let connected = status.connected();
    let lagging = lag.is_some_and(|bytes| bytes > LAG_THRESHOLD_BYTES);
    let lag_status = if lagging { "warn" } else { "ok" };
    let connected_status = if connected { "ok" } else { "warn" };
    let mut connection = json!({
        "status": connected_status, "componentType": "replication", "observedValue": connected,
    });
    if !connected && let Some(error) = status.last_error() {
        connection["output"] = json!(error.to_string());
    }
    let checks = vec![
        ("realtime:connected", json!([connection])),
        (
            "realtime:slotLag",
            json!([{
                "status": lag_status, "componentType": "replication", "observedValue": lag,
                "observedUnit": "bytes", "threshold": LAG_THRESHOLD_BYTES,
            }]),
        ),
    ];
    Some(RealtimeHealth {
        status: if connected && !lagging { "ok" } else { "warn" },
        checks,
    })
}
