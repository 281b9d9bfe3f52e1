//! The repos a user added (the app's Repos section, `berth repo`) and user settings.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use crate::{Db, DbError};

/// A repo the user works with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRecord {
    pub path: PathBuf,
    pub added_at: u64,
}

impl Db {
    /// Adds `path` (already checked and canonical); adding it again changes nothing.
    pub fn add_repo(&mut self, path: &Path, added_at: u64) -> Result<(), DbError> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO repos (path, added_at) VALUES (?1, ?2)",
                params![path.to_string_lossy(), added_at as i64],
            )?;
            Ok(())
        })
    }

    /// Forgets `path` (its tasks and branches stay). Returns whether it was there.
    pub fn remove_repo(&mut self, path: &Path) -> Result<bool, DbError> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM repos WHERE path = ?1",
                [path.to_string_lossy()],
            )? > 0)
        })
    }

    /// Every added repo, in the order they were added.
    pub fn repos(&self) -> Result<Vec<RepoRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, added_at FROM repos ORDER BY added_at, path")?;
        let rows = stmt.query_map([], |r| {
            Ok(RepoRecord {
                path: PathBuf::from(r.get::<_, String>(0)?),
                added_at: r.get::<_, i64>(1)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets `key` to `value`, or removes it with `None`.
    pub fn set_setting(&mut self, key: &str, value: Option<&str>) -> Result<(), DbError> {
        self.write(|tx| {
            match value {
                Some(v) => tx.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    params![key, v],
                )?,
                None => tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
            };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repos_are_added_once_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("berth.db")).unwrap();
        db.add_repo(Path::new("/r/one"), 10).unwrap();
        db.add_repo(Path::new("/r/two"), 11).unwrap();
        db.add_repo(Path::new("/r/one"), 12).unwrap();
        let paths: Vec<_> = db.repos().unwrap().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, [PathBuf::from("/r/one"), PathBuf::from("/r/two")]);
        assert!(db.remove_repo(Path::new("/r/one")).unwrap());
        assert!(!db.remove_repo(Path::new("/r/one")).unwrap());
        assert_eq!(db.repos().unwrap().len(), 1);
    }

    #[test]
    fn settings_are_set_replaced_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("berth.db")).unwrap();
        assert_eq!(db.setting("editor").unwrap(), None);
        db.set_setting("editor", Some("code -n")).unwrap();
        db.set_setting("editor", Some("zed")).unwrap();
        assert_eq!(db.setting("editor").unwrap().as_deref(), Some("zed"));
        db.set_setting("editor", None).unwrap();
        assert_eq!(db.setting("editor").unwrap(), None);
    }
}
