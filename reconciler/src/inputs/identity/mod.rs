//! Identity: who an account is according to the department's LDAP directory
//! (mail, groups, disabled), and the admission decision for a revision made
//! from that. Lookups use escaped filters, one shared connection that is
//! re-established on failure, and a short-TTL cache. An unreachable
//! directory is an error (callers wait and retry), never "unknown account".

use berth_spec::site::{GroupLookup, Ldap as LdapConfig, Site};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("LDAP {url} unreachable: {source}; is the directory up? check {setting}")]
    Unreachable {
        url: String,
        setting: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    #[error(
        "LDAP {url} refused Berth's bind as {dn}: {source}; check `ldap.bind_dn` and the password in {password_env}"
    )]
    BindRefused {
        url: String,
        dn: String,
        password_env: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    #[error("LDAP search failed: {0}")]
    Search(#[source] Box<ldap3::LdapError>),
    #[error(
        "LDAP bind password variable {0} is not set (`ldap.bind_password_env` in the site configuration)"
    )]
    MissingPassword(String),
    #[error("LDAP returned {0} entries for one account; the user filter must match one")]
    Ambiguous(usize),
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

pub use berth_core::account::Account;
pub use berth_core::admission::{Rejection, admit, pusher_allowed, pusher_bound, standing};
use berth_core::dn::group_name;
pub use berth_core::dn::{dn_eq, dn_parts};

/// The directory client with its cache.
pub struct Directory {
    config: LdapConfig,
    password: Option<String>,
    ttl: Duration,
    conn: tokio::sync::Mutex<Option<Ldap>>,
    cache: Mutex<HashMap<String, (Instant, Option<Account>)>>,
}

const TIMEOUT: Duration = Duration::from_secs(5);
/// How long "nobody by that name" is believed: a student added to the
/// directory minutes after a refused push is known at the next one.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Most names cached: logins and pushes name accounts that may not exist,
/// so the cache is bounded rather than grown by whoever sends names.
const CACHE_MAX: usize = 10_000;

impl Directory {
    /// Reads the bind password from the variable the site names.
    pub fn from_site(site: &Site) -> Result<Directory> {
        let password = match &site.ldap.bind_password_env {
            Some(var) => Some(
                std::env::var(&var.value)
                    .map_err(|_| IdentityError::MissingPassword(var.value.clone()))?,
            ),
            None => None,
        };
        Ok(Directory {
            config: site.ldap.clone(),
            password,
            ttl: site.ldap_cache_ttl(),
            conn: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The account, `None` if the directory does not know it.
    #[tracing::instrument(skip(self))]
    pub async fn lookup(&self, name: &str) -> Result<Option<Account>> {
        if let Some((at, hit)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            && at.elapsed() < self.ttl_of(hit.is_some())
        {
            return Ok(hit.clone());
        }
        // One retry on a fresh connection: the shared one may have gone stale.
        let found = match self.lookup_uncached(name).await {
            Ok(found) => found,
            Err(_) => {
                *self.conn.lock().await = None;
                self.lookup_uncached(name).await?
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (at, hit)| at.elapsed() < self.ttl_of(hit.is_some()));
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(name.to_string(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// How long a lookup is cached: the site's TTL, and only briefly for
    /// one that found nobody.
    fn ttl_of(&self, found: bool) -> Duration {
        if found {
            self.ttl
        } else {
            self.ttl.min(NEGATIVE_TTL)
        }
    }

    /// Whether `password` is the password of the entry `dn`: a simple bind
    /// as the user on a connection of its own (the shared one stays bound
    /// as Berth). An empty password is never sent: LDAP would take it as an
    /// anonymous bind and answer success.
    pub async fn check_password(&self, dn: &str, password: &str) -> Result<bool> {
        if password.is_empty() || dn.is_empty() {
            return Ok(false);
        }
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

    /// Forgets cached lookups (tests and admin-triggered refresh).
    pub fn clear_cache(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
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
        let mut attrs = vec![self.config.mail_attribute.as_str(), "entryUUID"];
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
        }))
    }
}

/// The user filter with `{account}` replaced by the escaped name, so a name
/// like `*)(uid=*` matches nothing instead of everything.
pub fn user_filter(template: &str, name: &str) -> String {
    template.replace("{account}", &ldap_escape(name))
}

fn values(entry: &SearchEntry, attr: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(
            user_filter("(uid={account})", "*)(uid=*"),
            r"(uid=\2a\29\28uid=\2a)"
        );
        assert_eq!(user_filter("(uid={account})", "alice"), "(uid=alice)");
    }
}
