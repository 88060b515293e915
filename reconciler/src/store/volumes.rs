//! The accounts' Docker volumes as last measured: size per host and
//! volume, when the volume was first measured, and when a running
//! container last mounted it. Replaced per host by each measurement; read
//! by the storage quota, the console's Volumes page and `reconciler
//! volumes`.

use super::{Result, Store};
use rusqlite::params;

/// One volume as a measurement found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasuredVolume {
    pub volume: String,
    pub account: String,
    /// `None` when the host did not say (Docker reports -1 for volumes it
    /// does not walk).
    pub bytes: Option<u64>,
    /// A running container mounts it.
    pub in_use: bool,
}

/// A volume as Berth last knew it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VolumeUsage {
    pub endpoint: String,
    pub volume: String,
    pub account: String,
    pub bytes: Option<u64>,
    pub measured_at: i64,
    /// The first measurement that found it.
    pub first_seen: i64,
    /// The last measurement that found a running container mounting it.
    pub last_used: Option<i64>,
}

impl Store {
    /// Replaces what is known of `endpoint`'s volumes with one
    /// measurement taken at `at`: volumes gone are forgotten; a volume's
    /// first sighting and last use carry over.
    pub fn record_volumes(&self, endpoint: &str, at: i64, found: &[MeasuredVolume]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS measured (volume TEXT PRIMARY KEY)",
            [],
        )?;
        tx.execute("DELETE FROM temp.measured", [])?;
        for v in found {
            tx.execute(
                "INSERT OR IGNORE INTO temp.measured (volume) VALUES (?1)",
                [&v.volume],
            )?;
            let bytes = v.bytes.and_then(|b| i64::try_from(b).ok());
            let used = v.in_use.then_some(at);
            tx.execute(
                "INSERT INTO volume_usage
                     (endpoint, volume, account, bytes, measured_at, first_seen, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
                 ON CONFLICT (endpoint, volume) DO UPDATE SET
                     account = ?3, bytes = ?4, measured_at = ?5,
                     last_used = COALESCE(?6, last_used)",
                params![endpoint, v.volume, v.account, bytes, at, used],
            )?;
        }
        tx.execute(
            "DELETE FROM volume_usage WHERE endpoint = ?1
             AND volume NOT IN (SELECT volume FROM temp.measured)",
            [endpoint],
        )?;
        tx.execute("DELETE FROM temp.measured", [])?;
        // Each account's volumes over time: its total, last measured that
        // day (kept as long as the daily usage rows).
        let day = at - at.rem_euclid(86_400);
        tx.execute(
            "INSERT INTO storage_daily (account, at, bytes)
             SELECT account, ?1, SUM(COALESCE(bytes, 0)) FROM volume_usage GROUP BY account
             ON CONFLICT (account, at) DO UPDATE SET bytes = excluded.bytes",
            [day],
        )?;
        tx.execute(
            "DELETE FROM storage_daily WHERE at < ?1",
            [at - super::DAILY_KEPT],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Each account's bytes in the registry (its namespace's images, by
    /// their compressed sizes) as of `at`, for the day's storage row.
    pub fn record_registry_bytes(&self, at: i64, owners: &[(String, u64)]) -> Result<()> {
        let day = at - at.rem_euclid(86_400);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (owner, bytes) in owners {
            tx.execute(
                "INSERT INTO storage_daily (account, at, bytes, registry_bytes) VALUES (?1, ?2, 0, ?3)
                 ON CONFLICT (account, at) DO UPDATE SET registry_bytes = excluded.registry_bytes",
                params![owner, day, i64::try_from(*bytes).unwrap_or(i64::MAX)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Each account's volume and registry bytes per day (Unix seconds of
    /// its start), `from <= day < to`.
    pub fn storage_by_day(&self, from: i64, to: i64) -> Result<Vec<(String, i64, u64, u64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, at, bytes, registry_bytes FROM storage_daily
             WHERE at >= ?1 AND at < ?2 ORDER BY at, account",
        )?;
        let rows = stmt.query_map([from, to], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, i64>(2)?.max(0) as u64,
                r.get::<_, i64>(3)?.max(0) as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The volumes of `account` (every account's with `None`), by account,
    /// volume and host.
    pub fn volume_usage(&self, account: Option<&str>) -> Result<Vec<VolumeUsage>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT endpoint, volume, account, bytes, measured_at, first_seen, last_used
             FROM volume_usage WHERE ?1 IS NULL OR account = ?1
             ORDER BY account, volume, endpoint",
        )?;
        let rows = stmt.query_map([account], |r| {
            Ok(VolumeUsage {
                endpoint: r.get(0)?,
                volume: r.get(1)?,
                account: r.get(2)?,
                bytes: r.get::<_, Option<i64>>(3)?.map(|b| b.max(0) as u64),
                measured_at: r.get(4)?,
                first_seen: r.get(5)?,
                last_used: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What `account`'s volumes held (bytes, summed over hosts) and when
    /// the oldest of those measurements was taken; `None` when none of
    /// its volumes was ever measured.
    pub fn storage_used(&self, account: &str) -> Result<Option<(u64, i64)>> {
        let rows = self.volume_usage(Some(account))?;
        let oldest = rows.iter().map(|r| r.measured_at).min();
        Ok(oldest.map(|at| (rows.iter().filter_map(|r| r.bytes).sum(), at)))
    }

    /// Forgets a volume that was deleted.
    pub fn forget_volume(&self, endpoint: &str, volume: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM volume_usage WHERE endpoint = ?1 AND volume = ?2",
            [endpoint, volume],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(volume: &str, bytes: Option<u64>, in_use: bool) -> MeasuredVolume {
        MeasuredVolume {
            volume: volume.into(),
            account: "alice".into(),
            bytes,
            in_use,
        }
    }

    #[test]
    fn a_measurement_replaces_the_hosts_volumes_and_keeps_their_history() {
        let s = Store::in_memory().expect("store");
        let data = "berth-alice--data";
        let scratch = "berth-alice--scratch";
        s.record_volumes(
            "h1",
            100,
            &[
                measured(data, Some(10), true),
                measured(scratch, None, false),
            ],
        )
        .expect("first");
        s.record_volumes("h2", 150, &[measured(data, Some(5), false)])
            .expect("other host");
        assert_eq!(s.storage_used("alice").expect("used"), Some((15, 100)));
        // Later: data no longer in use, scratch gone from h1.
        s.record_volumes("h1", 200, &[measured(data, Some(30), false)])
            .expect("second");
        let rows = s.volume_usage(Some("alice")).expect("rows");
        let h1 = rows.iter().find(|r| r.endpoint == "h1").expect("h1");
        assert_eq!(
            (h1.bytes, h1.measured_at, h1.first_seen, h1.last_used),
            (Some(30), 200, 100, Some(100)),
            "the last use and first sighting carry over"
        );
        assert!(!rows.iter().any(|r| r.volume == scratch), "{rows:?}");
        assert_eq!(s.storage_used("alice").expect("used"), Some((35, 150)));
        assert_eq!(s.storage_used("bob").expect("bob"), None);
        assert_eq!(
            s.storage_by_day(0, 86_400).expect("by day"),
            vec![("alice".to_string(), 0, 30 + 5, 0)],
            "the account's total as last measured that day"
        );
        s.record_registry_bytes(100, &[("alice".to_string(), 7)])
            .expect("registry");
        assert_eq!(
            s.storage_by_day(0, 86_400).expect("by day"),
            vec![("alice".to_string(), 0, 35, 7)]
        );
        s.forget_volume("h2", data).expect("forget");
        assert_eq!(s.storage_used("alice").expect("used"), Some((30, 200)));
    }
}
