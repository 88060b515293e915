//! The store's schema and its ordered migrations, kept in SQLite's
//! `user_version`: step N takes a database at version N-1 to N, in one
//! transaction. A released step is never edited; a change is a new step.
//! Step 1 is the schema as it stood before versioning (hence `IF NOT
//! EXISTS`: databases made then are at version 0 and already hold it).

use super::{Result, StoreError};
use rusqlite::Connection;

const STEPS: &[&str] = &[
    // 1: accepted revisions, audit, allocations, GitLab, images, status.
    "
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
",
    // 2: what a student may read of the last error, beside the admin's detail.
    "ALTER TABLE last_error ADD COLUMN student TEXT NOT NULL DEFAULT '';",
    // 3: personal registry tokens (only their SHA-256 is kept), and image
    // builds: the last of each declared image, its outcome and its log.
    "
CREATE TABLE builds (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    revision TEXT NOT NULL,
    ok INTEGER NOT NULL,
    digest TEXT,
    reason TEXT NOT NULL,
    log TEXT NOT NULL,
    at INTEGER NOT NULL,
    dropped_at INTEGER,
    PRIMARY KEY (account, name)
);
CREATE TABLE mr_notes (
    project INTEGER NOT NULL,
    iid INTEGER NOT NULL,
    note INTEGER NOT NULL,
    PRIMARY KEY (project, iid)
);
CREATE TABLE drains (
    account TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    stage TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE notices (
    account TEXT PRIMARY KEY,
    message TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE culled (
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (account, container)
);
CREATE TABLE console_sessions (
    key TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    admin INTEGER NOT NULL,
    csrf TEXT NOT NULL,
    created INTEGER NOT NULL,
    seen INTEGER NOT NULL
);
CREATE TABLE registry_tokens (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    last_used INTEGER,
    UNIQUE (account, name)
);
",
    // N: personal tokens expire and belong to one directory entry (its
    // entryUUID or DN), not to whoever holds the name later. Tokens made
    // before carry no entry and expire a default lifetime after creation.
    "ALTER TABLE registry_tokens ADD COLUMN entry TEXT NOT NULL DEFAULT '';
ALTER TABLE registry_tokens ADD COLUMN expires INTEGER;",
    // N: the sizes of the accounts' Docker volumes, as last measured per
    // host, and when a running container last mounted each.
    "
CREATE TABLE volume_usage (
    endpoint TEXT NOT NULL,
    volume TEXT NOT NULL,
    account TEXT NOT NULL,
    bytes INTEGER,
    measured_at INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_used INTEGER,
    PRIMARY KEY (endpoint, volume)
);
CREATE INDEX volume_usage_by_account ON volume_usage (account);
",
    // N: usage accounting: the sampler's cursor per container and round
    // per host, and what was used and reserved per account, by hour (kept
    // 35 days) and by day (kept 13 months).
    "
CREATE TABLE usage_cursors (
    endpoint TEXT NOT NULL,
    container TEXT NOT NULL,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    cpu_ns INTEGER NOT NULL,
    sampled_at INTEGER NOT NULL,
    cpus REAL NOT NULL,
    memory INTEGER NOT NULL,
    gpus INTEGER NOT NULL,
    PRIMARY KEY (endpoint, container)
);
CREATE TABLE usage_rounds (
    endpoint TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);
CREATE TABLE usage_hourly (
    account TEXT NOT NULL,
    at INTEGER NOT NULL,
    cpu_used REAL NOT NULL,
    cpu_reserved REAL NOT NULL,
    memory_reserved REAL NOT NULL,
    memory_used REAL NOT NULL,
    gpu_reserved REAL NOT NULL,
    builds INTEGER NOT NULL DEFAULT 0,
    build_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (account, at)
) WITHOUT ROWID;
CREATE TABLE budget_use (
    grp TEXT PRIMARY KEY,
    period_start INTEGER NOT NULL,
    cpu_seconds REAL NOT NULL,
    gpu_seconds REAL NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE storage_daily (
    account TEXT NOT NULL,
    at INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    registry_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, at)
) WITHOUT ROWID;
CREATE TABLE usage_daily (
    account TEXT NOT NULL,
    at INTEGER NOT NULL,
    cpu_used REAL NOT NULL,
    cpu_reserved REAL NOT NULL,
    memory_reserved REAL NOT NULL,
    memory_used REAL NOT NULL,
    gpu_reserved REAL NOT NULL,
    builds INTEGER NOT NULL DEFAULT 0,
    build_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (account, at)
) WITHOUT ROWID;
",
    // N: GPU lending: grants of cards until a time, the queue of
    // containers waiting for cards, admins' bookings, and the card-hours
    // lent (fair share reads the last 7 days; kept 35 days).
    "
CREATE TABLE gpu_grants (
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    grp TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    cards TEXT NOT NULL,
    start INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    told_end INTEGER,
    PRIMARY KEY (account, container)
);
CREATE TABLE gpu_queue (
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    grp TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    count INTEGER NOT NULL,
    model TEXT,
    length INTEGER NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (account, container)
);
CREATE TABLE gpu_bookings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    cards TEXT NOT NULL,
    start INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    booked_by TEXT NOT NULL
);
CREATE TABLE gpu_lent (
    account TEXT NOT NULL,
    grp TEXT NOT NULL,
    start INTEGER NOT NULL,
    end_at INTEGER NOT NULL,
    cards INTEGER NOT NULL
);
CREATE INDEX gpu_lent_end ON gpu_lent (end_at);
",
    // N: mail to students: what waits to be told (bounded per account),
    // when each was last mailed, and what each muted.
    "
CREATE TABLE notify_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    category TEXT NOT NULL,
    at INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX notify_outbox_account ON notify_outbox (account, id);
CREATE TABLE notify_sent (
    account TEXT PRIMARY KEY,
    last INTEGER NOT NULL,
    that_day INTEGER NOT NULL
);
CREATE TABLE notify_muted (
    account TEXT NOT NULL,
    category TEXT NOT NULL,
    PRIMARY KEY (account, category)
);
",
    // N: the idle culler's warnings ("will stop at"), the accepted
    // revision's `keep_until` per container, and what waits for the
    // admins' chat (bounded).
    "
CREATE TABLE chat_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    category TEXT NOT NULL,
    at INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE cull_warnings (
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    stop_at INTEGER NOT NULL,
    PRIMARY KEY (account, container)
);
CREATE TABLE keeps (
    account TEXT NOT NULL,
    container TEXT NOT NULL,
    until INTEGER NOT NULL,
    PRIMARY KEY (account, container)
);
",
    // N: dormant workspaces: when each account was last used, when it
    // was told its volumes will be archived, and the archives (`done` = 0
    // while one is being written: the volume is still there).
    "
CREATE TABLE activity (
    account TEXT PRIMARY KEY,
    last INTEGER NOT NULL
);
CREATE TABLE dormancy_told (
    account TEXT PRIMARY KEY,
    archive_at INTEGER NOT NULL
);
CREATE TABLE archives (
    account TEXT NOT NULL,
    volume TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    files INTEGER NOT NULL,
    at INTEGER NOT NULL,
    done INTEGER NOT NULL,
    PRIMARY KEY (account, volume)
);
",
    // N: access a student granted to a container (a TA's logs, terminal,
    // files), from the accepted revision.
    "
CREATE TABLE access_grants (
    owner TEXT NOT NULL,
    container TEXT NOT NULL,
    kind TEXT NOT NULL,
    grantee TEXT NOT NULL,
    allow TEXT NOT NULL,
    until INTEGER NOT NULL
);
CREATE INDEX access_grants_grantee ON access_grants (grantee);
",
];

/// The version this Berth writes.
pub const VERSION: u32 = STEPS.len() as u32;

/// Brings the database to [`VERSION`]; refuses one written by a newer Berth.
pub fn migrate(conn: &mut Connection) -> Result<u32> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: VERSION,
        });
    }
    for (i, step) in STEPS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_versioning_is_migrated_and_keeps_its_rows() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.execute_batch(
            "CREATE TABLE accepted (account TEXT PRIMARY KEY, repository TEXT NOT NULL,
             revision TEXT NOT NULL, at INTEGER NOT NULL);
             INSERT INTO accepted VALUES ('alice', 'alice/workspace', 'abc', 1);",
        )
        .expect("old schema");
        assert_eq!(migrate(&mut conn).expect("migrated"), VERSION);
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, VERSION);
        let kept: String = conn
            .query_row("SELECT revision FROM accepted", [], |r| r.get(0))
            .expect("row");
        assert_eq!(kept, "abc");
        // Idempotent.
        assert_eq!(migrate(&mut conn).expect("again"), VERSION);
    }

    /// The store as release v0.1.0 wrote it (`fixtures/store-v0.1.0.sql`,
    /// dumped by `tests/tests/upgrade.rs` from that release's own run)
    /// opens through [`crate::store::Store`] and keeps what it held.
    #[test]
    fn the_store_of_release_0_1_0_opens_and_keeps_its_rows() {
        let dir = std::env::temp_dir().join(format!("berth-v010-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let conn = Connection::open(dir.join("berth.sqlite3")).expect("db");
        conn.execute_batch(include_str!("fixtures/store-v0.1.0.sql"))
            .expect("the v0.1.0 dump loads");
        let found: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert!(found <= VERSION, "the fixture is older than this schema");
        drop(conn);
        let store = crate::store::Store::open(&dir).expect("this release opens it");
        let accounts = store.known_accounts().expect("accounts");
        assert_eq!(accounts.len(), 2, "{accounts:?}");
        for account in &accounts {
            let accepted = store.accepted(account).expect("read");
            assert!(accepted.is_some(), "{account}'s accepted revision kept");
        }
        let audit = store
            .audit_log(None, 100)
            .map(|e| e.len())
            .unwrap_or_default();
        assert!(audit >= 8, "the audit log kept: {audit}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().expect("db");
        conn.pragma_update(None, "user_version", VERSION + 1)
            .expect("pragma");
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::NewerSchema { .. })
        ));
    }
}
