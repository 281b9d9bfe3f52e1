//! Network flags shared by `berth run`, `berth task new` and `berth vm run`.

use std::path::Path;

use anyhow::{Result, anyhow};
use berth_egress::{Mode, Policy};

#[derive(clap::Args, Clone, Debug, Default)]
pub struct NetArgs {
    /// off (default: no network at all), allowlist (only --allow names, through the proxy),
    /// or open (anything public through the proxy); overrides berth.toml.
    #[arg(long, value_name = "MODE")]
    pub network: Option<Mode>,
    /// Allow a name: example.com, *.example.com, with an optional :port (default 80 and 443).
    #[arg(long = "allow", value_name = "DOMAIN")]
    pub allow: Vec<String>,
    /// Map a name to an address, like curl's --resolve (the only way to a private address).
    #[arg(long = "resolve", value_name = "NAME=IP")]
    pub resolve: Vec<String>,
    /// Cap on the bytes the guest may upload (e.g. 50MiB).
    #[arg(long, value_name = "BYTES")]
    pub egress_budget: Option<String>,
}

impl NetArgs {
    /// The policy from `<repo>/berth.toml` (if any) with these flags on top.
    pub fn policy(&self, repo: Option<&Path>) -> Result<Policy> {
        let config = match repo {
            Some(r) => berth_core::load_repo_config(r)?,
            None => berth_core::RepoConfig::default(),
        };
        let mut net = self.clone();
        if net.network.is_none() && !net.allow.is_empty() && config.network.is_none() {
            net.network = Some(Mode::Allowlist); // --allow alone means an allowlist
        }
        config
            .policy(
                net.network,
                &net.allow,
                &net.resolve,
                net.egress_budget.as_deref(),
            )
            .map_err(|e| anyhow!(e))
    }
}
