//! What GitLab told Berth about an account: its workspace project (id and
//! path, from discovery or an accepted push) and its runner (registration,
//! secret token, and the hash of the config last written into it).

use super::{Result, Store, StoredRunner};

/// An account's workspace project as polling sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedProject {
    pub account: String,
    pub project: u64,
    pub path: Option<String>,
    /// The revision last accepted for the account, if any.
    pub accepted: Option<String>,
}
use rusqlite::{OptionalExtension, params};

impl Store {
    /// The GitLab project id of an account's workspace, learnt from pushes.
    pub fn project(&self, account: &str) -> Result<Option<u64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT project_id FROM projects WHERE account = ?1",
                [account],
                |r| r.get::<_, i64>(0).map(|v| v as u64),
            )
            .optional()?)
    }

    pub fn set_project(&self, account: &str, project: u64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO projects (account, project_id) VALUES (?1, ?2)
             ON CONFLICT(account) DO UPDATE SET project_id = ?2",
            params![account, project as i64],
        )?;
        Ok(())
    }

    /// The GitLab path of an account's workspace project (`students/alice/
    /// workspace`), learnt from discovery or an accepted push.
    pub fn project_path(&self, account: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT path FROM project_paths WHERE account = ?1",
                [account],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
    }

    pub fn set_project_path(&self, account: &str, path: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO project_paths (account, path) VALUES (?1, ?2)
             ON CONFLICT(account) DO UPDATE SET path = ?2",
            params![account, path],
        )?;
        Ok(())
    }

    /// Every account whose workspace project Berth knows (id, path when
    /// known) with its accepted revision: what polling asks GitLab about.
    pub fn watched_projects(&self) -> Result<Vec<WatchedProject>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT p.account, p.project_id, pp.path, a.revision FROM projects p
             LEFT JOIN project_paths pp ON pp.account = p.account
             LEFT JOIN accepted a ON a.account = p.account
             ORDER BY p.account",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(WatchedProject {
                account: r.get(0)?,
                project: r.get::<_, i64>(1)? as u64,
                path: r.get(2)?,
                accepted: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Hash of the config last written into the account's runner container.
    pub fn runner_config(&self, account: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT hash FROM runner_configs WHERE account = ?1",
                [account],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
    }

    pub fn set_runner_config(&self, account: &str, hash: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO runner_configs (account, hash) VALUES (?1, ?2)
             ON CONFLICT(account) DO UPDATE SET hash = ?2",
            params![account, hash],
        )?;
        Ok(())
    }

    pub fn runner(&self, account: &str) -> Result<Option<StoredRunner>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT runner_id, token, tags FROM runners WHERE account = ?1",
                [account],
                |r| {
                    let tags: String = r.get(2)?;
                    Ok(StoredRunner {
                        id: r.get::<_, i64>(0)? as u64,
                        token: r.get(1)?,
                        tags: tags
                            .split(',')
                            .filter(|t| !t.is_empty())
                            .map(str::to_string)
                            .collect(),
                    })
                },
            )
            .optional()?)
    }

    pub fn set_runner(&self, account: &str, runner: Option<&StoredRunner>) -> Result<()> {
        let conn = self.conn();
        match runner {
            Some(r) => conn.execute(
                "INSERT INTO runners (account, runner_id, token, tags) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(account) DO UPDATE SET runner_id = ?2, token = ?3, tags = ?4",
                params![account, r.id as i64, r.token, r.tags.join(",")],
            )?,
            None => conn.execute("DELETE FROM runners WHERE account = ?1", [account])?,
        };
        Ok(())
    }
}

impl Store {
    /// Berth's note on merge request `iid` of `project`, if it made one.
    pub fn mr_note(&self, project: u64, iid: u64) -> Result<Option<u64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT note FROM mr_notes WHERE project = ?1 AND iid = ?2",
                rusqlite::params![project as i64, iid as i64],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|n| n as u64))
    }

    pub fn set_mr_note(&self, project: u64, iid: u64, note: u64) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO mr_notes (project, iid, note) VALUES (?1, ?2, ?3)",
            rusqlite::params![project as i64, iid as i64, note as i64],
        )?;
        Ok(())
    }
}
