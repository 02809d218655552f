//! Realtime settings: the replication feed (slot, publication, retention) and the two
//! transports, WebSocket (Directus's `WEBSOCKETS_*` names) and SSE (`/stream`, ours).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// What a session does when a subscriber's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlowConsumer {
    /// Keep only the latest state per item until the queue drains.
    Coalesce,
    /// Drop the subscription's backlog and send one must-refetch message.
    Resync,
    /// Close the connection.
    Disconnect,
}

impl SlowConsumer {
    pub fn parse(text: &str) -> Option<SlowConsumer> {
        match text {
            "coalesce" => Some(SlowConsumer::Coalesce),
            "resync" => Some(SlowConsumer::Resync),
            "disconnect" => Some(SlowConsumer::Disconnect),
            _ => None,
        }
    }
}

/// How a WebSocket connection authenticates (`WEBSOCKETS_REST_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsAuthMode {
    /// Anyone connects as the public; `auth` may elevate.
    Public,
    /// The first message must be `auth` within the timeout (Directus's default).
    Handshake,
    /// The upgrade request itself must carry a valid token.
    Strict,
}

/// Everything realtime.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// `REALTIME_ENABLED` (default true): run the replication consumer and feeds at all.
    pub enabled: bool,
    /// `REALTIME_SLOT`: the logical replication slot; default `directrix_<database>`, because
    /// slots are cluster-wide and several databases may share one cluster.
    pub slot: Option<String>,
    /// `REALTIME_PUBLICATION` (default `directrix`): a publication is per database.
    pub publication: String,
    /// `REALTIME_REPLICA_IDENTITY_FULL` (default true): tables created through Directrix get
    /// `REPLICA IDENTITY FULL`, so updates and deletes carry the old row.
    pub replica_identity_full: bool,
    /// `REALTIME_STATUS_INTERVAL` ms (default 1000): standby status update cadence.
    pub status_interval: Duration,
    /// `REALTIME_RETENTION_CHANGES` (default 10000): changes each collection's ring keeps for
    /// resume.
    pub retention_changes: usize,
    /// `REALTIME_RETENTION_SECONDS` (default 300): how long a change stays resumable. The slot
    /// is confirmed no further than the oldest retained change, so this bounds retained WAL.
    pub retention: Duration,
    /// `REALTIME_OUTBOUND_QUEUE` (default 1024): frames a session may have queued.
    pub outbound_queue: usize,
    /// `REALTIME_OUTBOUND_BYTES` (default 4 MiB; ours): event bytes a session may have queued.
    pub outbound_bytes: usize,
    /// `REALTIME_OUTBOUND_MAX_AGE` seconds (default 10; ours): how long a session's queue may
    /// stay non-empty (its client that far behind) before its subscriptions' slow-consumer
    /// policies apply.
    pub outbound_max_age: Duration,
    /// `REALTIME_SLOW_CONSUMER` (default `coalesce`).
    pub slow_consumer: SlowConsumer,
    /// `WEBSOCKETS_ENABLED` (default true in Directrix; false in Directus).
    pub ws_enabled: bool,
    /// `WEBSOCKETS_REST_ENABLED` (default true).
    pub ws_rest_enabled: bool,
    /// `WEBSOCKETS_REST_PATH` (default `/websocket`).
    pub ws_path: String,
    /// `WEBSOCKETS_REST_AUTH` (default `handshake`).
    pub ws_auth: WsAuthMode,
    /// `WEBSOCKETS_REST_AUTH_TIMEOUT` seconds (default 30).
    pub ws_auth_timeout: Duration,
    /// `WEBSOCKETS_REST_CONN_LIMIT` (default unlimited).
    pub ws_conn_limit: Option<usize>,
    /// `WEBSOCKETS_HEARTBEAT_ENABLED` (default true).
    pub heartbeat_enabled: bool,
    /// `WEBSOCKETS_HEARTBEAT_PERIOD` seconds (default 30).
    pub heartbeat_period: Duration,
    /// `WEBSOCKETS_MAX_MESSAGE_SIZE` bytes (default 1 MiB; ours).
    pub ws_max_message_size: usize,
    /// Whether socket messages are rate limited: on whenever the HTTP limiter is
    /// (`RATE_LIMITER_ENABLED`, as in Directus); `RATE_LIMITER_WEBSOCKETS_ENABLED` (ours)
    /// overrides either way.
    pub ws_rate_enabled: bool,
    /// `RATE_LIMITER_WEBSOCKETS_POINTS` messages per `RATE_LIMITER_WEBSOCKETS_DURATION`
    /// seconds, per connection; each defaults to its `RATE_LIMITER_*` counterpart (50 per 1 s).
    /// A connection refused more than twice its points in a row is closed (1008).
    pub ws_rate_points: u32,
    pub ws_rate_duration: Duration,
    /// `WEBSOCKETS_MAX_SUBSCRIPTIONS` (ours, default 100, as Supabase's channels per client):
    /// subscriptions one connection may hold; one more is refused with `LIMIT_EXCEEDED`. Also
    /// the most collections one `/stream` may name.
    pub max_subscriptions: usize,
    /// `WEBSOCKETS_COLLAB_ENABLED` (default true): presence, broadcast and field locks.
    pub collab_enabled: bool,
    /// `SSE_ENABLED` (default true): `GET /stream`.
    pub sse_enabled: bool,
    /// `SSE_KEEPALIVE` seconds (default 15): comment lines that keep proxies from timing out.
    pub sse_keepalive: Duration,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            enabled: true,
            slot: None,
            publication: "directrix".into(),
            replica_identity_full: true,
            status_interval: Duration::from_secs(1),
            retention_changes: 10_000,
            retention: Duration::from_secs(300),
            outbound_queue: 1024,
            outbound_bytes: 4 << 20,
            outbound_max_age: Duration::from_secs(10),
            slow_consumer: SlowConsumer::Coalesce,
            ws_enabled: true,
            ws_rest_enabled: true,
            ws_path: "/websocket".into(),
            ws_auth: WsAuthMode::Handshake,
            ws_auth_timeout: Duration::from_secs(30),
            ws_conn_limit: None,
            heartbeat_enabled: true,
            heartbeat_period: Duration::from_secs(30),
            ws_max_message_size: 1 << 20,
            ws_rate_enabled: false,
            ws_rate_points: 50,
            ws_rate_duration: Duration::from_secs(1),
            max_subscriptions: 100,
            collab_enabled: true,
            sse_enabled: true,
            sse_keepalive: Duration::from_secs(15),
        }
    }
}

/// The realtime variables as read; figment lowercases env names.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct RealtimeEnv {
    realtime_enabled: Option<bool>,
    realtime_slot: Option<String>,
    realtime_publication: Option<String>,
    realtime_replica_identity_full: Option<bool>,
    realtime_status_interval: Option<u64>,
    realtime_retention_changes: Option<usize>,
    realtime_retention_seconds: Option<u64>,
    realtime_outbound_queue: Option<usize>,
    realtime_outbound_bytes: Option<usize>,
    realtime_outbound_max_age: Option<u64>,
    realtime_slow_consumer: Option<String>,
    websockets_enabled: Option<bool>,
    websockets_rest_enabled: Option<bool>,
    websockets_rest_path: Option<String>,
    websockets_rest_auth: Option<String>,
    websockets_rest_auth_timeout: Option<u64>,
    /// A number, or `Infinity` as Directus writes unlimited.
    websockets_rest_conn_limit: Option<String>,
    websockets_heartbeat_enabled: Option<bool>,
    websockets_heartbeat_period: Option<u64>,
    websockets_max_message_size: Option<usize>,
    rate_limiter_websockets_enabled: Option<bool>,
    rate_limiter_websockets_points: Option<u32>,
    rate_limiter_websockets_duration: Option<u64>,
    websockets_collab_enabled: Option<bool>,
    websockets_max_subscriptions: Option<usize>,
    sse_enabled: Option<bool>,
    sse_keepalive: Option<u64>,
}

pub(super) const ENV_NAMES: &[&str] = &[
    "REALTIME_ENABLED",
    "REALTIME_SLOT",
    "REALTIME_PUBLICATION",
    "REALTIME_REPLICA_IDENTITY_FULL",
    "REALTIME_STATUS_INTERVAL",
    "REALTIME_RETENTION_CHANGES",
    "REALTIME_RETENTION_SECONDS",
    "REALTIME_OUTBOUND_QUEUE",
    "REALTIME_OUTBOUND_BYTES",
    "REALTIME_OUTBOUND_MAX_AGE",
    "REALTIME_SLOW_CONSUMER",
    "WEBSOCKETS_ENABLED",
    "WEBSOCKETS_REST_ENABLED",
    "WEBSOCKETS_REST_PATH",
    "WEBSOCKETS_REST_AUTH",
    "WEBSOCKETS_REST_AUTH_TIMEOUT",
    "WEBSOCKETS_REST_CONN_LIMIT",
    "WEBSOCKETS_HEARTBEAT_ENABLED",
    "WEBSOCKETS_HEARTBEAT_PERIOD",
    "WEBSOCKETS_MAX_MESSAGE_SIZE",
    "RATE_LIMITER_WEBSOCKETS_ENABLED",
    "RATE_LIMITER_WEBSOCKETS_POINTS",
    "RATE_LIMITER_WEBSOCKETS_DURATION",
    "WEBSOCKETS_COLLAB_ENABLED",
    "WEBSOCKETS_MAX_SUBSCRIPTIONS",
    "SSE_ENABLED",
    "SSE_KEEPALIVE",
];

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

impl RealtimeEnv {
    /// Resolves the variables; the socket limiter follows `http` (the `RATE_LIMITER_*` one)
    /// where its own variables are unset.
    pub(super) fn resolve(self, http: &super::LimiterConfig) -> Result<RealtimeConfig, ConfigError> {
        let d = RealtimeConfig::default();
        let slow_consumer = match self.realtime_slow_consumer.as_deref() {
            None => d.slow_consumer,
            Some(text) => SlowConsumer::parse(text).ok_or_else(|| {
                invalid(
                    "REALTIME_SLOW_CONSUMER",
                    format!("expected coalesce, resync or disconnect, got {text:?}"),
                )
            })?,
        };
        let ws_auth = match self.websockets_rest_auth.as_deref() {
            None => d.ws_auth,
            Some("public") => WsAuthMode::Public,
            Some("handshake") => WsAuthMode::Handshake,
            Some("strict") => WsAuthMode::Strict,
            Some(other) => {
                return Err(invalid(
                    "WEBSOCKETS_REST_AUTH",
                    format!("expected public, handshake or strict, got {other:?}"),
                ));
            }
        };
        let ws_conn_limit = match self.websockets_rest_conn_limit.as_deref() {
            None | Some("Infinity") => None,
            Some(text) => Some(text.parse::<usize>().map_err(|_| {
                invalid(
                    "WEBSOCKETS_REST_CONN_LIMIT",
                    format!("expected a number or Infinity, got {text:?}"),
                )
            })?),
        };
        let ws_path = self.websockets_rest_path.unwrap_or(d.ws_path);
        if !ws_path.starts_with('/') {
            return Err(invalid("WEBSOCKETS_REST_PATH", "must start with /"));
        }
        let secs = |name: &'static str, value: Option<u64>, default: Duration| match value {
            None => Ok(default),
            Some(0) => Err(invalid(name, "must be at least 1")),
            Some(n) => Ok(Duration::from_secs(n)),
        };
        let slot = self.realtime_slot;
        if let Some(slot) = &slot
            && !slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "REALTIME_SLOT",
                "slot names are lower-case letters, digits and underscores",
            ));
        }
        Ok(RealtimeConfig {
            enabled: self.realtime_enabled.unwrap_or(d.enabled),
            slot,
            publication: self.realtime_publication.unwrap_or(d.publication),
            replica_identity_full: self
                .realtime_replica_identity_full
                .unwrap_or(d.replica_identity_full),
            status_interval: match self.realtime_status_interval {
                None => d.status_interval,
                Some(0) => return Err(invalid("REALTIME_STATUS_INTERVAL", "must be at least 1")),
                Some(ms) => Duration::from_millis(ms),
            },
            retention_changes: self.realtime_retention_changes.unwrap_or(d.retention_changes),
            retention: secs(
                "REALTIME_RETENTION_SECONDS",
                self.realtime_retention_seconds,
                d.retention,
            )?,
            outbound_queue: self.realtime_outbound_queue.unwrap_or(d.outbound_queue).max(1),
            outbound_bytes: self.realtime_outbound_bytes.unwrap_or(d.outbound_bytes).max(1024),
            outbound_max_age: secs(
                "REALTIME_OUTBOUND_MAX_AGE",
                self.realtime_outbound_max_age,
                d.outbound_max_age,
            )?,
            slow_consumer,
            ws_enabled: self.websockets_enabled.unwrap_or(d.ws_enabled),
            ws_rest_enabled: self.websockets_rest_enabled.unwrap_or(d.ws_rest_enabled),
            ws_path,
            ws_auth,
            ws_auth_timeout: secs(
                "WEBSOCKETS_REST_AUTH_TIMEOUT",
                self.websockets_rest_auth_timeout,
                d.ws_auth_timeout,
            )?,
            ws_conn_limit,
            heartbeat_enabled: self.websockets_heartbeat_enabled.unwrap_or(d.heartbeat_enabled),
            heartbeat_period: secs(
                "WEBSOCKETS_HEARTBEAT_PERIOD",
                self.websockets_heartbeat_period,
                d.heartbeat_period,
            )?,
            ws_max_message_size: self.websockets_max_message_size.unwrap_or(d.ws_max_message_size),
            ws_rate_enabled: self.rate_limiter_websockets_enabled.unwrap_or(http.enabled),
            ws_rate_points: self.rate_limiter_websockets_points.unwrap_or(http.points).max(1),
            ws_rate_duration: secs(
                "RATE_LIMITER_WEBSOCKETS_DURATION",
                self.rate_limiter_websockets_duration,
                http.duration.max(Duration::from_secs(1)),
            )?,
            max_subscriptions: self
                .websockets_max_subscriptions
                .unwrap_or(d.max_subscriptions)
                .max(1),
            collab_enabled: self.websockets_collab_enabled.unwrap_or(d.collab_enabled),
            sse_enabled: self.sse_enabled.unwrap_or(d.sse_enabled),
            sse_keepalive: secs("SSE_KEEPALIVE", self.sse_keepalive, d.sse_keepalive)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(enabled: bool) -> super::super::LimiterConfig {
        super::super::LimiterConfig {
            enabled,
            points: 70,
            duration: Duration::from_secs(2),
        }
    }

    #[test]
    fn defaults_resolve() {
        let config = RealtimeEnv::default()
            .resolve(&limiter(false))
            .map_err(|e| e.to_string());
        assert!(
            matches!(config, Ok(c) if c.ws_enabled && c.ws_auth == WsAuthMode::Handshake && !c.ws_rate_enabled)
        );
    }

    #[test]
    fn the_socket_limiter_follows_the_http_one_unless_told() {
        let config = RealtimeEnv::default().resolve(&limiter(true)).unwrap();
        assert!(config.ws_rate_enabled);
        assert_eq!(
            (config.ws_rate_points, config.ws_rate_duration),
            (70, Duration::from_secs(2))
        );
        let env = RealtimeEnv {
            rate_limiter_websockets_enabled: Some(false),
            rate_limiter_websockets_points: Some(5),
            ..RealtimeEnv::default()
        };
        let config = env.resolve(&limiter(true)).unwrap();
        assert!(!config.ws_rate_enabled);
        assert_eq!(config.ws_rate_points, 5);
    }

    #[test]
    fn infinity_is_unlimited_and_bad_modes_are_refused() {
        let env = RealtimeEnv {
            websockets_rest_conn_limit: Some("Infinity".into()),
            ..RealtimeEnv::default()
        };
        assert!(matches!(env.resolve(&limiter(false)), Ok(c) if c.ws_conn_limit.is_none()));
        let env = RealtimeEnv {
            websockets_rest_auth: Some("open".into()),
            ..RealtimeEnv::default()
        };
        assert!(env.resolve(&limiter(false)).is_err());
        let env = RealtimeEnv {
            realtime_slow_consumer: Some("drop".into()),
            ..RealtimeEnv::default()
        };
        assert!(env.resolve(&limiter(false)).is_err());
    }
}
