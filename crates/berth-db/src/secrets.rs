//! Secrets' metadata: what each secret is for and how it is sent. The values are never
//! here; they live in the OS keyring (see `berth_core::secrets`).

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use crate::{Db, DbError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRecord {
    pub name: String,
    /// `https://host[:port][/base]`: the only place the value is ever sent.
    pub upstream: String,
    /// The header that carries it, and its value with `{}` for the secret.
    pub header: String,
    pub template: String,
    /// The guest's variables for the phantom token and the gateway's base URL.
    pub key_env: String,
    pub url_env: String,
    /// A CA the upstream's certificate may chain to besides the system's (public data).
    pub ca_pem: Option<String>,
    pub created_at: u64,
    pub last_used_at: Option<u64>,
}

const COLUMNS: &str =
    "name, upstream, header, template, key_env, url_env, ca_pem, created_at, last_used_at";

fn from_row(r: &Row) -> rusqlite::Result<SecretRecord> {
    Ok(SecretRecord {
        name: r.get(0)?,
        upstream: r.get(1)?,
        header: r.get(2)?,
        template: r.get(3)?,
        key_env: r.get(4)?,
        url_env: r.get(5)?,
        ca_pem: r.get(6)?,
        created_at: r.get::<_, i64>(7)? as u64,
        last_used_at: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
    })
}

impl Db {
    /// Adds or replaces a secret's metadata.
    pub fn put_secret(&mut self, s: &SecretRecord) -> Result<(), DbError> {
        self.write(|tx| {
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO secrets ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    s.name,
                    s.upstream,
                    s.header,
                    s.template,
                    s.key_env,
                    s.url_env,
                    s.ca_pem,
                    s.created_at as i64,
                    s.last_used_at.map(|v| v as i64)
                ],
            )?;
            Ok(())
        })
    }

    pub fn secret(&self, name: &str) -> Result<Option<SecretRecord>, DbError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM secrets WHERE name = ?1"),
                [name],
                from_row,
            )
            .optional()?)
    }

    pub fn secrets(&self) -> Result<Vec<SecretRecord>, DbError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM secrets ORDER BY name"))?;
        let rows = stmt.query_map([], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets a secret's metadata; returns whether it was there.
    pub fn remove_secret(&mut self, name: &str) -> Result<bool, DbError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM secrets WHERE name = ?1", [name])? > 0))
    }

    pub fn secret_used(&mut self, name: &str, at: u64) -> Result<(), DbError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE secrets SET last_used_at = ?2 WHERE name = ?1",
                params![name, at as i64],
            )?;
            Ok(())
        })
    }
}
