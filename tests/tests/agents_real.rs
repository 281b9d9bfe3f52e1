//! The real Claude Code, Codex, Gemini CLI, aider and opencode in real VMs, against a stand-in of their vendor's
//! API on loopback TLS (`berth_tests::model_api`). Each is installed as a user would
//! (`berth agent install`: the user's npm fetches the platform package, a setup VM with no
//! network installs it), its key goes in the OS keyring, and `berth run --agent NAME` runs it
//! headless: the stand-in scripts a tool call that writes a file, one that runs a command,
//! and a final answer. The change comes back as a branch; the stand-in got the real key from
//! the keyring, never the phantom; the key is in no guest-visible output; the audit lists
//! the secret's uses and no request was denied.
//!
//! Needs the user's npm to reach a registry (CI's does) and a session keyring
//! (`scripts/test.sh` runs the suite inside `keyctl session -`).

use std::process::Output;

use berth_tests::model_api::{COMMAND, FINAL, WRITTEN};
use berth_tests::{ModelApi, TestEnv, Vendor, git, output_with_stdin, simple_repo};

const VALUE: &str = "sk-real-key-from-the-keyring-0a1b2c3d4e";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Agent {
    name: &'static str,
    vendor: Vendor,
    secret: &'static str,
    header: &'static str,
    /// The request header the key arrives in, and how.
    sent_as: (&'static str, String),
    /// What its rendered output shows of the scripted job.
    shows: &'static [&'static str],
    /// Whether it runs the command the model asks for and answers once more (aider shows a
    /// suggested command but does not run it headless, and stops after its edit).
    runs_command: bool,
}

fn run_real_agent(agent: Agent) {
    let env = TestEnv::new();
    let api = ModelApi::start(agent.vendor);
    let ca = env.home.path().join("api-ca.pem");
    std::fs::write(&ca, &api.ca_pem).unwrap();
    let set = output_with_stdin(
        env.berth()
            .args(["secret", "set", agent.secret, "--header", agent.header])
            .arg("--upstream")
            .arg(format!("https://localhost:{}", api.port))
            .arg("--ca-file")
            .arg(&ca),
        VALUE.as_bytes(),
    );
    assert!(set.status.success(), "{}", text(&set));
    let repo = simple_repo(&env);

    // Installed as a user would: fetched by the host's npm, installed by a setup VM.
    let install = env
        .berth()
        .current_dir(&repo)
        .args(["agent", "install", agent.name])
        .output()
        .unwrap();
    let shown = text(&install);
    assert!(install.status.success(), "{shown}");
    assert!(shown.contains("installed on the image"), "{shown}");
    let ls = env
        .berth()
        .current_dir(&repo)
        .args(["agent", "ls", "--json"])
        .output()
        .unwrap();
    let ls: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let me = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == agent.name)
        .unwrap();
    assert_eq!(me["secret_set"], true, "{me}");
    assert_eq!(me["fetched"], true, "{me}");
    let installed = &me["installed"][0];
    assert_eq!(installed["on"], "the image", "{me}");
    assert!(
        installed["check"]
            .as_str()
            .unwrap()
            .contains(me["version"].as_str().unwrap()),
        "its version check printed its version: {me}"
    );

    // The job, headless, through the gateway.
    let run = env
        .berth()
        .current_dir(&repo)
        .args(["run", "--agent", agent.name, "--repo", "."])
        .args(["--", "write hello.txt, then run the check"])
        .output()
        .unwrap();
    let shown = text(&run);
    assert!(run.status.success(), "{shown}");
    let final_text: &[&str] = if agent.runs_command { &[FINAL] } else { &[] };
    for want in agent.shows.iter().chain(final_text) {
        assert!(
            shown.contains(want),
            "the rendered output lacks {want:?}:\n{shown}"
        );
    }
    assert!(!shown.contains(VALUE), "the key reached the guest's output");

    // The result is a branch: the file the model's tool call wrote, and the command's trace.
    let hello = git(&repo, &["show", "berth/1/1:hello.txt"]);
    assert_eq!(hello, WRITTEN, "{shown}");
    eprintln!("the attempt's output:\n{shown}");
    if agent.runs_command {
        let ran = git(&repo, &["show", "berth/1/1:ran.txt"]);
        assert_eq!(
            ran.split_whitespace().collect::<Vec<_>>(),
            ["ran-in-guest", "x86_64"],
            "{COMMAND}"
        );
    }

    // The stand-in did three model turns, each with the real key, never a phantom.
    let reqs = api.requests();
    let steps = api.steps();
    let want: &[usize] = if agent.runs_command { &[0, 1, 2] } else { &[0] };
    for s in want {
        assert!(steps.contains(s), "step {s} missing: {steps:?}");
    }
    for r in reqs.iter().filter(|r| r.step.is_some()) {
        assert_eq!(
            r.header(agent.sent_as.0),
            Some(agent.sent_as.1.as_str()),
            "{} {}: {:?}",
            r.method,
            r.path,
            r.headers
        );
    }
    assert!(
        reqs.iter()
            .all(|r| !r.headers.iter().any(|(_, v)| v.contains("berth-phantom"))),
        "a phantom reached the upstream"
    );

    // The audit: each use of the secret; nothing denied (the presets switch off the
    // agents' own traffic to outside hosts).
    let audit = env
        .berth()
        .args(["audit", "1.1", "--json"])
        .output()
        .unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_slice(&audit.stdout).unwrap();
    let uses = events.iter().filter(|e| e["kind"] == "secret").count();
    assert!(uses >= want.len(), "{uses} secret uses audited: {events:?}");
    let denied: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["data"].to_string().contains("\"deny\""))
        .collect();
    assert!(denied.is_empty(), "denied: {denied:?}");
    assert!(!String::from_utf8_lossy(&audit.stdout).contains(VALUE));
    forget_layers(agent.name);
}

/// Frees the disk an agent's layers take in the shared test images (hundreds of MiB each;
/// CI machines have little), except Claude Code's, which the app's E2E runs next.
fn forget_layers(name: &str) {
    if name == "claude" {
        return;
    }
    let layers = berth_tests::target_dir().join("berth-test-data/images/envs/agents");
    for dir in std::fs::read_dir(&layers).into_iter().flatten().flatten() {
        let manifest = std::fs::read(dir.path().join("manifest.json")).unwrap_or_default();
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap_or_default();
        if m["agent"] == name {
            let _ = std::fs::remove_dir_all(dir.path());
        }
    }
}

#[test]
fn claude_code_does_a_scripted_job_through_the_gateway() {
    run_real_agent(Agent {
        name: "claude",
        vendor: Vendor::Anthropic,
        secret: "anthropic",
        header: "x-api-key",
        sent_as: ("x-api-key", VALUE.to_string()),
        shows: &["Write", "hello.txt", "Bash"],
        runs_command: true,
    });
}

#[test]
fn codex_does_a_scripted_job_through_the_gateway() {
    run_real_agent(Agent {
        name: "codex",
        vendor: Vendor::OpenAi,
        secret: "openai",
        header: "Authorization: Bearer {}",
        sent_as: ("authorization", format!("Bearer {VALUE}")),
        shows: &["hello.txt", "ran-in-guest"],
        runs_command: true,
    });
}

#[test]
fn gemini_cli_does_a_scripted_job_through_the_gateway() {
    run_real_agent(Agent {
        name: "gemini",
        vendor: Vendor::Google,
        secret: "gemini",
        header: "x-goog-api-key",
        sent_as: ("x-goog-api-key", VALUE.to_string()),
        shows: &["hello.txt"],
        runs_command: true,
    });
}

#[test]
fn aider_does_a_scripted_edit_through_the_gateway() {
    run_real_agent(Agent {
        name: "aider",
        vendor: Vendor::OpenAi,
        secret: "openai",
        header: "Authorization: Bearer {}",
        sent_as: ("authorization", format!("Bearer {VALUE}")),
        shows: &["hello.txt", "Applied edit"],
        runs_command: false,
    });
}

#[test]
fn opencode_does_a_scripted_job_through_the_gateway() {
    run_real_agent(Agent {
        name: "opencode",
        vendor: Vendor::Anthropic,
        secret: "anthropic",
        header: "x-api-key",
        sent_as: ("x-api-key", VALUE.to_string()),
        shows: &["hello.txt"],
        runs_command: true,
    });
}
