//! Environments: what an attempt boots on when its repo's `berth.toml` has an `[env]`.
//!
//! An environment is the image plus the repo's Debian packages (a root filesystem built on
//! the host by mmdebstrap, so the guest needs no network for them) plus what the setup steps
//! left on the root disk (run once in a *setup VM*: as `agent` in `/work` of a fresh clone of
//! the base commit, with no secret and only the `[env.network]` policy). The result is a
//! read-only qcow2 layer keyed by the hash of everything that went in: the image, the suite,
//! the packages, the steps, their network policy, and the lockfiles the steps read. Every
//! attempt boots on it through its own throwaway overlay.
//!
//! ```text
//! <images>/envs/<id12>/manifest.json   what went in, when, how long it took
//! <images>/envs/<id12>/root.qcow2      the setup steps' result (over the package layer)
//! <images>/envs/layers/rootfs-*.img    package layers, shared by environments
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_egress::{Mode, Policy};
use berth_proto::ExecRequest;
use berth_vm::agent::ExecIo;
use berth_vm::image::{DEFAULT_RECIPE, ImageStore, build_rootfs_layer};
use berth_vm::session::VmSession;
use berth_vm::{Hypervisor, RootLayer, VmSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::task::{TaskError, VmSettings};
use crate::trust::repo_config;
use crate::{Clock, Store};

/// Files whose content decides what setup steps fetch: part of an environment's identity.
pub const LOCKFILES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "requirements.txt",
    "requirements-dev.txt",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "go.sum",
];

/// Free space an environment build needs on the images' disk before it starts.
const MIN_FREE_BYTES: u64 = 3 << 30;

/// Everything an environment is made of; its `id` is the hash of the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvPlan {
    pub id: String,
    pub suite: Option<String>,
    pub packages: Vec<String>,
    pub setup: Vec<String>,
    pub setup_policy: Policy,
    /// The cache disk: its presets and size (`None`: no cache disk).
    #[serde(default)]
    pub cache: Option<CachePlan>,
    /// The repo and commit the setup steps run on.
    pub repo: PathBuf,
    pub base: String,
}

/// `[cache]` as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePlan {
    pub presets: Vec<String>,
    pub size: u64,
}

impl EnvPlan {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// What `manifest.json` records about a built environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvManifest {
    #[serde(flatten)]
    pub plan: EnvPlan,
    /// The image the environment was built on.
    pub image: String,
    /// The read-only disk attempts boot on (relative to the environments' directory, which
    /// may be reached through another path later), and its format.
    pub layer: PathBuf,
    pub layer_format: String,
    pub built_at: u64,
    pub build_seconds: u64,
    /// Bytes on disk of this environment's own files (the package layer not counted).
    pub size: u64,
    /// The plan's id before the image went into it: what `plan_env` gives for the same
    /// repo state, on whichever image.
    #[serde(default)]
    pub plan_id: String,
}

impl EnvManifest {
    /// The environment's layer as a VM's root disk.
    pub fn root_layer(&self) -> RootLayer {
        RootLayer {
            path: self.layer.clone(),
            format: if self.layer_format == "qcow2" {
                "qcow2"
            } else {
                "raw"
            },
        }
    }
}

/// Where environments live (next to the images they are built on).
pub fn envs_dir(store: &Store) -> PathBuf {
    store.data().images().join("envs")
}

fn env_dir(store: &Store, id: &str) -> PathBuf {
    envs_dir(store).join(&id[..12])
}

/// The environment `repo`'s trusted `berth.toml` asks for at commit `base`; `None` when it
/// has no `[env]` (attempts boot on the image, which already has git, a C toolchain and
/// Python with pip and venv). Its id covers everything but the image, which
/// [`ensure_env`] adds.
/// The guest MiB the repo's `berth.toml` asks for its attempts (`[env] memory`), if any.
pub fn env_memory(store: &Store, repo: &Path) -> Result<Option<u32>, TaskError> {
    let view = repo_config(store, repo)?;
    Ok(view
        .config
        .env
        .as_ref()
        .and_then(|e| e.memory.as_ref())
        .map(|m| *m.get_ref()))
}

pub fn plan_env(store: &Store, repo: &Path, base: &str) -> Result<Option<EnvPlan>, TaskError> {
    let view = repo_config(store, repo)?;
    let cache = view.config.cache.as_ref().map(|c| CachePlan {
        presets: c.presets(),
        size: c.size(),
    });
    let none = crate::env_config::EnvConfig::default();
    let env = match (view.config.env.as_ref(), &cache) {
        (Some(env), _) => env,
        (None, Some(_)) => &none,
        (None, None) => return Ok(None),
    };
    if !view.usable() {
        return Err(TaskError::Refused(format!(
            "{}/berth.toml asks for more than Berth gives a guest by default:\n  {}\nRead it, \
             then run `berth config trust --repo {}`",
            repo.display(),
            view.widens.join("\n  "),
            repo.display()
        )));
    }
    let (suite, packages, setup) = (env.suite().map(str::to_string), env.packages(), env.setup());
    if suite.is_none() && packages.is_empty() && setup.is_empty() && cache.is_none() {
        return Ok(None);
    }
    let setup_policy = match &env.network {
        Some(net) => net
            .policy("env.network", None, &[], &[], None)
            .map_err(TaskError::Refused)?,
        None => Policy::default(),
    };
    let commit = berth_git::resolve_commit(repo, base)?;
    let locks = berth_git::files_at(repo, commit, LOCKFILES, 64 << 20)?;
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    part(b"berth env 1");
    // Per repo: the steps run on its files, and `env ls --repo` lists its own.
    part(repo.as_os_str().as_encoded_bytes());
    part(suite.as_deref().unwrap_or("").as_bytes());
    for p in &packages {
        part(p.as_bytes());
    }
    part(b"setup");
    for s in &setup {
        part(s.as_bytes());
    }
    part(
        serde_json::to_string(&setup_policy)
            .unwrap_or_default()
            .as_bytes(),
    );
    for (name, content) in &locks {
        part(name.as_bytes());
        part(content);
    }
    let id: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Some(EnvPlan {
        id,
        suite,
        packages,
        setup,
        setup_policy,
        cache,
        repo: repo.to_path_buf(),
        base: commit.to_string(),
    }))
}

/// The id of plan `plan_id` built on `image`: the same plan on another image (a new berth)
/// is another environment.
pub(crate) fn env_id_on(plan_id: &str, image: &berth_vm::image::Image) -> String {
    let mut h = Sha256::new();
    h.update(plan_id.as_bytes());
    h.update(image.manifest.hash.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The built environment with id `id`, if there is one (its layer as an absolute path).
pub fn find_env(store: &Store, id: &str) -> Option<EnvManifest> {
    let path = env_dir(store, id).join("manifest.json");
    let m = read_manifest(store, &path)?;
    (m.plan.id == id && m.layer.is_file()).then_some(m)
}

fn read_manifest(store: &Store, path: &Path) -> Option<EnvManifest> {
    let mut m: EnvManifest = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    m.layer = envs_dir(store).join(&m.layer);
    Some(m)
}

/// Every built environment, newest first.
pub fn list_envs(store: &Store) -> Vec<EnvManifest> {
    let mut out: Vec<EnvManifest> = std::fs::read_dir(envs_dir(store))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| read_manifest(store, &e.path().join("manifest.json")))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.built_at));
    out
}

/// Removes a built environment (by id or id prefix). Attempts that booted on it keep their
/// own overlay until they stop; new ones build it again.
pub fn remove_env(store: &Store, id_prefix: &str) -> Result<EnvManifest, TaskError> {
    let matches: Vec<EnvManifest> = list_envs(store)
        .into_iter()
        .filter(|m| m.plan.id.starts_with(id_prefix))
        .collect();
    match matches.as_slice() {
        [one] => {
            let dir = env_dir(store, &one.plan.id);
            std::fs::remove_dir_all(&dir)
                .map_err(|e| TaskError::Refused(format!("cannot remove {}: {e}", dir.display())))?;
            Ok(one.clone())
        }
        [] => Err(TaskError::Refused(format!(
            "no environment {id_prefix}; `berth env ls` lists them"
        ))),
        _ => Err(TaskError::Refused(format!(
            "{id_prefix} names {} environments; give more of the id",
            matches.len()
        ))),
    }
}

/// Whether [`ensure_env`] had to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvOutcome {
    Built,
    UpToDate,
}

/// The environment `plan` describes, built if missing: the package layer, then the setup
/// VM. `host` is what of the host goes into images (see `berth_vm::image::build_image`).
/// `progress` gets a line per stage and the steps' output (and the repo's activity record
/// gets them too). A failure keeps every other environment as it was and leaves nothing
/// half-built behind. With `again` it builds even when built (the app's Rebuild, `berth env
/// build --rebuild`): the setup steps run anew and, with `[cache]`, fill a new cache
/// generation; the built one stays until the new one is published.
#[allow(clippy::too_many_arguments)]
pub fn ensure_env<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    plan: &EnvPlan,
    host: &[u8],
    clock: Clock,
    progress: &mut dyn FnMut(&str),
    again: bool,
) -> Result<(EnvManifest, EnvOutcome), TaskError> {
    let plan_id = plan.id.clone();
    let mut plan = plan.clone();
    plan.id = env_id_on(&plan.id, &settings.image);
    let plan = &plan;
    if !again && let Some(m) = find_env(store, &plan.id) {
        return Ok((m, EnvOutcome::UpToDate));
    }
    std::fs::create_dir_all(envs_dir(store)).map_err(|e| {
        TaskError::Refused(format!("cannot create {}: {e}", envs_dir(store).display()))
    })?;
    let _lock = crate::env_build::EnvLock::take(
        &envs_dir(store),
        &plan.id,
        "building this environment",
        progress,
    )?;
    if !again && let Some(m) = find_env(store, &plan.id) {
        return Ok((m, EnvOutcome::UpToDate));
    }
    let what = format!("building environment {}", plan.short_id());
    crate::env_activity::journaled(store, &plan.repo, what, clock, progress, |progress| {
        let dir = env_dir(store, &plan.id);
        crate::env_build::check_free_space(&envs_dir(store), MIN_FREE_BYTES)?;
        let started = Instant::now();
        progress(&format!("environment {}: building", plan.short_id()));
        let images = ImageStore::new(store.data().images());
        let packages_layer = if plan.suite.is_some() || !plan.packages.is_empty() {
            progress("[1/2] packages");
            build_rootfs_layer(
                &images,
                &DEFAULT_RECIPE,
                host,
                plan.suite.as_deref(),
                &plan.packages,
                progress,
            )
            .map_err(|e| TaskError::Refused(format!("the environment's packages: {e}")))?
        } else {
            progress("[1/2] packages: none beyond the image's");
            settings.image.rootfs()
        };
        let staging =
            envs_dir(store).join(format!(".{}-{}.tmp", plan.short_id(), std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)
            .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", staging.display())))?;
        let built = build_layers(
            store,
            hv,
            settings,
            plan,
            &packages_layer,
            &staging,
            progress,
        );
        let (layer, format) = match built {
            Ok(x) => x,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        // The staged directory becomes the environment in one rename.
        let relative_layer = match &layer {
            Some(name) => PathBuf::from(plan.short_id()).join(name),
            None => PathBuf::from("layers").join(packages_layer.file_name().unwrap_or_default()),
        };
        let mut manifest = EnvManifest {
            plan: plan.clone(),
            image: settings.image.id(),
            layer: relative_layer,
            layer_format: format.into(),
            built_at: clock() / 1000,
            build_seconds: started.elapsed().as_secs(),
            size: crate::env_build::disk_usage(&staging),
            plan_id,
        };
        let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        // Whatever is at `dir` now is no usable environment (find_env said so): a leftover.
        let _ = std::fs::remove_dir_all(&dir);
        let publish = std::fs::write(staging.join("manifest.json"), json)
            .and_then(|_| std::fs::rename(&staging, &dir));
        manifest.layer = envs_dir(store).join(&manifest.layer);
        if let Err(e) = publish {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(TaskError::Refused(format!(
                "cannot publish {}: {e}",
                dir.display()
            )));
        }
        progress(&format!(
            "environment {}: built in {} s",
            plan.short_id(),
            manifest.build_seconds
        ));
        Ok((manifest, EnvOutcome::Built))
    })
}

/// The environment an attempt (or an agent install) boots on: built if missing, never
/// rebuilt, with the host's own image settings.
pub(crate) fn env_for_boot<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    plan: &EnvPlan,
    clock: Clock,
    progress: &mut dyn FnMut(&str),
) -> Result<EnvManifest, TaskError> {
    let host = settings.host.clone();
    ensure_env(store, hv, settings, plan, &host, clock, progress, false).map(|(m, _)| m)
}

/// Runs the setup steps (if any) in a setup VM on `packages_layer`; its root disk becomes
/// `staging/root.qcow2`. Returns the layer's file name in the environment (None: the package
/// layer itself is the environment) and its format.
#[allow(clippy::too_many_arguments)]
fn build_layers<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    plan: &EnvPlan,
    packages_layer: &Path,
    staging: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(Option<&'static str>, &'static str), TaskError> {
    if plan.setup.is_empty() {
        return Ok((None, "raw"));
    }
    progress(&format!(
        "[2/2] setup: {} step(s) in a setup VM",
        plan.setup.len()
    ));
    let root = RootLayer {
        path: packages_layer.to_path_buf(),
        format: "raw",
    };
    let layer = staging.join("root.qcow2");
    run_setup(store, hv, settings, plan, root, staging, &layer, progress)?;
    // Read-only from now on: attempts write their own overlays on it.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&layer, std::fs::Permissions::from_mode(0o444));
    Ok((Some("root.qcow2"), "qcow2"))
}

/// A new cache generation for `plan`'s repo: its setup steps run again in a setup VM on its
/// environment (built first if missing), on the current generation (`berth cache refresh`).
pub fn refresh_cache<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    plan: &EnvPlan,
    clock: Clock,
    progress: &mut dyn FnMut(&str),
) -> Result<(), TaskError> {
    if plan.cache.is_none() {
        return Err(TaskError::Refused(format!(
            "{} has no [cache] in its berth.toml",
            plan.repo.display()
        )));
    }
    let what = "refreshing the cache".to_string();
    crate::env_activity::journaled(store, &plan.repo, what, clock, progress, |progress| {
        let (env, _) = ensure_env(
            store,
            hv,
            settings,
            plan,
            &settings.host,
            clock,
            progress,
            false,
        )?;
        if plan.setup.is_empty() {
            return Err(TaskError::Refused(
                "[env] has no setup steps to fill the cache with".into(),
            ));
        }
        let staging = envs_dir(store).join(format!(".refresh-{}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)
            .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", staging.display())))?;
        let root = env.root_layer();
        // The root disk is not kept (the environment does not change); the cache disk is.
        let scratch = staging.join("root.qcow2");
        let done = run_setup(
            store, hv, settings, plan, root, &staging, &scratch, progress,
        );
        let _ = std::fs::remove_dir_all(&staging);
        done
    })
}

/// One setup VM: the steps as `agent` in /work of a fresh clone of the plan's base, on
/// `root`, with the setup network and (with `[cache]`) a new cache generation, published
/// when every step passed and the VM powered off cleanly. The VM's root disk is kept at
/// `keep_root`.
#[allow(clippy::too_many_arguments)]
fn run_setup<H: Hypervisor>(
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    plan: &EnvPlan,
    root: RootLayer,
    staging: &Path,
    keep_root: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), TaskError> {
    let work = staging.join("work");
    berth_git::create_workspace(&plan.repo, &plan.base, &work, false, 1)?;
    let name = format!("setup-{}-{}", plan.short_id(), std::process::id());
    let network = plan.setup_policy.mode != Mode::Off;
    // What the steps reached through the proxy, shown after each step.
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let sink: berth_egress::EventSink = {
        let seen = seen.clone();
        std::sync::Arc::new(move |ev: berth_egress::EgressEvent| {
            let line = format!(
                "      network: {} {} {}:{} ({})",
                ev.decision, ev.method, ev.host, ev.port, ev.rule
            );
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        })
    };
    let _proxy = crate::egress::start_proxy(
        &settings.boot.run_root,
        &name,
        &plan.setup_policy,
        sink,
        None,
        Vec::new(),
    )?;
    // With a cache disk, the steps fill a new generation over the current one.
    let next = match &plan.cache {
        Some(c) => Some(crate::cache::next_generation(
            store,
            &plan.repo,
            c.size,
            &settings.qemu_img,
        )?),
        None => None,
    };
    let spec = VmSpec {
        name,
        image: settings.image.clone(),
        share: Some(work.clone()),
        share_is_berths: true,
        memory_mib: settings.memory_mib.max(1024),
        cpus: settings.cpus,
        accel: settings.accel,
        extra_kernel_args: Vec::new(),
        network,
        root: Some(root),
        cache: next
            .as_ref()
            .map(|n| berth_vm::CacheDisk::Writable(n.path.clone())),
        tcg_cache_mib: None,
        private_boot_files: false,
    };
    let mut session = VmSession::boot(hv, &spec, &settings.boot)
        .map_err(|e| TaskError::Refused(format!("the setup VM did not boot: {e}")))?;
    let mut env = crate::egress::proxy_env(&plan.setup_policy);
    if let Some(c) = &plan.cache {
        env.extend(crate::env_config::cache_env(&c.presets));
    }
    for (i, step) in plan.setup.iter().enumerate() {
        progress(&format!("      $ {step}"));
        let mut io = StepOutput {
            progress: &mut *progress,
            tail: Vec::new(),
            partial: Vec::new(),
        };
        let request = ExecRequest {
            argv: vec!["sh".into(), "-c".into(), step.clone()],
            env: env.clone(),
            cwd: Some("/work".into()),
            user: None,
            pty: None,
        };
        let status = session.agent.exec(request, &mut io);
        io.flush();
        for line in seen.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            (io.progress)(&crate::display::escape_controls(&line));
        }
        let failed = match status {
            Ok(s) if s.shell_code() == 0 => None,
            Ok(s) => Some(format!("exited {}", s.shell_code())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(how) = failed {
            session.kill();
            return Err(TaskError::Refused(format!(
                "setup step {} `{step}` failed ({how}); its last output:\n{}\nThe previous \
                 environment, if any, is kept.",
                i + 1,
                io.tail.join("\n")
            )));
        }
    }
    session
        .shutdown_keeping_disk(keep_root)
        .map_err(|e| TaskError::Refused(format!("the setup VM's disk: {e}")))?;
    let _ = std::fs::remove_dir_all(&work);
    if let Some(next) = next {
        let in_use = attempts_running(store, &plan.repo);
        let n = crate::cache::publish_generation(next, &settings.qemu_img, in_use)?;
        progress(&format!("      cache: generation {n} published"));
    }
    Ok(())
}

/// A setup step's output: to the progress lines as they come, and the last lines kept.
pub(crate) struct StepOutput<'a> {
    progress: &'a mut dyn FnMut(&str),
    pub(crate) tail: Vec<String>,
    partial: Vec<u8>,
}

impl<'a> StepOutput<'a> {
    pub(crate) fn new(progress: &'a mut dyn FnMut(&str)) -> Self {
        StepOutput {
            progress,
            tail: Vec::new(),
            partial: Vec::new(),
        }
    }

    fn take(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            self.line(&line);
        }
        if self.partial.len() > 4096 {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }

    fn line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw).trim_end().to_string();
        let text = crate::display::escape_controls(&text).into_owned();
        (self.progress)(&format!("      {text}"));
        self.tail.push(text);
        if self.tail.len() > 20 {
            self.tail.remove(0);
        }
    }

    pub(crate) fn flush(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }
}

impl ExecIo for StepOutput<'_> {
    fn stdout(&mut self, data: &[u8]) {
        self.take(data);
    }
    fn stderr(&mut self, data: &[u8]) {
        self.take(data);
    }
    fn error(&mut self, message: &str) {
        self.line(format!("[guest agent: {message}]").as_bytes());
    }
}

/// Whether an attempt on `repo` is running (its cache overlay sits on a generation).
fn attempts_running(store: &Store, repo: &Path) -> bool {
    store
        .db()
        .and_then(|db| db.attempts())
        .map(|all| all.iter().any(|a| a.repo == repo && a.state.is_live()))
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use git2::Repository;

    use super::*;
    use crate::DataDir;

    fn commit(repo: &Path, files: &[(&str, &str)]) {
        crate::test_repo::commit_files(repo, files, "c");
    }

    #[test]
    fn the_id_follows_the_lockfiles_and_the_steps_but_not_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        Repository::init(&repo).unwrap();
        let store = Store::new(DataDir::new(dir.path().join("data")));
        let toml = "[env]\nsetup = [\"cargo fetch --locked\"]\n";
        commit(
            &repo,
            &[("berth.toml", toml), ("Cargo.lock", "v1"), ("src.rs", "a")],
        );
        let id = |store: &Store| plan_env(store, &repo, "HEAD").unwrap().unwrap().id;
        let first = id(&store);
        commit(&repo, &[("src.rs", "b")]);
        assert_eq!(id(&store), first, "a source change rebuilds nothing");
        commit(&repo, &[("Cargo.lock", "v2")]);
        let second = id(&store);
        assert_ne!(second, first, "new lockfile, new environment");
        commit(
            &repo,
            &[("berth.toml", "[env]\nsetup = [\"cargo fetch\"]\n")],
        );
        assert_ne!(id(&store), second);
        commit(&repo, &[("berth.toml", "[network]\nmode = \"off\"\n")]);
        assert!(plan_env(&store, &repo, "HEAD").unwrap().is_none());
    }
}
