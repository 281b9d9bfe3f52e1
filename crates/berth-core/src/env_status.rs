//! A repo's environment and cache as a front end shows them: what `berth.toml` asks for,
//! whether that is built, what is being done about it now, and the cache disk.

use std::path::Path;

use serde::Serialize;

use crate::Store;
use crate::cache::CacheView;
use crate::env_activity::EnvActivity;

#[derive(Debug, Clone, Serialize)]
pub struct RepoEnvStatus {
    /// Whether `berth.toml` has `[env]` or `[cache]` (else attempts boot on the image).
    pub configured: bool,
    pub packages: Vec<String>,
    pub setup_steps: usize,
    pub cache_presets: Vec<String>,
    /// The environment built for the repo's HEAD as it is now, if any.
    pub built: Option<BuiltEnv>,
    /// What is being done, or was last (building, refreshing the cache; failed with why).
    pub activity: Option<EnvActivity>,
    pub cache: Option<CacheView>,
    /// Why the repo's environment cannot be planned (a bad or untrusted `berth.toml`).
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuiltEnv {
    pub id: String,
    pub image: String,
    pub built_at: u64,
    pub build_seconds: u64,
    pub size: u64,
}

/// The status of `repo`'s environment at its checked-out commit.
pub fn repo_env_status(store: &Store, repo: &Path) -> RepoEnvStatus {
    let mut status = RepoEnvStatus {
        configured: false,
        packages: Vec::new(),
        setup_steps: 0,
        cache_presets: Vec::new(),
        built: None,
        activity: crate::env_activity::env_activity(store, repo),
        cache: crate::cache::list_caches(store)
            .into_iter()
            .find(|c| c.repo == repo),
        problem: None,
    };
    match crate::env::plan_env(store, repo, "HEAD") {
        Ok(None) => {}
        Ok(Some(plan)) => {
            status.configured = true;
            status.packages = plan.packages.clone();
            status.setup_steps = plan.setup.len();
            status.cache_presets = plan.cache.map(|c| c.presets).unwrap_or_default();
            status.built = crate::env::list_envs(store)
                .into_iter()
                .find(|m| m.plan_id == plan.id)
                .map(|m| BuiltEnv {
                    id: m.plan.id[..12].to_string(),
                    image: m.image,
                    built_at: m.built_at,
                    build_seconds: m.build_seconds,
                    size: m.size,
                });
        }
        Err(e) => {
            status.configured = true;
            status.problem = Some(crate::display::escape_controls(&e.to_string()).into_owned());
        }
    }
    status
}
