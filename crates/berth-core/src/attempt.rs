//! Tasks and attempts, as records in the data directory.
//!
//! ```text
//! <data>/tasks/<task>/task.json          TaskRecord
//! <data>/attempts/<task>.<n>/attempt.json AttemptRecord
//! <data>/attempts/<task>.<n>/work/        the workspace, shared into the VM at /work
//! <data>/attempts/<task>.<n>/host.git/    host-only repository the result is collected into
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::DataDir;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("no attempt {0}; `berth ls` lists them")]
    NoAttempt(AttemptId),
    #[error("'{0}' is not an attempt id; attempt ids look like 3.1 (task 3, attempt 1)")]
    BadId(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { what, path, source }
}

/// `task.n`, e.g. `7.2`: short and typeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttemptId {
    pub task: u32,
    pub n: u32,
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.task, self.n)
    }
}

impl FromStr for AttemptId {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::BadId(s.to_string());
        let (t, n) = s.split_once('.').ok_or_else(bad)?;
        let task: u32 = t.parse().map_err(|_| bad())?;
        let n: u32 = n.parse().map_err(|_| bad())?;
        if task == 0 || n == 0 {
            return Err(bad());
        }
        Ok(AttemptId { task, n })
    }
}

impl TryFrom<String> for AttemptId {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        s.parse()
    }
}

impl From<AttemptId> for String {
    fn from(id: AttemptId) -> String {
        id.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRecord {
    pub id: u32,
    pub title: String,
    pub repo: PathBuf,
    /// What the user asked for (`main`, a tag, a commit).
    pub base_ref: String,
    /// The commit it resolved to.
    pub base: String,
    pub command: Vec<String>,
    pub attempts: u32,
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptRecord {
    pub id: AttemptId,
    pub repo: PathBuf,
    pub base: String,
    /// The workspace's first commit: the base, or a snapshot of uncommitted changes.
    pub start: String,
    pub command: Vec<String>,
    pub exit_code: Option<i32>,
    /// Why the attempt did not run to completion, if it did not.
    pub error: Option<String>,
    /// The branch it was pulled into, and the commit that branch got.
    pub branch: Option<String>,
    pub pulled_head: Option<String>,
}

/// Task and attempt records under a data directory.
#[derive(Debug, Clone)]
pub struct Store {
    data: DataDir,
}

impl Store {
    pub fn new(data: DataDir) -> Self {
        Self { data }
    }

    fn tasks(&self) -> PathBuf {
        self.data.root().join("tasks")
    }

    pub fn attempt_dir(&self, id: AttemptId) -> PathBuf {
        self.data.root().join("attempts").join(id.to_string())
    }

    /// Allocates the next task number (safe against concurrent `berth` processes: the
    /// directory is created atomically) and saves the record with that id.
    pub fn new_task(&self, mut task: TaskRecord) -> Result<TaskRecord, StoreError> {
        let root = self.tasks();
        std::fs::create_dir_all(&root).map_err(io("cannot create", &root))?;
        let mut next = std::fs::read_dir(&root)
            .map_err(io("cannot list", &root))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        loop {
            let dir = root.join(next.to_string());
            match std::fs::create_dir(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(io("cannot create", &dir)(e)),
            }
        }
        task.id = next;
        write_json(&root.join(next.to_string()).join("task.json"), &task)?;
        Ok(task)
    }

    pub fn save_attempt(&self, a: &AttemptRecord) -> Result<(), StoreError> {
        let dir = self.attempt_dir(a.id);
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        write_json(&dir.join("attempt.json"), a)
    }

    pub fn load_attempt(&self, id: AttemptId) -> Result<AttemptRecord, StoreError> {
        let path = self.attempt_dir(id).join("attempt.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoAttempt(id));
            }
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        serde_json::from_slice(&text).map_err(|source| StoreError::Corrupt { path, source })
    }
}

/// Writes via a temporary file and a rename, so a crash never leaves half a record.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_ids_parse_and_print() {
        let id: AttemptId = "7.2".parse().unwrap();
        assert_eq!((id.task, id.n), (7, 2));
        assert_eq!(id.to_string(), "7.2");
        for bad in ["7", "7.", ".2", "0.1", "7.0", "a.b", "7.2.1", "../1.1"] {
            assert!(bad.parse::<AttemptId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn task_numbers_increase_and_records_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(DataDir::new(d.path()));
        let rec = TaskRecord {
            id: 0,
            title: "t".into(),
            repo: "/r".into(),
            base_ref: "main".into(),
            base: "abc".into(),
            command: vec!["true".into()],
            attempts: 1,
            created_at: 0,
        };
        assert_eq!(store.new_task(rec.clone()).unwrap().id, 1);
        assert_eq!(store.new_task(rec).unwrap().id, 2);
        let a = AttemptRecord {
            id: AttemptId { task: 2, n: 1 },
            repo: "/r".into(),
            base: "abc".into(),
            start: "abc".into(),
            command: vec![],
            exit_code: Some(0),
            error: None,
            branch: None,
            pulled_head: None,
        };
        store.save_attempt(&a).unwrap();
        assert_eq!(store.load_attempt(a.id).unwrap(), a);
        assert!(matches!(
            store.load_attempt(AttemptId { task: 9, n: 9 }),
            Err(StoreError::NoAttempt(_))
        ));
    }
}
