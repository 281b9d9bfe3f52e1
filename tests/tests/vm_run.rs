//! `berth vm run` as a user runs it: real VM, real agent, exit codes passed through.

use berth_tests::{Leftovers, TestEnv};

fn run(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.berth().args(["vm", "run"]).args(args).output().unwrap()
}

#[test]
fn uname_prints_the_guest_kernel_and_exit_codes_pass_through() {
    let env = TestEnv::new();
    let out = run(&env, &["--", "uname", "-a"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.starts_with("Linux berth "), "{stdout}");
    // The guest kernel is the image's, not the host's.
    let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let image = std::fs::read_dir(env.data_dir().join("images"))
        .unwrap()
        .flatten()
        .find_map(|e| std::fs::read_to_string(e.path().join("manifest.json")).ok())
        .unwrap();
    let guest_release = stdout.split_whitespace().nth(2).unwrap();
    assert!(
        image.contains(guest_release),
        "{guest_release} not in {image}"
    );
    if host.trim() != guest_release {
        assert!(!stdout.contains(host.trim()));
    }

    let out = run(&env, &["--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // Under TCG the guest gets `-cpu max`: the instructions real agent binaries are built
    // for (the default model lacks them and they die with "Illegal instruction").
    if berth_tests::auto_accel() == berth_vm::Accel::Tcg {
        let out = run(&env, &["--", "grep", "-m1", "^flags", "/proc/cpuinfo"]);
        let flags = String::from_utf8_lossy(&out.stdout);
        for f in ["sse4_2", "avx2", "popcnt"] {
            assert!(flags.split_whitespace().any(|x| x == f), "no {f}: {flags}");
        }
    }

    // Killed by a signal: the shell convention 128 + N.
    let out = run(&env, &["--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    assert!(Leftovers::of(env.data_dir(), None).is_clean());
}

#[test]
fn commands_run_as_the_unprivileged_agent_user_in_work() {
    let env = TestEnv::new();
    let out = run(
        &env,
        &[
            "--env",
            "GREETING=hi there",
            "--",
            "sh",
            "-c",
            "id -un; pwd; echo \"$GREETING\"; cat /proc/1/comm",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "agent\n/work\nhi there\nberth-agent\n"
    );
}

#[test]
fn stdin_is_forwarded_with_i_and_a_missing_program_is_a_clear_127() {
    let env = TestEnv::new();
    let out = berth_tests::output_with_stdin(
        env.berth()
            .args(["vm", "run", "-i", "--", "sh", "-c", "tr a-z A-Z; exit 3"]),
        b"hello vm\n",
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO VM\n");

    let out = run(&env, &["--", "no-such-program-here"]);
    assert_eq!(out.status.code(), Some(127));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-program-here"), "{err}");
}

#[test]
fn a_pty_is_a_real_terminal_of_the_requested_size() {
    let env = TestEnv::new();
    let out = run(&env, &["-t", "--", "sh", "-c", "tty; stty size"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("/dev/pts/"), "{stdout}");
    // Not a terminal here, so the default size is used.
    assert!(stdout.contains("24 80"), "{stdout}");
}

#[test]
fn bad_input_is_refused_with_an_actionable_message() {
    let env = TestEnv::new();
    let out = run(&env, &["--share", "/definitely/not/here", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot share /definitely/not/here"));

    let out = run(&env, &["--image", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("berth image build"));

    let out = run(&env, &["--accel", "xen", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    assert!(Leftovers::of(env.data_dir(), None).is_clean());
}

/// The guest RAM a VM holds on the host (QEMU's shared-memory PSS), KiB.
fn guest_ram_kib(data: &std::path::Path) -> u64 {
    let Some(pid) = std::fs::read_dir(data.join("run"))
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| std::fs::read_to_string(e.path().join("qemu.pid")).ok())
        .and_then(|p| p.split_whitespace().next().map(str::to_string))
    else {
        return 0;
    };
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Pss_Shmem:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn memory_the_guest_frees_goes_back_to_the_host() {
    use std::io::BufRead;
    let env = TestEnv::new();
    // 256 MiB touched, then freed; the guest then waits (until the test is done with it).
    let mut child = env
        .berth()
        .args(["vm", "run", "-i", "--memory", "512", "--", "python3", "-c"])
        .arg(
            "import sys, time\n\
             b = bytearray(256 * 1024 * 1024)\n\
             for i in range(0, len(b), 4096): b[i] = 1\n\
             print('touched', flush=True)\n\
             sys.stdin.readline()\n\
             del b\n\
             print('freed', flush=True)\n\
             sys.stdin.readline()\n",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(next(), "touched");
    let held = guest_ram_kib(env.data_dir());
    assert!(
        held > 256 * 1024,
        "the touched memory is not on the host: {held} KiB"
    );
    std::io::Write::write_all(&mut stdin, b"\n").unwrap();
    assert_eq!(next(), "freed");
    // Free page reporting (virtio-balloon): the freed pages leave the host's memory.
    let back = berth_tests::wait_until(std::time::Duration::from_secs(60), || {
        guest_ram_kib(env.data_dir()) + 200 * 1024 < held
    });
    let now = guest_ram_kib(env.data_dir());
    let _ = std::io::Write::write_all(&mut stdin, b"\n");
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(
        back,
        "still {now} KiB of {held} KiB after the guest freed 256 MiB"
    );
    assert!(status.success(), "{status:?}");
}
