//! Berth's domain and orchestration, shared by every front end (the `berth` CLI, later the
//! desktop app): tasks and attempts, their workspaces, VMs and results.
//!
//! This crate reads no environment variables, no `$HOME` and no wall clock: the binaries
//! resolve paths and pass a [`Clock`] in.

mod agent_install;
mod agent_layer;
mod agents;
mod approvals;
mod cache;
mod choose;
mod config;
mod data_dir;
mod demo;
mod display;
mod editor;
mod egress;
mod env;
mod env_activity;
mod env_build;
mod env_config;
mod env_status;
mod followup;
mod history;
mod id;
mod image_build;
mod input_wait;
pub mod limits;
mod live_changes;
mod live_diff;
mod output_log;
mod pool;
mod pty_sizes;
mod remove;
mod repo_test;
mod repos;
mod retry;
mod review;
mod secrets;
mod spawn;
mod stop;
mod store;
mod supervisor;
mod supervisor_client;
mod task;
#[cfg(test)]
mod test_repo;
mod trust;
mod walls;

pub use agent_install::{FetchKind, FetchSpec, Fetched, fetch_agent, find_fetched};
pub use agent_layer::{
    AGENTS_DIR, AgentLayer, ensure_agent_layer, install_agent, list_agent_layers,
};
pub use agents::{
    AgentPreset, AgentView, agent_command, agent_preset, agent_presets, choose_agent_version,
    list_agents, resolve_agent, with_agent_allow,
};
pub use approvals::{AnswerSlot, approver_from, record_approval};
pub use berth_db::{
    AttemptId, AttemptRecord, AttemptState, AuditEvent, Db, DbError, SecretRecord, TaskRecord,
};
pub use berth_egress::{Approval, Approver};
pub use berth_git::Merged;
pub use cache::{
    CacheView, cache_dir, cache_disk_usage, current_generation as current_cache_generation,
    list_caches, remove_cache,
};
pub use choose::{AttemptSummary, Chosen, choose_attempt, compare_task};
pub use config::{NetworkConfig, RepoConfig};
pub use data_dir::DataDir;
pub use demo::{demo_repo_dir, ensure_demo_repo};
pub use display::{
    approval_subject, approval_text, escape_controls, notification_text, table_cell,
};
pub use editor::{
    DEFAULT_EDITOR, EDITOR_CONFIRMED_SETTING, EDITOR_SETTING, Opened, confirm_editor_command,
    editor_command, editor_needing_confirmation, open_in_editor, set_editor_command,
};
pub use egress::{audit_sink, proxy_env, start_proxy};
pub use env::{
    CachePlan, EnvManifest, EnvOutcome, EnvPlan, LOCKFILES, ensure_env, env_memory, envs_dir,
    find_env, list_envs, plan_env, refresh_cache, remove_env,
};
pub use env_activity::{ActivityState, EnvActivity, env_activity};
pub use env_config::{
    CacheConfig, CachePreset, ENV_MEMORY_MIB, EnvConfig, attempt_memory, cache_env, cache_presets,
};
pub use env_status::{BuiltEnv, RepoEnvStatus, repo_env_status};
pub use followup::{MAX_PROMPT, check_startable, set_followup};
pub use history::{HISTORY_SETTING, MAX_HISTORY, check_history, history_depth, set_history_depth};
pub use id::random_id;
pub use image_build::{ImageBuild, build_image_in_background, image_build_status};
pub use live_changes::{LiveChanges, live_changes};
pub use output_log::{LogChunk, OUTPUT_CAP, open as open_output_log, read_from as read_log_from};
pub use pool::{
    MAX_POOL, MIN_POOL_TCG_CACHE_MIB, MadeFor, POOL_MEMORY_SETTING, POOL_SETTING,
    POOL_TCG_CACHE_SETTING, PoolLayer, PoolShape, SlotPlan, SlotView, drain as drain_pool,
    fill as fill_pool, hand_over_foreground, host_memory_mib, list_slots, machine_pool_size,
    pool_budget, pool_size, pool_tcg_cache, run_slot, set_pool_budget, set_pool_size,
    set_pool_tcg_cache,
};
pub use remove::{Removal, RemovalBlocker, removal_blocker, remove_attempt};
pub use repo_test::{TestPlan, TestResult, attempt_plan as attempt_test_plan};
pub use repos::{DEMO_AGENT, RepoView, add_repo, demo_applies, list_repos, remove_repo, repo_root};
pub use retry::{Retried, retry_attempt};
pub use review::compare_attempts;
pub use secrets::{
    Keyring, NewSecret, SecretUse, attempt_secrets, bind_secrets, gateway_url, keyring_for,
    keyring_in_use, list_secrets, parse_secret_spec, remove_secret, set_secret, use_keyring,
};
pub use spawn::{
    SuperviseOptions, install_agent_with_cli, rebuild_env_in_background, refresh_cache_after_pull,
    spawn_supervisor, spawn_supervisors,
};
pub use stop::{STOP_GRACE, stop_attempt};
pub use store::{Store, create_private_dir};
pub use supervisor::{STOPPED_BY_USER, supervise};
pub use supervisor_client::{ClientWriter, SupervisorClient, SupervisorError, connect_live};
pub use task::{
    NewTask, PreparedTask, Pulled, TaskError, Unpulled, VmSettings, attempt_request, audit,
    check_memory, diff_attempt, move_attempt_repo, prepare_task, pull_attempt, reconcile,
    run_attempt, set_state, unpulled_work,
};
pub use trust::{
    RepoConfigView, describe_policy, repo_config, repo_policy, trust_repo_config, widenings,
};
pub use walls::{Wall, host_walls};

// What front ends pass to and get from the core: types, not rules. Front ends depend on
// berth-core alone (a test checks their manifests), so a rule put here cannot be bypassed.
pub use berth_egress::host_addrs::interface_addresses as host_interface_addresses;
pub use berth_egress::{AllowRule, EgressEvent, Mode, Policy, parse_bytes};
pub use berth_git::{Limits, branches, init_repo_with_files};
pub use berth_proto::{ExecRequest, Message, WinSize};

/// The host machinery a front end sets up and hands to the core (which hypervisor, the
/// image, boot options, the guard and bridge processes, log files). No rule lives here.
pub mod host {
    pub use berth_vm::{
        Accel, CacheDisk, RootLayer, VmSpec, accel, agent, floor, guard, image, jail, logfile,
        qemu, rundir, session,
    };
}

/// The narrow, named path for `berth bench`, which measures the layers below the core
/// directly (the proxy alone, workspace creation and import alone).
pub mod bench {
    pub use berth_egress::EgressProxy;
    pub use berth_git::{BaseObjects, DEFAULT_HISTORY, Oid, collect, create_workspace, import};
}

/// The caller's clock: milliseconds since the Unix epoch.
pub type Clock = fn() -> u64;

/// Entry points for `cargo fuzz` (`fuzz/`): `berth.toml`, which an agent can write.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz {
    /// Parses and validates a `berth.toml`, then derives what it would ask for.
    pub fn berth_toml(text: &str) {
        if let Ok(c) = crate::config::parse(text) {
            let _ = crate::trust::widenings(&c);
            let _ = c.policy(None, &[], &[], None);
            if let Some(s) = &c.secrets {
                let _ = s.uses();
            }
        }
    }
}
