//! The registry token service (the distribution registry's `auth: token`
//! scheme): the registry sends clients to `<public_url>/registry/token`,
//! Berth authenticates them and returns a signed token whose access list is
//! exactly what they may do ([`access`]).
//!
//! Who can log in: Berth's own identity (the registry credentials the site
//! names), a directory account in good standing with its password (a
//! simple bind as the user; nothing stored), a personal token, or an
//! account's CI credential, through [`crate::edges::login`] (the console's door
//! too): failures throttled before the directory is asked, binds cached.

use crate::inputs::keys::{Issued, Keys, SignerError};
pub use berth_core::grants::{Access, Requester, grant};

use crate::edges::login::{LoginError, Logins};
use crate::inputs::identity::Directory;
use crate::store::Store;
use berth_spec::Site;
use std::net::IpAddr;

/// Prefix of personal registry tokens (so they are recognised, and found
/// by secret scanners).
pub const PERSONAL_PREFIX: &str = "berth_pat_";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error(transparent)]
    Login(LoginError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Sign(#[from] SignerError),
}

impl From<LoginError> for TokenError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Refused => TokenError::Unauthorized(
                "wrong username or password, or the account may not use the registry",
            ),
            other => TokenError::Login(other),
        }
    }
}

/// What issuing a token reads: the site, the directory, the store, and
/// the registry (for namespace usage against quotas).
#[derive(Clone, Copy)]
pub struct Backing<'a> {
    pub site: &'a Site,
    pub directory: &'a Directory,
    pub store: &'a Store,
    pub registry: Option<&'a crate::inputs::registry::Registry>,
}

pub struct TokenService {
    keys: std::sync::Arc<Keys>,
    berth: Option<(String, String)>,
    logins: std::sync::Arc<Logins>,
    /// Namespace usage by account, read at most every [`USAGE_FRESH`]: one
    /// `docker push` asks for several tokens.
    usage: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, u64)>>,
}

/// How long a namespace's measured usage is trusted.
const USAGE_FRESH: std::time::Duration = std::time::Duration::from_secs(2);

impl TokenService {
    pub fn new(
        site: &Site,
        keys: std::sync::Arc<Keys>,
        logins: std::sync::Arc<Logins>,
    ) -> TokenService {
        TokenService {
            keys,
            berth: crate::inputs::registry::berth_credentials(site),
            logins,
            usage: Default::default(),
        }
    }

    /// Drops `push` to the account's own namespace when its images already
    /// take its group's registry quota: the quota binds every push, by hand
    /// or by CI, not only Berth's builds. Counted when the token is asked
    /// for, so one push begun under the quota may end over it.
    async fn within_quota(
        &self,
        site: &Site,
        groups: &[String],
        registry: Option<&crate::inputs::registry::Registry>,
        account: &str,
        granted: &mut Vec<Access>,
    ) {
        let own = format!("{account}/");
        let pushes = granted
            .iter()
            .any(|a| a.name.starts_with(&own) && a.actions.iter().any(|x| x == "push"));
        let Some(registry) = registry.filter(|_| pushes) else {
            return;
        };
        let Some(limit) =
            berth_spec::policy::effective_quota(site, groups).and_then(|q| q.registry)
        else {
            return;
        };
        let cached = self
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(account)
            .filter(|(at, _)| at.elapsed() < USAGE_FRESH)
            .map(|(_, used)| *used);
        let used = match cached {
            Some(used) => used,
            None => match registry.namespace_usage(account).await {
                Ok(used) => {
                    self.usage
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(account.to_string(), (std::time::Instant::now(), used));
                    used
                }
                Err(e) => {
                    // Unknown usage: no push rather than an unbounded one.
                    tracing::warn!(account, cause = %e, "registry quota: usage unknown");
                    u64::MAX
                }
            },
        };
        if used >= limit {
            tracing::info!(
                account,
                used,
                limit,
                "registry quota reached: push not granted"
            );
            withdraw(granted, "push", |a| a.name.starts_with(&own));
        }
    }

    /// Authenticates `credentials` (Basic user and password) from `client`
    /// and signs a token for what of `scopes` they may have.
    pub async fn issue(
        &self,
        with: Backing<'_>,
        credentials: Option<(String, String)>,
        client: IpAddr,
        scopes: &[Access],
    ) -> Result<Issued, TokenError> {
        let Backing {
            site,
            directory,
            store,
            registry,
        } = with;
        let Some((user, password)) = credentials else {
            return Err(TokenError::Unauthorized(
                "log in with your department account",
            ));
        };
        let (requester, groups) = self
            .authenticate(site, directory, store, &user, &password, client)
            .await?;
        let shares = store.call(|s| s.shares()).await?;
        let host = site
            .registry
            .as_ref()
            .map(|r| r.host.value.as_str())
            .unwrap_or("");
        let shared = |repo: &str| {
            let key = format!("{host}/{repo}");
            shares.iter().any(|s| s.repository == key)
        };
        let mut granted = grant(&requester, scopes, &shared);
        if let Requester::Account { name, .. } = &requester {
            self.within_quota(site, &groups, registry, name, &mut granted)
                .await;
            not_while_running(store, host, &mut granted).await?;
        }
        tracing::info!(
            subject = requester.subject(),
            %client,
            asked = scopes.len(),
            granted = granted.len(),
            "registry token"
        );
        Ok(self.keys.signer.sign(requester.subject(), &granted)?)
    }

    /// Berth's identity, else a member by password, personal token or CI
    /// credential, through the shared login throttle; with the member's
    /// groups (none for Berth), which the quota is looked up by.
    async fn authenticate(
        &self,
        site: &Site,
        directory: &Directory,
        store: &Store,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<(Requester, Vec<String>), TokenError> {
        let logins = &self.logins;
        // Berth's own login goes through the throttle like everyone's:
        // guesses at its password are counted and stopped too.
        if let Some((u, p)) = &self.berth
            && crate::base::secret::same(user, u)
        {
            return logins
                .attempt(user, client, async {
                    match crate::base::secret::same(password, p) {
                        true => Ok((Requester::Berth, Vec::new())),
                        false => Err(LoginError::Refused),
                    }
                })
                .await
                .map_err(TokenError::from);
        }
        let member = logins
            .attempt(user, client, async {
                if let Some(secret) = password.strip_prefix(PERSONAL_PREFIX) {
                    let member = logins.member(site, directory, user).await?;
                    let hash = personal_hash(secret);
                    let owner = store.call(move |s| s.use_registry_token(&hash)).await?;
                    return match owner {
                        Some(owner)
                            if personal_valid(site, &owner, &member, crate::store::now()) =>
                        {
                            Ok(member)
                        }
                        _ => Err(LoginError::Refused),
                    };
                }
                if password.starts_with(crate::inputs::keys::ci::PREFIX) {
                    let member = logins.member(site, directory, user).await?;
                    return match self.keys.ci.verify(user, &member.account.entry, password) {
                        true => Ok(member),
                        false => Err(LoginError::Refused),
                    };
                }
                logins.password(site, directory, user, password).await
            })
            .await?;
        Ok((
            Requester::Account {
                name: user.to_string(),
                admin: member.admin,
            },
            member.account.groups,
        ))
    }

    /// The registry's `service` name these tokens are for.
    pub fn service(&self) -> &str {
        &self.keys.signer.service
    }
}

/// Withdraws `delete` on every repository an accepted revision of any
/// account runs (pinned by tag or digest): a student frees space with
/// what nothing uses, never by pulling an image from under a workspace.
/// Tokens name repositories, not tags, so one image in use keeps the whole
/// repository.
async fn not_while_running(
    store: &Store,
    host: &str,
    granted: &mut Vec<Access>,
) -> Result<(), TokenError> {
    if !granted
        .iter()
        .any(|a| a.actions.iter().any(|x| x == "delete"))
    {
        return Ok(());
    }
    let pins = store.call(|s| s.all_pins()).await?;
    withdraw(granted, "delete", |access| {
        let repo = format!("{host}/{}", access.name);
        pins.iter().any(|p| {
            p.image
                .strip_prefix(&repo)
                .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'))
        })
    });
    Ok(())
}

/// Takes `action` away from the grants `which` picks, and drops a grant
/// left with nothing.
fn withdraw(granted: &mut Vec<Access>, action: &str, which: impl Fn(&Access) -> bool) {
    for access in granted.iter_mut().filter(|a| which(a)) {
        access.actions.retain(|x| x != action);
    }
    granted.retain(|a| !a.actions.is_empty());
}

/// Whether a stored personal token still lets `member` in at `now`: it is
/// theirs by name and by directory entry (a name given to a new entry
/// inherits nothing; tokens made before entries were recorded have none),
/// and it has not expired (those made before expiry existed last the
/// site's default lifetime from their creation).
pub fn personal_valid(
    site: &Site,
    owner: &crate::store::TokenOwner,
    member: &crate::edges::login::Member,
    now: i64,
) -> bool {
    let (default, _) = personal_lifetimes(site);
    let expires = owner
        .expires
        .unwrap_or(owner.created.saturating_add(default.as_secs() as i64));
    owner.account == member.account.name
        && (owner.entry.is_empty() || owner.entry == member.account.entry)
        && now < expires
}

/// The site's personal token lifetimes (default, longest).
fn personal_lifetimes(site: &Site) -> (std::time::Duration, std::time::Duration) {
    berth_spec::site::personal_lifetimes(site.registry.as_ref().and_then(|r| r.token.as_ref()))
}

/// When a personal token made now expires: after `asked`, or the site's
/// default lifetime; refused past the longest it allows.
pub fn personal_expiry(site: &Site, asked: Option<std::time::Duration>) -> Result<i64, String> {
    let (default, max) = personal_lifetimes(site);
    let lifetime = asked.unwrap_or(default);
    if lifetime > max {
        return Err(format!(
            "a personal token may last at most {} days (registry.token.personal_max_ttl)",
            max.as_secs() / 86_400
        ));
    }
    Ok(crate::store::now().saturating_add(lifetime.as_secs() as i64))
}

/// A new personal token: the secret to show once, and the hash to keep.
pub fn new_personal_token() -> (String, String) {
    let secret = crate::base::secret::random_hex(24);
    let hash = personal_hash(&secret);
    (format!("{PERSONAL_PREFIX}{secret}"), hash)
}

fn personal_hash(secret: &str) -> String {
    crate::base::secret::sha256_hex(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edges::login::Member;
    use crate::store::TokenOwner;

    fn member(entry: &str) -> Member {
        Member {
            account: crate::inputs::identity::Account {
                name: "alice".into(),
                dn: "uid=alice,ou=people,dc=berth,dc=test".into(),
                entry: entry.into(),
                mail: None,
                groups: vec!["students".into()],
                disabled: false,
                posix: None,
            },
            admin: false,
        }
    }

    #[test]
    fn a_personal_token_is_its_entrys_own_until_it_expires() {
        let site = crate::fixtures::example_site();
        let owner = |entry: &str, expires| TokenOwner {
            account: "alice".into(),
            entry: entry.into(),
            created: 1000,
            expires,
        };
        let now = 2000;
        assert!(personal_valid(
            &site,
            &owner("u1", Some(3000)),
            &member("u1"),
            now
        ));
        assert!(
            !personal_valid(&site, &owner("u1", Some(3000)), &member("u2"), now),
            "a new entry under the same name inherits nothing"
        );
        assert!(!personal_valid(
            &site,
            &owner("u1", Some(1500)),
            &member("u1"),
            now
        ));
        // Made before tokens were bound and expired: the default lifetime.
        assert!(personal_valid(&site, &owner("", None), &member("u2"), now));
        assert!(!personal_valid(
            &site,
            &owner("", None),
            &member("u2"),
            1000 + 91 * 86_400
        ));
        assert!(
            personal_expiry(&site, Some(std::time::Duration::from_secs(400 * 86_400))).is_err()
        );
    }
}
