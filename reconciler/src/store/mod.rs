//! The embedded state store (SQLite through rusqlite, one file in the state
//! directory): accepted revision per account, the audit log, host-port
//! allocations and endpoint placements. The only module that writes it.
//!
//! SQLite because the audit log wants queries (per account, newest first),
//! allocations want uniqueness constraints enforced by the database, and WAL
//! mode gives crash safety without a server. Actual backend state is never
//! stored here: it is always re-read, so a crash mid-apply is recovered.

use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "state store is at schema version {found}; this Berth knows versions up to {known}: run a newer Berth"
    )]
    NewerSchema { found: u32, known: u32 },
    #[error("state store {path} cannot be written: {source}")]
    NotWritable {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path} is not a usable copy of Berth's store: {why}")]
    NotACopy { path: String, why: String },
    #[error("state store {path}: {source}")]
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

mod access;
mod allocations;
mod audit;
pub mod backup;
mod builds;
mod dormancy;
mod gitlab;
mod idle;
mod images;
pub mod lending;
mod notify;
mod schema;
mod tokens;
mod usage;
mod volumes;

pub use audit::{AuditCursor, AuditEntry};
pub use builds::BuildRecord;
pub use dormancy::Archive;
pub use gitlab::WatchedProject;
pub use idle::Culled;
pub use images::{Pin, Pulled, Share};
pub use tokens::{PersonalToken, Session, TokenOwner};
pub use usage::{DAILY_KEPT, HOURLY_KEPT, Rollup};
pub use volumes::{MeasuredVolume, VolumeUsage};

/// The latest rejection or failed action of an account, until a later
/// reconcile succeeds without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    pub at: i64,
    /// The whole story, for admins (backend addresses and answers).
    pub message: String,
    /// What the student may read: their own file's problem, or an audit id.
    pub student: String,
}

/// An error as it is recorded: the admin's detail, the student's text.
#[derive(Clone, Copy, Debug)]
pub struct Problem<'a> {
    pub detail: &'a str,
    pub student: &'a str,
}

pub use berth_core::desired::{GpuKey, PortKey};
pub use berth_core::runner::StoredRunner;

/// Berth's state in SQLite. Cheap to clone: every clone is the same
/// connection, and the same store thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    /// The database file (`:memory:` in tests), named in every complaint.
    path: String,
    /// The store's own thread, which runs [`Store::call`]s one after the other.
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Store {
    /// Runs `f` on the store's own thread and waits for it without holding
    /// an async worker: SQLite (and the disk under it) never stalls the
    /// runtime, and no thread is made per call. The async interface of the
    /// store; commands and tests may call its methods directly.
    pub async fn call<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> T + Send + 'static) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.clone();
        let job: Job = Box::new(move || {
            let _ = tx.send(f(&store));
        });
        // The thread only ends with the last clone of the store, which
        // this one is; should it have died anyway, the call runs here.
        if let Err(std::sync::mpsc::SendError(job)) = self.inner.jobs.send(job) {
            job();
        }
        match rx.await {
            Ok(value) => value,
            // The job panicked on the store thread: a bug, surfaced here.
            Err(_) => panic!("a call on the state store's thread panicked"),
        }
    }
}

impl Store {
    /// Queues `f` on the store's thread and returns at once: for writes
    /// nobody waits on (an audit line). Jobs run in the order given; a
    /// failure is logged there.
    pub fn submit<E: std::fmt::Display>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Store) -> std::result::Result<(), E> + Send + 'static,
    ) {
        let store = self.clone();
        let job: Job = Box::new(move || {
            if let Err(e) = f(&store) {
                tracing::warn!(cause = %e, "{what}");
            }
        });
        if let Err(std::sync::mpsc::SendError(job)) = self.inner.jobs.send(job) {
            job();
        }
    }
}

/// The store thread: runs jobs in order until every sender is gone. A job
/// that panics is reported by its caller; the thread goes on.
fn store_thread() -> std::io::Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("berth-store".into())
        .spawn(move || {
            for job in rx {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })?;
    Ok(tx)
}

/// Creates the database file readable by Berth's user only (runner tokens
/// live in it); SQLite gives its `-wal` and `-shm` files the same mode. An
/// existing file keeps the mode its admin gave it: opening the store for
/// `status` or `audit` changes nothing on disk.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(StoreError::Dir {
                path: path.display().to_string(),
                source: e,
            }),
        })
}

/// Unix milliseconds now (GPU lending and usage keep times in ms).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
        create_private(&path)?;
        let conn = Connection::open(&path)?;
        Self::init(conn, path.display().to_string())
    }

    pub fn in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?, ":memory:".into())
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Whether the store takes writes now (a write lock, released at once):
    /// a read-only or full file is named with SQLite's reason.
    pub fn check_writable(&self) -> Result<()> {
        // A write statement that changes nothing: SQLite opens a file it
        // may not write read-only and says so only when asked to write.
        let conn = self.conn();
        let tried = conn.execute_batch("BEGIN IMMEDIATE; DELETE FROM warnings WHERE 0;");
        let _ = conn.execute_batch("ROLLBACK;");
        tried.map_err(|source| StoreError::NotWritable {
            path: self.inner.path.clone(),
            source,
        })
    }

    /// SQLite opens a file it could not write read-only and stays so;
    /// once the file can be written again (the admin fixed it), a fresh
    /// connection takes writes. Does nothing for a writable connection.
    pub fn reopen_if_read_only(&self) -> Result<()> {
        let mut conn = self.conn();
        if self.inner.path == ":memory:" || !conn.is_readonly(rusqlite::MAIN_DB)? {
            return Ok(());
        }
        let fresh = Connection::open(&self.inner.path)?;
        fresh.busy_timeout(std::time::Duration::from_secs(10))?;
        *conn = fresh;
        Ok(())
    }

    fn init(mut conn: Connection, path: String) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        schema::migrate(&mut conn)?;
        let jobs = store_thread().map_err(|source| StoreError::Dir {
            path: format!("{path} (the store thread)"),
            source,
        })?;
        Ok(Store {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path,
                jobs,
            }),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (statements are atomic), so a poisoned lock is still usable.
        self.inner.conn.lock().unwrap_or_else(|p| p.into_inner())
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

    /// The last error of an account, cleared by a successful reconcile.
    /// Records (or, with `None`, clears) the account's last error: the
    /// admin's detail and what the student may read of it.
    pub fn set_last_error(&self, account: &str, error: Option<Problem<'_>>) -> Result<()> {
        let conn = self.conn();
        match error {
            Some(p) => conn.execute(
                "INSERT INTO last_error (account, at, message, student) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(account) DO UPDATE SET at = ?2, message = ?3, student = ?4",
                params![account, now(), p.detail, p.student],
            )?,
            None => conn.execute("DELETE FROM last_error WHERE account = ?1", [account])?,
        };
        Ok(())
    }

    pub fn last_error(&self, account: &str) -> Result<Option<LastError>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT at, message, student FROM last_error WHERE account = ?1",
                [account],
                |r| {
                    Ok(LastError {
                        at: r.get(0)?,
                        message: r.get(1)?,
                        student: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Every account the store knows of: accepted a revision, holds a
    /// placement, a runner or a project. The resync visits them all, so an
    /// account whose repository vanished is still stopped when it must be.
    pub fn known_accounts(&self) -> Result<std::collections::BTreeSet<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account FROM accepted UNION SELECT account FROM placements
             UNION SELECT account FROM runners UNION SELECT account FROM projects
             ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls run on the store's own thread, even from a single-threaded
    /// runtime (where blocking the only worker would stall everything),
    /// and submitted writes land in the order given.
    #[tokio::test(flavor = "current_thread")]
    async fn calls_run_on_the_store_thread_in_order() {
        let store = Store::in_memory().expect("store");
        let thread = store
            .call(|_| std::thread::current().name().map(str::to_string))
            .await;
        assert_eq!(thread.as_deref(), Some("berth-store"));
        for n in 0..20 {
            store.submit("test audit", move |s| {
                s.audit("alice", "note", None, &n.to_string()).map(drop)
            });
        }
        let details: Vec<String> = store
            .call(|s| s.audit_log(Some("alice"), 100))
            .await
            .expect("read")
            .into_iter()
            .rev()
            .map(|e| e.detail)
            .collect();
        let expected: Vec<String> = (0..20).map(|n| n.to_string()).collect();
        assert_eq!(details, expected);
    }
    use std::collections::BTreeMap;

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
        // An admin's mode survives a read-only command reopening the store.
        let file = dir.join("berth.sqlite3");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        drop(s);
        let again = Store::open(&dir).expect("reopen");
        again.audit_log(None, 10).expect("read");
        let mode = std::fs::metadata(&file).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "reading the store changes no mode");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_action_is_audited_before_it_runs_and_completed_after() {
        let s = Store::in_memory().expect("store");
        let id = s
            .audit("alice", "action-started", Some("abc"), "create alice--web")
            .expect("intent");
        // A crash here leaves the intent, outcome unknown.
        let log = s.audit_log(Some("alice"), 10).expect("log");
        assert_eq!(log[0].event, "action-started");
        s.finish_audit(id, "action", "create alice--web")
            .expect("outcome");
        let log = s.audit_log(Some("alice"), 10).expect("log");
        assert_eq!(log.len(), 1, "one line per action");
        assert_eq!(log[0].event, "action");
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
