//! The idle culler's marks on an account's containers: stopped as idle
//! (`culled`), warned of a stop ("will stop at"), and the accepted
//! revision's `keep_until` that holds the culler off.

use super::{Result, Store};
use std::collections::BTreeMap;

/// A container the idle culler stopped: when, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Culled {
    pub at: i64,
    pub reason: String,
}

impl Store {
    pub fn set_culled(&self, account: &str, container: &str, reason: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO culled (account, container, at, reason) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![account, container, super::now(), reason],
        )?;
        Ok(())
    }

    /// The account's culled containers, by container name.
    pub fn culled(&self, account: &str) -> Result<BTreeMap<String, Culled>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT container, at, reason FROM culled WHERE account = ?1")?;
        let rows = stmt.query_map([account], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Culled {
                    at: r.get(1)?,
                    reason: r.get(2)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Wakes one container of `account`, or all of them.
    pub fn clear_culled(&self, account: &str, container: Option<&str>) -> Result<()> {
        match container {
            Some(c) => self.conn().execute(
                "DELETE FROM culled WHERE account = ?1 AND container = ?2",
                rusqlite::params![account, c],
            )?,
            None => self
                .conn()
                .execute("DELETE FROM culled WHERE account = ?1", [account])?,
        };
        Ok(())
    }
}

impl Store {
    /// Marks `container` "will stop at" `stop_at` (Unix ms).
    pub fn set_cull_warning(&self, account: &str, container: &str, stop_at: i64) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO cull_warnings (account, container, stop_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![account, container, stop_at],
        )?;
        Ok(())
    }

    /// Withdraws a warning (activity resumed, kept, or stopped); whether
    /// there was one.
    pub fn clear_cull_warning(&self, account: &str, container: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "DELETE FROM cull_warnings WHERE account = ?1 AND container = ?2",
            rusqlite::params![account, container],
        )? > 0)
    }

    /// Every warning, by (account, container name): the culler's memory
    /// restarts with serve, so it reads what it said before.
    pub fn cull_warnings(&self) -> Result<BTreeMap<(String, String), i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT account, container, stop_at FROM cull_warnings")?;
        let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The account's warnings, by container name (Unix ms).
    pub fn cull_warnings_of(&self, account: &str) -> Result<BTreeMap<String, i64>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT container, stop_at FROM cull_warnings WHERE account = ?1")?;
        let rows = stmt.query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The accepted revision's `keep_until` per container name (Unix
    /// seconds), replacing what an earlier revision kept.
    pub fn set_keeps(&self, account: &str, keeps: &BTreeMap<String, i64>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM keeps WHERE account = ?1", [account])?;
        for (container, until) in keeps {
            tx.execute(
                "INSERT INTO keeps (account, container, until) VALUES (?1, ?2, ?3)",
                rusqlite::params![account, container, until],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every keep, by (account, container name), Unix seconds.
    pub fn keeps(&self) -> Result<BTreeMap<(String, String), i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT account, container, until FROM keeps")?;
        let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}
