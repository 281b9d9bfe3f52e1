//! Agent presets from the CLI: listed with whether their secret is set, and a preset whose
//! secret is missing is refused before anything is made.

use berth_tests::{TestEnv, output_with_stdin, simple_repo};

/// `berth agent ls --json`.
fn presets(env: &TestEnv) -> Vec<serde_json::Value> {
    let ls = env
        .berth()
        .args(["agent", "ls", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&ls.stdout).unwrap()
}

#[test]
fn presets_are_listed_and_a_missing_secret_is_refused_before_anything_is_made() {
    let env = TestEnv::new();
    let repo = simple_repo(&env);
    let all = presets(&env);
    let names: Vec<&str> = all.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["aider", "claude", "codex", "gemini", "opencode"]);
    assert!(all.iter().all(|p| p["secret_set"] == false));

    let out = env
        .berth()
        .current_dir(&repo)
        .args([
            "run",
            "--agent",
            "claude",
            "--repo",
            ".",
            "--",
            "fix the failing test",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{text}");
    assert!(text.contains("berth secret set anthropic"), "{text}");
    let ls = env.berth().args(["ls", "--json"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout).trim(),
        "[]",
        "a task was made"
    );

    // With the secret stored, the preset says so.
    let set = output_with_stdin(
        env.berth().args([
            "secret",
            "set",
            "anthropic",
            "--upstream",
            "https://api.invalid",
            "--header",
            "x-api-key",
        ]),
        b"sk-test",
    );
    assert!(set.status.success(), "{set:?}");
    let claude = presets(&env)
        .into_iter()
        .find(|p| p["name"] == "claude")
        .unwrap();
    assert_eq!(claude["secret_set"], true);
    // No prompt for a headless run: a clear error, nothing made.
    let out = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--agent", "claude", "--repo", ".", "--"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("say what Claude Code should do"));
}
