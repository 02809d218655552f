//! The realtime checks of `/server/health`: whether the replication consumer streams, and how
//! much WAL its slot trails by (what a restart would replay, and what the server must keep).

use serde_json::{Value, json};

use crate::db::replication::slot_lag;
use crate::http::state::AppState;

/// Above this slot lag the check warns: the feed is falling behind or holding WAL.
const LAG_THRESHOLD_BYTES: i64 = 64 << 20;
/// How long health warns after the slot had to be created again (changes were lost to
/// realtime then; subscribers were told to refetch).
pub const GAP_WARN: std::time::Duration = std::time::Duration::from_secs(600);

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
    let lag = match slot_lag(&state.health_pool, status.slot()).await {
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
    let last_gap = status.last_gap();
    let gapped = last_gap.is_some_and(|(ago, _)| ago < GAP_WARN);
    let mut gaps = json!({
        "status": if gapped { "warn" } else { "ok" }, "componentType": "replication",
        "observedValue": status.gaps(),
    });
    if let (true, Some((ago, from))) = (gapped, last_gap) {
        gaps["output"] = json!(format!(
            "the replication slot was created again {}s ago, starting at {from}: changes committed while it was missing were not delivered (subscribers were told to refetch)",
            ago.as_secs()
        ));
    }
    let checks = vec![
        ("realtime:connected", json!([connection])),
        ("realtime:gaps", json!([gaps])),
        (
            "realtime:slotLag",
            json!([{
                "status": lag_status, "componentType": "replication", "observedValue": lag,
                "observedUnit": "bytes", "threshold": LAG_THRESHOLD_BYTES,
            }]),
        ),
    ];
    Some(RealtimeHealth {
        status: if connected && !lagging && !gapped {
            "ok"
        } else {
            "warn"
        },
        checks,
    })
}
