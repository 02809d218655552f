//! The refresh-token and session cookies, with the names and attributes Directus uses
//! (`REFRESH_TOKEN_COOKIE_*`, `SESSION_COOKIE_*`): httpOnly, path `/`, `SameSite` and `Secure`
//! as configured, max-age from the matching TTL.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite as CookieSameSite, time};

use crate::config::{CookieConfig, SameSite};

/// A cookie carrying `value` for `ttl`.
pub fn set(config: &CookieConfig, value: String, ttl: Duration) -> Cookie<'static> {
    let mut cookie = base(config, value);
    cookie.set_max_age(time::Duration::seconds(
        i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
    ));
    cookie
}

/// A cookie that tells the browser to drop ours.
pub fn clear(config: &CookieConfig) -> Cookie<'static> {
    let mut cookie = base(config, String::new());
    cookie.make_removal();
    cookie
}

fn base(config: &CookieConfig, value: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(config.name.clone(), value);
    cookie.set_http_only(true);
    cookie.set_path("/");
    cookie.set_secure(config.secure);
    cookie.set_same_site(match config.same_site {
        SameSite::Lax => CookieSameSite::Lax,
        SameSite::Strict => CookieSameSite::Strict,
        SameSite::None => CookieSameSite::None,
    });
    if let Some(domain) = &config.domain {
        cookie.set_domain(domain.clone());
    }
    cookie
}
