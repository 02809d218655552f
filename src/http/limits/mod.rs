//! Rate limiting and overload shedding: everything that refuses a request because of *how much*
//! is asked rather than *what*.
//!
//! [`Limits`] owns the rate limiters of one node, built once from the config and shared by every
//! worker (`AppState::limits`):
//!
//! | limiter | env | key | applied by |
//! |---|---|---|---|
//! | global | `RATE_LIMITER_GLOBAL_*` (off) | one shared key | [`LimitsMiddleware`], every route |
//! | per IP | `RATE_LIMITER_*` (off) | client IP (IPv6: /64) | [`LimitsMiddleware`], every route |
//! | auth, per IP and per email | `RATE_LIMITER_AUTH_*` (on, 10 / 60 s) | IP; email | [`Limits::check_auth`], from handlers |
//!
//! Pressure shedding (`PRESSURE_LIMITER_*`) is per worker and lives in [`pressure`]; the
//! middleware applies it before any limiter. The client address comes from
//! [`client_ip`](mod@client_ip); the buckets from [`store`]. Over its limit a client gets [`Error::RequestsExceeded`] (429,
//! `Retry-After`); every response of an enabled request limiter carries `RateLimit-*` headers.
//!
//! This module never authenticates or reads the database: limits apply before either, so they
//! stay cheap under attack.

pub mod client_ip;
pub mod middleware;
pub mod pressure;
pub mod store;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::RequestHead;

pub use self::client_ip::{IpKey, client_ip};
pub use self::middleware::{LimitsMiddleware, insert_rate_headers};
use self::store::Limiter;
pub use self::store::{Decision, MemoryStore, RateInfo, RateLimitStore, Store};
use crate::config::{ClientIpConfig, Config, LimiterConfig, PressureConfig};
use crate::error::Error;

/// How often in-memory stores forget keys whose buckets have refilled. Memory then holds at most
/// the keys seen during one limiter `duration` plus this interval.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);

/// The shared key of the global limiter.
const GLOBAL_KEY: &str = "global";

/// A rate limit was hit: the bucket that ran out and when it has a point again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub info: RateInfo,
    pub retry_after: Duration,
}

impl Limited {
    /// The 429 to answer with; `Retry-After` is rounded up to whole seconds, at least 1.
    pub fn error(&self) -> Error {
        Error::RequestsExceeded {
            retry_after_secs: whole_seconds_up(self.retry_after).max(1),
        }
    }
}

/// The brute-force buckets for sign-in routes.
#[derive(Debug)]
struct AuthLimiters {
    by_ip: Limiter,
    by_email: Limiter,
}

/// The node's rate limiters and the pressure settings; see the module docs.
#[derive(Debug)]
pub struct Limits {
    client_ip: ClientIpConfig,
    global: Option<Limiter>,
    per_ip: Option<Limiter>,
    auth: Option<AuthLimiters>,
    pressure: Option<PressureConfig>,
}

fn memory_limiter(name: &'static str, config: &LimiterConfig) -> Limiter {
    Limiter::new(
        name,
        Store::Memory(MemoryStore::new(config.points, config.duration)),
    )
}

impl Limits {
    /// The limiters `config` enables, on in-memory stores. Spawns nothing; see [`Limits::start`].
    pub fn new(config: &Config) -> Limits {
        let limits = &config.rate_limits;
        Limits {
            client_ip: config.client_ip.clone(),
            global: limits
                .global
                .enabled
                .then(|| memory_limiter("global", &limits.global)),
            per_ip: limits
                .per_ip
                .enabled
                .then(|| memory_limiter("per_ip", &limits.per_ip)),
            auth: limits.auth.enabled.then(|| AuthLimiters {
                by_ip: memory_limiter("auth_ip", &limits.auth),
                by_email: memory_limiter("auth_email", &limits.auth),
            }),
            pressure: config.pressure.enabled.then(|| config.pressure.clone()),
        }
    }

    /// [`Limits::new`], plus a task on the current runtime that keeps the in-memory stores'
    /// memory bounded (every 10 s); it ends when the `Limits` are dropped.
    pub fn start(config: &Config) -> Arc<Limits> {
        let limits = Arc::new(Limits::new(config));
        if limits.stores().next().is_some() {
            let weak = Arc::downgrade(&limits);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // The first tick completes at once; there is nothing to clean yet.
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(limits) = weak.upgrade() else { return };
                    for limiter in limits.stores() {
                        limiter.store().forget_idle_keys();
                    }
                }
            });
        }
        limits
    }

    /// The `App::wrap` middleware applying pressure shedding and the request limiters.
    /// The gate for one worker whose requests draw on `pool` (its waits count as pressure).
    pub fn middleware(self: &Arc<Self>, pool: Option<sqlx::PgPool>) -> LimitsMiddleware {
        LimitsMiddleware::new(self.clone(), pool)
    }

    /// The client address under this node's `IP_TRUST_PROXY` / `IP_CUSTOM_HEADER` rules; the
    /// address the limiters key on. Pass `req.head()` of an `HttpRequest` or `ServiceRequest`.
    pub fn client_ip(&self, head: &RequestHead) -> IpAddr {
        client_ip::client_ip(head, &self.client_ip)
    }

    /// Whether the global or per-IP limiter is on (else the middleware skips them entirely).
    pub fn limits_requests(&self) -> bool {
        self.global.is_some() || self.per_ip.is_some()
    }

    /// Pressure settings, when `PRESSURE_LIMITER_ENABLED`.
    pub fn pressure(&self) -> Option<&PressureConfig> {
        self.pressure.as_ref()
    }

    fn stores(&self) -> impl Iterator<Item = &Limiter> {
        let auth = self.auth.iter().flat_map(|a| [&a.by_ip, &a.by_email]);
        self.global.iter().chain(self.per_ip.iter()).chain(auth)
    }

    /// Takes one point from the global bucket, then one from `ip`'s, as Directus orders them.
    /// `Ok` carries the tighter bucket for the `RateLimit-*` headers (`None` when both are off).
    pub async fn check_request(&self, ip: IpAddr) -> Result<Option<RateInfo>, Limited> {
        let mut info = None;
        if let Some(global) = &self.global {
            info = consume(global, GLOBAL_KEY, info).await?;
        }
        if let Some(per_ip) = &self.per_ip {
            info = consume(per_ip, IpKey::new(ip).as_str(), info).await?;
        }
        Ok(info)
    }

    /// Brute-force protection for the sign-in routes (`/auth/login`, `/auth/refresh`,
    /// `/auth/password/request`, `/auth/password/reset`): takes one point from the client IP's
    /// auth bucket and, when the request names an account, one from that email's bucket
    /// (`RATE_LIMITER_AUTH_POINTS` per `RATE_LIMITER_AUTH_DURATION` each, 10 per 60 s by default).
    ///
    /// Call it first in the handler, before looking the user up or hashing anything, on every
    /// attempt (successful or not), with `ip` from [`Limits::client_ip`] and the email as the
    /// client sent it (it is trimmed and lowercased here, as Directus stores emails). Pass `None`
    /// for routes without an email (refresh). Propagate the `Err` with `?`: it is
    /// [`Error::RequestsExceeded`] (429 + `Retry-After`). `Ok` holds the tighter bucket, for
    /// [`insert_rate_headers`] if the handler wants them, or `None` when the limiter is off.
    ///
    /// The IP bucket is checked first and an empty one stops there, so a client that is already
    /// limited cannot go on draining other people's email buckets. The email bucket still trips
    /// when an attacker rotates addresses (ASVS 4.0.3 V2.2.1, per-account limit). It refills by
    /// itself, so an account is never locked out for longer than one `duration` after the
    /// attempts stop.
    pub async fn check_auth(&self, ip: IpAddr, email: Option<&str>) -> Result<Option<RateInfo>, Error> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        // Logged when a bucket runs dry, not per refused attempt: at most once per refilled
        // point, however hard the attack. The email is never logged; it may be someone else's.
        let by_ip = consume(&auth.by_ip, IpKey::new(ip).as_str(), None)
            .await
            .map_err(|limited| limited.error())?;
        if by_ip.is_some_and(|info| info.remaining == 0) {
            tracing::warn!(%ip, "sign-in attempts from one address used up");
        }
        let Some(email) = email else {
            return Ok(by_ip);
        };
        let email = email.trim().to_lowercase();
        let by_email = consume(&auth.by_email, &email, None)
            .await
            .map_err(|limited| limited.error())?;
        if by_email.is_some_and(|info| info.remaining == 0) {
            tracing::warn!(%ip, "sign-in attempts for one account used up");
        }
        Ok(match (by_ip, by_email) {
            (Some(a), Some(b)) => Some(a.tighter(b)),
            (a, b) => a.or(b),
        })
    }
}

/// One point from `limiter` for `key`, folded into the tighter-bucket info gathered so far.
async fn consume(
    limiter: &Limiter,
    key: &str,
    so_far: Option<RateInfo>,
) -> Result<Option<RateInfo>, Limited> {
    match limiter.check(key).await {
        Some(Decision::Allowed(info)) => Ok(Some(so_far.map_or(info, |s| s.tighter(info)))),
        Some(Decision::Limited { info, retry_after }) => {
            tracing::debug!(limiter = limiter.name(), "rate limit exceeded");
            Err(Limited { info, retry_after })
        }
        // The store failed and let the request through; it has nothing to report.
        None => Ok(so_far),
    }
}

/// Whole seconds, rounded up: headers and messages must never promise a point too early.
fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

impl crate::service::SignInLimit for Limits {
    fn check<'a>(
        &'a self,
        ip: IpAddr,
        email: Option<&'a str>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + 'a>> {
        Box::pin(async move { self.check_auth(ip, email).await.map(drop) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds_up(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn limited_answers_at_least_one_second() {
        let info = RateInfo {
            limit: 1,
            remaining: 0,
            reset_after: Duration::ZERO,
        };
        let err = Limited {
            info,
            retry_after: Duration::ZERO,
        }
        .error();
        assert!(matches!(err, Error::RequestsExceeded { retry_after_secs: 1 }));
    }
}
