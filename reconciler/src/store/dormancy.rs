//! Dormant workspaces in the store: when each account was last used, when
//! it was told its volumes will be archived, and its archives (one row per
//! Docker volume: where the file is, its SHA-256; `done` once the file is
//! verified, before the volume is removed).

use super::{Result, Store};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

/// One archived (or being archived) volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archive {
    pub volume: String,
    pub endpoint: String,
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub files: u64,
    /// Unix seconds.
    pub at: i64,
    /// The file is complete and verified (the volume may be gone).
    pub done: bool,
}

impl Store {
    /// `account` was used at `at` (Unix seconds); never moves back.
    pub fn touch_activity(&self, account: &str, at: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO activity (account, last) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE SET last = MAX(last, ?2)",
            params![account, at],
        )?;
        Ok(())
    }

    /// When each account was last used.
    pub fn activity(&self) -> Result<BTreeMap<String, i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT account, last FROM activity")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Accounts told their volumes will be archived, and when.
    pub fn dormancy_told(&self) -> Result<BTreeMap<String, i64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT account, archive_at FROM dormancy_told")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    pub fn set_dormancy_told(&self, account: &str, archive_at: Option<i64>) -> Result<()> {
        let conn = self.conn();
        match archive_at {
            Some(at) => conn.execute(
                "INSERT OR REPLACE INTO dormancy_told (account, archive_at) VALUES (?1, ?2)",
                params![account, at],
            )?,
            None => conn.execute("DELETE FROM dormancy_told WHERE account = ?1", [account])?,
        };
        Ok(())
    }

    /// Records an archive (begun: `done` false; or verified).
    pub fn set_archive(&self, account: &str, a: &Archive) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO archives
                 (account, volume, endpoint, path, sha256, bytes, files, at, done)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                account,
                a.volume,
                a.endpoint,
                a.path,
                a.sha256,
                a.bytes as i64,
                a.files as i64,
                a.at,
                a.done
            ],
        )?;
        Ok(())
    }

    pub fn remove_archive(&self, account: &str, volume: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM archives WHERE account = ?1 AND volume = ?2",
            params![account, volume],
        )?;
        Ok(())
    }

    /// The account's archives, by volume name.
    pub fn archives_of(&self, account: &str) -> Result<Vec<Archive>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT volume, endpoint, path, sha256, bytes, files, at, done
             FROM archives WHERE account = ?1 ORDER BY volume",
        )?;
        let rows = stmt.query_map([account], |r| {
            Ok(Archive {
                volume: r.get(0)?,
                endpoint: r.get(1)?,
                path: r.get(2)?,
                sha256: r.get(3)?,
                bytes: r.get::<_, i64>(4)? as u64,
                files: r.get::<_, i64>(5)? as u64,
                at: r.get(6)?,
                done: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The accounts with anything archived (or being archived).
    pub fn archived_accounts(&self) -> Result<std::collections::BTreeSet<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT DISTINCT account FROM archives")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Whether the account has anything archived (or being archived).
    pub fn is_archived(&self, account: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM archives WHERE account = ?1 LIMIT 1",
                [account],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_never_moves_back_and_archives_round_trip() {
        let s = Store::in_memory().expect("store");
        s.touch_activity("alice", 100).expect("touch");
        s.touch_activity("alice", 50).expect("touch");
        assert_eq!(s.activity().expect("read").get("alice"), Some(&100));
        assert!(!s.is_archived("alice").expect("read"));
        let a = Archive {
            volume: "berth-alice--data".into(),
            endpoint: "local".into(),
            path: "/archive/alice/berth-alice--data.tar.gz".into(),
            sha256: "ab".into(),
            bytes: 10,
            files: 2,
            at: 7,
            done: false,
        };
        s.set_archive("alice", &a).expect("set");
        assert!(s.is_archived("alice").expect("read"));
        assert_eq!(
            s.archived_accounts().expect("read"),
            ["alice".to_string()].into()
        );
        let done = Archive { done: true, ..a };
        s.set_archive("alice", &done).expect("set");
        assert_eq!(s.archives_of("alice").expect("read"), vec![done]);
        s.remove_archive("alice", "berth-alice--data")
            .expect("remove");
        assert!(!s.is_archived("alice").expect("read"));
    }
}
