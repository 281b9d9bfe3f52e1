//! The repo's test command (`[test]` in `berth.toml`): run by Berth in the attempt's VM after
//! its agent ends, as `agent` in /work with the attempt's own network and secrets, so the
//! comparison says which attempts pass. It runs inside the guest like the agent did, so it
//! widens nothing and needs no trust; it is read from the repo when the task is made (an
//! agent that rewrites `berth.toml` cannot change how its own attempt is judged) and shown
//! beside its result.
//!
//! ```toml
//! [test]
//! command = "cargo test --offline"   # sh -c, in /work
//! timeout = "10m"                    # default 10m, at most 2h
//! ```

use std::time::{Duration, Instant};

use berth_db::AttemptId;
use berth_proto::{ExecRequest, Message};
use serde::{Deserialize, Serialize};

use crate::Store;

/// The longest test command, in bytes.
pub const MAX_COMMAND: usize = 4096;
const DEFAULT_TIMEOUT: u64 = 600;
const MAX_TIMEOUT: u64 = 2 * 3600;

/// `[test]` as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    pub command: String,
    pub timeout: Option<String>,
}

/// What an attempt runs after its agent: the command and its time limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestPlan {
    pub command: String,
    pub timeout_secs: u64,
}

impl TestConfig {
    pub(crate) fn plan(&self) -> Result<TestPlan, String> {
        let command = self.command.trim();
        if command.is_empty() {
            return Err("berth.toml: test.command is empty; say how the repo's tests run".into());
        }
        if command.len() > MAX_COMMAND || command.contains('\0') {
            return Err(format!(
                "berth.toml: test.command must be one line of text under {MAX_COMMAND} bytes"
            ));
        }
        let timeout_secs = match &self.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => crate::secrets::parse_duration(t)
                .map_err(|e| format!("berth.toml: test.timeout: {e}"))?,
        };
        if timeout_secs > MAX_TIMEOUT {
            return Err(format!(
                "berth.toml: test.timeout: at most 2h, got '{}'",
                self.timeout.as_deref().unwrap_or_default()
            ));
        }
        Ok(TestPlan {
            command: command.to_string(),
            timeout_secs,
        })
    }
}

fn plan_file(store: &Store, id: AttemptId) -> std::path::PathBuf {
    store.attempt_dir(id).join("test.json")
}

/// Keeps the plan beside the attempt (host side; the guest never sees this directory).
pub(crate) fn save_plan(store: &Store, id: AttemptId, plan: &TestPlan) -> std::io::Result<()> {
    std::fs::write(plan_file(store, id), serde_json::to_vec(plan)?)
}

/// The attempt's test plan, if its repo had one when the task was made.
pub fn attempt_plan(store: &Store, id: AttemptId) -> Option<TestPlan> {
    serde_json::from_slice(&std::fs::read(plan_file(store, id)).ok()?).ok()
}

/// How the test command ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub command: String,
    /// Its exit code; none when it did not end by itself.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Stopped by the user (or the VM went away) before it ended.
    pub interrupted: bool,
    pub seconds: u64,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// "passed", "failed (exit 1)", "timed out after 10m", "interrupted".
    pub fn words(&self) -> String {
        match (self.exit_code, self.timed_out) {
            (Some(0), _) => "passed".into(),
            (Some(n), _) => format!("failed (exit {n})"),
            (None, true) => format!("timed out after {}s", self.seconds),
            (None, false) => "interrupted".into(),
        }
    }
}

/// Runs `plan` in the guest with the attempt's `env`, sending its output to `output` as it
/// comes. Returns early (killing it) when `stop` says so or its time is up.
pub(crate) fn run(
    agent: &mut berth_vm::agent::AgentClient,
    plan: &TestPlan,
    env: Vec<(String, String)>,
    stop: &dyn Fn() -> bool,
    output: &mut dyn FnMut(&[u8]),
) -> TestResult {
    let started = Instant::now();
    let mut result = TestResult {
        command: plan.command.clone(),
        exit_code: None,
        timed_out: false,
        interrupted: false,
        seconds: 0,
    };
    let request = ExecRequest {
        argv: vec!["sh".into(), "-c".into(), plan.command.clone()],
        env,
        cwd: Some("/work".into()),
        user: None,
        pty: None,
    };
    let control = match agent.start(request) {
        Ok(c) => c,
        Err(e) => {
            output(format!("[berth] the test command did not start: {e}\r\n").as_bytes());
            result.interrupted = true;
            return result;
        }
    };
    let limit = Duration::from_secs(plan.timeout_secs);
    loop {
        if stop() {
            let _ = control.signal(9);
            result.interrupted = true;
            break;
        }
        if started.elapsed() >= limit {
            let _ = control.signal(9);
            result.timed_out = true;
            break;
        }
        match agent.recv(Duration::from_millis(100)) {
            Ok(Some(Message::Stdout { id, data } | Message::Stderr { id, data }))
                if id == control.id() =>
            {
                output(&crlf(&data))
            }
            Ok(Some(Message::Exited { id, status })) if id == control.id() => {
                result.exit_code = Some(status.shell_code());
                break;
            }
            Ok(_) => {}
            Err(_) => {
                result.interrupted = true;
                break;
            }
        }
    }
    result.seconds = started.elapsed().as_secs();
    result
}

/// The command runs without a terminal: its bare newlines become CR LF for the terminals that
/// show the attempt's output.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    let mut last = 0u8;
    for &b in data {
        if b == b'\n' && last != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        last = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(command: &str, timeout: Option<&str>) -> TestConfig {
        TestConfig {
            command: command.into(),
            timeout: timeout.map(str::to_string),
        }
    }

    #[test]
    fn a_plan_has_a_command_and_a_bounded_time() {
        let plan = config(" cargo test ", None).plan().unwrap();
        assert_eq!(plan.command, "cargo test");
        assert_eq!(plan.timeout_secs, 600);
        assert_eq!(config("make", Some("90s")).plan().unwrap().timeout_secs, 90);
        for bad in [config("", None), config("  ", None), config("a\0b", None)] {
            assert!(bad.plan().is_err(), "{bad:?}");
        }
        assert!(config(&"x".repeat(MAX_COMMAND + 1), None).plan().is_err());
        let e = config("make", Some("3h")).plan().unwrap_err();
        assert!(e.contains("test.timeout"), "{e}");
        assert!(config("make", Some("soon")).plan().is_err());
    }

    #[test]
    fn results_in_words() {
        let r = |exit_code, timed_out| TestResult {
            command: "t".into(),
            exit_code,
            timed_out,
            interrupted: exit_code.is_none() && !timed_out,
            seconds: 7,
        };
        assert_eq!(r(Some(0), false).words(), "passed");
        assert!(r(Some(0), false).passed());
        assert_eq!(r(Some(2), false).words(), "failed (exit 2)");
        assert_eq!(r(None, true).words(), "timed out after 7s");
        assert_eq!(r(None, false).words(), "interrupted");
    }

    #[test]
    fn bare_newlines_become_crlf_once() {
        assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    }
}
