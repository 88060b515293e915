//! Mail to students: the outbox (at most [`OUTBOX_PER_ACCOUNT`] events per
//! account, the oldest dropped: a student's flood of pushes cannot grow
//! it), when each was last mailed, and the categories each muted.

use super::{Result, Store};
use berth_core::notify::{Category, Event, Sent};
use rusqlite::params;
use std::collections::{BTreeMap, BTreeSet};

/// Events kept per account until mailed.
pub const OUTBOX_PER_ACCOUNT: i64 = 200;
/// Events kept for the admins' chat until posted (the newest).
pub const CHAT_OUTBOX: i64 = 500;

fn name(c: Category) -> &'static str {
    c.name()
}

fn category(text: &str) -> Option<Category> {
    Category::named(text)
}

/// The events of an outbox table, oldest first, with their ids.
fn events(conn: &rusqlite::Connection, table: &str) -> Result<Vec<(i64, Event)>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, account, category, at, text FROM {table} ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, account, c, at, text)| {
            Some((
                id,
                Event {
                    account,
                    category: category(&c)?,
                    at,
                    text,
                },
            ))
        })
        .collect())
}

impl Store {
    /// Queues an event for `account`'s next mail, unless it muted the
    /// category (those that stop its work are always queued).
    pub fn notify(&self, account: &str, c: Category, text: &str) -> Result<()> {
        let conn = self.conn();
        // The admins' feed does not depend on what the student muted.
        conn.execute(
            "INSERT INTO chat_outbox (account, category, at, text) VALUES (?1, ?2, ?3, ?4)",
            params![account, name(c), super::now_ms(), text],
        )?;
        conn.execute(
            "DELETE FROM chat_outbox WHERE id <= (SELECT MAX(id) FROM chat_outbox) - ?1",
            [CHAT_OUTBOX],
        )?;
        if c.mutable() {
            let muted: i64 = conn.query_row(
                "SELECT COUNT(*) FROM notify_muted WHERE account = ?1 AND category = ?2",
                params![account, name(c)],
                |r| r.get(0),
            )?;
            if muted > 0 {
                return Ok(());
            }
        }
        conn.execute(
            "INSERT INTO notify_outbox (account, category, at, text) VALUES (?1, ?2, ?3, ?4)",
            params![account, name(c), super::now_ms(), text],
        )?;
        conn.execute(
            "DELETE FROM notify_outbox WHERE account = ?1 AND id NOT IN
                 (SELECT id FROM notify_outbox WHERE account = ?1 ORDER BY id DESC LIMIT ?2)",
            params![account, OUTBOX_PER_ACCOUNT],
        )?;
        Ok(())
    }

    /// Everything waiting, with the highest id read (what a send clears
    /// up to), when each account was last mailed, and what each muted.
    #[allow(clippy::type_complexity)]
    pub fn notify_state(
        &self,
    ) -> Result<(
        Vec<(i64, Event)>,
        BTreeMap<String, Sent>,
        BTreeMap<String, BTreeSet<Category>>,
    )> {
        let conn = self.conn();
        let pending = events(&conn, "notify_outbox")?;
        let sent = conn
            .prepare("SELECT account, last, that_day FROM notify_sent")?
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Sent {
                        last: Some(r.get(1)?),
                        that_day: r.get(2)?,
                    },
                ))
            })?
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let mut muted: BTreeMap<String, BTreeSet<Category>> = BTreeMap::new();
        for row in conn
            .prepare("SELECT account, category FROM notify_muted")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        {
            let (account, c) = row?;
            if let Some(c) = category(&c) {
                muted.entry(account).or_default().insert(c);
            }
        }
        Ok((pending, sent, muted))
    }

    /// Records a mail sent to `account` at `now` carrying its events up to
    /// `up_to`, and audits it.
    pub fn notified(&self, account: &str, up_to: i64, now: i64, subject: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM notify_outbox WHERE account = ?1 AND id <= ?2",
            params![account, up_to],
        )?;
        let day = now.div_euclid(86_400_000);
        tx.execute(
            "INSERT INTO notify_sent (account, last, that_day) VALUES (?1, ?2, 1)
             ON CONFLICT (account) DO UPDATE SET
                 that_day = CASE WHEN last / 86400000 = ?3 THEN that_day + 1 ELSE 1 END,
                 last = ?2",
            params![account, now, day],
        )?;
        tx.commit()?;
        // The connection is locked until dropped; audit locks it again.
        drop(conn);
        self.audit(account, "mail", None, subject)?;
        Ok(())
    }

    /// What waits for the admins' chat, oldest first, with its ids.
    pub fn chat_pending(&self) -> Result<Vec<(i64, Event)>> {
        events(&self.conn(), "chat_outbox")
    }

    /// Drops what the chat was given (or need not be), up to `id`.
    pub fn chat_posted(&self, up_to: i64) -> Result<()> {
        self.conn()
            .execute("DELETE FROM chat_outbox WHERE id <= ?1", [up_to])?;
        Ok(())
    }

    /// The categories `account` muted.
    pub fn muted(&self, account: &str) -> Result<BTreeSet<Category>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT category FROM notify_muted WHERE account = ?1")?;
        let rows = stmt.query_map([account], |r| r.get::<_, String>(0))?;
        let mut out = BTreeSet::new();
        for c in rows {
            out.extend(category(&c?));
        }
        Ok(out)
    }

    /// Mutes or unmutes a category for `account`.
    pub fn set_muted(&self, account: &str, c: Category, muted: bool) -> Result<()> {
        let conn = self.conn();
        if muted {
            conn.execute(
                "INSERT OR IGNORE INTO notify_muted (account, category) VALUES (?1, ?2)",
                params![account, name(c)],
            )?;
            conn.execute(
                "DELETE FROM notify_outbox WHERE account = ?1 AND category = ?2",
                params![account, name(c)],
            )?;
        } else {
            conn.execute(
                "DELETE FROM notify_muted WHERE account = ?1 AND category = ?2",
                params![account, name(c)],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbox_is_bounded_per_account_and_a_mute_drops_what_waits() {
        let s = Store::in_memory().expect("store");
        for i in 0..(OUTBOX_PER_ACCOUNT + 50) {
            s.notify("alice", Category::PushRefused, &format!("push {i}"))
                .expect("queued");
        }
        s.notify("alice", Category::GpuLent, "lent")
            .expect("queued");
        let (pending, _, _) = s.notify_state().expect("state");
        assert_eq!(pending.len() as i64, OUTBOX_PER_ACCOUNT);
        assert_eq!(pending.last().map(|(_, e)| e.text.as_str()), Some("lent"));
        s.set_muted("alice", Category::GpuLent, true)
            .expect("muted");
        s.notify("alice", Category::GpuLent, "lent again")
            .expect("ignored");
        let (pending, _, muted) = s.notify_state().expect("state");
        assert!(
            pending
                .iter()
                .all(|(_, e)| e.category == Category::PushRefused)
        );
        assert!(muted["alice"].contains(&Category::GpuLent));
        // Sent: cleared up to what the mail carried, counted for the day.
        let up_to = pending.last().map(|(id, _)| *id).unwrap_or(0);
        s.notified("alice", up_to, 1_000, "[Berth] x")
            .expect("sent");
        s.notified("alice", up_to, 2_000, "[Berth] y")
            .expect("sent");
        let (pending, sent, _) = s.notify_state().expect("state");
        assert!(pending.is_empty());
        assert_eq!(sent["alice"].that_day, 2);
    }
}
