//! The messages the host and the agent exchange.

use serde::{Deserialize, Serialize};

/// First message each way. The host sends it; the agent answers with its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub version: u32,
    /// Free text naming the software, e.g. `berth-agent 0.1.0`.
    pub software: String,
}

/// Terminal size for a PTY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

/// Run one command in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments; the program is looked up on the guest's PATH.
    pub argv: Vec<String>,
    /// Extra environment on top of the agent's minimal default (PATH, HOME, USER, TERM, LANG).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory; `/work` when absent.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Guest user to run as; `agent` when absent.
    #[serde(default)]
    pub user: Option<String>,
    /// Run under a PTY of this size (stdout carries the terminal; there is no stderr).
    #[serde(default)]
    pub pty: Option<WinSize>,
}

/// How a guest process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitStatus {
    /// Exit code when the process exited normally.
    pub code: Option<i32>,
    /// Signal number when the process was killed by a signal.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// The shell convention: the code, or 128 + the signal number. Both come from the
    /// guest: a signal number outside 1..=127 (no real signal) reads as 255, never overflows.
    pub fn shell_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(sig @ 1..=127)) => 128 + sig,
            (None, _) => 255,
        }
    }
}

/// One frame's meaning. `id` names the exec a message belongs to (0 for session messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Both ways, first: protocol version.
    Hello(Hello),
    /// Host -> agent: start a process under `id` (chosen by the host, unique per session).
    Exec { id: u32, request: ExecRequest },
    /// Agent -> host: the process for `id` started.
    Started { id: u32, pid: u32 },
    /// Host -> agent: bytes for the process's stdin.
    Stdin { id: u32, data: Vec<u8> },
    /// Host -> agent: close the process's stdin.
    StdinEof { id: u32 },
    /// Agent -> host: bytes from stdout (or the PTY).
    Stdout { id: u32, data: Vec<u8> },
    /// Agent -> host: bytes from stderr.
    Stderr { id: u32, data: Vec<u8> },
    /// Agent -> host: the process ended; no more output follows for `id`.
    Exited { id: u32, status: ExitStatus },
    /// Host -> agent: deliver a signal (Linux numbering) to the process.
    Signal { id: u32, signal: i32 },
    /// Host -> agent: resize the process's PTY.
    Resize { id: u32, size: WinSize },
    /// Agent -> host: a request failed (e.g. the program does not exist).
    Error { id: u32, message: String },
    /// Host -> agent: are you alive? The agent answers with `Pong` carrying the same nonce.
    Ping { nonce: u32 },
    /// Agent -> host: answer to `Ping`.
    Pong { nonce: u32 },
    /// Host -> agent: sync disks and power the VM off. Client -> supervisor: stop the attempt.
    PowerOff,
    /// Client -> supervisor: attach to the attempt's terminal (id 0): recent output, then
    /// live output; the client's `Stdin`/`Resize` with id 0 go to the attempt's command.
    Attach { size: Option<WinSize> },
    /// Supervisor -> attached client: the guest asks to reach a name that is not on the
    /// allowlist; answer with `Approve` under the same id.
    ApprovalRequest { id: u32, host: String, port: u16 },
    /// Client -> supervisor: `once`, `always` (for this task) or `deny`.
    Approve { id: u32, decision: String },
    /// Supervisor -> attached clients: question `id` needs no answer any more: someone
    /// answered it (`once`, `always`, `deny`) or the proxy stopped waiting (`expired`).
    ApprovalClosed { id: u32, decision: String },
}

impl Message {
    /// A short name for logs and errors.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Exec { .. } => "exec",
            Message::Started { .. } => "started",
            Message::Stdin { .. } => "stdin",
            Message::StdinEof { .. } => "stdin-eof",
            Message::Stdout { .. } => "stdout",
            Message::Stderr { .. } => "stderr",
            Message::Exited { .. } => "exited",
            Message::Signal { .. } => "signal",
            Message::Resize { .. } => "resize",
            Message::Error { .. } => "error",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::PowerOff => "power-off",
            Message::Attach { .. } => "attach",
            Message::ApprovalRequest { .. } => "approval-request",
            Message::Approve { .. } => "approve",
            Message::ApprovalClosed { .. } => "approval-closed",
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn guest_chosen_signal_numbers_cannot_overflow_the_exit_code() {
        for (sig, want) in [
            (9, 137),
            (i32::MAX, 255),
            (i32::MIN, 255),
            (0, 255),
            (-1, 255),
        ] {
            let st = super::ExitStatus {
                code: None,
                signal: Some(sig),
            };
            assert_eq!(st.shell_code(), want, "signal {sig}");
        }
    }
}
