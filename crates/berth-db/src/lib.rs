//! Berth's state in one SQLite database (WAL): tasks, attempts and the audit log.
//!
//! Several `berth` processes (CLI commands, one supervisor per running attempt, later the
//! app) write at once: every connection sets a busy timeout and every write is one short
//! `BEGIN IMMEDIATE` transaction, so writers queue instead of failing with "database is
//! locked". The schema is versioned (`schema_version`) and migrated on open.

mod audit;
mod records;
mod repos;
mod schema;
mod secrets;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use thiserror::Error;

pub use audit::{AuditEvent, ChainBreak};
pub use records::{AttemptId, AttemptRecord, AttemptState, TaskRecord};
pub use repos::RepoRecord;
pub use secrets::SecretRecord;

#[derive(Debug, Error)]
pub enum DbError {
    #[error("the state database {path} cannot be opened: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the state database was written by a newer berth (schema {found}, this berth knows {known}); upgrade berth"
    )]
    TooNew { found: i64, known: i64 },
    #[error("no attempt {0}; `berth ls` lists them")]
    NoAttempt(AttemptId),
    #[error("no task {0}; `berth ls` lists them")]
    NoTask(u32),
    #[error("'{0}' is not an attempt id; attempt ids look like 3.1 (task 3, attempt 1)")]
    BadId(String),
    #[error("state database: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A connection to the state database.
pub struct Db {
    conn: Connection,
}

impl Db {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let open_err = |source| DbError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            // A data directory Berth makes is the user's alone (tasks, commands, audit).
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent);
        }
        // Created readable by the user only from its first byte (a handle opened while it
        // was looser would keep reading); SQLite gives -wal and -shm the same mode.
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(DbError::Open {
                    path: path.to_path_buf(),
                    source: rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                        Some(e.to_string()),
                    ),
                });
            }
        }
        let conn = Connection::open(path).map_err(open_err)?;
        // An older database made looser is tightened.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        let mut db = Db { conn };
        // Migrated once per process and database, not on every open (every `Store::db()`).
        static MIGRATED: std::sync::Mutex<Vec<std::path::PathBuf>> =
            std::sync::Mutex::new(Vec::new());
        let mut done = MIGRATED.lock().unwrap_or_else(|e| e.into_inner());
        if !done.iter().any(|p| p == path) {
            schema::migrate(&mut db.conn)?;
            done.push(path.to_path_buf());
        }
        Ok(db)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction (the write lock is taken up front, so
    /// two writers never deadlock upgrading a read lock).
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Inserts a task and returns it with its new id.
    pub fn insert_task(&mut self, mut task: TaskRecord) -> Result<TaskRecord, DbError> {
        let command = serde_json::to_string(&task.command).unwrap_or_default();
        let id = self.write(|tx| {
            tx.execute(
                "INSERT INTO tasks (title, repo, base_ref, base, command, attempts, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    task.title,
                    task.repo.to_string_lossy(),
                    task.base_ref,
                    task.base,
                    command,
                    task.attempts,
                    task.created_at as i64
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })?;
        task.id = id as u32;
        Ok(task)
    }

    pub fn set_task_base(&mut self, id: u32, base: &str) -> Result<(), DbError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE tasks SET base = ?1 WHERE id = ?2",
                params![base, id],
            )?;
            Ok(())
        })
    }

    /// Points a task and its attempts at `repo` (the user moved the repository).
    pub fn move_task_repo(&mut self, id: u32, repo: &std::path::Path) -> Result<(), DbError> {
        let path = repo.to_string_lossy().into_owned();
        self.write(|tx| {
            tx.execute(
                "UPDATE tasks SET repo = ?1 WHERE id = ?2",
                params![path, id],
            )?;
            tx.execute(
                "UPDATE attempts SET repo = ?1 WHERE task_id = ?2",
                params![path, id],
            )?;
            Ok(())
        })
    }

    pub fn task(&self, id: u32) -> Result<TaskRecord, DbError> {
        self.conn
            .query_row(
                &format!("SELECT {} FROM tasks WHERE id = ?1", records::TASK_COLUMNS),
                [id],
                records::task_from_row,
            )
            .optional()?
            .ok_or(DbError::NoTask(id))
    }

    pub fn tasks(&self) -> Result<Vec<TaskRecord>, DbError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {} FROM tasks ORDER BY id",
            records::TASK_COLUMNS
        ))?;
        let rows = stmt.query_map([], records::task_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Inserts or replaces an attempt's row.
    pub fn save_attempt(&mut self, a: &AttemptRecord) -> Result<(), DbError> {
        self.write(|tx| {
            records::upsert_attempt(tx, a)?;
            Ok(())
        })
    }

    /// Changes one attempt's row under the write lock (read, modify, write atomically).
    pub fn update_attempt<T>(
        &mut self,
        id: AttemptId,
        f: impl FnOnce(&mut AttemptRecord) -> T,
    ) -> Result<(AttemptRecord, T), DbError> {
        self.write(|tx| {
            let mut a = records::attempt_in(tx, id)?.ok_or(DbError::NoAttempt(id))?;
            let out = f(&mut a);
            records::upsert_attempt(tx, &a)?;
            Ok((a, out))
        })
    }

    pub fn attempt(&self, id: AttemptId) -> Result<AttemptRecord, DbError> {
        records::attempt_in(&self.conn, id)?.ok_or(DbError::NoAttempt(id))
    }

    pub fn attempts(&self) -> Result<Vec<AttemptRecord>, DbError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {} FROM attempts ORDER BY task_id, n",
            records::ATTEMPT_COLUMNS
        ))?;
        let rows = stmt.query_map([], records::attempt_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn task_attempts(&self, task: u32) -> Result<Vec<AttemptRecord>, DbError> {
        Ok(self
            .attempts()?
            .into_iter()
            .filter(|a| a.id.task == task)
            .collect())
    }

    /// Deletes an attempt's row (its audit events stay: the log is append-only).
    pub fn delete_attempt(&mut self, id: AttemptId) -> Result<(), DbError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM attempts WHERE task_id = ?1 AND n = ?2",
                params![id.task, id.n],
            )?;
            Ok(())
        })
    }

    /// Deletes a task's row once it has no attempts left.
    pub fn delete_task_if_empty(&mut self, task: u32) -> Result<bool, DbError> {
        self.write(|tx| {
            let left: i64 = tx.query_row(
                "SELECT COUNT(*) FROM attempts WHERE task_id = ?1",
                [task],
                |r| r.get(0),
            )?;
            if left == 0 {
                tx.execute("DELETE FROM tasks WHERE id = ?1", [task])?;
            }
            Ok(left == 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::Db;

    #[test]
    fn a_data_dir_the_db_creates_and_the_db_itself_are_the_users_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("new/berth");
        let path = data.join("berth.db");
        Db::open(&path).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&path), 0o600);
        // A database an older berth left readable is tightened on the next open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Db::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
