//! Policy IP allow-lists (`directus_policies.ip_access`): which request addresses a policy
//! applies to. Entries are single addresses, CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) or
//! inclusive ranges (`10.0.0.1-10.0.0.9`), as Directus's `ipInNetworks` accepts.
//!
//! Allow-lists are subtractive: a policy with a list that does not admit the request is dropped
//! ([`super::Access::build`]). Directus throws on a malformed entry; here such an entry matches
//! nothing, so a typo narrows access instead of failing every request. Nothing here panics on
//! any input text.

use std::net::IpAddr;

/// Whether a policy with this allow-list applies to a request from `ip`. No list (or only blank
/// entries) admits everyone; a list with entries admits only matching addresses, and never an
/// unknown one (Directus's `filterPoliciesByIp`: "default to the more secure option").
pub fn admits(list: Option<&[String]>, ip: Option<IpAddr>) -> bool {
    let mut entries = list
        .unwrap_or_default()
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .peekable();
    if entries.peek().is_none() {
        return true;
    }
    let Some(ip) = ip else {
        return false;
    };
    entries.any(|entry| matches(entry, ip))
}

/// Whether `ip` is in the network `entry` describes; a malformed entry matches nothing. An
/// IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how dual-stack sockets report IPv4 peers) is
/// compared as the IPv4 address it carries, as Node's `BlockList` does.
pub fn matches(entry: &str, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let entry = entry.trim();
    if let Some((base, prefix)) = entry.split_once('/') {
        return cidr(base.trim(), prefix.trim(), ip);
    }
    if let Some((low, high)) = entry.split_once('-') {
        return range(low.trim(), high.trim(), ip);
    }
    entry
        .parse::<IpAddr>()
        .is_ok_and(|single| single.to_canonical() == ip)
}

/// `base/prefix`: the first `prefix` bits agree. Host bits set in `base` are ignored, as in
/// Node's `BlockList.addSubnet`.
fn cidr(base: &str, prefix: &str, ip: IpAddr) -> bool {
    let (Ok(base), Ok(prefix)) = (base.parse::<IpAddr>(), prefix.parse::<u8>()) else {
        return false;
    };
    match (base, ip) {
        (IpAddr::V4(base), IpAddr::V4(ip)) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(base) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(base), IpAddr::V6(ip)) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(base) & mask == u128::from(ip) & mask
        }
        // A v4 request against a v6 block (or the reverse), or a prefix too long.
        _ => false,
    }
}

/// `low-high`, inclusive, both of one family.
fn range(low: &str, high: &str, ip: IpAddr) -> bool {
    let (Ok(low), Ok(high)) = (low.parse::<IpAddr>(), high.parse::<IpAddr>()) else {
        return false;
    };
    match (low.to_canonical(), high.to_canonical(), ip) {
        (IpAddr::V4(low), IpAddr::V4(high), IpAddr::V4(ip)) => (low..=high).contains(&ip),
        (IpAddr::V6(low), IpAddr::V6(high), IpAddr::V6(ip)) => (low..=high).contains(&ip),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn single_addresses_match_exactly() {
        assert!(matches("192.168.1.10", ip("192.168.1.10")));
        assert!(!matches("192.168.1.10", ip("192.168.1.11")));
        assert!(matches("2001:db8::1", ip("2001:db8:0:0::1")));
        assert!(!matches("2001:db8::1", ip("2001:db8::2")));
        assert!(matches(" 10.0.0.1 ", ip("10.0.0.1")), "entries are trimmed");
    }

    #[test]
    fn cidr_blocks_match_their_prefix() {
        assert!(matches("10.0.0.0/24", ip("10.0.0.50")));
        assert!(!matches("10.0.0.0/24", ip("10.0.1.1")));
        assert!(
            matches("10.0.0.7/24", ip("10.0.0.200")),
            "host bits in the base are ignored"
        );
        assert!(matches("0.0.0.0/0", ip("203.0.113.9")));
        assert!(matches("10.1.2.3/32", ip("10.1.2.3")));
        assert!(!matches("10.1.2.3/32", ip("10.1.2.4")));
        assert!(matches("2001:4860::/32", ip("2001:4860::1")));
        assert!(!matches("2001:4860::/32", ip("2001:4861::1")));
        assert!(matches("::/0", ip("::1")));
    }

    #[test]
    fn ranges_are_inclusive() {
        let v4 = "10.0.0.0-10.0.0.255";
        assert!(matches(v4, ip("10.0.0.0")));
        assert!(matches(v4, ip("10.0.0.255")));
        assert!(!matches(v4, ip("10.0.1.1")));
        let v6 = "2001:4860::-2001:4860:ffff:ffff:ffff:ffff:ffff:ffff";
        assert!(matches(v6, ip("2001:4860::1")));
        assert!(!matches(v6, ip("2001:4861::1")));
    }

    #[test]
    fn families_never_cross() {
        assert!(!matches("10.0.0.0/8", ip("2001:db8::1")));
        assert!(!matches("::/0", ip("10.0.0.1")));
        assert!(!matches("10.0.0.1-2001:db8::1", ip("10.0.0.5")));
    }

    #[test]
    fn ipv4_mapped_requests_compare_as_ipv4() {
        assert!(matches("10.0.0.0/24", ip("::ffff:10.0.0.9")));
        assert!(matches("10.0.0.9", ip("::ffff:10.0.0.9")));
        assert!(matches("::ffff:10.0.0.9", ip("10.0.0.9")));
    }

    #[test]
    fn malformed_entries_match_nothing() {
        for entry in [
            "invalid",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "/8",
            "10.0.0.0/-1",
            "10.0.0.9-10.0.0.1",
            "10.0.0.1-",
            "10.0.0.0/8/8",
            "fe80::1%eth0",
            "",
        ] {
            assert!(!matches(entry, ip("10.0.0.5")), "{entry}");
        }
    }

    #[test]
    fn no_list_or_a_blank_list_admits_everyone() {
        assert!(admits(None, Some(ip("10.0.0.1"))));
        assert!(admits(None, None));
        assert!(admits(Some(&[]), None));
        assert!(admits(Some(&list(&["", "  "])), Some(ip("10.0.0.1"))));
    }

    #[test]
    fn a_list_admits_only_matching_known_addresses() {
        let office = list(&["10.0.0.0/24", "2001:db8::/32"]);
        assert!(admits(Some(&office), Some(ip("10.0.0.3"))));
        assert!(admits(Some(&office), Some(ip("2001:db8::3"))));
        assert!(!admits(Some(&office), Some(ip("10.0.1.3"))));
        assert!(!admits(Some(&office), None), "an unknown address is refused");
        let typo = list(&["10.0.0.0/24x", "10.0.0.3"]);
        assert!(
            admits(Some(&typo), Some(ip("10.0.0.3"))),
            "a bad entry spoils only itself"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_entry_text_is_handled_without_panicking(entry in ".{0,60}", a in proptest::num::u32::ANY, b in proptest::num::u128::ANY) {
            let _ = matches(&entry, IpAddr::from(a.to_be_bytes()));
            let _ = matches(&entry, IpAddr::from(b.to_be_bytes()));
            let _ = admits(Some(std::slice::from_ref(&entry)), None);
        }

        #[test]
        fn network_shaped_entries_are_handled_without_panicking(
            entry in "[0-9a-f:.]{0,20}(/[0-9]{0,4})?(-[0-9a-f:.]{0,20})?",
            a in proptest::num::u32::ANY,
        ) {
            let _ = matches(&entry, IpAddr::from(a.to_be_bytes()));
        }

        #[test]
        fn a_block_admits_exactly_its_prefix(base in proptest::num::u32::ANY, probe in proptest::num::u32::ANY, prefix in 0u8..=32) {
            let entry = format!("{}/{prefix}", std::net::Ipv4Addr::from(base));
            let same = prefix == 0 || (base ^ probe) >> (32 - u32::from(prefix)) == 0;
            proptest::prop_assert_eq!(matches(&entry, IpAddr::from(probe.to_be_bytes())), same);
        }
    }
}
