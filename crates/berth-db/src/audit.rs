//! The audit log: append-only events per attempt, each carrying the hash of the one before,
//! so editing, removing or reordering an event is detectable (`verify_audit`).
//!
//! Only the host writes events (supervisors and CLI commands); guest output never enters
//! the log, and every event names its attempt.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AttemptId, Db, DbError};

/// The hash a chain starts from.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub attempt: AttemptId,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// What happened, e.g. `lifecycle`, `command`, `attach`.
    pub kind: String,
    /// Details, as JSON.
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Where a chain stops verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub why: String,
}

fn event_hash(prev: &str, attempt: AttemptId, ts_ms: u64, kind: &str, data: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &attempt.to_string(), &ts_ms.to_string(), kind, data] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Db {
    /// Appends an event to `attempt`'s chain.
    pub fn audit(
        &mut self,
        attempt: AttemptId,
        ts_ms: u64,
        kind: &str,
        data: &serde_json::Value,
    ) -> Result<(), DbError> {
        let data = data.to_string();
        self.write(|tx| {
            // The chain continues from the anchored head; only "no event yet" starts a new
            // chain (a failing query is an error, never a fresh start).
            let (count, prev): (i64, String) = tx
                .query_row(
                    "SELECT count, hash FROM audit_heads WHERE task_id = ?1 AND n = ?2",
                    params![attempt.task, attempt.n],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .unwrap_or((0, GENESIS.to_string()));
            let hash = event_hash(&prev, attempt, ts_ms, kind, &data);
            tx.execute(
                "INSERT INTO audit (task_id, n, ts_ms, kind, data, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![attempt.task, attempt.n, ts_ms as i64, kind, data, prev, hash],
            )?;
            tx.execute(
                "INSERT INTO audit_heads (task_id, n, count, hash) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(task_id, n) DO UPDATE SET count = excluded.count, hash = excluded.hash",
                params![attempt.task, attempt.n, count + 1, hash],
            )?;
            Ok(())
        })
    }

    /// How many of `attempt`'s network requests the proxy denied.
    pub fn denied_requests(&self, attempt: AttemptId) -> Result<u64, DbError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM audit WHERE task_id = ?1 AND n = ?2 AND kind = 'egress'
             AND json_extract(data, '$.decision') = 'deny'",
            params![attempt.task, attempt.n],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// `attempt`'s events in order.
    pub fn audit_events(&self, attempt: AttemptId) -> Result<Vec<AuditEvent>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, ts_ms, kind, data, prev_hash, hash FROM audit
             WHERE task_id = ?1 AND n = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![attempt.task, attempt.n], |r| {
            Ok(AuditEvent {
                seq: r.get(0)?,
                attempt,
                ts_ms: r.get::<_, i64>(1)? as u64,
                kind: r.get(2)?,
                data: serde_json::from_str(&r.get::<_, String>(3)?)
                    .unwrap_or(serde_json::Value::Null),
                prev_hash: r.get(4)?,
                hash: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recomputes `attempt`'s chain from the raw rows; the first event that does not follow
    /// from the one before is reported.
    pub fn verify_audit(&self, attempt: AttemptId) -> Result<Result<usize, ChainBreak>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, ts_ms, kind, data, prev_hash, hash FROM audit
             WHERE task_id = ?1 AND n = ?2 ORDER BY seq",
        )?;
        let rows: Vec<(i64, i64, String, String, String, String)> = stmt
            .query_map(params![attempt.task, attempt.n], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut prev = GENESIS.to_string();
        for (seq, ts, kind, data, prev_hash, hash) in &rows {
            if *prev_hash != prev {
                return Ok(Err(ChainBreak {
                    seq: *seq,
                    why: "does not follow the event before it (an event was removed or reordered)"
                        .into(),
                }));
            }
            if event_hash(&prev, attempt, *ts as u64, kind, data) != *hash {
                return Ok(Err(ChainBreak {
                    seq: *seq,
                    why: "its content does not match its hash (it was edited)".into(),
                }));
            }
            prev = hash.clone();
        }
        // The anchored head: the chain must end where the last write left it.
        let head: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT count, hash FROM audit_heads WHERE task_id = ?1 AND n = ?2",
                params![attempt.task, attempt.n],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (want_count, want_hash) = head.unwrap_or((0, GENESIS.to_string()));
        if rows.len() as i64 != want_count || prev != want_hash {
            return Ok(Err(ChainBreak {
                seq: rows.last().map_or(0, |r| r.0),
                why: format!(
                    "ends after {} events, but {want_count} were written (events at the end were \
                     removed)",
                    rows.len()
                ),
            }));
        }
        Ok(Ok(rows.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let d = tempfile::tempdir().unwrap();
        let db = Db::open(&d.path().join("berth.db")).unwrap();
        (d, db)
    }

    #[test]
    fn a_chain_verifies_and_any_edit_or_removal_breaks_it() {
        let (_d, mut db) = db();
        let a = AttemptId { task: 1, n: 1 };
        let b = AttemptId { task: 1, n: 2 };
        for i in 0..5 {
            db.audit(
                a,
                1000 + i,
                "command",
                &serde_json::json!({"argv": ["echo", i]}),
            )
            .unwrap();
            db.audit(b, 1000 + i, "lifecycle", &serde_json::json!({"i": i}))
                .unwrap();
        }
        assert_eq!(db.verify_audit(a).unwrap(), Ok(5));
        assert_eq!(db.audit_events(a).unwrap().len(), 5);

        db.conn
            .execute(
                "UPDATE audit SET data = '{\"argv\":[\"rm\",\"-rf\"]}' WHERE seq = 3",
                [],
            )
            .unwrap();
        let broken = db.verify_audit(a).unwrap().unwrap_err();
        assert_eq!(broken.seq, 3);
        assert!(broken.why.contains("edited"));
        // The other attempt's chain is its own and still verifies.
        assert_eq!(db.verify_audit(b).unwrap(), Ok(5));

        db.conn
            .execute("DELETE FROM audit WHERE seq = 4", [])
            .unwrap();
        let broken = db.verify_audit(b).unwrap().unwrap_err();
        assert_eq!(broken.seq, 6);
        assert!(broken.why.contains("removed"));
    }

    #[test]
    fn a_deleted_tail_or_all_of_an_attempts_events_do_not_verify() {
        let (_d, mut db) = db();
        let a = AttemptId { task: 2, n: 1 };
        for i in 0..4 {
            db.audit(a, 1000 + i, "egress", &serde_json::json!({"i": i}))
                .unwrap();
        }
        // The last two events (say, what the guest reached) are dropped: the rest still
        // chains perfectly, but the anchored head says four were written.
        db.conn
            .execute("DELETE FROM audit WHERE task_id = 2 AND seq > 2", [])
            .unwrap();
        let broken = db.verify_audit(a).unwrap().unwrap_err();
        assert!(broken.why.contains("4 were written"), "{}", broken.why);
        db.conn
            .execute("DELETE FROM audit WHERE task_id = 2", [])
            .unwrap();
        assert!(db.verify_audit(a).unwrap().is_err());
        // A new event does not quietly start a new chain after the loss either.
        db.audit(a, 2000, "egress", &serde_json::json!({})).unwrap();
        assert!(db.verify_audit(a).unwrap().is_err());
    }
}
