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
