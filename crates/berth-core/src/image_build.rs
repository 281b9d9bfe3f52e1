//! `berth image build` in the background (the app's Build image): one detached process,
//! its output in `<data>/logs/image-build.log`, its pid and start time in
//! `<data>/image-build.pid` (a pid reused by another process is not the build).

use std::path::Path;

use serde::Serialize;

use crate::Store;
use crate::task::TaskError;

/// A background image build: running or not, and its last lines (display text).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageBuild {
    pub running: bool,
    pub lines: Vec<String>,
}

const LOG: &str = "image-build.log";

fn pid_file(store: &Store) -> std::path::PathBuf {
    store.data().root().join("image-build.pid")
}

/// The background build's state.
pub fn image_build_status(store: &Store) -> ImageBuild {
    let running = std::fs::read_to_string(pid_file(store))
        .ok()
        .and_then(|s| {
            let (pid, start) = s.trim().split_once(' ')?;
            let pid: u32 = pid.parse().ok()?;
            Some(berth_vm::rundir::start_time(pid)?.to_string() == start)
        })
        .unwrap_or(false);
    let log = std::fs::read(store.data().logs().join(LOG)).unwrap_or_default();
    ImageBuild {
        running,
        lines: last_lines(&log, 6),
    }
}

/// The last `n` non-empty lines of `log` (of a progress line rewritten with CR, its latest
/// state), control characters escaped.
fn last_lines(log: &[u8], n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(&log[log.len().saturating_sub(8192)..]).into_owned();
    let mut lines: Vec<String> = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| {
            crate::table_cell(
                l.trim_end_matches('\r').rsplit('\r').next().unwrap_or(l),
                200,
            )
        })
        .collect();
    lines.reverse();
    lines
}

/// Starts `berth image build` detached, unless one runs already.
pub fn build_image_in_background(berth: &Path, store: &Store) -> Result<bool, TaskError> {
    if image_build_status(store).running {
        return Ok(false);
    }
    let _ = std::fs::remove_file(store.data().logs().join(LOG));
    let pid = crate::spawn::spawn_detached(berth, store, &["image".into(), "build".into()], LOG)?;
    let start = berth_vm::rundir::start_time(pid).unwrap_or_default();
    let _ = std::fs::write(pid_file(store), format!("{pid} {start}"));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_are_the_latest_state_with_escapes_shown() {
        let log = b"one\n\ntwo\rthree\r\n\x1b[2Jfour\n";
        assert_eq!(
            last_lines(log, 2),
            vec!["three".to_string(), "\\x1b[2Jfour".into()]
        );
        assert_eq!(last_lines(log, 9).len(), 3);
    }
}
