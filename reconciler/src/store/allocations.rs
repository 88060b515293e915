//! Where accounts run and what they hold there: the endpoint of each
//! account, host ports and GPU device ids, replaced per account in one
//! transaction.

use super::{GpuKey, PortKey, Result, Store};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

impl Store {
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

    /// GPU device ids of every container on `endpoint`.
    pub fn gpus(&self, endpoint: &str) -> Result<BTreeMap<GpuKey, Vec<String>>> {
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
                devices
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect(),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes `account`'s GPU assignments exactly `wanted` (on `endpoint`).
    pub fn set_account_gpus(
        &self,
        endpoint: &str,
        account: &str,
        wanted: &BTreeMap<GpuKey, Vec<String>>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM gpus WHERE account = ?1", [account])?;
        for (key, devices) in wanted {
            tx.execute(
                "INSERT INTO gpus (endpoint, account, container, devices) VALUES (?1, ?2, ?3, ?4)",
                params![endpoint, key.account, key.container, devices.join(",")],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl Store {
    /// Accounts placed on `endpoint`.
    pub fn accounts_on(&self, endpoint: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT account FROM placements WHERE endpoint = ?1 ORDER BY account")?;
        let rows = stmt.query_map([endpoint], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drops `account`'s host ports and GPUs on `endpoint` (it moves away).
    pub fn release_endpoint(&self, account: &str, endpoint: &str) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM ports WHERE account = ?1 AND endpoint = ?2",
            params![account, endpoint],
        )?;
        conn.execute(
            "DELETE FROM gpus WHERE account = ?1 AND endpoint = ?2",
            params![account, endpoint],
        )?;
        Ok(())
    }

    /// Records how far the move of `account` from `source` has got.
    pub fn set_drain(&self, account: &str, source: &str, target: &str, stage: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO drains (account, source, target, stage, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![account, source, target, stage, super::now()],
        )?;
        Ok(())
    }

    /// Unfinished moves away from `source`: account → (target, stage).
    pub fn drains(&self, source: &str) -> Result<BTreeMap<String, (String, String)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT account, target, stage FROM drains WHERE source = ?1")?;
        let rows = stmt.query_map([source], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn finish_drain(&self, account: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM drains WHERE account = ?1", [account])?;
        Ok(())
    }

    /// Something the student should know until their next accepted
    /// revision (a move to another host changed their ports).
    pub fn set_notice(&self, account: &str, message: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO notices (account, message, at) VALUES (?1, ?2, ?3)",
            params![account, message, super::now()],
        )?;
        Ok(())
    }

    pub fn notice(&self, account: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT message FROM notices WHERE account = ?1",
                [account],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn clear_notice(&self, account: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM notices WHERE account = ?1", [account])?;
        Ok(())
    }
}
