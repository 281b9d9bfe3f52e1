//! Tasks that outlive the terminal: background attempts, their states, terminals, logs,
//! lifecycle and audit, with real VMs and real supervisors.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use berth_core::SupervisorClient;
use berth_proto::{Message, WinSize};
use berth_tests::{TestEnv, git, simple_repo, wait_until};
use serde_json::Value;

fn berth(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.berth().args(args).output().unwrap()
}

fn ok(env: &TestEnv, args: &[&str]) -> String {
    let out = berth(env, args);
    assert!(out.status.success(), "berth {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn task_new(env: &TestEnv, repo: &Path, extra: &[&str], script: &str) -> Vec<String> {
    let mut args = vec!["task", "new", "--json", "--repo", repo.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let v: Value = serde_json::from_str(&ok(env, &args)).unwrap();
    v["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn attempt(env: &TestEnv, id: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(env, &["ls", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

fn state(env: &TestEnv, id: &str) -> String {
    attempt(env, id)["state"]
        .as_str()
        .unwrap_or("gone")
        .to_string()
}

fn wait_state(env: &TestEnv, id: &str, want: &[&str], secs: u64) {
    let reached = wait_until(Duration::from_secs(secs), || {
        want.contains(&state(env, id).as_str())
    });
    assert!(reached, "{id} never reached {want:?}: {}", attempt(env, id));
}

#[test]
fn task_new_returns_at_once_and_ls_shows_booting_running_exited_and_logs_keep_everything() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let ids = task_new(
        &env,
        &repo,
        &["--title", "Make it 'fast' & $safe"],
        "echo \"prompt=[$BERTH_PROMPT] attempt=$BERTH_ATTEMPT\"; \
         for i in 1 2 3 4; do echo line $i; sleep 1; done; echo x > made.txt",
    );
    assert_eq!(ids, ["1.1"]);
    // No VM boots in the time `task new` took to return.
    assert_eq!(state(&env, "1.1"), "booting");
    wait_state(&env, "1.1", &["running"], 120);
    // Nobody is attached; `logs -f` still shows everything from the start, then ends.
    let logs = ok(&env, &["logs", "-f", "1.1"]);
    for i in 1..=4 {
        assert!(logs.contains(&format!("line {i}")), "{logs}");
    }
    // The task's prompt reaches the command verbatim (no shell expansion on the way).
    assert!(
        logs.contains("prompt=[Make it 'fast' & $safe] attempt=1.1"),
        "{logs}"
    );
    assert_eq!(state(&env, "1.1"), "exited");
    assert_eq!(attempt(&env, "1.1")["exit_code"], 0);
    // What it changed shows before any pull.
    assert_eq!(attempt(&env, "1.1")["files_changed"], 1);
    assert_eq!(attempt(&env, "1.1")["branch"], Value::Null);
    ok(&env, &["pull", "1.1"]);
    let a = attempt(&env, "1.1");
    assert_eq!(a["branch"], "berth/1/1");
    assert_eq!(a["files_changed"], 1);
    assert_eq!(git(&repo, &["show", "berth/1/1:made.txt"]), "x\n");
    // Every step is in the audit, which verifies.
    let audit: Value = serde_json::from_str(&ok(&env, &["audit", "1.1", "--json"])).unwrap();
    let events: Vec<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["data"]["event"]
                    .as_str()
                    .or(e["data"]["phase"].as_str())
                    .unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "lifecycle:created",
            "lifecycle:booting",
            "lifecycle:running",
            "command:start",
            "command:end",
            "lifecycle:exited",
            "pull:"
        ]
    );
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["attempt"] == "1.1")
    );
    assert!(ok(&env, &["audit", "1.1", "--verify"]).contains("chain intact"));
}

#[test]
fn attach_is_a_real_pty_that_resizes_and_detaching_leaves_the_attempt_running() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let ids = task_new(&env, &repo, &[], "exec bash -i");
    wait_state(&env, &ids[0], &["running"], 120);
    let socket = env.data_dir().join("attempts/1.1/supervisor.sock");
    let mut client = SupervisorClient::connect(&socket).unwrap();
    client
        .attach(Some(WinSize {
            rows: 30,
            cols: 100,
        }))
        .unwrap();
    let w = client.writer();
    let mut seen = String::new();
    let mut expect = |client: &mut SupervisorClient, input: &str, want: &str| {
        w.send(&Message::Stdin {
            id: 0,
            data: input.as_bytes().to_vec(),
        })
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !seen.contains(want) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {want:?} in {seen:?}"
            );
            if let Message::Stdout { id: 0, data } = client.recv().unwrap() {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    expect(&mut client, "tty; stty size\n", "/dev/pts/");
    expect(&mut client, "", "30 100");
    w.send(&Message::Resize {
        id: 0,
        size: WinSize {
            rows: 40,
            cols: 120,
        },
    })
    .unwrap();
    expect(
        &mut client,
        "echo cols=$(tput cols) lines=$(tput lines)\n",
        "cols=120 lines=40",
    );
    // A second terminal attaches: the screen takes its size; when it leaves, the size goes
    // back to the terminal still attached.
    let other = SupervisorClient::connect(&socket).unwrap();
    other
        .attach(Some(WinSize {
            rows: 50,
            cols: 150,
        }))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    expect(&mut client, "echo size=$(stty size)\n", "size=50 150");
    drop(other);
    // Once the supervisor has seen it leave (its "attach end" is audited after the resize).
    assert!(berth_tests::wait_until(Duration::from_secs(60), || {
        let audit: Value = serde_json::from_str(&ok(&env, &["audit", "1.1", "--json"])).unwrap();
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "attach" && e["data"]["phase"] == "end")
    }));
    expect(&mut client, "echo back=$(stty size)\n", "back=40 120");
    drop(client); // detach
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&env, "1.1"), "running");
    // Another command in the same VM; then the CLI attach sees the shell too.
    assert_eq!(
        ok(
            &env,
            &["exec", "1.1", "--", "sh", "-c", "echo alive; tty || true"]
        ),
        "alive\nnot a tty\n"
    );
    // While the guest runs, the host does not read its workspace (it could swap a directory
    // for a symlink between two reads): diff and compare say so, like pull.
    // `berth ls` shows how the share is confined while the VM runs.
    let ls: Value = serde_json::from_str(&ok(&env, &["ls", "--json"])).unwrap();
    let sandbox = ls[0]["share_sandbox"].as_str().unwrap_or("?").to_string();
    assert!(sandbox == "namespace" || sandbox == "chroot", "{ls}");
    assert!(ok(&env, &["ls"]).contains(&sandbox));
    // Reviewing it live: the guest's own git makes the snapshot and sends it as text; a
    // symlink it planted to a host directory is a symlink in the patch, never followed.
    ok(
        &env,
        &[
            "exec",
            "1.1",
            "--",
            "sh",
            "-c",
            "echo live > live.txt; ln -s /etc evil",
        ],
    );
    let live: Value = serde_json::from_str(&ok(&env, &["diff", "1.1", "--json"])).unwrap();
    assert_eq!(live["live"], true, "{live}");
    assert_eq!(live["files_changed"], 2, "{live}");
    let patch = live["patch"].as_str().unwrap();
    assert!(
        patch.contains("+live") && patch.contains("+++ b/evil"),
        "{patch}"
    );
    assert!(!patch.contains("root:"), "{patch}");
    let note = berth(&env, &["diff", "1.1"]);
    assert!(
        String::from_utf8_lossy(&note.stderr).contains("still running"),
        "{note:?}"
    );
    // Pulling still waits until the guest cannot change the workspace.
    let pull = berth(&env, &["pull", "1.1"]);
    assert_eq!(pull.status.code(), Some(125), "{pull:?}");
    assert!(
        String::from_utf8_lossy(&pull.stderr).contains("still running"),
        "{pull:?}"
    );
    // The guest's own git state is as it was: the snapshot used a throwaway index.
    assert_eq!(
        ok(&env, &["exec", "1.1", "--", "git", "status", "--porcelain"]),
        "?? evil\n?? live.txt\n"
    );
    let mut cli = env
        .berth()
        .args(["attach", "1.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{Read, Write};
    cli.stdin
        .as_mut()
        .unwrap()
        .write_all(b"echo via-$((40+2))\n")
        .unwrap();
    let mut out = cli.stdout.take().unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("via-42") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "attach ended early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    cli.kill().unwrap(); // the user closes the terminal
    let _ = cli.wait();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&env, "1.1"), "running");
    ok(&env, &["stop", "1.1"]);
    assert_eq!(state(&env, "1.1"), "stopped");
    let audit = ok(&env, &["audit", "1.1"]);
    assert!(
        audit.contains("attach") && audit.contains("\"phase\":\"end\""),
        "{audit}"
    );
}

fn pid_of(path: &Path) -> i32 {
    let read = || {
        std::fs::read_to_string(path)
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let mut pid = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            pid = read();
            pid.is_some()
        }),
        "no pid in {}",
        path.display()
    );
    pid.unwrap()
}

/// Kills one of an attempt's processes with SIGKILL, at boot or while it runs, repeatedly:
/// `ls` must tell the truth, the workspace's commit must survive, `start` must bring the
/// attempt back, and nothing may be left running.
#[test]
fn kill_9_of_supervisor_qemu_or_virtiofsd_at_any_moment_loses_nothing() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let script = "[ -f kept.txt ] || { echo kept > kept.txt && git add kept.txt && git commit -qm kept; }; \
                  echo ready; sleep 600";
    let ids = task_new(&env, &repo, &[], script);
    let id = &ids[0];
    let run = env.data_dir().join("run/attempt-1-1");
    let targets = ["supervisor", "qemu", "virtiofsd", "supervisor", "qemu"];
    for (round, target) in targets.iter().enumerate() {
        let at_boot = round % 2 == 1;
        if at_boot {
            assert!(wait_until(Duration::from_secs(60), || run
                .join("qemu.pid")
                .exists()));
        } else {
            wait_state(&env, id, &["running"], 120);
            assert!(wait_until(Duration::from_secs(60), || {
                ok(&env, &["logs", id]).matches("ready").count() > round / 2
            }));
        }
        let pid = match *target {
            "supervisor" => attempt(&env, id)["supervisor_pid"]
                .as_i64()
                .unwrap_or_else(|| pid_of(&run.join("owner.pid")) as i64)
                as i32,
            other => pid_of(&run.join(format!("{other}.pid"))),
        };
        // SAFETY: kill takes plain integers; the pid is this test's own process.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
        wait_state(&env, id, &["stopped", "failed"], 60);
        let clean = wait_until(Duration::from_secs(20), || {
            berth_tests::Leftovers::of(env.data_dir(), None).is_clean()
        });
        assert!(
            clean,
            "round {round} ({target}): {:?}",
            berth_tests::Leftovers::of(env.data_dir(), None)
        );
        assert!(!env.data_dir().join("attempts/1.1/supervisor.sock").exists());
        ok(&env, &["start", id]);
    }
    wait_state(&env, id, &["running"], 120);
    // The commit made before the first kill is still there, and was made once only.
    assert_eq!(
        ok(&env, &["exec", id, "--", "git", "log", "--format=%s"]).trim(),
        "kept\ninit"
    );
    ok(&env, &["stop", id]);
    ok(&env, &["pull", id]);
    assert_eq!(git(&repo, &["show", "berth/1/1:kept.txt"]), "kept\n");
    assert!(ok(&env, &["audit", id, "--verify"]).contains("chain intact"));
}

#[test]
fn rm_refuses_unpulled_work_force_removes_it_and_pulled_branches_stay() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    task_new(
        &env,
        &repo,
        &["--attempts", "2"],
        "echo $BERTH_ATTEMPT > who.txt",
    );
    wait_state(&env, "1.1", &["exited"], 180);
    wait_state(&env, "1.2", &["exited"], 180);
    let out = berth(&env, &["rm", "1"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1.1 has 1 commit(s) not pulled") && err.contains("1.2 has"),
        "{err}"
    );
    assert!(
        env.data_dir().join("attempts/1.1/work").exists(),
        "a refusal removed something"
    );
    ok(&env, &["pull", "1.1"]);
    // The user deletes the pulled branch: the commit object lingers until `git gc`, but no
    // ref holds the work any more, so it counts as unpulled again.
    git(&repo, &["branch", "-D", "berth/1/1"]);
    let out = berth(&env, &["rm", "1.1"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not pulled"));
    assert!(env.data_dir().join("attempts/1.1/work").exists());
    ok(&env, &["pull", "1.1"]);
    ok(&env, &["rm", "1.1"]);
    assert!(!env.data_dir().join("attempts/1.1").exists());
    assert!(berth(&env, &["rm", "1.2"]).status.code() == Some(125));
    ok(&env, &["rm", "--force", "1"]);
    assert!(!env.data_dir().join("attempts/1.2").exists());
    assert!(ok(&env, &["ls"]).contains("no tasks"));
    assert_eq!(git(&repo, &["show", "berth/1/1:who.txt"]), "1.1\n");
}

#[test]
fn editing_one_audit_event_in_the_database_makes_verify_fail() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    task_new(&env, &repo, &[], "true");
    wait_state(&env, "1.1", &["exited"], 180);
    assert!(ok(&env, &["audit", "1.1", "--verify"]).contains("chain intact"));
    let db = rusqlite::Connection::open(env.data_dir().join("berth.db")).unwrap();
    db.execute(
        "UPDATE audit SET data = replace(data, '\"true\"', '\"curl evil\"') WHERE kind = 'command'",
        [],
    )
    .unwrap();
    let out = berth(&env, &["audit", "1.1", "--verify"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does NOT verify"),
        "{out:?}"
    );
}

#[test]
fn eight_attempts_at_once_all_reach_running_and_all_pull_back() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let ids = task_new(
        &env,
        &repo,
        &[
            "--attempts",
            "8",
            "--memory",
            "256",
            "--boot-timeout",
            "600",
        ],
        "echo $BERTH_ATTEMPT > who.txt; while [ ! -f /work/go ]; do sleep 0.2; done",
    );
    assert_eq!(ids.len(), 8);
    for id in &ids {
        wait_state(&env, id, &["running"], 600);
    }
    // All eight are running at the same time; let them finish.
    for n in 1..=8 {
        std::fs::write(env.data_dir().join(format!("attempts/1.{n}/work/go")), "").unwrap();
    }
    for id in &ids {
        wait_state(&env, id, &["exited"], 120);
        ok(&env, &["pull", id]);
    }
    for n in 1..=8 {
        assert_eq!(
            git(&repo, &["show", &format!("berth/1/{n}:who.txt")]),
            format!("1.{n}\n")
        );
    }
}

#[test]
fn an_attempt_that_would_overcommit_host_memory_is_refused_and_nothing_is_created() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let out = env
        .berth()
        .args(["task", "new", "--repo"])
        .arg(&repo)
        .args(["--attempts", "16", "--memory", "65536", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("over 75% of this host's"), "{err}");
    assert!(ok(&env, &["ls"]).contains("no tasks"));
}

#[test]
fn a_flood_of_output_keeps_at_most_two_capped_logs_and_logs_streams_them() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    // 72 MiB of output: more than the 2 × 32 MiB an attempt keeps.
    task_new(
        &env,
        &repo,
        &[],
        "head -c 75497472 /dev/zero | tr '\\0' x; echo; echo THE-END",
    );
    wait_state(&env, "1.1", &["exited"], 600);
    let dir = env.data_dir().join("attempts/1.1");
    let size = |n: &str| std::fs::metadata(dir.join(n)).map(|m| m.len()).unwrap_or(0);
    assert_eq!(size("output.log.1"), 32 << 20, "the log rotated");
    assert!(size("output.log") <= 32 << 20);
    // `berth logs` streams both halves (the newest bytes last) in bounded memory.
    let mut child = env
        .berth()
        .args(["logs", "1.1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut tail = Vec::new();
    let mut total = 0u64;
    let mut peak = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        use std::io::Read;
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(64);
        tail.drain(..keep);
        peak = peak.max(berth_tests::peak_rss_kib(child.id()).unwrap_or(0));
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(total, size("output.log.1") + size("output.log"));
    assert!(String::from_utf8_lossy(&tail).contains("THE-END"));
    assert!(peak < 32 * 1024, "berth logs peaked at {peak} KiB");
}

/// `berth stop` while the VM boots (no supervisor socket yet): the supervisor gives the boot
/// up itself, records the stop and ends (never killed), leaving nothing; a later start runs.
#[test]
fn stopping_an_attempt_while_it_boots_ends_the_boot_cleanly() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    task_new(&env, &repo, &[], "echo up; sleep 300");
    let run = env.data_dir().join("run/attempt-1-1");
    assert!(wait_until(Duration::from_secs(60), || run
        .join("qemu.pid")
        .exists()));
    assert_eq!(state(&env, "1.1"), "booting");
    ok(&env, &["stop", "1.1"]);
    let rec = attempt(&env, "1.1");
    assert_eq!(rec["state"], "stopped", "{rec}");
    assert_eq!(rec["error"], "stopped by the user", "{rec}");
    // The supervisor ended by itself, after tearing the VM down (not SIGKILLed by `stop`).
    let log = || {
        std::fs::read_to_string(env.data_dir().join("attempts/1.1/supervisor.log"))
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(30), || log().contains("done: stopped")),
        "{}",
        log()
    );
    assert!(
        wait_until(Duration::from_secs(20), || berth_tests::Leftovers::of(
            env.data_dir(),
            None
        )
        .is_clean()),
        "{:?}",
        berth_tests::Leftovers::of(env.data_dir(), None)
    );
    // The stop was for that run only.
    ok(&env, &["start", "1.1"]);
    wait_state(&env, "1.1", &["running"], 180);
    assert!(wait_until(Duration::from_secs(60), || ok(
        &env,
        &["logs", "1.1"]
    )
    .contains("up")));
    ok(&env, &["stop", "1.1"]);
}

/// `stop` returns once the supervisor is done, including reading the workspace's changes
/// into the attempt's host repository (seconds for a large one): a `pull` right after never
/// meets that repository locked.
#[test]
fn a_pull_right_after_stop_never_meets_the_supervisors_lock() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let script = "mkdir big; for f in $(seq 200); do head -c 200000 /dev/urandom > big/$f; done; echo written; sleep 300";
    task_new(&env, &repo, &[], script);
    assert!(wait_until(Duration::from_secs(300), || ok(
        &env,
        &["logs", "1.1"]
    )
    .contains("written")));
    ok(&env, &["stop", "1.1"]);
    let rec = attempt(&env, "1.1");
    assert_eq!(rec["files_changed"], 200, "{rec}");
    ok(&env, &["pull", "1.1"]);
    assert_eq!(
        git(&repo, &["ls-tree", "-r", "--name-only", "berth/1/1"])
            .lines()
            .filter(|l| l.starts_with("big/"))
            .count(),
        200
    );
}

#[test]
fn two_starts_at_once_boot_the_attempt_once() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    task_new(&env, &repo, &[], "sleep 300");
    wait_state(&env, "1.1", &["running"], 180);
    ok(&env, &["stop", "1.1"]);
    // `stop` returned after the supervisor's last word: its changes are counted already (a
    // `pull` now never meets the attempt's host repository locked by it).
    let rec = attempt(&env, "1.1");
    assert!(rec["files_changed"].is_number(), "{rec}");
    // Both pass a "not running" check at once; only one may claim the attempt.
    let starts: Vec<_> = (0..2)
        .map(|_| env.berth().args(["start", "1.1"]).spawn().unwrap())
        .collect();
    let ok_count = starts
        .into_iter()
        .map(|mut c| c.wait().unwrap().success())
        .filter(|s| *s)
        .count();
    assert_eq!(ok_count, 1, "exactly one start may boot it");
    wait_state(&env, "1.1", &["running"], 180);
    let supervisors = berth_tests::processes_mentioning("__supervise")
        .into_iter()
        .filter(|(_, cmd)| cmd.contains(&env.data_dir().display().to_string()))
        .count();
    assert_eq!(supervisors, 1);
    ok(&env, &["stop", "1.1"]);
}

#[test]
fn a_client_that_stops_reading_is_disconnected_and_others_still_work() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    task_new(&env, &repo, &[], "yes flood");
    wait_state(&env, "1.1", &["running"], 180);
    let socket = env.data_dir().join("attempts/1.1/supervisor.sock");
    let mut lazy = SupervisorClient::connect(&socket).unwrap();
    lazy.attach(None).unwrap();
    // It reads nothing while the guest floods its terminal.
    std::thread::sleep(Duration::from_secs(15));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // What was buffered drains; then the connection must end, not hang open.
        while lazy.recv().is_ok() {}
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(120)).is_ok(),
        "a client that fell behind was left connected (its terminal would freeze)"
    );
    assert_eq!(state(&env, "1.1"), "running");
    assert_eq!(
        ok(&env, &["exec", "1.1", "--", "echo", "still-here"]),
        "still-here\n"
    );
    ok(&env, &["stop", "1.1"]);
}
