//! Settings of the HTTP edge that every response passes: `/metrics` access (`METRICS_*`),
//! CORS (`CORS_*`, Directus's names and defaults) and HSTS (`HSTS_*`).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Who may read `/metrics`.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `METRICS_ENABLED` (default true in Directrix; Directus's default is false). Off: 404.
    pub enabled: bool,
    /// `METRICS_TOKENS`: comma-separated tokens a scraper sends as `Authorization: Metrics
    /// <token>` (Directus's scheme). Admins may always read.
    pub tokens: Vec<SecretString>,
    /// `METRICS_PUBLIC` (ours, default false): anyone may read, as before tokens existed.
    pub public: bool,
}

/// Which origins CORS admits (`CORS_ORIGIN`, cast as Directus casts it).
#[derive(Debug, Clone)]
pub enum CorsOrigin {
    /// `false` (the default): none.
    None,
    /// `true`: any, echoed back.
    Any,
    /// `*`: any, answered with `*` and never with credentials (browsers refuse both).
    Wildcard,
    /// A list of exact origins and `regex:` patterns.
    List(Vec<OriginRule>),
}

/// One allowed origin.
#[derive(Debug, Clone)]
pub enum OriginRule {
    Exact(String),
    Pattern(regex::Regex),
}

impl CorsOrigin {
    /// Whether a request from `origin` is admitted.
    pub fn admits(&self, origin: &str) -> bool {
        match self {
            CorsOrigin::None => false,
            CorsOrigin::Any | CorsOrigin::Wildcard => true,
            CorsOrigin::List(rules) => rules.iter().any(|rule| match rule {
                OriginRule::Exact(allowed) => allowed == origin,
                OriginRule::Pattern(pattern) => pattern.is_match(origin),
            }),
        }
    }
}

/// `CORS_*`.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// `CORS_ENABLED`, default false: no CORS headers at all, preflights are not answered.
    pub enabled: bool,
    /// `CORS_ORIGIN`, default false.
    pub origin: CorsOrigin,
    /// `CORS_METHODS`, default `GET,POST,PATCH,DELETE`.
    pub methods: String,
    /// `CORS_ALLOWED_HEADERS`, default `Content-Type,Authorization`.
    pub allowed_headers: String,
    /// `CORS_EXPOSED_HEADERS`, default `Content-Range`.
    pub exposed_headers: String,
    /// `CORS_CREDENTIALS`, default true.
    pub credentials: bool,
    /// `CORS_MAX_AGE` seconds, default 18000.
    pub max_age: u64,
}

/// `HSTS_*` (off unless `HSTS_ENABLED`).
#[derive(Debug, Clone)]
pub struct HstsConfig {
    pub enabled: bool,
    /// `HSTS_MAX_AGE` seconds, default 31536000.
    pub max_age: u64,
    /// `HSTS_INCLUDE_SUB_DOMAINS`, default true.
    pub include_sub_domains: bool,
    /// `HSTS_PRELOAD`, default false.
    pub preload: bool,
}

/// The edge settings together.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub metrics: MetricsConfig,
    pub cors: CorsConfig,
    pub hsts: HstsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        // unwrap-free: the defaults resolve by construction (`defaults_resolve` tests it).
        HttpEnv::default().resolve().unwrap_or_else(|_| HttpConfig {
            metrics: MetricsConfig {
                enabled: true,
                tokens: Vec::new(),
                public: false,
            },
            cors: CorsConfig {
                enabled: false,
                origin: CorsOrigin::None,
                methods: "GET,POST,PATCH,DELETE".into(),
                allowed_headers: "Content-Type,Authorization".into(),
                exposed_headers: "Content-Range".into(),
                credentials: true,
                max_age: 18_000,
            },
            hsts: HstsConfig {
                enabled: false,
                max_age: 31_536_000,
                include_sub_domains: true,
                preload: false,
            },
        })
    }
}

/// The variables as read; figment lowercases env names. Booleans and lists come as text, as
/// Directus casts them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct HttpEnv {
    metrics_enabled: bool,
    #[serde(deserialize_with = "text")]
    metrics_tokens: Option<String>,
    metrics_public: bool,
    cors_enabled: bool,
    #[serde(deserialize_with = "text")]
    cors_origin: Option<String>,
    cors_methods: String,
    cors_allowed_headers: String,
    cors_exposed_headers: String,
    cors_credentials: bool,
    cors_max_age: u64,
    hsts_enabled: bool,
    hsts_max_age: u64,
    hsts_include_sub_domains: bool,
    hsts_preload: bool,
}

impl Default for HttpEnv {
    fn default() -> Self {
        HttpEnv {
            metrics_enabled: true,
            metrics_tokens: None,
            metrics_public: false,
            cors_enabled: false,
            cors_origin: None,
            cors_methods: "GET,POST,PATCH,DELETE".into(),
            cors_allowed_headers: "Content-Type,Authorization".into(),
            cors_exposed_headers: "Content-Range".into(),
            cors_credentials: true,
            cors_max_age: 18_000,
            hsts_enabled: false,
            hsts_max_age: 31_536_000,
            hsts_include_sub_domains: true,
            hsts_preload: false,
        }
    }
}

pub(super) const ENV_NAMES: &[&str] = &[
    "METRICS_ENABLED",
    "METRICS_TOKENS",
    "METRICS_PUBLIC",
    "CORS_ENABLED",
    "CORS_ORIGIN",
    "CORS_METHODS",
    "CORS_ALLOWED_HEADERS",
    "CORS_EXPOSED_HEADERS",
    "CORS_CREDENTIALS",
    "CORS_MAX_AGE",
    "HSTS_ENABLED",
    "HSTS_MAX_AGE",
    "HSTS_INCLUDE_SUB_DOMAINS",
    "HSTS_PRELOAD",
];

/// A value that figment may have read as a boolean or number (`CORS_ORIGIN=true`, a numeric
/// token) but that we take as text.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Bool(bool),
        Int(i64),
        Float(f64),
        Text(String),
    }
    Ok(Option::<Loose>::deserialize(d)?.map(|v| match v {
        Loose::Bool(b) => b.to_string(),
        Loose::Int(n) => n.to_string(),
        Loose::Float(n) => n.to_string(),
        Loose::Text(t) => t,
    }))
}

/// `CORS_ORIGIN` as Directus's env casts it: `true`/`false`, `*`, or a comma list whose items
/// are exact origins or `regex:<pattern>`.
pub fn parse_origin(text: &str) -> Result<CorsOrigin, ConfigError> {
    let text = text.trim();
    match text {
        "" | "false" => return Ok(CorsOrigin::None),
        "true" => return Ok(CorsOrigin::Any),
        "*" => return Ok(CorsOrigin::Wildcard),
        _ => {}
    }
    let rules = text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.strip_prefix("regex:") {
            Some(pattern) => regex::Regex::new(pattern)
                .map(OriginRule::Pattern)
                .map_err(|err| ConfigError::Invalid {
                    name: "CORS_ORIGIN",
                    reason: format!("{pattern:?} is not a regular expression: {err}"),
                }),
            None => Ok(OriginRule::Exact(item.trim_end_matches('/').to_string())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsOrigin::List(rules))
}

impl HttpEnv {
    pub(super) fn resolve(self) -> Result<HttpConfig, ConfigError> {
        let tokens = self
            .metrics_tokens
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_string()))
            .collect();
        Ok(HttpConfig {
            metrics: MetricsConfig {
                enabled: self.metrics_enabled,
                tokens,
                public: self.metrics_public,
            },
            cors: CorsConfig {
                enabled: self.cors_enabled,
                origin: parse_origin(self.cors_origin.as_deref().unwrap_or("false"))?,
                methods: self.cors_methods,
                allowed_headers: self.cors_allowed_headers,
                exposed_headers: self.cors_exposed_headers,
                credentials: self.cors_credentials,
                max_age: self.cors_max_age,
            },
            hsts: HstsConfig {
                enabled: self.hsts_enabled,
                max_age: self.hsts_max_age,
                include_sub_domains: self.hsts_include_sub_domains,
                preload: self.hsts_preload,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let config = HttpEnv::default().resolve().unwrap();
        assert!(config.metrics.enabled && !config.metrics.public);
        assert!(!config.cors.enabled);
        assert!(!config.cors.origin.admits("https://a.example"));
    }

    #[test]
    fn origins_are_cast_as_directus_casts_them() {
        assert!(parse_origin("true").unwrap().admits("https://any.example"));
        let list = parse_origin("https://a.example, regex:^https://[a-z]+\\.b\\.example$").unwrap();
        assert!(list.admits("https://a.example"));
        assert!(list.admits("https://x.b.example"));
        assert!(!list.admits("https://a.example.evil"));
        assert!(!list.admits("https://x.b.example.evil"));
        assert!(parse_origin("regex:(").is_err());
    }

    proptest::proptest! {
        #[test]
        fn origin_parser_never_panics(text in ".{0,60}") {
            let _ = parse_origin(&text);
        }
    }
}
