//! Identity: who an account is according to the department's LDAP directory
//! (mail, groups, disabled), and the admission decision for a revision made
//! from that. Lookups use escaped filters, one shared connection that is
//! re-established on failure, and a short-TTL cache. An unreachable
//! directory is an error (callers wait and retry), never "unknown account".

use berth_spec::site::Site;
use futures::future::BoxFuture;
use ldap3::{SearchEntry, ldap_escape};
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

#[cfg(test)]
pub mod fixed;
mod ldap;

pub use berth_core::account::Account;
pub use berth_core::admission::{Rejection, pusher_allowed, pusher_bound, standing};
pub use berth_core::dn::dn_eq;

/// Where accounts are found and passwords checked: LDAP
/// ([`ldap::LdapEntries`]), or a fixed set in tests. The seam that lets a
/// reconcile run in-process with no directory server.
pub trait Entries: Send + Sync {
    /// The account named `name`, `None` if there is none.
    fn find<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Account>>>;
    /// Whether `password` binds as `dn` (neither is empty).
    fn bind<'a>(&'a self, dn: &'a str, password: &'a str) -> BoxFuture<'a, Result<bool>>;
}

/// The directory with its cache, in front of its [`Entries`].
pub struct Directory {
    entries: Box<dyn Entries>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Option<Account>)>>,
}

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
        Ok(Directory::over(
            Box::new(ldap::LdapEntries {
                config: site.ldap.clone(),
                password,
                conn: tokio::sync::Mutex::new(None),
            }),
            site.ldap_cache_ttl(),
        ))
    }

    /// A directory over `entries`, its lookups cached for `ttl`.
    pub fn over(entries: Box<dyn Entries>, ttl: Duration) -> Directory {
        Directory {
            entries,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The account's groups; none for an account the directory does not
    /// know.
    pub async fn groups(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .lookup(name)
            .await?
            .map(|a| a.groups)
            .unwrap_or_default())
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
        let found = self.entries.find(name).await?;
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
    /// as the user. An empty password is never sent: LDAP would take it as
    /// an anonymous bind and answer success.
    pub async fn check_password(&self, dn: &str, password: &str) -> Result<bool> {
        if password.is_empty() || dn.is_empty() {
            return Ok(false);
        }
        self.entries.bind(dn, password).await
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
