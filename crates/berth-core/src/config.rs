//! `berth.toml` at a repo's root: settings that travel with the repo, validated with errors
//! that name the line and the key. The file is untrusted input: see `trust.rs` for how it
//! is read and when what it asks for takes effect.
//!
//! ```toml
//! [network]
//! mode = "allowlist"                       # off | allowlist | open
//! allow = ["example.com", "*.example.org:443"]
//! resolve = { "svc.test" = "127.0.0.1" }   # the only way to reach a loopback/private address
//! egress_budget = "50MiB"
//!
//! [env]                                    # the attempts' environment (see env.rs)
//! suite = "bookworm"                       # Debian release; default: the host's
//! packages = ["jq", "cargo"]               # Debian packages, installed on the host side
//! setup = ["cargo fetch --locked"]         # run once per environment, as agent in /work
//! [env.network]                            # the setup steps' network; same keys as [network]
//! mode = "allowlist"
//!
//! [cache]                                  # the repo's cache disk (see cache.rs)
//! presets = ["cargo", "pip"]               # cargo, npm, pip, go
//! size = "8GiB"
//!
//! [secrets]                                # secrets bound to every attempt (see secrets.rs)
//! bind = ["anthropic:approve=task"]        # the user's own secrets, by name; needs trust
//!
//! [test]                                 # run after each agent (see repo_test.rs)
//! command = "cargo test --offline"
//! timeout = "10m"
//!
//! [agents.mine]                            # a custom agent (see agents.rs); needs trust
//! label = "My agent"                       # the same fields as provisioning/agents.toml
//! ```

use std::collections::BTreeMap;

use berth_egress::{AllowRule, Mode, Policy, parse_bytes};
use serde::Deserialize;

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    #[serde(default)]
    pub network: Option<NetworkConfig>,
    #[serde(default)]
    pub env: Option<crate::env_config::EnvConfig>,
    #[serde(default)]
    pub cache: Option<crate::env_config::CacheConfig>,
    #[serde(default)]
    pub secrets: Option<SecretsConfig>,
    /// The repo's test command, run after each attempt's agent (see repo_test.rs).
    #[serde(default)]
    pub test: Option<crate::repo_test::TestConfig>,
    /// What each attempt may take from the host; a repo may only lower it (see limits.rs).
    #[serde(default)]
    pub limits: Option<crate::limits::LimitsConfig>,
    /// Custom agents, by name (never a built-in preset's name).
    #[serde(default)]
    pub agents: BTreeMap<String, crate::agents::AgentPreset>,
}

/// `[secrets]`: the user's secrets (by name) the repo's attempts use through their gateway.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    #[serde(default)]
    pub bind: Vec<toml::Spanned<String>>,
}

impl SecretsConfig {
    /// The bindings, checked (`NAME[:approve=..][:ttl=..][:max-requests=..]`).
    pub fn uses(&self) -> Vec<crate::secrets::SecretUse> {
        self.bind
            .iter()
            .filter_map(|b| crate::secrets::parse_secret_spec(b.get_ref()).ok())
            .collect()
    }

    fn validate(&self, text: &str) -> Result<(), String> {
        for (i, b) in self.bind.iter().enumerate() {
            if let Err(e) = crate::secrets::parse_secret_spec(b.get_ref()) {
                let line = text[..b.span().start.min(text.len())].matches('\n').count() + 1;
                return Err(format!("berth.toml line {line}: secrets.bind[{i}]: {e}"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub mode: Option<Mode>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub resolve: BTreeMap<String, String>,
    pub egress_budget: Option<toml::Value>,
}

pub(crate) fn parse(text: &str) -> Result<RepoConfig, String> {
    let config: RepoConfig =
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
    if let Some(env) = &config.env {
        env.validate(text)?;
    }
    if let Some(cache) = &config.cache {
        cache.validate(text)?;
    }
    if let Some(secrets) = &config.secrets {
        secrets.validate(text)?;
    }
    if let Some(test) = &config.test {
        test.plan()?;
    }
    let mut config = config;
    for (name, agent) in config.agents.iter_mut() {
        agent.name = name.clone();
        if crate::agents::agent_presets()
            .iter()
            .any(|p| &p.name == name)
        {
            return Err(format!(
                "berth.toml: agents.{name}: '{name}' is a built-in preset; give a custom agent \
                 its own name"
            ));
        }
        agent
            .validate()
            .map_err(|e| format!("berth.toml: agents.{name}: {e}"))?;
    }
    Ok(config)
}

impl RepoConfig {
    /// The network policy: the file's settings, then the command line's on top.
    pub fn policy(
        &self,
        mode: Option<Mode>,
        allow: &[String],
        resolve: &[String],
        budget: Option<&str>,
    ) -> Result<Policy, String> {
        self.network
            .clone()
            .unwrap_or_default()
            .policy("network", mode, allow, resolve, budget)
    }
}

impl NetworkConfig {
    /// This section's policy (`section` names it in errors: `network`, `env.network`), with
    /// the command line's settings on top.
    pub fn policy(
        &self,
        section: &str,
        mode: Option<Mode>,
        allow: &[String],
        resolve: &[String],
        budget: Option<&str>,
    ) -> Result<Policy, String> {
        let net = self;
        let mut policy = Policy {
            mode: mode.or(net.mode).unwrap_or_default(),
            ..Policy::default()
        };
        for (i, a) in net.allow.iter().enumerate() {
            policy.allow.push(
                AllowRule::parse_user(a)
                    .map_err(|e| format!("berth.toml: {section}.allow[{i}]: {e}"))?,
            );
        }
        for a in allow {
            policy
                .allow
                .push(AllowRule::parse_user(a).map_err(|e| format!("--allow: {e}"))?);
        }
        for (name, ip) in &net.resolve {
            let ip = ip.parse().map_err(|_| {
                format!("berth.toml: {section}.resolve.\"{name}\": '{ip}' is not an IP address")
            })?;
            policy.resolve.insert(name.to_ascii_lowercase(), ip);
        }
        for r in resolve {
            let (name, ip) = r
                .split_once('=')
                .ok_or_else(|| format!("--resolve takes NAME=IP, got '{r}'"))?;
            let ip = ip
                .parse()
                .map_err(|_| format!("--resolve {r}: '{ip}' is not an IP address"))?;
            policy.resolve.insert(name.to_ascii_lowercase(), ip);
        }
        policy.egress_budget = match (budget, &net.egress_budget) {
            (Some(b), _) => Some(parse_bytes(b).map_err(|e| format!("--egress-budget: {e}"))?),
            (None, Some(toml::Value::Integer(n))) if *n >= 0 => Some(*n as u64),
            (None, Some(toml::Value::String(s))) => Some(
                parse_bytes(s).map_err(|e| format!("berth.toml: {section}.egress_budget: {e}"))?,
            ),
            (None, Some(other)) => {
                return Err(format!(
                    "berth.toml: {section}.egress_budget: '{other}' is not a size"
                ));
            }
            (None, None) => None,
        };
        if policy.mode == Mode::Off && !policy.allow.is_empty() {
            return Err(format!(
                "an allowlist was given but the network mode is off; add --network allowlist \
                 (or mode = \"allowlist\" in berth.toml's [{section}])"
            ));
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_and_flags_override_it() {
        let c = parse(
            "[network]\nmode = \"allowlist\"\nallow = [\"example.com\", \"*.example.org:443\"]\n\
             resolve = { \"svc.test\" = \"127.0.0.1\" }\negress_budget = \"50MiB\"\n",
        )
        .unwrap();
        let p = c.policy(None, &[], &[], None).unwrap();
        assert_eq!(p.mode, Mode::Allowlist);
        assert_eq!(p.allow.len(), 2);
        assert_eq!(p.egress_budget, Some(50 << 20));
        assert_eq!(p.resolve["svc.test"].to_string(), "127.0.0.1");
        let p = c
            .policy(
                Some(Mode::Open),
                &["extra.test".into()],
                &["x.test=10.0.0.1".into()],
                Some("1KiB"),
            )
            .unwrap();
        assert_eq!(
            (p.mode, p.allow.len(), p.egress_budget),
            (Mode::Open, 3, Some(1024))
        );
    }

    #[test]
    fn a_repo_cannot_ask_for_more_of_its_history_in_the_guest() {
        // Older commits can hold what was deleted since: the depth is the user's alone.
        for text in [
            "history = 1000\n",
            "[git]\nhistory = 1000\n",
            "[env]\nhistory = 5\n",
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                err.contains("history") || err.contains("git"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn mistakes_name_the_line_and_the_key() {
        let err = parse("[network]\nmode = \"allowlist\"\nalow = []\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("alow"), "{err}");
        let err = parse("[network]\nmode = \"sometimes\"\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("sometimes"), "{err}");
        let c = parse("[network]\nmode = \"allowlist\"\nallow = [\"ok.test\", \"bad host\"]\n")
            .unwrap();
        let err = c.policy(None, &[], &[], None).unwrap_err();
        assert!(err.contains("network.allow[1]"), "{err}");
        let c = parse("[network]\negress_budget = \"lots\"\n").unwrap();
        assert!(
            c.policy(None, &[], &[], None)
                .unwrap_err()
                .contains("network.egress_budget")
        );
    }
}
