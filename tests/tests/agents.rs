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

/// The guest renders an agent's event stream for people (the same binary as its agent).
#[test]
fn the_guest_renders_an_agents_event_stream_readably() {
    let env = TestEnv::new();
    let events = concat!(
        r#"{"type":"system","subtype":"init","model":"m1"}"#,
        "\n",
        r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"python3 -m unittest"}}]}}"#,
        "\n",
        r#"{"type":"result","subtype":"success","num_turns":2}"#,
        "\n"
    );
    let out = env
        .berth()
        .args(["vm", "run", "--", "sh", "-c"])
        .arg(format!(
            "printf '%s' '{events}' | /run/berth/berth-agent render claude; echo rc=$?"
        ))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        [
            "● Claude Code started (model m1)",
            "→ Bash: python3 -m unittest",
            "✓ Claude Code is done (2 turns)",
            "rc=0"
        ],
        "{shown}"
    );
}
