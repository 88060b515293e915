//! GPU lending's state: grants, the queue, bookings and the card-hours
//! lent (for fair share). Every change a lending tick decides is written
//! in one transaction ([`Store::apply_lending`]), so a crash leaves the
//! state of one tick or the next, never half of one.

use super::{Result, Store};
use berth_core::desired::GpuKey;
use berth_core::lending::{Booking, Change, Grant, Request, Shares, State};
use rusqlite::{OptionalExtension, params};

/// How far back fair share looks, ms.
pub const SHARE_WINDOW_MS: i64 = 7 * 86_400_000;
/// How long the record of lent card-hours is kept, ms.
const LENT_KEPT_MS: i64 = 35 * 86_400_000;

fn cards_of(text: String) -> Vec<String> {
    text.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

impl Store {
    /// Grants, the queue and bookings (not yet over at `now`); the cards
    /// are the caller's (from `site.yaml`).
    pub fn lending(&self, now: i64) -> Result<State> {
        let conn = self.conn();
        let grants = conn
            .prepare(
                "SELECT account, container, grp, endpoint, cards, start, end_at, told_end
                 FROM gpu_grants ORDER BY start, account, container",
            )?
            .query_map([], |r| {
                Ok(Grant {
                    key: GpuKey {
                        account: r.get(0)?,
                        container: r.get(1)?,
                    },
                    group: r.get(2)?,
                    endpoint: r.get(3)?,
                    cards: cards_of(r.get(4)?),
                    start: r.get(5)?,
                    end: r.get(6)?,
                    told_end: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let queue = conn
            .prepare(
                "SELECT account, container, grp, endpoint, count, model, length, since
                 FROM gpu_queue ORDER BY since, account, container",
            )?
            .query_map([], |r| {
                Ok(Request {
                    key: GpuKey {
                        account: r.get(0)?,
                        container: r.get(1)?,
                    },
                    group: r.get(2)?,
                    endpoint: r.get(3)?,
                    count: r.get(4)?,
                    model: r.get(5)?,
                    length: r.get(6)?,
                    since: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let bookings = conn
            .prepare(
                "SELECT id, grp, endpoint, cards, start, end_at FROM gpu_bookings
                 WHERE end_at > ?1 ORDER BY start, id",
            )?
            .query_map([now], |r| {
                Ok(Booking {
                    id: r.get(0)?,
                    group: r.get(1)?,
                    endpoint: r.get(2)?,
                    cards: cards_of(r.get(3)?),
                    start: r.get(4)?,
                    end: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(State {
            cards: vec![],
            grants,
            queue,
            bookings,
        })
    }

    /// Card-hours lent per group and per account over the week before
    /// `now` (grants still running count up to `now`).
    pub fn gpu_shares(&self, now: i64) -> Result<Shares> {
        let conn = self.conn();
        let mut shares = Shares::default();
        let from = now - SHARE_WINDOW_MS;
        let mut add = |account: String, group: String, hours: f64| {
            *shares.group.entry(group).or_default() += hours;
            *shares.account.entry(account).or_default() += hours;
        };
        let hours = |start: i64, end: i64, cards: i64| {
            (end.min(now) - start.max(from)).max(0) as f64 * cards as f64 / 3_600_000.0
        };
        for row in conn
            .prepare("SELECT account, grp, start, end_at, cards FROM gpu_lent WHERE end_at > ?1")?
            .query_map([from], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
        {
            let (account, group, start, end, cards): (String, String, i64, i64, i64) = row?;
            add(account, group, hours(start, end, cards));
        }
        for row in conn
            .prepare("SELECT account, grp, start, cards FROM gpu_grants")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        {
            let (account, group, start, cards): (String, String, i64, String) = row?;
            let n = cards_of(cards).len() as i64;
            add(account, group, hours(start, now, n));
        }
        Ok(shares)
    }

    /// Puts `r` in the queue unless it is there or holds a grant; a
    /// request already there is updated (count, model, length) but keeps
    /// its place.
    pub fn gpu_enqueue(&self, r: &Request) -> Result<()> {
        let conn = self.conn();
        let granted: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM gpu_grants WHERE account = ?1 AND container = ?2",
                params![r.key.account, r.key.container],
                |row| row.get(0),
            )
            .optional()?;
        if granted.is_some() {
            return Ok(());
        }
        conn.execute(
            "INSERT INTO gpu_queue (account, container, grp, endpoint, count, model, length, since)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (account, container) DO UPDATE SET
                 grp = ?3, endpoint = ?4, count = ?5, model = ?6, length = ?7",
            params![
                r.key.account,
                r.key.container,
                r.group,
                r.endpoint,
                r.count,
                r.model,
                r.length,
                r.since
            ],
        )?;
        Ok(())
    }

    /// Whether `account` holds a grant or waits in line. Every reconcile
    /// and view of every account asks: one indexed count, not a read of
    /// the whole lending state.
    pub fn gpu_involved(&self, account: &str) -> Result<bool> {
        let n: i64 = self.conn().query_row(
            "SELECT (SELECT COUNT(*) FROM gpu_grants WHERE account = ?1)
                  + (SELECT COUNT(*) FROM gpu_queue WHERE account = ?1)",
            [account],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Drops `account`'s requests and grants for containers not in
    /// `keep` (no longer declared, or no longer asking for GPUs); the
    /// grants dropped are returned (their containers are gone or going).
    pub fn gpu_release_others(
        &self,
        account: &str,
        keep: &[GpuKey],
        now: i64,
    ) -> Result<Vec<Grant>> {
        if !self.gpu_involved(account)? {
            return Ok(vec![]);
        }
        let state = self.lending(now)?;
        let gone: Vec<Grant> = state
            .grants
            .into_iter()
            .filter(|g| g.key.account == account && !keep.contains(&g.key))
            .collect();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for g in &gone {
            end_grant(&tx, g, now)?;
        }
        for r in state
            .queue
            .iter()
            .filter(|r| r.key.account == account && !keep.contains(&r.key))
        {
            tx.execute(
                "DELETE FROM gpu_queue WHERE account = ?1 AND container = ?2",
                params![r.key.account, r.key.container],
            )?;
        }
        tx.commit()?;
        Ok(gone)
    }

    /// Writes what a lending tick decided, all or nothing. `End` changes
    /// are written by [`Store::gpu_end`] once the container is stopped.
    pub fn apply_lending(&self, now: i64, changes: &[Change]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for c in changes {
            match c {
                Change::End { .. } => {}
                Change::Shorten { key, end, .. } => {
                    tx.execute(
                        "UPDATE gpu_grants SET end_at = ?3 WHERE account = ?1 AND container = ?2",
                        params![key.account, key.container, end],
                    )?;
                }
                Change::Warn { key, end, .. } => {
                    tx.execute(
                        "UPDATE gpu_grants SET told_end = ?3 WHERE account = ?1 AND container = ?2",
                        params![key.account, key.container, end],
                    )?;
                }
                Change::Start(g) => {
                    tx.execute(
                        "DELETE FROM gpu_queue WHERE account = ?1 AND container = ?2",
                        params![g.key.account, g.key.container],
                    )?;
                    tx.execute(
                        "INSERT OR REPLACE INTO gpu_grants
                             (account, container, grp, endpoint, cards, start, end_at, told_end)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
                        params![
                            g.key.account,
                            g.key.container,
                            g.group,
                            g.endpoint,
                            g.cards.join(","),
                            g.start,
                            g.end
                        ],
                    )?;
                }
            }
        }
        tx.execute(
            "DELETE FROM gpu_lent WHERE end_at < ?1",
            [now - LENT_KEPT_MS],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Ends `key`'s grant at `now` (its container is stopped): the cards
    /// go back and the card-hours are recorded.
    pub fn gpu_end(&self, key: &GpuKey, now: i64) -> Result<Option<Grant>> {
        let state = self.lending(now)?;
        let Some(g) = state.grants.into_iter().find(|g| &g.key == key) else {
            return Ok(None);
        };
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        end_grant(&tx, &g, now)?;
        tx.commit()?;
        Ok(Some(g))
    }

    /// Sets a grant's end (an extension).
    pub fn gpu_set_end(&self, key: &GpuKey, end: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE gpu_grants SET end_at = ?3, told_end = NULL WHERE account = ?1 AND container = ?2",
            params![key.account, key.container, end],
        )?;
        Ok(())
    }

    /// Stores a booking; its id.
    pub fn gpu_book(&self, b: &Booking, by: &str) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO gpu_bookings (grp, endpoint, cards, start, end_at, booked_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![b.group, b.endpoint, b.cards.join(","), b.start, b.end, by],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Cancels a booking; whether there was one.
    pub fn gpu_unbook(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM gpu_bookings WHERE id = ?1", [id])?
            > 0)
    }
}

fn end_grant(tx: &rusqlite::Transaction<'_>, g: &Grant, now: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM gpu_grants WHERE account = ?1 AND container = ?2",
        params![g.key.account, g.key.container],
    )?;
    tx.execute(
        "INSERT INTO gpu_lent (account, grp, start, end_at, cards) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            g.key.account,
            g.group,
            g.start,
            now.min(g.end).max(g.start),
            g.cards.len() as i64
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: &str) -> GpuKey {
        GpuKey {
            account: a.into(),
            container: "train".into(),
        }
    }

    fn request(a: &str, since: i64) -> Request {
        Request {
            key: key(a),
            group: "ml".into(),
            endpoint: "gpu1".into(),
            count: 1,
            model: None,
            length: 3_600_000,
            since,
        }
    }

    #[test]
    fn a_tick_is_stored_whole_and_a_restart_reads_the_same_state() {
        let dir = std::env::temp_dir().join(format!("berth-lending-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp");
        let store = Store::open(&dir).expect("store");
        store.gpu_enqueue(&request("alice", 10)).expect("enqueue");
        store.gpu_enqueue(&request("bob", 20)).expect("enqueue");
        // Enqueued again: keeps its place.
        store.gpu_enqueue(&request("alice", 99)).expect("enqueue");
        let grant = Grant {
            key: key("alice"),
            group: "ml".into(),
            endpoint: "gpu1".into(),
            cards: vec!["0".into()],
            start: 100,
            end: 3_600_100,
            told_end: None,
        };
        store
            .apply_lending(100, &[Change::Start(grant.clone())])
            .expect("apply");
        drop(store);
        let store = Store::open(&dir).expect("reopened");
        let state = store.lending(200).expect("state");
        assert_eq!(state.grants, [grant]);
        assert_eq!(state.queue.len(), 1);
        assert_eq!(state.queue[0].key, key("bob"));
        // A granted container is not queued again.
        store.gpu_enqueue(&request("alice", 300)).expect("enqueue");
        assert_eq!(store.lending(300).expect("state").queue.len(), 1);
        // Ending records the card-hours for fair share.
        store.gpu_end(&key("alice"), 1_800_100).expect("end");
        let shares = store.gpu_shares(1_800_100).expect("shares");
        assert!((shares.group["ml"] - 0.5).abs() < 1e-9, "{shares:?}");
        assert!(store.lending(1_800_100).expect("state").grants.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
