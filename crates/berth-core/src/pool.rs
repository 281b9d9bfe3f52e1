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
//! pool. Attempts with an environment, a cache or an agent layer boot cold (their root disk is
//! not the image's).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_db::{AttemptId, AttemptState};
use berth_vm::{Hypervisor, RunningVm};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::task::{TaskError, VmSettings, audit, set_state};
use crate::{Clock, Store};

/// The setting: pooled VMs kept per shape (0, the default: no pool).
pub const POOL_SETTING: &str = "pool";
/// A pooled VM's TCG translation cache, MiB: it waits with what it translated in host
/// memory (KVM has none).
pub const POOL_TCG_CACHE_MIB: u32 = 32;
/// The most a user may ask for per shape.
pub const MAX_POOL: u32 = 16;
/// The setting: MiB of guest memory waiting VMs may hold in all (default: a quarter of the
/// host's memory, [`POOL_MEMORY_SHARE`]).
pub const POOL_MEMORY_SETTING: &str = "pool-memory";

/// What a pooled VM can serve: attempts with this memory, these CPUs and a network (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolShape {
    pub memory_mib: u32,
    pub cpus: u32,
    pub network: bool,
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
}

fn pool_dir(store: &Store) -> PathBuf {
    store.data().root().join("pool")
}

fn slot_dir(store: &Store, name: &str) -> PathBuf {
    pool_dir(store).join(name)
}

/// The pool size per shape (0: no pool).
pub fn pool_size(store: &Store) -> Result<u32, TaskError> {
    match store.db()?.setting(POOL_SETTING)? {
        Some(v) => v
            .trim()
            .parse::<u32>()
            .map_err(|_| TaskError::Refused(format!("the pool setting {v:?} is not a number"))),
        None => Ok(0),
    }
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
    let _ = std::fs::remove_dir_all(store.data().run().join(name));
}

/// Removes what slots whose process is gone left (their directory and run directory); run
/// with every reconcile. Returns how many.
pub(crate) fn tidy(store: &Store) -> usize {
    let mut n = 0;
    for s in list_slots(store).unwrap_or_default() {
        if s.state == "gone" {
            let _ = std::fs::remove_dir_all(slot_dir(store, &s.name));
            let _ = std::fs::remove_dir_all(store.data().run().join(&s.name));
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
                let _ = std::fs::remove_dir_all(store.data().run().join(&s.name));
            }
            _ => {}
        }
    }
    Ok(n)
}

/// Starts slots until `shape` has the pool's size (live ones counted); returns how many
/// were started.
pub fn fill(berth: &Path, store: &Store, shape: PoolShape) -> Result<usize, TaskError> {
    let want = pool_size(store)? as usize;
    let slots = list_slots(store)?;
    let waiting = |s: &&SlotView| s.state == "ready" || s.state == "booting";
    let have = slots
        .iter()
        .filter(waiting)
        .filter(|s| s.shape == shape)
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
        spawn_slot(berth, store, shape)?;
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

fn host_memory_mib() -> u64 {
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

fn spawn_slot(berth: &Path, store: &Store, shape: PoolShape) -> Result<u32, TaskError> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "__pool-slot".into(),
        "--memory".into(),
        shape.memory_mib.to_string().into(),
        "--cpus".into(),
        shape.cpus.to_string().into(),
    ];
    if shape.network {
        args.push("--network".into());
    }
    crate::spawn::spawn_detached(berth, store, &args, "pool.log")
}

/// The shape attempt `rec` needs, or `None` when it cannot come from the pool (its root disk
/// is an environment's or an agent's layer, or it asks for a CA in the guest).
fn shape_for(rec: &berth_db::AttemptRecord, cpus: u32) -> Result<Option<PoolShape>, TaskError> {
    if crate::task::attempt_env(rec)?.is_some() {
        return Ok(None);
    }
    if crate::task::attempt_agent(rec)?.is_some_and(|a| !a.fetch.is_empty()) {
        return Ok(None);
    }
    let policy = crate::egress::attempt_policy(&rec.policy);
    let uses = crate::secrets::attempt_secrets(&rec.secrets);
    Ok(Some(PoolShape {
        memory_mib: rec.memory_mib,
        cpus: cpus.max(1),
        network: policy.mode != berth_egress::Mode::Off || !uses.is_empty(),
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
/// the pid of the slot process now supervising it. `None`: boot it cold.
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
    let Some(shape) = shape_for(&rec, cpus)? else {
        return Ok(None);
    };
    let work = store.workspace(id);
    for s in list_slots(store)? {
        if s.state != "ready" || s.shape != shape {
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
        let ours = file.made_by == exe_stamp(berth);
        let fresh = empty
            && ours
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
        let moved = move_entries(&work, &share)
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

/// A slot process's life: boot a VM of `shape` on an empty share, wait (ready) until an
/// attempt is handed over or `stop` is set or the VM breaks, then supervise that attempt.
#[allow(clippy::too_many_arguments)]
pub fn run_slot<H: Hypervisor>(
    berth: &Path,
    store: &Store,
    hv: &H,
    settings: &VmSettings,
    shape: PoolShape,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> Result<Option<AttemptState>, TaskError> {
    let mut bytes = [0u8; 4];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| TaskError::Refused(format!("no randomness for a name: {e}")))?;
    let name = format!(
        "pool-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let dir = slot_dir(store, &name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode_private()
        .create(&dir)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", dir.display())))?;
    let share = dir.join("share");
    std::fs::DirBuilder::new()
        .mode_private()
        .create(&share)
        .map_err(|e| TaskError::Refused(format!("cannot create {}: {e}", share.display())))?;
    let pid = std::process::id();
    let mut file = SlotFile {
        name: name.clone(),
        pid,
        start: berth_vm::rundir::start_time(pid).unwrap_or_default(),
        shape,
        image: settings.image.id().to_string(),
        ready_at_ms: 0,
        attempt: None,
        made_by: exe_stamp(berth),
    };
    let cleanup = |dir: &Path| {
        let _ = std::fs::remove_dir_all(dir);
    };
    let _ = write_atomic(
        &dir.join("booting.json"),
        &serde_json::to_vec(&file).unwrap_or_default(),
    );
    let spec = berth_vm::VmSpec {
        name: name.clone(),
        image: settings.image.clone(),
        share: Some(share.clone()),
        memory_mib: shape.memory_mib,
        cpus: shape.cpus,
        accel: settings.accel,
        extra_kernel_args: Vec::new(),
        network: shape.network,
        root: None,
        cache: None,
        tcg_cache_mib: Some(POOL_TCG_CACHE_MIB),
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
            let _ = fill(berth, store, shape);
        }
        return Ok(None);
    };
    // The pool refills in the background while this VM serves its one attempt.
    let _ = fill(berth, store, shape);
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
    for _ in 0..2 {
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
                pty: Some(berth_proto::WinSize { rows: 24, cols: 80 }),
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
