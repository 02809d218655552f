//! What every response carries whatever answered it: the security headers (`nosniff`, a
//! restrictive `Content-Security-Policy`, `Referrer-Policy`, HSTS when enabled) and, with
//! `CORS_ENABLED`, Directus's CORS headers; CORS preflights are answered here. Applied by
//! [`super::observe`], the outermost middleware, so refusals and 404s get them too.
//!
//! Directus sets a CSP through helmet but not `X-Content-Type-Options`; we set both. Our
//! responses are JSON, CSV, SSE and WebSocket upgrades, none of which should ever run as a
//! page, so the policy allows nothing (a handler that serves a page sets its own).

use actix_web::HttpResponse;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};

use crate::config::{CorsConfig, CorsOrigin, HttpConfig};

/// `Content-Security-Policy` of responses that set none: nothing may load, frame or submit.
const CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Adds the security headers, and the CORS headers for a request from `origin`.
pub fn decorate(headers: &mut HeaderMap, config: &HttpConfig, origin: Option<&HeaderValue>) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    if config.hsts.enabled {
        let mut value = format!("max-age={}", config.hsts.max_age);
        if config.hsts.include_sub_domains {
            value.push_str("; includeSubDomains");
        }
        if config.hsts.preload {
            value.push_str("; preload");
        }
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
        }
    }
    if config.cors.enabled {
        cors_headers(headers, &config.cors, origin);
    }
}

/// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) when CORS is on: answered
/// with 204 and the allowed methods and headers, without reaching any route.
pub fn preflight(method: &Method, headers: &HeaderMap, config: &HttpConfig) -> Option<HttpResponse> {
    if !config.cors.enabled
        || method != Method::OPTIONS
        || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let mut res = HttpResponse::NoContent().finish();
    let origin = headers.get(header::ORIGIN);
    if origin.is_some_and(|o| admitted(&config.cors, o)) {
        let out = res.headers_mut();
        let pairs = [
            (header::ACCESS_CONTROL_ALLOW_METHODS, config.cors.methods.as_str()),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                config.cors.allowed_headers.as_str(),
            ),
        ];
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                out.insert(name, value);
            }
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(config.cors.max_age),
        );
    }
    Some(res)
}

fn admitted(cors: &CorsConfig, origin: &HeaderValue) -> bool {
    origin.to_str().is_ok_and(|o| cors.origin.admits(o))
}

fn cors_headers(headers: &mut HeaderMap, cors: &CorsConfig, origin: Option<&HeaderValue>) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin.filter(|o| admitted(cors, o)) else {
        return;
    };
    if matches!(cors.origin, CorsOrigin::Wildcard) {
        // `*` and credentials together are refused by browsers: `*` goes without them.
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if cors.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    if let Ok(exposed) = HeaderValue::from_str(&cors.exposed_headers) {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::http::parse_origin;

    fn config(origin: &str) -> HttpConfig {
        let mut config = HttpConfig::default();
        config.cors.enabled = true;
        config.cors.origin = parse_origin(origin).unwrap();
        config
    }

    #[test]
    fn only_admitted_origins_are_echoed_and_never_star_with_credentials() {
        let allowed = HeaderValue::from_static("https://app.example");
        let other = HeaderValue::from_static("https://evil.example");
        let config = config("https://app.example");
        let mut headers = HeaderMap::new();
        decorate(&mut headers, &config, Some(&allowed));
        assert_eq!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(&allowed));
        assert_eq!(
            headers.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).unwrap(),
            "true"
        );
        assert_eq!(headers.get(header::VARY).unwrap(), "Origin");
        let mut headers = HeaderMap::new();
        decorate(&mut headers, &config, Some(&other));
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let mut headers = HeaderMap::new();
        decorate(&mut headers, &self::config("*"), Some(&other));
        assert_eq!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(), "*");
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }

    #[test]
    fn security_headers_are_always_set_and_a_page_keeps_its_own_policy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        decorate(&mut headers, &HttpConfig::default(), None);
        assert_eq!(headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert_eq!(
            headers.get(header::CONTENT_SECURITY_POLICY).unwrap(),
            "default-src 'self'"
        );
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(headers.get(header::VARY).is_none(), "no CORS when disabled");
    }
}
