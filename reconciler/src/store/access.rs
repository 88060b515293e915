//! Access students granted to their containers (see `berth_core::access`):
//! replaced with each accepted revision, read by the console at every
//! request of a grantee.

use super::{Result, Store};
use berth_core::access::{Grant, Grantee};
use berth_spec::Allow;
use rusqlite::params;

fn allow_text(allow: &std::collections::BTreeSet<Allow>) -> String {
    allow
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn allow_of(text: &str) -> std::collections::BTreeSet<Allow> {
    text.split(',')
        .filter_map(|a| match a {
            "logs" => Some(Allow::Logs),
            "terminal" => Some(Allow::Terminal),
            "files" => Some(Allow::Files),
            _ => None,
        })
        .collect()
}

impl Store {
    /// The accepted revision's grants of `owner`, replacing the earlier
    /// ones (an entry removed ends its access).
    pub fn set_grants(&self, owner: &str, grants: &[Grant]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM access_grants WHERE owner = ?1", [owner])?;
        for g in grants {
            let (kind, grantee) = match &g.grantee {
                Grantee::Account(a) => ("account", a),
                Grantee::Group(grp) => ("group", grp),
            };
            tx.execute(
                "INSERT INTO access_grants (owner, container, kind, grantee, allow, until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    owner,
                    g.container,
                    kind,
                    grantee,
                    allow_text(&g.allow),
                    g.until
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Grants to `account` or to any of `groups` that have not ended at
    /// `now` (Unix seconds).
    pub fn grants_to(&self, account: &str, groups: &[String], now: i64) -> Result<Vec<Grant>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT owner, container, kind, grantee, allow, until FROM access_grants
             WHERE until > ?1 ORDER BY owner, container",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (owner, container, kind, grantee, allow, until) = row?;
            let grantee = match kind.as_str() {
                "account" if grantee == account => Grantee::Account(grantee),
                "group" if groups.contains(&grantee) => Grantee::Group(grantee),
                _ => continue,
            };
            out.push(Grant {
                owner,
                container,
                grantee,
                allow: allow_of(&allow),
                until,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_replaced_by_the_next_revision_and_read_by_grantee() {
        let s = Store::in_memory().expect("store");
        let g = |grantee: Grantee, until: i64| Grant {
            owner: "alice".into(),
            container: "alice--box".into(),
            grantee,
            allow: [Allow::Terminal, Allow::Logs].into_iter().collect(),
            until,
        };
        s.set_grants(
            "alice",
            &[
                g(Grantee::Account("bob".into()), 100),
                g(Grantee::Group("tas".into()), 50),
            ],
        )
        .expect("set");
        assert_eq!(s.grants_to("bob", &[], 10).expect("read").len(), 1);
        assert_eq!(
            s.grants_to("carol", &["tas".into()], 10)
                .expect("read")
                .len(),
            1
        );
        assert_eq!(
            s.grants_to("carol", &["tas".into()], 50)
                .expect("read")
                .len(),
            0,
            "ended"
        );
        assert_eq!(s.grants_to("carol", &[], 10).expect("read").len(), 0);
        let read = s.grants_to("bob", &[], 10).expect("read");
        assert_eq!(read, vec![g(Grantee::Account("bob".into()), 100)]);
        s.set_grants("alice", &[]).expect("removed");
        assert!(s.grants_to("bob", &[], 10).expect("read").is_empty());
    }
}
