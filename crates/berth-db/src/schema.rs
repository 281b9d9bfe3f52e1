//! Schema migrations, applied in order; `schema_version` records how far a database is.

use rusqlite::Connection;

use crate::DbError;

const MIGRATIONS: &[&str] = &[
    // 1: tasks, attempts, audit
    "CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL,
        repo TEXT NOT NULL,
        base_ref TEXT NOT NULL,
        base TEXT NOT NULL,
        command TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE attempts (
        task_id INTEGER NOT NULL,
        n INTEGER NOT NULL,
        state TEXT NOT NULL,
        repo TEXT NOT NULL,
        base TEXT NOT NULL,
        start_commit TEXT NOT NULL,
        command TEXT NOT NULL,
        memory_mib INTEGER NOT NULL,
        exit_code INTEGER,
        error TEXT,
        branch TEXT,
        pulled_head TEXT,
        files_changed INTEGER,
        insertions INTEGER,
        deletions INTEGER,
        supervisor_pid INTEGER,
        supervisor_start INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (task_id, n)
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL,
        n INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_by_attempt ON audit (task_id, n, seq);",
    // 2: each attempt's network policy (JSON)
    "ALTER TABLE attempts ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';",
    // 3: the repos a user works with, and user settings (editor command, ...)
    "CREATE TABLE repos (path TEXT PRIMARY KEY, added_at INTEGER NOT NULL);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 4: each attempt's audit head (count and last hash), written with every event, so a
    // deleted tail (or all of an attempt's events) is detected; kept when the attempt goes
    "CREATE TABLE audit_heads (
        task_id INTEGER NOT NULL, n INTEGER NOT NULL,
        count INTEGER NOT NULL, hash TEXT NOT NULL,
        PRIMARY KEY (task_id, n)
    );
    INSERT INTO audit_heads (task_id, n, count, hash)
        SELECT task_id, n, COUNT(*),
            (SELECT hash FROM audit b WHERE b.task_id = a.task_id AND b.n = a.n
             ORDER BY seq DESC LIMIT 1)
        FROM audit a GROUP BY task_id, n;",
    // 5: the environment each attempt boots on (JSON; empty: the image's own root)
    "ALTER TABLE attempts ADD COLUMN env TEXT NOT NULL DEFAULT '';",
    // 6: secrets' metadata (their values live in the OS keyring, never here), and the
    // secrets bound to each attempt (JSON: names, limits, phantom tokens)
    "CREATE TABLE secrets (
        name TEXT PRIMARY KEY, upstream TEXT NOT NULL, header TEXT NOT NULL,
        template TEXT NOT NULL, key_env TEXT NOT NULL, url_env TEXT NOT NULL,
        ca_pem TEXT, created_at INTEGER NOT NULL, last_used_at INTEGER
    );
    ALTER TABLE attempts ADD COLUMN secrets TEXT NOT NULL DEFAULT '';",
    // 7: the coding agent each attempt runs (JSON: its preset as resolved; empty: none)
    "ALTER TABLE attempts ADD COLUMN agent TEXT NOT NULL DEFAULT '';",
    // 8: guest CPUs per attempt (`berth start` boots it again with them)
    "ALTER TABLE attempts ADD COLUMN cpus INTEGER NOT NULL DEFAULT 1;",
];

pub fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let version: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(DbError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
    }
    tx.commit()?;
    Ok(())
}
