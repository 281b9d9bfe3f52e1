//! A hostile guest replaces the agent (here: PID 1 is a script from the share, as root in
//! the guest can always arrange). Whatever it sends, the host neither crashes, hangs nor
//! grows; the user gets a clear error; nothing is left behind.

use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::{Leftovers, TestEnv};

/// Finds the agent port and runs `body` with `$port` set, as the guest's PID 1.
fn hostile_init(share: &std::path::Path, body: &str) {
    let script = format!(
        "#!/bin/bash\n\
         for d in /sys/class/virtio-ports/*; do\n\
           [ \"$(cat $d/name)\" = org.berth.agent.0 ] && port=/dev/${{d##*/}}\n\
         done\n\
         {body}\n"
    );
    let path = share.join("evil.sh");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Run {
    code: Option<i32>,
    stderr: String,
    peak_rss_kib: u64,
}

/// Runs `berth vm run` against the hostile guest, sampling berth's peak memory, and fails
/// the test (instead of hanging it) if berth does not return within `limit`.
fn run_against(env: &TestEnv, share: &std::path::Path, extra: &[&str], limit: Duration) -> Run {
    let mut child = env
        .berth()
        .args(["vm", "run", "--share"])
        .arg(share)
        .args(["--kernel-arg", "berth.init=/work/evil.sh"])
        .args(extra)
        .args(["--", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut peak = 0;
    loop {
        if let Some(kib) = berth_tests::peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("berth hung against a hostile guest for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        peak_rss_kib: peak,
    }
}

fn assert_refused(env: &TestEnv, share: &std::path::Path, run: &Run, expect: &str) {
    assert_eq!(run.code, Some(125), "{}", run.stderr);
    assert!(
        run.stderr.contains(expect),
        "wanted {expect:?} in: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(
        run.peak_rss_kib < 64 * 1024,
        "berth grew to {} KiB",
        run.peak_rss_kib
    );
    let clean = berth_tests::wait_until(Duration::from_secs(20), || {
        Leftovers::of(env.data_dir(), Some(share)).is_clean()
    });
    assert!(clean, "{:?}", Leftovers::of(env.data_dir(), Some(share)));
}

#[test]
fn a_4_gib_length_prefix_is_refused_without_allocating_it() {
    let env = TestEnv::new();
    let share = env.share();
    hostile_init(
        share.path(),
        "while true; do printf '\\xff\\xff\\xff\\xff' > $port; sleep 0.2; done",
    );
    let run = run_against(&env, share.path(), &[], Duration::from_secs(120));
    assert_refused(&env, share.path(), &run, "frame of 4294967295 bytes");
    assert!(
        run.stderr.contains("broke the agent protocol"),
        "{}",
        run.stderr
    );
}

#[test]
fn garbage_bytes_are_a_protocol_error_not_a_crash() {
    let env = TestEnv::new();
    let share = env.share();
    hostile_init(
        share.path(),
        "while true; do head -c 65536 /dev/urandom > $port; done",
    );
    let run = run_against(&env, share.path(), &[], Duration::from_secs(120));
    assert_refused(&env, share.path(), &run, "broke the agent protocol");
}

#[test]
fn a_guest_that_says_nothing_times_out_with_a_clear_error() {
    let env = TestEnv::new();
    let share = env.share();
    hostile_init(share.path(), "exec sleep 100000");
    let run = run_against(
        &env,
        share.path(),
        &["--boot-timeout", "8"],
        Duration::from_secs(120),
    );
    assert_refused(&env, share.path(), &run, "did not answer within 8s");
    // The console log is kept where the message says.
    assert!(
        std::fs::read_dir(env.data_dir().join("logs"))
            .unwrap()
            .count()
            > 0
    );
}

#[test]
fn a_flood_of_valid_output_streams_through_in_bounded_memory() {
    let env = TestEnv::new();
    let mut child = env
        .berth()
        .args(["vm", "run", "--", "sh", "-c", "head -c 100000000 /dev/zero"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let mut peak = 0u64;
    use std::io::Read;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == 0));
        total += n;
        // A slow reader: berth must apply backpressure, not buffer the guest's output.
        if total % (8 << 20) < n {
            std::thread::sleep(Duration::from_millis(200));
            if let Some(kib) = berth_tests::peak_rss_kib(pid) {
                peak = peak.max(kib);
            }
        }
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(total, 100_000_000);
    assert!(peak > 0 && peak < 64 * 1024, "berth grew to {peak} KiB");
}

#[test]
fn a_guest_flooding_its_console_fills_at_most_twice_the_cap_on_the_host() {
    let env = TestEnv::new();
    let mut vm = env.boot_vm(None);
    // Guest root writes 3 MiB to the serial console (the host keeps at most 2 × 1 MiB).
    let out = vm.sh_as_root("head -c 3145728 /dev/zero | tr '\\0' x > /dev/ttyS0; echo done");
    assert_eq!(out.stdout, "done\n", "{out:?}");
    let run = std::fs::read_dir(env.run_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("console.log").exists())
        .expect("the VM's run dir");
    let kept = |name: &str| {
        std::fs::metadata(run.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    // The console is copied as it comes; give the last bytes a moment to land.
    std::thread::sleep(Duration::from_secs(1));
    let total = kept("console.log") + kept("console.log.1");
    assert!(total <= 2 << 20, "console kept {total} bytes");
    assert_eq!(kept("console.log.1"), 1 << 20, "the log rotated");
    vm.shutdown();
}
