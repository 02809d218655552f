//! Sets up the global `tracing` subscriber: pretty lines by default, JSON lines with
//! `LOG_STYLE=raw`, level from `LOG_LEVEL` (or `RUST_LOG` when a developer sets it).
//!
//! This is the only place the subscriber is configured. Tests do not call it unless
//! `TEST_LOG=1` (see `tests/common`).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogStyle;

/// Installs the subscriber once per process; later calls are no-ops.
pub fn init(level: &str, style: LogStyle) {
    // `RUST_LOG` wins so a developer can turn on a module without touching LOG_LEVEL.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},sqlx=warn,actix_server=warn")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE);
    let result = match style {
        LogStyle::Pretty => builder.with_target(false).try_init(),
        LogStyle::Raw => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    // A second init (tests) leaves the first subscriber in place, which is what we want.
    drop(result);
}
