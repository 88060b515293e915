//! Copies of the store an admin can keep and bring back. `backup` is
//! SQLite's online backup in one step: a single read transaction, so the
//! copy is consistent while `serve` writes (WAL readers do not block
//! writers, nor writers them). `restore` checks a copy, keeps the store it
//! replaces beside it, and puts the copy in place through the same API, so
//! a `serve` that still has the file open sees the restored data and not a
//! deleted inode.

use super::{Result, Store, StoreError, create_private, schema};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a copy holds, for the admin to recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Schema version (`PRAGMA user_version`).
    pub schema: u32,
    /// Accounts with an accepted revision.
    pub accounts: u64,
    pub audit_entries: u64,
    pub bytes: u64,
}

impl Store {
    /// Writes a checked copy of the store to `dest` (mode 0600: the store
    /// holds session and token digests), replacing it only once complete.
    pub fn backup_to(&self, dest: &Path) -> Result<Summary> {
        let staged = staged_beside(dest);
        let _ = std::fs::remove_file(&staged);
        create_private(&staged)?;
        let copied = (|| {
            let mut out = Connection::open(&staged)?;
            let conn = self.conn();
            copy_all(&conn, &mut out)
        })();
        let summary = copied
            .map_err(StoreError::from)
            .and_then(|()| check(&staged));
        match summary {
            Ok(summary) => {
                std::fs::rename(&staged, dest).map_err(|source| StoreError::Dir {
                    path: dest.display().to_string(),
                    source,
                })?;
                Ok(summary)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                Err(e)
            }
        }
    }

    /// Replaces the store's contents with the copy at `src` after checking
    /// it; the store as it was goes to `keep` first. The copy is migrated to
    /// this Berth's schema.
    pub fn restore_from(&self, src: &Path, keep: &Path) -> Result<Summary> {
        let summary = check(src)?;
        if summary.schema > schema::VERSION {
            return Err(StoreError::NewerSchema {
                found: summary.schema,
                known: schema::VERSION,
            });
        }
        self.backup_to(keep)?;
        let copy = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut conn = self.conn();
        copy_all(&copy, &mut conn)?;
        schema::migrate(&mut conn)?;
        Ok(summary)
    }
}

/// Every page of `from` into `to` in one step: one read transaction, so
/// one snapshot. Busy or locked (another process checkpointing) is tried
/// again for at most 10 s.
fn copy_all(from: &Connection, to: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(from, to)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some("the store stayed busy for 10 s".into()),
                ));
            }
        }
    }
}

/// `dest.partial`: the copy is written here and renamed when checked.
fn staged_beside(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Opens a copy read-only and checks it the way SQLite can: every page and
/// index (`integrity_check`), and that it is a Berth store at all.
pub fn check(path: &Path) -> Result<Summary> {
    let bytes = std::fs::metadata(path)
        .map_err(|source| StoreError::Dir {
            path: path.display().to_string(),
            source,
        })?
        .len();
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(StoreError::NotACopy {
            path: path.display().to_string(),
            why: format!("integrity check: {verdict}"),
        });
    }
    let schema: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let count = |table: &str| -> Result<u64> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(|_| StoreError::NotACopy {
            path: path.display().to_string(),
            why: format!("no `{table}` table: not a Berth store"),
        })
    };
    Ok(Summary {
        schema,
        accounts: count("accepted")?,
        audit_entries: count("audit")?,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_in(dir: &Path) -> Store {
        Store::open(dir).expect("store")
    }

    #[test]
    fn a_backup_restores_what_was_there_and_keeps_what_it_replaced() {
        let dir = std::env::temp_dir().join(format!("berth-backup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = store_in(&dir.join("live"));
        store
            .audit("alice", "accepted", Some("abc"), "first")
            .expect("audit");
        let copy = dir.join("copy.sqlite3");
        let taken = store.backup_to(&copy).expect("backup");
        assert_eq!(taken.audit_entries, 1);
        assert_eq!(taken.schema, schema::VERSION);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).expect("copy").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        store
            .audit("alice", "accepted", Some("def"), "second")
            .expect("audit");
        let kept = dir.join("before.sqlite3");
        let restored = store.restore_from(&copy, &kept).expect("restore");
        assert_eq!(restored.audit_entries, 1);
        assert_eq!(check(&kept).expect("kept").audit_entries, 2);
        // The live store answers from the copy, through its open connection.
        let conn = store.conn();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 1);
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_is_not_a_store_is_refused_before_anything_is_replaced() {
        let dir = std::env::temp_dir().join(format!("berth-notstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = store_in(&dir.join("live"));
        store.audit("bob", "accepted", None, "x").expect("audit");
        let junk = dir.join("junk.sqlite3");
        std::fs::write(&junk, b"not a database at all, just words").expect("junk");
        assert!(store.restore_from(&junk, &dir.join("kept")).is_err());
        let other = dir.join("other.sqlite3");
        Connection::open(&other)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x)"))
            .expect("other db");
        let refused = store
            .restore_from(&other, &dir.join("kept"))
            .expect_err("refused");
        assert!(
            refused.to_string().contains("not a Berth store"),
            "{refused}"
        );
        assert!(!dir.join("kept").exists(), "nothing replaced, nothing kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
