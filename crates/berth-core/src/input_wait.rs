//! Whether an attempt's terminal sits at a prompt: its command printed nothing for a while
//! and what it printed last does not end a line (a shell's `$ `, a question's `? `, a
//! full-screen program's cursor moves), so the user is expected to type. `berth ls` and the
//! app show such an attempt as "waiting for input"; a silent command whose output ended with
//! a whole line (a build, a test run) stays "working".

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long the terminal must be quiet before it counts as waiting.
pub(crate) const QUIET: Duration = Duration::from_secs(3);

/// Watches one attempt's terminal output; keeps `attempts/<id>/waiting-input` while it waits.
pub(crate) struct InputWatch {
    marker: PathBuf,
    last_output: Instant,
    ends_line: bool,
    marked: bool,
}

impl InputWatch {
    pub(crate) fn new(marker: PathBuf) -> Self {
        let _ = std::fs::remove_file(&marker);
        InputWatch {
            marker,
            last_output: Instant::now(),
            // Nothing printed yet is not a prompt.
            ends_line: true,
            marked: false,
        }
    }

    /// The command printed `data`.
    pub(crate) fn output(&mut self, data: &[u8]) {
        let Some(last) = data.last() else { return };
        self.last_output = Instant::now();
        self.ends_line = *last == b'\n';
        if self.marked {
            self.marked = false;
            let _ = std::fs::remove_file(&self.marker);
        }
    }

    /// Called now and then: marks the attempt as waiting once its terminal has been quiet at
    /// a prompt for [`QUIET`].
    pub(crate) fn tick(&mut self, now: Instant) {
        if !self.marked && !self.ends_line && now.duration_since(self.last_output) >= QUIET {
            self.marked = std::fs::write(&self.marker, b"").is_ok();
        }
    }
}

impl Drop for InputWatch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.marker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_at_a_prompt_is_waiting_and_a_whole_line_is_not() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("waiting-input");
        let mut w = InputWatch::new(marker.clone());
        let later = Instant::now() + QUIET + Duration::from_millis(10);
        w.tick(later);
        assert!(!marker.exists(), "nothing printed yet");
        w.output(b"building...\n");
        w.tick(Instant::now() + QUIET + Duration::from_millis(10));
        assert!(
            !marker.exists(),
            "a silent build after a whole line is working"
        );
        w.output(b"agent@berth:/work$ ");
        w.tick(Instant::now());
        assert!(!marker.exists(), "not quiet long enough yet");
        w.tick(Instant::now() + QUIET + Duration::from_millis(10));
        assert!(marker.exists(), "quiet at a prompt");
        w.output(b"l");
        assert!(!marker.exists(), "typing or output ends the wait");
        w.tick(Instant::now() + QUIET + Duration::from_millis(10));
        assert!(marker.exists());
        drop(w);
        assert!(!marker.exists(), "gone with the attempt's run");
    }
}
