//! `berth selftest` as a user runs it: real VMs, every attack, each one stopped. It runs in
//! a data directory of its own: the user's tasks stay as they were.

use berth_tests::TestEnv;
use serde_json::Value;

#[test]
fn every_attack_of_the_selftest_is_stopped() {
    let env = TestEnv::new();
    let out = env.berth().args(["selftest", "--json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let verdicts: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    let verdicts = verdicts.as_array().unwrap();
    assert!(verdicts.len() >= 30, "{} attacks", verdicts.len());
    let not_stopped: Vec<_> = verdicts
        .iter()
        .filter(|v| v["outcome"] != "stopped")
        .collect();
    assert!(
        not_stopped.is_empty(),
        "{}\n{stderr}",
        serde_json::to_string_pretty(&not_stopped).unwrap()
    );
    assert!(out.status.success(), "{stderr}");
    // The selftest left nothing among the user's tasks, and no directory of its own.
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ls.stdout).trim(), "[]");
    let left = std::fs::read_dir(env.data_dir().join("selftest"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0);
}
