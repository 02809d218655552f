//! Rate-limit buckets: the [`RateLimitStore`] contract, the in-memory store on `governor`'s keyed
//! GCRA, and [`Limiter`], which applies one store's answer and its failure policy.
//!
//! A store holds one quota (`points` per `duration`) for many string keys. It never decides what
//! a key means (an IP, an email, `"global"`); [`super::Limits`] does. A Redis store for several
//! nodes implements the same trait and joins [`Store`] as a second variant.

use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// What a bucket looks like after one request: the numbers behind the IETF draft
/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// The bucket's size (`points`).
    pub limit: u32,
    /// Requests still allowed right now, after this one.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
}

impl RateInfo {
    /// The bucket closer to running out, as the IETF draft asks for when several limits apply:
    /// fewer requests remaining, then the longer wait to refill.
    pub fn tighter(self, other: RateInfo) -> RateInfo {
        if (other.remaining, std::cmp::Reverse(other.reset_after))
            < (self.remaining, std::cmp::Reverse(self.reset_after))
        {
            other
        } else {
            self
        }
    }
}

/// A store's answer to "take one point from this key".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The point was taken.
    Allowed(RateInfo),
    /// The bucket is empty; nothing was taken. `retry_after` is the wait until one point is back.
    Limited { info: RateInfo, retry_after: Duration },
}

/// The store could not answer (a Redis store that lost its connection, say).
#[derive(Debug, thiserror::Error)]
#[error("rate-limit store unavailable")]
pub struct StoreError(#[source] pub anyhow::Error);

/// A bucket per key, all with the same quota.
///
/// Contract: `consume` takes one point atomically, even when several nodes or workers share the
/// store; keys are opaque strings chosen by the caller; an empty bucket answers
/// [`Decision::Limited`] without taking anything. Keys that have refilled completely may be
/// forgotten at any time (that is indistinguishable from a fresh key).
pub trait RateLimitStore: Send + Sync + 'static {
    /// Takes one point from `key`'s bucket.
    fn consume(&self, key: &str) -> impl Future<Output = Result<Decision, StoreError>> + Send;
}

/// The stores a [`Limiter`] can run on. An enum rather than `dyn`, so the hot path is a direct
/// call with no boxed future; `RATE_LIMITER_STORE=redis` adds a `Redis` variant here.
#[derive(Debug)]
pub enum Store {
    Memory(MemoryStore),
}

impl RateLimitStore for Store {
    async fn consume(&self, key: &str) -> Result<Decision, StoreError> {
        match self {
            Store::Memory(store) => store.consume(key).await,
        }
    }
}

impl Store {
    /// Forgets keys whose buckets are full again, so memory tracks recent clients only.
    pub fn forget_idle_keys(&self) {
        match self {
            Store::Memory(store) => store.forget_idle_keys(),
        }
    }
}

type KeyedGcra = RateLimiter<u64, DashMapStateStore<u64>, DefaultClock, StateInformationMiddleware>;

/// One process's buckets, on `governor`'s keyed GCRA: a burst of `points`, refilled one point
/// every `duration / points`.
///
/// Directus's memory store counts fixed windows instead; GCRA never lets a client spend two
/// windows' worth at a window boundary, and its `Retry-After` is the wait for one point, not for
/// the whole window.
///
/// Keys are stored as a 64-bit SipHash under a per-store random key, not as strings: checking a
/// key allocates nothing, and an entry costs a few dozen bytes. Two keys share a bucket only on a
/// 64-bit collision, which a client cannot aim for without the secret hash key.
pub struct MemoryStore {
    gcra: KeyedGcra,
    hasher: RandomState,
    limit: u32,
    /// The time one point takes to come back.
    per_point: Duration,
    /// Entries after the last clean-up, to decide when shrinking the map is worth it.
    last_len: AtomicUsize,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("limit", &self.limit)
            .field("per_point", &self.per_point)
            .field("keys", &self.gcra.len())
            .finish()
    }
}

impl MemoryStore {
    /// A store allowing `points` per `duration` per key (both at least 1; config validates that
    /// for enabled limiters, and smaller values are raised to it here).
    pub fn new(points: u32, duration: Duration) -> MemoryStore {
        let burst = NonZeroU32::new(points).unwrap_or(NonZeroU32::MIN);
        // governor refuses a zero period; a nanosecond is "unlimited" for every practical quota.
        let per_point = (duration / burst.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(per_point)
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        MemoryStore {
            gcra: RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
            hasher: RandomState::new(),
            limit: burst.get(),
            per_point,
            last_len: AtomicUsize::new(0),
        }
    }

    /// The synchronous check behind [`RateLimitStore::consume`].
    pub fn consume_now(&self, key: &str) -> Decision {
        let hashed = self.hasher.hash_one(key);
        match self.gcra.check_key(&hashed) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(self.limit);
                // GCRA keeps only the time the bucket is full again, and governor does not expose
                // it; each spent point is at most one `per_point` of that wait, so this rounds up
                // by less than one point's time.
                Decision::Allowed(RateInfo {
                    limit: self.limit,
                    remaining,
                    reset_after: self.per_point * (self.limit - remaining),
                })
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.gcra.clock().now());
                Decision::Limited {
                    // Empty means the last point returns after `retry_after` and the rest after
                    // one `per_point` each.
                    info: RateInfo {
                        limit: self.limit,
                        remaining: 0,
                        reset_after: retry_after + self.per_point * (self.limit - 1),
                    },
                    retry_after,
                }
            }
        }
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.gcra.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.gcra.is_empty()
    }

    /// Drops keys whose buckets have refilled, and gives memory back once the map has halved.
    pub fn forget_idle_keys(&self) {
        self.gcra.retain_recent();
        let len = self.gcra.len();
        let before = self.last_len.swap(len, Ordering::Relaxed);
        // Shrinking rehashes every entry, so only do it when a burst of keys has gone away.
        if len < before / 2 {
            self.gcra.shrink_to_fit();
        }
        tracing::debug!(
            keys = len,
            forgotten = before.saturating_sub(len),
            "rate-limit keys cleaned up"
        );
    }
}

impl RateLimitStore for MemoryStore {
    async fn consume(&self, key: &str) -> Result<Decision, StoreError> {
        Ok(self.consume_now(key))
    }
}

/// One named limit: a store plus the policy for a store that cannot answer.
#[derive(Debug)]
pub struct Limiter<S = Store> {
    /// For logs: `global`, `per_ip`, `auth_ip`, `auth_email`.
    name: &'static str,
    store: S,
}

impl<S: RateLimitStore> Limiter<S> {
    pub fn new(name: &'static str, store: S) -> Limiter<S> {
        Limiter { name, store }
    }

    /// Takes one point from `key`, or `None` when the store failed.
    ///
    /// A failed store lets the request through (fail open, logged at `warn`): a Redis outage
    /// must not take the whole API down with it, and the auth routes keep their login stall and
    /// password-hash cost as a second line of defence.
    pub async fn check(&self, key: &str) -> Option<Decision> {
        match self.store.consume(key).await {
            Ok(decision) => Some(decision),
            Err(err) => {
                tracing::warn!(limiter = self.name, error = %err, "rate-limit store failed; allowing the request");
                None
            }
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn store(&self) -> &S {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(decision: Decision) -> RateInfo {
        match decision {
            Decision::Allowed(info) => info,
            Decision::Limited { .. } => panic!("expected allowed, got {decision:?}"),
        }
    }

    #[test]
    fn a_bucket_allows_its_points_then_limits() {
        let store = MemoryStore::new(3, Duration::from_secs(60));
        let remaining: Vec<u32> = (0..3)
            .map(|_| allowed(store.consume_now("a")).remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let Decision::Limited { info, retry_after } = store.consume_now("a") else {
            panic!("fourth request should be limited")
        };
        assert_eq!(info.remaining, 0);
        assert_eq!(info.limit, 3);
        // One point comes back every 20 s.
        assert!(retry_after > Duration::from_secs(19) && retry_after <= Duration::from_secs(20));
        assert!(info.reset_after > Duration::from_secs(59) && info.reset_after <= Duration::from_secs(60));
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let store = MemoryStore::new(1, Duration::from_secs(60));
        assert!(matches!(store.consume_now("a"), Decision::Allowed(_)));
        assert!(matches!(store.consume_now("a"), Decision::Limited { .. }));
        assert!(matches!(store.consume_now("b"), Decision::Allowed(_)));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn reset_grows_with_spent_points() {
        let store = MemoryStore::new(4, Duration::from_secs(4));
        let first = allowed(store.consume_now("a"));
        assert_eq!(first.reset_after, Duration::from_secs(1));
        let second = allowed(store.consume_now("a"));
        assert_eq!(second.reset_after, Duration::from_secs(2));
    }

    #[test]
    fn refilled_keys_are_forgotten() {
        let store = MemoryStore::new(1, Duration::from_millis(20));
        store.consume_now("a");
        store.consume_now("b");
        assert_eq!(store.len(), 2);
        // Waiting out the window is the point of the test, not a performance assertion.
        std::thread::sleep(Duration::from_millis(40));
        store.forget_idle_keys();
        assert!(store.is_empty());
    }

    #[test]
    fn tighter_prefers_fewer_remaining_then_longer_reset() {
        let a = RateInfo {
            limit: 10,
            remaining: 3,
            reset_after: Duration::from_secs(1),
        };
        let b = RateInfo {
            limit: 50,
            remaining: 1,
            reset_after: Duration::from_secs(1),
        };
        let c = RateInfo {
            limit: 50,
            remaining: 1,
            reset_after: Duration::from_secs(9),
        };
        assert_eq!(a.tighter(b), b);
        assert_eq!(b.tighter(a), b);
        assert_eq!(b.tighter(c), c);
        assert_eq!(c.tighter(b), c);
    }

    struct BrokenStore;

    impl RateLimitStore for BrokenStore {
        async fn consume(&self, _key: &str) -> Result<Decision, StoreError> {
            Err(StoreError(anyhow::anyhow!("connection refused")))
        }
    }

    #[actix_web::test]
    async fn a_failing_store_lets_requests_through() {
        let limiter = Limiter::new("per_ip", BrokenStore);
        assert_eq!(limiter.check("a").await, None);
    }
}
