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
    #[error("LDAP {url} unreachable: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    #[error("LDAP search failed: {0}")]
    Search(#[source] Box<ldap3::LdapError>),
    #[error("LDAP bind password variable {0} is not set")]
    MissingPassword(String),
    #[error("LDAP returned {0} entries for one account; the user filter must match one")]
    Ambiguous(usize),
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;

/// An account as the directory describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub dn: String,
    pub mail: Option<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
}

/// Why a revision is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("account `{0}` does not exist in the directory")]
    UnknownAccount(String),
    #[error("account `{0}` is disabled")]
    Disabled(String),
    #[error("account `{account}` is in none of the allowed groups ({allowed})")]
    NotAllowed { account: String, allowed: String },
    #[error("committer email `{got}` is not the account's directory mail `{want}`")]
    CommitterMismatch { got: String, want: String },
    #[error("account `{0}` has no mail in the directory, so no commit can be verified")]
    NoMail(String),
    #[error("pusher `{pusher}` is neither `{account}` nor an admin")]
    Pusher { pusher: String, account: String },
    #[error(
        "pusher `{pusher}` has no GitLab login through LDAP provider `{provider}`, so the push cannot be bound to a directory account"
    )]
    NoLdapIdentity { pusher: String, provider: String },
}

/// Whether GitLab user `pusher`, whose LDAP login (GitLab's `identities`)
/// is `extern_uid`, may push to `account`: the DN must be the account's own
/// (compared as a DN), or the DN of an enabled admin the pusher's username
/// names. A local GitLab account, or a username reused after the student
/// left, never deploys as the LDAP account.
pub fn pusher_bound(
    site: &Site,
    account: &str,
    target: Option<&Account>,
    pusher: &str,
    extern_uid: Option<&str>,
    pusher_account: Option<&Account>,
) -> Result<(), Rejection> {
    let provider = site
        .gitlab
        .as_ref()
        .map(|g| g.ldap_provider.clone())
        .unwrap_or_default();
    let Some(dn) = extern_uid else {
        return Err(Rejection::NoLdapIdentity {
            pusher: pusher.to_string(),
            provider,
        });
    };
    if target.is_some_and(|t| dn_eq(dn, &t.dn)) {
        return Ok(());
    }
    admin_pusher(
        site,
        account,
        pusher,
        pusher_account.filter(|p| dn_eq(dn, &p.dn)),
    )
}

/// Ok when `pusher_account` is an enabled member of the site's admin group.
fn admin_pusher(
    site: &Site,
    account: &str,
    pusher: &str,
    pusher_account: Option<&Account>,
) -> Result<(), Rejection> {
    let admin = site.ldap.admin_group.as_ref();
    let is_admin =
        pusher_account.is_some_and(|p| !p.disabled && admin.is_some_and(|g| p.groups.contains(g)));
    if is_admin {
        Ok(())
    } else {
        Err(Rejection::Pusher {
            pusher: pusher.to_string(),
            account: account.to_string(),
        })
    }
}

/// Whether GitLab user `pusher` may push to `account`'s workspace: the
/// namespace owner, or a member of the site's admin group.
pub fn pusher_allowed(
    site: &Site,
    account: &str,
    pusher: &str,
    pusher_account: Option<&Account>,
) -> Result<(), Rejection> {
    if pusher == account {
        return Ok(());
    }
    admin_pusher(site, account, pusher, pusher_account)
}

/// Whether `name` may have anything running at all: it exists in the
/// directory, is enabled and is in an allowed group. An account that may
/// not is stopped (containers stopped, runner removed, Kubernetes scaled to
/// zero; volumes and claims kept), with this as the reason.
pub fn standing(site: &Site, name: &str, account: Option<&Account>) -> Result<(), Rejection> {
    let Some(account) = account else {
        return Err(Rejection::UnknownAccount(name.to_string()));
    };
    if account.disabled {
        return Err(Rejection::Disabled(name.to_string()));
    }
    let allowed = &site.ldap.allowed_groups;
    if !account.groups.iter().any(|g| allowed.contains(g)) {
        return Err(Rejection::NotAllowed {
            account: name.to_string(),
            allowed: allowed.join(", "),
        });
    }
    Ok(())
}

/// Whether a commit by `committer_email` may change `account`'s workspace.
pub fn admit(
    site: &Site,
    name: &str,
    account: Option<&Account>,
    committer_email: &str,
) -> Result<(), Rejection> {
    standing(site, name, account)?;
    let Some(account) = account else {
        return Err(Rejection::UnknownAccount(name.to_string()));
    };
    let Some(mail) = &account.mail else {
        return Err(Rejection::NoMail(name.to_string()));
    };
    if !mail.trim().eq_ignore_ascii_case(committer_email.trim()) {
        return Err(Rejection::CommitterMismatch {
            got: committer_email.to_string(),
            want: mail.clone(),
        });
    }
    Ok(())
}

/// The directory client with its cache.
pub struct Directory {
    config: LdapConfig,
    password: Option<String>,
    ttl: Duration,
    conn: tokio::sync::Mutex<Option<Ldap>>,
    cache: Mutex<HashMap<String, (Instant, Option<Account>)>>,
}

const TIMEOUT: Duration = Duration::from_secs(5);

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
            && at.elapsed() < self.ttl
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
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), (Instant::now(), found.clone()));
        Ok(found)
    }

    /// Forgets cached lookups (tests and admin-triggered refresh).
    pub fn clear_cache(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn handle(&self) -> Result<Ldap> {
        let mut guard = self.conn.lock().await;
        if let Some(ldap) = guard.as_ref() {
            return Ok(ldap.clone());
        }
        let unreachable = |source| IdentityError::Unreachable {
            url: self.config.url.value.clone(),
            source: Box::new(source),
        };
        let settings = LdapConnSettings::new()
            .set_conn_timeout(TIMEOUT)
            .set_starttls(self.config.starttls);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(unreachable)?;
        ldap3::drive!(conn);
        ldap.with_timeout(TIMEOUT);
        if let Some(dn) = &self.config.bind_dn {
            ldap.simple_bind(dn, self.password.as_deref().unwrap_or(""))
                .await
                .and_then(|r| r.success())
                .map_err(unreachable)?;
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
        let mut attrs = vec![self.config.mail_attribute.as_str()];
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

/// A DN as comparable parts: `(attribute type, value)` per RDN, types and
/// values lower-cased (the attributes Berth compares, `cn`, `uid`, `ou`,
/// `dc`, match case-insensitively), spaces around separators dropped.
/// Escaped commas (`\,`) stay inside their value.
pub fn dn_parts(dn: &str) -> Option<Vec<(String, String)>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    let mut rdns = Vec::new();
    for c in dn.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => {
                current.push(c);
                escaped = true;
            }
            ',' | ';' => rdns.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    rdns.push(current);
    for rdn in rdns {
        let (k, v) = rdn.split_once('=')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_lowercase());
        if k.is_empty() || v.is_empty() {
            return None;
        }
        parts.push((k, v));
    }
    Some(parts)
}

/// Whether two DNs name the same entry.
pub fn dn_eq(a: &str, b: &str) -> bool {
    matches!((dn_parts(a), dn_parts(b)), (Some(x), Some(y)) if x == y)
}

/// `cn=students,ou=groups,dc=x` under base `ou=groups,dc=x` → `students`;
/// a group anywhere else (`cn=students,ou=clubs,dc=x`) is no group of the
/// site's at all.
fn group_name(dn: &str, base: &str) -> Option<String> {
    let parts = dn_parts(dn)?;
    let base = dn_parts(base)?;
    let (first, parent) = parts.split_first()?;
    (parent == base.as_slice()).then(|| {
        // The value as the directory spells it, for messages and quotas.
        dn.split_once('=')
            .and_then(|(_, rest)| rest.split(',').next())
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| first.1.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> berth_spec::Site {
        crate::fixtures::example_site()
    }

    fn alice() -> Account {
        Account {
            name: "alice".into(),
            dn: "uid=alice,ou=people,dc=berth,dc=test".into(),
            mail: Some("alice@berth.test".into()),
            groups: vec!["students".into()],
            disabled: false,
        }
    }

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(
            user_filter("(uid={account})", "*)(uid=*"),
            r"(uid=\2a\29\28uid=\2a)"
        );
        assert_eq!(user_filter("(uid={account})", "alice"), "(uid=alice)");
    }

    #[test]
    fn admission_rules() {
        let site = site();
        assert_eq!(
            admit(&site, "alice", Some(&alice()), "Alice@Berth.test"),
            Ok(())
        );
        assert!(matches!(
            admit(&site, "mallory", None, "x"),
            Err(Rejection::UnknownAccount(_))
        ));
        let disabled = Account {
            disabled: true,
            ..alice()
        };
        assert!(matches!(
            admit(&site, "alice", Some(&disabled), "alice@berth.test"),
            Err(Rejection::Disabled(_))
        ));
        let outsider = Account {
            groups: vec!["guests".into()],
            ..alice()
        };
        assert!(matches!(
            admit(&site, "alice", Some(&outsider), "alice@berth.test"),
            Err(Rejection::NotAllowed { .. })
        ));
        assert_eq!(
            admit(&site, "alice", Some(&alice()), "bob@berth.test").map_err(|e| e.to_string()),
            Err("committer email `bob@berth.test` is not the account's directory mail `alice@berth.test`".into())
        );
        let nomail = Account {
            mail: None,
            ..alice()
        };
        assert!(matches!(
            admit(&site, "alice", Some(&nomail), "alice@berth.test"),
            Err(Rejection::NoMail(_))
        ));
    }

    #[test]
    fn a_pusher_is_bound_by_the_dn_gitlab_knows() {
        let site = site();
        let dn = "uid=alice,ou=people,dc=berth,dc=test";
        let ok = |uid: Option<&str>, pusher: Option<&Account>| {
            pusher_bound(&site, "alice", Some(&alice()), "x", uid, pusher)
        };
        assert_eq!(ok(Some(dn), None), Ok(()));
        assert_eq!(
            ok(Some("UID=alice, ou=people,dc=berth,dc=test"), None),
            Ok(())
        );
        // A local GitLab account called `alice`: no LDAP identity at all.
        assert!(matches!(
            ok(None, None),
            Err(Rejection::NoLdapIdentity { .. })
        ));
        // Someone else's DN behind the username `alice`.
        assert!(matches!(
            ok(Some("uid=mallory,ou=people,dc=berth,dc=test"), None),
            Err(Rejection::Pusher { .. })
        ));
        let admin = Account {
            name: "root".into(),
            dn: "uid=root,ou=people,dc=berth,dc=test".into(),
            groups: vec!["admins".into()],
            ..alice()
        };
        assert_eq!(ok(Some(&admin.dn), Some(&admin)), Ok(()));
        // An admin's username with another DN is not that admin.
        assert!(ok(Some("uid=eve,ou=people,dc=berth,dc=test"), Some(&admin)).is_err());
    }

    #[test]
    fn groups_are_compared_by_full_dn() {
        let base = "ou=groups,dc=x";
        assert_eq!(
            group_name("cn=students,ou=groups,dc=x", base),
            Some("students".into())
        );
        assert_eq!(
            group_name("CN=admins, OU=Groups, DC=x", base),
            Some("admins".into())
        );
        // The attack: a look-alike group elsewhere in the tree.
        assert_eq!(group_name("cn=admins,ou=clubs,dc=x", base), None);
        assert_eq!(group_name("cn=admins,ou=groups,dc=x,dc=evil", base), None);
        assert_eq!(group_name("garbage", base), None);
    }

    #[test]
    fn dns_compare_by_parts_not_spelling() {
        assert!(dn_eq(
            "uid=alice,ou=people,dc=berth,dc=test",
            "UID=alice, ou=People,dc=berth, dc=test"
        ));
        assert!(!dn_eq(
            "uid=alice,ou=people,dc=berth,dc=test",
            "uid=alice,ou=guests,dc=berth,dc=test"
        ));
        assert!(!dn_eq(
            "uid=alice\\,ou=people,dc=x",
            "uid=alice,ou=people,dc=x"
        ));
        assert!(!dn_eq("", ""));
    }

    #[test]
    fn standing_stops_unknown_disabled_and_outside_accounts() {
        let site = site();
        assert_eq!(standing(&site, "alice", Some(&alice())), Ok(()));
        assert!(matches!(
            standing(&site, "gone", None),
            Err(Rejection::UnknownAccount(_))
        ));
        let outsider = Account {
            groups: vec![],
            ..alice()
        };
        assert!(matches!(
            standing(&site, "alice", Some(&outsider)),
            Err(Rejection::NotAllowed { .. })
        ));
    }
}
