//! A booted VM with a connected agent: what `berth vm run`, the benchmarks and the tests use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::agent::{AgentClient, AgentError};
use crate::{DEFAULT_STOP_GRACE, Hypervisor, RunningVm, VmError, VmSpec};

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("stopped while booting")]
    Cancelled,
}

/// Where failed VMs leave their console log, and how long to wait for the agent.
#[derive(Debug, Clone)]
pub struct BootOptions {
    pub run_root: PathBuf,
    pub logs_dir: PathBuf,
    /// Recorded as the VM's owner: when that process is gone, the VM is an orphan.
    pub owner_pid: u32,
    pub boot_timeout: Duration,
    /// Set (by a stop request) while the VM boots: the boot gives up at once, with
    /// [`SessionError::Cancelled`], and the VM is torn down.
    pub cancel: Option<Arc<AtomicBool>>,
}

pub struct VmSession<V: RunningVm> {
    pub vm: Option<V>,
    pub agent: AgentClient,
    /// From `create` until the agent's hello.
    pub boot_time: Duration,
    kept_console: PathBuf,
}

impl<V: RunningVm> VmSession<V> {
    pub fn boot<H: Hypervisor<Vm = V>>(
        hv: &H,
        spec: &VmSpec,
        opts: &BootOptions,
    ) -> Result<VmSession<V>, SessionError> {
        if cancelled(opts) {
            return Err(SessionError::Cancelled);
        }
        let started = Instant::now();
        let dir = hv.create(spec, &opts.run_root)?;
        dir.record_pid("owner", opts.owner_pid)?;
        let mut vm = hv.start(spec, dir)?;
        let kept_console = opts.logs_dir.join(format!("{}.console.log", spec.name));
        let connected = AgentClient::connect(
            &vm.agent_socket(),
            &kept_console,
            opts.boot_timeout,
            &mut || !cancelled(opts) && !vm.has_exited(),
        );
        match connected {
            Ok(agent) => Ok(VmSession {
                vm: Some({
                    vm.booted();
                    vm
                }),
                agent,
                boot_time: started.elapsed(),
                kept_console,
            }),
            Err(_) if cancelled(opts) => {
                vm.stop(Duration::ZERO);
                Err(SessionError::Cancelled)
            }
            Err(e) => {
                keep_console(&vm, &kept_console);
                vm.stop(Duration::ZERO);
                Err(e.into())
            }
        }
    }

    /// After the agent's channel broke: what happened to the VM (QEMU's exit, and why when
    /// the kernel killed it), waiting up to `within` for QEMU to be gone; `None` while the VM
    /// still runs.
    pub fn vm_problem(&mut self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let problem = self.vm.as_mut().and_then(|vm| vm.problem());
            if problem.is_some() || Instant::now() >= deadline {
                return problem;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Keeps the guest console for the user after a failure (the run dir is about to go).
    pub fn keep_console(&self) -> &Path {
        if let Some(vm) = &self.vm {
            keep_console(vm, &self.kept_console);
        }
        &self.kept_console
    }

    /// Asks the guest to power off, then stops the VM (forcing it after the grace period).
    pub fn shutdown(mut self) {
        self.agent.power_off();
        if let Some(vm) = self.vm.take() {
            vm.stop(DEFAULT_STOP_GRACE);
        }
    }

    /// Powers the VM off and keeps its disk overlay at `to` (see
    /// [`RunningVm::stop_keeping_disk`]).
    pub fn shutdown_keeping_disk(mut self, to: &Path) -> Result<(), VmError> {
        self.agent.power_off();
        match self.vm.take() {
            Some(vm) => vm.stop_keeping_disk(Duration::from_secs(30), to),
            None => Err(VmError::Config("the VM is gone; nothing to keep".into())),
        }
    }

    /// Stops the VM at once: for a guest that misbehaved.
    pub fn kill(mut self) {
        if let Some(vm) = self.vm.take() {
            vm.stop(Duration::ZERO);
        }
    }
}

fn cancelled(opts: &BootOptions) -> bool {
    opts.cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::SeqCst))
}

fn keep_console<V: RunningVm>(vm: &V, to: &Path) {
    if let Some(parent) = to.parent() {
        // The guest's console can hold anything it printed: the user's alone.
        let _ = std::os::unix::fs::DirBuilderExt::mode(
            std::fs::DirBuilder::new().recursive(true),
            0o700,
        )
        .create(parent);
    }
    let _ = std::fs::copy(vm.console_log(), to);
}
