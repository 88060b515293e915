//! The embedded state store (SQLite through rusqlite, one file in the state
//! directory): accepted revision per account, the audit log, host-port
//! allocations and endpoint placements. The only module that writes it.
//!
//! SQLite because the audit log wants queries (per account, newest first),
//! allocations want uniqueness constraints enforced by the database, and WAL
//! mode gives crash safety without a server. Actual backend state is never
//! stored here: it is always re-read, so a crash mid-apply is recovered.

use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store directory {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An accepted revision of an account's workspace repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub repository: String,
    pub revision: String,
    pub at: i64,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub at: i64,
    pub account: String,
    /// `accepted`, `rejected`, `action`, `action-failed`, `error`.
    pub event: String,
    pub revision: Option<String>,
    pub detail: String,
}

pub use crate::desired::{GpuKey, PortKey};

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS accepted (
    account TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    revision TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    account TEXT NOT NULL,
    event TEXT NOT NULL,
    revision TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_account ON audit (account, id);
CREATE TABLE IF NOT EXISTS ports (
    endpoint TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    PRIMARY KEY (endpoint, host_port),
    UNIQUE (account, container, container_port)
);
CREATE TABLE IF NOT EXISTS placements (
    account TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    account TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gpus (
    endpoint TEXT NOT NULL,
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    devices TEXT NOT NULL,
    PRIMARY KEY (endpoint, account, container)
);
CREATE TABLE IF NOT EXISTS runner_configs (
    account TEXT PRIMARY KEY,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS project_paths (
    account TEXT PRIMARY KEY,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runners (
    account TEXT PRIMARY KEY,
    runner_id INTEGER NOT NULL,
    token TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shares (
    owner TEXT NOT NULL,
    image TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (owner, image)
);
CREATE TABLE IF NOT EXISTS pins (
    account TEXT NOT NULL,
    revision TEXT NOT NULL,
    image TEXT NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (account, revision, image)
);
CREATE TABLE IF NOT EXISTS images (
    endpoint TEXT NOT NULL,
    image TEXT NOT NULL,
    pulled_at INTEGER NOT NULL,
    last_used INTEGER NOT NULL,
    PRIMARY KEY (endpoint, image)
);
CREATE TABLE IF NOT EXISTS scans (
    digest TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS warnings (
    account TEXT PRIMARY KEY,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS last_error (
    account TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    message TEXT NOT NULL
);
";

fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

/// A GitLab runner registered for an account. The token is a secret: it
/// never leaves the store except into the runner's own container.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredRunner {
    pub id: u64,
    pub token: String,
    pub tags: Vec<String>,
}

impl std::fmt::Debug for StoredRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRunner")
            .field("id", &self.id)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) `<dir>/berth.sqlite3`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("berth.sqlite3");
        let conn = Connection::open(&path)?;
        // Runner tokens live here: readable by Berth's user only.
        restrict(&path);
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            restrict(Path::new(&side));
        }
        Self::init(conn)
    }

    pub fn in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (statements are atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn accepted(&self, account: &str) -> Result<Option<Accepted>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT repository, revision, at FROM accepted WHERE account = ?1",
                [account],
                |r| {
                    Ok(Accepted {
                        repository: r.get(0)?,
                        revision: r.get(1)?,
                        at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records `revision` as accepted, with its audit line, atomically.
    pub fn accept(
        &self,
        account: &str,
        repository: &str,
        revision: &str,
        detail: &str,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO accepted (account, repository, revision, at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account) DO UPDATE SET repository = ?2, revision = ?3, at = ?4",
            params![account, repository, revision, now()],
        )?;
        tx.execute(
            "INSERT INTO audit (at, account, event, revision, detail) VALUES (?1, ?2, 'accepted', ?3, ?4)",
            params![now(), account, revision, detail],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn audit(
        &self,
        account: &str,
        event: &str,
        revision: Option<&str>,
        detail: &str,
    ) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO audit (at, account, event, revision, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now(), account, event, revision, detail],
        )?;
        // The id is what a student is shown instead of the detail.
        Ok(conn.last_insert_rowid())
    }

    /// Audit lines of `account` (all accounts when `None`), newest first.
    pub fn audit_log(&self, account: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at, account, event, revision, detail FROM audit
             WHERE (?1 IS NULL OR account = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![account, limit as i64], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                account: r.get(1)?,
                event: r.get(2)?,
                revision: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last error of an account, cleared by a successful reconcile.
    pub fn set_last_error(&self, account: &str, message: Option<&str>) -> Result<()> {
        let conn = self.conn();
        match message {
            Some(m) => conn.execute(
                "INSERT INTO last_error (account, at, message) VALUES (?1, ?2, ?3)
                 ON CONFLICT(account) DO UPDATE SET at = ?2, message = ?3",
                params![account, now(), m],
            )?,
            None => conn.execute("DELETE FROM last_error WHERE account = ?1", [account])?,
        };
        Ok(())
    }

    pub fn last_error(&self, account: &str) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT at, message FROM last_error WHERE account = ?1",
                [account],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn placement(&self, account: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT endpoint FROM placements WHERE account = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_placement(&self, account: &str, endpoint: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO placements (account, endpoint) VALUES (?1, ?2)
             ON CONFLICT(account) DO UPDATE SET endpoint = ?2",
            params![account, endpoint],
        )?;
        Ok(())
    }

    /// Every account the store knows of: accepted a revision, holds a
    /// placement, a runner or a project. The resync visits them all, so an
    /// account whose repository vanished is still stopped when it must be.
    pub fn known_accounts(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account FROM accepted UNION SELECT account FROM placements
             UNION SELECT account FROM runners UNION SELECT account FROM projects
             ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of accounts placed on each endpoint.
    pub fn placement_counts(&self) -> Result<BTreeMap<String, usize>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT endpoint, COUNT(*) FROM placements GROUP BY endpoint")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

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

    /// Replaces the images `owner` shares (share key → description).
    pub fn set_shares(&self, owner: &str, shares: &BTreeMap<String, String>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM shares WHERE owner = ?1", [owner])?;
        for (image, description) in shares {
            tx.execute(
                "INSERT INTO shares (owner, image, description) VALUES (?1, ?2, ?3)",
                params![owner, image, description],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every share: (owner, share key, description).
    pub fn shares(&self) -> Result<Vec<(String, String, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT owner, image, description FROM shares ORDER BY image")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the digests a revision was accepted with (image → digest).
    pub fn set_pins(
        &self,
        account: &str,
        revision: &str,
        pins: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM pins WHERE account = ?1 AND revision != ?2",
            params![account, revision],
        )?;
        for (image, digest) in pins {
            tx.execute(
                "INSERT OR REPLACE INTO pins (account, revision, image, digest) VALUES (?1, ?2, ?3, ?4)",
                params![account, revision, image, digest],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn pins(&self, account: &str, revision: &str) -> Result<BTreeMap<String, String>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT image, digest FROM pins WHERE account = ?1 AND revision = ?2")?;
        let rows = stmt.query_map(params![account, revision], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every account's pinned images: (account, share key, digest).
    pub fn all_pins(&self) -> Result<Vec<(String, String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT p.account, p.image, p.digest FROM pins p JOIN accepted a
             ON a.account = p.account AND a.revision = p.revision",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that Berth pulled `image` onto `endpoint` (so `gc` may remove it).
    pub fn record_pull(&self, endpoint: &str, image: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO images (endpoint, image, pulled_at, last_used) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(endpoint, image) DO UPDATE SET last_used = ?3",
            params![endpoint, image, now()],
        )?;
        Ok(())
    }

    /// Marks images as used by declared containers now.
    pub fn touch_images(&self, endpoint: &str, images: &[String]) -> Result<()> {
        let conn = self.conn();
        for image in images {
            conn.execute(
                "UPDATE images SET last_used = ?3 WHERE endpoint = ?1 AND image = ?2",
                params![endpoint, image, now()],
            )?;
        }
        Ok(())
    }

    /// Images Berth pulled onto `endpoint`, with when they were last used.
    pub fn pulled_images(&self, endpoint: &str) -> Result<Vec<(String, i64)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT image, last_used FROM images WHERE endpoint = ?1 ORDER BY image")?;
        let rows = stmt.query_map([endpoint], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn forget_image(&self, endpoint: &str, image: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM images WHERE endpoint = ?1 AND image = ?2",
            params![endpoint, image],
        )?;
        Ok(())
    }

    /// Whether `digest` passed the site's scan command already.
    pub fn scanned(&self, digest: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM scans WHERE digest = ?1",
                [digest],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn mark_scanned(&self, digest: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR IGNORE INTO scans (digest, at) VALUES (?1, ?2)",
            params![digest, now()],
        )?;
        Ok(())
    }

    /// The account's current warnings (replaced on each reconcile).
    pub fn set_warnings(&self, account: &str, warnings: &[String]) -> Result<()> {
        let conn = self.conn();
        if warnings.is_empty() {
            conn.execute("DELETE FROM warnings WHERE account = ?1", [account])?;
        } else {
            conn.execute(
                "INSERT INTO warnings (account, message) VALUES (?1, ?2)
                 ON CONFLICT(account) DO UPDATE SET message = ?2",
                params![account, warnings.join("\n")],
            )?;
        }
        Ok(())
    }

    pub fn warnings(&self, account: &str) -> Result<Vec<String>> {
        let msg: Option<String> = self
            .conn()
            .query_row(
                "SELECT message FROM warnings WHERE account = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?;
        Ok(msg
            .map(|m| m.lines().map(str::to_string).collect())
            .unwrap_or_default())
    }

    /// All allocations on `endpoint`: key → host port.
    pub fn ports(&self, endpoint: &str) -> Result<BTreeMap<PortKey, u16>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, container, container_port, host_port FROM ports WHERE endpoint = ?1",
        )?;
        let rows = stmt.query_map([endpoint], |r| {
            Ok((
                PortKey {
                    account: r.get(0)?,
                    container: r.get(1)?,
                    container_port: r.get(2)?,
                },
                r.get::<_, u16>(3)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// GPU device ids of every container on `endpoint`.
    pub fn gpus(&self, endpoint: &str) -> Result<BTreeMap<GpuKey, Vec<u32>>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT account, container, devices FROM gpus WHERE endpoint = ?1")?;
        let rows = stmt.query_map([endpoint], |r| {
            let devices: String = r.get(2)?;
            Ok((
                GpuKey {
                    account: r.get(0)?,
                    container: r.get(1)?,
                },
                devices.split(',').filter_map(|d| d.parse().ok()).collect(),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes `account`'s GPU assignments exactly `wanted` (on `endpoint`).
    pub fn set_account_gpus(
        &self,
        endpoint: &str,
        account: &str,
        wanted: &BTreeMap<GpuKey, Vec<u32>>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM gpus WHERE account = ?1", [account])?;
        for (key, devices) in wanted {
            let list: Vec<String> = devices.iter().map(u32::to_string).collect();
            tx.execute(
                "INSERT INTO gpus (endpoint, account, container, devices) VALUES (?1, ?2, ?3, ?4)",
                params![endpoint, key.account, key.container, list.join(",")],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes `account`'s allocations on `endpoint` exactly `wanted`: new ones
    /// inserted, ones no longer wanted released, in one transaction.
    pub fn set_account_ports(
        &self,
        endpoint: &str,
        account: &str,
        wanted: &BTreeMap<PortKey, u16>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM ports WHERE account = ?1", [account])?;
        for (key, host) in wanted {
            tx.execute(
                "INSERT INTO ports (endpoint, host_port, account, container, container_port) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![endpoint, host, key.account, key.container, key.container_port],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str, container: &str, port: u16) -> PortKey {
        PortKey {
            account: account.into(),
            container: container.into(),
            container_port: port,
        }
    }

    #[test]
    fn acceptance_is_kept_with_an_audit_line() {
        let s = Store::in_memory().expect("store");
        assert_eq!(s.accepted("alice").expect("read"), None);
        s.accept("alice", "alice/workspace", "abc", "committer ok")
            .expect("accept");
        s.accept("alice", "alice/workspace", "def", "committer ok")
            .expect("accept");
        assert_eq!(
            s.accepted("alice").expect("read").map(|a| a.revision),
            Some("def".into())
        );
        let log = s.audit_log(Some("alice"), 10).expect("log");
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].revision.as_deref(), Some("def"));
        assert!(s.audit_log(Some("bob"), 10).expect("log").is_empty());
    }

    #[test]
    fn port_allocations_are_unique_per_endpoint_and_replaced_per_account() {
        let s = Store::in_memory().expect("store");
        let alice = BTreeMap::from([(key("alice", "web", 80), 20000)]);
        s.set_account_ports("local", "alice", &alice).expect("set");
        let clash = BTreeMap::from([(key("bob", "web", 80), 20000)]);
        assert!(
            s.set_account_ports("local", "bob", &clash).is_err(),
            "same host port twice"
        );
        assert!(
            s.ports("local")
                .expect("read")
                .keys()
                .all(|k| k.account == "alice"),
            "failed tx left nothing"
        );
        s.set_account_ports("local", "alice", &BTreeMap::new())
            .expect("release");
        assert!(s.ports("local").expect("read").is_empty());
    }

    #[test]
    fn runners_round_trip_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("berth-store-runner-{}", std::process::id()));
        let s = Store::open(&dir).expect("open");
        let r = StoredRunner {
            id: 7,
            token: "glrt-secret".into(),
            tags: vec!["docker".into(), "gpu".into()],
        };
        s.set_runner("alice", Some(&r)).expect("set");
        assert_eq!(s.runner("alice").expect("read"), Some(r.clone()));
        assert!(!format!("{r:?}").contains("glrt-secret"));
        s.set_runner("alice", None).expect("clear");
        assert_eq!(s.runner("alice").expect("read"), None);
        let mode = std::fs::metadata(dir.join("berth.sqlite3"))
            .expect("file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn survives_reopening() {
        let dir = std::env::temp_dir().join(format!("berth-store-{}", std::process::id()));
        {
            let s = Store::open(&dir).expect("open");
            s.set_placement("alice", "local").expect("place");
        }
        let s = Store::open(&dir).expect("reopen");
        assert_eq!(
            s.placement("alice").expect("read").as_deref(),
            Some("local")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
