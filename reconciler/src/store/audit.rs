//! The audit log: every revision accepted or rejected and every action
//! applied, with time and reason; and the cursor that follows it as it is
//! written (`audit --follow`, serve's event stream), including the lines
//! written as `action-started` and completed later in place.

use super::{Result, Store, now};
use rusqlite::params;

/// One line of the audit log.
/// Deserialize: `audit --server` reads it back from serve's API.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Increasing; what a follower resumes after (`Last-Event-ID`).
    pub id: i64,
    pub at: i64,
    pub account: String,
    /// `accepted`, `rejected`, `action`, `action-failed`, `action-started`
    /// (the process stopped before the action's outcome was known),
    /// `reconcile-failed`.
    pub event: String,
    pub revision: Option<String>,
    pub detail: String,
}

const STARTED: &str = "action-started";

impl Store {
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

    /// Records the outcome of an entry written as `action-started`: the same
    /// line then reads `action` or `action-failed`.
    pub fn finish_audit(&self, id: i64, event: &str, detail: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE audit SET event = ?2, detail = ?3 WHERE id = ?1",
            params![id, event, detail],
        )?;
        Ok(())
    }

    /// Audit lines of `account` (all accounts when `None`), newest first.
    pub fn audit_log(&self, account: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        self.audit_query(
            "WHERE (?1 IS NULL OR account = ?1) ORDER BY id DESC LIMIT ?2",
            params![account, limit as i64],
        )
    }

    /// Audit lines written after `after`, oldest first, at most `limit`.
    pub fn audit_after(
        &self,
        account: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        self.audit_query(
            "WHERE (?1 IS NULL OR account = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
            params![account, after, limit as i64],
        )
    }

    /// Lines of `account` among the `window` up to `upto` that still read
    /// `action-started`: actions whose outcome may yet be written.
    fn audit_started(
        &self,
        account: Option<&str>,
        upto: i64,
        window: i64,
    ) -> Result<Vec<AuditEntry>> {
        self.audit_query(
            "WHERE (?1 IS NULL OR account = ?1) AND event = ?2 AND id <= ?3 AND id > ?3 - ?4 ORDER BY id",
            params![account, STARTED, upto, window],
        )
    }

    fn audit_query(&self, tail: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT id, at, account, event, revision, detail FROM audit {tail}"
        ))?;
        let rows = stmt.query_map(args, |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                account: r.get(2)?,
                event: r.get(3)?,
                revision: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit_entry(&self, id: i64) -> Result<Option<AuditEntry>> {
        Ok(self
            .audit_query("WHERE id = ?1", params![id])?
            .into_iter()
            .next())
    }
}

/// Where a follower of the audit log is: the last line it has seen, and
/// the `action-started` lines it has seen whose outcome is still to come
/// (the same line is rewritten when the action ends, so reading by id
/// alone would never show it).
#[derive(Clone, Debug, Default)]
pub struct AuditCursor {
    account: Option<String>,
    last: i64,
    pending: Vec<i64>,
}

/// Most lines one poll returns; a follower far behind catches up over
/// several polls instead of in one huge read.
const BATCH: usize = 500;

/// How many lines back a resuming follower looks for actions still
/// running. An `action-started` line older than this is from a process
/// that stopped mid-action long ago (its outcome will not come); the
/// window also keeps the look-up a short range of ids.
const RESUME_WINDOW: i64 = 5_000;

impl AuditCursor {
    /// Follows `account` (every account when `None`) from after line
    /// `after`, the last one its reader has: also the outcome of actions
    /// started at or before it (the reader saw them start, in a backlog or
    /// before a reconnect, and has not seen them end).
    pub fn resume(store: &Store, account: Option<String>, after: i64) -> Result<Self> {
        let mut cursor = AuditCursor::after(account, after);
        let started = store.audit_started(cursor.account.as_deref(), after, RESUME_WINDOW)?;
        cursor.seen(&started);
        Ok(cursor)
    }

    /// Follows from after line `after`, nothing before it.
    fn after(account: Option<String>, after: i64) -> Self {
        AuditCursor {
            account,
            last: after,
            pending: Vec::new(),
        }
    }

    /// Follows from the newest line on: what is written from now, and the
    /// outcome of actions still running.
    pub fn from_now(store: &Store, account: Option<String>) -> Result<Self> {
        let last = store
            .audit_log(account.as_deref(), 1)?
            .first()
            .map_or(0, |e| e.id);
        AuditCursor::resume(store, account, last)
    }

    /// Notes lines as shown: the last id, and the started actions among
    /// them whose outcome is still to come.
    fn seen(&mut self, entries: &[AuditEntry]) {
        for e in entries {
            self.last = self.last.max(e.id);
            if e.event == STARTED && !self.pending.contains(&e.id) {
                self.pending.push(e.id);
            }
        }
    }

    /// What changed since the last poll, in order: started actions that
    /// have since finished (their line, rewritten), then new lines.
    pub fn poll(&mut self, store: &Store) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        let mut still = Vec::new();
        for id in std::mem::take(&mut self.pending) {
            match store.audit_entry(id)? {
                Some(e) if e.event == STARTED => still.push(id),
                Some(e) => out.push(e),
                None => {}
            }
        }
        self.pending = still;
        let new = store.audit_after(self.account.as_deref(), self.last, BATCH)?;
        self.seen(&new);
        out.extend(new);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::in_memory().expect("store")
    }

    #[test]
    fn a_cursor_sees_each_new_line_once_in_order() {
        let s = store();
        s.audit("alice", "accepted", Some("abc"), "old")
            .expect("audit");
        let mut c = AuditCursor::from_now(&s, None).expect("cursor");
        assert!(
            c.poll(&s).expect("poll").is_empty(),
            "the backlog is not new"
        );
        s.audit("alice", "action", Some("abc"), "one")
            .expect("audit");
        s.audit("bob", "rejected", Some("def"), "two")
            .expect("audit");
        let got: Vec<_> = c
            .poll(&s)
            .expect("poll")
            .into_iter()
            .map(|e| e.detail)
            .collect();
        assert_eq!(got, ["one", "two"]);
        assert!(c.poll(&s).expect("poll").is_empty());
    }

    #[test]
    fn a_cursor_for_one_account_skips_the_others() {
        let s = store();
        let mut c = AuditCursor::after(Some("bob".into()), 0);
        s.audit("alice", "action", None, "hers").expect("audit");
        s.audit("bob", "action", None, "his").expect("audit");
        let got: Vec<_> = c
            .poll(&s)
            .expect("poll")
            .into_iter()
            .map(|e| e.detail)
            .collect();
        assert_eq!(got, ["his"]);
    }

    #[test]
    fn a_started_action_is_shown_again_when_it_finishes() {
        let s = store();
        let mut c = AuditCursor::after(None, 0);
        let id = s
            .audit("alice", STARTED, Some("abc"), "create alice--web")
            .expect("audit");
        let first = c.poll(&s).expect("poll");
        assert_eq!(first[0].event, STARTED);
        assert!(c.poll(&s).expect("poll").is_empty(), "still running");
        s.finish_audit(id, "action", "created alice--web")
            .expect("finish");
        let done = c.poll(&s).expect("poll");
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].id, done[0].event.as_str()), (id, "action"));
        assert!(c.poll(&s).expect("poll").is_empty());
    }

    #[test]
    fn a_resumed_cursor_shows_the_outcome_of_an_action_started_before() {
        let s = store();
        let id = s
            .audit("alice", STARTED, Some("abc"), "create alice--web")
            .expect("audit");
        s.audit("bob", STARTED, Some("def"), "create bob--web")
            .expect("audit");
        let last = s
            .audit("alice", "action", Some("abc"), "created alice--db")
            .expect("audit");
        // The reader has every line up to `last`, alice's only.
        let mut c = AuditCursor::resume(&s, Some("alice".into()), last).expect("cursor");
        assert!(c.poll(&s).expect("poll").is_empty(), "nothing new yet");
        s.finish_audit(id, "action", "created alice--web")
            .expect("finish");
        let done = c.poll(&s).expect("poll");
        assert_eq!(
            done.iter()
                .map(|e| (e.id, e.event.as_str()))
                .collect::<Vec<_>>(),
            [(id, "action")]
        );
        assert!(c.poll(&s).expect("poll").is_empty());
    }
}
