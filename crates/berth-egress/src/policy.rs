//! What an attempt may reach.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The network mode of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No network device at all.
    #[default]
    Off,
    /// HTTP and HTTPS through the proxy to listed names only.
    Allowlist,
    /// Anything public through the proxy, still logged.
    Open,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Mode::Off),
            "allowlist" => Ok(Mode::Allowlist),
            "open" => Ok(Mode::Open),
            other => Err(format!(
                "unknown network mode '{other}'; use off, allowlist or open"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Off => "off",
            Mode::Allowlist => "allowlist",
            Mode::Open => "open",
        })
    }
}

/// One allowlist entry: `example.com`, `*.example.com` (subdomains only), an IP literal,
/// each optionally with `:port`. Without a port, 80 and 443 are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AllowRule {
    /// Lowercase, without a trailing dot; `*.` prefix for wildcards; IPs in canonical form.
    pub host: String,
    pub port: Option<u16>,
}

impl AllowRule {
    /// A rule the user typed (a flag, `berth.toml`, the app): as [`AllowRule::parse`], and an
    /// address the proxy never connects to (loopback, private, link-local) is refused with
    /// the way that works, instead of a rule that can never match.
    pub fn parse_user(entry: &str) -> Result<AllowRule, String> {
        let rule = AllowRule::parse(entry)?;
        if let Some(ip) = crate::target::parse_ip(&rule.host)
            && crate::target::is_forbidden(ip)
        {
            return Err(format!(
                "'{entry}' can never be reached: the proxy never connects to loopback, private \
                 or link-local addresses. To reach a service on this machine or your network, \
                 map a name to it and allow the name: --resolve NAME={ip} --allow NAME{}",
                rule.port.map(|p| format!(":{p}")).unwrap_or_default()
            ));
        }
        Ok(rule)
    }

    pub fn parse(entry: &str) -> Result<AllowRule, String> {
        let e = entry.trim();
        let bad = |why: &str| Err(format!("'{entry}' is not an allowlist entry: {why}"));
        if e.is_empty() {
            return bad("empty");
        }
        let (host, port) = if let Some(rest) = e.strip_prefix('[') {
            let Some((h, tail)) = rest.split_once(']') else {
                return bad("unclosed '['");
            };
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p),
                None if tail.is_empty() => None,
                None => return bad("junk after ']'"),
            };
            (h.to_string(), port)
        } else if e.matches(':').count() > 1 {
            (e.to_string(), None) // a bare IPv6 literal
        } else {
            match e.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (e.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return bad("the port must be 1-65535"),
            },
            None => None,
        };
        let host = crate::target::normalize(&host);
        if let Some(ip) = crate::target::parse_ip(&host) {
            return Ok(AllowRule {
                host: ip.to_string(),
                port,
            });
        }
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid || name.contains('*') {
            return bad("not a host name (wildcards only as a leading '*.')");
        }
        Ok(AllowRule { host, port })
    }

    fn port_ok(&self, port: u16) -> bool {
        match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        }
    }

    /// Whether this rule allows `name` (normalized) on `port`.
    pub fn matches_name(&self, name: &str, port: u16) -> bool {
        if !self.port_ok(port) {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(suffix) => name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}")),
            None => self.host == name,
        }
    }

    pub fn matches_ip(&self, ip: IpAddr, port: u16) -> bool {
        self.port_ok(port) && self.host == ip.to_string()
    }
}

impl TryFrom<String> for AllowRule {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        AllowRule::parse(&s)
    }
}

impl From<AllowRule> for String {
    fn from(r: AllowRule) -> String {
        match r.port {
            Some(p) if r.host.contains(':') => format!("[{}]:{p}", r.host),
            Some(p) => format!("{}:{p}", r.host),
            None => r.host,
        }
    }
}

impl std::fmt::Display for AllowRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(self.clone()))
    }
}

/// An attempt's network policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub mode: Mode,
    #[serde(default)]
    pub allow: Vec<AllowRule>,
    /// Names the user maps to addresses (like curl's --resolve): the only way to reach a
    /// loopback or private address.
    #[serde(default)]
    pub resolve: BTreeMap<String, IpAddr>,
    /// Bytes the guest may send upstream in all; `None` for no cap.
    #[serde(default)]
    pub egress_budget: Option<u64>,
    /// Connections at once through the proxy (each one a host process, the VM's network
    /// bridge); `None` for the proxy's default. Set by Berth from the attempt's limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

/// Parses `50MiB`, `2GB`, `1024`, `10k` into bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 50MiB, 2GB, 1048576)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "'{s}' has an unknown unit; use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_names_wildcards_ports_and_literals() {
        let r = AllowRule::parse("Example.COM.").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("example.com", None));
        assert!(r.matches_name("example.com", 443) && r.matches_name("example.com", 80));
        assert!(!r.matches_name("example.com", 8080) && !r.matches_name("a.example.com", 443));
        let w = AllowRule::parse("*.example.org:443").unwrap();
        assert!(w.matches_name("a.example.org", 443) && w.matches_name("a.b.example.org", 443));
        assert!(!w.matches_name("example.org", 443) && !w.matches_name("a.example.org", 80));
        assert!(!w.matches_name("badexample.org", 443));
        assert_eq!(
            AllowRule::parse("[::1]:8443").unwrap().to_string(),
            "[::1]:8443"
        );
        assert_eq!(AllowRule::parse("127.1").unwrap().host, "127.0.0.1");
        // What a user types: an address the proxy never reaches is refused with the way that
        // works (a name mapped with --resolve); a public one is a rule.
        for never in [
            "127.0.0.1",
            "127.1:8080",
            "[::1]:8443",
            "10.0.0.5",
            "169.254.169.254",
        ] {
            let e = AllowRule::parse_user(never).unwrap_err();
            assert!(e.contains("--resolve NAME="), "{never}: {e}");
        }
        assert!(AllowRule::parse_user("93.184.216.34").is_ok());
        for bad in [
            "",
            "exa mple.com",
            "*",
            "a.*.com",
            "x:0",
            "x:99999",
            "[::1",
            "ex/ample",
        ] {
            assert!(AllowRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("50MiB"), Ok(50 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert!(parse_bytes("lots").is_err() && parse_bytes("5 parsecs").is_err());
    }
}
