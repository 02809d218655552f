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
//! - **pool wait**: a probe asks the worker's pool for a connection every sample interval, as a
//!   request would, and records how long it waited (while a probe is still waiting, that time
//!   counts). Past `PRESSURE_LIMITER_MAX_POOL_WAIT`, new requests are shed at once rather than
//!   queued behind the acquire timeout: the database is the bottleneck, not this worker.
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
    /// A database connection takes longer than `PRESSURE_LIMITER_MAX_POOL_WAIT` to get.
    PoolWait,
}

/// The decision, pure: `lag` and `in_flight` (including the request being decided) against the
/// limits. A zero `max_event_loop_delay` turns the lag check off, as a zero threshold does in
/// Directus's `@directus/pressure`.
pub fn overload(
    lag: Duration,
    in_flight: usize,
    pool_wait: Duration,
    config: &PressureConfig,
) -> Option<Overload> {
    if !config.max_event_loop_delay.is_zero() && lag > config.max_event_loop_delay {
        Some(Overload::Lag)
    } else if in_flight > config.max_in_flight {
        Some(Overload::InFlight)
    } else if !config.max_pool_wait.is_zero() && pool_wait > config.max_pool_wait {
        Some(Overload::PoolWait)
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
    /// How long the last pool probe waited for a connection.
    last_pool_wait: Cell<Duration>,
    /// When the probe now waiting started to (`None`: none waiting).
    probing_since: Cell<Option<Instant>>,
}

impl WorkerPressure {
    /// Gauges for the current worker, with their sampler spawned on its runtime. Must be called
    /// on the worker thread (the `HttpServer` factory and `Transform::new_transform` are).
    pub fn start(config: &PressureConfig, pool: Option<sqlx::PgPool>) -> Rc<WorkerPressure> {
        let worker = Rc::new(WorkerPressure::new(config));
        actix_web::rt::spawn(sample(Rc::downgrade(&worker), config.sample_interval));
        if let Some(pool) = pool.filter(|_| !config.max_pool_wait.is_zero()) {
            actix_web::rt::spawn(probe(Rc::downgrade(&worker), pool, config.sample_interval));
        }
        worker
    }

    fn new(config: &PressureConfig) -> WorkerPressure {
        WorkerPressure {
            config: config.clone(),
            in_flight: Cell::new(0),
            last_lag: Cell::new(Duration::ZERO),
            next_wake: Cell::new(Instant::now() + config.sample_interval),
            shedding: Cell::new(false),
            last_pool_wait: Cell::new(Duration::ZERO),
            probing_since: Cell::new(None),
        }
    }

    /// How long a database connection takes to get, as of now.
    pub fn pool_wait(&self) -> Duration {
        let waiting = self
            .probing_since
            .get()
            .map_or(Duration::ZERO, |since| since.elapsed());
        self.last_pool_wait.get().max(waiting)
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
        match overload(self.lag(), in_flight, self.pool_wait(), &self.config) {
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
                        pool_wait_ms = self.pool_wait().as_millis() as u64,
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

/// The pool probe: every `interval`, one connection asked for and handed back at once, timed,
/// until the worker's gauges are dropped.
async fn probe(worker: Weak<WorkerPressure>, pool: sqlx::PgPool, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let started = Instant::now();
        match worker.upgrade() {
            Some(worker) => worker.probing_since.set(Some(started)),
            None => return,
        }
        // A failure (the database is down) is waited for as long as a request would be.
        let acquired = pool.acquire().await;
        drop(acquired);
        match worker.upgrade() {
            Some(worker) => {
                worker.probing_since.set(None);
                worker.last_pool_wait.set(started.elapsed());
            }
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
            max_pool_wait: Duration::from_millis(200),
            retry_after: Duration::from_secs(3),
        }
    }

    #[test]
    fn overload_compares_lag_and_in_flight_with_their_limits() {
        let c = config(500, 4);
        let none = Duration::ZERO;
        assert_eq!(overload(Duration::from_millis(500), 4, none, &c), None);
        assert_eq!(
            overload(Duration::from_millis(501), 1, none, &c),
            Some(Overload::Lag)
        );
        assert_eq!(overload(Duration::ZERO, 5, none, &c), Some(Overload::InFlight));
        assert_eq!(
            overload(Duration::ZERO, 1, Duration::from_millis(201), &c),
            Some(Overload::PoolWait)
        );
        // Zero turns the lag check off.
        assert_eq!(overload(Duration::from_secs(60), 1, none, &config(0, 4)), None);
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
        let worker = WorkerPressure::start(&config(50, 100), None);
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
