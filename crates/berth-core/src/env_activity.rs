//! What is being done to a repo's environment or cache right now, or was last: one small
//! JSON file per repo that every builder (the CLI, a supervisor starting an attempt, the
//! app's Rebuild) keeps up to date as it goes, so any front end can show the state and the
//! last lines of output without being the process that builds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Clock, Store};

/// Progress lines kept (the newest).
const KEEP_LINES: usize = 40;
/// Longest line kept, in bytes (lines come from setup steps: the repo's, or a guest's).
const MAX_LINE: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityState {
    Running,
    Done,
    Failed,
    /// Running, but its process is gone (killed, or the machine went down).
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvActivity {
    /// "building environment 1a2b3c4d5e6f", "refreshing the cache".
    pub what: String,
    pub state: ActivityState,
    pub pid: u32,
    /// The process's start time (so a reused pid is not taken for it).
    #[serde(default)]
    pub pid_start: u64,
    pub started_at: u64,
    pub finished_at: Option<u64>,
    /// The newest progress lines, control characters escaped.
    pub lines: Vec<String>,
    pub error: Option<String>,
}

fn activity_path(store: &Store, repo: &Path) -> PathBuf {
    let key = crate::cache::cache_dir(store, repo)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::env::envs_dir(store)
        .join("activity")
        .join(format!("{key}.json"))
}

/// The repo's current or last activity; a running one whose process is gone reads as
/// interrupted.
pub fn env_activity(store: &Store, repo: &Path) -> Option<EnvActivity> {
    let bytes = std::fs::read(activity_path(store, repo)).ok()?;
    let mut a: EnvActivity = serde_json::from_slice(&bytes).ok()?;
    if a.state == ActivityState::Running && !berth_vm::rundir::process_alive(a.pid, a.pid_start) {
        a.state = ActivityState::Interrupted;
    }
    Some(a)
}

/// Runs `body` as the repo's activity `what`: every progress line it makes goes to
/// `progress` and into the record, and its result ends the record.
pub(crate) fn journaled<T, E: std::fmt::Display>(
    store: &Store,
    repo: &Path,
    what: String,
    clock: Clock,
    progress: &mut dyn FnMut(&str),
    body: impl FnOnce(&mut dyn FnMut(&str)) -> Result<T, E>,
) -> Result<T, E> {
    let mut journal = Journal::start(store, repo, what, clock);
    let result = body(&mut |l: &str| {
        journal.line(l);
        progress(l);
    });
    journal.finish(&result);
    result
}

/// An activity being recorded; written at most every half second while lines come, and on
/// finish.
pub(crate) struct Journal {
    path: PathBuf,
    activity: EnvActivity,
    clock: Clock,
    written: Instant,
}

impl Journal {
    pub(crate) fn start(store: &Store, repo: &Path, what: String, clock: Clock) -> Journal {
        let mut j = Journal {
            path: activity_path(store, repo),
            activity: EnvActivity {
                what,
                state: ActivityState::Running,
                pid: std::process::id(),
                pid_start: berth_vm::rundir::start_time(std::process::id()).unwrap_or(0),
                started_at: clock() / 1000,
                finished_at: None,
                lines: Vec::new(),
                error: None,
            },
            clock,
            written: Instant::now(),
        };
        j.write();
        j
    }

    pub(crate) fn line(&mut self, line: &str) {
        let mut l = crate::display::escape_controls(line).into_owned();
        if l.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
        }
        self.activity.lines.push(l);
        let over = self.activity.lines.len().saturating_sub(KEEP_LINES);
        self.activity.lines.drain(..over);
        if self.written.elapsed() > Duration::from_millis(500) {
            self.write();
        }
    }

    pub(crate) fn finish<T, E: std::fmt::Display>(mut self, result: &Result<T, E>) {
        self.activity.finished_at = Some((self.clock)() / 1000);
        match result {
            Ok(_) => self.activity.state = ActivityState::Done,
            Err(e) => {
                self.activity.state = ActivityState::Failed;
                self.activity.error =
                    Some(crate::display::escape_controls(&e.to_string()).into_owned());
            }
        }
        self.write();
    }

    fn write(&mut self) {
        self.written = Instant::now();
        let Some(dir) = self.path.parent() else {
            return;
        };
        let _ = std::fs::create_dir_all(dir);
        let tmp = self
            .path
            .with_extension(format!("{}.tmp", std::process::id()));
        let json = serde_json::to_vec(&self.activity).unwrap_or_default();
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> u64 {
        1_700_000_000_000
    }

    #[test]
    fn an_activity_is_recorded_as_it_goes_and_a_dead_one_reads_as_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(crate::DataDir::new(dir.path().to_path_buf()));
        let repo = Path::new("/some/repo");
        assert!(env_activity(&store, repo).is_none());
        let mut j = Journal::start(&store, repo, "building environment x".into(), clock);
        let a = env_activity(&store, repo).unwrap();
        assert_eq!(a.state, ActivityState::Running);
        for i in 0..100 {
            j.line(&format!("line {i}\x1b[2J"));
        }
        j.finish(&Err::<(), _>("setup step 1 failed"));
        let a = env_activity(&store, repo).unwrap();
        assert_eq!(a.state, ActivityState::Failed);
        assert_eq!(a.lines.len(), KEEP_LINES);
        assert!(a.lines[KEEP_LINES - 1].starts_with("line 99"));
        assert!(!a.lines.iter().any(|l| l.contains('\x1b')), "{:?}", a.lines);
        assert_eq!(a.error.as_deref(), Some("setup step 1 failed"));
        // A running record whose process is gone.
        let mut gone = a.clone();
        gone.state = ActivityState::Running;
        gone.pid = i32::MAX as u32;
        std::fs::write(
            activity_path(&store, repo),
            serde_json::to_vec(&gone).unwrap(),
        )
        .unwrap();
        assert_eq!(
            env_activity(&store, repo).unwrap().state,
            ActivityState::Interrupted
        );
    }
}
