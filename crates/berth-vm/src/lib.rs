//! Virtual machines for Berth attempts.
//!
//! [`Hypervisor`] is the one backend trait; [`qemu::Qemu`] implements it on Linux (a
//! `vz` backend for macOS will sit beside it behind `cfg(target_os = "macos")`).
//! [`agent::AgentClient`] speaks `berth-proto` to the guest agent over the channel the
//! backend provides. Guest images are built and found through [`image`].

pub mod accel;
pub mod agent;
pub mod cgroup;
pub mod floor;
pub mod guard;
pub mod image;
pub mod jail;
pub mod logfile;
pub mod qemu;
pub mod rundir;
pub mod session;
pub mod share_owner;

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use accel::{Accel, AccelChoice, HostCpu};
pub use image::{Image, ImageStore};
pub use rundir::RunDir;

#[derive(Debug, Error)]
pub enum VmError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("{program} failed to start: {detail}")]
    Spawn {
        program: &'static str,
        detail: String,
    },
    #[error("QMP: {0}")]
    Qmp(String),
}

impl VmError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> VmError {
        VmError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What one VM should be.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Short unique name; also the run directory's name.
    pub name: String,
    pub image: Image,
    /// Host directory shared read-write at `/work`.
    pub share: Option<PathBuf>,
    /// The share is Berth's own (a workspace, a pooled VM's empty share): when Berth runs as
    /// root it is given to the VM's unprivileged uid, which virtiofsd then runs as
    /// ([`share_owner`]). `false` for a folder of the user's (`berth vm run --share`), whose
    /// files are never given away (virtiofsd then serves it as the user).
    pub share_is_berths: bool,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    /// Appended to the kernel command line (e.g. `berth.init=...` in tests).
    pub extra_kernel_args: Vec<String>,
    /// Give the guest one NIC whose only reachable address is the egress proxy, served on
    /// the run dir's `egress.sock` (the caller listens there before booting). `false`: no NIC.
    pub network: bool,
    /// The read-only disk the VM's overlay sits on: an environment's layer; `None` for the
    /// image's own root filesystem.
    pub root: Option<RootLayer>,
    /// A second disk, mounted at `/cache` in the guest (dependency caches).
    pub cache: Option<CacheDisk>,
    /// MiB of translated code TCG may cache (default [`qemu::args::TCG_CACHE_MIB`]): a pooled
    /// VM waits with a small one, since what it has translated stays in host memory.
    pub tcg_cache_mib: Option<u32>,
    /// QEMU boots from the VM's own copy of the kernel and initrd in its run directory, which
    /// is emptied once the guest is up ([`RunningVm::booted`]): QEMU keeps the files it loaded
    /// mapped only to load them again on a reset, which `-no-reboot` rules out, so a VM that
    /// waits (a pooled one) does not hold them. Costs a copy at boot: `false` for attempts.
    pub private_boot_files: bool,
}

/// The cache disk of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDisk {
    /// An attempt: a throwaway overlay in the run dir on this generation (never written).
    Overlay(RootLayer),
    /// A setup VM: this qcow2 file itself, written (it becomes the next generation).
    Writable(PathBuf),
}

/// A read-only root disk layer (never written: every VM writes its own overlay on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootLayer {
    pub path: PathBuf,
    /// `raw` (an ext4 image) or `qcow2` (a layer over another).
    pub format: &'static str,
}

/// What a backend can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub accels: Vec<Accel>,
    /// Shares host directories with virtiofs.
    pub virtiofs: bool,
    /// How the guest agent is reached.
    pub agent_channel: AgentChannel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentChannel {
    /// A virtio-serial port exposed on the host as a unix socket (QEMU).
    VirtioSerial,
    /// A vsock port (Virtualization.framework).
    Vsock,
}

/// Observed state of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmStatus {
    Running,
    /// Paused, shutting down, or another hypervisor state, by name.
    Other(String),
    /// The hypervisor process has exited.
    Exited,
}

/// A hypervisor backend.
///
/// Lifecycle and when each call is legal:
/// - [`Hypervisor::create`] on a new or created VM: prepares the run directory (refusing one
///   that is not the user's own) and a fresh disk overlay. Calling it again gives the same
///   result: the overlay is made anew, never reused.
/// - [`Hypervisor::start`] on a created VM: boots it and returns the running VM.
/// - [`RunningVm::status`] while running; [`RunningVm::stop`] once, which always ends
///   with nothing of the VM left (processes, sockets, overlay, run directory).
pub trait Hypervisor {
    type Vm: RunningVm;

    fn capabilities(&self) -> Capabilities;
    fn create(&self, spec: &VmSpec, run_root: &Path) -> Result<RunDir, VmError>;
    fn start(&self, spec: &VmSpec, run_dir: RunDir) -> Result<Self::Vm, VmError>;
}

pub trait RunningVm {
    /// The host end of the guest agent channel.
    fn agent_socket(&self) -> PathBuf;
    /// The guest's serial console log (inside the run directory).
    fn console_log(&self) -> PathBuf;
    fn status(&mut self) -> Result<VmStatus, VmError>;
    /// Whether the hypervisor process has exited (cheap; no round trip).
    fn has_exited(&mut self) -> bool;
    /// What is wrong with the VM's host processes, if anything (e.g. its file server died).
    fn problem(&mut self) -> Option<String>;
    /// Stops the VM: waits up to `grace` for it to power off by itself (after the agent was
    /// asked to), then asks QEMU to quit, then kills it; finally removes the run directory.
    fn stop(self, grace: Duration);
    /// Like [`RunningVm::stop`], but keeps the VM's disk overlay at `to` (a setup VM's
    /// result becomes an environment layer). Only a VM that powered off by itself within
    /// `grace` (its file systems synced) has its disk kept; otherwise an error says so.
    fn stop_keeping_disk(self, grace: Duration, to: &Path) -> Result<(), VmError>;
    /// The guest is up (its agent answered): what only the boot needed may go.
    fn booted(&mut self) {}
}

/// How long a stop waits between asking nicely and forcing.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
