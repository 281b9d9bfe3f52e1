//! What the binary resolves from the environment once and passes into the libraries.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use berth_core::DataDir;
use berth_core::host::accel::HostCpu;
use berth_core::host::qemu::QemuConfig;

pub struct Context {
    pub data: DataDir,
    /// This executable, for starting VM guards.
    pub exe: PathBuf,
}

impl Context {
    pub fn resolve(flag: Option<PathBuf>) -> Result<Context> {
        let data = DataDir::resolve(flag, &|k| std::env::var_os(k), &std::env::current_dir()?)
            .map_err(|e| anyhow::anyhow!(e))?;
        let exe = std::env::current_exe().context("cannot find the berth executable")?;
        Ok(Context { data, exe })
    }

    /// Brings the state in line with reality before any command: attempts whose supervisor
    /// died are marked stopped, run directories of VMs whose owner died are removed.
    pub fn reconcile(&self) {
        match berth_core::reconcile(&self.store(), now_ms) {
            Ok(ids) => {
                for id in ids {
                    tracing::info!("attempt {id}: its supervisor died; marked stopped");
                }
            }
            Err(e) => tracing::warn!("cannot reconcile the state database: {e}"),
        }
        for dir in berth_core::host::rundir::reap_orphans(&self.data.run()) {
            tracing::info!("cleaned up after a VM whose owner died: {}", dir.display());
        }
    }

    pub fn store(&self) -> berth_core::Store {
        berth_core::Store::new(self.data.clone())
    }

    /// The guest image this binary boots: built from the default recipe with exactly its
    /// agent on this host (never another build that happens to be newer).
    pub fn image(&self) -> Result<berth_core::host::image::Image> {
        let agent = find_agent(None, &self.exe)?;
        Ok(
            berth_core::host::image::ImageStore::new(self.data.images()).matching(
                &berth_core::host::image::DEFAULT_RECIPE,
                &agent,
                &host_image_inputs(),
            )?,
        )
    }

    /// How this front end's VMs are made: this binary's image, the accelerator for this
    /// host (or the user's), and its run and log directories.
    pub fn vm_settings(
        &self,
        memory_mib: u32,
        vm: &crate::commands::supervise::VmArgs,
    ) -> Result<berth_core::VmSettings> {
        vm.check_cpus()?;
        warn_slow_kvm(vm.accel);
        Ok(berth_core::VmSettings {
            image: self.image()?,
            host: host_image_inputs(),
            qemu_img: self.qemu_config()?.qemu_img,
            accel: berth_core::host::accel::choose(&host_cpu(), vm.accel).accel,
            memory_mib,
            cpus: vm.cpus(),
            boot: berth_core::host::session::BootOptions {
                run_root: self.data.run(),
                logs_dir: self.data.logs(),
                owner_pid: std::process::id(),
                boot_timeout: std::time::Duration::from_secs(vm.boot_timeout),
                cancel: None,
            },
        })
    }

    pub fn qemu_config(&self) -> Result<QemuConfig> {
        Ok(QemuConfig {
            qemu: find_tool("BERTH_QEMU", &["qemu-system-x86_64"], &[]).context(
                "qemu-system-x86_64 not found; install it (Debian/Ubuntu: apt install qemu-system-x86) \
                 or run scripts/install-deps.sh",
            )?,
            qemu_img: find_tool("BERTH_QEMU_IMG", &["qemu-img"], &[])
                .context("qemu-img not found; install it (apt install qemu-utils)")?,
            virtiofsd: find_virtiofsd()?,
            tsc_khz: host_cpu().tsc_khz(),
            guard: Some((self.exe.clone(), vec!["__guard".into()])),
            bridge: Some(berth_core::host::qemu::Bridge {
                program: self.exe.clone(),
                args: vec!["__bridge".into()],
            }),
            allow_unsandboxed_share: std::env::var_os(
                berth_core::host::qemu::virtiofsd::UNSANDBOXED_OPT_IN,
            )
            .is_some_and(|v| v == "1"),
            // `BERTH_NO_JAIL=1` starts QEMU without its Landlock wall (a last resort on a
            // system whose QEMU needs files the jail does not know of; doctor says so).
            jail: (std::env::var_os("BERTH_NO_JAIL").is_none_or(|v| v != "1"))
                .then(|| self.exe.clone()),
        })
    }
}

/// What of this host goes into a guest image besides the recipe: its release and apt
/// sources (they pick the kernel and the packages), names and contents, in a stable order.
pub fn host_image_inputs() -> Vec<u8> {
    let mut files = vec![
        PathBuf::from("/etc/os-release"),
        PathBuf::from("/etc/apt/sources.list"),
    ];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut out = Vec::new();
    for f in files {
        if let Ok(text) = std::fs::read(&f) {
            out.extend_from_slice(f.to_string_lossy().as_bytes());
            out.push(0);
            out.extend_from_slice(&(text.len() as u64).to_be_bytes());
            out.extend_from_slice(&text);
        }
    }
    out
}

/// The wall clock, in milliseconds since the Unix epoch (the libraries take it as a `Clock`).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This host's memory in MiB, from /proc/meminfo.
pub fn host_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// Reads what the accelerator choice needs from this host.
pub fn host_cpu() -> HostCpu {
    HostCpu::read()
}

/// `$VAR` if set, else the first of `names` on PATH, else the first existing of `extra`.
pub fn find_tool(var: &str, names: &[&str], extra: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Some(candidate);
            }
        }
    }
    extra.iter().find(|p| is_executable(p)).cloned()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub fn find_virtiofsd() -> Result<PathBuf> {
    let mut extra = Vec::new();
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        extra.push(PathBuf::from(h).join("bin/virtiofsd"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        extra.push(PathBuf::from(h).join(".cargo/bin/virtiofsd"));
    }
    // The .deb puts its own next to the agent: <prefix>/lib/berth/virtiofsd.
    if let Some(prefix) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().and_then(|b| b.parent()).map(|p| p.to_path_buf()))
    {
        extra.push(prefix.join("lib/berth/virtiofsd"));
    }
    extra.push(PathBuf::from("/usr/lib/berth/virtiofsd"));
    extra.push(PathBuf::from("/usr/libexec/virtiofsd"));
    find_tool("BERTH_VIRTIOFSD", &["virtiofsd"], &extra)
        .context("virtiofsd not found; install it with `cargo install virtiofsd --locked`")
}

/// The static guest agent: `--agent`, `$BERTH_AGENT`, next to this binary, or in the
/// cargo target dir's static build (`scripts/build.sh` puts it there).
pub fn find_agent(flag: Option<PathBuf>, exe: &Path) -> Result<PathBuf> {
    if let Some(p) = flag.or_else(|| std::env::var_os("BERTH_AGENT").map(PathBuf::from)) {
        return Ok(p);
    }
    let dir = exe.parent().unwrap_or(Path::new("."));
    // In a cargo target dir the plain `berth-agent` beside `berth` is the dynamic host
    // build; the static one is under the explicit target triple, so look there first.
    let candidates = [
        dir.join("../x86_64-unknown-linux-gnu/release/berth-agent"),
        dir.join("../../x86_64-unknown-linux-gnu/release/berth-agent"),
        dir.join("berth-agent"),
        PathBuf::from("/usr/lib/berth/berth-agent"),
    ];
    candidates.into_iter().find(|p| p.is_file()).context(
        "the static guest agent (berth-agent) was not found next to berth; build it with \
             scripts/build.sh or pass --agent",
    )
}

/// The keyring for secret values (see `berth_core::keyring_for`).
pub fn keyring() -> berth_core::Keyring {
    berth_core::keyring_for(
        std::env::var("BERTH_KEYRING").ok().as_deref(),
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
    )
}

/// `--accel kvm` on a host where Berth would not pick KVM (a nested host without vmx/svm):
/// guests there may crawl until the boot timeout with an empty console, so say so first.
pub fn warn_slow_kvm(forced: Option<berth_core::host::Accel>) {
    use berth_core::host::accel::choose;
    if forced == Some(berth_core::host::Accel::Kvm) {
        let auto = choose(&host_cpu(), None);
        if auto.accel != berth_core::host::Accel::Kvm {
            eprintln!(
                "berth: warning: --accel kvm on a host where Berth picks {} ({}); guests may \
                 boot very slowly or time out (`berth doctor` says why)",
                auto.accel, auto.reason
            );
        }
    }
}
