//! The warm pool (`berth pool`): booted VMs handed to attempts instead of a boot. Each VM
//! serves one attempt, sees only that attempt's workspace, and a pooled VM that is not as it
//! was made (something in its share, its VM dead) is never handed an attempt.

use std::time::Duration;

use berth_tests::{TestEnv, simple_repo, wait_until};
use serde_json::Value;

/// One pool test at a time: each boots several VMs (one has ten at once), and two of them
/// side by side on a 2-core TCG machine starve each other's boots.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Empties the pool when the test ends, passed or not (nothing outlives it).
struct Drain<'a>(&'a TestEnv);

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let _ = self.0.berth().args(["pool", "drain", "--off"]).output();
    }
}

fn json(env: &TestEnv, args: &[&str]) -> Value {
    let out = env.berth().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ok(env: &TestEnv, args: &[&str]) -> String {
    let out = env.berth().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ready(env: &TestEnv) -> Vec<String> {
    json(env, &["pool", "ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "ready")
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn wait_ready(env: &TestEnv, n: usize) {
    assert!(
        wait_until(Duration::from_secs(300), || ready(env).len() >= n),
        "{} pooled VMs never became ready: {}",
        n,
        ok(env, &["pool", "ls"])
    );
}

fn wait_ended(env: &TestEnv, task: u64, n: usize) -> Vec<Value> {
    let ended = || {
        json(env, &["ls", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["task"] == task && a["state"] == "exited")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(300), || ended().len() == n),
        "{}",
        ok(env, &["ls"])
    );
    ended()
}

fn pooled(env: &TestEnv, attempt: &str) -> Option<String> {
    json(env, &["audit", attempt, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "pool")
        .map(|e| e["data"]["vm"].as_str().unwrap_or_default().to_string())
}

#[test]
fn a_pooled_vm_serves_one_attempt_which_sees_only_its_own_workspace() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let repo = simple_repo(&env);
    ok(&env, &["pool", "fill", "2"]);
    wait_ready(&env, 2);
    // Something in one waiting VM's share: that VM is not as it was made, and is never used.
    let marked = ready(&env)[0].clone();
    std::fs::write(
        env.data_dir()
            .join("pool")
            .join(&marked)
            .join("share/other-slot-marker"),
        "x",
    )
    .unwrap();
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--attempts", "2", "--", "sh", "-c"])
        .arg("ls -A /work; ls /sys/class/net; echo \"me=$BERTH_ATTEMPT\"; echo \"$BERTH_ATTEMPT\" > who.txt")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_ended(&env, 1, 2);
    let from_pool: Vec<(String, String)> = ["1.1", "1.2"]
        .iter()
        .filter_map(|a| pooled(&env, a).map(|vm| (a.to_string(), vm)))
        .collect();
    assert_eq!(
        from_pool.len(),
        1,
        "one attempt from the clean VM: {from_pool:?}"
    );
    assert_ne!(
        from_pool[0].1, marked,
        "the marked VM was handed an attempt"
    );
    for a in ["1.1", "1.2"] {
        let logs = ok(&env, &["logs", a]);
        assert!(
            logs.contains("a.txt") && logs.contains(&format!("me={a}")),
            "{logs}"
        );
        assert!(
            !logs.contains("other-slot-marker"),
            "{a} saw another VM's share: {logs}"
        );
        ok(&env, &["pull", a]);
        assert_eq!(
            berth_tests::git(&repo, &["show", &format!("berth/1/{}:who.txt", &a[2..])]),
            format!("{a}\n")
        );
    }
    // Prepared without a network, the pooled VM has no network device at all.
    let logs = ok(&env, &["logs", &from_pool[0].0]);
    assert!(!logs.contains("eth0"), "{logs}");
    // The marked VM was discarded, the used one is gone (one attempt, ever), the pool refills.
    let slots = json(&env, &["pool", "ls", "--json"]);
    for s in slots.as_array().unwrap() {
        assert!(
            s["name"] != marked.as_str() && s["name"] != from_pool[0].1.as_str(),
            "{slots}"
        );
    }
    assert!(!env.data_dir().join("pool").join(&marked).exists());
    wait_ready(&env, 2);
}

/// A `berth run` the test started, killed if the test fails before it ends.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The command line and memory map of the QEMU of pooled VM `slot`.
fn qemu_of(env: &TestEnv, slot: &str) -> (String, String) {
    let run = env.data_dir().join("run").join(slot);
    let pid = std::fs::read_to_string(run.join("qemu.pid")).unwrap();
    let pid = pid.split_whitespace().next().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    (
        cmdline,
        std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap(),
    )
}

/// KiB resident in the mappings of files whose path ends with `name`.
fn resident_kib(smaps: &str, name: &str) -> u64 {
    let mut total = 0;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            inside = line.trim_end().ends_with(name);
        } else if inside && first == "Rss:" {
            total += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    total
}

#[test]
fn berth_run_takes_a_pooled_vm_and_ends_as_an_attempt_it_boots_would() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let repo = simple_repo(&env);
    // A translation cache under a pooled VM's floor is refused; unset, it is an attempt's.
    let low = env
        .berth()
        .args(["config", "pool-tcg-cache", "4"])
        .output()
        .unwrap();
    assert!(!low.status.success());
    assert!(String::from_utf8_lossy(&low.stderr).contains("8 to 256 MiB"));
    ok(&env, &["pool", "fill", "1"]);
    wait_ready(&env, 1);
    let slot = ready(&env)[0].clone();
    let (cmdline, smaps) = qemu_of(&env, &slot);
    // Under TCG the waiting VM's translation cache is an attempt's: the attempt it serves
    // runs no slower than one that boots.
    if cmdline.contains("tcg") {
        assert!(cmdline.contains("tb-size=256"), "{cmdline}");
    }
    // The kernel and initrd QEMU loaded are not held while the VM waits: not the image's
    // files, and the VM's own copies emptied.
    assert!(!smaps.contains("/images/"), "{smaps}");
    for copy in ["vmlinux.boot", "initrd.boot"] {
        let resident = resident_kib(&smaps, copy);
        assert!(resident <= 64, "{copy}: {resident} KiB resident");
    }
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--", "sh", "-c"])
        .arg(
            "echo out-line; echo err-line >&2; if [ -t 1 ]; then echo has-tty; else echo no-tty; fi; \
             printf '50%%\\r60%%\\n'; echo \"$BERTH_ATTEMPT\" > who.txt; exit 3",
        )
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // The command's own exit code, from a VM that was waiting (no boot).
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stderr.contains("starts on a waiting VM"), "{stderr}");
    assert_eq!(pooled(&env, "1.1").as_deref(), Some(slot.as_str()));
    // No terminal, as for an attempt `berth run` boots; line ends as the command printed
    // them (a CR of its own kept); both streams shown.
    for line in ["out-line\n", "err-line\n", "no-tty\n50%\r60%\n"] {
        assert!(stdout.contains(line), "{line:?} in {stdout:?}");
    }
    assert!(!stdout.contains("has-tty"), "{stdout:?}");
    // The log keeps it as a terminal shows it, for `berth logs` and the app.
    let logs = ok(&env, &["logs", "1.1"]);
    assert!(
        logs.contains("out-line\r\n") && logs.contains("60%\r\n"),
        "{logs:?}"
    );
    // Its work is a branch, as any attempt's.
    assert!(stdout.contains("berth/1/1"), "{stdout}");
    assert_eq!(
        berth_tests::git(&repo, &["show", "berth/1/1:who.txt"]),
        "1.1\n"
    );
    // The VM served that one attempt; the pool refills.
    assert!(!env.data_dir().join("pool").join(&slot).exists());
    wait_ready(&env, 1);

    // Ctrl-C stops a pooled attempt as it stops one `berth run` boots: exit 130, the
    // attempt stopped, its VM gone.
    let slot = ready(&env)[0].clone();
    let child = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--", "sh", "-c", "echo started; sleep 600"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(Some(child));
    assert!(
        wait_until(Duration::from_secs(60), || {
            let out = env.berth().args(["logs", "2.1"]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).contains("started")
        }),
        "{}",
        ok(&env, &["ls"])
    );
    // SAFETY: a signal to the child this test started.
    unsafe {
        libc::kill(child.0.as_ref().unwrap().id() as i32, libc::SIGINT);
    }
    let out = child.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("started"));
    assert_eq!(pooled(&env, "2.1").as_deref(), Some(slot.as_str()));
    let rec = json(&env, &["ls", "--json"]);
    let a = rec
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "2.1")
        .unwrap()
        .clone();
    assert_eq!(a["state"], "stopped", "{a}");
    assert!(!env.data_dir().join("pool").join(&slot).exists());
}

#[test]
fn a_pooled_berth_run_without_a_terminal_denies_what_it_would_have_asked() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let repo = simple_repo(&env);
    ok(&env, &["pool", "fill", "1", "--network"]);
    wait_ready(&env, 1);
    // Its supervisor asks whoever is attached about an unlisted name: `berth run`, attached
    // with no terminal to ask on, answers no at once (as for the attempts it boots itself),
    // where nobody answering would hold the connection for a minute. The command asks at
    // once, before `berth run` can have attached (the supervisor's socket comes up with the
    // command): the question waits for it rather than being denied for want of anyone.
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--network", "allowlist", "--allow", "example.test"])
        .args(["--", "sh", "-c"])
        .arg("curl -s -o /dev/null -w 'status=%{http_code}\\n' http://unlisted.test/; echo done")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("starts on a waiting VM"), "{stderr}");
    assert!(
        stderr.contains("unlisted.test") && stderr.contains("denied (no terminal to ask on)"),
        "{stderr}"
    );
    assert!(stdout.contains("done"), "{stdout}");
    let audit = json(&env, &["audit", "1.1", "--json"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "approval"
                && e["data"]["host"] == "unlisted.test"
                && e["data"]["decision"] == "deny"),
        "{audit}"
    );
}

#[test]
fn a_network_attempt_never_gets_a_vm_made_without_one_and_a_dead_pooled_vm_is_replaced() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let repo = simple_repo(&env);
    ok(&env, &["pool", "fill", "1"]);
    wait_ready(&env, 1);
    let out = env
        .berth()
        .current_dir(&repo)
        .args([
            "task",
            "new",
            "--network",
            "allowlist",
            "--allow",
            "example.test",
        ])
        .args(["--", "ls", "/sys/class/net"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_ended(&env, 1, 1);
    assert_eq!(
        pooled(&env, "1.1"),
        None,
        "a network attempt took a VM made without one"
    );
    assert!(ok(&env, &["logs", "1.1"]).contains("eth0"));
    // Once a network attempt ran, the pool keeps a VM of its shape waiting too.
    wait_ready(&env, 2);
    let slots = json(&env, &["pool", "ls", "--json"]);
    assert!(
        slots
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["shape"]["network"] == true && s["state"] == "ready"),
        "{slots}"
    );

    // The waiting VM without a network dies: its slot notices, goes, and another boots in
    // its place.
    let dead = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shape"]["network"] == false && s["state"] == "ready")
        .and_then(|s| s["name"].as_str())
        .unwrap()
        .to_string();
    let killed = std::process::Command::new("pkill")
        .args(["-9", "-f", &format!("qemu-system.*{dead}")])
        .status()
        .unwrap();
    assert!(killed.success(), "no QEMU of {dead} to kill");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let slots = json(&env, &["pool", "ls", "--json"]);
            !slots
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == dead.as_str())
        }),
        "{}",
        ok(&env, &["pool", "ls"])
    );
    wait_ready(&env, 2);
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--", "echo", "alive"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_ended(&env, 2, 1);
    assert!(ok(&env, &["logs", "2.1"]).contains("alive"));
    let served = pooled(&env, "2.1").expect("the replacement VM serves the next attempt");
    assert_ne!(served, dead);
}

#[test]
fn eight_attempts_at_once_with_a_pool_of_two_all_run_right() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let repo = simple_repo(&env);
    ok(&env, &["pool", "fill", "2"]);
    wait_ready(&env, 2);
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--attempts", "8", "--", "sh", "-c"])
        .arg("echo \"$BERTH_ATTEMPT\" > who.txt")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ended = wait_ended(&env, 1, 8);
    assert!(ended.iter().all(|a| a["exit_code"] == 0), "{ended:?}");
    let from_pool = (1..=8)
        .filter(|n| pooled(&env, &format!("1.{n}")).is_some())
        .count();
    assert!(from_pool >= 2, "{from_pool} handed over");
    for n in 1..=8 {
        ok(&env, &["pull", &format!("1.{n}")]);
        assert_eq!(
            berth_tests::git(&repo, &["show", &format!("berth/1/{n}:who.txt")]),
            format!("1.{n}\n")
        );
    }
}

/// A pooled attempt gets its own secrets only at the handoff: its proxy (bound where the VM's
/// bridge points) holds its own phantom's gateway, and the real key reaches the upstream from
/// the host, never the VM.
#[test]
fn a_pooled_attempt_uses_its_own_secret_through_its_own_gateway() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const VALUE: &str = "sk-pool-test-1c2d3e4f5a6b";
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let up = berth_tests::TlsUpstream::start();
    let ca = env.home.path().join("upstream-ca.pem");
    std::fs::write(&ca, &up.ca_pem).unwrap();
    let set = berth_tests::output_with_stdin(
        env.berth()
            .args(["secret", "set", "api", "--header", "x-api-key"])
            .args(["--key-env", "API_KEY", "--url-env", "API_URL"])
            .arg(format!("--upstream=https://localhost:{}/base", up.port))
            .arg("--ca-file")
            .arg(&ca),
        VALUE.as_bytes(),
    );
    assert!(set.status.success(), "{set:?} (inside `keyctl session -`?)");
    let repo = simple_repo(&env);
    ok(&env, &["pool", "fill", "1", "--network"]);
    wait_ready(&env, 1);
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["task", "new", "--secret", "api", "--", "sh", "-c"])
        .arg("curl -sS -H \"x-api-key: $API_KEY\" \"$API_URL/v1/hello\"; echo; echo \"phantom:$API_KEY\"")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_ended(&env, 1, 1);
    assert!(pooled(&env, "1.1").is_some(), "the attempt booted cold");
    let logs = ok(&env, &["logs", "1.1"]);
    assert!(logs.contains("{\"ok\":true}"), "{logs}");
    assert!(logs.contains("phantom:berth-phantom-"), "{logs}");
    assert!(!logs.contains(VALUE), "the value reached the guest: {logs}");
    let seen = up.requests();
    let hello = seen
        .iter()
        .find(|s| s.path == "/base/v1/hello")
        .expect("no request upstream");
    assert!(hello.headers.contains(&("x-api-key".into(), VALUE.into())));
}

#[test]
fn a_smaller_memory_budget_shrinks_the_pool_and_attempts_still_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let repo = simple_repo(&env);
    ok(&env, &["pool", "fill", "2", "--memory", "256"]);
    wait_ready(&env, 2);
    // The user gives the pool less memory (as memory pressure would): the newest VM leaves,
    // the oldest stays; nothing is refused.
    ok(
        &env,
        &["pool", "fill", "2", "--memory", "256", "--budget", "300"],
    );
    let waiting = || {
        json(&env, &["pool", "ls", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "ready" || s["state"] == "booting")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || waiting() == 1),
        "{}",
        ok(&env, &["pool", "ls"])
    );
    assert!(ok(&env, &["pool", "ls"]).contains("memory for waiting VMs: 300 MiB"));
    // Two attempts at once: one takes the pooled VM, the other boots; both run.
    let out = env
        .berth()
        .args([
            "task",
            "new",
            "--attempts",
            "2",
            "--memory",
            "256",
            "--repo",
        ])
        .arg(&repo)
        .args(["--", "sh", "-c", "echo done > done.txt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ended = wait_ended(&env, 1, 2);
    assert!(ended.iter().all(|a| a["exit_code"] == 0), "{ended:?}");
    let served = ["1.1", "1.2"]
        .iter()
        .filter(|a| pooled(&env, a).is_some())
        .count();
    assert_eq!(served, 1, "one pooled VM was waiting");
    // The refill respects the budget too: never more than one 256 MiB VM waits.
    std::thread::sleep(Duration::from_secs(3));
    assert!(waiting() <= 1, "{}", ok(&env, &["pool", "ls"]));
}

#[test]
fn a_vm_pooled_by_another_build_of_berth_is_never_handed_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let repo = simple_repo(&env);
    // "Another build": the same program at another path (an upgrade replaces the file).
    let other = env.home.path().join("berth-old");
    std::fs::copy(berth_tests::berth_bin(), &other).unwrap();
    // The static guest agent the original finds beside itself (the copy is elsewhere).
    let agent = berth_tests::berth_bin()
        .parent()
        .unwrap()
        .join("../x86_64-unknown-linux-gnu/release/berth-agent");
    let out = std::process::Command::new(&other)
        .arg("--data-dir")
        .arg(env.data_dir())
        .args(["pool", "fill", "1", "--memory", "256"])
        .env("HOME", env.home.path())
        .env("BERTH_AGENT", &agent)
        .env(
            "BERTH_VIRTIOFSD",
            berth_tests::find_virtiofsd().unwrap_or_default(),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    wait_ready(&env, 1);
    let stale = ready(&env);
    let out = env
        .berth()
        .args(["task", "new", "--memory", "256", "--repo"])
        .arg(&repo)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ended = wait_ended(&env, 1, 1);
    assert_eq!(ended[0]["exit_code"], 0);
    assert_eq!(pooled(&env, "1.1"), None, "a stale VM was handed over");
    // The stale VM was discarded, not kept waiting.
    let names: Vec<String> = json(&env, &["pool", "ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!names.contains(&stale[0]), "{names:?}");
}

/// The waiting VMs, as `pool ls --json` shows them.
fn waiting(env: &TestEnv) -> Vec<Value> {
    json(env, &["pool", "ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "ready" || s["state"] == "booting")
        .cloned()
        .collect()
}

fn task(env: &TestEnv, repo: &std::path::Path, script: &str) {
    let out = env
        .berth()
        .current_dir(repo)
        .args(["task", "new", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn attempts_with_an_environment_get_a_vm_of_that_environment_and_its_cache_and_never_a_stale_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new();
    let _drain = Drain(&env);
    let repo = simple_repo(&env);
    berth_tests::commit_file(
        &repo,
        "berth.toml",
        "[env]\nsetup = [\"echo env-one > /home/agent/env.txt\", \
         \"mkdir -p $PIP_CACHE_DIR && echo warm > $PIP_CACHE_DIR/marker\"]\n\
         [cache]\npresets = [\"pip\"]\nsize = \"64MiB\"\n",
        "env",
    );
    ok(&env, &["config", "pool", "1"]);
    let script = "echo me=$BERTH_ATTEMPT; cat /home/agent/env.txt; cat $PIP_CACHE_DIR/marker; \
                  ls -A /work; echo \"$BERTH_ATTEMPT\" > who.txt";
    // The first attempt builds its environment and boots cold; once it runs, a VM of its
    // shape (its environment's root, its cache generation) waits for the next.
    task(&env, &repo, script);
    wait_ended(&env, 1, 1);
    assert_eq!(pooled(&env, "1.1"), None);
    wait_ready(&env, 1);
    let slot = waiting(&env)[0].clone();
    let root = slot["shape"]["root"]["path"].as_str().unwrap().to_string();
    let cache = slot["shape"]["cache"]["path"].as_str().unwrap().to_string();
    assert!(root.contains("/envs/"), "{slot}");
    assert!(cache.contains("/caches/"), "{slot}");
    assert_eq!(slot["made_for"]["repo"], repo.to_str().unwrap(), "{slot}");

    // The next attempt of the repo is handed that VM: its environment and warm cache are there.
    task(&env, &repo, script);
    wait_ended(&env, 2, 1);
    assert_eq!(
        pooled(&env, "2.1").as_deref(),
        slot["name"].as_str(),
        "{}",
        ok(&env, &["audit", "2.1"])
    );
    let logs = ok(&env, &["logs", "2.1"]);
    assert!(
        logs.contains("me=2.1") && logs.contains("env-one") && logs.contains("warm"),
        "{logs}"
    );
    ok(&env, &["pull", "2.1"]);
    assert_eq!(
        berth_tests::git(&repo, &["show", "berth/2/1:who.txt"]),
        "2.1\n"
    );

    // A new cache generation: the waiting VM (refilled after the handoff) sits on the old
    // one, so it leaves by itself and is never handed over.
    wait_ready(&env, 1);
    let old = waiting(&env)[0]["name"].as_str().unwrap().to_string();
    let refreshed = env
        .berth()
        .current_dir(&repo)
        .args(["cache", "refresh"])
        .output()
        .unwrap();
    assert!(refreshed.status.success(), "{refreshed:?}");
    assert!(
        wait_until(Duration::from_secs(30), || waiting(&env).is_empty()),
        "the VM on the old cache generation still waits: {}",
        ok(&env, &["pool", "ls"])
    );
    task(&env, &repo, script);
    wait_ended(&env, 3, 1);
    assert_eq!(
        pooled(&env, "3.1"),
        None,
        "a VM of an old generation served"
    );
    wait_ready(&env, 1);
    let now = waiting(&env)[0].clone();
    assert_ne!(now["name"], old.as_str());
    assert_ne!(now["shape"]["cache"]["path"], cache.as_str(), "{now}");
    assert_eq!(now["shape"]["root"]["path"], root.as_str(), "{now}");

    // The environment changes (a new berth.toml): the repo's next attempt builds it and boots
    // cold; the VM of the old environment is drained, never handed over, and the pool now
    // waits with the new one.
    let stale = now["name"].as_str().unwrap().to_string();
    berth_tests::commit_file(
        &repo,
        "berth.toml",
        "[env]\nsetup = [\"echo env-two > /home/agent/env.txt\"]\n",
        "env two",
    );
    task(&env, &repo, script);
    wait_ended(&env, 4, 1);
    assert_eq!(pooled(&env, "4.1"), None);
    assert!(ok(&env, &["logs", "4.1"]).contains("env-two"));
    wait_ready(&env, 1);
    let slots = waiting(&env);
    assert!(
        slots.iter().all(|s| s["name"] != stale.as_str()),
        "the VM of the old environment still waits: {}",
        ok(&env, &["pool", "ls"])
    );
    assert!(!env.data_dir().join("pool").join(&stale).exists());
    assert!(
        slots
            .iter()
            .all(|s| s["shape"]["root"]["path"] != root.as_str() && s["shape"]["cache"].is_null()),
        "{slots:?}"
    );
    task(&env, &repo, script);
    wait_ended(&env, 5, 1);
    assert!(pooled(&env, "5.1").is_some());
    assert!(ok(&env, &["logs", "5.1"]).contains("env-two"));
}
