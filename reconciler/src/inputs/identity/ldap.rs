//! The directory over LDAP: one shared connection bound as Berth (made
//! again when it goes stale), escaped filters, and a bind as the user on a
//! connection of its own to check a password.

use super::{Entries, IdentityError, Result, user_filter, values};
use berth_core::account::Account;
use berth_core::dn::group_name;
use berth_spec::site::{GroupLookup, Ldap as LdapConfig};
use futures::future::BoxFuture;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct LdapEntries {
    pub(super) config: LdapConfig,
    pub(super) password: Option<String>,
    pub(super) conn: tokio::sync::Mutex<Option<Ldap>>,
}

impl Entries for LdapEntries {
    fn find<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Account>>> {
        Box::pin(async move {
            // One retry on a fresh connection: the shared one may have gone stale.
            match self.lookup_uncached(name).await {
                Ok(found) => Ok(found),
                Err(_) => {
                    *self.conn.lock().await = None;
                    self.lookup_uncached(name).await
                }
            }
        })
    }

    fn bind<'a>(&'a self, dn: &'a str, password: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.check_password(dn, password))
    }
}

impl LdapEntries {
    /// Whether `password` is the password of the entry `dn`: a simple bind
    /// as the user on a connection of its own (the shared one stays bound
    /// as Berth). An empty password is never sent: LDAP would take it as an
    /// anonymous bind and answer success.
    async fn check_password(&self, dn: &str, password: &str) -> Result<bool> {
        let mut ldap = self.connect().await?;
        let result = ldap
            .simple_bind(dn, password)
            .await
            .map_err(|e| self.unreachable(e))?;
        let _ = ldap.unbind().await;
        // 49: invalidCredentials; 53 (unwillingToPerform) is what a locked
        // or disabled entry gets.
        match result.rc {
            0 => Ok(true),
            49 | 50 | 53 => Ok(false),
            _ => Err(IdentityError::Search(Box::new(ldap3::LdapError::from(
                result,
            )))),
        }
    }

    fn unreachable(&self, source: ldap3::LdapError) -> IdentityError {
        IdentityError::Unreachable {
            url: self.config.url.value.clone(),
            setting: self.config.url.setting("ldap.url"),
            source: Box::new(source),
        }
    }

    /// A new connection to the directory, not yet bound.
    async fn connect(&self) -> Result<Ldap> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(TIMEOUT)
            .set_starttls(self.config.starttls);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| self.unreachable(e))?;
        ldap3::drive!(conn);
        ldap.with_timeout(TIMEOUT);
        Ok(ldap)
    }

    async fn handle(&self) -> Result<Ldap> {
        let mut guard = self.conn.lock().await;
        if let Some(ldap) = guard.as_ref() {
            return Ok(ldap.clone());
        }
        let mut ldap = self.connect().await?;
        if let Some(dn) = &self.config.bind_dn {
            let answer = ldap
                .simple_bind(dn, self.password.as_deref().unwrap_or(""))
                .await
                .map_err(|e| self.unreachable(e))?;
            answer
                .success()
                .map_err(|source| IdentityError::BindRefused {
                    url: self.config.url.value.clone(),
                    dn: dn.clone(),
                    password_env: self.config.bind_password_env.as_ref().map_or_else(
                        || "no variable (`ldap.bind_password_env` is not set)".into(),
                        |v| v.value.clone(),
                    ),
                    source: Box::new(source),
                })?;
        }
        *guard = Some(ldap.clone());
        Ok(ldap)
    }

    async fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<Vec<SearchEntry>> {
        let mut ldap = self.handle().await?;
        ldap.with_timeout(TIMEOUT);
        let (entries, _) = ldap
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .and_then(|r| r.success())
            .map_err(|e| IdentityError::Search(Box::new(e)))?;
        // ldap3 panics on BER it cannot parse; a hostile server must not crash us.
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(e)))
                    .ok()
            })
            .collect())
    }

    async fn lookup_uncached(&self, name: &str) -> Result<Option<Account>> {
        let filter = user_filter(&self.config.user_filter, name);
        // entryUUID is operational: returned only when asked for.
        let mut attrs = vec![
            self.config.mail_attribute.as_str(),
            "entryUUID",
            "uidNumber",
            "gidNumber",
        ];
        if let GroupLookup::MemberOf { attribute, .. } = &self.config.groups {
            attrs.push(attribute);
        }
        if let Some(attr) = self
            .config
            .disabled
            .as_ref()
            .and_then(|d| d.attribute.as_deref())
        {
            attrs.push(attr);
        }
        let mut entries = self.search(&self.config.base_dn, &filter, &attrs).await?;
        if entries.len() > 1 {
            return Err(IdentityError::Ambiguous(entries.len()));
        }
        let Some(entry) = entries.pop() else {
            return Ok(None);
        };
        let groups: Vec<String> = match &self.config.groups {
            GroupLookup::MemberOf { attribute, .. } => {
                let base = self.config.group_base_dn();
                values(&entry, attribute)
                    .iter()
                    .filter_map(|dn| group_name(dn, &base))
                    .collect()
            }
            GroupLookup::Search {
                base_dn,
                filter,
                name_attribute,
            } => {
                let filter = filter
                    .replace("{dn}", &ldap_escape(entry.dn.as_str()))
                    .replace("{account}", &ldap_escape(name));
                let found = self
                    .search(base_dn, &filter, &[name_attribute.as_str()])
                    .await?;
                // Only groups directly under the configured base count:
                // `cn=admins,ou=clubs,…` is not the admin group.
                found
                    .iter()
                    .filter(|g| group_name(&g.dn, base_dn).is_some())
                    .flat_map(|g| values(g, name_attribute))
                    .collect()
            }
        };
        let disabled = match &self.config.disabled {
            None => false,
            Some(d) => {
                let by_attr = d.attribute.as_ref().is_some_and(|a| {
                    let v = values(&entry, a);
                    match &d.value {
                        Some(want) => v.iter().any(|x| x.eq_ignore_ascii_case(want)),
                        None => !v.is_empty(),
                    }
                });
                let by_group = d.group.as_ref().is_some_and(|g| groups.contains(g));
                by_attr || by_group
            }
        };
        Ok(Some(Account {
            name: name.to_string(),
            entry: values(&entry, "entryUUID")
                .into_iter()
                .next()
                .unwrap_or_else(|| entry.dn.clone()),
            dn: entry.dn.clone(),
            mail: values(&entry, &self.config.mail_attribute)
                .into_iter()
                .next(),
            groups,
            disabled,
            posix: posix(&entry),
        }))
    }
}

/// `uidNumber` and `gidNumber`, both present and numeric, else none: a
/// half-described entry gets no home directory rather than a guessed id.
fn posix(entry: &SearchEntry) -> Option<berth_core::account::Posix> {
    let number = |attr: &str| values(entry, attr).first()?.trim().parse::<u32>().ok();
    Some(berth_core::account::Posix {
        uid: number("uidNumber")?,
        gid: number("gidNumber")?,
    })
}
