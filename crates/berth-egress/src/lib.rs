//! The egress proxy: the only way out of an attempt's VM.
//!
//! The guest has no route anywhere; QEMU's restricted user networking forwards one guest
//! address (`10.0.2.100:3128`) into this proxy through a per-connection bridge. The proxy
//! resolves names on the host, matches the allowlist, refuses loopback / private /
//! link-local / metadata targets unless the user mapped a name there explicitly, caps what
//! the guest may upload, and reports every request, allowed or denied, as an [`EgressEvent`].

mod approval;
mod decide;
mod events;
mod forward;
#[cfg(feature = "fuzzing")]
mod fuzz_gateway;
pub mod gateway;
pub mod host_addrs;
pub mod intercept;
mod policy;
mod prefixed;
mod proxy;
mod request;
pub mod target;

pub use approval::{
    APPROVAL_TIMEOUT, Approval, Approver, MAX_QUESTIONS, QUESTION_WINDOW, askable, exact_rule,
};
pub use decide::{Decision, decide};
pub use gateway::{GATEWAY_PREFIX, SecretApproval, SecretBinding, SecretValue};
pub use policy::{AllowRule, Mode, Policy, parse_bytes};
pub use proxy::{EgressEvent, EgressProxy, EventSink};

/// Where the guest reaches the proxy.
pub const GUEST_PROXY_ADDR: &str = "10.0.2.100";
pub const GUEST_PROXY_PORT: u16 = 3128;

/// Entry points for `cargo fuzz` (`fuzz/`): the parsers a guest's bytes reach.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz {
    /// The proxy's request head (plain HTTP in absolute form, and CONNECT).
    pub fn request_head(head: &[u8]) {
        if let Ok(r) = crate::request::parse_request(head) {
            let _ = crate::target::normalize(&r.host);
        }
    }

    pub use crate::fuzz_gateway::gateway_connection;

    /// The gateway: whether a head is for it, its path split and dot-segment check.
    pub fn gateway_head(head: &[u8]) {
        let _ = crate::gateway::is_gateway_request(head);
        let text = String::from_utf8_lossy(head);
        for line in text.split("\r\n") {
            let _ = crate::gateway::split_gateway_path(line);
            let _ = crate::gateway::has_dot_segments(line);
        }
    }

    /// A host name or address the guest asks for, against an allow rule the repo wrote.
    pub fn host_and_rule(host: &str, rule: &str) {
        let _ = crate::target::parse_ip(host);
        let name = crate::target::normalize(host);
        if let Ok(r) = crate::AllowRule::parse_user(rule) {
            let _ = r.matches_name(&name, 443);
            if let Some(ip) = crate::target::parse_ip(host) {
                let _ = r.matches_ip(ip, 443);
                let _ = crate::target::is_forbidden(ip);
            }
        }
    }
}
