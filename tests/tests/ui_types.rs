//! The desktop app's TypeScript types must have exactly the fields of the CLI's JSON
//! (`berth ls --json`, `berth repo ls --json`), which the app's commands also produce.

use std::collections::BTreeSet;

use berth_tests::TestEnv;

fn ts_fields(source: &str, interface: &str) -> BTreeSet<String> {
    let start = source
        .find(&format!("export interface {interface} {{"))
        .expect("interface");
    let body = &source[start..source[start..].find('}').unwrap() + start];
    body.lines()
        .skip(1)
        .filter_map(|l| {
            l.trim()
                .split_once(':')
                .map(|(k, _)| k.trim().trim_end_matches('?').to_string())
        })
        .collect()
}

/// The keys of the first object `berth ARGS` prints as JSON.
fn json_keys(env: &TestEnv, args: &[&str]) -> BTreeSet<String> {
    let out = env.berth().args(args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].as_object().unwrap().keys().cloned().collect()
}

fn types_ts() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/src/types.ts")).unwrap()
}

#[test]
fn the_ui_attempt_type_matches_berth_ls_json() {
    let env = TestEnv::new();
    let repo = berth_tests::simple_repo(&env);
    // A task whose attempt we never boot is enough to see the JSON shape.
    let out = env
        .berth()
        .args(["run", "--repo"])
        .arg(&repo)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rust = json_keys(&env, &["ls", "--json"]);
    assert_eq!(
        ts_fields(&types_ts(), "Attempt"),
        rust,
        "ui/src/types.ts drifted from `berth ls --json`"
    );
    // The app's own command builds the same fields.
    let app_src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../src-tauri/src/commands.rs"
    ))
    .unwrap();
    let dto_start = app_src.find("pub struct AttemptDto {").unwrap();
    let dto = &app_src[dto_start..app_src[dto_start..].find('}').unwrap() + dto_start];
    let app: BTreeSet<String> = dto
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.trim().to_string()))
        .collect();
    assert_eq!(
        app, rust,
        "src-tauri's AttemptDto drifted from `berth ls --json`"
    );
}

#[test]
fn the_ui_repo_type_matches_berth_repo_ls_json() {
    // The app's `repos` command returns berth-core's `RepoView`, as `berth repo ls --json` does.
    let env = TestEnv::new();
    let repo = berth_tests::simple_repo(&env);
    let add = env
        .berth()
        .args(["repo", "add"])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");
    assert_eq!(
        ts_fields(&types_ts(), "Repo"),
        json_keys(&env, &["repo", "ls", "--json"]),
        "ui/src/types.ts drifted from `berth repo ls --json`"
    );
}

#[test]
fn the_ui_environment_type_matches_berth_env_status_json() {
    let env = TestEnv::new();
    let repo = berth_tests::repo_with(&env.home.path().join("repo"), "main", "README", "hi\n");
    berth_tests::commit_file(&repo, "berth.toml", "[env]\nsetup = [\"true\"]\n", "env");
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["env", "status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: BTreeSet<String> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(ts_fields(&types_ts(), "RepoEnvStatus"), keys);
    assert_eq!(v["configured"], true);
    assert_eq!(v["setup_steps"], 1);
    assert!(v["built"].is_null());
}
