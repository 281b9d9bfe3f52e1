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
    /// Guest MiB the repo's attempts get unless the user says (`--memory`); never below what
    /// their agent needs. Sizes a pooled VM too: what the environment needs, not more.
    pub memory: Option<Spanned<u32>>,
}

/// The guest memory an `[env]` may ask for, MiB.
pub const ENV_MEMORY_MIB: std::ops::RangeInclusive<u32> = 256..=32768;

/// Guest MiB for a task's attempts: the user's (`flag`), else the repo's `[env] memory`
/// raised to what the agent needs, else the agent's needs raised to `default`.
pub fn attempt_memory(flag: Option<u32>, env: Option<u32>, agent_needs: u32, default: u32) -> u32 {
    match (flag, env) {
        (Some(m), _) => m,
        (None, Some(e)) => e.max(agent_needs),
        (None, None) => agent_needs.max(default),
    }
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
        if let Some(m) = &self.memory
            && !ENV_MEMORY_MIB.contains(m.get_ref())
        {
            return bad(
                m.span(),
                "memory",
                format!(
                    "{} MiB is not between {} and {} (MiB of guest memory)",
                    m.get_ref(),
                    ENV_MEMORY_MIB.start(),
                    ENV_MEMORY_MIB.end()
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    #[test]
    fn the_users_memory_wins_then_the_environments_then_the_agents_needs() {
        assert_eq!(attempt_memory(Some(300), Some(2048), 1024, 512), 300);
        assert_eq!(attempt_memory(None, Some(384), 0, 512), 384);
        assert_eq!(attempt_memory(None, Some(384), 1024, 512), 1024);
        assert_eq!(attempt_memory(None, None, 1024, 512), 1024);
        assert_eq!(attempt_memory(None, None, 0, 512), 512);
    }

    #[test]
    fn an_environments_memory_out_of_range_names_its_line() {
        for (text, ok) in [
            ("[env]\nmemory = 384\n", true),
            ("[env]\nmemory = 64\n", false),
            ("[env]\nmemory = 999999\n", false),
        ] {
            let r = crate::config::parse(text).map(|c| c.env);
            assert_eq!(r.is_ok(), ok, "{text}: {r:?}");
            if let Err(e) = r {
                assert!(e.contains("line 2") && e.contains("env.memory"), "{e}");
            }
        }
    }
}

/// `[cache]`: what lives on the repo's cache disk, and how big it may get.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default)]
    pub presets: Vec<Spanned<String>>,
    pub size: Option<Spanned<String>>,
}

/// A cache preset: its name and the variables that point a tool at the cache disk.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePreset {
    pub name: String,
    pub vars: Vec<(String, String)>,
}

/// The cache presets Berth knows, from `provisioning/cache-presets.toml`.
pub fn cache_presets() -> &'static [CachePreset] {
    static PRESETS: std::sync::OnceLock<Vec<CachePreset>> = std::sync::OnceLock::new();
    PRESETS.get_or_init(|| {
        parse_presets(include_str!("../../../provisioning/cache-presets.toml"))
            .unwrap_or_else(|e| unreachable!("provisioning/cache-presets.toml: {e}"))
    })
}

/// Reads a presets file: one table per preset, each key a variable whose path is under
/// `/cache` (no `..`).
fn parse_presets(text: &str) -> Result<Vec<CachePreset>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    table
        .into_iter()
        .map(|(name, vars)| {
            let vars = vars
                .as_table()
                .ok_or_else(|| format!("{name}: not a table"))?
                .iter()
                .map(|(k, v)| match v.as_str() {
                    Some(p) if p.starts_with("/cache/") && !p.split('/').any(|c| c == "..") => {
                        Ok((k.clone(), p.to_string()))
                    }
                    _ => Err(format!("{name}.{k}: a path under /cache")),
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(CachePreset { name, vars })
        })
        .collect()
}

/// Default and bounds of the cache disk's size.
pub const DEFAULT_CACHE_BYTES: u64 = 8 << 30;
const MIN_CACHE_BYTES: u64 = 64 << 20;
const MAX_CACHE_BYTES: u64 = 1 << 40;

impl CacheConfig {
    pub fn presets(&self) -> Vec<String> {
        let mut p: Vec<String> = self.presets.iter().map(|s| s.get_ref().clone()).collect();
        p.sort();
        p.dedup();
        p
    }

    pub fn size(&self) -> u64 {
        self.size
            .as_ref()
            .and_then(|s| berth_egress::parse_bytes(s.get_ref()).ok())
            .unwrap_or(DEFAULT_CACHE_BYTES)
    }

    pub(crate) fn validate(&self, text: &str) -> Result<(), String> {
        let at = |span: std::ops::Range<usize>| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        };
        for (i, p) in self.presets.iter().enumerate() {
            if !cache_presets().iter().any(|c| &c.name == p.get_ref()) {
                let known: Vec<&str> = cache_presets().iter().map(|c| c.name.as_str()).collect();
                return Err(format!(
                    "berth.toml line {}: cache.presets[{i}]: '{}' is not a preset; Berth knows {}",
                    at(p.span()),
                    p.get_ref(),
                    known.join(", ")
                ));
            }
        }
        if let Some(s) = &self.size {
            let n = berth_egress::parse_bytes(s.get_ref())
                .map_err(|e| format!("berth.toml line {}: cache.size: {e}", at(s.span())))?;
            if !(MIN_CACHE_BYTES..=MAX_CACHE_BYTES).contains(&n) {
                return Err(format!(
                    "berth.toml line {}: cache.size: between 64MiB and 1TiB, not {}",
                    at(s.span()),
                    s.get_ref()
                ));
            }
        }
        Ok(())
    }
}

/// The environment variables that point tools at the cache disk for `presets`.
pub fn cache_env(presets: &[String]) -> Vec<(String, String)> {
    cache_presets()
        .iter()
        .filter(|c| presets.contains(&c.name))
        .flat_map(|c| c.vars.iter().cloned())
        .collect()
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
    fn cache_presets_and_size_are_checked() {
        let c = parse("[cache]\npresets = [\"pip\", \"cargo\"]\nsize = \"1GiB\"\n").unwrap();
        let cache = c.cache.unwrap();
        assert_eq!(cache.presets(), ["cargo", "pip"]);
        assert_eq!(cache.size(), 1 << 30);
        let vars = super::cache_env(&cache.presets());
        assert!(vars.contains(&("CARGO_HOME".into(), "/cache/cargo".into())));
        assert!(vars.contains(&("PIP_CACHE_DIR".into(), "/cache/pip".into())));
        let err = parse("[cache]\npresets = [\"maven\"]\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("maven"), "{err}");
        let err = parse("[cache]\nsize = \"1KiB\"\n").unwrap_err();
        assert!(err.contains("cache.size"), "{err}");
        let names: Vec<&str> = super::cache_presets()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["cargo", "go", "npm", "pip"]);
        let err = super::parse_presets("[x]\nA = \"/cache/../etc\"\n").unwrap_err();
        assert!(err.contains("x.A"), "{err}");
        let err = super::parse_presets("[x]\nA = \"/etc\"\n").unwrap_err();
        assert!(err.contains("x.A"), "{err}");
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
