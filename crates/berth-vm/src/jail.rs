//! The wall under QEMU: a Landlock ruleset that limits its file system to the system's
//! programs and libraries (read and execute), the VM's image and disk layers (read), and its
//! own run directory and devices (write), with no new privileges. The network bridges QEMU
//! starts (`guestfwd ... cmd:`) inherit it. A QEMU that a guest took over through a device
//! bug still cannot read the user's files or another attempt's workspace.
//!
//! QEMU is started as `berth __jail --ro P... --rw P... -- qemu ARGS`: that small process
//! enforces the rules on itself, single-threaded, then executes QEMU (same pid), so no
//! allocation happens between fork and exec. Where the kernel has no Landlock the rules are
//! not enforced; `berth doctor` says so.

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
    pub fn for_vm(program: &Path, exe: &Path, read: &[&Path], write: &[&Path]) -> Jail {
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
        Jail { read: r, write: w }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_round_trips() {
        let j = Jail::for_vm(
            Path::new("/opt/q/bin/qemu-system-x86_64"),
            Path::new("/x/berth"),
            &[Path::new("/data/images/a")],
            &[Path::new("/data/run/vm-1")],
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
        assert!(Jail::parse(&["--".into()]).is_err());
    }
}
