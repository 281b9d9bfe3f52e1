//! The boot-time floor for `berth bench boot`: the same kernel and accelerator with a
//! busybox-only initramfs whose init powers off at once. Nothing boots faster on this host.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Accel, VmError};

/// Writes a newc cpio holding `/bin/busybox` and an `/init` that powers off.
pub fn write_floor_initramfs(busybox: &Path, out: &Path) -> Result<(), VmError> {
    let bb = std::fs::read(busybox).map_err(|e| VmError::io("cannot read", busybox, e))?;
    let init = b"#!/bin/busybox sh\n/bin/busybox poweroff -f\n";
    let mut cpio = Vec::new();
    let mut ino = 1;
    let mut add = |name: &str, mode: u32, data: &[u8]| {
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        ino += 1;
        cpio.extend_from_slice(header.as_bytes());
        cpio.extend_from_slice(name.as_bytes());
        cpio.push(0);
        while cpio.len() % 4 != 0 {
            cpio.push(0);
        }
        cpio.extend_from_slice(data);
        while cpio.len() % 4 != 0 {
            cpio.push(0);
        }
    };
    add("bin", 0o040755, b"");
    add("bin/busybox", 0o100755, &bb);
    add("init", 0o100755, init);
    add("TRAILER!!!", 0, b"");
    std::fs::write(out, cpio).map_err(|e| VmError::io("cannot write", out, e))
}

/// Boots the floor once and returns the time from QEMU's start to its exit.
pub fn boot_floor(
    qemu: &Path,
    kernel: &Path,
    initramfs: &Path,
    accel: Accel,
    tsc_khz: Option<u64>,
    memory_mib: u32,
) -> Result<Duration, VmError> {
    let mut append = "console=ttyS0 quiet panic=-1".to_string();
    if let (Accel::Tcg, Some(khz)) = (accel, tsc_khz) {
        append.push_str(&format!(" tsc_early_khz={khz}"));
    }
    let mut cmd = Command::new(qemu);
    cmd.args(["-M", "microvm,rtc=on", "-accel", &accel.to_string()]);
    // The CPU model Berth's VMs get (under TCG, `max`: a kernel takes longer to boot on it
    // than on QEMU's default model, and attempts cannot do without it).
    cmd.args(["-cpu", crate::qemu::args::cpu_model(accel)]);
    cmd.args(["-m", &format!("{memory_mib}M"), "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", &append, "-serial", "null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd.output().map_err(|e| VmError::Spawn {
        program: "qemu",
        detail: e.to_string(),
    })?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(VmError::Spawn {
            program: "qemu",
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(took)
}
