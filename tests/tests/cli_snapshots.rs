//! Snapshots (insta) of the CLI's human and `--json` output that does not need a VM, with
//! volatile values (the data directory, home) normalised: a change to what users read shows
//! up in review as a changed snapshot.

use berth_tests::TestEnv;

/// What `berth ARGS` prints (stdout, then stderr after a marker), with this test's data
/// directory and home replaced by placeholders.
fn shown(env: &TestEnv, args: &[&str]) -> String {
    // From a folder that is no repo, so nothing depends on where the suite runs.
    let out = env
        .berth()
        .current_dir(env.home.path())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}--- stderr ---\n{}--- exit: {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    text.replace(&env.data_dir().display().to_string(), "[DATA]")
        .replace(&env.home.path().display().to_string(), "[HOME]")
}

#[test]
fn listings_of_an_empty_berth() {
    let env = TestEnv::new();
    insta::assert_snapshot!("ls_empty", shown(&env, &["ls"]));
    insta::assert_snapshot!("ls_json_empty", shown(&env, &["ls", "--json"]));
    // Where each agent is installed depends on what other tests installed on the shared
    // image: that column is normalised.
    let agents: Vec<String> = shown(&env, &["agent", "ls"])
        .lines()
        .map(|l| {
            // The INSTALLED column starts after AGENT, LABEL, PACKAGE and SECRET.
            const AT: usize = 10 + 2 + 12 + 2 + 40 + 2 + 22 + 2;
            match l.get(AT..) {
                Some(_) if l.contains(" set)") => format!("{}[INSTALLED]", &l[..AT]),
                _ => l.to_string(),
            }
        })
        .collect();
    insta::assert_snapshot!("agent_ls", agents.join("\n"));
    insta::assert_snapshot!("secret_ls", shown(&env, &["secret", "ls"]));
}

#[test]
fn errors_say_what_to_do() {
    let env = TestEnv::new();
    insta::assert_snapshot!(
        "audit_unknown",
        shown(&env, &["audit", "999.1", "--verify"])
    );
    insta::assert_snapshot!("ls_bad_state", shown(&env, &["ls", "--state", "sleeping"]));
    insta::assert_snapshot!("exec_unknown", shown(&env, &["exec", "7.1", "--", "true"]));
}

#[test]
fn help_texts() {
    let env = TestEnv::new();
    insta::assert_snapshot!("help", shown(&env, &["--help"]));
    insta::assert_snapshot!("help_config", shown(&env, &["help", "config"]));
    insta::assert_snapshot!("help_run", shown(&env, &["run", "--help"]));
}
