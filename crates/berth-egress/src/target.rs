//! Classifying the target a guest names: host names vs IP literals in every spelling, and
//! the address ranges the proxy never reaches unless the user mapped a name there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Lowercase, no surrounding brackets, no trailing dot.
pub fn normalize(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(&h);
    h.trim_end_matches('.').to_string()
}

/// An IP literal in any form a resolver or `inet_aton` would accept: dotted quads with
/// fewer parts (`127.1`), hex (`0x7f000001`), octal (`0177.0.0.1`), a bare number
/// (`2130706433`), IPv6 with or without brackets. `None` for a host name.
pub fn parse_ip(host: &str) -> Option<IpAddr> {
    let h = normalize(host);
    if let Ok(v6) = h.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    inet_aton(&h).map(IpAddr::V4)
}

fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let n = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            if hex.is_empty() {
                0
            } else {
                u64::from_str_radix(hex, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    let mut addr: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        if *n > 255 {
            return None;
        }
        addr |= n << (24 - 8 * i);
    }
    let room = 32 - 8 * head.len() as u32;
    if room < 64 && *last >= 1u64 << room {
        return None;
    }
    Some(Ipv4Addr::from((addr | last) as u32))
}

/// Loopback, private, link-local (the cloud metadata address 169.254.169.254 among them),
/// CGNAT, multicast, unspecified, reserved, and their IPv6 counterparts (unique local
/// fc00::/7 with fd00::/8, link-local, v4-mapped and NAT64 forms of the above).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_forbidden(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return v4_forbidden(v4);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)
        }
    }
}

fn v4_forbidden(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_unspecified()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_loopback_is_an_ip_literal() {
        for s in [
            "127.0.0.1",
            "127.1",
            "0x7f000001",
            "2130706433",
            "0177.0.0.1",
            "0x7f.1",
            "[::1]",
            "::1",
            "127.0.0.1.",
            "::ffff:127.0.0.1",
        ] {
            let ip = parse_ip(s).unwrap_or_else(|| panic!("{s} not parsed"));
            assert!(is_forbidden(ip), "{s} -> {ip}");
        }
        assert_eq!(parse_ip("example.com"), None);
        assert_eq!(parse_ip("1.2.3.4.5"), None);
        assert_eq!(parse_ip("256.1.1.1"), None);
        assert_eq!(parse_ip("0x1g"), None);
    }

    #[test]
    fn private_metadata_cgnat_and_ula_ranges_are_forbidden_public_ones_are_not() {
        for s in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "64:ff9b::a00:1",
            "::",
        ] {
            assert!(is_forbidden(parse_ip(s).unwrap()), "{s}");
        }
        for s in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert!(!is_forbidden(parse_ip(s).unwrap()), "{s}");
        }
    }
}
