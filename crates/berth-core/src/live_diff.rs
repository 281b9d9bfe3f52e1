//! Reviewing an attempt while it runs. The host never reads a live workspace (a guest could
//! swap a directory for a symlink between two reads), so the snapshot is made by the guest's
//! own git, in the VM, as `agent` in /work: everything it has (untracked files too, through a
//! throwaway index; its own index and branch untouched) against the attempt's start, as a
//! patch sent over the agent channel. What arrives is a snapshot the guest cannot change
//! afterwards, capped and shown as text; it is the guest's word about its work, and once the
//! attempt ends the host's own collect gives the real result.

use std::time::Duration;

use berth_db::AttemptId;
use berth_proto::ExecRequest;

use crate::Store;
use crate::task::TaskError;

/// The largest live patch kept, in bytes (the rest is cut, and the patch says so).
pub const MAX_LIVE_PATCH: usize = 8 << 20;
/// How long the guest has to make it.
const TIMEOUT: Duration = Duration::from_secs(60);

const SCRIPT: &str = r#"idx=$(mktemp) || exit 1
trap 'rm -f "$idx"' EXIT
cp .git/index "$idx" 2>/dev/null
export GIT_INDEX_FILE="$idx"
git add -A . >/dev/null 2>&1 && exec git -c core.quotepath=off diff --cached --no-color --no-ext-diff --no-textconv "$BERTH_START""#;

struct Capture {
    out: Vec<u8>,
    cut: bool,
    err: Vec<u8>,
}

impl crate::host::agent::ExecIo for Capture {
    fn stdout(&mut self, d: &[u8]) {
        let room = MAX_LIVE_PATCH.saturating_sub(self.out.len());
        self.cut |= d.len() > room;
        self.out.extend_from_slice(&d[..d.len().min(room)]);
    }
    fn stderr(&mut self, d: &[u8]) {
        let room = 4096usize.saturating_sub(self.err.len());
        self.err.extend_from_slice(&d[..d.len().min(room)]);
    }
    fn error(&mut self, m: &str) {
        self.stderr(m.as_bytes());
    }
}

/// The running attempt `id`'s changes against its start, as its guest's git reports them
/// now, and (files, +, -) counted from that patch.
pub(crate) fn live_diff(
    store: &Store,
    id: AttemptId,
    start: &str,
) -> Result<(String, (usize, usize, usize)), TaskError> {
    let mut client = crate::supervisor_client::connect_live(store, id)?;
    let request = ExecRequest {
        argv: vec!["sh".into(), "-c".into(), SCRIPT.into()],
        env: vec![("BERTH_START".into(), start.to_string())],
        cwd: Some("/work".into()),
        user: None,
        pty: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cap = Capture {
            out: Vec::new(),
            cut: false,
            err: Vec::new(),
        };
        let status = client.exec(request, &mut cap);
        let _ = tx.send((status, cap));
    });
    let (status, cap) = rx.recv_timeout(TIMEOUT).map_err(|_| {
        TaskError::Refused(format!(
            "{id} did not make a snapshot of its changes within {}s; try again, or wait for it \
             to finish",
            TIMEOUT.as_secs()
        ))
    })?;
    let status = status.map_err(|e| TaskError::Refused(format!("{id}: {e}")))?;
    if status.shell_code() != 0 && !cap.cut {
        return Err(TaskError::Refused(format!(
            "{id}'s git could not list its changes ({}): {}",
            status.shell_code(),
            crate::table_cell(String::from_utf8_lossy(&cap.err).trim(), 300)
        )));
    }
    let mut patch = String::from_utf8_lossy(&cap.out).into_owned();
    if cap.cut {
        patch.push_str(&format!(
            "\n[berth: the live patch was cut at {} MiB; the whole result is there once the \
             attempt ends]\n",
            MAX_LIVE_PATCH >> 20
        ));
    }
    let stats = count(&patch);
    Ok((patch, stats))
}

/// (files, +, -) of a unified patch.
fn count(patch: &str) -> (usize, usize, usize) {
    let (mut files, mut ins, mut del) = (0, 0, 0);
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            files += 1;
        } else if line.starts_with('+') && !line.starts_with("+++ ") {
            ins += 1;
        } else if line.starts_with('-') && !line.starts_with("--- ") {
            del += 1;
        }
    }
    (files, ins, del)
}

#[cfg(test)]
mod tests {
    use crate::host::agent::ExecIo;

    #[test]
    fn a_guest_that_sends_too_much_is_cut_at_the_cap() {
        let mut cap = super::Capture {
            out: Vec::new(),
            cut: false,
            err: Vec::new(),
        };
        let chunk = vec![b'+'; 1 << 20];
        for _ in 0..(super::MAX_LIVE_PATCH >> 20) + 3 {
            cap.stdout(&chunk);
        }
        cap.stderr(&vec![b'e'; 100_000]);
        assert_eq!(cap.out.len(), super::MAX_LIVE_PATCH);
        assert!(cap.cut);
        assert_eq!(cap.err.len(), 4096);
    }

    #[test]
    fn counts_files_and_lines_of_a_patch() {
        let p =
            "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1,2 @@\n-a\n+b\n+c\ndiff --git a/y b/y\n";
        assert_eq!(super::count(p), (2, 2, 1));
    }
}
