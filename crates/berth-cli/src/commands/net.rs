//! Network flags shared by `berth run`, `berth task new` and `berth vm run`.

use std::path::Path;

use anyhow::{Result, anyhow};
use berth_core::{Mode, Policy};

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
    /// The policy from `<repo>/berth.toml` (only what the user trusted; see
    /// `berth config trust`) with these flags on top.
    pub fn policy(&self, store: &berth_core::Store, repo: Option<&Path>) -> Result<Policy> {
        let Some(repo) = repo else {
            return berth_core::RepoConfig::default()
                .policy(
                    self.network
                        .or((!self.allow.is_empty()).then_some(Mode::Allowlist)),
                    &self.allow,
                    &self.resolve,
                    self.egress_budget.as_deref(),
                )
                .map_err(|e| anyhow!(e));
        };
        Ok(berth_core::repo_policy(
            store,
            repo,
            self.network,
            &self.allow,
            &self.resolve,
            self.egress_budget.as_deref(),
        )?)
    }
}
