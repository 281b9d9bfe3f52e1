//! The wall under QEMU: a Landlock ruleset that limits its file system to the system's
//! programs and libraries (read and execute), the VM's image and disk layers (read), and its
//! own run directory and devices (write), with no new privileges. The network bridges QEMU
//! starts (`guestfwd ... cmd:`) inherit it. A QEMU that a guest took over through a device
//! bug still cannot read the user's files or another attempt's workspace.
//!
//! QEMU is started as `berth __jail --ro P... --rw P... [--uid U] -- qemu ARGS`: that small
//! process enforces the rules on itself, single-threaded, then executes QEMU (same pid), so
//! no allocation happens between fork and exec. Where the kernel has no Landlock the rules
//! are not enforced; `berth doctor` says so.
//!
//! When Berth runs as root, QEMU does not: the jail first becomes an unprivileged uid of the
//! VM's own ([`vm_uid`], no supplementary groups) that keeps only the two capabilities that let
//! it open what the Landlock rules allow whoever owns it (`CAP_DAC_OVERRIDE`,
//! `CAP_DAC_READ_SEARCH`: the data directory is under root's home). Every other capability is
//! gone from its bounding set, so neither QEMU nor a bridge can get one back; being another
//! uid, it cannot signal or trace Berth, virtiofsd or another VM's QEMU.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The subcommand that enforces a jail and then runs its program.
pub const JAIL_COMMAND: &str = "__jail";

/// What a jailed program may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jail {
    /// Read (and execute) beneath these.
    pub read: Vec<PathBuf>,
    /// Read, write, create and use devices beneath these.
    pub write: Vec<PathBuf>,
    /// Run as this uid (and gid) with only the DAC capabilities (when started by root).
    pub uid: Option<u32>,
    /// Join these control groups first (their `cgroup.procs` files; see [`crate::cgroup`]).
    pub cgroups: Vec<PathBuf>,
}

/// The first uid VMs' QEMUs run as when Berth runs as root: above the range systemd gives
/// containers, below 2^31, with no user of the system there.
pub const VM_UID_BASE: u32 = 1_900_000_000;

/// The uid the helpers of a VM named `name` (QEMU, its bridges, virtiofsd for a workspace)
/// run as when Berth runs as root and has not been told to keep them root
/// (`BERTH_JAIL_AS_ROOT=1`); `None` otherwise (they run as the user).
pub fn helpers_uid(name: &str) -> Option<u32> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    (root && std::env::var_os("BERTH_JAIL_AS_ROOT").is_none()).then(|| vm_uid(name))
}

/// The uid VM `name`'s QEMU runs as (as root): one of 65536 from [`VM_UID_BASE`], by a hash of
/// the name, so VMs running side by side get different ones.
pub fn vm_uid(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    VM_UID_BASE + (h & 0xffff)
}

/// Where programs and the libraries they load live on Linux systems.
const SYSTEM: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/nix/store",
    "/opt/homebrew",
];
/// Devices a VM writes to.
const DEVICES: &[&str] = &["/dev/kvm", "/dev/null", "/dev/zero", "/dev/urandom"];

impl Jail {
    /// The jail of a VM's QEMU: `program` (QEMU), `exe` (Berth, for its bridges), the
    /// system, the given read-only layers and the writable paths.
    pub fn for_vm(
        program: &Path,
        exe: &Path,
        read: &[&Path],
        write: &[&Path],
        uid: Option<u32>,
    ) -> Jail {
        let mut r: Vec<PathBuf> = SYSTEM.iter().map(PathBuf::from).collect();
        // A QEMU installed under a prefix of its own (`<prefix>/bin/qemu-…`) needs the
        // prefix's firmware and libraries.
        if let Some(prefix) = program.parent().and_then(Path::parent)
            && prefix != Path::new("/")
        {
            r.push(prefix.to_path_buf());
        }
        r.push(exe.to_path_buf());
        r.extend(read.iter().map(|p| p.to_path_buf()));
        let mut w: Vec<PathBuf> = DEVICES.iter().map(PathBuf::from).collect();
        w.extend(write.iter().map(|p| p.to_path_buf()));
        Jail {
            read: r,
            write: w,
            uid,
            cgroups: Vec::new(),
        }
    }

    /// `exe __jail --ro … --rw … -- program`: add the program's arguments to it.
    pub fn command(&self, exe: &Path, program: &Path) -> Command {
        let mut cmd = Command::new(exe);
        cmd.arg(JAIL_COMMAND);
        for p in &self.read {
            cmd.arg("--ro").arg(p);
        }
        for p in &self.write {
            cmd.arg("--rw").arg(p);
        }
        if let Some(uid) = self.uid {
            cmd.arg("--uid").arg(uid.to_string());
        }
        for p in &self.cgroups {
            cmd.arg("--cgroup").arg(p);
        }
        cmd.arg("--").arg(program);
        cmd
    }

    /// Parses what [`Jail::command`] wrote: the jail and the program with its arguments.
    pub fn parse(args: &[std::ffi::OsString]) -> Result<(Jail, Vec<std::ffi::OsString>), String> {
        let mut jail = Jail::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.to_str() {
                Some("--ro") => jail.read.push(it.next().ok_or("--ro needs a path")?.into()),
                Some("--rw") => jail
                    .write
                    .push(it.next().ok_or("--rw needs a path")?.into()),
                Some("--cgroup") => {
                    let p = PathBuf::from(it.next().ok_or("--cgroup needs a path")?);
                    if !p.starts_with("/sys/fs/cgroup") || !p.ends_with("cgroup.procs") {
                        return Err(format!(
                            "{} is not a control group's procs file",
                            p.display()
                        ));
                    }
                    jail.cgroups.push(p);
                }
                Some("--uid") => {
                    let n = it.next().and_then(|n| n.to_str()?.parse::<u32>().ok());
                    match n {
                        Some(n) if n != 0 => jail.uid = Some(n),
                        _ => return Err("--uid needs a uid other than 0".into()),
                    }
                }
                Some("--") => {
                    let rest: Vec<_> = it.cloned().collect();
                    if rest.is_empty() {
                        return Err("no program after --".into());
                    }
                    return Ok((jail, rest));
                }
                _ => return Err(format!("unexpected argument {a:?}")),
            }
        }
        Err("no program after --".into())
    }
}

/// How much of the wall this kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    Fully,
    Partly,
    /// The kernel has no Landlock (or it is switched off).
    Not,
}

/// Enforces `jail` on this process (and what it executes from now on), with no new
/// privileges. Paths that do not exist are skipped.
#[cfg(target_os = "linux")]
pub fn enforce(jail: &Jail) -> Result<Enforced, String> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        path_beneath_rules,
    };
    let abi = ABI::V5;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&jail.read, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&jail.write, AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("cannot enforce the Landlock rules: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partly,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn enforce(_jail: &Jail) -> Result<Enforced, String> {
    Ok(Enforced::Not)
}

/// Moves this process into the control groups of `jail` (before anything else: what it
/// allocates from then on counts against their limits).
pub fn join_cgroups(jail: &Jail) -> Result<(), String> {
    let pid = std::process::id().to_string();
    for p in &jail.cgroups {
        std::fs::write(p, &pid).map_err(|e| format!("cannot join {}: {e}", p.display()))?;
    }
    Ok(())
}

/// The capabilities a jailed QEMU keeps when it runs as another uid: opening what the
/// Landlock rules allow, whoever owns it.
#[cfg(target_os = "linux")]
const KEPT: [caps::Capability; 2] = [
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_DAC_READ_SEARCH,
];

/// Becomes `uid` (and gid `uid`, no supplementary groups) keeping only [`KEPT`], as ambient
/// capabilities that the program executed next keeps; every other capability leaves the
/// bounding set. Only root can; the parent-death signal (cleared by the change) is set again.
#[cfg(target_os = "linux")]
pub fn become_uid(uid: u32) -> Result<(), String> {
    use caps::{CapSet, CapsHashSet};
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("cannot {what}: {e}");
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() };
    let keep: CapsHashSet = KEPT.into_iter().collect();
    for c in caps::all() {
        // A capability this kernel does not know is not in the bounding set either.
        if !keep.contains(&c) && caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, c).map_err(|e| fail("drop a capability", &e))?;
        }
    }
    // SAFETY: plain syscalls on this process's own credentials; every result is checked.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(fail("keep capabilities", &std::io::Error::last_os_error()));
        }
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(uid, uid, uid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return Err(fail(
                &format!("become uid {uid}"),
                &std::io::Error::last_os_error(),
            ));
        }
    }
    for set in [CapSet::Permitted, CapSet::Effective, CapSet::Inheritable] {
        caps::set(None, set, &keep).map_err(|e| fail("set the capabilities", &e))?;
    }
    for c in KEPT {
        caps::raise(None, CapSet::Ambient, c).map_err(|e| fail("keep a capability", &e))?;
    }
    // SAFETY: as above.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != parent {
            return Err("its parent is gone".into());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn become_uid(_uid: u32) -> Result<(), String> {
    Err("running QEMU as another uid is for Linux".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vms_get_unprivileged_uids_of_their_own() {
        let names: Vec<String> = (1..=64).map(|i| format!("task-{i}-1")).collect();
        let uids: std::collections::BTreeSet<u32> = names.iter().map(|n| vm_uid(n)).collect();
        assert!(uids.len() >= 63, "{uids:?}");
        assert!(
            uids.iter()
                .all(|&u| (VM_UID_BASE..VM_UID_BASE + 65536).contains(&u))
        );
        const { assert!(VM_UID_BASE + 65536 < 1 << 31) };
        assert_eq!(vm_uid("pool-0a1b2c3d"), vm_uid("pool-0a1b2c3d"));
    }

    #[test]
    fn the_command_line_round_trips() {
        let j = Jail::for_vm(
            Path::new("/opt/q/bin/qemu-system-x86_64"),
            Path::new("/x/berth"),
            &[Path::new("/data/images/a")],
            &[Path::new("/data/run/vm-1")],
            Some(vm_uid("vm-1")),
        );
        assert!(j.read.contains(&PathBuf::from("/opt/q")));
        let cmd = j.command(
            Path::new("/x/berth"),
            Path::new("/opt/q/bin/qemu-system-x86_64"),
        );
        let args: Vec<_> = cmd.get_args().map(|a| a.to_os_string()).collect();
        assert_eq!(args[0], JAIL_COMMAND);
        let (back, program) = Jail::parse(&args[1..]).unwrap();
        assert_eq!(back, j);
        assert_eq!(
            program,
            vec![std::ffi::OsString::from("/opt/q/bin/qemu-system-x86_64")]
        );
        assert!(Jail::parse(&["--ro".into()]).is_err());
        // Never "become" root, nor a uid that is not a number.
        for bad in ["0", "-1", "root", ""] {
            assert!(Jail::parse(&["--uid".into(), bad.into(), "--".into(), "q".into()]).is_err());
        }
        assert!(Jail::parse(&["--".into()]).is_err());
    }
}
