//! Whatever happens, a VM leaves nothing behind: no process, socket, overlay or run dir.

use std::process::{Child, Stdio};
use std::time::Duration;

use berth_tests::{Leftovers, TestEnv, wait_until};

/// Starts `berth vm run` with a long command and waits until the command is running.
fn start_long_run(env: &TestEnv, share: &std::path::Path, extra: &[&str]) -> Child {
    let child = env
        .berth()
        .args(["vm", "run", "--share"])
        .arg(share)
        .args(extra)
        .args(["--", "sh", "-c", "touch /work/started; sleep 600"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || share.join("started").exists()),
        "the command never started"
    );
    child
}

fn assert_clean(env: &TestEnv, share: &std::path::Path) {
    let clean = wait_until(Duration::from_secs(20), || {
        Leftovers::of(env.data_dir(), Some(share)).is_clean()
    });
    assert!(
        clean,
        "left behind: {:?}",
        Leftovers::of(env.data_dir(), Some(share))
    );
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill takes plain integers.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

#[test]
fn ctrl_c_stops_the_vm_and_leaves_nothing() {
    let env = TestEnv::new();
    let share = env.share();
    let child = start_long_run(&env, share.path(), &[]);
    assert!(!Leftovers::of(env.data_dir(), Some(share.path())).is_clean());
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_clean(&env, share.path());
}

#[test]
fn killing_the_cli_with_sigkill_leaves_nothing() {
    let env = TestEnv::new();
    let share = env.share();
    let mut child = start_long_run(&env, share.path(), &[]);
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    // QEMU and virtiofsd die with their parent; the guard removes the run directory.
    assert_clean(&env, share.path());
}

#[test]
fn a_guest_that_stops_answering_is_stopped_with_a_clear_error() {
    let env = TestEnv::new();
    let share = env.share();
    let child = start_long_run(&env, share.path(), &["--hang-timeout", "5"]);
    // Freeze the guest's CPUs through QMP: from the host it is now a hung guest.
    let run = std::fs::read_dir(env.run_dir())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut qmp = std::os::unix::net::UnixStream::connect(run.join("qmp.sock")).unwrap();
    use std::io::Write;
    qmp.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"stop\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stopped answering"), "{err}");
    // The console log is kept for the user, outside the (removed) run directory.
    assert!(
        err.contains(&env.data_dir().join("logs").display().to_string()),
        "{err}"
    );
    assert_clean(&env, share.path());
}

#[test]
fn qemu_dying_under_a_running_command_is_reported_and_cleaned_up() {
    let env = TestEnv::new();
    let share = env.share();
    let child = start_long_run(&env, share.path(), &[]);
    let run = std::fs::read_dir(env.run_dir())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pid: i32 = std::fs::read_to_string(run.join("qemu.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: kill takes plain integers; the pid is the test VM's QEMU.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("closed the agent channel"));
    assert_clean(&env, share.path());
}

#[test]
fn a_later_berth_cleans_up_after_a_vm_whose_owner_and_guard_both_died() {
    let env = TestEnv::new();
    let share = env.share();
    let mut child = start_long_run(&env, share.path(), &[]);
    let run = std::fs::read_dir(env.run_dir())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let guard: i32 = std::fs::read_to_string(run.join("guard.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: kill takes plain integers; these are this test's own processes.
    unsafe {
        libc::kill(guard, libc::SIGKILL);
    }
    signal(&child, libc::SIGKILL);
    let _ = child.wait();
    // The processes die with their parent, but nobody removed the run directory...
    assert!(wait_until(Duration::from_secs(10), || {
        Leftovers::of(env.data_dir(), Some(share.path()))
            .processes
            .is_empty()
    }));
    assert!(run.exists());
    // ...until the next berth command reconciles.
    let out = env
        .berth()
        .args(["vm", "run", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!run.exists());
    assert_clean(&env, share.path());
}
