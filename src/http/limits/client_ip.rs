//! Who is asking: the client address every limiter (and later, logs and policy IP checks) keys
//! on, and the rate-limit key made from it.
//!
//! Pure: reads the socket peer and headers it is given, never the network. The rules follow
//! Directus's `getIPFromReq` with one change: proxies are not trusted by default, so a client
//! cannot pick its own rate-limit bucket by sending `X-Forwarded-For` (ASVS 4.1.3).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use actix_web::dev::RequestHead;
use actix_web::http::header::{self, HeaderMap};

use crate::config::ClientIpConfig;

/// The client address of a request; see [`resolve`].
pub fn client_ip(head: &RequestHead, config: &ClientIpConfig) -> IpAddr {
    resolve(head.peer_addr.map(|peer| peer.ip()), &head.headers, config)
}

/// The client address from the socket peer and the headers:
///
/// 1. `IP_CUSTOM_HEADER`, when configured and its value is one valid address (Directus falls
///    back the same way when the header is missing or not an address);
/// 2. the left-most valid `X-Forwarded-For` entry, only with `IP_TRUST_PROXY=true`;
/// 3. the socket peer; `0.0.0.0` when there is none (a test request), so all such requests
///    share one bucket.
///
/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) become plain IPv4, so a dual-stack listener
/// does not give one client two identities.
pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, config: &ClientIpConfig) -> IpAddr {
    if let Some(name) = &config.custom_header {
        let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        match value.and_then(parse_address) {
            Some(ip) => return ip,
            // Not the value itself: it is client-controlled text.
            None => tracing::debug!(header = %name, "custom IP header missing or not an address"),
        }
    }
    if config.trust_proxy {
        // Several header lines are one comma-separated list, in order (RFC 9110 §5.3).
        let forwarded = headers
            .get_all(header::X_FORWARDED_FOR)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(parse_address);
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ip| ip.to_canonical())
}

/// One address as proxies write it: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`, or either with a
/// port (`1.2.3.4:5678`, `[2001:db8::1]:443`). `unknown` and anything else give `None`.
fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The longest key text: an IPv6 /64 prefix is at most 4 groups of 4 hex digits, 3 colons,
/// `::/64`.
const KEY_CAPACITY: usize = 48;

/// A client's rate-limit key, formatted on the stack so checking a request allocates nothing.
///
/// IPv4 addresses are keyed whole. IPv6 addresses are keyed by their /64 prefix: one subscriber
/// usually holds a whole /64 and could otherwise rotate through 2^64 buckets.
pub struct IpKey {
    buf: [u8; KEY_CAPACITY],
    len: usize,
}

impl IpKey {
    pub fn new(ip: IpAddr) -> IpKey {
        let mut key = IpKey {
            buf: [0; KEY_CAPACITY],
            len: 0,
        };
        // The capacity fits every address this can produce; a failed write would only truncate.
        let _ = match ip {
            IpAddr::V4(v4) => write!(key, "{v4}"),
            IpAddr::V6(v6) => {
                let prefix = Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1));
                write!(key, "{prefix}/64")
            }
        };
        key
    }

    pub fn as_str(&self) -> &str {
        // Only whole `str`s are ever written, so the prefix is valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for IpKey {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn trusting() -> ClientIpConfig {
        ClientIpConfig {
            trust_proxy: true,
            custom_header: None,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_peer_is_used_by_default_even_with_forwarded_for() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(resolve(Some(PEER), &h, &ClientIpConfig::default()), PEER);
    }

    #[test]
    fn a_trusted_proxy_gives_the_left_most_valid_entry() {
        let h = headers(&[("x-forwarded-for", "unknown, 1.2.3.4, 5.6.7.8")]);
        assert_eq!(resolve(Some(PEER), &h, &trusting()), ip("1.2.3.4"));
        let h = headers(&[("x-forwarded-for", "garbage"), ("x-forwarded-for", "9.9.9.9")]);
        assert_eq!(resolve(Some(PEER), &h, &trusting()), ip("9.9.9.9"));
        let h = headers(&[("x-forwarded-for", "nothing useful")]);
        assert_eq!(resolve(Some(PEER), &h, &trusting()), PEER);
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let cases = [
            ("1.2.3.4:5678", "1.2.3.4"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            (" 2001:db8::2 ", "2001:db8::2"),
            ("::ffff:1.2.3.4", "1.2.3.4"),
        ];
        for (text, expected) in cases {
            let h = headers(&[("x-forwarded-for", text)]);
            assert_eq!(resolve(Some(PEER), &h, &trusting()), ip(expected), "{text}");
        }
        let mapped_peer = ip("::ffff:10.0.0.7");
        assert_eq!(
            resolve(Some(mapped_peer), &HeaderMap::new(), &ClientIpConfig::default()),
            PEER
        );
    }

    #[test]
    fn the_custom_header_wins_when_configured_and_valid() {
        let config = ClientIpConfig {
            trust_proxy: false,
            custom_header: Some("CF-Connecting-IP".into()),
        };
        let h = headers(&[("cf-connecting-ip", "8.8.8.8"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(resolve(Some(PEER), &h, &config), ip("8.8.8.8"));
        let h = headers(&[("cf-connecting-ip", "not an ip"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(resolve(Some(PEER), &h, &config), PEER);
        // Only configured headers count.
        let h = headers(&[("x-real-ip", "8.8.8.8")]);
        assert_eq!(resolve(Some(PEER), &h, &ClientIpConfig::default()), PEER);
    }

    #[test]
    fn no_peer_means_the_unspecified_address() {
        assert_eq!(
            resolve(None, &HeaderMap::new(), &ClientIpConfig::default()),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn keys_are_whole_ipv4_and_ipv6_slash_64() {
        assert_eq!(IpKey::new(ip("1.2.3.4")).as_str(), "1.2.3.4");
        assert_eq!(
            IpKey::new(ip("2001:db8:1:2:aaaa::1")).as_str(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            IpKey::new(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).as_str(),
            IpKey::new(ip("2001:db8:1:2::9")).as_str()
        );
        let longest = IpKey::new(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(longest.as_str(), "ffff:ffff:ffff:ffff::/64");
        assert_eq!(IpKey::new(ip("255.255.255.255")).as_str(), "255.255.255.255");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_header_text_never_panics(
            forwarded in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..4),
            custom in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            trust_proxy in proptest::bool::ANY,
        ) {
            let mut map = HeaderMap::new();
            for value in &forwarded {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    map.append(header::X_FORWARDED_FOR, value);
                }
            }
            if let Ok(value) = HeaderValue::from_bytes(&custom) {
                map.append(HeaderName::from_static("x-client-ip"), value);
            }
            let config = ClientIpConfig { trust_proxy, custom_header: Some("x-client-ip".into()) };
            let ip = resolve(Some(PEER), &map, &config);
            // Whatever came out is a key-able address.
            proptest::prop_assert!(!IpKey::new(ip).as_str().is_empty());
        }

        #[test]
        fn printable_forwarded_text_never_panics(text in "[ -~]{0,80}") {
            let mut map = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&text) {
                map.append(header::X_FORWARDED_FOR, value);
            }
            let _ = resolve(None, &map, &trusting());
        }
    }
}
