//! The QEMU command line for one VM, as a pure function of the spec.

use std::ffi::OsString;
use std::path::Path;

use crate::{Accel, RunDir, VmSpec};
use berth_proto::AGENT_PORT_NAME;

/// MiB of translated code TCG may cache per VM.
pub const TCG_CACHE_MIB: u32 = 256;

/// QEMU option values separate fields with commas; a literal comma is written twice.
fn esc(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// Kernel command line: quiet serial console, power off on panic, the /work share flag.
pub fn kernel_cmdline(spec: &VmSpec, tsc_khz: Option<u64>) -> String {
    let mut args = vec![
        "console=ttyS0".to_string(),
        "quiet".into(),
        "panic=-1".into(),
        "reboot=t".into(),
    ];
    if spec.accel == Accel::Tcg {
        // microvm under TCG can hang calibrating the TSC against a PIT it does not have.
        if let Some(khz) = tsc_khz {
            args.push(format!("tsc_early_khz={khz}"));
        }
    }
    if spec.share.is_some() {
        args.push("berth.work=1".into());
    }
    args.extend(spec.extra_kernel_args.iter().cloned());
    args.join(" ")
}

pub fn qemu_args(spec: &VmSpec, dir: &RunDir, tsc_khz: Option<u64>) -> Vec<OsString> {
    let mem = spec.memory_mib;
    let mut a: Vec<String> = vec![
        "-name".into(),
        format!("berth-{}", spec.name),
        "-M".into(),
        "microvm,memory-backend=mem,rtc=on".into(),
        "-accel".into(),
        match spec.accel {
            // Cap TCG's translation cache (QEMU's default allows 1 GiB per VM).
            Accel::Tcg => format!("tcg,tb-size={TCG_CACHE_MIB}"),
            Accel::Kvm => "kvm".into(),
        },
    ];
    if spec.accel == Accel::Kvm {
        a.extend(["-cpu".into(), "host".into()]);
    }
    a.extend([
        "-m".into(),
        format!("{mem}M"),
        "-smp".into(),
        spec.cpus.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-nographic".into(),
        "-no-reboot".into(),
        // QEMU's own seccomp filter: no exec, no privilege changes, no obsolete syscalls.
        "-sandbox".into(),
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny".into(),
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
        "-kernel".into(),
        esc(&spec.image.kernel()),
        "-initrd".into(),
        esc(&spec.image.initrd()),
        "-append".into(),
        kernel_cmdline(spec, tsc_khz),
        "-drive".into(),
        format!(
            "id=root,file={},format=qcow2,if=none,discard=unmap",
            esc(&dir.overlay())
        ),
        "-device".into(),
        "virtio-blk-device,drive=root".into(),
    ]);
    if spec.share.is_some() {
        a.extend([
            "-chardev".into(),
            format!("socket,id=fs0,path={}", esc(&dir.virtiofs_socket())),
            "-device".into(),
            "vhost-user-fs-device,chardev=fs0,tag=work".into(),
        ]);
    }
    a.extend([
        "-device".into(),
        "virtio-serial-device".into(),
        "-chardev".into(),
        format!(
            "socket,id=agent,path={},server=on,wait=off",
            esc(&dir.agent_socket())
        ),
        "-device".into(),
        format!("virtserialport,chardev=agent,name={AGENT_PORT_NAME}"),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", esc(&dir.qmp_socket())),
        "-serial".into(),
        format!("file:{}", esc(&dir.console_log())),
    ]);
    // No -netdev at all: with networking off the guest has no NIC to send anything on.
    a.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Image, Manifest};
    use std::path::PathBuf;

    fn spec(accel: Accel, share: bool) -> VmSpec {
        VmSpec {
            name: "vm-1".into(),
            image: Image {
                dir: PathBuf::from("/img,x"),
                manifest: Manifest {
                    name: "default".into(),
                    hash: "0".repeat(64),
                    kernel_version: "6.1".into(),
                    agent_sha256: String::new(),
                    built_at: 0,
                    build_seconds: 0,
                },
            },
            share: share.then(|| PathBuf::from("/share")),
            memory_mib: 256,
            cpus: 1,
            accel,
            extra_kernel_args: vec!["berth.init=/x".into()],
        }
    }

    fn joined(spec: &VmSpec) -> String {
        let dir = RunDir::open(PathBuf::from("/run/vm-1"));
        qemu_args(spec, &dir, Some(2_596_122))
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn tcg_gets_the_tsc_hint_and_kvm_gets_the_host_cpu() {
        let tcg = joined(&spec(Accel::Tcg, true));
        assert!(tcg.contains("-accel tcg,tb-size=256") && tcg.contains("tsc_early_khz=2596122"));
        assert!(!tcg.contains("-cpu host"));
        let kvm = joined(&spec(Accel::Kvm, true));
        assert!(kvm.contains("-accel kvm -cpu host") && !kvm.contains("tsc_early_khz"));
    }

    #[test]
    fn no_share_means_no_virtiofs_device_and_there_is_never_a_nic() {
        let s = joined(&spec(Accel::Tcg, false));
        assert!(!s.contains("vhost-user-fs") && !s.contains("berth.work=1"));
        let s = joined(&spec(Accel::Tcg, true));
        assert!(s.contains("vhost-user-fs-device") && s.contains("berth.work=1"));
        assert!(!s.contains("-netdev") && !s.contains("-nic"));
    }

    #[test]
    fn commas_in_paths_cannot_inject_options() {
        let s = joined(&spec(Accel::Tcg, false));
        assert!(s.contains("-kernel /img,,x/vmlinux"), "{s}");
    }
}
