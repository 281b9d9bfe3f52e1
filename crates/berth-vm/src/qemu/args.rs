//! The QEMU command line for one VM, as a pure function of the spec.

use std::ffi::OsString;
use std::path::Path;

use crate::{Accel, RunDir, VmSpec};
use berth_proto::AGENT_PORT_NAME;

/// The guest address:port of the egress proxy (QEMU's user network is 10.0.2.0/24).
pub const GUEST_PROXY: &str = "10.0.2.100:3128";

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
    if spec.network {
        args.push("berth.net=1".into());
    }
    if spec.cache.is_some() {
        args.push("berth.cache=1".into());
    }
    args.extend(spec.extra_kernel_args.iter().cloned());
    args.join(" ")
}

/// The program QEMU runs per guest connection to the proxy (`guestfwd ... cmd:`).
#[derive(Debug, Clone)]
pub struct Bridge {
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
}

/// The guest's CPU model. KVM: the host's CPU. TCG: `max`, everything QEMU can emulate
/// (SSE4.2, AVX2, ...): under the default model real agent binaries die with "Illegal
/// instruction".
pub fn cpu_model(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "host",
        Accel::Tcg => "max",
    }
}

pub fn qemu_args(
    spec: &VmSpec,
    dir: &RunDir,
    tsc_khz: Option<u64>,
    bridge: Option<&Bridge>,
) -> Vec<OsString> {
    let mem = spec.memory_mib;
    let mut a: Vec<String> = vec![
        "-name".into(),
        format!("berth-{}", spec.name),
        "-M".into(),
        "microvm,memory-backend=mem,rtc=on".into(),
        "-accel".into(),
        match spec.accel {
            // Cap TCG's translation cache (QEMU's default allows 1 GiB per VM).
            Accel::Tcg => format!(
                "tcg,tb-size={}",
                spec.tcg_cache_mib.unwrap_or(TCG_CACHE_MIB)
            ),
            Accel::Kvm => "kvm".into(),
        },
    ];
    a.extend(["-cpu".into(), cpu_model(spec.accel).into()]);
    a.extend([
        "-m".into(),
        format!("{mem}M"),
        "-smp".into(),
        spec.cpus.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-nographic".into(),
        "-no-reboot".into(),
        // QEMU's own seccomp filter: no privilege changes, no obsolete syscalls, and no exec
        // unless the guest has a network (QEMU then starts the bridge per connection).
        "-sandbox".into(),
        if spec.network {
            "on,obsolete=deny,resourcecontrol=deny".into()
        } else {
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny".into()
        },
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={mem}M,share=on"),
        "-kernel".into(),
        esc(&if spec.private_boot_files {
            dir.boot_kernel()
        } else {
            spec.image.kernel()
        }),
        "-initrd".into(),
        esc(&if spec.private_boot_files {
            dir.boot_initrd()
        } else {
            spec.image.initrd()
        }),
        "-append".into(),
        kernel_cmdline(spec, tsc_khz),
        "-drive".into(),
        format!(
            "id=root,file={},format=qcow2,if=none,discard=unmap",
            esc(&dir.overlay())
        ),
        "-device".into(),
        "virtio-blk-device,drive=root".into(),
        // Free page reporting: the guest hands pages it freed back to the host (an idle
        // VM keeps only what it uses). Never inflated: no memory is taken from the guest.
        "-device".into(),
        "virtio-balloon-device,free-page-reporting=on".into(),
    ]);
    if let Some(cache) = &spec.cache {
        let file = match cache {
            crate::CacheDisk::Overlay(_) => dir.cache_overlay(),
            crate::CacheDisk::Writable(path) => path.clone(),
        };
        a.extend([
            "-drive".into(),
            format!(
                "id=cache,file={},format=qcow2,if=none,discard=unmap",
                esc(&file)
            ),
            "-device".into(),
            "virtio-blk-device,drive=cache".into(),
        ]);
    }
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
        // The console goes to a socket Berth listens on and copies into a capped log; a
        // `file:` serial would let the guest fill the disk (and follow a planted symlink).
        "-chardev".into(),
        format!("socket,id=console,path={}", esc(&dir.console_socket())),
        "-serial".into(),
        "chardev:console".into(),
    ]);
    // Networking off: no NIC at all, so the guest has nothing to send anything on.
    if let (true, Some(b)) = (spec.network, bridge) {
        // Restricted user networking: no route to the host or anywhere else, no DNS, and
        // one forwarded address whose connections each start the bridge into the proxy.
        let mut cmd = vec![b.program.display().to_string()];
        cmd.extend(b.args.iter().cloned());
        cmd.push(dir.egress_socket().display().to_string());
        let cmd = cmd.join(" ").replace(',', ",,");
        a.extend([
            "-netdev".into(),
            format!("user,id=n0,restrict=on,ipv6=off,guestfwd=tcp:{GUEST_PROXY}-cmd:{cmd}"),
            "-device".into(),
            "virtio-net-device,netdev=n0".into(),
        ]);
    }
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
            share_is_berths: false,
            memory_mib: 256,
            cpus: 1,
            accel,
            extra_kernel_args: vec!["berth.init=/x".into()],
            network: false,
            root: None,
            cache: None,
            tcg_cache_mib: None,
            private_boot_files: false,
        }
    }

    fn joined(spec: &VmSpec) -> String {
        let dir = RunDir::open(PathBuf::from("/run/vm-1"));
        let bridge = Bridge {
            program: "/usr/bin/berth".into(),
            args: vec!["__bridge".into()],
        };
        qemu_args(spec, &dir, Some(2_596_122), Some(&bridge))
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn tcg_gets_the_tsc_hint_and_kvm_gets_the_host_cpu() {
        let tcg = joined(&spec(Accel::Tcg, true));
        assert!(tcg.contains("-accel tcg,tb-size=256") && tcg.contains("tsc_early_khz=2596122"));
        assert!(!tcg.contains("-cpu host") && tcg.contains("-cpu max"));
        let kvm = joined(&spec(Accel::Kvm, true));
        assert!(kvm.contains("-accel kvm -cpu host") && !kvm.contains("tsc_early_khz"));
    }

    #[test]
    fn a_cache_disk_is_the_runs_own_overlay_or_the_setup_vms_new_generation() {
        assert!(!joined(&spec(Accel::Tcg, true)).contains("drive=cache"));
        let mut s = spec(Accel::Tcg, true);
        s.cache = Some(crate::CacheDisk::Overlay(crate::RootLayer {
            path: PathBuf::from("/caches/r/gen-3.qcow2"),
            format: "qcow2",
        }));
        let a = joined(&s);
        assert!(
            a.contains("file=/run/vm-1/cache.qcow2") && a.contains("berth.cache=1"),
            "{a}"
        );
        assert!(
            !a.contains("gen-3"),
            "an attempt never writes a generation: {a}"
        );
        s.cache = Some(crate::CacheDisk::Writable(PathBuf::from(
            "/caches/r/gen-4.partial",
        )));
        assert!(joined(&s).contains("file=/caches/r/gen-4.partial"));
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
    fn networking_means_one_restricted_nic_forwarding_only_to_the_proxy() {
        let mut s = spec(Accel::Tcg, false);
        s.network = true;
        let line = joined(&s);
        assert!(line.contains("-netdev user,id=n0,restrict=on,ipv6=off,guestfwd=tcp:10.0.2.100:3128-cmd:/usr/bin/berth __bridge /run/vm-1/egress.sock"), "{line}");
        assert!(line.contains("berth.net=1") && !line.contains("spawn=deny"));
        assert!(!line.contains("hostfwd") && line.matches("-netdev").count() == 1);
    }

    #[test]
    fn commas_in_paths_cannot_inject_options() {
        let s = joined(&spec(Accel::Tcg, false));
        assert!(s.contains("-kernel /img,,x/vmlinux"), "{s}");
    }
}
