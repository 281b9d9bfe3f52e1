//! What one attempt may take from the host (limits.rs): a guest filling its workspace or its
//! disk is stopped, alone, with its work kept; a guest opening connections without end holds
//! at most its limit of host processes.

use std::path::Path;
use std::time::Duration;

use berth_tests::{TestEnv, processes_mentioning, simple_repo, wait_until};
use serde_json::Value;

fn attempt(env: &TestEnv, id: &str) -> Value {
    let out = env.berth().args(["ls", "--json"]).output().unwrap();
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no attempt {id} in {all}"))
}

fn audit_kinds(env: &TestEnv, id: &str) -> Vec<Value> {
    let out = env.berth().args(["audit", id, "--json"]).output().unwrap();
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn start(env: &TestEnv, repo: &Path, extra: &[&str], script: &str) {
    let out = env
        .berth()
        .args(["task", "new", "--repo"])
        .arg(repo)
        .args(extra)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn wait_ended(env: &TestEnv, id: &str) -> Value {
    let mut last = Value::Null;
    assert!(
        wait_until(Duration::from_secs(240), || {
            last = attempt(env, id);
            !matches!(
                last["state"].as_str(),
                Some("created" | "booting" | "running")
            )
        }),
        "{id} never ended: {last}"
    );
    last
}

#[test]
fn filling_the_workspace_stops_that_attempt_alone_and_keeps_its_work() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    // A neighbour that runs on, and the filler: its first commit must survive the stop.
    start(&env, &repo, &[], "sleep 25; echo neighbour > n.txt");
    start(
        &env,
        &repo,
        &["--max-workspace", "24MiB"],
        "echo kept > kept.txt && git add kept.txt && git commit -qm kept && \
         dd if=/dev/zero of=fill bs=1M count=400 2>/dev/null; echo wrote-everything",
    );
    let a = wait_ended(&env, "2.1");
    assert_eq!(a["state"], "stopped", "{a}");
    let error = a["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("workspace reached") && error.contains("24 MiB") && error.contains("kept"),
        "{a}"
    );
    let logs = env.berth().args(["logs", "2.1"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&logs.stdout).contains("wrote-everything"));
    let limit = audit_kinds(&env, "2.1")
        .into_iter()
        .find(|e| e["kind"] == "limit")
        .expect("a limit event");
    assert_eq!(limit["data"]["limit"], "workspace", "{limit}");
    // Stopped well before the guest got its 400 MiB onto the host's disk.
    let used = limit["data"]["used"].as_u64().unwrap();
    assert!(used > 24 << 20 && used < 300 << 20, "{limit}");
    // Its work so far is kept: the commit made before the fill is there to pull.
    let ws = env.data_dir().join("attempts/2.1/work");
    assert_eq!(
        std::fs::read_to_string(ws.join("kept.txt")).unwrap(),
        "kept\n"
    );
    // The neighbour was not touched: it finishes its own work.
    let n = wait_ended(&env, "1.1");
    assert_eq!(n["state"], "exited", "{n}");
    assert_eq!(n["exit_code"], 0, "{n}");
}

#[test]
fn filling_the_vms_disk_stops_the_attempt_at_its_disk_limit() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    start(
        &env,
        &repo,
        &["--max-disk", "96MiB"],
        "echo before > before.txt; dd if=/dev/zero of=$HOME/fill bs=1M count=1500 2>/dev/null; \
         sync; echo wrote-everything",
    );
    let a = wait_ended(&env, "1.1");
    assert_eq!(a["state"], "stopped", "{a}");
    assert!(
        a["error"]
            .as_str()
            .unwrap_or_default()
            .contains("disk overlays reached"),
        "{a}"
    );
    let limit = audit_kinds(&env, "1.1")
        .into_iter()
        .find(|e| e["kind"] == "limit")
        .expect("a limit event");
    assert_eq!(limit["data"]["limit"], "disk", "{limit}");
    assert!(
        limit["data"]["used"].as_u64().unwrap() < 1000 << 20,
        "{limit}"
    );
    // The overlay went with the VM; the workspace stayed.
    assert!(env.data_dir().join("attempts/1.1/work/before.txt").exists());
}

#[test]
fn connections_past_the_limit_hold_no_host_process() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    // Twelve connections held open at once through the proxy, each a bridge process on the
    // host while it lives; with a limit of 4, the other eight are refused at once.
    start(
        &env,
        &repo,
        &[
            "--max-connections",
            "4",
            "--network",
            "allowlist",
            "--allow",
            "svc.test:1",
        ],
        "for i in $(seq 12); do bash -c 'exec 3<>/dev/tcp/10.0.2.100/3128; sleep 8' & done; \
         sleep 3; touch holding; wait",
    );
    let holding = env.data_dir().join("attempts/1.1/work/holding");
    assert!(wait_until(Duration::from_secs(120), || holding.exists()));
    let needle = env.data_dir().to_string_lossy().into_owned();
    let bridges = || {
        processes_mentioning(&needle)
            .into_iter()
            // (QEMU's own command line names the bridge too: only `berth __bridge` counts.)
            .filter(|(_, cmd)| cmd.split(' ').nth(1) == Some("__bridge"))
            .count()
    };
    let held = bridges();
    assert_eq!(
        held, 4,
        "bridge processes while 12 connections are asked for"
    );
    let a = wait_ended(&env, "1.1");
    assert_eq!(a["state"], "exited", "{a}");
    assert_eq!(bridges(), 0);
}

#[test]
fn a_repo_cannot_raise_its_own_limits() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    berth_tests::commit_file(
        &repo,
        "berth.toml",
        "[limits]\nworkspace = \"900GiB\"\n",
        "more for me",
    );
    let out = env
        .berth()
        .args(["task", "new", "--repo"])
        .arg(&repo)
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("limits.workspace") && err.contains("--max-workspace"),
        "{err}"
    );
    // Nothing was made.
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "[]");
}

#[test]
fn berth_run_in_the_foreground_keeps_the_limits_too() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let out = env
        .berth()
        .args(["run", "--repo"])
        .arg(&repo)
        .args(["--max-workspace", "24MiB", "--", "sh", "-c"])
        .arg("dd if=/dev/zero of=fill bs=1M count=400 2>/dev/null; echo wrote-everything")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    // (The command's own words are in the task's title: only its output line counts.)
    assert!(
        !text.lines().any(|l| l.trim() == "wrote-everything"),
        "{text}"
    );
    assert!(text.contains("workspace reached"), "{text}");
    let a = attempt(&env, "1.1");
    assert_eq!(a["state"], "stopped", "{a}");
    assert!(
        audit_kinds(&env, "1.1")
            .iter()
            .any(|e| e["kind"] == "limit" && e["data"]["limit"] == "workspace")
    );
}
