//! Images: what each account shares, the digests each accepted revision
//! is pinned to, images Berth pulled onto each host (for `gc`), and digests
//! the site's scanner passed.

use super::{Result, Store, now};
use rusqlite::{OptionalExtension, params};
use std::collections::BTreeMap;

/// A repository an account shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub owner: String,
    /// `registry/owner/name` (see `berth_spec::policy::share_key`).
    pub repository: String,
    pub description: String,
}

/// An image reference of an accepted revision and the digest it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub account: String,
    /// The pin key (`registry/owner/name:tag` or `…@digest`).
    pub image: String,
    pub digest: String,
}

/// An image Berth pulled onto a host, and when a container last used it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    pub image: String,
    pub last_used: i64,
}

impl Store {
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

    /// Every share, by repository.
    pub fn shares(&self) -> Result<Vec<Share>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT owner, image, description FROM shares ORDER BY image")?;
        let rows = stmt.query_map([], |r| {
            Ok(Share {
                owner: r.get(0)?,
                repository: r.get(1)?,
                description: r.get(2)?,
            })
        })?;
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

    /// The pins of every account's accepted revision.
    pub fn all_pins(&self) -> Result<Vec<Pin>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT p.account, p.image, p.digest FROM pins p JOIN accepted a
             ON a.account = p.account AND a.revision = p.revision",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Pin {
                account: r.get(0)?,
                image: r.get(1)?,
                digest: r.get(2)?,
            })
        })?;
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
    pub fn pulled_images(&self, endpoint: &str) -> Result<Vec<Pulled>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT image, last_used FROM images WHERE endpoint = ?1 ORDER BY image")?;
        let rows = stmt.query_map([endpoint], |r| {
            Ok(Pulled {
                image: r.get(0)?,
                last_used: r.get(1)?,
            })
        })?;
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
}
