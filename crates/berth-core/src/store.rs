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

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
    /// The name of the pack Berth wrote into the workspace at creation (host-side: the
    /// guest cannot change it), whose objects `host.git` reads from the user's repo.
    pub fn base_pack(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("base-pack")
    }

    pub fn output_log(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("output.log")
    }
    /// Where `berth stop` asks a `berth run` process (which has no supervisor socket) to
    /// stop one of its attempts.
    pub fn stop_request(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("stop-requested")
    }

    /// Left by `berth run` before it hands an attempt to a pooled VM: the command runs
    /// without a terminal, as `berth run`'s own attempts do. The supervisor takes it (reads
    /// and removes it) when the command starts, so a later `berth start` gets a terminal.
    pub fn foreground_marker(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("foreground")
    }

    /// Present while the attempt's terminal sits quiet at a prompt (see `input_wait.rs`).
    pub fn input_marker(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("waiting-input")
    }

    /// Whether the attempt's terminal waits for the user to type.
    pub fn waiting_input(&self, id: AttemptId) -> bool {
        self.input_marker(id).exists()
    }

    /// Present while an approval question of the attempt waits: what it is about.
    pub fn waiting_marker(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("waiting-approval")
    }

    /// What the attempt's open approval questions are about (`host:port`), if any wait.
    pub fn waiting_for(&self, id: AttemptId) -> Vec<String> {
        std::fs::read_to_string(self.waiting_marker(id))
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    pub fn socket(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("supervisor.sock")
    }
    pub fn supervisor_log(&self, id: AttemptId) -> PathBuf {
        self.attempt_dir(id).join("supervisor.log")
    }
    /// The name of the attempt's VM (and of its run directory).
    pub fn vm_name(&self, id: AttemptId) -> String {
        format!("attempt-{}-{}", id.task, id.n)
    }
    /// How virtiofsd confines itself for the attempt's running VM (`namespace`, `chroot`,
    /// `none`); `None` when no VM runs.
    pub fn share_sandbox(&self, id: AttemptId) -> Option<String> {
        // A pooled VM keeps its own name (`attempts/<id>/vm` says which).
        let vm = std::fs::read_to_string(self.attempt_dir(id).join("vm"))
            .ok()
            .filter(|n| n.starts_with("pool-") && !n.contains('/'))
            .unwrap_or_else(|| self.vm_name(id));
        let file = self.data.run().join(vm).join("sandbox");
        std::fs::read_to_string(file)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| matches!(s.as_str(), "namespace" | "chroot" | "none"))
    }
}

/// Creates `dir` (an attempt directory) and its parent `attempts/` readable by the user only:
/// they hold the workspace, the output log and the supervisor socket, which lets whoever can
/// connect type into the attempt's terminal and answer its approval requests. An `attempts/`
/// made with looser modes by an older Berth is tightened.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}
