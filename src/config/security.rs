//! Auth, client-IP, rate-limit and overload settings, under Directus's environment names.
//!
//! Read from the same environment as the rest of [`super::Config`], into their own structs so
//! each part of the access layer takes only what it needs. Durations accept Directus's `ms`
//! notation (`15m`, `7d`, `10s`, or a bare number of milliseconds).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// A duration as Directus's env writes it: a number of milliseconds, or `ms`-style text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum DurationText {
    Millis(u64),
    Text(String),
}

impl DurationText {
    fn text(s: &str) -> DurationText {
        DurationText::Text(s.to_string())
    }

    fn resolve(&self, name: &'static str) -> Result<Duration, ConfigError> {
        match self {
            DurationText::Millis(ms) => Ok(Duration::from_millis(*ms)),
            DurationText::Text(text) => parse_ms(text).ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("expected a duration like 15m, 7d, 10s or 500 (ms), got {text:?}"),
            }),
        }
    }
}

/// The raw variables, lowercased as figment reads them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct SecurityEnv {
    access_token_ttl: DurationText,
    refresh_token_ttl: DurationText,
    session_cookie_ttl: DurationText,
    session_refresh_grace_period: DurationText,
    refresh_token_cookie_name: String,
    refresh_token_cookie_secure: bool,
    refresh_token_cookie_same_site: String,
    refresh_token_cookie_domain: Option<String>,
    session_cookie_name: String,
    session_cookie_secure: bool,
    session_cookie_same_site: String,
    session_cookie_domain: Option<String>,
    /// Milliseconds.
    login_stall_time: u64,
    ip_trust_proxy: bool,
    ip_custom_header: Option<String>,
    rate_limiter_enabled: bool,
    rate_limiter_points: u32,
    /// Seconds, as in Directus.
    rate_limiter_duration: u64,
    rate_limiter_global_enabled: bool,
    rate_limiter_global_points: u32,
    rate_limiter_global_duration: u64,
    rate_limiter_auth_enabled: bool,
    rate_limiter_auth_points: u32,
    rate_limiter_auth_duration: u64,
    pressure_limiter_enabled: bool,
    /// Milliseconds.
    pressure_limiter_sample_interval: u64,
    /// Milliseconds.
    pressure_limiter_max_event_loop_delay: u64,
    pressure_limiter_max_in_flight: usize,
    /// Milliseconds.
    pressure_limiter_max_pool_wait: u64,
    /// Seconds.
    pressure_limiter_retry_after: u64,
    email_from: String,
    /// `smtp` sends; anything else (Directus's default `sendmail`) logs the mail instead.
    email_transport: String,
    email_smtp_host: Option<String>,
    email_smtp_port: u16,
    email_smtp_user: Option<String>,
    email_smtp_password: Option<String>,
    /// Comma-separated URLs `reset_url` may start with.
    password_reset_url_allow_list: String,
}

impl Default for SecurityEnv {
    fn default() -> Self {
        SecurityEnv {
            access_token_ttl: DurationText::text("15m"),
            refresh_token_ttl: DurationText::text("7d"),
            session_cookie_ttl: DurationText::text("1d"),
            session_refresh_grace_period: DurationText::text("10s"),
            refresh_token_cookie_name: "directus_refresh_token".into(),
            refresh_token_cookie_secure: false,
            refresh_token_cookie_same_site: "lax".into(),
            refresh_token_cookie_domain: None,
            session_cookie_name: "directus_session_token".into(),
            session_cookie_secure: false,
            session_cookie_same_site: "lax".into(),
            session_cookie_domain: None,
            login_stall_time: 500,
            // Directus trusts proxies by default; we take the socket address unless told, so a
            // client cannot pick its own rate-limit key with `X-Forwarded-For`.
            ip_trust_proxy: false,
            ip_custom_header: None,
            rate_limiter_enabled: false,
            rate_limiter_points: 50,
            rate_limiter_duration: 1,
            rate_limiter_global_enabled: false,
            rate_limiter_global_points: 1000,
            rate_limiter_global_duration: 1,
            rate_limiter_auth_enabled: true,
            rate_limiter_auth_points: 10,
            rate_limiter_auth_duration: 60,
            pressure_limiter_enabled: true,
            pressure_limiter_sample_interval: 250,
            pressure_limiter_max_event_loop_delay: 500,
            pressure_limiter_max_in_flight: 4096,
            pressure_limiter_max_pool_wait: 500,
            pressure_limiter_retry_after: 1,
            email_from: "no-reply@example.com".into(),
            email_transport: "sendmail".into(),
            email_smtp_host: None,
            email_smtp_port: 587,
            email_smtp_user: None,
            email_smtp_password: None,
            password_reset_url_allow_list: String::new(),
        }
    }
}

pub(super) const ENV_NAMES: &[&str] = &[
    "ACCESS_TOKEN_TTL",
    "REFRESH_TOKEN_TTL",
    "SESSION_COOKIE_TTL",
    "SESSION_REFRESH_GRACE_PERIOD",
    "REFRESH_TOKEN_COOKIE_NAME",
    "REFRESH_TOKEN_COOKIE_SECURE",
    "REFRESH_TOKEN_COOKIE_SAME_SITE",
    "REFRESH_TOKEN_COOKIE_DOMAIN",
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_SAME_SITE",
    "SESSION_COOKIE_DOMAIN",
    "LOGIN_STALL_TIME",
    "IP_TRUST_PROXY",
    "IP_CUSTOM_HEADER",
    "RATE_LIMITER_ENABLED",
    "RATE_LIMITER_POINTS",
    "RATE_LIMITER_DURATION",
    "RATE_LIMITER_GLOBAL_ENABLED",
    "RATE_LIMITER_GLOBAL_POINTS",
    "RATE_LIMITER_GLOBAL_DURATION",
    "RATE_LIMITER_AUTH_ENABLED",
    "RATE_LIMITER_AUTH_POINTS",
    "RATE_LIMITER_AUTH_DURATION",
    "PRESSURE_LIMITER_ENABLED",
    "PRESSURE_LIMITER_SAMPLE_INTERVAL",
    "PRESSURE_LIMITER_MAX_EVENT_LOOP_DELAY",
    "PRESSURE_LIMITER_MAX_IN_FLIGHT",
    "PRESSURE_LIMITER_MAX_POOL_WAIT",
    "PRESSURE_LIMITER_RETRY_AFTER",
    "EMAIL_FROM",
    "EMAIL_TRANSPORT",
    "EMAIL_SMTP_HOST",
    "EMAIL_SMTP_PORT",
    "EMAIL_SMTP_USER",
    "EMAIL_SMTP_PASSWORD",
    "PASSWORD_RESET_URL_ALLOW_LIST",
];

/// `SameSite` of a cookie we set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

/// One cookie's name and attributes (`*_COOKIE_NAME`, `_SECURE`, `_SAME_SITE`, `_DOMAIN`).
#[derive(Debug, Clone)]
pub struct CookieConfig {
    pub name: String,
    pub secure: bool,
    pub same_site: SameSite,
    pub domain: Option<String>,
}

/// Tokens, sessions and login.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `ACCESS_TOKEN_TTL`, 15m.
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL`, 7d.
    pub refresh_token_ttl: Duration,
    /// `SESSION_COOKIE_TTL`, 1d.
    pub session_cookie_ttl: Duration,
    /// `SESSION_REFRESH_GRACE_PERIOD`, 10s: a rotated refresh token still works this long.
    pub refresh_grace: Duration,
    /// `REFRESH_TOKEN_COOKIE_*`.
    pub refresh_cookie: CookieConfig,
    /// `SESSION_COOKIE_*`.
    pub session_cookie: CookieConfig,
    /// `LOGIN_STALL_TIME`, 500 ms: every failed login takes at least this long.
    pub login_stall: Duration,
}

/// Where the client's address comes from (`IP_TRUST_PROXY`, `IP_CUSTOM_HEADER`).
#[derive(Debug, Clone, Default)]
pub struct ClientIpConfig {
    /// Take the left-most `X-Forwarded-For` address.
    pub trust_proxy: bool,
    /// Take this header's value instead.
    pub custom_header: Option<String>,
}

/// One limiter: `points` requests per `duration`.
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterConfig {
    pub enabled: bool,
    pub points: u32,
    pub duration: Duration,
}

/// `RATE_LIMITER_*` (per IP), `RATE_LIMITER_GLOBAL_*`, and `RATE_LIMITER_AUTH_*` (beyond
/// Directus: login, refresh and password routes, per IP and per email).
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub per_ip: LimiterConfig,
    pub global: LimiterConfig,
    pub auth: LimiterConfig,
}

/// `PRESSURE_LIMITER_*`: shed load with 503 instead of queueing without bound.
#[derive(Debug, Clone)]
pub struct PressureConfig {
    pub enabled: bool,
    pub sample_interval: Duration,
    /// Scheduling lag above which requests are refused.
    pub max_event_loop_delay: Duration,
    /// Requests in flight above which requests are refused (beyond Directus).
    pub max_in_flight: usize,
    /// How long a request may have to wait for a database connection before new requests are
    /// refused (`PRESSURE_LIMITER_MAX_POOL_WAIT` ms, ours, default 500; 0: off): an exhausted
    /// pool sheds at once instead of making every request wait out the acquire timeout.
    pub max_pool_wait: Duration,
    /// `Retry-After` sent with the 503.
    pub retry_after: Duration,
}

/// Mail delivered so far, for tests: the capturing transport appends here.
pub type Outbox = std::sync::Arc<std::sync::Mutex<Vec<crate::mail::Mail>>>;

/// How mail leaves (`EMAIL_TRANSPORT`).
#[derive(Debug, Clone)]
pub enum EmailTransport {
    /// No transport configured: mail is logged, not sent.
    Log,
    /// `EMAIL_TRANSPORT=smtp`: `EMAIL_SMTP_HOST`, `_PORT`, `_USER`, `_PASSWORD` (plain SMTP to
    /// a relay; TLS is the relay's job for now).
    Smtp {
        host: String,
        port: u16,
        user: Option<String>,
        password: Option<secrecy::SecretString>,
    },
    /// Kept in memory (tests; never from the environment).
    Capture(Outbox),
}

/// Outgoing mail (`EMAIL_*`) and where reset links may point.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `EMAIL_FROM`.
    pub from: String,
    pub transport: EmailTransport,
    /// `PASSWORD_RESET_URL_ALLOW_LIST`.
    pub reset_url_allow_list: Vec<String>,
}

/// Everything this module reads.
#[derive(Debug, Clone)]
pub struct Security {
    pub mail: MailConfig,
    pub auth: AuthConfig,
    pub client_ip: ClientIpConfig,
    pub rate_limits: RateLimits,
    pub pressure: PressureConfig,
}

impl SecurityEnv {
    pub(super) fn resolve(self) -> Result<Security, ConfigError> {
        let auth = AuthConfig {
            access_token_ttl: positive(
                self.access_token_ttl.resolve("ACCESS_TOKEN_TTL")?,
                "ACCESS_TOKEN_TTL",
            )?,
            refresh_token_ttl: positive(
                self.refresh_token_ttl.resolve("REFRESH_TOKEN_TTL")?,
                "REFRESH_TOKEN_TTL",
            )?,
            session_cookie_ttl: positive(
                self.session_cookie_ttl.resolve("SESSION_COOKIE_TTL")?,
                "SESSION_COOKIE_TTL",
            )?,
            refresh_grace: self
                .session_refresh_grace_period
                .resolve("SESSION_REFRESH_GRACE_PERIOD")?,
            refresh_cookie: CookieConfig {
                name: self.refresh_token_cookie_name,
                secure: self.refresh_token_cookie_secure,
                same_site: same_site(
                    &self.refresh_token_cookie_same_site,
                    "REFRESH_TOKEN_COOKIE_SAME_SITE",
                )?,
                domain: self.refresh_token_cookie_domain,
            },
            session_cookie: CookieConfig {
                name: self.session_cookie_name,
                secure: self.session_cookie_secure,
                same_site: same_site(&self.session_cookie_same_site, "SESSION_COOKIE_SAME_SITE")?,
                domain: self.session_cookie_domain,
            },
            login_stall: Duration::from_millis(self.login_stall_time),
        };
        let limiter = |enabled, points: u32, seconds: u64, name: &'static str| {
            if enabled && (points == 0 || seconds == 0) {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "points and duration must be at least 1".into(),
                });
            }
            Ok(LimiterConfig {
                enabled,
                points,
                duration: Duration::from_secs(seconds),
            })
        };
        let transport = match self.email_transport.as_str() {
            "smtp" => EmailTransport::Smtp {
                host: self.email_smtp_host.ok_or_else(|| ConfigError::Invalid {
                    name: "EMAIL_SMTP_HOST",
                    reason: "required when EMAIL_TRANSPORT is smtp".into(),
                })?,
                port: self.email_smtp_port,
                user: self.email_smtp_user,
                password: self.email_smtp_password.map(secrecy::SecretString::from),
            },
            _ => EmailTransport::Log,
        };
        Ok(Security {
            mail: MailConfig {
                from: self.email_from,
                transport,
                reset_url_allow_list: self
                    .password_reset_url_allow_list
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
            auth,
            client_ip: ClientIpConfig {
                trust_proxy: self.ip_trust_proxy,
                custom_header: self.ip_custom_header.filter(|h| !h.is_empty()),
            },
            rate_limits: RateLimits {
                per_ip: limiter(
                    self.rate_limiter_enabled,
                    self.rate_limiter_points,
                    self.rate_limiter_duration,
                    "RATE_LIMITER_POINTS",
                )?,
                global: limiter(
                    self.rate_limiter_global_enabled,
                    self.rate_limiter_global_points,
                    self.rate_limiter_global_duration,
                    "RATE_LIMITER_GLOBAL_POINTS",
                )?,
                auth: limiter(
                    self.rate_limiter_auth_enabled,
                    self.rate_limiter_auth_points,
                    self.rate_limiter_auth_duration,
                    "RATE_LIMITER_AUTH_POINTS",
                )?,
            },
            pressure: PressureConfig {
                enabled: self.pressure_limiter_enabled,
                sample_interval: Duration::from_millis(self.pressure_limiter_sample_interval.max(1)),
                max_event_loop_delay: Duration::from_millis(self.pressure_limiter_max_event_loop_delay),
                max_in_flight: self.pressure_limiter_max_in_flight.max(1),
                max_pool_wait: Duration::from_millis(self.pressure_limiter_max_pool_wait),
                retry_after: Duration::from_secs(self.pressure_limiter_retry_after),
            },
        })
    }
}

fn positive(duration: Duration, name: &'static str) -> Result<Duration, ConfigError> {
    if duration.is_zero() {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be longer than zero".into(),
        });
    }
    Ok(duration)
}

fn same_site(text: &str, name: &'static str) -> Result<SameSite, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "lax" => Ok(SameSite::Lax),
        "strict" => Ok(SameSite::Strict),
        "none" => Ok(SameSite::None),
        other => Err(ConfigError::Invalid {
            name,
            reason: format!("expected lax, strict or none, got {other:?}"),
        }),
    }
}

/// Parses Directus's `ms` notation: `500`, `500ms`, `10s`, `15m`, `2h`, `7d`, `1w`, `1y`, with
/// an optional fraction (`1.5h`) and long unit names (`10 seconds`).
pub fn parse_ms(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let ms_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        "w" | "week" | "weeks" => 604_800_000.0,
        "y" | "yr" | "yrs" | "year" | "years" => 31_557_600_000.0,
        _ => return None,
    };
    let ms = number * ms_per_unit;
    // Beyond ~292 million years a u64 of milliseconds overflows; no TTL needs that.
    (ms.is_finite() && ms < 9.0e18).then(|| Duration::from_millis(ms.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_notation_parses() {
        assert_eq!(parse_ms("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_ms("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_ms("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_ms("500"), Some(Duration::from_millis(500)));
        assert_eq!(parse_ms("1.5h"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_ms("2 hours"), Some(Duration::from_secs(7_200)));
        assert_eq!(parse_ms("fortnight"), None);
        assert_eq!(parse_ms("-5m"), None);
        assert_eq!(parse_ms(""), None);
        assert_eq!(parse_ms("1e400"), None);
    }

    #[test]
    fn defaults_resolve() {
        let security = SecurityEnv::default().resolve().unwrap();
        assert_eq!(security.auth.access_token_ttl, Duration::from_secs(900));
        assert_eq!(security.auth.refresh_cookie.name, "directus_refresh_token");
        assert_eq!(security.auth.session_cookie.same_site, SameSite::Lax);
        assert!(!security.rate_limits.per_ip.enabled);
        assert!(security.rate_limits.auth.enabled);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let env = SecurityEnv {
            access_token_ttl: DurationText::text("soon"),
            ..SecurityEnv::default()
        };
        let err = env.resolve().unwrap_err().to_string();
        assert!(err.starts_with("ACCESS_TOKEN_TTL"), "{err}");
        let env = SecurityEnv {
            session_cookie_same_site: "sometimes".into(),
            ..SecurityEnv::default()
        };
        assert!(env.resolve().is_err());
        let env = SecurityEnv {
            rate_limiter_enabled: true,
            rate_limiter_points: 0,
            ..SecurityEnv::default()
        };
        assert!(env.resolve().is_err());
    }

    proptest::proptest! {
        #[test]
        fn ms_parser_never_panics(text in ".{0,24}") {
            let _ = parse_ms(&text);
        }

        #[test]
        fn whole_units_scale(n in 0u64..100_000, unit in proptest::sample::select(vec![("s", 1_000u64), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)])) {
            proptest::prop_assert_eq!(parse_ms(&format!("{n}{}", unit.0)), Some(Duration::from_millis(n * unit.1)));
        }
    }
}
