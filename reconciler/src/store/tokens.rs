//! Credentials of people: personal registry tokens (what `docker login`
//! accepts instead of the department password) and console sessions that
//! survive a restart. Only hashes are kept, so the store leaking never
//! leaks a usable credential.

use super::{Result, Store, now};
use rusqlite::{OptionalExtension, params};

/// A personal token as its owner sees it (never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonalToken {
    pub account: String,
    pub name: String,
    pub created: i64,
    pub last_used: Option<i64>,
    /// Unix time it stops working; `None` for a token made before tokens
    /// expired (it lasts the site's default lifetime from `created`).
    pub expires: Option<i64>,
}

/// What a personal token is bound to, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOwner {
    pub account: String,
    /// The directory entry (`Account::entry`) it was made for; empty for
    /// a token made before tokens were bound.
    pub entry: String,
    pub created: i64,
    pub expires: Option<i64>,
}

/// A console session as the store keeps it (under the hash of its id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub account: String,
    pub admin: bool,
    pub csrf: String,
    pub created: i64,
    pub seen: i64,
}

impl Store {
    /// Records a token by its hash; `false` when the account already has
    /// one of that name.
    pub fn add_registry_token(
        &self,
        account: &str,
        entry: &str,
        name: &str,
        hash: &str,
        expires: i64,
    ) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO registry_tokens (account, entry, name, hash, created, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![account, entry, name, hash, now(), expires],
        )?;
        Ok(n == 1)
    }

    /// Whom the token with this hash belongs to, noting the use.
    pub fn use_registry_token(&self, hash: &str) -> Result<Option<TokenOwner>> {
        let conn = self.conn();
        let account: Option<TokenOwner> = conn
            .query_row(
                "SELECT account, entry, created, expires FROM registry_tokens WHERE hash = ?1",
                [hash],
                |r| {
                    Ok(TokenOwner {
                        account: r.get(0)?,
                        entry: r.get(1)?,
                        created: r.get(2)?,
                        expires: r.get(3)?,
                    })
                },
            )
            .optional()?;
        if account.is_some() {
            conn.execute(
                "UPDATE registry_tokens SET last_used = ?2 WHERE hash = ?1",
                params![hash, now()],
            )?;
        }
        Ok(account)
    }

    pub fn registry_tokens(&self, account: &str) -> Result<Vec<PersonalToken>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, name, created, last_used, expires FROM registry_tokens WHERE account = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([account], |r| {
            Ok(PersonalToken {
                account: r.get(0)?,
                name: r.get(1)?,
                created: r.get(2)?,
                last_used: r.get(3)?,
                expires: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token; `false` when there was none of that name.
    pub fn revoke_registry_token(&self, account: &str, name: &str) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM registry_tokens WHERE account = ?1 AND name = ?2",
            params![account, name],
        )?;
        Ok(n == 1)
    }
}

impl Store {
    pub fn put_session(&self, key: &str, s: &Session) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO console_sessions (key, account, admin, csrf, created, seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![key, s.account, s.admin, s.csrf, s.created, s.seen],
        )?;
        Ok(())
    }

    pub fn session(&self, key: &str) -> Result<Option<Session>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT account, admin, csrf, created, seen FROM console_sessions WHERE key = ?1",
                [key],
                |r| {
                    Ok(Session {
                        account: r.get(0)?,
                        admin: r.get(1)?,
                        csrf: r.get(2)?,
                        created: r.get(3)?,
                        seen: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn touch_session(&self, key: &str, at: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE console_sessions SET seen = ?2 WHERE key = ?1",
            params![key, at],
        )?;
        Ok(())
    }

    pub fn drop_session(&self, key: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM console_sessions WHERE key = ?1", [key])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_by_hash_until_revoked_and_names_are_per_account() {
        let store = Store::in_memory().expect("store");
        assert!(
            store
                .add_registry_token("alice", "e-a", "laptop", "h1", i64::MAX)
                .expect("add")
        );
        assert!(
            !store
                .add_registry_token("alice", "e-a", "laptop", "h2", i64::MAX)
                .expect("dup")
        );
        assert!(
            store
                .add_registry_token("bob", "e-b", "laptop", "h3", i64::MAX)
                .expect("add")
        );
        assert_eq!(
            store
                .use_registry_token("h1")
                .expect("use")
                .map(|o| (o.account, o.entry)),
            Some(("alice".into(), "e-a".into()))
        );
        let listed = store.registry_tokens("alice").expect("list");
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used.is_some());
        assert!(store.revoke_registry_token("alice", "laptop").expect("rm"));
        assert_eq!(store.use_registry_token("h1").expect("use"), None);
        let bob = store.use_registry_token("h3").expect("use").expect("bob's");
        assert_eq!((bob.account.as_str(), bob.entry.as_str()), ("bob", "e-b"));
        assert_eq!(bob.expires, Some(i64::MAX));
    }
}
