//! The registry token service (the distribution registry's `auth: token`
//! scheme): the registry sends clients to `<public_url>/registry/token`,
//! Berth authenticates them and returns a signed token whose access list is
//! exactly what they may do ([`access`]).
//!
//! Who can log in: Berth's own identity (the registry credentials the site
//! names), a directory account in good standing with its password (a
//! simple bind as the user; nothing stored), a personal token, or an
//! account's CI credential. Failures are throttled per account and per
//! client address before the directory is asked; successful binds are
//! remembered for a minute, salted and hashed, so `docker push` of many
//! layers costs one bind.

pub mod access;
pub mod ci;
pub mod signer;
mod throttle;

pub use access::{Access, Requester, grant, parse_scopes};
pub use signer::{Issued, Signer, SignerError};

use crate::identity::{Directory, IdentityError};
use crate::store::Store;
use berth_spec::Site;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use throttle::Throttle;

/// Prefix of personal registry tokens (so they are recognised, and found
/// by secret scanners).
pub const PERSONAL_PREFIX: &str = "berth_pat_";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("too many failed logins; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("the directory is unreachable: {0}")]
    Unavailable(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Sign(#[from] SignerError),
}

const WINDOW: Duration = Duration::from_secs(15 * 60);

/// The service's secrets: the token signing key and the CI credentials'
/// key, both in `<state_dir>/registry-token/` unless the site names the
/// signing key's paths.
pub struct Keys {
    pub signer: Signer,
    pub ci: ci::CiCredentials,
}

impl Keys {
    /// The site's keys, `None` when it does not serve registry tokens.
    pub fn load(site: &Site) -> Result<Option<Keys>, SignerError> {
        let Some(registry) = &site.registry else {
            return Ok(None);
        };
        let Some(config) = &registry.token else {
            return Ok(None);
        };
        let dir = std::path::Path::new(&site.state_dir.value);
        Ok(Some(Keys {
            signer: Signer::load(config, &registry.host.value, dir)?,
            ci: ci::CiCredentials::load(&dir.join("registry-token"))?,
        }))
    }

    /// A token for Berth itself, for `scopes` (its registry calls and the
    /// pulls and pushes it asks of dockerd).
    pub fn berth_token(&self, scopes: &[Access]) -> Result<String, SignerError> {
        let granted = grant(&Requester::Berth, scopes, &|_| false);
        Ok(self
            .signer
            .sign(Requester::Berth.subject(), &granted)?
            .token)
    }
}

pub struct TokenService {
    keys: std::sync::Arc<Keys>,
    berth: Option<(String, String)>,
    accounts: Throttle,
    addresses: Throttle,
    salt: Vec<u8>,
    bind_cache: Duration,
    binds: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
}

impl TokenService {
    pub fn new(site: &Site, keys: std::sync::Arc<Keys>) -> TokenService {
        let config = site.registry.as_ref().and_then(|r| r.token.as_ref());
        let (accounts, addresses) = config
            .map(|t| (t.account_failures, t.address_failures))
            .unwrap_or((3, 20));
        let bind_cache = match config.map(|t| t.bind_cache.as_str()) {
            Some("0" | "0s") => Duration::ZERO,
            Some(text) => berth_spec::site::parse_duration(text).unwrap_or(Duration::from_secs(60)),
            None => Duration::from_secs(60),
        };
        TokenService {
            keys,
            berth: crate::registry::berth_credentials(site),
            accounts: Throttle::new(accounts, WINDOW),
            addresses: Throttle::new(addresses, WINDOW),
            salt: signer::random_bytes(16),
            bind_cache,
            binds: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates `credentials` (Basic user and password) from `client`
    /// and signs a token for what of `scopes` they may have.
    pub async fn issue(
        &self,
        site: &Site,
        directory: &Directory,
        store: &Store,
        credentials: Option<(String, String)>,
        client: IpAddr,
        scopes: &[Access],
    ) -> Result<Issued, TokenError> {
        let Some((user, password)) = credentials else {
            return Err(TokenError::Unauthorized(
                "log in with your department account",
            ));
        };
        let requester = self
            .authenticate(site, directory, store, &user, &password, client)
            .await?;
        let shares = crate::store::blocking(|| store.shares())?;
        let host = site
            .registry
            .as_ref()
            .map(|r| r.host.value.as_str())
            .unwrap_or("");
        let shared = |repo: &str| {
            let key = format!("{host}/{repo}");
            shares.iter().any(|s| s.repository == key)
        };
        let granted = grant(&requester, scopes, &shared);
        tracing::info!(
            subject = requester.subject(),
            %client,
            asked = scopes.len(),
            granted = granted.len(),
            "registry token"
        );
        Ok(self.keys.signer.sign(requester.subject(), &granted)?)
    }

    async fn authenticate(
        &self,
        site: &Site,
        directory: &Directory,
        store: &Store,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Requester, TokenError> {
        if let Some((u, p)) = &self.berth
            && constant_eq(user, u)
            && constant_eq(password, p)
        {
            return Ok(Requester::Berth);
        }
        let now = Instant::now();
        let account_key = format!("account:{user}");
        let address_key = format!("address:{client}");
        self.accounts
            .check(&account_key, now)
            .and(self.addresses.check(&address_key, now))
            .map_err(TokenError::Throttled)?;
        let result = self.verify(site, directory, store, user, password).await;
        if let Err(TokenError::Unauthorized(_)) = &result {
            self.accounts.fail(&account_key, now);
            self.addresses.fail(&address_key, now);
        }
        result
    }

    async fn verify(
        &self,
        site: &Site,
        directory: &Directory,
        store: &Store,
        user: &str,
        password: &str,
    ) -> Result<Requester, TokenError> {
        const REFUSED: &str = "wrong username or password, or the account may not use the registry";
        if password.is_empty()
            || berth_spec::names::dns_label_problem(user, berth_spec::names::MAX_ACCOUNT).is_some()
        {
            return Err(TokenError::Unauthorized(REFUSED));
        }
        let account = directory.lookup(user).await?;
        // Disabled, removed or not-allowed accounts get nothing, whatever
        // credential they hold.
        let Some(account) =
            account.filter(|a| crate::identity::standing(site, user, Some(a)).is_ok())
        else {
            return Err(TokenError::Unauthorized(REFUSED));
        };
        let admin = site
            .ldap
            .admin_group
            .as_ref()
            .is_some_and(|g| account.groups.contains(g));
        let requester = Requester::Account {
            name: user.to_string(),
            admin,
        };
        if let Some(secret) = password.strip_prefix(PERSONAL_PREFIX) {
            let hash = personal_hash(secret);
            let owner = crate::store::blocking(|| store.use_registry_token(&hash))?;
            return match owner {
                Some(owner) if owner == user => Ok(requester),
                _ => Err(TokenError::Unauthorized(REFUSED)),
            };
        }
        if password.starts_with(ci::PREFIX) {
            return match self.keys.ci.verify(user, password) {
                true => Ok(requester),
                false => Err(TokenError::Unauthorized(REFUSED)),
            };
        }
        let salted = self.salted(user, password);
        let cached = self
            .binds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .is_some_and(|(at, hash)| at.elapsed() < self.bind_cache && *hash == salted);
        if cached {
            return Ok(requester);
        }
        if directory.check_password(&account.dn, password).await? {
            let mut binds = self.binds.lock().unwrap_or_else(|p| p.into_inner());
            if binds.len() > 10_000 {
                let ttl = self.bind_cache;
                binds.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            binds.insert(user.to_string(), (Instant::now(), salted));
            Ok(requester)
        } else {
            Err(TokenError::Unauthorized(REFUSED))
        }
    }

    /// The registry's `service` name these tokens are for.
    pub fn service(&self) -> &str {
        &self.keys.signer.service
    }

    fn salted(&self, user: &str, password: &str) -> Vec<u8> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.salt);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.as_bytes());
        ctx.finish().as_ref().to_vec()
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new personal token: the secret to show once, and the hash to keep.
pub fn new_personal_token() -> (String, String) {
    let secret = signer::random_hex(24);
    let hash = personal_hash(&secret);
    (format!("{PERSONAL_PREFIX}{secret}"), hash)
}

fn personal_hash(secret: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
