//! The warm pool: booted VMs waiting for attempts, so an attempt starts without a boot.
//!
//! Each pooled VM is owned by a slot process (`berth __pool-slot`, detached like a
//! supervisor) and has its own directory `<data>/pool/<name>/`: `share/` (empty; virtiofsd
//! serves it as the VM's /work), `sock` (where the slot waits for its attempt) and
//! `ready.json` once the VM is up. Its network bridge already points at the run directory
//! `<data>/run/<name>/`, where no proxy listens yet.
//!
//! Handing over (`hand_over`, called where a supervisor would be spawned): a ready slot of the
//! attempt's shape is claimed by renaming its `ready.json` (one claimant wins), asked whether
//! it is alive, the attempt is claimed in the database for the slot's process, the attempt's
//! fresh workspace is moved into the slot's empty `share/`, which is then renamed to the
//! attempt's `work/` (virtiofsd holds the directory itself, not its path), and the slot is told
//! the attempt's id. The slot binds the attempt's own proxy (its policy, its secrets' gateway)
//! at the socket its VM's bridge uses and runs the attempt as its supervisor. A VM serves one
//! attempt, ever: after it the slot removes its directory and exits; a new slot refills the
//! pool.
//!
//! A shape is everything a VM is booted with: memory, CPUs, a network device or not, and its
//! layers: the root layer when it is not the image's (an environment's, an agent's) and the
//! cache generation its throwaway cache overlay sits on, each with its file's identity. An
//! attempt takes only a VM of exactly its shape. After an attempt of a repo starts, its
//! supervisor refills the pool for that shape (the pool holds VMs for the environments in use)
//! and drains the repo's waiting VMs of an older environment or cache generation; a waiting VM
//! whose layer changed or whose cache generation is no longer current leaves by itself.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_db::{AttemptId, AttemptState};
use berth_vm::image::Image;
use berth_vm::{Hypervisor, RootLayer, RunningVm};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::task::{TaskError, VmSettings, audit, set_state};
use crate::{Clock, Store};

/// The setting: pooled VMs kept per shape (unset: [`machine_pool_size`]; 0: no pool).
pub const POOL_SETTING: &str = "pool";
/// The setting: a pooled VM's TCG translation cache, MiB (unset: a cold attempt's,
/// [`berth_vm::qemu::TCG_CACHE_MIB`]). It waits with what its boot translated in host
/// memory, up to this much (KVM has none); a smaller cache holds less while it waits, but
/// the attempt it serves then translates its code again and again (docs/benchmarks.md).
pub const POOL_TCG_CACHE_SETTING: &str = "pool-tcg-cache";
/// The smallest translation cache a pooled VM may have, MiB.
pub const MIN_POOL_TCG_CACHE_MIB: u32 = 8;
/// The most a user may ask for per shape.
pub const MAX_POOL: u32 = 16;
/// The setting: MiB of guest memory waiting VMs may hold in all (default: a quarter of the
/// host's memory, [`POOL_MEMORY_SHARE`]).
pub const POOL_MEMORY_SETTING: &str = "pool-memory";

/// What a pooled VM can serve: attempts with this memory, these CPUs, a network (or not),
/// and these layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolShape {
    pub memory_mib: u32,
    pub cpus: u32,
    pub network: bool,
    /// The root layer when it is not the image's: an environment's or an agent's.
    #[serde(default)]
    pub root: Option<PoolLayer>,
    /// The cache generation its throwaway cache overlay sits on.
    #[serde(default)]
    pub cache: Option<PoolLayer>,
}

impl PoolShape {
    /// A VM on the image's own root, without a cache disk.
    pub fn plain(memory_mib: u32, cpus: u32, network: bool) -> Self {
        Self {
            memory_mib,
            cpus,
            network,
            root: None,
            cache: None,
        }
    }

    /// Whether attempts would still boot on its layers: each file is the one it was (not
    /// rebuilt, not removed) and the cache generation is still the current one.
    fn current(&self) -> bool {
        self.root.as_ref().is_none_or(PoolLayer::unchanged)
            && self
                .cache
                .as_ref()
                .is_none_or(|c| c.unchanged() && crate::cache::is_current(&c.path))
    }

    /// Its layers must be where Berth keeps them: environments and agents' layers in the
    /// image store, cache generations in the caches' directory.
    fn check_layers(&self, store: &Store) -> Result<(), TaskError> {
        let inside = |l: &PoolLayer, dir: &Path| {
            let real = std::fs::canonicalize(&l.path).ok();
            let dir = std::fs::canonicalize(dir).ok();
            matches!((real, dir), (Some(r), Some(d)) if r.starts_with(&d))
                && (l.format == "raw" || l.format == "qcow2")
        };
        let images = store.data().images();
        let caches = store.data().root().join("caches");
        if self.root.as_ref().is_some_and(|l| !inside(l, &images))
            || self.cache.as_ref().is_some_and(|l| !inside(l, &caches))
        {
            return Err(TaskError::Refused(
                "a pooled VM's layers must be in Berth's image store and caches".into(),
            ));
        }
        Ok(())
    }
}

/// A disk a pooled VM boots on besides the image, with its file's identity (device, inode,
/// size, modification time): a layer rebuilt in place is another layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolLayer {
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: String,
    pub identity: String,
}

impl PoolLayer {
    fn of(layer: &RootLayer) -> Option<Self> {
        Some(Self {
            path: layer.path.clone(),
            format: layer.format.to_string(),
            identity: file_identity(&layer.path)?,
        })
    }

    fn root_layer(&self) -> RootLayer {
        RootLayer {
            path: self.path.clone(),
            format: if self.format == "qcow2" {
                "qcow2"
            } else {
                "raw"
            },
        }
    }

    fn unchanged(&self) -> bool {
        file_identity(&self.path).as_deref() == Some(self.identity.as_str())
    }
}

fn file_identity(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}:{}:{}.{}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// Whose attempts a pooled VM was made for (the repo and the agent); with a newer
/// environment or cache generation for them, it is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeFor {
    pub repo: PathBuf,
    pub agent: Option<String>,
}

/// What `__pool-slot` is started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotPlan {
    pub name: String,
    pub shape: PoolShape,
    pub made_for: Option<MadeFor>,
}

/// A slot as `berth pool ls` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotView {
    pub name: String,
    /// `booting`, `ready`, `serving` (handed to an attempt) or `gone` (its process died).
    pub state: String,
    pub shape: PoolShape,
    pub pid: u32,
    /// The attempt it serves, once handed over.
    pub attempt: Option<String>,
    /// Seconds since its VM was ready.
    pub ready_s: Option<u64>,
    /// The image it booted.
    pub image: String,
    /// The repo (and agent) whose attempt it was made after, if any.
    pub made_for: Option<MadeFor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlotFile {
    name: String,
    pid: u32,
    start: u64,
    shape: PoolShape,
    image: String,
    ready_at_ms: u64,
    attempt: Option<String>,
    /// The `berth` executable that started the slot (path, size, modification time): a VM
    /// made by another build of Berth is never handed an attempt.
    #[serde(default)]
    made_by: String,
    #[serde(default)]
    made_for: Option<MadeFor>,
    /// The image's directory and its root file's identity: the attempt's shape is computed
    /// on it, and an image rebuilt since is another image.
    #[serde(default)]
    image_dir: PathBuf,
    #[serde(default)]
    image_identity: String,
}

fn pool_dir(store: &Store) -> PathBuf {
    store.data().root().join("pool")
}

fn slot_dir(store: &Store, name: &str) -> PathBuf {
    pool_dir(store).join(name)
}

/// The pool size per shape (0: no pool): the setting, else [`machine_pool_size`].
pub fn pool_size(store: &Store) -> Result<u32, TaskError> {
    match store.db()?.setting(POOL_SETTING)? {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| TaskError::Refused(format!("the pool setting {v:?} is not a number"))),
        None => Ok(machine_pool_size(
            &berth_vm::accel::HostCpu::read(),
            host_cpus(),
            host_memory_mib(),
        )),
    }
}

/// The pool size this machine gets by default: with KVM, 1 VM per shape in use from 4 CPUs
/// and 8 GiB, 2 from 8 CPUs and 16 GiB; none on smaller machines, and none under TCG, where
/// a waiting VM still costs CPU time and host memory for its translations.
pub fn machine_pool_size(host: &berth_vm::accel::HostCpu, cpus: u32, memory_mib: u64) -> u32 {
    if berth_vm::accel::choose(host, None).accel != berth_vm::Accel::Kvm {
        return 0;
    }
    match (cpus, memory_mib) {
        (8.., 16_000..) => 2,
        (4.., 8_000..) => 1,
        _ => 0,
    }
}

fn host_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Sets the pool size per shape (0 turns the pool off; `berth pool drain` empties it).
pub fn set_pool_size(store: &Store, n: u32) -> Result<(), TaskError> {
    if n > MAX_POOL {
        return Err(TaskError::Refused(format!(
            "a pool of {n}: at most {MAX_POOL} VMs per shape"
        )));
    }
    store
        .db()?
        .set_setting(POOL_SETTING, Some(&n.to_string()))?;
    Ok(())
}

fn alive(pid: u32, start: u64) -> bool {
    berth_vm::rundir::start_time(pid) == Some(start)
}

fn read_slot(path: &Path) -> Option<SlotFile> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Every slot, with what its files and its process say.
pub fn list_slots(store: &Store) -> Result<Vec<SlotView>, TaskError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(pool_dir(store)) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let dir = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let (file, state) = if let Some(f) = read_slot(&dir.join("ready.json")) {
            (f, "ready")
        } else if let Some(f) = read_slot(&dir.join("claimed.json")) {
            (f, "serving")
        } else if let Some(f) = read_slot(&dir.join("booting.json")) {
            (f, "booting")
        } else {
            continue;
        };
        let state = if alive(file.pid, file.start) {
            state
        } else {
            "gone"
        };
        out.push(SlotView {
            name,
            state: state.into(),
            shape: file.shape,
            pid: file.pid,
            attempt: file.attempt,
            ready_s: (file.ready_at_ms > 0)
                .then(std::time::SystemTime::now)
                .and_then(|now| now.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| (d.as_millis() as u64).saturating_sub(file.ready_at_ms) / 1000),
            image: file.image,
            made_for: file.made_for,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Kills a slot's process group (its VM's QEMU and virtiofsd are in it) and removes its
/// directory. Only for a slot no attempt uses.
fn discard(store: &Store, name: &str, pid: u32, start: u64) {
    if alive(pid, start) {
        // SAFETY: signalling the process group of a process we started (setsid: pgid = pid).
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
    let _ = std::fs::remove_dir_all(slot_dir(store, name));
    remove_run_dir(store, name);
}

/// Removes a slot's run directory the way its VM's own teardown does: what it recorded
/// (QEMU, virtiofsd) killed if still running, its control group removed.
fn remove_run_dir(store: &Store, name: &str) {
    let dir = store.data().run().join(name);
    if dir.is_dir() {
        berth_vm::rundir::RunDir::open(dir).destroy();
    }
}

/// Removes what slots whose process is gone left (their directory and run directory); run
/// with every reconcile. Returns how many.
pub(crate) fn tidy(store: &Store) -> usize {
    let mut n = 0;
    for s in list_slots(store).unwrap_or_default() {
        if s.state == "gone" {
            let _ = std::fs::remove_dir_all(slot_dir(store, &s.name));
            remove_run_dir(store, &s.name);
            n += 1;
        }
    }
    n
}

/// Stops every slot that waits (not those serving attempts) and tidies dead ones. Returns
/// how many were drained.
pub fn drain(store: &Store) -> Result<usize, TaskError> {
    let mut n = 0;
    for s in list_slots(store)? {
        let dir = slot_dir(store, &s.name);
        match s.state.as_str() {
            // Claimed for draining, so no attempt can take it meanwhile.
            "ready"
                if std::fs::rename(dir.join("ready.json"), dir.join("drained.json")).is_ok() =>
            {
                let start = read_slot(&dir.join("drained.json")).map_or(0, |f| f.start);
                discard(store, &s.name, s.pid, start);
                n += 1;
            }
            "booting" => {
                let start = read_slot(&dir.join("booting.json")).map_or(0, |f| f.start);
                discard(store, &s.name, s.pid, start);
                n += 1;
            }
            "gone" => {
                let _ = std::fs::remove_dir_all(&dir);
                remove_run_dir(store, &s.name);
            }
            _ => {}
        }
    }
    Ok(n)
}

/// Starts slots until `shape` has the pool's size (live ones counted); returns how many
/// were started.
pub fn fill(berth: &Path, store: &Store, shape: &PoolShape) -> Result<usize, TaskError> {
    fill_for(berth, store, shape, None)
}

/// After attempt `rec` started (pooled or cold): its shape's pool refilled, and the waiting
/// VMs made for its repo and agent on another environment or cache generation drained (never
/// handed over: attempts no longer boot on those). Nothing when the pool is off.
pub(crate) fn refill_after(
    berth: &Path,
    store: &Store,
    image: &Image,
    rec: &berth_db::AttemptRecord,
    cpus: u32,
) -> Result<usize, TaskError> {
    if pool_size(store)? == 0 {
        return Ok(0);
    }
    let Some(shape) = shape_for(store, rec, cpus, image)? else {
        return Ok(0);
    };
    let made_for = MadeFor {
        repo: PathBuf::from(&rec.repo),
        agent: crate::task::attempt_agent(rec)?.map(|a| a.name),
    };
    for s in list_slots(store)? {
        let stale = s.made_for.as_ref() == Some(&made_for)
            && (s.shape.root != shape.root || s.shape.cache != shape.cache);
        if stale && s.state == "ready" {
            let dir = slot_dir(store, &s.name);
            if std::fs::rename(dir.join("ready.json"), dir.join("drained.json")).is_ok() {
                let start = read_slot(&dir.join("drained.json")).map_or(0, |f| f.start);
                discard(store, &s.name, s.pid, start);
            }
        }
    }
    fill_for(berth, store, &shape, Some(made_for))
}

fn fill_for(
    berth: &Path,
    store: &Store,
    shape: &PoolShape,
    made_for: Option<MadeFor>,
) -> Result<usize, TaskError> {
    let want = pool_size(store)? as usize;
    // One filler at a time: two attempts starting at once would each count the pool short.
    let _lock = fill_lock(store)?;
    let slots = list_slots(store)?;
    let waiting = |s: &&SlotView| s.state == "ready" || s.state == "booting";
    let have = slots
        .iter()
        .filter(waiting)
        .filter(|s| &s.shape == shape)
        .count();
    // Waiting VMs never take more than their share of the host's memory.
    let mut used: u64 = slots
        .iter()
        .filter(waiting)
        .map(|s| s.shape.memory_mib as u64)
        .sum();
    let budget = pool_budget(store);
    let mut started = 0;
    for _ in have..want {
        if used + shape.memory_mib as u64 > budget {
            break;
        }
        spawn_slot(berth, store, shape, made_for.clone())?;
        used += shape.memory_mib as u64;
        started += 1;
    }
    Ok(started)
}

/// The share of the host's memory waiting VMs may hold: a quarter (attempts get the rest).
pub const POOL_MEMORY_SHARE: f64 = 0.25;

fn pool_budget_mib(host_mib: u64) -> u64 {
    (host_mib as f64 * POOL_MEMORY_SHARE) as u64
}

/// MiB waiting VMs may hold: the `pool-memory` setting, else a quarter of the host's.
pub fn pool_budget(store: &Store) -> u64 {
    store
        .db()
        .ok()
        .and_then(|db| db.setting(POOL_MEMORY_SETTING).ok().flatten())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| pool_budget_mib(host_memory_mib()))
}

/// A pooled VM's TCG translation cache, MiB: the setting, else a cold attempt's.
pub fn pool_tcg_cache(store: &Store) -> u32 {
    store
        .db()
        .ok()
        .and_then(|db| db.setting(POOL_TCG_CACHE_SETTING).ok().flatten())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(berth_vm::qemu::TCG_CACHE_MIB, |m| {
            m.clamp(MIN_POOL_TCG_CACHE_MIB, berth_vm::qemu::TCG_CACHE_MIB)
        })
}

/// Sets a pooled VM's TCG translation cache (MiB, from [`MIN_POOL_TCG_CACHE_MIB`] to a cold
/// attempt's); `None` returns to a cold attempt's. VMs booted from then on get it.
pub fn set_pool_tcg_cache(store: &Store, mib: Option<u32>) -> Result<(), TaskError> {
    let most = berth_vm::qemu::TCG_CACHE_MIB;
    if let Some(m) = mib
        && !(MIN_POOL_TCG_CACHE_MIB..=most).contains(&m)
    {
        return Err(TaskError::Refused(format!(
            "a pooled VM's translation cache is {MIN_POOL_TCG_CACHE_MIB} to {most} MiB, not {m}"
        )));
    }
    store.db()?.set_setting(
        POOL_TCG_CACHE_SETTING,
        mib.map(|m| m.to_string()).as_deref(),
    )?;
    Ok(())
}

/// Sets the pool's memory budget (MiB); `None` returns to a quarter of the host's memory.
/// Waiting VMs beyond it leave within a second.
pub fn set_pool_budget(store: &Store, mib: Option<u64>) -> Result<(), TaskError> {
    store
        .db()?
        .set_setting(POOL_MEMORY_SETTING, mib.map(|m| m.to_string()).as_deref())?;
    Ok(())
}

/// Whether the waiting slot `name` is beyond the budget: waiting VMs are counted oldest
/// first, and the ones past the budget (the newest) go.
fn over_budget(store: &Store, name: &str) -> bool {
    let budget = pool_budget(store);
    let mut waiting: Vec<SlotView> = list_slots(store)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.state == "ready" || s.state == "booting")
        .collect();
    waiting.sort_by_key(|s| (std::cmp::Reverse(s.ready_s.unwrap_or(0)), s.name.clone()));
    let mut used = 0;
    for s in waiting {
        used += s.shape.memory_mib as u64;
        if s.name == name {
            return used > budget;
        }
    }
    false
}

/// The identity of a `berth` executable as a slot records it.
pub(crate) fn exe_stamp(exe: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(exe) {
        Ok(m) => format!("{}:{}:{}", exe.display(), m.len(), m.mtime()),
        Err(_) => exe.display().to_string(),
    }
}

/// Less than a tenth of the host's memory is available.
fn under_pressure() -> bool {
    let avail = meminfo("MemAvailable:");
    avail > 0 && avail < host_memory_mib() / 10
}

/// The host's memory, MiB (0 when unknown).
pub fn host_memory_mib() -> u64 {
    meminfo("MemTotal:")
}

/// A /proc/meminfo field, in MiB (0 when unknown).
fn meminfo(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// The fill lock (`<data>/pool/pool-filling.lock`), held while slots are counted and started.
fn fill_lock(store: &Store) -> Result<crate::env_build::EnvLock, TaskError> {
    let dir = pool_dir(store);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode_private()
        .create(&dir)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", dir.display())))?;
    crate::env_build::EnvLock::take(&dir, "pool-filling", "filling the pool", &mut |_| {})
}

fn new_slot_name() -> Result<String, TaskError> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| TaskError::Refused(format!("no randomness for a name: {e}")))?;
    Ok(format!(
        "pool-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Starts a slot process and, before returning (under the fill lock), records it as booting,
/// so the next count sees it.
fn spawn_slot(
    berth: &Path,
    store: &Store,
    shape: &PoolShape,
    made_for: Option<MadeFor>,
) -> Result<u32, TaskError> {
    let plan = SlotPlan {
        name: new_slot_name()?,
        shape: shape.clone(),
        made_for: made_for.clone(),
    };
    let dir = slot_dir(store, &plan.name);
    std::fs::DirBuilder::new()
        .mode_private()
        .create(&dir)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", dir.display())))?;
    let args: Vec<std::ffi::OsString> = vec![
        "__pool-slot".into(),
        "--plan".into(),
        serde_json::to_string(&plan).unwrap_or_default().into(),
    ];
    let pid = match crate::spawn::spawn_detached(berth, store, &args, "pool.log") {
        Ok(pid) => pid,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let file = SlotFile {
        name: plan.name,
        pid,
        start: berth_vm::rundir::start_time(pid).unwrap_or_default(),
        shape: shape.clone(),
        image: String::new(),
        ready_at_ms: 0,
        attempt: None,
        made_by: exe_stamp(berth),
        made_for,
        image_dir: PathBuf::new(),
        image_identity: String::new(),
    };
    // Only if the slot has not written its own yet.
    let booting = dir.join("booting.json");
    if !booting.exists() && !dir.join("ready.json").exists() {
        let _ = std::fs::write(
            dir.join("booting.fill"),
            serde_json::to_vec(&file).unwrap_or_default(),
        )
        .and_then(|_| std::fs::hard_link(dir.join("booting.fill"), &booting))
        .and_then(|_| std::fs::remove_file(dir.join("booting.fill")));
    }
    Ok(pid)
}

/// The shape attempt `rec` needs on `image`, or `None` when it cannot come from the pool
/// (its environment, cache disk or agent's layer is not built yet: it builds them cold).
fn shape_for(
    store: &Store,
    rec: &berth_db::AttemptRecord,
    cpus: u32,
    image: &Image,
) -> Result<Option<PoolShape>, TaskError> {
    let Some((root, cache)) = crate::task::built_layers(store, image, rec)? else {
        return Ok(None);
    };
    let layer = |l: Option<RootLayer>| match l {
        None => Some(None),
        Some(l) => PoolLayer::of(&l).map(Some),
    };
    let (Some(root), Some(cache)) = (layer(root), layer(cache)) else {
        return Ok(None);
    };
    let policy = crate::egress::attempt_policy(&rec.policy);
    let uses = crate::secrets::attempt_secrets(&rec.secrets);
    Ok(Some(PoolShape {
        memory_mib: rec.memory_mib,
        cpus: cpus.max(1),
        network: policy.mode != berth_egress::Mode::Off || !uses.is_empty(),
        root,
        cache,
    }))
}

fn ask(sock: &Path, line: &str, timeout: Duration) -> std::io::Result<String> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    Ok(answer)
}

/// Moves everything in `from` into the empty directory `into` (renames: same file system).
fn move_entries(from: &Path, into: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        std::fs::rename(e.path(), into.join(e.file_name()))?;
    }
    Ok(())
}

/// Hands created attempt `id` to a ready pooled VM of its shape, if there is one: returns
/// the pid of the slot process now supervising it. `None`: boot it cold. The shape is
/// computed on the slot's image; the slot was made by this very `berth` (so the image is the
/// one it boots) and the image's root file is the one the slot booted.
pub(crate) fn hand_over(
    berth: &Path,
    store: &Store,
    id: AttemptId,
    cpus: u32,
    clock: Clock,
) -> Result<Option<u32>, TaskError> {
    // Whatever waits is used (the size only says how many to keep waiting).
    if !pool_dir(store).is_dir() {
        return Ok(None);
    }
    let rec = store.db()?.attempt(id)?;
    if rec.state.is_live() {
        return Ok(None);
    }
    let work = store.workspace(id);
    for s in list_slots(store)? {
        if s.state != "ready" {
            continue;
        }
        let Some(waiting) = read_slot(&slot_dir(store, &s.name).join("ready.json")) else {
            continue;
        };
        let Ok(image) = Image::open(&waiting.image_dir) else {
            continue;
        };
        let Some(shape) = shape_for(store, &rec, cpus, &image)? else {
            continue;
        };
        if waiting.shape != shape {
            continue;
        }
        let dir = slot_dir(store, &s.name);
        // One claimant wins the rename; the others look at the next slot.
        if std::fs::rename(dir.join("ready.json"), dir.join("claimed.json")).is_err() {
            continue;
        }
        let Some(mut file) = read_slot(&dir.join("claimed.json")) else {
            continue;
        };
        // Its share must be as it was made, empty: anything in it (put there by anyone) and
        // the VM is not handed an attempt.
        let empty = std::fs::read_dir(dir.join("share")).is_ok_and(|mut d| d.next().is_none());
        // Made by another build of Berth (an upgrade since): its image or agent may not be
        // the one this Berth boots.
        let ours = file.made_by == exe_stamp(berth)
            && file.image_identity == file_identity(&image.rootfs()).unwrap_or_default();
        let fresh = empty
            && ours
            && file.shape.current()
            && alive(file.pid, file.start)
            && ask(&dir.join("sock"), "ping\n", Duration::from_secs(3))
                .is_ok_and(|a| a.trim() == "ready");
        if !fresh {
            // Dead or not answering: never handed an attempt.
            discard(store, &s.name, file.pid, file.start);
            continue;
        }
        // The attempt is this slot's from now on (one compare-and-set, as for a supervisor).
        let mut db = store.db()?;
        let (_, claimed) = db.update_attempt(id, |a| {
            if a.state.is_live() {
                return false;
            }
            a.supervisor_pid = Some(file.pid);
            a.supervisor_start = Some(file.start);
            a.exit_code = None;
            a.state = AttemptState::Booting;
            true
        })?;
        if !claimed {
            let _ = std::fs::rename(dir.join("claimed.json"), dir.join("ready.json"));
            return Ok(None);
        }
        let share = dir.join("share");
        let moved = give_to_share_owner(&work, &share)
            .and_then(|_| move_entries(&work, &share))
            .and_then(|_| std::fs::remove_dir(&work))
            .and_then(|_| std::fs::rename(&share, &work));
        let told = moved.and_then(|_| {
            file.attempt = Some(id.to_string());
            let _ = write_atomic(
                &dir.join("claimed.json"),
                &serde_json::to_vec(&file).unwrap_or_default(),
            );
            let _ = std::fs::write(store.attempt_dir(id).join("vm"), &s.name);
            ask(
                &dir.join("sock"),
                &format!("attempt {id}\n"),
                Duration::from_secs(10),
            )
        });
        match told {
            Ok(a) if a.trim() == "ok" => {
                set_state(
                    &mut db,
                    clock,
                    id,
                    AttemptState::Booting,
                    json!({"pool": s.name}),
                )?;
                audit(
                    &mut db,
                    clock,
                    id,
                    "pool",
                    json!({"vm": s.name, "memory_mib": shape.memory_mib, "cpus": shape.cpus, "network": shape.network}),
                )?;
                return Ok(Some(file.pid));
            }
            _ => {
                // The slot cannot take it: nothing of that VM may keep the workspace.
                discard(store, &s.name, file.pid, file.start);
                if !work.exists() && share.exists() {
                    let _ = std::fs::rename(&share, &work);
                }
                let _ = std::fs::remove_file(store.attempt_dir(id).join("vm"));
                db.update_attempt(id, |a| {
                    a.supervisor_pid = None;
                    a.supervisor_start = None;
                    a.state = AttemptState::Created;
                })?;
                return Ok(None);
            }
        }
    }
    Ok(None)
}

/// `berth run`'s way into the pool: hands created attempt `id` to a waiting VM of its shape,
/// to run without a terminal as `berth run`'s own attempts do (it follows the attempt's log;
/// see `Store::foreground_marker`). Returns the slot process's pid; `None`: boot it here.
pub fn hand_over_foreground(
    berth: &Path,
    store: &Store,
    id: AttemptId,
    cpus: u32,
    clock: Clock,
) -> Result<Option<u32>, TaskError> {
    if !pool_dir(store).is_dir() {
        return Ok(None);
    }
    let marker = store.foreground_marker(id);
    std::fs::write(&marker, b"")
        .map_err(|e| TaskError::Refused(format!("cannot write {}: {e}", marker.display())))?;
    let handed = hand_over(berth, store, id, cpus, clock);
    if !matches!(handed, Ok(Some(_))) {
        let _ = std::fs::remove_file(&marker);
    }
    handed
}

/// The workspace about to move into a slot's share is given to whoever owns the share (as
/// root, the slot's VM's uid, which its virtiofsd runs as; see `berth_vm::share_owner`).
/// Given while it is still where no guest sees it: the walk goes by path, so it must never run
/// on a tree a running guest could change under it.
fn give_to_share_owner(work: &Path, share: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(share)?;
    berth_vm::share_owner::own_tree(work, meta.uid(), meta.gid())
}

/// A slot process's life: boot a VM of `shape` on an empty share, wait (ready) until an
/// attempt is handed over or `stop` is set or the VM breaks, then supervise that attempt.
#[allow(clippy::too_many_arguments)]
pub fn run_slot<H: Hypervisor>(
    berth: &Path,
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    plan: SlotPlan,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<Option<AttemptState>, TaskError> {
    let SlotPlan {
        name,
        shape,
        made_for,
    } = plan;
    let dir = slot_dir(store, &name);
    let cleanup = |dir: &Path| {
        let _ = std::fs::remove_dir_all(dir);
    };
    if !name.starts_with("pool-")
        || !name[5..].bytes().all(|b| b.is_ascii_hexdigit())
        || name.len() != 13
    {
        return Err(TaskError::Refused(format!(
            "{name:?} is not a pool slot's name"
        )));
    }
    if let Err(e) = shape.check_layers(store) {
        cleanup(&dir);
        return Err(e);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode_private()
        .create(&dir)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", dir.display())))?;
    let share = dir.join("share");
    if share.exists() {
        return Err(TaskError::Refused(format!(
            "pool slot {name} exists already"
        )));
    }
    std::fs::DirBuilder::new()
        .mode_private()
        .create(&share)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", share.display())))?;
    let pid = std::process::id();
    let mut file = SlotFile {
        name: name.clone(),
        pid,
        start: berth_vm::rundir::start_time(pid).unwrap_or_default(),
        shape: shape.clone(),
        image: settings.image.id().to_string(),
        ready_at_ms: 0,
        attempt: None,
        made_by: exe_stamp(berth),
        made_for: made_for.clone(),
        image_dir: settings.image.dir.clone(),
        image_identity: file_identity(&settings.image.rootfs()).unwrap_or_default(),
    };
    let _ = write_atomic(
        &dir.join("booting.json"),
        &serde_json::to_vec(&file).unwrap_or_default(),
    );
    let spec = berth_vm::VmSpec {
        name: name.clone(),
        image: settings.image.clone(),
        share: Some(share.clone()),
        share_is_berths: true,
        memory_mib: shape.memory_mib,
        cpus: shape.cpus,
        accel: settings.accel,
        extra_kernel_args: Vec::new(),
        network: shape.network,
        root: shape.root.as_ref().map(PoolLayer::root_layer),
        cache: shape
            .cache
            .as_ref()
            .map(|c| berth_vm::CacheDisk::Overlay(c.root_layer())),
        tcg_cache_mib: Some(pool_tcg_cache(store)),
        // It waits: the kernel and initrd QEMU loaded are not held while it does.
        private_boot_files: true,
    };
    let mut session = match berth_vm::session::VmSession::boot(hv, &spec, &settings.boot) {
        Ok(s) => s,
        Err(e) => {
            cleanup(&dir);
            return Err(e.into());
        }
    };
    // A first command the way an attempt's runs (a shell under a terminal in /work): under
    // TCG this translates the guest's exec path once, here, not while an attempt waits.
    warm_up(&mut session.agent);
    let sock = dir.join("sock");
    let listener = UnixListener::bind(&sock)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|e| TaskError::Refused(format!("cannot listen on {}: {e}", sock.display())));
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            session.kill();
            cleanup(&dir);
            return Err(e);
        }
    };
    file.ready_at_ms = clock();
    let _ = write_atomic(
        &dir.join("ready.json"),
        &serde_json::to_vec(&file).unwrap_or_default(),
    );
    let _ = std::fs::remove_file(dir.join("booting.json"));
    let mut last_check = Instant::now();
    let mut broken = false;
    let attempt = loop {
        if stop.load(Ordering::SeqCst) {
            break None;
        }
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = Instant::now();
            if session.vm.as_mut().and_then(|vm| vm.problem()).is_some() {
                broken = true;
                break None;
            }
            if under_pressure() || over_budget(store, &name) {
                // The host needs its memory more than the pool does (or the user gave the
                // pool less of it): this VM goes.
                break None;
            }
            if !shape.current() {
                // Its environment was rebuilt or removed, or a newer cache generation was
                // published: attempts no longer boot on what it booted on.
                break None;
            }
            if !dir.join("ready.json").exists() && !dir.join("claimed.json").exists() {
                // Its record is gone (its data directory deleted, or drained by hand): no
                // claimant can find it any more.
                break None;
            }
        }
        // Woken the moment a claimant connects (a handoff waits on nothing else).
        let mut fds = [libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&listener),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd for the listener we own, for at most 200 ms.
        unsafe {
            libc::poll(fds.as_mut_ptr(), 1, 200);
        }
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break None,
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        let mut reader = BufReader::new(&conn);
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        let mut conn = &conn;
        let claimed = dir.join("claimed.json").exists();
        match line.trim().split_once(' ') {
            None if line.trim() == "ping" => {
                let _ = conn.write_all(if claimed || dir.join("ready.json").exists() {
                    b"ready\n"
                } else {
                    b"gone\n"
                });
            }
            Some(("attempt", id)) if claimed => match id.parse::<AttemptId>() {
                Ok(id) if store.workspace(id).is_dir() => {
                    let _ = conn.write_all(b"ok\n");
                    break Some(id);
                }
                _ => {
                    let _ = conn.write_all(b"no\n");
                }
            },
            _ => {
                let _ = conn.write_all(b"no\n");
            }
        }
    };
    drop(listener);
    let _ = std::fs::remove_file(&sock);
    let Some(id) = attempt else {
        // Not claimed first: a claimant that renamed ready.json meanwhile finds no answer.
        let _ = std::fs::remove_file(dir.join("ready.json"));
        session.kill();
        cleanup(&dir);
        if broken {
            // Its VM died while it waited: another takes its place.
            let _ = fill_for(berth, store, &shape, made_for);
        }
        return Ok(None);
    };
    // The pool refills in the background while this VM serves its one attempt.
    if let Ok(rec) = store.db().and_then(|db| db.attempt(id)) {
        let _ = refill_after(berth, store, &settings.image, &rec, shape.cpus);
    }
    let state = crate::supervisor::supervise_pooled(
        store,
        &settings.boot.run_root,
        &name,
        session,
        id,
        clock,
        stop,
    );
    cleanup(&dir);
    state.map(Some)
}

fn warm_up(agent: &mut berth_vm::agent::AgentClient) {
    struct Quiet;
    impl berth_vm::agent::ExecIo for Quiet {
        fn stdout(&mut self, _: &[u8]) {}
        fn stderr(&mut self, _: &[u8]) {}
        fn error(&mut self, _: &str) {}
    }
    // Under a terminal (what `task new` and the app run) and without one (`berth run`).
    for pty in [
        Some(berth_proto::WinSize { rows: 24, cols: 80 }),
        None,
        Some(berth_proto::WinSize { rows: 24, cols: 80 }),
    ] {
        let _ = agent.exec(
            berth_proto::ExecRequest {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo warm; ls -a /work >/dev/null".into(),
                ],
                env: Vec::new(),
                cwd: Some("/work".into()),
                user: None,
                pty,
            },
            &mut Quiet,
        );
    }
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::DirBuilder {
    fn mode_private(&mut self) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, 0o700)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(flags: &str, kvm: bool) -> berth_vm::accel::HostCpu {
        berth_vm::accel::HostCpu {
            cpuinfo: format!("flags\t\t: fpu {flags}\ncpu MHz\t\t: 2000.0\n"),
            kvm_device: if kvm { Ok(()) } else { Err("no".into()) },
        }
    }

    #[test]
    fn the_default_pool_is_sized_for_the_machine_and_off_without_kvm() {
        assert_eq!(machine_pool_size(&host("vmx", true), 8, 32_000), 2);
        assert_eq!(machine_pool_size(&host("svm", true), 4, 8_000), 1);
        assert_eq!(machine_pool_size(&host("vmx", true), 8, 8_000), 1);
        assert_eq!(machine_pool_size(&host("vmx", true), 2, 24_000), 0);
        assert_eq!(machine_pool_size(&host("vmx", true), 4, 4_000), 0);
        // A nested host without vmx/svm (TCG), or /dev/kvm closed: no pool by default.
        assert_eq!(machine_pool_size(&host("", true), 16, 64_000), 0);
        assert_eq!(machine_pool_size(&host("vmx", false), 16, 64_000), 0);
    }

    fn layer(path: &Path, format: &'static str) -> PoolLayer {
        PoolLayer::of(&RootLayer {
            path: path.to_path_buf(),
            format,
        })
        .unwrap()
    }

    #[test]
    fn a_shape_stops_being_current_when_its_layer_is_rebuilt_or_its_cache_generation_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.qcow2");
        std::fs::write(&root, "layer").unwrap();
        let cache_dir = dir.path().join("cache");
        std::fs::create_dir(&cache_dir).unwrap();
        std::fs::write(cache_dir.join("base.img"), "").unwrap();
        std::fs::write(cache_dir.join("gen-1.qcow2"), "1").unwrap();
        std::fs::write(cache_dir.join("current"), "gen-1.qcow2").unwrap();
        let mut shape = PoolShape::plain(512, 1, false);
        assert!(shape.current());
        shape.root = Some(layer(&root, "qcow2"));
        shape.cache = Some(layer(&cache_dir.join("gen-1.qcow2"), "qcow2"));
        assert!(shape.current());
        // A newer generation published: the VM on gen-1 is stale.
        std::fs::write(cache_dir.join("gen-2.qcow2"), "2").unwrap();
        std::fs::write(cache_dir.join("current"), "gen-2.qcow2").unwrap();
        assert!(!shape.current());
        shape.cache = Some(layer(&cache_dir.join("gen-2.qcow2"), "qcow2"));
        assert!(shape.current());
        // The environment rebuilt (another file renamed to the same path), then removed.
        std::fs::write(dir.path().join("new.qcow2"), "layer").unwrap();
        std::fs::rename(dir.path().join("new.qcow2"), &root).unwrap();
        assert!(!shape.current());
        shape.root = Some(layer(&root, "qcow2"));
        assert!(shape.current());
        std::fs::remove_file(&root).unwrap();
        assert!(!shape.current());
    }

    #[test]
    fn a_slot_boots_only_layers_from_the_image_store_and_the_caches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(crate::DataDir::new(dir.path().join("data")));
        let images = store.data().images();
        let caches = store.data().root().join("caches/r");
        std::fs::create_dir_all(images.join("envs/e")).unwrap();
        std::fs::create_dir_all(&caches).unwrap();
        let env = images.join("envs/e/root.qcow2");
        std::fs::write(&env, "").unwrap();
        std::fs::write(caches.join("base.img"), "").unwrap();
        let outside = dir.path().join("host-file");
        std::fs::write(&outside, "secret").unwrap();
        let mut shape = PoolShape::plain(512, 1, false);
        shape.root = Some(layer(&env, "qcow2"));
        shape.cache = Some(layer(&caches.join("base.img"), "raw"));
        shape.check_layers(&store).unwrap();
        // A host file as the root, through `..`, through a symlink, or as the cache.
        for bad in [
            outside.clone(),
            images.join("../../host-file"),
            images.join("envs/e/link"),
        ] {
            let _ = std::os::unix::fs::symlink(&outside, images.join("envs/e/link"));
            let mut s = shape.clone();
            s.root = Some(PoolLayer {
                path: bad.clone(),
                format: "raw".into(),
                identity: String::new(),
            });
            assert!(s.check_layers(&store).is_err(), "{}", bad.display());
        }
        let mut s = shape.clone();
        s.cache = Some(layer(&env, "qcow2"));
        assert!(s.check_layers(&store).is_err());
        let mut s = shape.clone();
        s.root.as_mut().unwrap().format = "vmdk".into();
        assert!(s.check_layers(&store).is_err());
    }
}
