//! Deciding one request: the policy, then name resolution on the host, then the ranges.

use std::net::SocketAddr;

use crate::host_addrs::is_host_address;
use crate::policy::{Mode, Policy};
use crate::target::{is_forbidden, normalize, parse_ip};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Connect to these addresses (already resolved; never resolved again).
    Allow {
        addrs: Vec<SocketAddr>,
        rule: String,
    },
    Deny {
        reason: String,
        rule: String,
    },
}

fn deny(reason: impl Into<String>, rule: impl Into<String>) -> Decision {
    Decision::Deny {
        reason: reason.into(),
        rule: rule.into(),
    }
}

/// Decides whether the guest may reach `host:port`.
pub async fn decide(policy: &Policy, host: &str, port: u16) -> Decision {
    let name = normalize(host);
    if policy.mode == Mode::Off {
        return deny("networking is off for this attempt", "mode=off");
    }
    if port == 0 {
        return deny("port 0", "port");
    }
    if let Some(ip) = parse_ip(&name) {
        // Literal addresses: never a forbidden range (map a name with `resolve` instead),
        // and in allowlist mode only when allowed literally.
        if is_forbidden(ip) {
            return deny(
                format!("{ip} is a loopback/private/link-local address"),
                "ranges",
            );
        }
        if is_host_address(ip) {
            return deny(format!("{ip} is an address of this host"), "ranges");
        }
        return match policy.mode {
            Mode::Open => allow(vec![SocketAddr::new(ip, port)], "mode=open"),
            _ => match policy.allow.iter().find(|r| r.matches_ip(ip, port)) {
                Some(r) => allow(vec![SocketAddr::new(ip, port)], &format!("allow {r}")),
                None => deny(
                    format!("IP literal {ip}:{port} is not on the allowlist"),
                    "allowlist",
                ),
            },
        };
    }
    let rule = match policy.mode {
        Mode::Open => "mode=open".to_string(),
        _ => match policy.allow.iter().find(|r| r.matches_name(&name, port)) {
            Some(r) => format!("allow {r}"),
            None => {
                return deny(
                    format!("{name}:{port} is not on the allowlist"),
                    "allowlist",
                );
            }
        },
    };
    if let Some(ip) = policy.resolve.get(&name) {
        // The user's explicit mapping: the one way to reach a loopback/private address.
        return allow(
            vec![SocketAddr::new(*ip, port)],
            &format!("{rule}; resolve {name}={ip}"),
        );
    }
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((name.as_str(), port)).await {
        Ok(a) => a.collect(),
        Err(e) => return deny(format!("{name} does not resolve: {e}"), rule),
    };
    if addrs.is_empty() {
        return deny(format!("{name} has no addresses"), rule);
    }
    // Any forbidden address refuses the name: a mix is how rebinding tricks start.
    if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
        return deny(
            format!(
                "{name} resolves to {}, a loopback/private/link-local address",
                bad.ip()
            ),
            "ranges",
        );
    }
    if let Some(own) = addrs.iter().find(|a| is_host_address(a.ip())) {
        return deny(
            format!("{name} resolves to {}, an address of this host", own.ip()),
            "ranges",
        );
    }
    allow(addrs, &rule)
}

fn allow(addrs: Vec<SocketAddr>, rule: &str) -> Decision {
    Decision::Allow {
        addrs,
        rule: rule.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AllowRule;

    fn policy(mode: Mode, allow: &[&str]) -> Policy {
        Policy {
            mode,
            allow: allow.iter().map(|a| AllowRule::parse(a).unwrap()).collect(),
            resolve: [("svc.test".to_string(), "127.0.0.1".parse().unwrap())].into(),
            egress_budget: None,
            max_connections: None,
        }
    }

    fn denied(d: &Decision) -> bool {
        matches!(d, Decision::Deny { .. })
    }

    #[tokio::test]
    async fn loopback_in_every_spelling_is_denied_even_when_listed() {
        let p = policy(
            Mode::Allowlist,
            &[
                "localhost",
                "127.1",
                "0x7f000001",
                "[::1]",
                "169.254.169.254",
                "svc.test:8080",
            ],
        );
        for host in [
            "localhost",
            "127.1",
            "0x7f000001",
            "[::1]",
            "2130706433",
            "169.254.169.254",
            "LOCALHOST.",
        ] {
            assert!(denied(&decide(&p, host, 80).await), "{host}");
        }
        // The explicit mapping is the one way to loopback, and only on the listed port.
        assert!(matches!(
            decide(&p, "svc.test", 8080).await,
            Decision::Allow { .. }
        ));
        assert!(denied(&decide(&p, "svc.test", 8081).await));
    }

    #[tokio::test]
    async fn unlisted_names_are_denied_without_any_lookup_and_off_denies_everything() {
        let p = policy(Mode::Allowlist, &["example.com"]);
        let d = decide(&p, "unlisted.example", 443).await;
        assert!(
            matches!(&d, Decision::Deny { rule, .. } if rule == "allowlist"),
            "{d:?}"
        );
        let off = policy(Mode::Off, &["svc.test"]);
        assert!(denied(&decide(&off, "svc.test", 80).await));
    }

    #[tokio::test]
    async fn open_mode_still_refuses_private_targets() {
        let p = policy(Mode::Open, &[]);
        assert!(denied(&decide(&p, "10.0.0.1", 80).await));
        assert!(denied(&decide(&p, "localhost", 80).await));
        assert!(matches!(
            decide(&p, "svc.test", 80).await,
            Decision::Allow { .. }
        ));
    }
}
