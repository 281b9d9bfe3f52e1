//! `berth.toml` is untrusted input: it comes from the repo, and an agent can write the repo
//! (a pulled branch is the next task's base). Like direnv's `allow` and mise's `trust`,
//! whatever in the file widens what a guest may reach takes effect only after the user
//! approved that exact content; a changed file asks again. The approval is the SHA-256 of
//! the file's bytes, kept per repo in `berth.db`.

use std::path::{Path, PathBuf};

use berth_egress::{Mode, Policy};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Store;
use crate::config::{RepoConfig, parse};
use crate::task::TaskError;

/// The repo's `berth.toml` as read now, and what it asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepoConfigView {
    pub repo: PathBuf,
    /// Whether the repo has a `berth.toml` at all.
    pub present: bool,
    /// SHA-256 of the file's bytes (empty without a file).
    pub sha256: String,
    /// What in it widens a guest's reach, one line each ("network mode: open"); empty when
    /// nothing does, and then no trust is needed.
    pub widens: Vec<String>,
    /// Whether the user trusted exactly this content.
    pub trusted: bool,
    #[serde(skip)]
    pub config: RepoConfig,
}

impl RepoConfigView {
    /// Whether the file may be used as it is.
    pub fn usable(&self) -> bool {
        self.widens.is_empty() || self.trusted
    }
}

fn setting_key(repo: &Path) -> String {
    format!("trust:{}", repo.display())
}

/// Reads `<repo>/berth.toml` (validated) and whether the user trusted this content.
pub fn repo_config(store: &Store, repo: &Path) -> Result<RepoConfigView, TaskError> {
    let path = repo.join("berth.toml");
    let bytes = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(TaskError::Refused(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let Some(bytes) = bytes else {
        return Ok(RepoConfigView {
            repo: repo.to_path_buf(),
            present: false,
            sha256: String::new(),
            widens: Vec::new(),
            trusted: true,
            config: RepoConfig::default(),
        });
    };
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| TaskError::Refused(format!("{} is not UTF-8", path.display())))?;
    let config =
        parse(&text).map_err(|e| TaskError::Refused(format!("{}: {e}", path.display())))?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let trusted = store.db()?.setting(&setting_key(repo))?.as_deref() == Some(sha256.as_str());
    Ok(RepoConfigView {
        repo: repo.to_path_buf(),
        present: true,
        widens: widenings(&config),
        sha256,
        trusted,
        config,
    })
}

/// Trusts the repo's `berth.toml` as it is now. `seen` is the SHA-256 the user reviewed: if
/// the file changed since, nothing is trusted.
pub fn trust_repo_config(
    store: &Store,
    repo: &Path,
    seen: Option<&str>,
) -> Result<RepoConfigView, TaskError> {
    let view = repo_config(store, repo)?;
    if !view.present {
        return Err(TaskError::Refused(format!(
            "{} has no berth.toml; there is nothing to trust",
            repo.display()
        )));
    }
    if let Some(seen) = seen
        && seen != view.sha256
    {
        return Err(TaskError::Refused(format!(
            "{}/berth.toml changed since it was shown; review it again",
            repo.display()
        )));
    }
    store
        .db()?
        .set_setting(&setting_key(repo), Some(&view.sha256))?;
    Ok(RepoConfigView {
        trusted: true,
        ..view
    })
}

/// What `config` asks for beyond "no network, no secrets": each needs the user's trust.
pub fn widenings(config: &RepoConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(net) = &config.network {
        network_widenings(net, "", &mut out);
    }
    if let Some(net) = config.env.as_ref().and_then(|e| e.network.as_ref()) {
        network_widenings(net, "setup steps' ", &mut out);
    }
    for b in config.secrets.iter().flat_map(|s| s.bind.iter()) {
        out.push(format!("secret: {}", b.get_ref()));
    }
    for (name, a) in &config.agents {
        // Its package is fetched on the host and its commands get a secret's gateway.
        let mut what = vec![format!("agent {name}: runs {}", a.headless.join(" "))];
        if !a.fetch.is_empty() {
            what.push(format!(
                "fetches {} on this machine",
                a.fetch.replace("{version}", &a.version)
            ));
        }
        if !a.secret.is_empty() {
            what.push(format!("uses your secret {}", a.secret));
        }
        if !a.allow.is_empty() {
            what.push(format!("allow: {}", a.allow.join(", ")));
        }
        out.push(what.join("; "));
    }
    out
}

fn network_widenings(net: &crate::config::NetworkConfig, whose: &str, out: &mut Vec<String>) {
    if let Some(mode) = net.mode
        && mode != Mode::Off
    {
        out.push(format!("{whose}network mode: {mode}"));
    }
    if !net.allow.is_empty() {
        out.push(format!("{whose}allow: {}", net.allow.join(", ")));
    }
    for (name, ip) in &net.resolve {
        out.push(format!("{whose}resolve: {name} → {ip}"));
    }
}

/// The network policy for a new attempt on `repo`: the repo's `berth.toml` (only if nothing
/// in it needs trust, or the user trusted this content), then the front end's flags on top.
pub fn repo_policy(
    store: &Store,
    repo: &Path,
    mode: Option<Mode>,
    allow: &[String],
    resolve: &[String],
    budget: Option<&str>,
) -> Result<Policy, TaskError> {
    let view = repo_config(store, repo)?;
    if !view.usable() {
        return Err(TaskError::Refused(format!(
            "{}/berth.toml asks for more than Berth gives a guest by default:\n  {}\n\
             It comes from the repo, and an agent can write it. Read it, then run \
             `berth config trust --repo {}` to trust this exact content (a changed file asks \
             again), or move it away.",
            repo.display(),
            view.widens.join("\n  "),
            repo.display()
        )));
    }
    let mut mode = mode;
    if mode.is_none() && !allow.is_empty() && view.config.network.is_none() {
        mode = Some(Mode::Allowlist); // --allow alone means an allowlist
    }
    view.config
        .policy(mode, allow, resolve, budget)
        .map_err(TaskError::Refused)
}

/// One line for the user: what an attempt with `policy` may reach.
pub fn describe_policy(policy: &Policy) -> String {
    let mut s = format!("network: {}", policy.mode);
    if policy.mode != Mode::Off {
        if !policy.allow.is_empty() {
            let names: Vec<String> = policy.allow.iter().map(|r| r.to_string()).collect();
            s.push_str(&format!("; allow {}", names.join(", ")));
        }
        for (name, ip) in &policy.resolve {
            s.push_str(&format!("; {name} → {ip}"));
        }
        if let Some(b) = policy.egress_budget {
            s.push_str(&format!("; upload budget {b} bytes"));
        }
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataDir;

    fn repo_with_config(dir: &Path, text: &str) -> (Store, PathBuf) {
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("berth.toml"), text).unwrap();
        (Store::new(DataDir::new(dir.join("data"))), repo)
    }

    const HOSTILE: &str = "[network]\nmode = \"open\"\nallow = [\"*.com\"]\n\
                           resolve = { \"m.test\" = \"169.254.169.254\" }\n";

    #[test]
    fn a_repo_file_that_widens_reach_is_refused_until_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, repo) = repo_with_config(dir.path(), HOSTILE);
        let view = repo_config(&store, &repo).unwrap();
        assert_eq!(view.widens.len(), 3, "{:?}", view.widens);
        assert!(!view.usable());
        // Even with the user's own mode chosen, the file's names and mappings are not merged in.
        let e = repo_policy(&store, &repo, Some(Mode::Off), &[], &[], None).unwrap_err();
        assert!(e.to_string().contains("m.test → 169.254.169.254"), "{e}");
        trust_repo_config(&store, &repo, Some(&view.sha256)).unwrap();
        let p = repo_policy(&store, &repo, None, &[], &[], None).unwrap();
        assert_eq!(p.mode, Mode::Open);
    }

    #[test]
    fn a_repo_binds_the_users_secrets_only_once_trusted_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let (store, repo) = repo_with_config(
            dir.path(),
            "[secrets]\nbind = [\"anthropic:approve=task\", \"gh\"]\n",
        );
        let view = repo_config(&store, &repo).unwrap();
        assert_eq!(
            view.widens,
            ["secret: anthropic:approve=task", "secret: gh"]
        );
        let e = crate::secrets::task_secret_uses(&store, &repo, &[]).unwrap_err();
        assert!(e.to_string().contains("anthropic, gh"), "{e}");
        trust_repo_config(&store, &repo, None).unwrap();
        let flag = crate::secrets::parse_secret_spec("gh:max-requests=3").unwrap();
        let uses = crate::secrets::task_secret_uses(&store, &repo, &[flag]).unwrap();
        let names: Vec<(&str, Option<u64>)> = uses
            .iter()
            .map(|u| (u.name.as_str(), u.max_requests))
            .collect();
        assert_eq!(names, [("anthropic", None), ("gh", Some(3))]);
        assert_eq!(uses[0].approve, berth_egress::SecretApproval::Task);
        // A bad binding names its line.
        let err = crate::config::parse("[secrets]\n\nbind = [\"x:ttl=forever\"]\n").unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("secrets.bind[0]"),
            "{err}"
        );
    }

    #[test]
    fn a_changed_file_asks_again_and_a_stale_review_trusts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, repo) = repo_with_config(dir.path(), "[network]\nmode = \"allowlist\"\n");
        let seen = repo_config(&store, &repo).unwrap().sha256;
        trust_repo_config(&store, &repo, None).unwrap();
        std::fs::write(repo.join("berth.toml"), HOSTILE).unwrap();
        assert!(!repo_config(&store, &repo).unwrap().trusted);
        assert!(repo_policy(&store, &repo, None, &[], &[], None).is_err());
        // The app's dialog showed the old content: trusting with its hash is refused.
        assert!(trust_repo_config(&store, &repo, Some(&seen)).is_err());
        assert!(!repo_config(&store, &repo).unwrap().trusted);
    }

    #[test]
    fn the_setup_steps_network_needs_trust_too() {
        let dir = tempfile::tempdir().unwrap();
        let (store, repo) = repo_with_config(
            dir.path(),
            "[env]\nsetup = [\"make deps\"]\n[env.network]\nmode = \"allowlist\"\n\
             allow = [\"registry.test\"]\nresolve = { \"registry.test\" = \"10.0.0.5\" }\n",
        );
        let view = repo_config(&store, &repo).unwrap();
        assert!(!view.usable());
        assert!(
            view.widens
                .iter()
                .any(|w| w == "setup steps' resolve: registry.test → 10.0.0.5"),
            "{:?}",
            view.widens
        );
    }

    #[test]
    fn a_file_that_asks_for_nothing_more_needs_no_trust() {
        let dir = tempfile::tempdir().unwrap();
        let (store, repo) = repo_with_config(
            dir.path(),
            "[network]\nmode = \"off\"\negress_budget = \"1MiB\"\n",
        );
        assert!(repo_config(&store, &repo).unwrap().usable());
        let p = repo_policy(&store, &repo, None, &[], &[], None).unwrap();
        assert_eq!((p.mode, p.egress_budget), (Mode::Off, Some(1 << 20)));
    }
}
