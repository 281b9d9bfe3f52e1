//! `berth __jail --ro P... --rw P... [--uid U] -- PROGRAM ARGS`: becomes uid U with only the
//! DAC capabilities (when given), enforces a Landlock jail on itself (see `berth_vm::jail`)
//! and becomes PROGRAM (same pid). Started for each VM's QEMU.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use berth_core::host::jail::{Enforced, Jail, enforce};

pub fn run(args: &[std::ffi::OsString]) -> ExitCode {
    let (jail, program) = match Jail::parse(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("berth __jail: {e}");
            return ExitCode::from(crate::BERTH_FAILURE);
        }
    };
    if let Err(e) = berth_core::host::jail::join_cgroups(&jail) {
        eprintln!("berth: jail: {e} (BERTH_NO_CGROUP=1 runs VMs without their control group)");
        return ExitCode::from(crate::BERTH_FAILURE);
    }
    if let Some(uid) = jail.uid
        && let Err(e) = berth_core::host::jail::become_uid(uid)
    {
        eprintln!("berth: jail: {e}");
        return ExitCode::from(crate::BERTH_FAILURE);
    }
    match enforce(&jail) {
        // Where it lands: the program's log (QEMU's stderr is its run directory's log).
        Ok(Enforced::Fully) => {}
        Ok(Enforced::Partly) => eprintln!("berth: jail: Landlock enforced in part (older kernel)"),
        Ok(Enforced::Not) => eprintln!("berth: jail: this kernel does not enforce Landlock"),
        Err(e) => {
            eprintln!("berth: jail: {e}");
            return ExitCode::from(crate::BERTH_FAILURE);
        }
    }
    let e = std::process::Command::new(&program[0])
        .args(&program[1..])
        .exec();
    eprintln!("berth __jail: cannot run {:?}: {e}", program[0]);
    ExitCode::from(crate::BERTH_FAILURE)
}
