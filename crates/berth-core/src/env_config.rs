//! `[env]` in `berth.toml`: what the attempts' environment is made of. Validated like
//! `[network]`: unknown keys are refused, and a bad value names its line and key.
//!
//! The file is the repo's word (an agent can write it). What it can ask for here: Debian
//! packages (from the host's own apt sources, installed on the host side, no package script
//! runs on the host: mmdebstrap runs them inside the new root), setup steps (run in a VM that
//! holds no secret), and the setup steps' network, which widens a guest's reach and so
//! needs the user's trust like `[network]` (see `trust.rs`).

use serde::Deserialize;
use toml::Spanned;

use crate::config::NetworkConfig;

/// Most packages and setup steps one `[env]` may name.
const MAX_PACKAGES: usize = 200;
const MAX_STEPS: usize = 32;
const MAX_STEP_BYTES: usize = 4096;

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// The Debian release of the guest (default: the host's).
    pub suite: Option<Spanned<String>>,
    #[serde(default)]
    pub packages: Vec<Spanned<String>>,
    #[serde(default)]
    pub setup: Vec<Spanned<String>>,
    /// The setup steps' network; off unless given (and trusted).
    pub network: Option<NetworkConfig>,
}

impl EnvConfig {
    pub fn suite(&self) -> Option<&str> {
        self.suite.as_ref().map(|s| s.get_ref().as_str())
    }

    /// The packages, sorted and without repeats (their order changes nothing).
    pub fn packages(&self) -> Vec<String> {
        let mut p: Vec<String> = self.packages.iter().map(|s| s.get_ref().clone()).collect();
        p.sort();
        p.dedup();
        p
    }

    pub fn setup(&self) -> Vec<String> {
        self.setup.iter().map(|s| s.get_ref().clone()).collect()
    }

    /// Checks every value; `text` is the file, to name the line of a bad one.
    pub(crate) fn validate(&self, text: &str) -> Result<(), String> {
        let at = |span: std::ops::Range<usize>| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        };
        let bad = |span, key: &str, why: String| {
            Err(format!("berth.toml line {}: env.{key}: {why}", at(span)))
        };
        if let Some(s) = &self.suite
            && !is_suite(s.get_ref())
        {
            return bad(
                s.span(),
                "suite",
                format!("'{}' is not a Debian release name", s.get_ref()),
            );
        }
        if self.packages.len() > MAX_PACKAGES {
            return Err(format!(
                "berth.toml: env.packages: more than {MAX_PACKAGES} packages"
            ));
        }
        for (i, p) in self.packages.iter().enumerate() {
            if !is_package(p.get_ref()) {
                return bad(
                    p.span(),
                    &format!("packages[{i}]"),
                    format!(
                        "'{}' is not a Debian package name (lowercase letters, digits, + - .)",
                        p.get_ref()
                    ),
                );
            }
        }
        if self.setup.len() > MAX_STEPS {
            return Err(format!(
                "berth.toml: env.setup: more than {MAX_STEPS} steps"
            ));
        }
        for (i, step) in self.setup.iter().enumerate() {
            let s = step.get_ref();
            if s.trim().is_empty() || s.len() > MAX_STEP_BYTES || s.contains('\0') {
                return bad(
                    step.span(),
                    &format!("setup[{i}]"),
                    format!("a step is one shell command line of at most {MAX_STEP_BYTES} bytes"),
                );
            }
        }
        if let Some(net) = &self.network {
            net.policy("env.network", None, &[], &[], None)?;
        }
        Ok(())
    }
}

/// `bookworm`, `trixie`, `stable`, `sid`: a word apt knows a release by.
fn is_suite(s: &str) -> bool {
    (2..=32).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Debian policy 5.6.1: at least two characters, lowercase letters, digits, `+ - .`,
/// starting with a letter or digit.
fn is_package(s: &str) -> bool {
    s.len() >= 2
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use crate::config::parse;

    #[test]
    fn an_env_section_reads_and_sorts_its_packages() {
        let c = parse(
            "[env]\nsuite = \"trixie\"\npackages = [\"jq\", \"cargo\", \"jq\"]\n\
             setup = [\"cargo fetch --locked\"]\n[env.network]\nmode = \"allowlist\"\n\
             allow = [\"registry.test\"]\n",
        )
        .unwrap();
        let env = c.env.unwrap();
        assert_eq!(env.suite(), Some("trixie"));
        assert_eq!(env.packages(), ["cargo", "jq"]);
        assert_eq!(env.setup(), ["cargo fetch --locked"]);
        assert!(env.network.is_some());
    }

    #[test]
    fn mistakes_in_env_name_the_line_and_the_key() {
        for (text, line, key) in [
            (
                "[env]\npackages = [\"ok\",\n  \"Bad Name\"]\n",
                "line 3",
                "packages[1]",
            ),
            ("[env]\n\nsuite = \"../etc\"\n", "line 3", "suite"),
            ("[env]\nsetup = [\"\"]\n", "line 2", "setup[0]"),
            ("[env]\npackages = [\"x;rm\"]\n", "line 2", "packages[0]"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(line) && err.contains(key), "{text:?}: {err}");
        }
        let err = parse("[env]\npackage = []\n").unwrap_err();
        assert!(err.contains("package") && err.contains("line 2"), "{err}");
        let err = parse("[env.network]\nmode = \"off\"\nallow = [\"a.test\"]\n").unwrap_err();
        assert!(err.contains("env.network"), "{err}");
    }
}
