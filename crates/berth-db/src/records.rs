//! Task and attempt rows.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use crate::DbError;

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
    type Err = DbError;
    fn from_str(s: &str) -> Result<Self, DbError> {
        let bad = || DbError::BadId(s.to_string());
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
    type Error = DbError;
    fn try_from(s: String) -> Result<Self, DbError> {
        s.parse()
    }
}

impl From<AttemptId> for String {
    fn from(id: AttemptId) -> String {
        id.to_string()
    }
}

/// Where an attempt is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptState {
    /// Workspace made, not booted yet.
    Created,
    Booting,
    Running,
    /// The command ended (see the exit code); the VM is gone.
    Exited,
    /// Stopped by the user, or its supervisor died; `berth start` boots it again.
    Stopped,
    /// The VM or agent failed (see the error).
    Failed,
}

impl AttemptState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Created => "created",
            AttemptState::Booting => "booting",
            AttemptState::Running => "running",
            AttemptState::Exited => "exited",
            AttemptState::Stopped => "stopped",
            AttemptState::Failed => "failed",
        }
    }

    /// Booting or running: a supervisor is (supposed to be) alive.
    pub fn is_live(self) -> bool {
        matches!(self, AttemptState::Booting | AttemptState::Running)
    }

    fn parse(s: &str) -> AttemptState {
        match s {
            "created" => AttemptState::Created,
            "booting" => AttemptState::Booting,
            "running" => AttemptState::Running,
            "exited" => AttemptState::Exited,
            "stopped" => AttemptState::Stopped,
            _ => AttemptState::Failed,
        }
    }
}

impl fmt::Display for AttemptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub id: AttemptId,
    pub state: AttemptState,
    pub repo: PathBuf,
    pub base: String,
    /// The workspace's first commit: the base, or a snapshot of uncommitted changes.
    pub start: String,
    pub command: Vec<String>,
    pub memory_mib: u32,
    pub exit_code: Option<i32>,
    /// Why the attempt did not run to completion, if it did not.
    pub error: Option<String>,
    /// The branch it was pulled into, and the commit that branch got.
    pub branch: Option<String>,
    pub pulled_head: Option<String>,
    /// Change size (files, lines added, lines removed): of the last pull, or of the result
    /// when the attempt ended and was not pulled yet.
    pub files_changed: Option<u32>,
    pub insertions: Option<u32>,
    pub deletions: Option<u32>,
    /// The supervisor process (pid and start time, in clock ticks since boot).
    pub supervisor_pid: Option<u32>,
    pub supervisor_start: Option<u64>,
    pub created_at: u64,
    pub updated_at: u64,
    /// The attempt's network policy, as JSON (`berth_egress::Policy`).
    pub policy: String,
    /// The environment the attempt boots on, as JSON (`berth_core::EnvPlan`); empty for the
    /// image's own root.
    pub env: String,
    /// The secrets bound to the attempt, as JSON (`berth_core::SecretUse`s); empty: none.
    pub secrets: String,
    /// The coding agent the attempt runs, as JSON (`berth_core::AgentPreset`); empty: none.
    pub agent: String,
    /// Guest CPUs.
    pub cpus: u32,
}

impl AttemptRecord {
    /// Seconds it has been going (while live) or went (once it ended), at `now` (seconds).
    pub fn elapsed_s(&self, now: u64) -> u64 {
        let end = if self.state.is_live() {
            now
        } else {
            self.updated_at
        };
        end.saturating_sub(self.created_at)
    }
}

pub const TASK_COLUMNS: &str = "id, title, repo, base_ref, base, command, attempts, created_at";

pub fn task_from_row(r: &Row) -> rusqlite::Result<TaskRecord> {
    Ok(TaskRecord {
        id: r.get(0)?,
        title: r.get(1)?,
        repo: PathBuf::from(r.get::<_, String>(2)?),
        base_ref: r.get(3)?,
        base: r.get(4)?,
        command: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
        attempts: r.get(6)?,
        created_at: r.get::<_, i64>(7)? as u64,
    })
}

pub const ATTEMPT_COLUMNS: &str = "task_id, n, state, repo, base, start_commit, command, memory_mib, \
    exit_code, error, branch, pulled_head, files_changed, insertions, deletions, supervisor_pid, \
    supervisor_start, created_at, updated_at, policy, env, secrets, agent, cpus";

pub fn attempt_from_row(r: &Row) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        id: AttemptId {
            task: r.get(0)?,
            n: r.get(1)?,
        },
        state: AttemptState::parse(&r.get::<_, String>(2)?),
        repo: PathBuf::from(r.get::<_, String>(3)?),
        base: r.get(4)?,
        start: r.get(5)?,
        command: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
        memory_mib: r.get(7)?,
        exit_code: r.get(8)?,
        error: r.get(9)?,
        branch: r.get(10)?,
        pulled_head: r.get(11)?,
        files_changed: r.get(12)?,
        insertions: r.get(13)?,
        deletions: r.get(14)?,
        supervisor_pid: r.get(15)?,
        supervisor_start: r.get::<_, Option<i64>>(16)?.map(|v| v as u64),
        created_at: r.get::<_, i64>(17)? as u64,
        updated_at: r.get::<_, i64>(18)? as u64,
        policy: r.get(19)?,
        env: r.get(20)?,
        secrets: r.get(21)?,
        agent: r.get(22)?,
        cpus: r.get(23)?,
    })
}

pub fn attempt_in(
    conn: &rusqlite::Connection,
    id: AttemptId,
) -> Result<Option<AttemptRecord>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE task_id = ?1 AND n = ?2"),
            params![id.task, id.n],
            attempt_from_row,
        )
        .optional()?)
}

pub fn upsert_attempt(tx: &rusqlite::Transaction, a: &AttemptRecord) -> Result<(), DbError> {
    tx.execute(
        &format!(
            "INSERT OR REPLACE INTO attempts ({ATTEMPT_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
        ),
        params![
            a.id.task,
            a.id.n,
            a.state.as_str(),
            a.repo.to_string_lossy(),
            a.base,
            a.start,
            serde_json::to_string(&a.command).unwrap_or_default(),
            a.memory_mib,
            a.exit_code,
            a.error,
            a.branch,
            a.pulled_head,
            a.files_changed,
            a.insertions,
            a.deletions,
            a.supervisor_pid,
            a.supervisor_start.map(|v| v as i64),
            a.created_at as i64,
            a.updated_at as i64,
            a.policy,
            a.env,
            a.secrets,
            a.agent,
            a.cpus,
        ],
    )?;
    Ok(())
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
    fn attempt_rows_round_trip_and_concurrent_writers_queue() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("berth.db");
        let mut db = crate::Db::open(&path).unwrap();
        let task = db
            .insert_task(TaskRecord {
                id: 0,
                title: "t".into(),
                repo: "/r".into(),
                base_ref: "main".into(),
                base: "abc".into(),
                command: vec!["true".into()],
                attempts: 1,
                created_at: 1,
            })
            .unwrap();
        let rec = AttemptRecord {
            id: AttemptId {
                task: task.id,
                n: 1,
            },
            state: AttemptState::Created,
            repo: "/r".into(),
            base: "abc".into(),
            start: "abc".into(),
            command: vec!["echo".into(), "x y".into()],
            memory_mib: 512,
            exit_code: None,
            error: None,
            branch: None,
            pulled_head: None,
            files_changed: None,
            insertions: None,
            deletions: None,
            supervisor_pid: Some(7),
            supervisor_start: Some(99),
            created_at: 1,
            updated_at: 1,
            policy: "{}".into(),
            env: String::new(),
            secrets: String::new(),
            agent: String::new(),
            cpus: 1,
        };
        db.save_attempt(&rec).unwrap();
        assert_eq!(db.attempt(rec.id).unwrap(), rec);
        // Eight processes' worth of writers at once: none fails with "database is locked".
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut db = crate::Db::open(&path).unwrap();
                    for j in 0..50 {
                        db.audit(
                            rec.id,
                            i * 1000 + j,
                            "lifecycle",
                            &serde_json::json!({"i": i}),
                        )
                        .unwrap();
                        db.update_attempt(rec.id, |a| a.updated_at += 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(db.attempt(rec.id).unwrap().updated_at, 401);
        assert_eq!(db.verify_audit(rec.id).unwrap(), Ok(400));
    }
}
