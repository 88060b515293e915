//! Usage accounting's state: the sampler's cursor of every running
//! container and the time of each host's last round (so a restart of
//! Berth neither loses nor repeats an interval), and the amounts used and
//! reserved per account by hour (kept 35 days) and by day (kept 13
//! months). A round's amounts, cursors and time are written in one
//! transaction: a crash keeps all of a round or none of it.

use super::{Result, Store};
use berth_core::usage::{Amounts, Cursor, Reserved, Round};
use rusqlite::params;
use std::collections::BTreeMap;

/// How long hourly rows are kept, seconds.
pub const HOURLY_KEPT: i64 = 35 * 86_400;
/// How long daily rows are kept, seconds (13 months).
pub const DAILY_KEPT: i64 = 396 * 86_400;

/// Which rollup to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollup {
    Hourly,
    Daily,
}

impl Rollup {
    fn table(self) -> &'static str {
        match self {
            Rollup::Hourly => "usage_hourly",
            Rollup::Daily => "usage_daily",
        }
    }
}

impl Store {
    /// The host's last round (Unix ms) and the cursors it left.
    pub fn usage_cursors(&self, endpoint: &str) -> Result<(Option<i64>, Vec<Cursor>)> {
        let conn = self.conn();
        let last = conn
            .query_row(
                "SELECT at FROM usage_rounds WHERE endpoint = ?1",
                [endpoint],
                |r| r.get(0),
            )
            .ok();
        let mut stmt = conn.prepare(
            "SELECT container, account, name, started_at, cpu_ns, sampled_at, cpus, memory, gpus
             FROM usage_cursors WHERE endpoint = ?1",
        )?;
        let rows = stmt.query_map([endpoint], |r| {
            Ok(Cursor {
                id: r.get(0)?,
                account: r.get(1)?,
                name: r.get(2)?,
                started_at: r.get(3)?,
                cpu_ns: r.get::<_, i64>(4)?.max(0) as u64,
                sampled_at: r.get(5)?,
                reserved: Reserved {
                    cpus: r.get(6)?,
                    memory: r.get::<_, i64>(7)?.max(0) as u64,
                    gpus: r.get(8)?,
                },
            })
        })?;
        Ok((last, rows.collect::<Result<_, _>>()?))
    }

    /// Writes one round of `endpoint` taken at `at` (Unix ms): adds its
    /// amounts to the hourly and daily rows, replaces the host's cursors,
    /// and drops rows past their keeping.
    pub fn record_usage_round(&self, endpoint: &str, at: i64, round: &Round) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for ((account, hour), a) in &round.increments {
            let day = hour - hour.rem_euclid(86_400);
            for (table, key) in [("usage_hourly", *hour), ("usage_daily", day)] {
                tx.execute(
                    &format!(
                        "INSERT INTO {table}
                             (account, at, cpu_used, cpu_reserved, memory_reserved, memory_used, gpu_reserved)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (account, at) DO UPDATE SET
                             cpu_used = cpu_used + ?3, cpu_reserved = cpu_reserved + ?4,
                             memory_reserved = memory_reserved + ?5,
                             memory_used = memory_used + ?6, gpu_reserved = gpu_reserved + ?7"
                    ),
                    params![
                        account,
                        key,
                        a.cpu_used,
                        a.cpu_reserved,
                        a.memory_reserved,
                        a.memory_used,
                        a.gpu_reserved
                    ],
                )?;
            }
        }
        tx.execute("DELETE FROM usage_cursors WHERE endpoint = ?1", [endpoint])?;
        for c in &round.cursors {
            tx.execute(
                "INSERT INTO usage_cursors
                     (endpoint, container, account, name, started_at, cpu_ns, sampled_at, cpus, memory, gpus)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    endpoint,
                    c.id,
                    c.account,
                    c.name,
                    c.started_at,
                    i64::try_from(c.cpu_ns).unwrap_or(i64::MAX),
                    c.sampled_at,
                    c.reserved.cpus,
                    i64::try_from(c.reserved.memory).unwrap_or(i64::MAX),
                    c.reserved.gpus
                ],
            )?;
        }
        tx.execute(
            "INSERT INTO usage_rounds (endpoint, at) VALUES (?1, ?2)
             ON CONFLICT (endpoint) DO UPDATE SET at = ?2",
            params![endpoint, at],
        )?;
        let now = at / 1000;
        tx.execute(
            "DELETE FROM usage_hourly WHERE at < ?1",
            [now - HOURLY_KEPT],
        )?;
        tx.execute("DELETE FROM usage_daily WHERE at < ?1", [now - DAILY_KEPT])?;
        tx.commit()?;
        Ok(())
    }

    /// Counts one image build of `account` that finished at `at` (Unix
    /// seconds) after `seconds`.
    pub fn add_build_usage(&self, account: &str, at: i64, seconds: f64) -> Result<()> {
        let hour = at - at.rem_euclid(3600);
        let day = at - at.rem_euclid(86_400);
        let conn = self.conn();
        for (table, key) in [("usage_hourly", hour), ("usage_daily", day)] {
            conn.execute(
                &format!(
                    "INSERT INTO {table}
                         (account, at, cpu_used, cpu_reserved, memory_reserved, memory_used,
                          gpu_reserved, builds, build_seconds)
                     VALUES (?1, ?2, 0, 0, 0, 0, 0, 1, ?3)
                     ON CONFLICT (account, at) DO UPDATE SET
                         builds = builds + 1, build_seconds = build_seconds + ?3"
                ),
                params![account, key, seconds],
            )?;
        }
        Ok(())
    }

    /// Replaces what the budgeted groups spent: (group, period start, CPU
    /// and GPU seconds reserved), as of `at`.
    pub fn set_budget_use(&self, spent: &[(String, i64, f64, f64)], at: i64) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM budget_use", [])?;
        for (group, start, cpu, gpu) in spent {
            tx.execute(
                "INSERT INTO budget_use (grp, period_start, cpu_seconds, gpu_seconds, at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![group, start, cpu, gpu, at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// What `group` spent in the period starting at `period_start`: CPU
    /// and GPU seconds reserved (nothing known: zero).
    pub fn budget_use(&self, group: &str, period_start: i64) -> Result<(f64, f64)> {
        Ok(self
            .conn()
            .query_row(
                "SELECT cpu_seconds, gpu_seconds FROM budget_use WHERE grp = ?1 AND period_start = ?2",
                params![group, period_start],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or((0.0, 0.0)))
    }

    /// Amounts per account and period start (Unix seconds) with
    /// `from <= start < to`, from the hourly or daily rows.
    pub fn usage_rows(
        &self,
        rollup: Rollup,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<(String, i64), Amounts>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT account, at, cpu_used, cpu_reserved, memory_reserved, memory_used, gpu_reserved,
                    builds, build_seconds
             FROM {} WHERE at >= ?1 AND at < ?2",
            rollup.table()
        ))?;
        let rows = stmt.query_map([from, to], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, i64>(1)?),
                Amounts {
                    cpu_used: r.get(2)?,
                    cpu_reserved: r.get(3)?,
                    memory_reserved: r.get(4)?,
                    memory_used: r.get(5)?,
                    gpu_reserved: r.get(6)?,
                    builds: r.get::<_, i64>(7)? as f64,
                    build_seconds: r.get(8)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(account: &str, hour: i64, cpu: f64, cursors: Vec<Cursor>) -> Round {
        Round {
            increments: BTreeMap::from([(
                (account.to_string(), hour),
                Amounts {
                    cpu_used: cpu,
                    cpu_reserved: 2.0 * cpu,
                    ..Amounts::default()
                },
            )]),
            cursors,
        }
    }

    #[test]
    fn rounds_add_up_by_hour_and_day_and_keep_their_cursors() {
        let s = Store::in_memory().expect("store");
        let day = 1_800_000_000 - 1_800_000_000 % 86_400;
        let cursor = Cursor {
            id: "c1".into(),
            account: "alice".into(),
            name: "web".into(),
            started_at: day * 1000,
            cpu_ns: 5,
            sampled_at: day * 1000 + 60_000,
            reserved: Reserved {
                cpus: 0.5,
                memory: 1 << 20,
                gpus: 1,
            },
        };
        s.record_usage_round(
            "h1",
            day * 1000 + 60_000,
            &round("alice", day, 1.5, vec![cursor.clone()]),
        )
        .expect("first");
        s.record_usage_round(
            "h1",
            day * 1000 + 3_700_000,
            &round("alice", day + 3600, 2.0, vec![]),
        )
        .expect("second");
        let (last, cursors) = s.usage_cursors("h1").expect("cursors");
        assert_eq!(last, Some(day * 1000 + 3_700_000));
        assert!(cursors.is_empty(), "replaced by the second round");
        let hourly = s
            .usage_rows(Rollup::Hourly, day, day + 86_400)
            .expect("hourly");
        assert_eq!(hourly.len(), 2);
        let daily = s
            .usage_rows(Rollup::Daily, day, day + 86_400)
            .expect("daily");
        let a = daily.get(&("alice".to_string(), day)).expect("alice's day");
        assert_eq!((a.cpu_used, a.cpu_reserved), (3.5, 7.0));
        s.record_usage_round(
            "h2",
            day * 1000,
            &round("bob", day, 0.0, vec![cursor.clone()]),
        )
        .expect("other host");
        assert_eq!(s.usage_cursors("h2").expect("h2").1, vec![cursor]);
        assert_eq!(s.usage_cursors("h3").expect("h3"), (None, vec![]));
        s.add_build_usage("alice", day + 10, 42.5).expect("build");
        s.add_build_usage("alice", day + 20, 7.5).expect("build");
        let daily = s
            .usage_rows(Rollup::Daily, day, day + 86_400)
            .expect("daily");
        let a = daily.get(&("alice".to_string(), day)).expect("alice's day");
        assert_eq!((a.builds, a.build_seconds, a.cpu_used), (2.0, 50.0, 3.5));
    }
}
