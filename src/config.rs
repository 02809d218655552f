//! Typed configuration, read once from Directus's environment variable names.
//!
//! Nothing else in the crate calls `std::env::var`: `main` calls [`Config::load`], tests build a
//! [`Config`] value directly (usually from [`Config::for_database`]). Defaults live in
//! [`RawEnv::default`] and nowhere else. Secrets are [`SecretString`]s, so `Debug` redacts them.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Serialized};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub mod http;
pub mod realtime;
pub mod security;
pub use http::{CorsConfig, CorsOrigin, HstsConfig, HttpConfig, MetricsConfig};
pub use realtime::{RealtimeConfig, SlowConsumer, WsAuthMode};
pub use security::{
    AuthConfig, ClientIpConfig, CookieConfig, EmailTransport, LimiterConfig, MailConfig, Outbox,
    PressureConfig, RateLimits, SameSite,
};

/// The variables read from the environment. Figment lowercases env names, so each field is the
/// lowercased Directus name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
struct RawEnv {
    /// `HOST`, default `127.0.0.1` (Directus binds `0.0.0.0`; we stay on loopback unless told).
    host: String,
    /// `PORT`, default 8055.
    port: u16,
    /// `PUBLIC_URL`, default `/`.
    public_url: String,
    /// `DATA_DIR`, default `./data`: where the embedded cluster lives.
    data_dir: PathBuf,
    /// `DB_CONNECTION_STRING` (Directus) or `DATABASE_URL`.
    db_connection_string: Option<String>,
    database_url: Option<String>,
    db_host: Option<String>,
    db_port: Option<u16>,
    db_database: Option<String>,
    db_user: Option<String>,
    db_password: Option<String>,
    /// `DB_POOL__MAX`, default 10.
    #[serde(rename = "db_pool__max")]
    db_pool_max: u32,
    /// `DB_SEARCH_PATH`: the schema user collections live in, default `public`.
    db_search_path: String,
    /// `KEY`: this instance's id, reported in `/server/health` as `serviceId`.
    key: Option<String>,
    /// `SECRET`: signs access tokens (auth issue). Random per start when unset.
    secret: Option<String>,
    /// `ADMIN_EMAIL`, default `admin@example.com`.
    admin_email: String,
    /// `ADMIN_PASSWORD`: generated and printed once on first bootstrap when unset.
    admin_password: Option<String>,
    /// `ADMIN_TOKEN`: the admin user's static token, set at bootstrap.
    admin_token: Option<String>,
    /// `LOG_LEVEL`, default `info`.
    log_level: String,
    /// `LOG_STYLE`: `pretty` (default) or `raw` (JSON lines).
    log_style: String,
    /// `MAX_PAYLOAD_SIZE`, default `1mb`.
    max_payload_size: String,
    /// `PROJECT_NAME`, shown in `/server/info`.
    project_name: String,
    /// `MAX_BATCH_MUTATION`: most items one write may touch; unset is unlimited.
    max_batch_mutation: Option<usize>,
    /// `QUERY_LIMIT_DEFAULT`, 100.
    query_limit_default: i64,
    /// `QUERY_LIMIT_MAX`: unset (Directus's `Infinity`) is unlimited.
    query_limit_max: Option<i64>,
    /// `MAX_RELATIONAL_DEPTH`, 10.
    max_relational_depth: usize,
}

impl Default for RawEnv {
    fn default() -> Self {
        RawEnv {
            host: "127.0.0.1".into(),
            port: 8055,
            public_url: "/".into(),
            data_dir: PathBuf::from("./data"),
            db_connection_string: None,
            database_url: None,
            db_host: None,
            db_port: None,
            db_database: None,
            db_user: None,
            db_password: None,
            db_pool_max: 10,
            db_search_path: "public".into(),
            key: None,
            secret: None,
            admin_email: "admin@example.com".into(),
            admin_password: None,
            admin_token: None,
            log_level: "info".into(),
            log_style: "pretty".into(),
            max_payload_size: "1mb".into(),
            project_name: "Directrix".into(),
            max_batch_mutation: None,
            query_limit_default: 100,
            query_limit_max: None,
            max_relational_depth: 10,
        }
    }
}

const ENV_NAMES: &[&str] = &[
    "HOST",
    "PORT",
    "PUBLIC_URL",
    "DATA_DIR",
    "DB_CONNECTION_STRING",
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DB_USER",
    "DB_PASSWORD",
    "DB_POOL__MAX",
    "DB_SEARCH_PATH",
    "KEY",
    "SECRET",
    "ADMIN_EMAIL",
    "ADMIN_PASSWORD",
    "ADMIN_TOKEN",
    "LOG_LEVEL",
    "LOG_STYLE",
    "MAX_PAYLOAD_SIZE",
    "PROJECT_NAME",
    "MAX_BATCH_MUTATION",
    "QUERY_LIMIT_DEFAULT",
    "QUERY_LIMIT_MAX",
    "MAX_RELATIONAL_DEPTH",
];

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    /// Start and manage a private PostgreSQL cluster under this folder (the embedded default).
    Embedded { data_dir: PathBuf },
    /// Use an existing database at this connection string.
    External { url: SecretString },
}

/// Log output format (`LOG_STYLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    Pretty,
    Raw,
}

/// The whole configuration of one Directrix instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HOST`, default `127.0.0.1`.
    pub host: String,
    /// `PORT`, default 8055; 0 picks a free port (tests).
    pub port: u16,
    /// `PUBLIC_URL`, default `/`.
    pub public_url: String,
    /// `DB_*` / `DATABASE_URL`, or the embedded cluster under `DATA_DIR`.
    pub database: DatabaseConfig,
    /// `DB_POOL__MAX`, default 10.
    pub db_pool_max: u32,
    /// `DB_SEARCH_PATH`, default `public`: the schema user collections live in.
    pub user_schema: String,
    /// `KEY`, a stable id of this instance (random per start when unset).
    pub key: String,
    /// `SECRET`, signs tokens (random per start when unset, as Directus does).
    pub secret: SecretString,
    /// `ADMIN_EMAIL`, default `admin@example.com`.
    pub admin_email: String,
    /// `ADMIN_PASSWORD`, generated on first bootstrap when unset.
    pub admin_password: Option<SecretString>,
    /// `ADMIN_TOKEN`, the admin's static token.
    pub admin_token: Option<SecretString>,
    /// `LOG_LEVEL`, default `info`.
    pub log_level: String,
    /// `LOG_STYLE`, default pretty.
    pub log_style: LogStyle,
    /// `MAX_PAYLOAD_SIZE` in bytes, default 1 MiB.
    pub max_payload_size: usize,
    /// `PROJECT_NAME`, default `Directrix`.
    pub project_name: String,
    /// HTTP worker threads; `None` is one per physical core. Not an env setting: tests use 1.
    pub workers: Option<usize>,
    /// `MAX_BATCH_MUTATION`, unlimited by default.
    pub max_batch_mutation: Option<usize>,
    /// `QUERY_LIMIT_DEFAULT`, `QUERY_LIMIT_MAX`, `MAX_RELATIONAL_DEPTH`.
    pub query: crate::core::query::Settings,
    /// Tokens, sessions, cookies and login (`ACCESS_TOKEN_TTL`, `SESSION_COOKIE_*`, …).
    pub auth: AuthConfig,
    /// `IP_TRUST_PROXY`, `IP_CUSTOM_HEADER`.
    pub client_ip: ClientIpConfig,
    /// `RATE_LIMITER_*`.
    pub rate_limits: RateLimits,
    /// `PRESSURE_LIMITER_*`.
    pub pressure: PressureConfig,
    /// `EMAIL_*`, `PASSWORD_RESET_URL_ALLOW_LIST`.
    pub mail: MailConfig,
    /// Replication feed, WebSocket and SSE settings.
    pub realtime: RealtimeConfig,
    /// `/metrics` access, CORS and HSTS.
    pub http: HttpConfig,
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading the environment: {0}")]
    Read(#[from] Box<figment::Error>),
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    /// Reads the process environment.
    pub fn load() -> Result<Config, ConfigError> {
        let raw: RawEnv = Figment::from(Serialized::defaults(RawEnv::default()))
            .merge(Env::raw().only(ENV_NAMES))
            .extract()
            .map_err(Box::new)?;
        let security: security::SecurityEnv =
            Figment::from(Serialized::defaults(security::SecurityEnv::default()))
                .merge(Env::raw().only(security::ENV_NAMES))
                .extract()
                .map_err(Box::new)?;
        let realtime: realtime::RealtimeEnv =
            Figment::from(Serialized::defaults(realtime::RealtimeEnv::default()))
                .merge(Env::raw().only(realtime::ENV_NAMES))
                .extract()
                .map_err(Box::new)?;
        let http: http::HttpEnv = Figment::from(Serialized::defaults(http::HttpEnv::default()))
            .merge(Env::raw().only(http::ENV_NAMES))
            .extract()
            .map_err(Box::new)?;
        let mut config = Config::from_raw(raw, security)?;
        config.realtime = realtime.resolve(&config.rate_limits.per_ip)?;
        config.http = http.resolve()?;
        Ok(config)
    }

    /// A configuration with every default and the given database; what tests start from.
    pub fn for_database(database: DatabaseConfig) -> Config {
        // unwrap-free: the defaults are valid by construction, checked by a unit test.
        let mut config = match Config::from_raw(RawEnv::default(), security::SecurityEnv::default()) {
            Ok(config) => config,
            Err(_) => unreachable_defaults(),
        };
        config.database = database;
        config
    }

    fn from_raw(raw: RawEnv, security: security::SecurityEnv) -> Result<Config, ConfigError> {
        let database = database_from(&raw)?;
        let security = security.resolve()?;
        let log_style = match raw.log_style.as_str() {
            "pretty" => LogStyle::Pretty,
            "raw" => LogStyle::Raw,
            other => {
                return Err(ConfigError::Invalid {
                    name: "LOG_STYLE",
                    reason: format!("expected \"pretty\" or \"raw\", got {other:?}"),
                });
            }
        };
        let max_payload_size =
            parse_byte_size(&raw.max_payload_size).ok_or_else(|| ConfigError::Invalid {
                name: "MAX_PAYLOAD_SIZE",
                reason: format!(
                    "expected a size like 1mb or 500kb, got {:?}",
                    raw.max_payload_size
                ),
            })?;
        if raw.db_pool_max == 0 {
            return Err(ConfigError::Invalid {
                name: "DB_POOL__MAX",
                reason: "must be at least 1".into(),
            });
        }
        if !is_plain_identifier(&raw.db_search_path) {
            return Err(ConfigError::Invalid {
                name: "DB_SEARCH_PATH",
                reason: "must be one schema name of letters, digits and underscores".into(),
            });
        }
        Ok(Config {
            host: raw.host,
            port: raw.port,
            public_url: raw.public_url,
            database,
            db_pool_max: raw.db_pool_max,
            user_schema: raw.db_search_path,
            key: raw.key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            secret: SecretString::from(raw.secret.unwrap_or_else(random_secret)),
            admin_email: raw.admin_email,
            admin_password: raw.admin_password.map(SecretString::from),
            admin_token: raw.admin_token.map(SecretString::from),
            log_level: raw.log_level,
            log_style,
            max_payload_size,
            project_name: raw.project_name,
            workers: None,
            max_batch_mutation: raw.max_batch_mutation,
            query: crate::core::query::Settings {
                default_limit: raw.query_limit_default,
                max_limit: raw.query_limit_max.filter(|max| *max >= 0),
                max_relational_depth: raw.max_relational_depth.max(2),
                ..crate::core::query::Settings::default()
            },
            auth: security.auth,
            client_ip: security.client_ip,
            rate_limits: security.rate_limits,
            pressure: security.pressure,
            mail: security.mail,
            realtime: RealtimeConfig::default(),
            http: HttpConfig::default(),
        })
    }
}

#[cold]
fn unreachable_defaults() -> ! {
    // The defaults are a compile-time constant set; `defaults_are_valid` proves they load.
    panic!("built-in configuration defaults are invalid")
}

fn database_from(raw: &RawEnv) -> Result<DatabaseConfig, ConfigError> {
    if let Some(url) = raw
        .db_connection_string
        .clone()
        .or_else(|| raw.database_url.clone())
    {
        return Ok(DatabaseConfig::External {
            url: SecretString::from(url),
        });
    }
    let any_part = raw.db_host.is_some()
        || raw.db_port.is_some()
        || raw.db_database.is_some()
        || raw.db_user.is_some()
        || raw.db_password.is_some();
    if !any_part {
        return Ok(DatabaseConfig::Embedded {
            data_dir: raw.data_dir.clone(),
        });
    }
    let database = raw.db_database.clone().ok_or_else(|| ConfigError::Invalid {
        name: "DB_DATABASE",
        reason: "required when DB_HOST, DB_PORT, DB_USER or DB_PASSWORD is set".into(),
    })?;
    let host = raw.db_host.clone().unwrap_or_else(|| "localhost".into());
    let port = raw.db_port.unwrap_or(5432);
    let mut url = format!(
        "postgres://{}:{}/{}",
        host_for_url(&host),
        port,
        encode(&database)
    );
    let mut params = Vec::new();
    if let Some(user) = &raw.db_user {
        params.push(format!("user={}", encode(user)));
    }
    if let Some(password) = &raw.db_password {
        params.push(format!("password={}", encode(password)));
    }
    if host.starts_with('/') {
        params.push(format!("host={}", encode(&host)));
    }
    if !params.is_empty() {
        url.push('?');
        url.push_str(&params.join("&"));
    }
    Ok(DatabaseConfig::External {
        url: SecretString::from(url),
    })
}

fn host_for_url(host: &str) -> &str {
    // A Unix socket directory goes into the `host` parameter instead.
    if host.starts_with('/') { "localhost" } else { host }
}

/// Percent-encodes everything but unreserved characters, for connection-string parts.
fn encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn random_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

fn is_plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Parses Directus-style sizes: `1mb`, `500kb`, `2gb`, `1024`, `1.5mb` (bytes-package units).
pub fn parse_byte_size(text: &str) -> Option<usize> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "kb" => 1024.0,
        "mb" => 1024.0 * 1024.0,
        "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * factor;
    (bytes.is_finite() && bytes >= 0.0 && bytes < usize::MAX as f64).then_some(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn defaults_are_valid() {
        let config = Config::from_raw(RawEnv::default(), security::SecurityEnv::default()).unwrap();
        assert_eq!(config.port, 8055);
        assert_eq!(config.max_payload_size, 1024 * 1024);
        assert!(matches!(config.database, DatabaseConfig::Embedded { .. }));
    }

    #[test]
    fn db_parts_build_an_encoded_url() {
        let raw = RawEnv {
            db_host: Some("db.local".into()),
            db_database: Some("app".into()),
            db_user: Some("me".into()),
            db_password: Some("p@ss/word".into()),
            ..RawEnv::default()
        };
        let DatabaseConfig::External { url } = database_from(&raw).unwrap() else {
            panic!()
        };
        assert_eq!(
            url.expose_secret(),
            "postgres://db.local:5432/app?user=me&password=p%40ss%2Fword"
        );
    }

    #[test]
    fn db_parts_without_a_database_name_are_rejected() {
        let raw = RawEnv {
            db_host: Some("db.local".into()),
            ..RawEnv::default()
        };
        assert!(database_from(&raw).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let raw = RawEnv {
            admin_password: Some("hunter2".into()),
            ..RawEnv::default()
        };
        let config = Config::from_raw(raw, security::SecurityEnv::default()).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_byte_size("1mb"), Some(1_048_576));
        assert_eq!(parse_byte_size("500kb"), Some(512_000));
        assert_eq!(parse_byte_size("42"), Some(42));
        assert_eq!(parse_byte_size("1.5kb"), Some(1536));
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size("1tb"), None);
    }

    proptest::proptest! {
        #[test]
        fn byte_size_parser_never_panics(text in ".{0,20}") {
            let _ = parse_byte_size(&text);
        }
    }
}
