//! The Landlock wall under QEMU (berth_vm::jail): the jail itself, then a real attempt's
//! QEMU asked (over its own monitor, as a QEMU taken over by its guest could do anything)
//! to open a host file outside its jail.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use berth_tests::{TestEnv, berth_bin, simple_repo, wait_until};

/// Whether this kernel enforces Landlock (its ABI version query).
fn landlock() -> bool {
    // SAFETY: the version query takes no pointer to memory it writes.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    v >= 1
}

const SYSTEM: [&str; 5] = ["/usr", "/lib", "/lib64", "/bin", "/etc"];

fn jailed(rw: &std::path::Path, program: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(berth_bin());
    cmd.arg("__jail");
    for p in SYSTEM {
        cmd.args(["--ro", p]);
    }
    cmd.arg("--rw").arg(rw).arg("--").args(program);
    cmd.output().unwrap()
}

#[test]
fn the_jail_lets_a_program_reach_its_paths_and_nothing_else() {
    if !landlock() {
        eprintln!("this kernel has no Landlock: nothing to check");
        return;
    }
    let allowed = tempfile::tempdir().unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("s"), "secret").unwrap();
    std::fs::write(allowed.path().join("a"), "fine").unwrap();
    std::os::unix::fs::symlink(secret.path().join("s"), allowed.path().join("link")).unwrap();
    let a = allowed.path().join("a");
    let out = jailed(allowed.path(), &["cat", a.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fine", "{out:?}");
    for target in [secret.path().join("s"), allowed.path().join("link")] {
        let out = jailed(allowed.path(), &["cat", target.to_str().unwrap()]);
        assert!(
            !out.status.success(),
            "read {target:?} from inside the jail"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    }
    let new = secret.path().join("new");
    let out = jailed(allowed.path(), &["touch", new.to_str().unwrap()]);
    assert!(!out.status.success() && !new.exists());
    // Nonsense is refused before anything runs.
    let out = Command::new(berth_bin())
        .args(["__jail", "--ro"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
}

/// As root, the jail runs its program as an unprivileged uid with only the DAC capabilities:
/// it cannot signal or look into a root process (Berth, virtiofsd), nor raise a capability.
#[test]
fn as_root_a_jailed_program_is_another_uid_that_cannot_touch_root_processes() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the jail keeps the user's own uid");
        return;
    }
    let allowed = tempfile::tempdir().unwrap();
    let me = std::process::id();
    let uid = berth_vm::jail::vm_uid("attempt-9-9").to_string();
    let mut cmd = Command::new(berth_bin());
    cmd.arg("__jail");
    for p in SYSTEM.iter().chain(&["/proc"]) {
        cmd.args(["--ro", p]);
    }
    cmd.arg("--rw")
        .arg(allowed.path())
        .args(["--uid", &uid, "--"]);
    cmd.args(["sh", "-c"]).arg(format!(
        "id -u; grep -E '^Cap(Eff|Bnd|Amb)' /proc/self/status;          kill -0 {me} 2>/dev/null && echo SIGNALLED-ROOT;          head -c 1 /proc/{me}/environ >/dev/null 2>&1 && echo READ-ROOT-ENVIRON;          head -c 1 /proc/{me}/mem >/dev/null 2>&1 && echo READ-ROOT-MEMORY;          echo done"
    ));
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.starts_with(&format!("{uid}\n")), "{text}");
    // CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH only, and nothing more to be had.
    for set in ["CapEff", "CapBnd", "CapAmb"] {
        assert!(
            text.contains(&format!("{set}:\t0000000000000006")),
            "{text}"
        );
    }
    for breach in ["SIGNALLED-ROOT", "READ-ROOT-ENVIRON", "READ-ROOT-MEMORY"] {
        assert!(!text.contains(breach), "{breach}: {text}");
    }
    assert!(text.contains("done"), "{text}");
}

/// One QMP command on a fresh monitor connection; its answer line.
fn qmp(socket: &std::path::Path, command: &str) -> String {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap(); // the greeting
    let mut w = s;
    writeln!(w, r#"{{"execute":"qmp_capabilities"}}"#).unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    writeln!(w, "{command}").unwrap();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        // Events may come first.
        if !line.contains("\"event\"") {
            return line;
        }
    }
}

#[test]
fn an_attempts_qemu_cannot_open_a_host_file_outside_its_jail() {
    if !landlock() {
        eprintln!("this kernel has no Landlock: nothing to check");
        return;
    }
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let out = env
        .berth()
        .args(["task", "new", "--repo"])
        .arg(&repo)
        .args(["--", "sleep", "120"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let run = env.run_dir().join("attempt-1-1");
    let socket = run.join("qmp.sock");
    assert!(wait_until(Duration::from_secs(120), || run
        .join("agent.sock")
        .exists()
        && socket.exists()));
    let secret = env.home.path().join("host-secret.txt");
    std::fs::write(&secret, "secret").unwrap();
    let add = |node: &str, file: &std::path::Path| {
        qmp(
            &socket,
            &format!(
                r#"{{"execute":"blockdev-add","arguments":{{"driver":"file","node-name":"{node}","filename":"{}","read-only":true}}}}"#,
                file.display()
            ),
        )
    };
    // Its own overlay it may open (so the monitor works and the answer means something)…
    let inside = add("inside", &run.join("overlay.qcow2"));
    assert!(inside.contains("\"return\""), "{inside}");
    // …a file of the user's, or another attempt's workspace, it may not.
    let outside = add("outside", &secret);
    assert!(
        outside.contains("\"error\"") && outside.contains("Permission denied"),
        "{outside}"
    );
    let other = add("other", &env.data_dir().join("berth.db"));
    assert!(other.contains("Permission denied"), "{other}");
    // As root, the QEMU itself is an unprivileged uid of the VM's own.
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let pid = std::fs::read_to_string(run.join("qemu.pid")).unwrap();
        let pid = pid.split_whitespace().next().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = berth_vm::jail::vm_uid("attempt-1-1");
        assert!(
            status.contains(&format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}")),
            "{status}"
        );
        assert!(status.contains("CapBnd:\t0000000000000006"), "{status}");
    }
    // Where the host gives control groups, the QEMU is in one of its own, with its limits.
    let cgroups = std::fs::read_to_string(run.join("cgroups")).unwrap_or_default();
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if berth_vm::cgroup::Hierarchy::detect(std::path::Path::new("/sys/fs/cgroup"), root).is_some() {
        let pid = std::fs::read_to_string(run.join("qemu.pid")).unwrap();
        let pid = pid.split_whitespace().next().unwrap().to_string();
        assert!(!cgroups.is_empty());
        for dir in cgroups.lines() {
            let procs = std::fs::read_to_string(format!("{dir}/cgroup.procs")).unwrap();
            assert!(procs.lines().any(|p| p == pid), "{dir}: {procs}");
            // Where there is a CPU limit: its vCPU + one.
            if let Ok(quota) = std::fs::read_to_string(format!("{dir}/cpu.cfs_quota_us")) {
                assert_eq!(quota.trim(), "200000", "{dir}");
            }
        }
    }
    // The run directory's record of the group is lost while the VM runs (as when a data
    // directory is deleted under it): the group still goes with the VM.
    let _ = std::fs::remove_file(run.join("cgroups"));
    let _ = env.berth().args(["stop", "1.1"]).output();
    assert!(
        wait_until(Duration::from_secs(60), || cgroups
            .lines()
            .all(|d| !std::path::Path::new(d).exists())),
        "{cgroups}"
    );
}

/// A jailed program in a control group of its own (as QEMU is, where the host gives one):
/// over its memory limit it is killed, past its task limit it cannot fork, and the group goes
/// away with everything in it.
#[test]
fn a_jailed_program_cannot_take_more_memory_or_tasks_than_its_group_allows() {
    use berth_vm::cgroup::{GroupLimits, Hierarchy, VmCgroup};
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let Some(h) = Hierarchy::detect(std::path::Path::new("/sys/fs/cgroup"), root) else {
        eprintln!("no control groups Berth can make here: nothing to check");
        return;
    };
    let name = format!("jail-test-{}", std::process::id());
    let limits = GroupLimits {
        memory: 96 << 20,
        pids: 24,
        // A fifth of a CPU.
        cpu_millis: Some(200),
    };
    let cg = VmCgroup::create(&h, &name, limits).unwrap();
    let allowed = tempfile::tempdir().unwrap();
    let jailed = |script: &str| {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("__jail");
        for p in SYSTEM {
            cmd.args(["--ro", p]);
        }
        cmd.arg("--rw").arg(allowed.path());
        for p in cg.procs_files() {
            cmd.arg("--cgroup").arg(p);
        }
        cmd.args(["--", "python3", "-c", script]);
        cmd.output().unwrap()
    };
    // 64 MiB fits; 400 MiB is killed by the kernel (SIGKILL), not refused by the program.
    let fits = jailed("b = bytearray(64 << 20); print('fits')");
    assert_eq!(String::from_utf8_lossy(&fits.stdout), "fits\n", "{fits:?}");
    let over = jailed("b = bytearray(400 << 20); print('took it')");
    assert!(
        !String::from_utf8_lossy(&over.stdout).contains("took it"),
        "{over:?}"
    );
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&over.status),
        Some(libc::SIGKILL),
        "{over:?}"
    );
    assert!(cg.oom_kills() >= 1);
    // A busy loop for a second: where the host has the CPU controller, the kernel holds it
    // back (it may run 20 ms of every 100 ms).
    if h.has_cpu() {
        let spin = jailed(
            "import time\n\
             end = time.monotonic() + 1.0\n\
             while time.monotonic() < end: pass\n\
             print('spun')\n",
        );
        assert_eq!(String::from_utf8_lossy(&spin.stdout), "spun\n", "{spin:?}");
        assert!(cg.cpu_throttled() >= 1, "{:?}", cg.dirs);
    }
    // A fork bomb: at most 24 tasks at once, the rest refused.
    let bomb = jailed(
        "import os, time\n\
         made = 0\n\
         for i in range(200):\n\
         \x20   try:\n\
         \x20       if os.fork() == 0:\n\
         \x20           time.sleep(5); os._exit(0)\n\
         \x20       made += 1\n\
         \x20   except OSError:\n\
         \x20       break\n\
         print('made', made, flush=True)\n\
         os._exit(0)\n",
    );
    let text = String::from_utf8_lossy(&bomb.stdout);
    let made: u32 = text
        .trim()
        .strip_prefix("made ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{bomb:?}"));
    assert!(made < 24, "{made} forks in a group of 24 tasks");
    // Removing the group kills what is left in it (the sleeping children) and the group.
    cg.remove();
    assert!(cg.dirs.iter().all(|d| !d.exists()), "{:?}", cg.dirs);
}

/// A QEMU that goes over its group's memory limit (as a QEMU its guest took over could try)
/// is killed by the kernel, only it, and the attempt says why. The limit is lowered here to
/// just above what the running VM holds; the guest then touches 300 MiB.
#[test]
fn a_qemu_over_its_memory_limit_is_killed_and_the_attempt_says_why() {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if berth_vm::cgroup::Hierarchy::detect(std::path::Path::new("/sys/fs/cgroup"), root).is_none() {
        eprintln!("no control groups Berth can make here: nothing to check");
        return;
    }
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let script = "while [ ! -f go ]; do sleep 0.2; done; \
                  python3 -c 'b = bytearray(300 << 20); print(\"took it\")'; sleep 300";
    let out = env
        .berth()
        .args(["task", "new", "--memory", "512", "--repo"])
        .arg(&repo)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let state = |env: &TestEnv| {
        let out = env.berth().args(["ls", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or_default()
    };
    assert!(wait_until(
        Duration::from_secs(180),
        || state(&env)["state"] == "running"
    ));
    let run = env.run_dir().join("attempt-1-1");
    let groups = std::fs::read_to_string(run.join("cgroups")).unwrap();
    let memory = groups
        .lines()
        .find(|d| {
            let d = std::path::Path::new(d);
            d.join("memory.limit_in_bytes").exists() || d.join("memory.max").exists()
        })
        .unwrap()
        .to_string();
    let (usage, limit) = if std::path::Path::new(&memory).join("memory.max").exists() {
        ("memory.current", "memory.max")
    } else {
        ("memory.usage_in_bytes", "memory.limit_in_bytes")
    };
    let held: u64 = std::fs::read_to_string(format!("{memory}/{usage}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(format!("{memory}/{limit}"), (held + (64 << 20)).to_string()).unwrap();
    std::fs::write(env.data_dir().join("attempts/1.1/work/go"), "").unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || state(&env)["state"]
            == "failed"),
        "{}",
        state(&env)
    );
    let rec = state(&env);
    let error = rec["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("killed it for going over its memory limit"),
        "{rec}"
    );
    let logs = env.berth().args(["logs", "1.1"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&logs.stdout).contains("took it"));
    // Nothing of the VM is left, its group included.
    assert!(wait_until(Duration::from_secs(30), || groups
        .lines()
        .all(|d| !std::path::Path::new(d).exists())));
    assert!(wait_until(Duration::from_secs(30), || {
        berth_tests::Leftovers::of(env.data_dir(), None).is_clean()
    }));
}

/// As root, an attempt's virtiofsd is not root: it runs as the VM's own uid, the workspace is
/// that uid's, and what the guest makes there (a setuid file included) belongs to that uid on
/// the host, never to root; the attempt's work still pulls back.
#[test]
fn as_root_virtiofsd_serves_the_workspace_as_the_vms_uid() {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: virtiofsd runs as the user already");
        return;
    }
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let script = "echo made > new.txt; cp /bin/sh ./shell; chmod 4755 ./shell; \
                  git add new.txt && git commit -qm made && echo committed; sleep 300";
    let out = env
        .berth()
        .args(["task", "new", "--repo"])
        .arg(&repo)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let logs = || {
        String::from_utf8_lossy(&env.berth().args(["logs", "1.1"]).output().unwrap().stdout)
            .into_owned()
    };
    assert!(
        wait_until(Duration::from_secs(180), || logs().contains("committed")),
        "{}",
        logs()
    );
    let uid = berth_vm::jail::vm_uid("attempt-1-1");
    let run = env.run_dir().join("attempt-1-1");
    let pid = std::fs::read_to_string(run.join("virtiofsd.pid")).unwrap();
    let pid = pid.split_whitespace().next().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.contains(&format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}")),
        "{status}"
    );
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    let work = env.data_dir().join("attempts/1.1/work");
    for f in ["", "new.txt", "shell", ".git", ".git/HEAD"] {
        let m = std::fs::symlink_metadata(work.join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), (uid, uid), "{f}");
    }
    // The guest's setuid file is a setuid to that uid, not to root.
    assert_ne!(
        std::fs::metadata(work.join("shell")).unwrap().mode() & 0o4000,
        0
    );
    let stop = env.berth().args(["stop", "1.1"]).output().unwrap();
    assert!(stop.status.success(), "{stop:?}");
    let pull = env.berth().args(["pull", "1.1"]).output().unwrap();
    assert!(pull.status.success(), "{pull:?}");
    assert_eq!(
        berth_tests::git(&repo, &["show", "berth/1/1:new.txt"]),
        "made\n"
    );
}
