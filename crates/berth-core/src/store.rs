//! Where an attempt's things live, and the state database.
//!
//! ```text
//! <data>/berth.db                      SQLite: tasks, attempts, audit (berth-db)
//! <data>/attempts/<task>.<n>/work/     the workspace, shared into the VM at /work
//! <data>/attempts/<task>.<n>/host.git/ host-only repository the result is collected into
//! <data>/attempts/<task>.<n>/output.log  the attempt command's terminal output, from the start
//! <data>/attempts/<task>.<n>/supervisor.sock   the supervisor's socket while it runs
//! <data>/attempts/<task>.<n>/supervisor.log    the supervisor's own log
//! ```

use std::path::PathBuf;

use berth_db::{AttemptId, Db, DbError};

use crate::DataDir;

/// Paths of attempts, and connections to the state database.
#[derive(Debug, Clone)]
pub struct Store {
    data: DataDir,
}

impl Store {
    pub fn new(data: DataDir) -> Self {
        Self { data }
    }

    pub fn data(&self) -> &DataDir {
        &self.data
    }

    /// A new connection (one per thread or process; they queue on writes).
    pub fn db(&self) -> Result<Db, DbError> {
        Db::open(&self.data.root().join("berth.db"))
    }

    pub fn attempt_dir(&self, id: AttemptId) -> PathBuf {
        self.data.root().join("attempts").join(id.to_string())
    }
    pub fn workspace(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("work")
    }
    pub fn host_git(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("host.git")
    }
    pub fn output_log(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("output.log")
    }
    pub fn socket(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("supervisor.sock")
    }
    pub fn supervisor_log(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("supervisor.log")
    }
}
