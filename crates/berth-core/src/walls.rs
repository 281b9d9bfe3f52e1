//! What this host gives to wall an attempt's host processes in, beyond the VM itself
//! (`berth doctor`): Landlock, control groups, user namespaces, seccomp, and whether Berth runs as
//! root. It says what is there and what Berth does with it today; it changes nothing.

use std::path::Path;

/// One wall: there or not, and what that means here.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Wall {
    pub name: &'static str,
    pub available: bool,
    pub detail: String,
}

/// Every wall, as this host has it.
pub fn host_walls() -> Vec<Wall> {
    vec![
        landlock(landlock_abi()),
        cgroups(
            berth_vm::cgroup::Hierarchy::detect(Path::new("/sys/fs/cgroup"), unsafe_geteuid() == 0),
            std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").ok(),
            own_cgroup_writable(),
        ),
        user_namespaces(
            std::fs::read_to_string("/proc/sys/user/max_user_namespaces").ok(),
            std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone").ok(),
        ),
        Wall {
            name: "seccomp",
            available: std::fs::read_to_string("/proc/self/status")
                .is_ok_and(|s| s.contains("Seccomp:")),
            detail: "QEMU runs with -sandbox on (its own seccomp filter: no obsolete system \
                     calls or resource control; no privilege change or spawning unless the VM \
                     has a network, whose bridge QEMU starts)"
                .into(),
        },
        as_root(unsafe_geteuid() == 0),
    ]
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// The kernel's Landlock ABI version, or the errno saying why there is none.
fn landlock_abi() -> Result<i64, i32> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns
    // the ABI version; it reads no memory and makes no file descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if r >= 0 {
        Ok(r)
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

fn landlock(abi: Result<i64, i32>) -> Wall {
    let (available, detail) = match abi {
        Ok(v) => (
            true,
            format!(
                "ABI {v}; each VM's QEMU and its network bridges run in a Landlock jail (its \
                 image, layers and run directory only){}",
                if std::env::var_os("BERTH_NO_JAIL").is_some_and(|v| v == "1") {
                    " — switched off here by BERTH_NO_JAIL=1"
                } else {
                    ""
                }
            ),
        ),
        Err(libc::EOPNOTSUPP) => (
            false,
            "built into the kernel but switched off (add landlock to the lsm= boot parameter)"
                .into(),
        ),
        Err(_) => (false, "this kernel has no Landlock".into()),
    };
    Wall {
        name: "landlock",
        available,
        detail,
    }
}

fn cgroups(
    usable: Option<berth_vm::cgroup::Hierarchy>,
    controllers: Option<String>,
    writable: bool,
) -> Wall {
    if let Some(h) = usable {
        return Wall {
            name: "cgroups",
            available: true,
            detail: format!(
                "{}: each VM's QEMU and its bridges in a group of their own, at most its guest \
                 memory + its translation cache + {} MiB, {} tasks{}",
                h.describe(),
                berth_vm::cgroup::HEADROOM_MIB,
                berth_vm::cgroup::PIDS_MAX,
                if h.has_cpu() {
                    " and the CPU time of its vCPUs + 1"
                } else {
                    " (no CPU limit: the host has no CPU controller Berth can use)"
                }
            ),
        };
    }
    Wall {
        name: "cgroups",
        available: false,
        detail: match controllers {
            Some(c) => format!(
                "cgroup v2 controllers: {}; your cgroup is {}; Berth makes groups only as root, \
                 so VMs run without one (each is still bounded by its memory and vCPUs)",
                c.split_whitespace().collect::<Vec<_>>().join(", "),
                if writable {
                    "delegated to you"
                } else {
                    "not delegated to you"
                }
            ),
            None => "no cgroup hierarchy Berth can write to: VMs run without a group (each is \
                     still bounded by its memory and vCPUs)"
                .into(),
        },
    }
}

fn own_cgroup_writable() -> bool {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return false;
    };
    let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: access() reads a NUL-terminated path and nothing else.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

fn user_namespaces(max: Option<String>, unprivileged: Option<String>) -> Wall {
    let max: u64 = max.and_then(|m| m.trim().parse().ok()).unwrap_or(0);
    let off = unprivileged.is_some_and(|u| u.trim() == "0");
    let available = max > 0 && !off;
    Wall {
        name: "user namespaces",
        available,
        detail: if available {
            "virtiofsd confines itself in its own namespaces (its `namespace` sandbox)".into()
        } else {
            "off: virtiofsd falls back to a chroot (as root) or refuses to share".into()
        },
    }
}

fn as_root(root: bool) -> Wall {
    Wall {
        name: "unprivileged",
        available: true,
        detail: if root {
            format!(
                "Berth runs as root: each VM's QEMU and its bridges run as an unprivileged uid \
                 of the VM's own (from {}) keeping only the capabilities to open what its jail \
                 allows; virtiofsd serves each workspace as that uid too, with no capability, \
                 in its own user namespace",
                berth_vm::jail::VM_UID_BASE
            )
        } else {
            "QEMU and virtiofsd run as you, not as root".into()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wall_says_what_is_missing_and_why() {
        assert!(landlock(Ok(4)).available);
        assert!(landlock(Err(libc::EOPNOTSUPP)).detail.contains("lsm="));
        assert!(!landlock(Err(libc::ENOSYS)).available);
        let cg = cgroups(None, Some("cpu memory pids\n".into()), false);
        assert!(!cg.available && cg.detail.contains("cpu, memory, pids"));
        assert!(cg.detail.contains("not delegated"));
        assert!(!cgroups(None, None, false).available);
        let v1 = berth_vm::cgroup::Hierarchy::V1 {
            memory: "/m".into(),
            pids: "/p".into(),
            cpu: None,
        };
        let cg = cgroups(Some(v1), None, false);
        assert!(cg.available && cg.detail.contains("cgroup v1 (memory, pids)"));
        assert!(user_namespaces(Some("1000".into()), None).available);
        assert!(!user_namespaces(Some("1000".into()), Some("0\n".into())).available);
        assert!(!user_namespaces(Some("0".into()), None).available);
        assert!(as_root(true).available && as_root(false).available);
        assert!(
            as_root(true)
                .detail
                .contains("unprivileged uid of the VM's own")
        );
    }
}
