//! Image builds: the last build of each image an account declares, keyed
//! by what went into it (so an unchanged context is never rebuilt and a
//! failed one is not retried until something changes), with its log.

use super::{Result, Store, now};
use rusqlite::{OptionalExtension, params};

/// Logs kept per build; the tail is what matters.
pub const MAX_LOG: usize = 256 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildRecord {
    pub account: String,
    pub name: String,
    /// Hash of the build's inputs (context tree, Dockerfile path, args, tags).
    pub key: String,
    pub revision: String,
    pub ok: bool,
    pub digest: Option<String>,
    /// Why it failed (empty when it succeeded).
    pub reason: String,
    pub log: String,
    pub at: i64,
}

impl Store {
    pub fn record_build(&self, b: &BuildRecord) -> Result<()> {
        let log = tail(&b.log, MAX_LOG);
        self.conn().execute(
            "INSERT OR REPLACE INTO builds (account, name, key, revision, ok, digest, reason, log, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                b.account, b.name, b.key, b.revision, b.ok, b.digest, b.reason, log, now()
            ],
        )?;
        Ok(())
    }

    pub fn build(&self, account: &str, name: &str) -> Result<Option<BuildRecord>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT account, name, key, revision, ok, digest, reason, log, at FROM builds
                 WHERE account = ?1 AND name = ?2",
                params![account, name],
                row,
            )
            .optional()?)
    }

    /// Notes which images the account's accepted revision builds: others
    /// are marked dropped (once), those declared again are kept.
    pub fn set_declared_builds(&self, account: &str, names: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Vec<String> = {
            let mut stmt = tx.prepare("SELECT name FROM builds WHERE account = ?1")?;
            let rows = stmt.query_map([account], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for name in existing {
            if names.contains(&name) {
                tx.execute(
                    "UPDATE builds SET dropped_at = NULL WHERE account = ?1 AND name = ?2",
                    params![account, name],
                )?;
            } else {
                tx.execute(
                    "UPDATE builds SET dropped_at = ?3 WHERE account = ?1 AND name = ?2 AND dropped_at IS NULL",
                    params![account, name, now()],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Images left out of their account's `images.build` since before
    /// `before` (unix seconds): `(account, name)`.
    pub fn dropped_builds(&self, before: i64) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, name FROM builds WHERE dropped_at IS NOT NULL AND dropped_at <= ?1 ORDER BY account, name",
        )?;
        let rows = stmt.query_map([before], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn forget_build(&self, account: &str, name: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM builds WHERE account = ?1 AND name = ?2",
            params![account, name],
        )?;
        Ok(())
    }

    /// Every build record of `account`, by name.
    pub fn builds(&self, account: &str) -> Result<Vec<BuildRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, name, key, revision, ok, digest, reason, log, at FROM builds
             WHERE account = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([account], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BuildRecord> {
    Ok(BuildRecord {
        account: r.get(0)?,
        name: r.get(1)?,
        key: r.get(2)?,
        revision: r.get(3)?,
        ok: r.get(4)?,
        digest: r.get(5)?,
        reason: r.get(6)?,
        log: r.get(7)?,
        at: r.get(8)?,
    })
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_build_is_kept_with_its_log_tail() {
        let s = Store::in_memory().expect("store");
        let mut b = BuildRecord {
            account: "alice".into(),
            name: "tools".into(),
            key: "k1".into(),
            revision: "r1".into(),
            ok: false,
            digest: None,
            reason: "boom".into(),
            log: "é".repeat(MAX_LOG),
            at: 0,
        };
        s.record_build(&b).expect("record");
        let got = s.build("alice", "tools").expect("read").expect("some");
        assert!(got.log.len() <= MAX_LOG && !got.ok);
        b.ok = true;
        b.key = "k2".into();
        b.digest = Some("sha256:x".into());
        s.record_build(&b).expect("record");
        assert_eq!(s.builds("alice").expect("all").len(), 1);
        assert_eq!(
            s.build("alice", "tools")
                .expect("read")
                .and_then(|b| b.digest),
            Some("sha256:x".into())
        );
    }
}
