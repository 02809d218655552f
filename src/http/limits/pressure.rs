//! Overload shedding, Directus's pressure limiter for one HTTP worker: answer 503 at once while
//! the worker is saturated, instead of queueing requests that will time out anyway.
//!
//! actix-web runs one single-threaded runtime per worker, and a worker's requests only wait on
//! that runtime, so pressure is measured and decided per worker: [`WorkerPressure`] lives on one
//! worker thread (`Rc` + `Cell`, no atomics) and is owned by that worker's middleware. Two
//! signals, either of which sheds:
//!
//! - **scheduling lag**: a sampler task sleeps `PRESSURE_LIMITER_SAMPLE_INTERVAL` and records how
//!   late it woke (the analogue of Node's event-loop delay). While the sampler is overdue the
//!   overdue time counts too, so a worker stuck right now is seen before the sampler runs again.
//! - **requests in flight** on this worker, counted from admission until the response is ready.
//!
//! `/server/health` and `/server/ping` are never shed, so load balancers keep seeing the node.

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::config::PressureConfig;
use crate::error::Error;

/// Paths that bypass shedding (and are not counted in flight).
const EXEMPT_PATHS: [&str; 2] = ["/server/health", "/server/ping"];

/// Whether `path` is answered even under pressure.
pub fn is_exempt(path: &str) -> bool {
    EXEMPT_PATHS.contains(&path)
}

/// Why a worker sheds load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// Tasks on this worker start later than `PRESSURE_LIMITER_MAX_EVENT_LOOP_DELAY`.
    Lag,
    /// More requests in flight on this worker than `PRESSURE_LIMITER_MAX_IN_FLIGHT`.
    InFlight,
}

/// The decision, pure: `lag` and `in_flight` (including the request being decided) against the
/// limits. A zero `max_event_loop_delay` turns the lag check off, as a zero threshold does in
/// Directus's `@directus/pressure`.
pub fn overload(lag: Duration, in_flight: usize, config: &PressureConfig) -> Option<Overload> {
    if !config.max_event_loop_delay.is_zero() && lag > config.max_event_loop_delay {
        Some(Overload::Lag)
    } else if in_flight > config.max_in_flight {
        Some(Overload::InFlight)
    } else {
        None
    }
}

/// One worker's pressure gauges; see the module docs. Only the worker that created it touches it.
#[derive(Debug)]
pub struct WorkerPressure {
    config: PressureConfig,
    in_flight: Cell<usize>,
    /// How late the sampler's last wake-up was.
    last_lag: Cell<Duration>,
    /// When the sampler should wake next; later than that, the worker is lagging now.
    next_wake: Cell<Instant>,
    /// Whether the last decision shed, so a change is logged once instead of per request.
    shedding: Cell<bool>,
}

impl WorkerPressure {
    /// Gauges for the current worker, with their sampler spawned on its runtime. Must be called
    /// on the worker thread (the `HttpServer` factory and `Transform::new_transform` are).
    pub fn start(config: &PressureConfig) -> Rc<WorkerPressure> {
        let worker = Rc::new(WorkerPressure::new(config));
        actix_web::rt::spawn(sample(Rc::downgrade(&worker), config.sample_interval));
        worker
    }

    fn new(config: &PressureConfig) -> WorkerPressure {
        WorkerPressure {
            config: config.clone(),
            in_flight: Cell::new(0),
            last_lag: Cell::new(Duration::ZERO),
            next_wake: Cell::new(Instant::now() + config.sample_interval),
            shedding: Cell::new(false),
        }
    }

    /// The worker's scheduling lag as of now.
    pub fn lag(&self) -> Duration {
        let overdue = Instant::now().saturating_duration_since(self.next_wake.get());
        self.last_lag.get().max(overdue)
    }

    /// Requests admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Admits one request, or refuses it with [`Error::UnderPressure`]. The request counts as in
    /// flight until the returned [`Ticket`] is dropped.
    pub fn admit(self: &Rc<Self>) -> Result<Ticket, Error> {
        let in_flight = self.in_flight.get() + 1;
        match overload(self.lag(), in_flight, &self.config) {
            None => {
                if self.shedding.replace(false) {
                    tracing::info!(in_flight, "pressure relieved; admitting requests again");
                }
                self.in_flight.set(in_flight);
                Ok(Ticket(self.clone()))
            }
            Some(reason) => {
                if !self.shedding.replace(true) {
                    tracing::warn!(
                        ?reason,
                        lag_ms = self.lag().as_millis() as u64,
                        in_flight = in_flight - 1,
                        "under pressure; shedding requests"
                    );
                }
                Err(Error::UnderPressure {
                    retry_after_secs: self.config.retry_after.as_secs(),
                })
            }
        }
    }

    fn record_lag(&self, lag: Duration) {
        self.last_lag.set(lag);
    }
}

/// One admitted request; dropping it ends the request's time in flight.
#[derive(Debug)]
pub struct Ticket(Rc<WorkerPressure>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get().saturating_sub(1));
    }
}

/// The sampler: sleeps `interval`, records how late it woke, forever, until the worker's gauges
/// are dropped with its middleware.
async fn sample(worker: Weak<WorkerPressure>, interval: Duration) {
    loop {
        let due = Instant::now() + interval;
        match worker.upgrade() {
            Some(worker) => worker.next_wake.set(due),
            None => return,
        }
        tokio::time::sleep(interval).await;
        let lag = Instant::now().saturating_duration_since(due);
        match worker.upgrade() {
            Some(worker) => worker.record_lag(lag),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_delay_ms: u64, max_in_flight: usize) -> PressureConfig {
        PressureConfig {
            enabled: true,
            sample_interval: Duration::from_millis(10),
            max_event_loop_delay: Duration::from_millis(max_delay_ms),
            max_in_flight,
            retry_after: Duration::from_secs(3),
        }
    }

    #[test]
    fn overload_compares_lag_and_in_flight_with_their_limits() {
        let c = config(500, 4);
        assert_eq!(overload(Duration::from_millis(500), 4, &c), None);
        assert_eq!(overload(Duration::from_millis(501), 1, &c), Some(Overload::Lag));
        assert_eq!(overload(Duration::ZERO, 5, &c), Some(Overload::InFlight));
        // Zero turns the lag check off.
        assert_eq!(overload(Duration::from_secs(60), 1, &config(0, 4)), None);
    }

    #[test]
    fn tickets_count_requests_in_flight() {
        let worker = Rc::new(WorkerPressure::new(&config(0, 2)));
        let first = worker.admit().unwrap();
        let second = worker.admit().unwrap();
        assert_eq!(worker.in_flight(), 2);
        let refused = worker.admit().unwrap_err();
        assert!(matches!(refused, Error::UnderPressure { retry_after_secs: 3 }));
        // A refused request does not count.
        assert_eq!(worker.in_flight(), 2);
        drop(first);
        assert_eq!(worker.in_flight(), 1);
        let third = worker.admit().unwrap();
        drop((second, third));
        assert_eq!(worker.in_flight(), 0);
    }

    #[test]
    fn exempt_paths_are_exact() {
        assert!(is_exempt("/server/health"));
        assert!(is_exempt("/server/ping"));
        assert!(!is_exempt("/server/info"));
        assert!(!is_exempt("/server/ping/x"));
    }

    #[actix_web::test]
    async fn a_blocked_worker_is_seen_lagging_and_then_recovers() {
        let worker = WorkerPressure::start(&config(50, 100));
        // Block this runtime's only thread, as a CPU-bound handler would.
        actix_web::rt::spawn(async { std::thread::sleep(Duration::from_millis(200)) });
        // Right after the block, the sampler is overdue or has recorded how late it woke.
        tokio::time::timeout(Duration::from_secs(10), async {
            while worker.lag() < Duration::from_millis(100) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the block shows up as lag");
        assert!(matches!(worker.admit(), Err(Error::UnderPressure { .. })));
        // Once the sampler wakes on time again, requests are admitted.
        tokio::time::timeout(Duration::from_secs(10), async {
            while worker.admit().is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the worker recovers");
    }
}
