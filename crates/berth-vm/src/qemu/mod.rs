//! The QEMU backend: `microvm`, direct kernel boot, a qcow2 overlay over the read-only base
//! image, virtiofs for `/work`, a virtio-serial port for the agent, QMP for control.

pub(crate) mod args;
pub use args::TCG_CACHE_MIB;
mod qmp;
mod spawn;
pub mod version;
pub mod virtiofsd;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use args::{Bridge, GUEST_PROXY, kernel_cmdline, qemu_args};
pub use virtiofsd::Sandbox;

use crate::guard::{GuardHandle, spawn_guard};
use crate::{
    Accel, AgentChannel, Capabilities, Hypervisor, RunDir, RunningVm, VmError, VmSpec, VmStatus,
};

/// Where the QEMU backend finds its programs; the binary resolves these.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub qemu: PathBuf,
    pub qemu_img: PathBuf,
    pub virtiofsd: PathBuf,
    /// Host TSC in kHz, passed to TCG guests (see `accel::HostCpu::tsc_khz`).
    pub tsc_khz: Option<u64>,
    /// Program and leading arguments that run [`crate::guard::run_guard`] on a run dir.
    pub guard: Option<(PathBuf, Vec<String>)>,
    /// The per-connection bridge into the egress proxy (needed for VMs with a network).
    pub bridge: Option<Bridge>,
    /// Whether virtiofsd may run without a sandbox when namespaces and chroot fail (the
    /// user's explicit opt-in; see [`virtiofsd::UNSANDBOXED_OPT_IN`]).
    pub allow_unsandboxed_share: bool,
    /// Berth's own executable: QEMU then starts inside a Landlock jail (see [`crate::jail`])
    /// limited to its image, layers and run directory. `None`: no jail (tests of the VM
    /// layer alone).
    pub jail: Option<PathBuf>,
}

pub struct Qemu {
    config: QemuConfig,
}

impl Qemu {
    pub fn new(config: QemuConfig) -> Self {
        Self { config }
    }
}

impl Hypervisor for Qemu {
    type Vm = QemuVm;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            accels: vec![Accel::Kvm, Accel::Tcg],
            virtiofs: true,
            agent_channel: AgentChannel::VirtioSerial,
        }
    }

    fn create(&self, spec: &VmSpec, run_root: &Path) -> Result<RunDir, VmError> {
        let dir = RunDir::create(run_root, &spec.name)?;
        // Always a fresh overlay: one left behind (a crashed attempt's modified root, or one
        // planted with its backing file pointing at any host file) is never booted.
        let _ = std::fs::remove_file(dir.overlay());
        let partial = dir.path().join("overlay.qcow2.partial");
        let root = match &spec.root {
            Some(layer) => layer.clone(),
            None => crate::RootLayer {
                path: spec.image.rootfs(),
                format: "raw",
            },
        };
        self.overlay_on(&root, &partial)?;
        std::fs::rename(&partial, dir.overlay())
            .map_err(|e| VmError::io("cannot create", &dir.overlay(), e))?;
        if let Some(crate::CacheDisk::Overlay(generation)) = &spec.cache {
            self.overlay_on(generation, &dir.cache_overlay())?;
        }
        Ok(dir)
    }

    fn start(&self, spec: &VmSpec, dir: RunDir) -> Result<QemuVm, VmError> {
        let mut vm = QemuVm {
            dir,
            qemu: None,
            virtiofsd: None,
            guard: None,
            sandbox: None,
            cgroup: None,
            boot_copies: Vec::new(),
            done: false,
        };
        // From here on, dropping `vm` on an error tears down whatever was started.
        if spec.private_boot_files {
            for (from, to) in [
                (spec.image.kernel(), vm.dir.boot_kernel()),
                (spec.image.initrd(), vm.dir.boot_initrd()),
            ] {
                std::fs::copy(&from, &to).map_err(|e| VmError::io("cannot copy", &from, e))?;
                vm.boot_copies.push(to);
            }
        }
        let t0 = Instant::now();
        if let Some((exe, args)) = &self.config.guard {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            vm.guard = Some(spawn_guard(exe, &args, &vm.dir)?);
        }
        tracing::debug!("guard started after {:?}", t0.elapsed());
        if let Some(share) = &spec.share {
            let as_uid = spec
                .share_is_berths
                .then(|| crate::jail::helpers_uid(&spec.name))
                .flatten();
            let (child, sandbox) = virtiofsd::spawn(
                &self.config.virtiofsd,
                share,
                &vm.dir,
                self.config.allow_unsandboxed_share,
                as_uid,
            )?;
            tracing::debug!("virtiofsd ready after {:?}", t0.elapsed());
            vm.virtiofsd = Some(child);
            vm.sandbox = Some(sandbox);
        }
        // Sockets left by an earlier QEMU would read as "ready" below: gone first.
        for stale in [
            vm.dir.agent_socket(),
            vm.dir.qmp_socket(),
            vm.dir.console_socket(),
        ] {
            let _ = std::fs::remove_file(stale);
        }
        let console = listen_console(&vm.dir)?;
        let log_path = vm.dir.log("qemu");
        let log =
            File::create(&log_path).map_err(|e| VmError::io("cannot create", &log_path, e))?;
        let mut cmd = match &self.config.jail {
            Some(exe) => {
                let mut jail = vm_jail(spec, vm.dir.path(), &self.config.qemu, exe);
                vm.cgroup = vm_cgroup(spec, &vm.dir);
                if let Some(cg) = &vm.cgroup {
                    jail.cgroups = cg.procs_files();
                }
                jail.command(exe, &self.config.qemu)
            }
            None => Command::new(&self.config.qemu),
        };
        if spec.network && self.config.bridge.is_none() {
            return Err(VmError::Config(
                "a VM with a network needs the egress bridge program".into(),
            ));
        }
        cmd.args(qemu_args(
            spec,
            &vm.dir,
            self.config.tsc_khz,
            self.config.bridge.as_ref(),
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        spawn::detach_from_terminal(&mut cmd);
        let child = cmd.spawn().map_err(|e| VmError::Spawn {
            program: "qemu",
            detail: format!("{}: {e}", self.config.qemu.display()),
        })?;
        vm.dir.record_pid("qemu", child.id())?;
        vm.qemu = Some(child);
        copy_console(console, vm.dir.console_log());
        // QEMU creates its sockets before it starts the guest; wait for them or its exit.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !vm.dir.agent_socket().exists() || !vm.dir.qmp_socket().exists() {
            if let Some(status) = vm.qemu_exit() {
                return Err(VmError::Spawn {
                    program: "qemu",
                    detail: format!("exited {status}: {}", vm.qemu_log_tail()),
                });
            }
            if Instant::now() > deadline {
                return Err(VmError::Spawn {
                    program: "qemu",
                    detail: "made no sockets within 10 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tracing::debug!("QEMU sockets ready after {:?}", t0.elapsed());
        Ok(vm)
    }
}

impl Qemu {
    /// A fresh qcow2 overlay at `to` on the read-only `layer`. The overlay records its
    /// backing file's path: the real one, not one through a symlink that may be gone when the
    /// overlay (an environment's layer) is next used.
    fn overlay_on(&self, layer: &crate::RootLayer, to: &Path) -> Result<(), VmError> {
        let backing = layer
            .path
            .canonicalize()
            .map_err(|e| VmError::io("cannot find the disk", &layer.path, e))?;
        let _ = std::fs::remove_file(to);
        let out = Command::new(&self.config.qemu_img)
            .args(["create", "-q", "-f", "qcow2", "-F", layer.format, "-b"])
            .arg(&backing)
            .arg(to)
            .output()
            .map_err(|e| VmError::Spawn {
                program: "qemu-img",
                detail: format!("{}: {e}", self.config.qemu_img.display()),
            })?;
        if !out.status.success() {
            return Err(VmError::Spawn {
                program: "qemu-img",
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }
}

/// Most bytes of the guest console kept on the host (twice this, in two files).
const CONSOLE_CAP: u64 = 1 << 20;

/// Listens where QEMU will connect its serial console (before QEMU starts).
fn listen_console(dir: &RunDir) -> Result<std::os::unix::net::UnixListener, VmError> {
    let path = dir.console_socket();
    std::os::unix::net::UnixListener::bind(&path)
        .map_err(|e| VmError::io("cannot listen on", &path, e))
}

/// Copies the console QEMU connects into a capped log, on a thread of its own that ends
/// when QEMU closes the console (or never connects within 30 s).
fn copy_console(listener: std::os::unix::net::UnixListener, log: std::path::PathBuf) {
    std::thread::spawn(move || {
        let _ = listener.set_nonblocking(true);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => return,
            }
        };
        let _ = conn.set_nonblocking(false);
        if let Ok(mut out) = crate::logfile::RotatingLog::open(&log, CONSOLE_CAP) {
            let _ = std::io::copy(&mut conn, &mut out);
        }
    });
}

/// A running QEMU VM. Dropping it without [`RunningVm::stop`] kills everything at once.
pub struct QemuVm {
    dir: RunDir,
    qemu: Option<Child>,
    virtiofsd: Option<Child>,
    guard: Option<GuardHandle>,
    sandbox: Option<Sandbox>,
    /// QEMU's control group (see [`crate::cgroup`]), when the host gives one.
    cgroup: Option<crate::cgroup::VmCgroup>,
    /// The VM's own kernel and initrd (`VmSpec::private_boot_files`), emptied once it booted.
    boot_copies: Vec<PathBuf>,
    done: bool,
}

impl QemuVm {
    pub fn run_dir(&self) -> &RunDir {
        &self.dir
    }

    /// The virtiofsd sandbox in use, if the VM has a share.
    pub fn sandbox(&self) -> Option<Sandbox> {
        self.sandbox
    }

    /// QEMU's exit status if it has exited.
    pub fn qemu_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.qemu.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn qemu_log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.log("qemu")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    fn wait_qemu(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.qemu.is_none() || self.qemu_exit().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn teardown(&mut self, grace: Duration) {
        if !self.wait_qemu(grace) {
            tracing::info!("VM did not power off within {grace:?}; asking QEMU to quit");
            let _ = qmp::quit(&self.dir.qmp_socket());
            if !self.wait_qemu(Duration::from_secs(3)) {
                tracing::warn!("QEMU did not quit; killing it");
                if let Some(c) = self.qemu.as_mut() {
                    let _ = c.kill();
                }
            }
        }
        for child in [self.qemu.take(), self.virtiofsd.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        self.dir.destroy();
        // The group the VM was made with, even if the run directory's record of it is gone
        // (a data directory deleted under a running VM).
        if let Some(cg) = self.cgroup.take() {
            cg.remove();
        }
        if let Some(g) = self.guard.take() {
            g.release();
        }
        self.done = true;
    }
}

/// Frees a file's blocks (and its pages in memory, wherever they are mapped) while keeping
/// its size: a reader sees zeros, never a SIGBUS as past a truncation.
fn punch_out(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    let len = f.metadata()?.len() as libc::off_t;
    // SAFETY: fallocate on a descriptor we own, with a range inside the file.
    let rc = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl RunningVm for QemuVm {
    fn booted(&mut self) {
        // QEMU copied them into guest memory before the guest ran; it maps them still only
        // to copy them again on a reset, and -no-reboot makes a reset QEMU's exit.
        for copy in std::mem::take(&mut self.boot_copies) {
            if let Err(e) = punch_out(&copy) {
                tracing::info!("cannot free {} after boot: {e}", copy.display());
            }
        }
    }

    fn agent_socket(&self) -> PathBuf {
        self.dir.agent_socket()
    }

    fn console_log(&self) -> PathBuf {
        self.dir.console_log()
    }

    fn has_exited(&mut self) -> bool {
        self.qemu_exit().is_some()
    }

    fn problem(&mut self) -> Option<String> {
        if let Some(status) = self.qemu_exit() {
            if self.cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0) {
                return Some(format!(
                    "QEMU exited ({status}): the kernel killed it for going over its memory \
                     limit (guest memory, its translation cache and {} MiB)",
                    crate::cgroup::HEADROOM_MIB
                ));
            }
            return Some(format!("QEMU exited ({status})"));
        }
        if let Some(Ok(Some(status))) = self.virtiofsd.as_mut().map(|c| c.try_wait()) {
            return Some(format!("virtiofsd, which serves /work, exited ({status})"));
        }
        None
    }

    fn status(&mut self) -> Result<VmStatus, VmError> {
        if self.qemu_exit().is_some() {
            return Ok(VmStatus::Exited);
        }
        qmp::status(&self.dir.qmp_socket())
    }

    fn stop(mut self, grace: Duration) {
        self.teardown(grace);
    }

    fn stop_keeping_disk(mut self, grace: Duration, to: &Path) -> Result<(), VmError> {
        let clean = self.wait_qemu(grace);
        let kept = if clean {
            let from = self.dir.overlay();
            std::fs::rename(&from, to)
                .or_else(|_| std::fs::copy(&from, to).map(|_| ()))
                .map_err(|e| VmError::io("cannot keep the disk as", to, e))
        } else {
            Err(VmError::Config(format!(
                "the VM did not power off within {grace:?}, so its disk may be inconsistent and \
                 is not kept"
            )))
        };
        self.teardown(Duration::ZERO);
        kept
    }
}

impl Drop for QemuVm {
    fn drop(&mut self) {
        if !self.done {
            self.teardown(Duration::ZERO);
        }
    }
}

/// The control group QEMU joins, when the host gives Berth one (recorded in the run
/// directory, which removes it with itself). A group that cannot be made is logged and
/// skipped: the VM still has its memory and vCPUs, the jail and the uid.
fn vm_cgroup(spec: &VmSpec, dir: &RunDir) -> Option<crate::cgroup::VmCgroup> {
    use crate::cgroup::{GroupLimits, Hierarchy, VmCgroup};
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let h = Hierarchy::detect(Path::new("/sys/fs/cgroup"), root)?;
    let tcg = match spec.accel {
        crate::Accel::Tcg => spec.tcg_cache_mib.unwrap_or(args::TCG_CACHE_MIB),
        crate::Accel::Kvm => 0,
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!(
        "{}-{}-{stamp:x}",
        dir.path().file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    );
    match VmCgroup::create(
        &h,
        &name,
        GroupLimits::for_vm(spec.memory_mib, tcg, spec.cpus),
    ) {
        Ok(cg) => {
            if cg.record(dir.path()).is_err() {
                cg.remove();
                return None;
            }
            Some(cg)
        }
        Err(e) => {
            tracing::warn!("no control group for this VM ({}): {e}", h.describe());
            None
        }
    }
}

/// What a VM's QEMU may reach: the image store its image is in (images, environment and
/// agent layers: a layer's backing file is another layer there), its root and cache layers'
/// folders, its run directory, and a setup VM's writable cache disk.
fn vm_jail(spec: &VmSpec, run_dir: &Path, qemu: &Path, exe: &Path) -> crate::jail::Jail {
    let mut read: Vec<&Path> = vec![spec.image.dir.parent().unwrap_or(&spec.image.dir)];
    let mut write: Vec<&Path> = vec![run_dir];
    if let Some(root) = &spec.root {
        read.extend(root.path.parent());
    }
    match &spec.cache {
        Some(crate::CacheDisk::Overlay(layer)) => read.extend(layer.path.parent()),
        Some(crate::CacheDisk::Writable(file)) => {
            write.push(file);
            read.extend(file.parent());
        }
        None => {}
    }
    // As root, QEMU runs as an unprivileged uid of this VM's own.
    let uid = crate::jail::helpers_uid(&run_dir.file_name().unwrap_or_default().to_string_lossy());
    crate::jail::Jail::for_vm(qemu, exe, &read, &write, uid)
}
