//! `TestVm`: a real VM from the test image, driven through the library.

use std::path::Path;
use std::time::Duration;

use berth_proto::ExecRequest;
use berth_vm::agent::ExecIo;
use berth_vm::image::ImageStore;
use berth_vm::qemu::{Qemu, QemuConfig, QemuVm};
use berth_vm::session::{BootOptions, VmSession};
use berth_vm::{Accel, HostCpu, VmSpec, accel};

use crate::env::{TestEnv, berth_bin, find_virtiofsd};

/// What a command printed and how it ended.
#[derive(Debug, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

struct Collect<'a>(&'a mut Output);

impl ExecIo for Collect<'_> {
    fn stdout(&mut self, d: &[u8]) {
        self.0.stdout.push_str(&String::from_utf8_lossy(d));
    }
    fn stderr(&mut self, d: &[u8]) {
        self.0.stderr.push_str(&String::from_utf8_lossy(d));
    }
    fn error(&mut self, m: &str) {
        self.0.stderr.push_str(m);
    }
}

pub struct TestVm {
    session: Option<VmSession<QemuVm>>,
}

fn host() -> HostCpu {
    HostCpu {
        cpuinfo: std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
        kvm_device: std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

pub fn qemu_config() -> QemuConfig {
    let h = host();
    QemuConfig {
        qemu: "qemu-system-x86_64".into(),
        qemu_img: "qemu-img".into(),
        virtiofsd: find_virtiofsd().expect("virtiofsd is installed (scripts/install-deps.sh)"),
        tsc_khz: h.tsc_khz(),
        guard: Some((berth_bin(), vec!["__guard".into()])),
        bridge: Some(berth_vm::qemu::Bridge {
            program: berth_bin(),
            args: vec!["__bridge".into()],
        }),
        allow_unsandboxed_share: false,
        jail: Some(berth_bin()),
    }
}

/// The accelerator Berth would pick on this host.
pub fn auto_accel() -> Accel {
    accel::choose(&host(), None).accel
}

impl TestEnv {
    /// Boots a VM from the test image, optionally sharing `share` at /work.
    pub fn boot_vm(&self, share: Option<&Path>) -> TestVm {
        let image = ImageStore::new(self.data_dir().join("images"))
            .latest("default")
            .expect("test image");
        let spec = VmSpec {
            name: berth_core::random_id("vm").unwrap(),
            image,
            share: share.map(Path::to_path_buf),
            share_is_berths: false,
            memory_mib: 384,
            cpus: 1,
            accel: auto_accel(),
            extra_kernel_args: Vec::new(),
            network: false,
            root: None,
            cache: None,
            tcg_cache_mib: None,
            private_boot_files: false,
        };
        let opts = BootOptions {
            run_root: self.run_dir(),
            logs_dir: self.data_dir().join("logs"),
            owner_pid: std::process::id(),
            boot_timeout: Duration::from_secs(120),
            cancel: None,
        };
        let session = VmSession::boot(&Qemu::new(qemu_config()), &spec, &opts)
            .unwrap_or_else(|e| panic!("boot failed: {e}"));
        TestVm {
            session: Some(session),
        }
    }
}

impl TestVm {
    /// Runs `script` with `sh -c` as the unprivileged `agent` user in /work.
    pub fn sh(&mut self, script: &str) -> Output {
        self.exec(None, script)
    }

    /// Runs `script` as guest root: what a hostile guest could do.
    pub fn sh_as_root(&mut self, script: &str) -> Output {
        self.exec(Some("root"), script)
    }

    fn exec(&mut self, user: Option<&str>, script: &str) -> Output {
        let mut out = Output::default();
        let session = self.session.as_mut().expect("vm is running");
        let status = session
            .agent
            .exec(
                ExecRequest {
                    argv: vec!["sh".into(), "-c".into(), script.into()],
                    env: Vec::new(),
                    cwd: Some(if user == Some("root") { "/" } else { "/work" }.into()),
                    user: user.map(str::to_string),
                    pty: None,
                },
                &mut Collect(&mut out),
            )
            .unwrap_or_else(|e| panic!("exec {script:?}: {e}"));
        out.code = status.shell_code();
        out
    }

    pub fn shutdown(mut self) {
        if let Some(s) = self.session.take() {
            s.shutdown();
        }
    }
}

impl Drop for TestVm {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            s.kill();
        }
    }
}
